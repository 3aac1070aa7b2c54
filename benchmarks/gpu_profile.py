"""Where a jinvert step's time goes on a device: a ``jax.profiler`` trace of
one ``invert`` call, summed by kernel.

    python benchmarks/gpu_profile.py [--reps hog,alexnet:conv3] [--samples 1,64]
                                     [--iterations 200] [--precision default]
                                     [--keep DIR] [--out profile.md]

For each representation (``benchmarks/gpu_cases.py``'s, on the bundled
photo) and number of samples, one ``jinvert.invert`` call of
``--iterations`` (compiled by a first call) runs under
``jax.profiler.trace(create_perfetto_trace=True)``; the Perfetto trace
(JSON) is read back and summarised (:func:`summarise`):

* wall: the call's time on the host;
* busy %: the part of the call during which the device ran a kernel (the
  union of its kernels' intervals over the trace's span); a device busy
  well under 100 % waits on the host (launches, dispatch, transfers);
* kernels: launches on the device during the call, per iteration, and their
  mean duration; a mean of a few microseconds means the step is many small
  kernels (launch-bound) rather than a few large ones;
* the kernels that take the most device time, with their share.

The device's events are the trace's processes named ``/device:...`` (a GPU
gives one per stream); on a CPU there are none and the table says so (the
host's XLA work is then on ``/host:CPU``'s threads, summarised instead).
``--keep DIR`` keeps the traces (open them in https://ui.perfetto.dev).
"""

from __future__ import annotations

import argparse
import glob
import gzip
import json
import os
import sys
import tempfile
import time
from collections import defaultdict

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)


def _union_us(intervals: list[tuple[float, float]]) -> float:
    """Total length of the union of ``(start, end)`` intervals."""
    total, end = 0.0, float("-inf")
    for a, b in sorted(intervals):
        if a > end:
            total += b - a
            end = b
        elif b > end:
            total += b - end
            end = b
    return total


def summarise(trace: dict | list, top: int = 8) -> dict:
    """Summary of a Perfetto/Chrome trace (``traceEvents`` of complete
    events, ``"ph": "X"``, times in µs): the device processes'
    (``/device:...``) kernels, or the host's events where there is no
    device. Returns ``{"where", "span_us", "busy_us", "kernels",
    "kernel_us", "top": [(name, count, total_us)]}``."""
    events = trace["traceEvents"] if isinstance(trace, dict) else trace
    names = {e["pid"]: e["args"]["name"] for e in events
             if e.get("ph") == "M" and e.get("name") == "process_name"}
    complete = [e for e in events if e.get("ph") == "X" and "dur" in e]
    device = [e for e in complete if names.get(e.get("pid"), "").startswith("/device:")]
    chosen, where = (device, "device") if device else (complete, "host (no device events)")
    if not chosen:
        return {"where": where, "span_us": 0.0, "busy_us": 0.0, "kernels": 0,
                "kernel_us": 0.0, "top": []}
    intervals = [(float(e["ts"]), float(e["ts"]) + float(e["dur"])) for e in chosen]
    by_name: dict[str, list[float]] = defaultdict(list)
    for e in chosen:
        by_name[e["name"]].append(float(e["dur"]))
    ranked = sorted(((n, len(d), sum(d)) for n, d in by_name.items()), key=lambda r: -r[2])
    return {"where": where,
            "span_us": max(b for _, b in intervals) - min(a for a, _ in intervals),
            "busy_us": _union_us(intervals), "kernels": len(chosen),
            "kernel_us": sum(float(e["dur"]) for e in chosen), "top": ranked[:top]}


def read_trace(log_dir: str) -> dict:
    """The Perfetto trace ``jax.profiler.trace`` wrote under ``log_dir``."""
    paths = sorted(glob.glob(os.path.join(log_dir, "**", "perfetto_trace.json.gz"),
                             recursive=True))
    if not paths:
        raise FileNotFoundError(f"no perfetto_trace.json.gz under {log_dir}")
    with gzip.open(paths[-1], "rt", encoding="utf-8") as f:
        return json.load(f)


def profile_call(rep, code, shape, *, samples: int, iterations: int, log_dir: str) -> tuple:
    """Wall seconds of one compiled ``invert`` call of ``iterations`` under
    the profiler, and its :func:`summarise`."""
    import jax

    from jinvert import Loop, invert

    config = rep.defaults.with_iterations(iterations)

    def call():
        r = invert(rep, code, shape=shape, key=jax.random.PRNGKey(1), samples=samples,
                   config=config, loop=Loop(progress=False))
        jax.block_until_ready(r.images)

    call()                                   # compiles
    with jax.profiler.trace(log_dir, create_perfetto_trace=True):
        start = time.perf_counter()
        call()
        wall = time.perf_counter() - start
    return wall, summarise(read_trace(log_dir))


def table(rows: list[dict]) -> str:
    """Markdown of the profiled calls, then each call's top kernels."""
    text = ("| representation | samples | iterations | wall s | events of | busy % "
            "| kernels/it | mean µs/kernel |\n|---|---|---|---|---|---|---|---|\n")
    for r in rows:
        s = r["summary"]
        cells = ["n/a"] * 3                  # the host's events nest: no kernels to count
        if s["where"] == "device" and s["kernels"]:
            cells = [f"{100 * s['busy_us'] / (1e6 * r['wall_s']):.3g}",
                     f"{s['kernels'] / r['iterations']:.3g}",
                     f"{s['kernel_us'] / s['kernels']:.3g}"]
        text += (f"| {r['rep']} | {r['samples']} | {r['iterations']} | {r['wall_s']:.3g} "
                 f"| {s['where']} | " + " | ".join(cells) + " |\n")
    for r in rows:
        total = r["summary"]["kernel_us"] or 1.0
        text += (f"\n{r['rep']}, {r['samples']} sample(s), the most time-consuming "
                 f"{r['summary']['where']} events:\n\n| event | count | total µs | share % |\n"
                 "|---|---|---|---|\n")
        for name, count, us in r["summary"]["top"]:
            text += f"| `{name[:80]}` | {count} | {us:.4g} | {100 * us / total:.3g} |\n"
    return text


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", default="hog,alexnet:conv3")
    parser.add_argument("--samples", default="1,64")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--size", type=int, default=227, help="HOG/DSIFT image side")
    parser.add_argument("--precision", choices=("default", "highest"), default="default")
    parser.add_argument("--keep", metavar="DIR", help="keep the traces here")
    parser.add_argument("--out", metavar="FILE", help="also write the Markdown here")
    args = parser.parse_args(argv)
    if args.iterations < 1:
        parser.error("--iterations must be positive")
    import jax
    from gpu_cases import build_case

    rows = []
    for name in [r.strip() for r in args.reps.split(",") if r.strip()]:
        case = build_case(name, args.size, args.precision)
        code = case.rep(jax.device_put(case.x0))
        for samples in [int(s) for s in args.samples.split(",")]:
            folder = (os.path.join(args.keep, f"{name.replace(':', '-')}-{samples}")
                      if args.keep else tempfile.mkdtemp(prefix="jinvert-profile-"))
            wall, summary = profile_call(case.rep, code, case.x0.shape, samples=samples,
                                         iterations=args.iterations, log_dir=folder)
            rows.append({"rep": name, "samples": samples, "iterations": args.iterations,
                         "wall_s": wall, "summary": summary})
            print(f"{name} x{samples}: {wall:.3g} s, {summary['kernels']} {summary['where']} "
                  f"events", file=sys.stderr, flush=True)
    dev = jax.devices()[0]
    text = (f"Device: {dev.platform} ({dev.device_kind}), JAX {jax.__version__}, precision "
            f"{args.precision}; command: `python benchmarks/gpu_profile.py "
            + " ".join(sys.argv[1:] if argv is None else argv) + "`\n\n" + table(rows))
    print(text)
    if args.out:
        with open(args.out, "w", encoding="utf-8") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
