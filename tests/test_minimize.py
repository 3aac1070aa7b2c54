"""The engine's one public core, :func:`jinvert.minimize`: inversion and
activation maximisation are its specialisations (same bits), and a user's
own term runs through it with nothing private."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinvert
from _toy import toy_image, toy_rep
from jinvert import Loop, Start, terms
from jinvert.config import Config
from jinvert.preimages import MAXIMIZE_START_NOISE, maximize_config

REP = toy_rep()
X0 = toy_image((16, 16, 1))
CODE = np.asarray(REP.apply(jnp.asarray(X0)))
CONFIG = Config(learning_rate=0.004, stages=(20, 10), lambda_alpha=2e3, lambda_tv=0.5)


def _same(a, b):
    np.testing.assert_array_equal(np.asarray(a.images), np.asarray(b.images))
    assert set(a.history) == set(b.history)
    for name in a.history:
        np.testing.assert_array_equal(a.history[name], b.history[name])


def test_invert_is_minimize_of_the_inversion_term():
    key = jax.random.PRNGKey(4)
    mask = np.zeros(CODE.shape, bool)
    mask[2:9, 3:12] = True
    a = jinvert.invert(REP, CODE, key=key, shape=(16, 16), samples=2, mask=mask, config=CONFIG)
    b = jinvert.minimize(REP, terms.inversion(CODE, mask), key=key, shape=(16, 16), samples=2,
                         config=CONFIG)
    _same(a, b)
    assert a.images.shape == (2, 16, 16, 1)
    # A batch of codes, one key each: a terms.Batch of the stacked terms.
    codes = np.stack([CODE, 0.5 * CODE])
    keys = jax.random.split(key, 2)
    a = jinvert.invert(REP, codes, key=keys, shape=(16, 16), config=CONFIG)
    b = jinvert.minimize(REP, [terms.inversion(c) for c in codes], key=keys, shape=(16, 16),
                         config=CONFIG)
    _same(a, b)
    assert a.images.shape == (2, 1, 16, 16, 1)


def test_maximize_is_minimize_with_the_ijcv_settings_and_a_faint_start():
    objective = terms.activation(terms.channel((7, 7, 6), 2))
    config = maximize_config(REP).with_iterations(15)
    key = jax.random.PRNGKey(1)
    a = jinvert.maximize(REP, objective, key=key, shape=(16, 16), config=config)
    b = jinvert.minimize(REP, objective, key=key, shape=(16, 16), config=config,
                         start=Start(noise=MAXIMIZE_START_NOISE))
    _same(a, b)
    # The start matters: the paper's unit noise is another run.
    c = jinvert.minimize(REP, objective, key=key, shape=(16, 16), config=config)
    assert not np.array_equal(np.asarray(a.images), np.asarray(c.images))


@terms.term_class(data=("target",))
class Gram(terms.Term):
    """A style term of the user's own: ||G(Φ) − G0||² / ||G0||², G the
    channels' Gram matrix over positions (Gatys et al.)."""

    target: jax.Array
    name = "style"

    def value(self, code, u):
        return jnp.sum((gram(code) - self.target) ** 2) / jnp.sum(self.target ** 2)


def gram(code):
    f = code.reshape(-1, code.shape[-1])
    return f.T @ f / f.shape[0]


def _gram_numpy(code):
    f = np.asarray(code, np.float64).reshape(-1, code.shape[-1])
    return f.T @ f / f.shape[0]


def test_a_users_own_term_runs_through_minimize():
    target = gram(jnp.asarray(CODE))
    energy = Gram(target) + 0.5 * terms.inversion(CODE)
    x_start = np.asarray(toy_image((16, 16, 1), seed=3))
    r = jinvert.minimize(REP, energy, key=jax.random.PRNGKey(0), shape=(16, 16), config=CONFIG,
                         start=Start(init=x_start, noise=0.0), loop=Loop(progress=False))
    assert set(r.history) == {"style", "data", "alpha", "tv", "total"}
    # At iteration 0 the image is the start: the style term worked by hand.
    g0, g = _gram_numpy(CODE), _gram_numpy(REP.apply(jnp.asarray(x_start)))
    by_hand = np.sum((g - g0) ** 2) / np.sum(g0 ** 2)
    assert float(r.history["style"][0, 0]) == pytest.approx(by_hand, rel=1e-4)
    # The weight 0.5 multiplies the inversion term: 0.5·||Φ − Φ0||²/||Φ0||².
    code = np.asarray(REP.apply(jnp.asarray(x_start)), np.float64)
    data = 0.5 * np.sum((code - CODE) ** 2) / np.sum(np.asarray(CODE, np.float64) ** 2)
    assert float(r.history["data"][0, 0]) == pytest.approx(data, rel=1e-4)
    # And it is minimised: both terms fall.
    assert float(r.history["style"][0, -1]) < 0.5 * by_hand
    assert float(r.history["data"][0, -1]) < 0.75 * data  # measured 0.52×
    # image_energy evaluates the same energy the engine minimised.
    e = jinvert.image_energy(REP, jnp.asarray(x_start), data=energy, config=CONFIG)
    assert float(e["style"]) == pytest.approx(float(r.history["style"][0, 0]), rel=1e-5)


@pytest.mark.parametrize("energy, message", [
    (np.ones((7, 7, 6)), "jinvert.terms term"),
    ([terms.activation(np.ones((7, 7, 6))), "x"], "jinvert.terms term"),
    (terms.activation(np.ones((3, 3, 6))), "shape of one code"),
])
def test_bad_energies_raise(energy, message):
    with pytest.raises(ValueError, match=message):
        jinvert.minimize(REP, energy, key=jax.random.PRNGKey(0), shape=(16, 16))


def test_bad_start_and_loop_raise():
    energy = terms.inversion(CODE)
    kw = dict(key=jax.random.PRNGKey(0), shape=(16, 16), config=CONFIG)
    with pytest.raises(ValueError, match="jinvert.Loop"):
        jinvert.minimize(REP, energy, loop=False, **kw)
    with pytest.raises(ValueError, match="decoder starts from codes"):
        jinvert.minimize(REP, energy, start=Start(init="decoder.npz"), **kw)
    with pytest.raises(ValueError, match="one per problem"):
        jinvert.minimize(REP, energy, **dict(kw, key=jax.random.split(kw["key"], 3)))


def test_lower_step_costs_one_iteration_of_all_samples():
    """``lower_step`` lowers minimize's step for XLA's cost analysis: its
    FLOPs are one iteration's for all samples (4 samples, 3–5× one)."""
    from jinvert.engine import lower_step

    energy = terms.inversion(CODE)
    flops = [lower_step(REP, energy, key=jax.random.PRNGKey(2), shape=(16, 16), samples=s,
                        config=CONFIG).compile().cost_analysis()["flops"] for s in (1, 4)]
    assert flops[0] > 0
    assert 3.0 < flops[1] / flops[0] < 5.0
