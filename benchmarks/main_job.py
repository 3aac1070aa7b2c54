"""README's main job as a user meets it: the first run and the rerun, back to back.

    python benchmarks/main_job.py [--trials 3] [--iterations 20] [--out OUT.md]
    python benchmarks/main_job.py --iterations 0        # the default job (paper's iterations)

Each trial runs ``jinvert invert --rep hog --iterations N`` (``N = 0``: the
command's own default) twice as separate processes with a fresh, empty
compilation cache (``JINVERT_CACHE_DIR`` in a new temporary folder): the
first run compiles and fills it, the rerun loads what it can. Both are timed
whole, from the process's start to its exit (Python's start, imports, the
photo's code, the inversion, the picture). The table gives every trial, the
medians and the ratio rerun / first (issue 28's target: at most 0.45 for
``--iterations 20``).

Below the table, what importing costs, since a rerun is mostly imports:
``--imports`` (default ``ml_dtypes,jax,jinvert.cli``) are each imported in a
fresh process, three times, and the median seconds of the import statement
alone are printed with each module's version (``ml_dtypes`` 0.7.0 took 1.4 s
here, 0.6.0 0.01 s: the reason for pyproject's ``ml_dtypes<0.7``).

``--command`` replaces the timed command (a shell-quoted string, run with the
fresh cache in ``JINVERT_CACHE_DIR``), for the test of this script.
"""

from __future__ import annotations

import argparse
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")

#: Issue 28's target for ``--iterations 20``: rerun at most this share of the first run.
TARGET_RATIO = 0.45


def jinvert_command(iterations: int, out: str) -> list[str]:
    """The timed command: README's main job, ``--iterations`` when ``iterations > 0``."""
    command = [sys.executable, "-m", "jinvert.cli", "invert", "--rep", "hog", "--out", out]
    return command + (["--iterations", str(iterations)] if iterations > 0 else [])


def timed(command: list[str], cache: str) -> float:
    """Wall seconds of one process of ``command`` with ``JINVERT_CACHE_DIR=cache``."""
    env = dict(os.environ, JINVERT_CACHE_DIR=cache)
    start = time.perf_counter()
    proc = subprocess.run(command, env=env, cwd=ROOT, capture_output=True, text=True)
    seconds = time.perf_counter() - start
    if proc.returncode:
        raise SystemExit(f"{shlex.join(command)} failed (exit {proc.returncode}):\n"
                         f"{proc.stderr[-2000:]}")
    return seconds


def cpu_times() -> tuple[int, int] | None:
    """``(steal, total)`` jiffies of all CPUs from Linux's /proc/stat (None
    elsewhere): time a virtual machine's CPUs were ready but given to
    another guest, which slows every trial alike and explains noisy ones."""
    try:
        with open("/proc/stat", encoding="ascii") as f:
            fields = [int(v) for v in f.readline().split()[1:]]
    except (OSError, ValueError):
        return None
    # user nice system idle iowait irq softirq steal [guest guest_nice]: guest
    # time is already counted in user and nice.
    return fields[7] if len(fields) > 7 else 0, sum(fields[:8])


def stolen_share(before, after) -> float | None:
    """Share of the CPUs' time stolen between two ``cpu_times()``."""
    if before is None or after is None or after[1] <= before[1]:
        return None
    return (after[0] - before[0]) / (after[1] - before[1])


def trial(command_for) -> tuple[float, float]:
    """``(first, rerun)`` seconds: two runs of ``command_for(folder)`` on one
    fresh compilation cache in a new temporary folder."""
    with tempfile.TemporaryDirectory() as folder:
        cache = os.path.join(folder, "cache")
        return timed(command_for(folder), cache), timed(command_for(folder), cache)


_IMPORT_TIMER = ("import importlib.metadata as m, sys, time; t = time.perf_counter(); "
                 "import {module}; s = time.perf_counter() - t; top = '{module}'.split('.')[0]\n"
                 "try: v = m.version(top)\nexcept m.PackageNotFoundError: v = 'no version'\n"
                 "print(s, v)")


def import_seconds(module: str, repeats: int = 3) -> tuple[float, str]:
    """``(median seconds, version)`` of ``import module`` alone (not Python's
    start), each repeat in a fresh process with this interpreter."""
    seconds, version = [], ""
    for _ in range(repeats):
        proc = subprocess.run([sys.executable, "-c", _IMPORT_TIMER.format(module=module)],
                              cwd=ROOT, capture_output=True, text=True, check=True)
        first, version = proc.stdout.split(maxsplit=1)
        seconds.append(float(first))
    return statistics.median(seconds), version.strip()


def imports_line(modules: list[str], repeats: int = 3) -> str:
    """One line: each module's median import seconds over ``repeats`` and version."""
    parts = []
    for module in modules:
        seconds, version = import_seconds(module, repeats)
        parts.append(f"`import {module}` {seconds:.2f} s ({version})")
    return (f"importing, each alone in a fresh process (median of {repeats}): "
            + ", ".join(parts)
            + "; a module's time includes what it imports")


def table(trials: list[tuple[float, float]], label: str) -> str:
    """Markdown: one row per trial, then the medians; ratio = rerun / first."""
    rows = [f"| {label} | first run, s | rerun, s | rerun / first |", "|---|---:|---:|---:|"]
    for i, (first, rerun) in enumerate(trials, 1):
        rows.append(f"| trial {i} | {first:.2f} | {rerun:.2f} | {rerun / first:.2f} |")
    first = statistics.median(t[0] for t in trials)
    rerun = statistics.median(t[1] for t in trials)
    rows.append(f"| **median** | **{first:.2f}** | **{rerun:.2f}** | **{rerun / first:.2f}** |")
    return "\n".join(rows)


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--trials", type=int, default=3)
    parser.add_argument("--iterations", type=int, default=20,
                        help="0: the command's default (the paper's schedule)")
    parser.add_argument("--command", help="time this command instead (see the module's doc)")
    parser.add_argument("--out", help="also write the table (Markdown) here")
    parser.add_argument("--imports", default="ml_dtypes,jax,jinvert.cli",
                        help="modules whose import seconds are printed (comma-separated; "
                             "empty: none)")
    args = parser.parse_args(argv)
    if args.trials < 1 or args.iterations < 0:
        parser.error("need --trials >= 1 and --iterations >= 0")

    if args.command:
        label = args.command
        def command_for(folder):
            return shlex.split(args.command)
    else:
        label = "jinvert invert --rep hog" + (f" --iterations {args.iterations}"
                                              if args.iterations else "")
        def command_for(folder):
            return jinvert_command(args.iterations, os.path.join(folder, "hog.png"))

    trials = []
    before = cpu_times()
    for i in range(args.trials):
        trials.append(trial(command_for))
        print(f"trial {i + 1}: first {trials[-1][0]:.2f} s, rerun {trials[-1][1]:.2f} s",
              file=sys.stderr)
    text = (table(trials, label) + "\n\n"
            f"{args.trials} trial(s), each on a fresh compilation cache; {platform.machine()}, "
            f"{os.cpu_count()} CPU(s); whole processes; target for --iterations 20: "
            f"rerun / first <= {TARGET_RATIO}\n")
    stolen = stolen_share(before, cpu_times())
    if stolen is not None:
        text += (f"\nCPU time stolen by the hypervisor during the trials: {100 * stolen:.0f} % "
                 "(/proc/stat; a busy host slows some trials more than others)\n")
    modules = [m for m in args.imports.split(",") if m]
    if modules:
        text += "\n" + imports_line(modules) + "\n"
    print(text)
    if args.out:
        with open(args.out, "w") as f:
            f.write(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
