"""Images per second of ``jinvert invert DIR`` on this machine, at 1, 2, … processes.

    python benchmarks/folder.py --images DIR [--processes 1 2] [--iterations 20]
        [--max-size 64 | --size H W] [--batch 4] [--rep hog] [--cache none|warm] [--out OUT]

For each process count P it starts P copies of the command on this host (P
= 1: no distributed runtime; P > 1: ``jax.distributed`` on a free local
port, ``JAX_PLATFORMS`` left as it is), into a fresh output folder, and
times them from the start of the first to the end of the last (imports,
compilation, inversion, the summary: all of it). Then it checks that every
P gave the same arrays, bit for bit, as the first, and prints a table.

``--cache none`` (the default) runs every process without the persistent
compilation cache, so each one compiles its sizes; ``--cache warm`` first
fills a cache with a one-process run (untimed) and times the runs with it.
"""

from __future__ import annotations

import argparse
import os
import platform
import socket
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
sys.path.insert(0, ROOT)

import numpy as np  # noqa: E402


def _port() -> int:
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def run(images: str, out: str, processes: int, options: list[str], cache: str) -> float:
    """Seconds for ``processes`` copies of ``jinvert invert images`` to finish."""
    env = dict(os.environ, JINVERT_CACHE_DIR=cache,
               PYTHONPATH=os.pathsep.join([ROOT, os.environ.get("PYTHONPATH", "")]))
    command = [sys.executable, "-m", "jinvert.cli", "invert", images, "--out", out, *options]
    port = _port()
    start = time.perf_counter()
    procs = []
    for i in range(processes):
        extra = ([] if processes == 1 else
                 ["--coordinator", f"localhost:{port}", "--num-processes", str(processes),
                  "--process-id", str(i)])
        log = open(os.path.join(os.path.dirname(out), f"{os.path.basename(out)}-{i}.log"), "w")
        procs.append((subprocess.Popen(command + extra, env=env, cwd=ROOT, stdout=log,
                                       stderr=subprocess.STDOUT), log))
    for proc, log in procs:
        proc.wait()
        log.close()
        if proc.returncode:
            raise SystemExit(f"a process failed (exit {proc.returncode}); see {log.name}")
    return time.perf_counter() - start


def same_arrays(a: str, b: str) -> int:
    """The number of images whose .npz are equal, bit for bit, in stores a
    and b (raises if one differs or is missing)."""
    count = 0
    root = os.path.join(a, "store", "arrays")
    for folder, _, files in os.walk(root):
        for name in files:
            rel = os.path.relpath(os.path.join(folder, name), root)
            with np.load(os.path.join(root, rel)) as x, \
                    np.load(os.path.join(b, "store", "arrays", rel)) as y:
                for k in x.files:
                    if not np.array_equal(x[k], y[k]):
                        raise SystemExit(f"{rel}: {k} differs between {a} and {b}")
            count += 1
    return count


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", required=True, metavar="DIR")
    parser.add_argument("--processes", type=int, nargs="+", default=[1, 2])
    parser.add_argument("--rep", default="hog")
    parser.add_argument("--iterations", type=int, default=20)
    parser.add_argument("--max-size", type=int, default=64)
    parser.add_argument("--size", type=int, nargs=2, metavar=("H", "W"),
                        help="every image scaled and cropped to H x W (one size) instead")
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--cache", choices=("none", "warm"), default="none")
    parser.add_argument("--out", metavar="DIR", help="where the runs go (default: a temporary "
                                                      "folder)")
    args = parser.parse_args(argv)
    out = args.out or tempfile.mkdtemp(prefix="jinvert-folder-")
    os.makedirs(out, exist_ok=True)
    options = ["--rep", args.rep, "--iterations", str(args.iterations), "--batch", str(args.batch)]
    options += (["--size", *map(str, args.size)] if args.size else
                ["--max-size", str(args.max_size)])
    cache = ""
    if args.cache == "warm":
        cache = os.path.join(out, "cache")
        run(args.images, os.path.join(out, "warm-up"), 1, options, cache)
    import jax

    import jinvert
    from jinvert import folder_plan
    from jinvert.registry import resolve_representation

    plan = folder_plan.make_plan(args.images, resolve_representation(args.rep),
                                 batch=args.batch, max_size=args.max_size, size=args.size)
    rows = []
    for p in args.processes:
        target = os.path.join(out, f"p{p}")
        seconds = run(args.images, target, p, options, cache)
        checked = same_arrays(os.path.join(out, f"p{args.processes[0]}"), target)
        rows.append((p, seconds, checked))
        print(f"{p} process(es): {len(plan.items)} images in {seconds:.1f} s "
              f"({len(plan.items) / seconds:.3f} images/s)", flush=True)
    print(f"\n{len(plan.items)} images of {args.images}, {len(plan.groups())} sizes, "
          f"{args.rep}, {args.iterations} iterations, "
          f"{'--size %d %d' % tuple(args.size) if args.size else '--max-size %d' % args.max_size}, "
          f"--batch {args.batch}, compilation cache: {args.cache}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPU cores, "
          f"JAX {jax.__version__}, jinvert from {os.path.dirname(jinvert.__file__)}\n")
    print("| processes | seconds (wall, all of it) | images/s | arrays equal to the first |")
    print("|---|---|---|---|")
    for p, seconds, checked in rows:
        print(f"| {p} | {seconds:.1f} | {len(plan.items) / seconds:.3f} | {checked} bit for bit |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
