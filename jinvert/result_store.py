"""A resumable record of finished work: append-only JSON lines, one file per process.

:class:`ResultStore` is what ``jinvert reproduce`` (``OUT/NAME/results.jsonl``)
and ``jinvert invert DIR`` (``OUT/store/results.jsonl``) resume from. One
process appends to the store's file itself; under JAX's distributed runtime
process i of P appends to its own shard beside it,
``results.shard-0000i-of-0000P.jsonl`` (no two processes write one file), and
every process reads them all, so a run resumes whatever the process count
was before.
"""

from __future__ import annotations

import glob
import json
import os
from typing import Iterable

from jinvert import distributed


class ResultStore:
    """Append-only JSON-lines record of finished work, for resuming.

    Each line is one JSON object with at least ``"id"``. :meth:`done` gives
    the ids already written (in any shard); :meth:`add` appends to this
    process's file and flushes at once, so a killed run loses at most the
    batch in flight. A line cut short by a kill is skipped (its work is
    redone), and the next record starts on a line of its own.

    Args:
      path: the store's file, e.g. ``OUT/table1/results.jsonl``.
      shard: ``(index, count)`` of this process; default
        :func:`jinvert.distributed.process`. With ``count > 1`` this process
        appends to ``results.shard-<index>-of-<count>.jsonl`` beside ``path``.

    Attributes:
      path: the file this process appends to.
      records: id -> record, from every file of the store.
    """

    def __init__(self, path: str, *, shard: tuple[int, int] | None = None):
        index, count = distributed.process() if shard is None else shard
        self.base = os.path.abspath(path)
        stem, ext = os.path.splitext(self.base)
        self.path = (f"{stem}.{distributed.shard_name(index, count)}{ext}" if count > 1
                     else path)
        os.makedirs(os.path.dirname(self.base), exist_ok=True)
        self.records: dict[str, dict] = {}
        self.reload()

    def files(self) -> list[str]:
        """Every file of the store on disk: the one-process file, then the
        shards in name order."""
        stem, ext = os.path.splitext(self.base)
        shards = sorted(glob.glob(f"{glob.escape(stem)}.shard-*-of-*{ext}"))
        return [p for p in [self.base, *shards] if os.path.exists(p)]

    def reload(self) -> None:
        """Read every file of the store again (the other processes' records
        included); of two records of one id the later is kept."""
        records: dict[str, dict] = {}
        for path in self.files():
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a kill: redo that work
                    records[rec["id"]] = rec
        self.records = records

    def done(self) -> set[str]:
        """Ids already recorded."""
        return set(self.records)

    def add(self, records: Iterable[dict]) -> None:
        """Append records (each with an ``"id"``) and flush to disk."""
        cut = False
        if os.path.exists(self.path) and os.path.getsize(self.path):
            with open(self.path, "rb") as f:
                f.seek(-1, os.SEEK_END)
                cut = f.read(1) != b"\n"  # the last line was cut short by a kill
        with open(self.path, "a", encoding="utf-8") as f:
            if cut:
                f.write("\n")
            for rec in records:
                f.write(json.dumps(rec) + "\n")
                self.records[rec["id"]] = rec
            f.flush()
            os.fsync(f.fileno())
