"""The report of ``benchmarks/gpu.py``: its header (date, devices, versions,
settings, the parity of the codes), the table of times and ratios, the
roofline of jinvert's step (``benchmarks/roofline.py``), issue 14's
targets, printed and written as Markdown.
"""

from __future__ import annotations

import datetime
import os
import platform
import subprocess

from roofline import peak, roofline

HERE = os.path.dirname(os.path.abspath(__file__))


def header(args, device: str, parity: str) -> list[str]:
    """The lines above the table. PyTorch is not imported where
    ``args.framework`` is ``"jinvert"``."""
    import jax
    import jaxlib

    torch = None
    if args.framework != "jinvert":
        import torch
    try:
        commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if torch is None:
        torch_dev = torch_version = "not used"
    else:
        torch_version = torch.__version__
        torch_dev = (f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, "
                     f"cuDNN {torch.backends.cudnn.version()})" if device == "gpu"
                     else f"CPU ({torch.get_num_threads()} threads)")
    if device == "gpu":
        jax_dev = ", ".join(str(d) for d in jax.devices())
    else:
        jax_dev = f"CPU ({os.cpu_count()} cores)"
    precision = ("default: the CNNs at the backend's choice, TF32 on NVIDIA GPUs (HOG and "
                 "DSIFT keep float32)" if args.precision == "default"
                 else "highest: full float32 everywhere")
    per_call = ("the backend default" if args.per_call_values == [None]
                else ",".join(map(str, args.per_call_values)))
    return [
        f"jinvert GPU benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} "
        f"UTC, jinvert {commit or '?'}",
        f"device: JAX {jax_dev}; PyTorch {torch_dev}",
        f"versions: Python {platform.python_version()}, JAX {jax.__version__} "
        f"(jaxlib {jaxlib.__version__}), PyTorch {torch_version}; {platform.machine()}",
        f"timing: ms/it = (t(2n) - t(n))/n, n = {args.iterations}, best of {args.repeats}; "
        f"samples {','.join(map(str, args.sample_counts))}; HOG/DSIFT images "
        f"{args.size}x{args.size} grey, AlexNet 227x227 (random weights), EfficientNet "
        f"224x224 (ImageNet weights); the bundled astronaut photo; jinvert iterations per "
        f"compiled call: {per_call}",
        f"matmul precision: {precision}; torch fp32 per row; torch.compile mode "
        f"{args.compile_mode}; XLA_PYTHON_CLIENT_PREALLOCATE="
        f"{os.environ.get('XLA_PYTHON_CLIENT_PREALLOCATE')}",
        f"torch code vs jinvert code (max |diff| / max |jinvert|, on the device): {parity}",
    ]


def _number(row, key):
    value = row.get(key)
    return "n/a" if value is None else f"{value:.3g}"


def _cell(row, key, fmt="{:.3g}", error_key=None):
    if row.get(key) is not None:
        return fmt.format(row[key])
    reason = row.get(error_key or "") or row.get("error")
    return f"n/a ({reason})" if reason else "n/a"


def _per_call(row) -> str:
    return "default" if row.get("per_call") is None else str(row["per_call"])


def _markdown_table(columns: list[str], body: list[list[str]]) -> list[str]:
    return (["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
            + ["| " + " | ".join(cells) + " |" for cells in body])


def table(rows: list[dict], per_call_column: bool = False) -> list[str]:
    """The table of times, ratios and memory, one line per row
    (``per_call_column``: with a column of jinvert's iterations per call)."""
    columns = ["representation", "samples", "jinvert ms/it", "eager ms/it", "compiled ms/it",
               "eager/jinvert", "compiled/jinvert", "jinvert compile s", "jinvert fixed ms",
               "torch.compile s", "call s (its)", "jax peak MiB", "torch peak MiB eager/compiled",
               "torch fp32"]
    if per_call_column:
        columns.insert(2, "its/call")
    body = []
    for r in rows:
        first = [r["rep"], str(r["samples"])] + ([_per_call(r)] if per_call_column else [])
        reasons = {r.get(k) for k in ("jinvert_error", "eager_error", "compiled_error")}
        if len(reasons) == 1 and None not in reasons and not any(
                r.get(k) for k in ("jinvert_ms", "eager_ms", "compiled_ms")):
            # One reason for the whole row (a missing weight file, the time limit):
            # said once.
            cells = first + [f"n/a ({reasons.pop()})"]
            body.append(cells + [""] * (len(columns) - len(cells)))
            continue
        j, e, c = r.get("jinvert_ms"), r.get("eager_ms"), r.get("compiled_ms")
        call = (f"{r['call_s']:.3g} ({r['call_iterations']})" if r.get("call_s") is not None
                else _cell(r, "call_s", error_key="jinvert_error"))
        peaks = "/".join(_number(r, k) for k in ("eager_peak_mib", "compiled_peak_mib"))
        body.append(first + [
            _cell(r, "jinvert_ms", error_key="jinvert_error"),
            _cell(r, "eager_ms", error_key="eager_error"),
            _cell(r, "compiled_ms", error_key="compiled_error"),
            f"{e / j:.2f}" if (e and j) else "n/a",
            f"{c / j:.2f}" if (c and j) else "n/a",
            _cell(r, "jinvert_compile_s", "{:.1f}", "jinvert_error"),
            _cell(r, "jinvert_fixed_ms", "{:.3g}", "jinvert_error"),
            _cell(r, "compiled_first_s", "{:.1f}", "compiled_error"),
            call, _number(r, "jax_peak_mib"), peaks, r.get("torch_fp32", "n/a")])
    return _markdown_table(columns, body)


ROOFLINE_COLUMNS = ["representation", "samples", "its/call", "jinvert ms/it", "GFLOP/it",
                    "MB/it", "FLOP/B", "GFLOP/s", "% peak FLOP/s", "GB/s", "% peak GB/s",
                    "nearer roof (ridge FLOP/B)", "roofline %", "peak", "kernels/it",
                    "µs/kernel"]


def _percent(fraction) -> str:
    return "n/a" if fraction is None else f"{100 * fraction:.3g}"


def roofline_cells(row: dict, peak_tflops=None, peak_gbps=None) -> list[str]:
    """The cells of :data:`ROOFLINE_COLUMNS` for one row: XLA's FLOPs and
    bytes of one iteration (``row["flops"]``, ``row["bytes"]``) over its
    measured ``jinvert_ms``, against the peak of ``row["device_kind"]`` at
    ``row["peak_precision"]`` (:func:`roofline.peak`), or the ones given."""
    first = [row["rep"], str(row["samples"]), _per_call(row)]
    if row.get("flops") is None or row.get("bytes") is None:
        why = row.get("cost_error") or row.get("jinvert_error") or row.get("error") or "no cost"
        return first + [f"n/a ({why})"] + [""] * (len(ROOFLINE_COLUMNS) - 4)
    launches = _launch_cells(row)
    flops, bytes_ = row["flops"], row["bytes"]
    known = peak(row.get("device_kind", "?"), row.get("peak_precision", "fp32"),
                 peak_tflops, peak_gbps)
    work = [f"{flops / 1e9:.3g}", f"{bytes_ / 1e6:.3g}",
            "n/a" if not bytes_ else f"{flops / bytes_:.3g}"]
    ms = row.get("jinvert_ms")
    if ms is None:
        return first + [_cell(row, "jinvert_ms", error_key="jinvert_error")] + work + \
            ["n/a"] * 6 + [known.label] + launches
    r = roofline(flops, bytes_, ms / 1e3, known.flops, known.bytes)
    nearer = "n/a" if r.bound is None else f"{r.bound} ({r.ridge:.3g})"
    return first + [f"{ms:.3g}"] + work + [
        f"{r.flops_per_s / 1e9:.3g}", _percent(r.flops_fraction),
        f"{r.bytes_per_s / 1e9:.3g}", _percent(r.bytes_fraction),
        nearer, _percent(r.ratio), known.label] + launches


def _launch_cells(row: dict) -> list[str]:
    """``kernels/it`` (work-doing instructions of the compiled step, each a
    kernel launch on a GPU) and ``µs/kernel`` (the measured time per
    iteration over them: a few µs means launches bound the step)."""
    n, ms = row.get("kernels"), row.get("jinvert_ms")
    if not n:
        return ["n/a", "n/a"]
    return [str(n), "n/a" if ms is None else f"{1e3 * ms / n:.3g}"]


#: What the roofline table's figures mean, printed under it.
ROOFLINE_NOTE = (
    "roofline of jinvert's step: XLA's cost analysis of one iteration (value and gradient "
    "of eq. 3 for all samples, and the optimiser's update; FLOPs, and bytes accessed after "
    "fusion, caches ignored) over jinvert ms/it; nearer roof: memory where FLOP/B is below "
    "the ridge point (peak FLOP/s / peak bytes/s), else compute; roofline % = achieved "
    "FLOP/s / min(peak FLOP/s, FLOP/B x peak bytes/s), the larger of the two % of peak; "
    "peaks from the device's datasheet (FP32 for float32 products, TF32 tensor for the "
    "networks at --precision default on a GPU) unless --peak-tflops/--peak-gbps give them; "
    "kernels/it: the instructions of the compiled step that do work (fusions, library "
    "calls, unfused ops: each at least one launch on a GPU); µs/kernel: ms/it over them, "
    "where a few µs (a launch's cost) means launches, not FLOPs or bytes, bound the step")


def roofline_table(rows: list[dict], peak_tflops=None, peak_gbps=None) -> list[str]:
    """The roofline of each row's jinvert step (:func:`roofline_cells`)."""
    return _markdown_table(ROOFLINE_COLUMNS,
                           [roofline_cells(r, peak_tflops, peak_gbps) for r in rows])


def targets(rows: list[dict], codes_batches: list[dict]) -> list[str]:
    """Issue 14's targets, read off the rows (on a GPU they are what counts),
    and the time of Table 1's work (one line per iterations per call)."""
    out = []
    default = [r for r in rows if r.get("per_call") == rows[0].get("per_call")] if rows else []
    hog = {r["samples"]: r for r in default
           if r["rep"] == "hog" and r.get("call_s") is not None}
    if 1 in hog:
        one = hog[1]
        verdict = ("met" if one["call_s"] <= 0.1 else "not met") \
            if one["call_iterations"] == 800 else "it is for 800 iterations"
        out.append(f"HOG one call of {one['call_iterations']} iterations, samples=1: "
                   f"{one['call_s']:.3f} s (target <= 0.1 s on a GPU: {verdict})")
        if 64 in hog:
            ratio = hog[64]["call_s"] / one["call_s"]
            out.append(f"HOG samples=64 / samples=1 call time: {ratio:.2f}x (target <= 2x: "
                       f"{'met' if ratio <= 2 else 'not met'})")
    for codes in codes_batches:
        at = "" if codes.get("per_call") is None else f", {codes['per_call']} its/call"
        if codes.get("call_s") is not None:
            out.append(f"HOG, {codes['codes']} codes at once (Table 1's work){at}, one call "
                       f"of {codes['call_iterations']} iterations: {codes['call_s']:.2f} s "
                       f"(compile {codes['compile_s']:.1f} s, jax peak "
                       f"{_number(codes, 'jax_peak_mib')} MiB)")
        else:
            out.append(f"HOG, {codes['codes']} codes at once{at}: n/a "
                       f"({codes.get('error', '?')})")
    alex = [r for r in rows if r["rep"].startswith("alexnet") and r.get("jinvert_ms")]
    for label, goal in (("eager", 5.0), ("compiled", 1.5)):
        ratios = [(r[f"{label}_ms"] / r["jinvert_ms"], r) for r in alex if r.get(f"{label}_ms")]
        if ratios:
            worst, row = min(ratios, key=lambda x: x[0])
            meeting = sum(x >= goal for x, _ in ratios)
            out.append(f"AlexNet {label}/jinvert: worst {worst:.2f}x ({row['rep']}, samples "
                       f"{row['samples']}); target >= {goal}x met in {meeting} of "
                       f"{len(ratios)} rows")
    return out


def unmeasured(rows: list[dict]) -> int:
    """How many rows lack a measurement that a later run could make: cut by
    the time limit, or by a child process that failed (a measurement's own
    error, such as out of memory, is a result)."""
    cut = ("--time-limit reached", "its process failed")
    return sum(any(str(r.get(k) or "").startswith(cut)
                   for k in ("jinvert_error", "eager_error", "compiled_error")) for r in rows)


def report(lines: list[str], rows: list[dict], codes_batches: list[dict], args,
           seconds: float) -> tuple[str, str]:
    """``(printed, markdown)``: the body below the header as printed, and
    the whole report (``lines``, the header, included) as Markdown."""
    main = table(rows, per_call_column=len(args.per_call_values) > 1)
    roof = roofline_table(rows, args.peak_tflops, args.peak_gbps)
    notes = [*targets(rows, codes_batches), f"total wall time {seconds:.0f} s"]
    left = unmeasured(rows)
    if left:
        notes.append(f"{left} row(s) not measured (the time limit, or a failed process)"
                     + ("; run again with the same --state to resume" if args.state else ""))
    elif args.state:
        notes.append(f"nothing left to measure in {args.state}")
    printed = "\n".join([*main, "", *roof, ROOFLINE_NOTE, "", *notes])
    markdown = ("  \n".join(lines) + "\n\n" + "\n".join(main) + "\n\n" + "\n".join(roof)
                + "\n\n" + ROOFLINE_NOTE + "\n\n" + "  \n".join(notes) + "\n")
    return printed, markdown
