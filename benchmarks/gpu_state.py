"""What a run of ``benchmarks/gpu.py`` has measured, kept so that a run cut
short (a device machine's 10-minute limit, ``--time-limit``) can be resumed:
``--state FILE`` appends every result as it arrives, one JSON object a line,
and a later run with the same file and the same settings skips what is
already there and reports it with what it measures itself.

A line is ``{"settings": ..., "key": ..., "value": ...}``: ``settings`` the
run's options that change a measurement (:func:`run_settings`), ``key``
what was measured (``{"kind": "row", "rep", "framework", "samples",
"per_call"}``, ``{"kind": "codes", "per_call"}`` or ``{"kind": "parity"}``),
``value`` what the child process reported. Lines of other settings, and a
last line cut off by a kill, are ignored; of two lines with one key the
later wins.
"""

from __future__ import annotations

import json
import os


def run_settings(args, device: str) -> dict:
    """The options of ``args`` (``gpu.py``'s) that change what a row
    measures, and the ``device`` ("gpu" or "cpu"): a state line of other
    settings is not reused."""
    return {"device": device, "iterations": args.iterations, "repeats": args.repeats,
            "size": args.size, "precision": args.precision, "compile_mode": args.compile_mode,
            "call_iterations": args.call_iterations, "torch_threads": args.torch_threads,
            "table1": args.table1}


def _canonical(value) -> str:
    return json.dumps(value, sort_keys=True)


class State:
    """The results of a run by key, read from and appended to ``path``
    (None: kept in memory only)."""

    def __init__(self, path: str | None = None, settings: dict | None = None):
        self.path = path
        self.settings = json.loads(json.dumps(settings or {}))
        self.records: dict[str, dict] = {}
        self.ignored = 0  # lines of other settings, or unreadable
        if path is None or not os.path.exists(path):
            return
        with open(path, encoding="utf-8") as f:
            for line in f:
                if not line.strip():
                    continue
                try:
                    record = json.loads(line)
                    if record["settings"] != self.settings:
                        raise ValueError("other settings")
                    self.records[_canonical(record["key"])] = record["value"]
                except (ValueError, KeyError, TypeError):
                    self.ignored += 1

    def get(self, **key):
        """The value stored under ``key``, or None."""
        return self.records.get(_canonical(key))

    def put(self, value, **key) -> None:
        """Store ``value`` under ``key``, and append it to the file."""
        self.records[_canonical(key)] = value
        if self.path is not None:
            line = json.dumps({"settings": self.settings, "key": key, "value": value})
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())

    def __len__(self) -> int:
        return len(self.records)
