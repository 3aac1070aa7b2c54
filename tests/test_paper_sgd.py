"""jinvert.paper_sgd, the paper's optimiser as an optax transformation,
against a hand-written NumPy loop of the reference update (deep-goggle
``invert_nn.m``: v ← μv − lr·g, u ← u + v, v zeroed and lr divided by 10
at each stage) and against optax.sgd restarted at each stage."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from jinvert import Config, paper_sgd


def _reference(u0, grad, lr, stages, momentum):
    """The reference loop in float64: the iterates after every step."""
    u, out = u0.astype(np.float64), []
    for k, n in enumerate(stages):
        v = np.zeros_like(u)                       # momentum reset at each stage
        rate = lr * 0.1 ** k                       # an empty stage still counts
        for _ in range(n):
            v = momentum * v - rate * grad(u)
            u = u + v
            out.append(u.copy())
    return np.stack(out)


def _ours(transformation, u0, grad, total):
    u = jnp.asarray(u0, jnp.float32)
    state = transformation.init(u)
    update = jax.jit(transformation.update)
    out = []
    for _ in range(total):
        g = jnp.asarray(grad(np.asarray(u, np.float64)), jnp.float32)
        step, state = update(g, state, u)
        u = optax.apply_updates(u, step)
        out.append(np.asarray(u))
    return np.stack(out)


A = np.diag(np.linspace(0.5, 3.0, 6))
B = np.linspace(-1.0, 1.0, 6)


def grad(u):
    """Gradient of the quadratic ½uᵀAu − bᵀu."""
    return A @ u - B


@pytest.mark.parametrize("stages", [(5, 4, 3), (3, 0, 4), (7,)])
def test_matches_reference_loop(stages):
    u0 = np.linspace(2.0, -2.0, 6)
    lr, mu = 0.3, 0.9
    ours = _ours(paper_sgd(lr, stages, mu), u0, grad, sum(stages))
    ref = _reference(u0, grad, lr, stages, mu)
    np.testing.assert_allclose(ours, ref, rtol=1e-5, atol=1e-6)
    if len(stages) > 1:
        # The test can tell: without the reset (one stage at lr, then the
        # drops with carried momentum) the iterates differ.
        carried = _reference(u0, grad, lr, (sum(stages),), mu)
        assert np.abs(carried - ref).max() > 1e-3


def test_equals_optax_sgd_restarted_per_stage_bit_for_bit():
    stages, lr, mu = (4, 3, 3), 0.004, 0.9
    u0 = np.random.default_rng(0).normal(size=(5, 7)).astype(np.float32)
    grads = np.random.default_rng(1).normal(size=(sum(stages), 5, 7)).astype(np.float32)
    ours = paper_sgd(lr, stages, mu)
    state = ours.init(jnp.asarray(u0))
    update = jax.jit(ours.update)
    mine = []
    for g in grads:
        step, state = update(jnp.asarray(g), state)
        mine.append(np.asarray(step))
    theirs, t = [], 0
    for k, n in enumerate(stages):
        rate = jnp.float32(lr * 0.1 ** k)
        sgd = optax.sgd(rate, momentum=mu)
        s = sgd.init(jnp.asarray(u0))
        step_fn = jax.jit(lambda g, s, r: optax.sgd(r, momentum=mu).update(g, s))
        for _ in range(n):
            step, s = step_fn(jnp.asarray(grads[t]), s, rate)
            theirs.append(np.asarray(step))
            t += 1
    np.testing.assert_array_equal(np.stack(mine), np.stack(theirs))


def test_from_config_and_schedule_in_state():
    config = Config(learning_rate=0.01, stages=(2, 3), momentum=0.5)
    state = config.optimizer().init(jnp.zeros(3))
    np.testing.assert_array_equal(state.rates, np.float32([0.01, 0.001]))
    np.testing.assert_array_equal(state.ends, [2, 5])
    # One update function for every schedule (it keys the compiled step).
    assert paper_sgd(0.1, (1, 1)).update is config.optimizer().update
    assert paper_sgd(0.1, (1, 1)).init == paper_sgd(0.1, (1, 1)).init
