"""One job over many processes: JAX's distributed runtime for runs over image sets.

jinvert's multi-process runs (``jinvert invert DIR`` and ``jinvert reproduce
table1|table3``, started once per process, on one host or many) share no
arrays between processes. Each process inverts its share of the images on
its own (local) devices and writes its own shard of a store on a filesystem
that every process sees; process 0 assembles the tables once every shard is
complete. What they need of the runtime is here:

* :func:`initialize` — ``jax.distributed.initialize``; with no address JAX
  finds the processes itself on SLURM, Open MPI and Cloud TPU.
  :func:`add_arguments` and :func:`initialize_from_args` are the command
  line's side of it.
* :func:`process` — ``(index, count)`` of this process.
* :func:`assign` — which process runs which piece of work: the same answer
  on every process and every restart with the same process count (nothing is
  sent between them), balancing an estimate of each one's time and keeping
  a compiled program's pieces together.
* :func:`shard_name`, :func:`finish_share` (:func:`mark_done`,
  :func:`wait_for_all`) — the files of one process's share, and the wait
  for every share.

Why files and not a collective barrier
(``jax.experimental.multihost_utils.sync_global_devices``): shares end
minutes or hours apart, and with JAX 0.10.2 a process that waits in a CPU
collective (gloo) gives up after 30 s, and the runtime's shutdown barrier
after ``shutdown_timeout_seconds`` (default 300 s) ends every process, the
ones still working included (both measured here). So a process that has
finished its share writes a marker file, and each process waits for every
marker before it goes on or exits. A process that dies is not waited for
forever: the runtime's heartbeat ends the others.
"""

from __future__ import annotations

import argparse
import hashlib
import math
import os
import time
from typing import Callable, Hashable, Sequence

#: How long a process that has finished may wait in JAX's shutdown barrier
#: for the others (seconds): process 0 may still be writing the tables.
SHUTDOWN_TIMEOUT_S = 3600

#: Seconds between two looks for the other processes' markers.
POLL_S = 0.5


def process() -> tuple[int, int]:
    """``(jax.process_index(), jax.process_count())``: ``(0, 1)`` without
    the distributed runtime."""
    import jax

    return jax.process_index(), jax.process_count()


def initialize(coordinator: str | None = None, num_processes: int | None = None,
               process_id: int | None = None) -> tuple[int, int]:
    """Join JAX's distributed runtime (``jax.distributed.initialize``) and
    return :func:`process`. Call it before any JAX computation.

    Args:
      coordinator: ``"host:port"`` of process 0 (its service listens there);
        None: found by JAX on SLURM, Open MPI (``mpirun``) and Cloud TPU.
      num_processes, process_id: the number of processes and this one's
        index in ``[0, num_processes)``; None: found by JAX likewise.

    Every process's devices start at once (JAX gives the processes two
    minutes to exchange them), and an early finisher waits
    :data:`SHUTDOWN_TIMEOUT_S` at exit for the others.
    """
    import jax

    if not jax.distributed.is_initialized():
        try:
            jax.distributed.initialize(coordinator_address=coordinator,
                                       num_processes=num_processes, process_id=process_id,
                                       shutdown_timeout_seconds=SHUTDOWN_TIMEOUT_S)
        except (ValueError, RuntimeError) as err:
            raise ValueError(f"cannot start JAX's distributed runtime: {err} (outside "
                             f"SLURM, Open MPI and Cloud TPU give --coordinator HOST:PORT, "
                             f"--num-processes N and --process-id I)") from None
    jax.devices()
    return process()


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """The options of a run over several processes: ``--distributed``,
    ``--coordinator``, ``--num-processes``, ``--process-id``."""
    group = parser.add_argument_group("several processes (JAX's distributed runtime)")
    group.add_argument("--distributed", action="store_true",
                       help="be one of several processes, each started with the same "
                            "command and an --out that all of them see: "
                            "jax.distributed.initialize() finds the others on SLURM, Open "
                            "MPI and Cloud TPU; elsewhere give the three options below")
    group.add_argument("--coordinator", metavar="HOST:PORT",
                       help="address of process 0 (it listens on PORT)")
    group.add_argument("--num-processes", type=int, metavar="N",
                       help="number of processes")
    group.add_argument("--process-id", type=int, metavar="I",
                       help="this process's index, 0 to N-1")


def requested(args) -> bool:
    """Whether ``args`` ask for the distributed runtime."""
    return bool(getattr(args, "distributed", False) or getattr(args, "coordinator", None)
                or getattr(args, "num_processes", None) is not None
                or getattr(args, "process_id", None) is not None)


def initialize_from_args(args) -> tuple[int, int]:
    """:func:`initialize` from the options of :func:`add_arguments` when
    they ask for it; ``(0, 1)`` (nothing started) when they do not."""
    if not requested(args):
        return 0, 1
    count, index = args.num_processes, args.process_id
    if count is not None and count < 1:
        raise ValueError(f"--num-processes must be 1 or more, got {count}")
    if index is not None and not (0 <= index < (count or index + 1)):
        raise ValueError(f"--process-id must be in 0..{(count or 1) - 1}, got {index}")
    if count == 1:
        return 0, 1
    return initialize(args.coordinator, count, index)


def assign(costs: Sequence[float], groups: Sequence[Hashable], count: int, *,
           setup_cost: float = 0.0) -> list[int]:
    """Which process runs each piece of work: a list of indices in
    ``[0, count)``, one per piece.

    A group (pieces that share a compiled program, which each process
    compiles for itself at ``setup_cost``) stays on one process unless it is
    more than a fair share (the total, setups included, over ``count``):
    then it is cut, in order, into as many runs of about equal cost as fair
    shares it holds. The runs go longest first (then by their first piece)
    to the process with the least work so far (then the lowest index).
    Deterministic: every process computes the same answer, with no word
    between them.

    Args:
      costs: estimated seconds of each piece.
      groups: each piece's group (any hashable), pieces of a group in order.
      count: the number of processes.
      setup_cost: estimated seconds to start a group (compiling).
    """
    if len(costs) != len(groups):
        raise ValueError(f"got {len(costs)} costs for {len(groups)} groups")
    members: dict = {}
    for i, g in enumerate(groups):
        members.setdefault(g, []).append(i)
    fair = (sum(costs) + setup_cost * len(members)) / count
    runs = []  # (cost, pieces)
    for pieces in members.values():
        work = sum(costs[i] for i in pieces)
        parts = min(len(pieces), count,
                    max(1, math.ceil((work + setup_cost) / fair - 1e-9)) if fair > 0 else 1)
        cut: list[list[int]] = [[] for _ in range(parts)]
        before = 0.0
        for i in pieces:  # each piece to the part its cost's midpoint falls in
            middle = before + costs[i] / 2
            cut[min(parts - 1, int(middle * parts / work)) if work > 0 else 0].append(i)
            before += costs[i]
        runs += [(setup_cost + sum(costs[i] for i in run), run) for run in cut if run]
    load = [0.0] * count
    owner = [0] * len(costs)
    for cost, run in sorted(runs, key=lambda r: (-r[0], r[1][0])):
        best = min(range(count), key=lambda p: (load[p], p))
        load[best] += cost
        for i in run:
            owner[i] = best
    return owner


def shard_name(index: int, count: int) -> str:
    """``shard-00001-of-00004``: the name of process ``index``'s files of ``count``."""
    return f"shard-{index:05d}-of-{count:05d}"


def digest(names: Sequence[str]) -> str:
    """A short stable hash of a list of names (what one process's share is)."""
    return hashlib.sha256("\n".join(names).encode("utf-8")).hexdigest()[:20]


def marker_path(directory: str, index: int, count: int, share: str) -> str:
    """The file that says process ``index`` of ``count`` finished the share
    whose :func:`digest` is ``share``: a share that changes (other images,
    another count) has another marker, so an old one never counts."""
    return os.path.join(directory, ".done", f"{shard_name(index, count)}-{share}")


def mark_done(directory: str, index: int, count: int, share: str) -> str:
    """Write this process's marker (:func:`marker_path`); returns its path.
    Write it after the share's records are on disk."""
    path = marker_path(directory, index, count, share)
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with open(path, "w", encoding="utf-8") as f:
        f.write(share + "\n")
    return path


def finish_share(directory: str, shares: Sequence[str], *,
                 log: Callable[[str], None] | None = None) -> float:
    """Mark this process's share ``shares[index]`` done (:func:`mark_done`),
    then wait for every process's (:func:`wait_for_all`); returns the
    seconds waited. ``shares``: every process's :func:`digest`, in order."""
    index, count = process()
    if len(shares) != count:
        raise ValueError(f"got {len(shares)} shares for {count} processes")
    mark_done(directory, index, count, shares[index])
    return wait_for_all(directory, shares, log=log)


def wait_for_all(directory: str, shares: Sequence[str], *,
                 log: Callable[[str], None] | None = None, poll: float = POLL_S) -> float:
    """Wait until every process ``j`` has marked its share ``shares[j]``
    done (:func:`mark_done`); returns the seconds waited. Says every minute
    which processes it waits for."""
    start = time.perf_counter()
    count = len(shares)
    waiting = list(range(count))
    said = start
    while True:
        waiting = [j for j in waiting
                   if not os.path.exists(marker_path(directory, j, count, shares[j]))]
        if not waiting:
            return time.perf_counter() - start
        now = time.perf_counter()
        if log is not None and now - said >= 60:
            log(f"waiting for process(es) {', '.join(map(str, waiting))} to finish their "
                f"share ({now - start:.0f} s so far)")
            said = now
        time.sleep(poll)
