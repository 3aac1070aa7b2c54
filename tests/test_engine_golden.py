"""The engine at the paper's defaults gives what it gave before issue 13.

tests/golden/engine_golden.npz holds short runs of the engine as it was on
main at 1d44ae4 (``optimize._run``, per-stage ``optax.sgd`` states),
written by tests/golden/make_engine_golden.py (its docstring says how). The
same runs through today's public API must reproduce them: the paper's SGD
as one optax transformation (:func:`jinvert.paper_sgd`) does the same
float32 arithmetic in the same order, so the images agree to the bit.

On other backends (a GPU) the arithmetic differs in its rounding: there the
pins hold to float32 rounding (:func:`_as_before`).

The golden runs vmapped HOG over the samples; on the CPU HOG now runs them
one after another (``cpu_batching="map"``, faster per image), the same
arithmetic up to float rounding: the pins use the vmapped HOG, and
:func:`test_hog_image_after_image_agrees` bounds the difference.
"""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np

import jinvert
from _toy import toy_image, toy_rep
from jinvert.experiments import common

GOLDEN = np.load(os.path.join(os.path.dirname(__file__), "golden", "engine_golden.npz"))


def _as_before(actual, golden):
    """Bit for bit on the CPU, where the goldens were written; elsewhere to
    float32 rounding, grown over a few iterations (a GPU sums in another order)."""
    actual = np.asarray(actual)
    if jax.default_backend() == "cpu":
        np.testing.assert_array_equal(actual, golden)
    else:
        np.testing.assert_allclose(actual, golden, rtol=1e-4,
                                   atol=1e-5 * float(np.abs(golden).max()))


def _vmapped_hog():
    return dataclasses.replace(jinvert.hog(texture=False), cpu_batching="vmap")


def test_hog_two_samples_as_before():
    rep = _vmapped_hog()
    code = GOLDEN["hog_code_a"]
    r = jinvert.invert(rep, code, shape=(32, 40), key=jax.random.PRNGKey(0), samples=2,
                       config=rep.defaults.replace(stages=(4, 3, 3)))
    _as_before(r.images, GOLDEN["hog_images"])
    _as_before(r.history["total"], GOLDEN["hog_total"])


def test_hog_image_after_image_agrees():
    rep = jinvert.hog(texture=False)
    assert rep.cpu_batching == "map"
    r = jinvert.invert(rep, GOLDEN["hog_code_a"], shape=(32, 40), key=jax.random.PRNGKey(0),
                       samples=2, config=rep.defaults.replace(stages=(4, 3, 3)))
    scale = np.abs(GOLDEN["hog_images"]).max()
    np.testing.assert_allclose(np.asarray(r.images), GOLDEN["hog_images"], rtol=1e-4,
                               atol=1e-5 * scale)
    np.testing.assert_allclose(r.history["total"], GOLDEN["hog_total"], rtol=1e-4)


def test_batch_with_per_code_keys_as_before():
    rep = _vmapped_hog()
    config = common.config_for(rep, iterations=6)
    assert config.stages == tuple(GOLDEN["batch_stages"])
    keys = jnp.stack([common.image_key(jax.random.PRNGKey(3), n) for n in ("a", "b")])
    images, _, energy = common.invert_batch(
        rep, np.stack([GOLDEN["hog_code_a"], GOLDEN["hog_code_b"]]), keys, config=config,
        samples=1, shape=(32, 40, 1))
    _as_before(images, GOLDEN["batch_images"])
    _as_before(energy, GOLDEN["batch_energy"])


def test_toy_with_mask_and_empty_stage_as_before():
    rep = toy_rep()
    code = np.asarray(rep.apply(jnp.asarray(toy_image((16, 16, 1)))))
    mask = np.zeros(code.shape, bool)
    mask[1:5, 1:6] = True
    r = jinvert.invert(rep, code, shape=(16, 16), key=jax.random.PRNGKey(5), samples=2,
                       mask=mask, config=rep.defaults.replace(stages=(5, 0, 4, 3)))
    _as_before(r.images, GOLDEN["toy_images"])
    _as_before(r.history["total"], GOLDEN["toy_total"])
