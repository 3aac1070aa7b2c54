"""The engine at the paper's defaults gives what it gave before issue 13.

tests/golden/engine_golden.npz holds short runs of the engine as it was on
main at 1d44ae4 (``optimize._run``, per-stage ``optax.sgd`` states),
rewritten once since, when HOG's ``rep(x)`` was compiled (issue 28: the
stored codes moved by 1.5e-7 of their largest value, the images by float
rounding; see make_engine_golden.py).
tests/golden/make_engine_golden.py makes the same runs through today's
public API (and can rewrite the file); they must reproduce the pins: the
paper's SGD as one optax transformation (:func:`jinvert.paper_sgd`) does the same
float32 arithmetic in the same order, so the images agree to the bit.

On other backends (a GPU) the arithmetic differs in its rounding: there the
pins hold to float32 rounding (:func:`_as_before`).

The golden runs vmapped HOG over the samples; on the CPU HOG now runs them
one after another (``cpu_batching="map"``, faster per image), the same
arithmetic up to float rounding: the pins use the vmapped HOG, and
:func:`test_hog_image_after_image_agrees` bounds the difference.
"""

import os

import jax
import numpy as np
import pytest

import jinvert
from golden import make_engine_golden

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


@pytest.fixture(scope="module")
def regenerated():
    """The pinned runs made again through today's public API, by the script
    that writes the golden file (so the script itself stays runnable)."""
    return make_engine_golden.compute()


@pytest.mark.parametrize("name", sorted(GOLDEN.files))
def test_regenerated_as_before(regenerated, name):
    """Each pinned array (HOG at 2 samples and 3 stages; a batch with one key
    per code; the toy with a mask and an empty stage) as it was."""
    _as_before(regenerated[name], GOLDEN[name])


def test_the_script_checks_every_bit(regenerated, tmp_path):
    """``make_engine_golden.py --check`` finds a one-ulp change in one image."""
    changed = dict(regenerated)
    changed["toy_images"] = np.nextafter(changed["toy_images"], np.inf).astype(np.float32)
    path = tmp_path / "golden.npz"
    np.savez(path, **{k: GOLDEN[k] for k in GOLDEN.files})
    assert make_engine_golden.differences(changed, str(path)) == ["toy_images"]


def test_hog_image_after_image_agrees():
    rep = jinvert.hog(texture=False)
    assert rep.cpu_batching == "map"
    r = jinvert.invert(rep, GOLDEN["hog_code_a"], shape=(32, 40), key=jax.random.PRNGKey(0),
                       samples=2, config=rep.defaults.replace(stages=(4, 3, 3)))
    scale = np.abs(GOLDEN["hog_images"]).max()
    np.testing.assert_allclose(np.asarray(r.images), GOLDEN["hog_images"], rtol=1e-4,
                               atol=1e-5 * scale)
    np.testing.assert_allclose(r.history["total"], GOLDEN["hog_total"], rtol=1e-4)
