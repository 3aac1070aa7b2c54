"""Seconds per iteration of an inversion loop, measured the same way for
every framework: from the difference of runs of 2n and n iterations, so
that what a run costs beyond its iterations (drawing the start, copying the
result, waiting for the device) cancels.
"""

from __future__ import annotations

import time
from typing import Callable, NamedTuple


class LoopTiming(NamedTuple):
    """What :func:`per_iteration` measures, in seconds.

    Attributes:
      iteration: seconds per iteration (``(t(2n) − t(n)) / n``, best runs).
      fixed: seconds a run costs beyond its iterations (``t(n) − n·iteration``).
      first: the first run's excess over a later run of the same length
        (compilation, autotuning, allocator warm-up).
    """

    iteration: float
    fixed: float
    first: float


def per_iteration(run: Callable[[int], float], iterations: int,
                  repeats: int = 2) -> LoopTiming:
    """Time ``run(n)`` (seconds of a run of n iterations, device work
    finished) at ``n = iterations`` and ``2·iterations``.

    Both lengths run once before anything is timed (a loop may compile a
    program per length); then the best of ``repeats`` runs of each.
    """
    if iterations < 1 or repeats < 1:
        raise ValueError(f"need iterations >= 1 and repeats >= 1, got {iterations}, {repeats}")
    first = run(iterations)
    run(2 * iterations)
    short = min(run(iterations) for _ in range(repeats))
    long = min(run(2 * iterations) for _ in range(repeats))
    step = max(1e-9, (long - short) / iterations)
    return LoopTiming(step, max(0.0, short - iterations * step), max(0.0, first - short))


def jinvert_run(rep, code, *, samples: int, shape=None,
                iterations_per_call=None) -> Callable[[int], float]:
    """``run(n)``: seconds of one ``jinvert.invert`` call of n iterations at
    ``rep.defaults``' first learning rate, images ready (``block_until_ready``);
    ``iterations_per_call`` as :class:`jinvert.Loop` takes it.

    The schedule is ``rep.defaults.first_stage_only(n)``, so that the timed
    step is the program a call with the paper's schedule runs.
    """
    import jax

    from jinvert import Loop, invert

    def run(n: int) -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(invert(rep, code, shape=shape, key=jax.random.PRNGKey(0),
                                     samples=samples, config=rep.defaults.first_stage_only(n),
                                     loop=Loop(progress=False,
                                               iterations_per_call=iterations_per_call)).images)
        return time.perf_counter() - t0

    return run
