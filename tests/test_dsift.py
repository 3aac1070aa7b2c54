"""Dense SIFT against VLFeat's vl_dsift (fast), gradients, batching, input checks.

Parity with VLFeat is checked against its outputs stored in
tests/golden/vlfeat.npz on every machine, and against the installed VLFeat
(cyvlfeat) where it imports; only those live tests skip without it.
"""

import numpy as np
import pytest
import jax
import jax.numpy as jnp

import jinvert
from conftest import (assert_gradient_matches_finite_differences, assert_golden_is_fresh,
                      import_cyvlfeat)
from jinvert.representations.dsift import fast_atan2

# cyvlfeat returns min(512·d, 255) for float descriptors: the scale is 512
# and values above 255/512 are clipped.
CYVLFEAT_SCALE, CYVLFEAT_CLIP = 512.0, 255.0
SETTINGS = [(5, 15), (4, 7)]     # (bin size, step) in the golden file


def unit(d):
    return d / np.maximum(np.linalg.norm(d, axis=-1, keepdims=True), 1e-12)


def assert_dsift_equals_vlfeat(ours, frames, ref):
    """Our descriptors, at cyvlfeat's scale and clip, within 1e-3·512 of
    VLFeat's, frame for frame (row-major); and, where VLFeat did not clip,
    the same directions to 1e-3."""
    ours = np.asarray(ours)
    rows, cols = ours.shape[:2]
    assert rows * cols == len(ref)
    # Frames are row-major: y then x.
    np.testing.assert_array_equal(frames[:cols, 0], frames[0, 0])
    flat = ours.reshape(-1, 128)
    np.testing.assert_allclose(np.minimum(CYVLFEAT_SCALE * flat, CYVLFEAT_CLIP), ref,
                               atol=1e-3 * CYVLFEAT_SCALE)
    unclipped = ref.max(axis=-1) < CYVLFEAT_CLIP
    assert unclipped.mean() > 0.9
    assert np.abs(unit(flat[unclipped]) - unit(ref[unclipped])).max() < 1e-3


@pytest.mark.parametrize("bin_size, step", SETTINGS)
@pytest.mark.parametrize("name", ["camera", "coins", "astronaut", "coffee"])
@pytest.mark.parametrize("mode", ["eager", "jit"])
def test_dsift_equals_golden_vlfeat(golden, name, bin_size, step, mode):
    """Against VLFeat's outputs stored in tests/golden/vlfeat.npz (every
    machine), one compiled program or op by op."""
    key = f"dsift_{name}_b{bin_size}_s{step}"
    rep = jinvert.dsift(bin_size=bin_size, step=step)
    image = jnp.asarray(golden.grey[name])[..., None]
    if mode == "jit":
        ours = jax.jit(rep.apply)(image)
    else:
        with jax.disable_jit():
            ours = rep.apply(image)
    assert_dsift_equals_vlfeat(ours, golden.arrays[key + "_frames"], golden.arrays[key])


@pytest.mark.parametrize("bin_size, step", [(5, 15), (4, 7), (3, 2)])
@pytest.mark.parametrize("name", ["camera", "coins", "astronaut", "coffee"])
def test_dsift_equals_vlfeat(grey_photos, name, bin_size, step):
    """Against the installed VLFeat (cyvlfeat), where it imports."""
    vlfeat_dsift = import_cyvlfeat("sift").dsift
    image = grey_photos[name]
    frames, ref = vlfeat_dsift(image, step=step, size=bin_size, fast=True,
                               float_descriptors=True)
    assert_dsift_equals_vlfeat(jinvert.dsift(bin_size=bin_size, step=step)(image), frames, ref)


def test_golden_dsift_is_what_vlfeat_computes_now(golden):
    """The stored descriptors, frames and grey inputs are what the installed
    VLFeat (and our grey conversion) give on the stored crops now (a stale
    golden file fails here: regenerate it with
    ``python tests/golden/make_golden.py``)."""
    import_cyvlfeat("sift")
    keys = assert_golden_is_fresh(golden, ("dsift_", "grey_"))
    assert len(keys) == 2 * 2 * 4 + 2


def test_fast_atan2_is_vlfeat_approximation():
    angles = np.linspace(-np.pi + 1e-3, np.pi, 1001)
    y, x = np.sin(angles) * 3, np.cos(angles) * 3
    approx = np.asarray(fast_atan2(jnp.asarray(y), jnp.asarray(x)))
    assert np.abs(approx - angles).max() < 7e-3     # measured 6.1e-3
    assert np.abs(approx - angles).max() > 1e-4     # and it is an approximation


def test_jit_and_vmap_match_one_by_one(grey_photos):
    rep = jinvert.dsift()
    batch = np.stack([grey_photos["camera"][:80, :90], grey_photos["coins"][:80, :90]])[..., None]
    one_by_one = np.stack([np.asarray(rep(im)) for im in batch])
    np.testing.assert_allclose(np.asarray(rep(batch)), one_by_one, atol=1e-6)
    jitted = jax.jit(jax.vmap(rep.apply))(jnp.asarray(batch))
    np.testing.assert_allclose(np.asarray(jitted), one_by_one, atol=1e-6)


@pytest.mark.parametrize("image", ["flat", "zero"])
def test_gradient_finite_on_degenerate_images(image):
    x = jnp.full((40, 48, 1), 7.0) if image == "flat" else jnp.zeros((40, 48, 1))
    rep = jinvert.dsift()
    g = jax.grad(lambda x: jnp.sum(rep.apply(x) ** 2) + jnp.sum(rep.apply(x)))(x)
    assert bool(jnp.all(jnp.isfinite(g)))


def test_gradient_equals_finite_differences(grey_photos):
    """Along random directions, in float64 and with a small step (so that no
    orientation bin or clamp switches inside it), the gradient matches the
    central difference of Φ."""
    assert_gradient_matches_finite_differences(jinvert.dsift(step=7).apply)


@pytest.mark.parametrize("bad, message", [
    (np.zeros((5,)), "expected an image"),
    (np.zeros((12, 40)), "smaller than one descriptor"),
    (np.zeros((40, 40, 3)), "grey image"),
    (np.full((30, 30), np.inf), "NaN or infinite"),
    (np.array([[object()] * 20] * 20), "numeric"),
])
def test_bad_input_raises_value_error(bad, message):
    with pytest.raises(ValueError, match=message):
        jinvert.dsift()(bad)
