"""The parent side of ``benchmarks/gpu.py``: it runs each measurement in a
child process of its own (``gpu.py --child NAME --framework F``), reads the
``ROW``/``CODES``/``PARITY`` lines the child prints, stops it at the time
limit, and merges the rows of jinvert's and PyTorch's children; what is
already in the run's state (``gpu_state.State``) is not measured again.

Per representation, a process for jinvert, then one for PyTorch: no process
holds both frameworks on the GPU, whose CUDA libraries need not agree, and
JAX's peak memory is its own. Only the parity check of the header runs
both on the device, in a process of its own.
"""

from __future__ import annotations

import json
import os
import queue
import subprocess
import sys
import threading
import time

GPU_PY = os.path.join(os.path.dirname(os.path.abspath(__file__)), "gpu.py")
TIME_LIMIT = "--time-limit reached"


def child_lines(args, device: str, child: str, framework: str, deadline: float, *,
                samples=None, per_call=None):
    """Run ``gpu.py --child CHILD --framework FRAMEWORK`` (for ``samples`` and
    ``per_call`` values, default all of ``args``'); yield its
    ``ROW``/``PARITY``/``CODES`` lines as they come (others go to stderr),
    then ``("EXIT", status)``. Killed 30 s past ``deadline``."""
    samples = args.sample_counts if samples is None else samples
    per_call = args.per_call_values if per_call is None else per_call
    command = [sys.executable, GPU_PY, "--child", child,
               "--framework", framework, "--device", device,
               "--samples", ",".join(map(str, samples)),
               "--iterations", str(args.iterations), "--repeats", str(args.repeats),
               "--size", str(args.size), "--precision", args.precision,
               "--compile-mode", args.compile_mode, "--table1", str(args.table1)]
    if args.torch_threads:
        command += ["--torch-threads", str(args.torch_threads)]
    if args.call_iterations is not None:
        command += ["--call-iterations", str(args.call_iterations)]
    if per_call != [None]:
        command += ["--iterations-per-call", ",".join(map(str, per_call))]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()

    def read(stream=process.stdout):  # on a thread, so that the wait can time out
        for line in stream:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while True:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            if process.poll() is not None and not reader.is_alive() and lines.empty():
                break
            if time.monotonic() > deadline + 30:
                process.kill()
                break
            continue
        if line.startswith(("ROW ", "PARITY ", "CODES ")):
            yield line.rstrip("\n")
        else:
            sys.stderr.write(line)
    yield ("EXIT", process.wait())


def parity_line(args, device: str, deadline: float, state) -> str:
    """The parity of the shallow codes, from the state or from its own
    child process (stored in the state when the check ran)."""
    if args.framework == "jinvert":
        return "n/a (--framework jinvert)"
    stored = state.get(kind="parity")
    if stored is not None:
        return stored["line"]
    for item in child_lines(args, device, "parity", "both", deadline):
        if isinstance(item, str):
            line = item[len("PARITY "):]
            state.put({"line": line}, kind="parity")
            return line
        return f"n/a (the check's process failed, exit {item[1]})"
    return "n/a"


def _error_keys(framework: str) -> tuple[str, ...]:
    return ("jinvert_error",) if framework == "jinvert" else ("eager_error", "compiled_error")


def _merge(merged: dict, framework: str, row: dict) -> None:
    """Put a child's ``row`` into the merged rows ``{(samples, per_call):
    row}``: a jinvert row into its own, a PyTorch row (which no
    ``per_call`` changes) into every row of its sample count."""
    row = dict(row)
    if framework != "jinvert":
        row.pop("per_call", None)
    if "error" in row:  # the representation itself failed
        row.update(dict.fromkeys(_error_keys(framework), row.pop("error")))
    for (samples, per_call), target in merged.items():
        if samples == row["samples"] and (framework != "jinvert"
                                          or per_call == row.get("per_call")):
            target.update(row)


def run_children(args, device: str, deadline: float, state) -> tuple[list[dict], list[dict]]:
    """Per representation, a process for jinvert, then one for PyTorch,
    each for what ``state`` lacks; every result they report goes into
    ``state`` as it comes.

    Returns the rows merged per (sample count, iterations per call), in
    order, and the HOG calls on many codes at once
    (``gpu_jinvert.measure_codes_batch``), one per iterations per call
    (empty if they did not run)."""
    ks, rows = args.per_call_values, []
    for name in args.rep_names:
        merged = {(s, k): {"rep": name, "samples": s, "per_call": k}
                  for s in args.sample_counts for k in ks}
        for framework in (("jinvert", "torch") if args.framework == "both"
                          else (args.framework,)):
            keys = [(s, k) for s in args.sample_counts
                    for k in (ks if framework == "jinvert" else [None])]
            todo, reused = [], 0
            for s, k in keys:
                stored = state.get(kind="row", rep=name, framework=framework, samples=s,
                                   per_call=k)
                if stored is None:
                    todo.append((s, k))
                else:
                    _merge(merged, framework, stored)
                    reused += 1
            codes_todo = ([k for k in ks if state.get(kind="codes", per_call=k) is None]
                          if (framework, name) == ("jinvert", "hog") and args.table1 else [])
            if reused:
                print(f"gpu.py: {name} {framework}: {reused} row(s) from the state file",
                      file=sys.stderr, flush=True)
            if not todo and not codes_todo:
                continue
            if time.monotonic() > deadline:
                for s, k in todo:
                    _merge(merged, framework, {"samples": s, "per_call": k, "error": TIME_LIMIT})
                continue
            samples = sorted({s for s, _ in todo}) or args.sample_counts[:1]
            per_call = ([k for k in ks if any(k == t for _, t in todo) or k in codes_todo]
                        if framework == "jinvert" else [None])
            started, status, seen = time.monotonic(), 0, set()
            for item in child_lines(args, device, name, framework, deadline, samples=samples,
                                    per_call=per_call):
                if isinstance(item, tuple):
                    status = item[1]
                    continue
                if item.startswith("CODES "):
                    extra = json.loads(item[len("CODES "):])
                    state.put(extra, kind="codes", per_call=extra.get("per_call"))
                    continue
                row = json.loads(item[len("ROW "):])
                k = row.get("per_call") if framework == "jinvert" else None
                seen.add((row["samples"], k))
                if "error" not in row:  # (a failure of the whole representation is retried)
                    state.put(row, kind="row", rep=name, framework=framework,
                              samples=row["samples"], per_call=k)
                _merge(merged, framework, row)
                at = f" per_call={k}" if len(ks) > 1 and framework == "jinvert" else ""
                print(f"gpu.py: {name} {framework} samples={row['samples']}{at} done "
                      f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
            reason = TIME_LIMIT if status < 0 else f"its process failed (exit {status})"
            for s, k in set(todo) - seen:
                _merge(merged, framework, {"samples": s, "per_call": k, "error": reason})
        rows += [merged[(s, k)] for s in args.sample_counts for k in ks]
    codes = [state.get(kind="codes", per_call=k) for k in ks]
    return rows, [c for c in codes if c is not None]
