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

On other backends (a GPU), and on CPUs with another vector instruction set
than the one that wrote the pins (engine_golden.json), the arithmetic differs
in its rounding: there the pins hold to float32 rounding (:func:`_as_before`),
which still fails for a changed setting (momentum 0.9 -> 0.91 moves the
images by 1e-2 relative).

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


BIT_FOR_BIT = jax.default_backend() == "cpu" and make_engine_golden.written_here()


def _as_before(actual, golden, bit_for_bit=BIT_FOR_BIT):
    """Bit for bit on a CPU like the one that wrote the goldens; elsewhere to
    float32 rounding, grown over a few iterations (a GPU, or a CPU with other
    vector instructions, sums in another order)."""
    actual = np.asarray(actual)
    if bit_for_bit:
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
    # Pins of this machine (the stored ones may come from another CPU).
    path = tmp_path / "golden.npz"
    np.savez(path, **regenerated)
    assert make_engine_golden.differences(regenerated, str(path)) == []
    changed = dict(regenerated)
    changed["toy_images"] = np.nextafter(changed["toy_images"], np.inf).astype(np.float32)
    assert make_engine_golden.differences(changed, str(path)) == ["toy_images"]


def test_pins_say_where_they_hold_bit_for_bit(tmp_path):
    """The fingerprint of the machine that wrote the pins is stored beside
    them; a machine with another instruction set or jaxlib is not taken for it."""
    import json
    fingerprint = make_engine_golden.machine()
    assert fingerprint["cpu_flags"]
    path = tmp_path / "golden.json"
    path.write_text(json.dumps(fingerprint))
    assert make_engine_golden.written_here(str(path))
    path.write_text(json.dumps({**fingerprint, "cpu_flags": fingerprint["cpu_flags"][:-1]}))
    assert not make_engine_golden.written_here(str(path))
    assert not make_engine_golden.written_here(str(tmp_path / "absent.json"))
    with open(make_engine_golden.MACHINE) as f:
        assert set(json.load(f)) == set(fingerprint)


def test_hog_image_after_image_agrees():
    rep = jinvert.hog(texture=False)
    assert rep.cpu_batching == "map"
    r = jinvert.invert(rep, GOLDEN["hog_code_a"], shape=(32, 40), key=jax.random.PRNGKey(0),
                       samples=2, config=rep.defaults.replace(stages=(4, 3, 3)))
    scale = np.abs(GOLDEN["hog_images"]).max()
    np.testing.assert_allclose(np.asarray(r.images), GOLDEN["hog_images"], rtol=1e-4,
                               atol=1e-5 * scale)
    np.testing.assert_allclose(r.history["total"], GOLDEN["hog_total"], rtol=1e-4)
