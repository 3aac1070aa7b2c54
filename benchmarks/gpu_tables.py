"""The tables of ``benchmarks/gpu_check.sh``'s report that are not speed:
the test suite file by file, Table 3 merged from one run per layer, TF32
against full precision on Table 3, and a GPU-trained decoder read on both
devices.

    python benchmarks/gpu_tables.py suite SUITE_TSV
    python benchmarks/gpu_tables.py table3 DIR LAYER [LAYER ...]
    python benchmarks/gpu_tables.py precision HIGHEST_DIR DEFAULT_DIR LAYER [LAYER ...]
    python benchmarks/gpu_tables.py decoder GPU_JSON CPU_JSON

Each prints Markdown. ``table3``/``precision`` read ``DIR/LAYER.md``, the
``table3.md`` that ``jinvert reproduce table3 --layers LAYER`` wrote for
that layer alone: each layer's error is normalised by the distances between
its own codes, so one run per layer gives the rows one run of every layer
gives, and a run stopped by a device call's time limit loses one layer at
most (gpu_check.sh keeps the finished ones; their codes and pictures, too
large to carry between machines, are not needed again).
"""

from __future__ import annotations

import json
import os
import re
import sys

#: The decoder of a GPU must decode alike on a CPU: within this many points
#: of the paper's metric (issue 24), mean over the held-out photos.
DECODER_TOLERANCE = 1.0

#: pytest's exit statuses, in words (124: stopped by ``timeout``).
PYTEST_STATUS = {0: "passed", 1: "FAILED", 2: "interrupted", 3: "internal error",
                 4: "usage error", 5: "no tests", 124: "TIMED OUT"}


def suite_table(lines: list[str]) -> str:
    """Markdown of ``suite.tsv`` lines ``file<TAB>exit<TAB>summary<TAB>seconds``
    (one per test file, gpu_check.sh's ``suite`` part), then the totals."""
    rows, bad, total_s = [], 0, 0.0
    for line in lines:
        if not line.strip():
            continue
        path, status, summary, seconds = line.rstrip("\n").split("\t")
        word = PYTEST_STATUS.get(int(status), f"exit {status}")
        bad += word not in ("passed", "no tests")
        total_s += float(seconds)
        rows.append(f"| {path} | {word} | {summary} | {float(seconds):.0f} |")
    counts = {}
    for line in rows:
        for n, what in re.findall(r"(\d+) (passed|failed|skipped|errors?|deselected)", line):
            what = "error" if what.startswith("error") else what
            counts[what] = counts.get(what, 0) + int(n)
    text = "| test file | result | pytest's summary | s |\n|---|---|---|---|\n"
    text += "\n".join(rows) + "\n\n"
    text += (f"{len(rows)} files, {bad} not passed; "
             + ", ".join(f"{v} {k}" for k, v in sorted(counts.items()))
             + f"; {total_s:.0f} s\n")
    return text


def _tables(text: str) -> list[tuple[int, int]]:
    """``(first, end)`` line ranges of the rows of each ``| layer |`` table."""
    lines = text.splitlines()
    spans = []
    for i, line in enumerate(lines):
        if line.startswith("| layer |"):
            first = i + 2                          # after the |---| line
            end = first
            while end < len(lines) and lines[end].startswith("| "):
                end += 1
            spans.append((first, end))
    return spans


def merge_table3(texts: list[str]) -> str:
    """One ``table3.md`` from several (one per layer, in layer order): the
    first's text with each of its tables' rows replaced by the rows of that
    table in every text, and a line saying it was merged."""
    if not texts:
        raise ValueError("no table3.md to merge")
    every = [(t.splitlines(), _tables(t)) for t in texts]
    lines, spans = every[0]
    if any(len(s) != len(spans) for _, s in every):
        raise ValueError("the table3.md files do not have the same tables")
    out, position = [], 0
    for k, (first, end) in enumerate(spans):
        out += lines[position:first]
        for t_lines, t_spans in every:
            f, e = t_spans[k]
            out += t_lines[f:e]
        position = end
    out += lines[position:]
    out.insert(1, f"\n(merged from {len(texts)} runs of one layer each, "
                  f"benchmarks/gpu_check.sh table3; each row is its layer's own run)")
    return "\n".join(out) + "\n"


def _own_band(md: str) -> tuple[str, str, float]:
    """``(layer, λV, mean)`` of the bold cell (the layer's own band) of the
    first table of a one-layer ``table3.md``."""
    first, end = _tables(md)[0]
    lines = md.splitlines()
    bands = re.findall(r"λV = ([\d.e+-]+)", lines[first - 2])
    cells = lines[first].split("|")[1:-1]
    for band, cell in zip(bands, cells[1:]):
        if "**" in cell:
            return cells[0].strip(), band, float(cell.strip(" *").split("±")[0])
    raise ValueError(f"no bold cell in {lines[first]!r}")


def precision_table(highest: list[str], default: list[str]) -> str:
    """Markdown: each layer's error at its own band at ``highest`` and at
    ``default`` precision (TF32 on NVIDIA GPUs), from one-layer
    ``table3.md`` texts in the same layer order."""
    text = ("| layer | λV | error %, precision highest | error %, precision default "
            "(TF32) | difference (points) |\n|---|---|---|---|---|\n")
    for h, d in zip(highest, default):
        layer, band, a = _own_band(h)
        layer_d, band_d, b = _own_band(d)
        if (layer, band) != (layer_d, band_d):
            raise ValueError(f"rows differ: {layer} λV {band} against {layer_d} λV {band_d}")
        text += f"| {layer} | {band} | {a:.2f} | {b:.2f} | {b - a:+.2f} |\n"
    return text


def decoder_table(gpu: dict, cpu: dict) -> tuple[str, bool]:
    """Markdown comparing the decoder alone (``benchmarks/decoder.py``'s
    ``decoder.json``, the row of 0 iterations) decoded on the GPU and on the
    CPU, and whether the mean errors agree within :data:`DECODER_TOLERANCE`
    points."""
    def alone(d):
        row = next(r for r in d["rows"] if r["iterations"] == 0)
        return row["error"]

    a, b = alone(gpu), alone(cpu)
    if gpu["photos"] != cpu["photos"]:
        raise ValueError("the two runs decoded different photos")
    mean_a, mean_b = sum(a) / len(a), sum(b) / len(b)
    worst = max(abs(x - y) for x, y in zip(a, b))
    ok = abs(mean_a - mean_b) <= DECODER_TOLERANCE
    text = ("| decoded on | error % (paper's metric, mean over the held-out photos) |\n"
            f"|---|---|\n| JAX's default device (the GPU) | {mean_a:.2f} |\n"
            f"| the CPU (JAX_PLATFORMS=cpu) | {mean_b:.2f} |\n\n"
            f"Difference of the means {mean_b - mean_a:+.3f} points, largest per photo "
            f"{worst:.3f} ({len(a)} photos): "
            + ("within" if ok else "NOT within") + f" {DECODER_TOLERANCE:g} point.\n")
    return text, ok


def _read(path: str) -> str:
    with open(path, encoding="utf-8") as f:
        return f.read()


def main(argv=None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv:
        print(__doc__, file=sys.stderr)
        return 2
    what, rest = argv[0], argv[1:]
    if what == "suite" and len(rest) == 1:
        print(suite_table(_read(rest[0]).splitlines()), end="")
    elif what == "table3" and len(rest) >= 2:
        print(merge_table3([_read(os.path.join(rest[0], f"{layer}.md")) for layer in rest[1:]]),
              end="")
    elif what == "precision" and len(rest) >= 3:
        done = [layer for layer in rest[2:]
                if all(os.path.exists(os.path.join(d, f"{layer}.md")) for d in rest[:2])]
        print(precision_table([_read(os.path.join(rest[0], f"{layer}.md")) for layer in done],
                              [_read(os.path.join(rest[1], f"{layer}.md")) for layer in done]),
              end="")
    elif what == "decoder" and len(rest) == 2:
        text, ok = decoder_table(json.loads(_read(rest[0])), json.loads(_read(rest[1])))
        print(text, end="")
        return 0 if ok else 1
    else:
        print(__doc__, file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
