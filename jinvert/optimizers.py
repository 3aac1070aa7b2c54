"""The optimisers of an inversion, as optax transformations over the
normalised image u = x/σ (or any parameterisation's parameters).

* :func:`paper_sgd`: the CVPR paper's (deep-goggle ``invert_nn.m``): SGD
  with momentum, the learning rate divided by 10 at each stage and the
  momentum restarted there.
* :func:`staged_adam`: the adaptive step of the IJCV recipe, Adam with the
  same stages and one state throughout.

Each keeps its schedule in its state, so the compiled step (keyed by the
transformation's ``update``) does not depend on the learning rate or the
number of iterations. :meth:`jinvert.Config.optimizer` picks one from the
settings; any other optax transformation runs in the engine as well.
"""

from __future__ import annotations

import functools
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

#: The paper's schedule for HOG, HOGb and DSIFT (:class:`jinvert.Config`'s defaults).
PAPER_LEARNING_RATE = 0.004
PAPER_STAGES = (200, 200, 200, 200)
PAPER_MOMENTUM = 0.9


def check_stages(stages) -> tuple[int, ...]:
    """``stages`` as a tuple of ints: non-negative iteration counts with a
    positive total, else ValueError."""
    try:
        stages = tuple(int(s) for s in np.atleast_1d(stages))
    except (TypeError, ValueError):
        raise ValueError(f"stages must be a sequence of iteration counts, "
                         f"got {stages!r}") from None
    if not stages or any(s < 0 for s in stages) or sum(stages) == 0:
        raise ValueError(f"stages must be non-negative iteration counts with a "
                         f"positive total, got {stages!r}")
    return stages


def non_negative(name: str, raw) -> float:
    """``raw`` as a float: a finite number >= 0, else ValueError naming ``name``
    (the check of every number of a :class:`jinvert.Config` too)."""
    try:
        value = float(raw)
    except (TypeError, ValueError):
        raise ValueError(f"{name} must be a number, got {raw!r}") from None
    if not np.isfinite(value) or value < 0:
        raise ValueError(f"{name} must be a finite non-negative number, got {raw!r}")
    return value


def _check_schedule(learning_rate, stages, momentum) -> tuple[float, tuple, float]:
    """``(learning_rate, stages, momentum)`` checked as :class:`jinvert.Config`
    checks them: :func:`non_negative` numbers, :func:`check_stages`."""
    return (non_negative("learning_rate", learning_rate), check_stages(stages),
            non_negative("momentum", momentum))


class PaperSGDState(NamedTuple):
    """State of :func:`paper_sgd` (a pytree).

    Attributes:
      count: iterations done, int32 scalar.
      trace: the momentum buffer m, like the parameters.
      rates: the learning rate of each stage, float32 ``(S,)``.
      ends: cumulative iteration count at the end of each stage, int32 ``(S,)``.
      momentum: μ, float32 scalar.
    """

    count: jax.Array
    trace: Any
    rates: jax.Array
    ends: jax.Array
    momentum: jax.Array


def _stage_rate(count: jax.Array, rates: jax.Array, ends: jax.Array) -> jax.Array:
    """The learning rate at iteration ``count`` of a staged schedule: that of
    the stage it falls in, the last one's after the schedule's end."""
    return rates[jnp.minimum(jnp.sum(count >= ends), ends.shape[0] - 1)]


def _paper_sgd_update(updates, state: PaperSGDState, params=None):
    """One step of :func:`paper_sgd` (a module-level function, so that the
    compiled inversion step does not depend on the schedule's values)."""
    del params
    count = state.count
    rate = _stage_rate(count, state.rates, state.ends)
    # The first iteration of every stage after the first starts from zero
    # momentum (an empty stage counts: its end equals the previous one's).
    restart = jnp.any(count == state.ends[:-1])
    trace = jax.tree_util.tree_map(
        lambda g, t: g + state.momentum * jnp.where(restart, jnp.zeros_like(t), t),
        updates, state.trace)
    step = jax.tree_util.tree_map(lambda m: (-rate) * m, trace)
    return step, state._replace(count=count + 1, trace=trace)


class _PaperSGDInit(NamedTuple):
    """``init`` of :func:`paper_sgd`: hashable, compared by value."""

    rates: tuple[float, ...]
    ends: tuple[int, ...]
    momentum: float

    def __call__(self, params) -> PaperSGDState:
        return PaperSGDState(
            count=jnp.zeros((), jnp.int32),
            trace=jax.tree_util.tree_map(jnp.zeros_like, params),
            rates=jnp.asarray(np.asarray(self.rates, np.float32)),
            ends=jnp.asarray(np.asarray(self.ends, np.int32)),
            momentum=jnp.float32(self.momentum))


def paper_sgd(learning_rate: float = PAPER_LEARNING_RATE, stages=PAPER_STAGES,
              momentum: float = PAPER_MOMENTUM) -> optax.GradientTransformation:
    """The paper's optimiser (deep-goggle ``invert_nn.m``) as an optax transformation.

    SGD with momentum: within stage k (0-based) the learning rate is
    ``learning_rate · 0.1**k`` (computed in Python, then cast to float32;
    an empty stage still counts in k), and at the first iteration of each
    stage the momentum restarts from zero. The reference writes
    ``v ← μv − lr·g; u ← u + v`` with v zeroed at each stage; this keeps
    m ← g + μm (m zeroed at each stage) and returns the update −lr·m, which
    is the same v = −lr·m within a stage (the learning rate is constant
    there); it is exactly ``optax.sgd(lr, momentum)`` restarted at each
    stage, in the same float32 arithmetic. After ``sum(stages)`` iterations
    the last stage's rate continues.

    Args:
      learning_rate: of the first stage (the paper's 0.004 for HOG/DSIFT).
      stages: iterations per stage, e.g. ``(200, 200, 200, 200)``.
      momentum: μ (0.9).

    Returns:
      an ``optax.GradientTransformation`` whose state is
      :class:`PaperSGDState`. Its ``update`` is one function for every
      schedule (the schedule lives in the state), so jitting a step over it
      compiles once per number of stages, not per learning rate.
    """
    learning_rate, stages, momentum = _check_schedule(learning_rate, stages, momentum)
    rates = tuple(float(np.float32(learning_rate * (0.1 ** k))) for k in range(len(stages)))
    ends = tuple(int(e) for e in np.cumsum(stages))
    return optax.GradientTransformation(_PaperSGDInit(rates, ends, momentum),
                                        _paper_sgd_update)


class StagedRateState(NamedTuple):
    """State of the learning-rate stage of :func:`staged_adam` (a pytree):
    count (int32), rates ``(S,)`` float32, ends ``(S,)`` int32."""

    count: jax.Array
    rates: jax.Array
    ends: jax.Array


def _staged_rate_update(updates, state: StagedRateState, params=None):
    """Scale by −(the stage's rate); module-level so that the compiled step
    does not depend on the schedule's values (as :func:`_paper_sgd_update`)."""
    del params
    step = -_stage_rate(state.count, state.rates, state.ends)
    return (jax.tree_util.tree_map(lambda g: step.astype(g.dtype) * g, updates),
            state._replace(count=state.count + 1))


@functools.lru_cache(maxsize=8)
def _adam_direction(momentum: float) -> optax.GradientTransformation:
    """Adam's direction m̂/(√v̂ + ε), one object per β1 (cached)."""
    return optax.scale_by_adam(b1=float(momentum))


class _StagedAdamInit(NamedTuple):
    """``init`` of :func:`staged_adam`: hashable, compared by value."""

    rates: tuple[float, ...]
    ends: tuple[int, ...]
    momentum: float

    def __call__(self, params):
        return (_adam_direction(self.momentum).init(params),
                StagedRateState(count=jnp.zeros((), jnp.int32),
                                rates=jnp.asarray(np.asarray(self.rates, np.float32)),
                                ends=jnp.asarray(np.asarray(self.ends, np.int32))))


@functools.lru_cache(maxsize=8)
def _staged_adam_update(momentum: float):
    direction = _adam_direction(momentum)

    def update(updates, state, params=None):
        adam_state, rate_state = state
        updates, adam_state = direction.update(updates, adam_state, params)
        updates, rate_state = _staged_rate_update(updates, rate_state)
        return updates, (adam_state, rate_state)

    return update


def staged_adam(learning_rate: float = 0.001, stages=(200, 200, 200, 200),
                momentum: float = 0.9) -> optax.GradientTransformation:
    """Adam (β1 = ``momentum``, β2 = 0.999) whose learning rate is
    ``learning_rate · 0.1**k`` in stage k (an empty stage counts), one Adam
    state throughout: the adaptive step of the IJCV recipe
    (:func:`jinvert.recipe`).

    The schedule lives in the state, as :func:`paper_sgd`'s does, so its
    ``update``, which keys the compiled step, is one function per momentum:
    a new learning rate or schedule does not recompile. The rates are
    float32 products ``rate_k = rate_(k−1) · float32(0.1)``, the arithmetic
    of ``optax.adam(optax.piecewise_constant_schedule(...))``. Learning rates
    are in units of u = x/σ per step (Adam steps by about the learning rate
    per value, whatever the scale of the energy).
    """
    learning_rate, stages, momentum = _check_schedule(learning_rate, stages, momentum)
    rates = [np.float32(learning_rate)]
    for _ in stages[1:]:
        rates.append(np.float32(rates[-1] * np.float32(0.1)))
    ends = tuple(int(e) for e in np.cumsum(stages))
    return optax.GradientTransformation(
        _StagedAdamInit(tuple(float(r) for r in rates), ends, momentum),
        _staged_adam_update(momentum))
