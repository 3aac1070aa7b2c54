"""HOG, HOGb, DSIFT and SSIM compute in full float32 on every backend, and
so do the CNNs unless told otherwise (their ``precision`` argument).

JAX's default precision for float32 matrix products and convolutions lets
NVIDIA GPUs use TF32 (a 10-bit mantissa), which moves HOG codes by ~5e-4
relative and breaks the 1e-4 parity with VLFeat. So every ``dot_general``
and ``convolution`` in these programs (forward and gradient) must ask for
``HIGHEST``. The check reads the lowered StableHLO, so it runs (and would
fail) on a CPU too, where both precisions give the same numbers.
"""

import re

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinvert
from jinvert.metrics import ssim

# One line of StableHLO text per op. A dot_general prints
#   precision = [DEFAULT, DEFAULT]
# and a convolution
#   precision_config = [#stablehlo<precision DEFAULT>, #stablehlo<precision DEFAULT>]
# (HIGHEST in place of DEFAULT when asked for).
_OP = re.compile(r"\bstablehlo\.(dot_general|dot|convolution)\b")
_FULL = {
    "dot_general": "precision = [HIGHEST, HIGHEST]",
    "dot": "precision = [HIGHEST, HIGHEST]",
    "convolution": ("precision_config = [#stablehlo<precision HIGHEST>, "
                    "#stablehlo<precision HIGHEST>]"),
}


def reduced_precision_ops(stablehlo: str) -> tuple[int, list[str]]:
    """``(number of products and convolutions, those not at HIGHEST)`` in
    StableHLO text; an op with no precision attribute counts as reduced."""
    ops, reduced = 0, []
    for line in stablehlo.splitlines():
        match = _OP.search(line)
        if match:
            ops += 1
            if _FULL[match.group(1)] not in line:
                reduced.append(line.strip())
    return ops, reduced


def assert_full_precision(fn, *args):
    ops, reduced = reduced_precision_ops(jax.jit(fn).lower(*args).as_text())
    assert ops > 0, "no dot_general or convolution: the check would be vacuous"
    assert not reduced, f"{len(reduced)} of {ops} ops may run below float32:\n" + "\n".join(reduced)


REPRESENTATIONS = {
    "hog": lambda: jinvert.hog(),
    "hogb": lambda: jinvert.hog(bilinear=True),
    "dsift": lambda: jinvert.dsift(step=7),
}


@pytest.mark.parametrize("name, channels", [("hog", 1), ("hog", 3), ("hogb", 1),
                                           ("hogb", 3), ("dsift", 1)])
def test_representation_and_gradient_at_highest_precision(name, channels):
    rep = REPRESENTATIONS[name]()
    x = jax.random.normal(jax.random.PRNGKey(0), (37, 45, channels)) * 50.0
    assert_full_precision(rep.apply, x)
    assert_full_precision(jax.grad(lambda x: jnp.sum(rep.apply(x) ** 2)), x)
    # batched, as the optimiser runs it
    batch = jnp.stack([x, -x])
    assert_full_precision(jax.grad(lambda b: jnp.sum(rep.batch_apply(b) ** 2)), batch)


def test_ssim_and_gradient_at_highest_precision():
    a = jax.random.uniform(jax.random.PRNGKey(0), (24, 26, 3))
    b = jax.random.uniform(jax.random.PRNGKey(1), (24, 26, 3))
    assert_full_precision(ssim, a, b)
    assert_full_precision(jax.grad(ssim), a, b)


def test_checker_rejects_default_precision():
    """The check can fail: a product or a convolution at JAX's default
    precision is reported, one at HIGHEST is not."""
    a, b = jnp.ones((3, 4)), jnp.ones((4, 5))
    with pytest.raises(AssertionError, match="1 of 1 ops"):
        assert_full_precision(jnp.dot, a, b)
    with pytest.raises(AssertionError, match="1 of 1 ops"):
        assert_full_precision(lambda a, b: a @ b, a, b)
    assert_full_precision(lambda a, b: jnp.dot(a, b, precision="highest"), a, b)
    image, kernel = jnp.ones((1, 1, 8, 8)), jnp.ones((1, 1, 3, 1))
    with pytest.raises(AssertionError, match="1 of 1 ops"):
        assert_full_precision(lambda x: jax.lax.conv(x, kernel, (1, 1), "VALID"), image)
    assert_full_precision(
        lambda x: jax.lax.conv(x, kernel, (1, 1), "VALID", precision="highest"), image)
    # HIGH (bf16×3) is not full precision either
    with pytest.raises(AssertionError):
        assert_full_precision(lambda a, b: jnp.dot(a, b, precision="high"), a, b)
    # and a program with no product at all is not passed as "full precision"
    with pytest.raises(AssertionError, match="vacuous"):
        assert_full_precision(jnp.sin, a)


@pytest.mark.parametrize("name", ["hogb", "dsift"])
def test_float32_matches_float64_on_this_backend(grey_photos, name):
    """On whatever backend runs the tests (TF32 products on an NVIDIA GPU
    would fail this), the float32 code matches the float64 one to 1e-5
    relative. (HOGb and DSIFT: their binning is continuous, so no near-tie
    of hard HOG can flip between the two precisions.)"""
    rep = REPRESENTATIONS[name]()
    image = jnp.asarray(grey_photos["camera"])
    ours = np.asarray(jax.jit(rep.apply)(image))
    with jax.enable_x64(True):
        exact = np.asarray(jax.jit(rep.apply)(jnp.asarray(image, jnp.float64)))
    assert exact.dtype == np.float64
    assert np.abs(ours - exact).max() / np.abs(exact).max() < 1e-5


def _cnns(**precision):
    from jinvert.representations import alexnet as A
    from jinvert.representations import efficientnet as E

    ax = A.alexnet(A.random_params(jax.random.PRNGKey(0)), "conv2", **precision)
    eff = E.efficientnet_lite0(E.random_params(jax.random.PRNGKey(0)), "block2", **precision)
    return {"alexnet": (ax, (227, 227, 3)), "efficientnet": (eff, (224, 224, 3))}


@pytest.mark.parametrize("name", ["alexnet", "efficientnet"])
def test_cnn_precision_argument(name):
    """CNNs take ``precision``: "highest", the default, puts every product
    and convolution of Φ and of its gradient at HIGHEST; "default" leaves
    them to the backend (TF32 on NVIDIA GPUs), which the check reports."""
    rep, shape = _cnns()[name]
    x = jnp.zeros(shape)
    assert_full_precision(lambda x: jnp.sum(rep.batch_apply(jnp.stack([x, x])) ** 2), x)
    assert_full_precision(jax.grad(lambda x: jnp.sum(rep.apply(x) ** 2)), x)
    fast, _ = _cnns(precision="default")[name]
    ops, reduced = reduced_precision_ops(
        jax.jit(jax.grad(lambda x: jnp.sum(fast.apply(x) ** 2))).lower(x).as_text())
    assert ops > 0 and len(reduced) == ops


@pytest.mark.parametrize("precision", ["float64", "HIGHEST ", None, 3])
def test_cnn_bad_precision(precision):
    from jinvert.representations import alexnet as A

    with pytest.raises(ValueError, match="precision must be one of"):
        A.alexnet(A.random_params(jax.random.PRNGKey(0)), "conv1", precision=precision)


def test_decoder_and_its_training_loss_at_highest_precision():
    """A decoder's network (convolutions and bilinear upsampling) and the
    gradient of its training loss run in full float32 on every backend: a
    HOG decoder trained at a GPU's TF32 lost its quality on the CPU."""
    import dataclasses

    from jinvert.decoder_network import ConvDecoder, Decoder
    from jinvert.decoder_training import training_loss

    arch = dict(channels=1, stride=8, width=8, blocks=1)
    codes = jnp.ones((2, 4, 4, 27))                             # the registry's hog: 27 channels
    params = ConvDecoder(**arch).init(jax.random.PRNGKey(0), codes)["params"]
    decoder = Decoder(rep="hog", architecture={**arch, "code_channels": 27}, code_scale=1.0,
                      pixel_scale=1.0, params=params)
    assert_full_precision(lambda c: decoder(c, (32, 32)), codes)
    crops = jnp.ones((2, 32, 32, 1))
    assert_full_precision(jax.grad(lambda p: training_loss(
        dataclasses.replace(decoder, params=p), crops, 4.0)[0]), params)


def test_rounded_product_is_a_float32_multiply_jitted_or_not():
    """``gradients.rounded_product`` (HOG's channel choice; issue 28) gives
    the bits of a float32 multiply, numpy's, jitted or not: round to
    nearest, ties to even (13-bit integers make exact midpoints), signed
    zeros, every scale; results below the smallest normal float32 flush to
    a signed zero, as XLA:CPU does."""
    from jinvert.representations.gradients import rounded_product

    rng = np.random.default_rng(0)
    x = np.concatenate([rng.standard_normal(20_000) * 10.0 ** rng.integers(-20, 20, 20_000),
                        rng.integers(-2 ** 13, 2 ** 13, 20_000), np.zeros(100),
                        [3e38, -2e-20, 1.5, -1.0]]).astype(np.float32)
    y = np.concatenate([rng.standard_normal(20_000) * 10.0 ** rng.integers(-20, 20, 20_000),
                        rng.integers(-2 ** 13, 2 ** 13, 20_000), rng.standard_normal(100),
                        [10.0, 3e-20, 1 + 2.0 ** -23, -0.0]]).astype(np.float32)
    with np.errstate(over="ignore", under="ignore"):
        expected = x * y
    expected = np.where(np.abs(expected) < np.finfo(np.float32).tiny,
                        np.copysign(np.float32(0), expected), expected)
    exact = x.astype(np.float64) * y
    midpoint = np.abs(exact - expected) == np.spacing(np.abs(expected)).astype(np.float64) / 2
    assert midpoint.sum() > 100   # exact products halfway between two float32
    for fn in (rounded_product, jax.jit(rounded_product)):
        np.testing.assert_array_equal(np.asarray(fn(x, y)).view(np.uint32),
                                      expected.view(np.uint32))
