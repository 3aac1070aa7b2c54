"""Bring your own network, whatever it is written in: a layer of a flax NNX
module (grey input), of an equinox model (RGB) and a plain JAX function of a
4-channel image, each a Representation whose code equals a hand computation
at a layer, that jit, vmap and grad go through, and that jinvert.invert
inverts (30 iterations on a 32 × 32 image cut the random start's error)."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

import jinvert

SIZE = (32, 32)
HIGHEST = jax.lax.Precision.HIGHEST
PAD1 = ((1, 1), (1, 1))  # equinox's padding=1


def _conv(x, kernel, bias, stride, dims, padding="SAME"):
    """The hand computation of one convolution layer, a batch in layout
    ``dims``; ``padding`` "SAME" (flax's: at stride 2 on an even size, one
    pixel after only) or ``((1, 1), (1, 1))``."""
    y = jax.lax.conv_general_dilated(x, kernel, (stride, stride), padding,
                                     dimension_numbers=dims, precision=HIGHEST)
    return y + bias


def _photo(channels=3):
    photo = jinvert.images.resize_and_crop(jinvert.images.load_image(), SIZE)
    return photo if channels == 3 else jinvert.images.to_grey(photo)


def _check_jit_vmap_grad(rep, x, rep64=None):
    """rep under jit and vmap gives rep's code; its gradient (of ``rep64()``,
    the same on a float64 copy of the model, when given) matches central
    finite differences along a random direction."""
    code = rep(x)
    np.testing.assert_allclose(jax.jit(rep.apply)(x), code, rtol=1e-5, atol=1e-6)
    batch = jnp.stack([x, -x, 0.5 * x])
    vmapped = jax.vmap(rep.apply)(batch)
    np.testing.assert_allclose(vmapped, rep(batch), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(vmapped[0], code, rtol=1e-5, atol=1e-6)

    # In float64 (the model's float32 weights promoted), where a step of
    # 1e-6 along d crosses no relu's kink and rounds to nothing.
    with jax.enable_x64(True):
        x64 = jnp.asarray(x, jnp.float64)
        weights = jax.random.normal(jax.random.PRNGKey(3), code.shape, jnp.float64)
        apply = (rep if rep64 is None else rep64()).apply
        f = lambda y: jnp.sum(weights * apply(y))  # noqa: E731
        grad = jax.grad(f)(x64)
        assert grad.shape == x.shape and float(jnp.linalg.norm(grad)) > 0
        d = jax.random.normal(jax.random.PRNGKey(4), x.shape, jnp.float64)
        eps = 1e-6
        numeric = (float(f(x64 + eps * d)) - float(f(x64 - eps * d))) / (2 * eps)
        np.testing.assert_allclose(float(jnp.vdot(grad, d)), numeric, rtol=1e-4)


def _check_inverts(rep, x0):
    """30 iterations from noise, in one stage at the paper's first learning
    rate, bring the relative code error well below the random start's (the
    first iteration's data term is its square): 0.89 -> 0.42 for the grey
    NNX layer, 0.56 -> 0.19 for equinox's, 1.07 -> 0.15 for the function."""
    code = rep(x0)
    r = jinvert.invert(rep, code, key=jax.random.PRNGKey(0),
                       config=rep.defaults.replace(lambda_tv=0.5, stages=(30,)))
    assert r.images.shape == (1,) + x0.shape
    start = float(np.sqrt(r.history["data"][0, 0]))
    end = jinvert.relative_error(r.codes[0], code)
    assert np.isfinite(end) and end < 0.6 * start, (start, end)
    np.testing.assert_allclose(r.codes[0], rep(r.images[0]), rtol=1e-4, atol=1e-4)
    assert rep.deprocess(r.images[0]).shape == SIZE + (3,)


# -- flax NNX, grey input ---------------------------------------------------

class Block(nnx.Module):
    def __init__(self, channels, rngs):
        self.conv = nnx.Conv(channels, channels, (3, 3), rngs=rngs)

    def __call__(self, x):
        y = nnx.relu(self.conv(x))
        self.sow(nnx.Intermediate, "act", y)
        return y


class GreyNet(nnx.Module):
    """conv1(1 → 4, 3 × 3, stride 2) → relu → blocks[0] (conv 4 → 4, relu,
    sown as "act") → sown as "features" → mean → linear."""

    def __init__(self, rngs):
        self.conv1 = nnx.Conv(1, 4, (3, 3), strides=(2, 2), rngs=rngs)
        self.blocks = nnx.List([Block(4, rngs)])
        self.head = nnx.Linear(4, 2, rngs=rngs)

    def __call__(self, x):
        x = nnx.relu(self.conv1(x))
        for block in self.blocks:
            x = block(x)
        self.sow(nnx.Intermediate, "features", x)
        return self.head(jnp.mean(x, axis=(1, 2)))


def test_nnx_layer_grey_equals_the_hand_computation():
    module = GreyNet(nnx.Rngs(0))
    before = jax.tree_util.tree_map(np.asarray, nnx.state(module))
    conv1 = jinvert.nnx_layer(module, "conv1", input_size=SIZE, channels=1)
    block = jinvert.nnx_layer(module, "blocks/0/act", input_size=SIZE, channels=1)
    x = conv1.preprocess(_photo(1))
    assert x.shape == SIZE + (1,) and conv1.channels == 1
    np.testing.assert_allclose(x[..., 0], _photo(1) - 0.5, atol=1e-6)

    nhwc = ("NHWC", "HWIO", "NHWC")
    c1, c2 = module.conv1, module.blocks[0].conv
    by_hand = _conv(x[None], c1.kernel[...], c1.bias[...], 2, nhwc)[0]
    assert by_hand.shape == (16, 16, 4)
    np.testing.assert_allclose(conv1(x), by_hand, rtol=1e-5, atol=1e-6)
    by_hand = jax.nn.relu(_conv(jax.nn.relu(by_hand)[None], c2.kernel[...], c2.bias[...],
                                1, nhwc))[0]
    np.testing.assert_allclose(block(x), by_hand, rtol=1e-5, atol=1e-6)
    # The same value three ways: the sown "features", the block's output.
    for layer in ("features", "blocks/0"):
        np.testing.assert_allclose(jinvert.nnx_layer(module, layer, input_size=SIZE,
                                                     channels=1)(x), by_hand,
                                   rtol=1e-5, atol=1e-6)
    # The module's own output, and a grey (H, W) image passed as it is.
    head = module.head.kernel[...].T @ jnp.mean(by_hand, axis=(0, 1)) + module.head.bias[...]
    np.testing.assert_allclose(jinvert.nnx_layer(module, "", channels=1)(x[..., 0]), head,
                               rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="blocks/0/conv"):
        jinvert.nnx_layer(module, "blocks/1", input_size=SIZE, channels=1)
    # The representation leaves the module as it was.
    after = jax.tree_util.tree_map(np.asarray, nnx.state(module))
    assert jax.tree_util.tree_all(jax.tree_util.tree_map(np.array_equal, before, after))
    _check_jit_vmap_grad(block, x[:8, :8] if block.input_size is None else x)


class Twice(nnx.Module):
    """One convolution applied twice (shared weights)."""

    def __init__(self, rngs):
        self.conv = nnx.Conv(1, 1, (3, 3), rngs=rngs)

    def __call__(self, x):
        return self.conv(nnx.relu(self.conv(x)))


def test_nnx_layer_of_a_submodule_called_twice_is_its_last_output():
    module = Twice(nnx.Rngs(0))
    x = jax.random.uniform(jax.random.PRNGKey(1), (8, 8, 1)) - 0.5
    k, b = module.conv.kernel[...], module.conv.bias[...]
    once = _conv(x[None], k, b, 1, ("NHWC", "HWIO", "NHWC"))
    twice = _conv(jax.nn.relu(once), k, b, 1, ("NHWC", "HWIO", "NHWC"))[0]
    rep = jinvert.nnx_layer(module, "conv", channels=1)
    np.testing.assert_allclose(rep(x), twice, rtol=1e-5, atol=1e-6)


def test_invert_an_nnx_layer_grey():
    rep = jinvert.nnx_layer(GreyNet(nnx.Rngs(0)), "blocks/0/act", input_size=SIZE, channels=1)
    _check_inverts(rep, rep.preprocess(_photo(1)))


def test_flax_linen_layer_takes_grey_input_too():
    class Linen(nn.Module):
        @nn.compact
        def __call__(self, x):
            return nn.relu(nn.Conv(4, (3, 3))(x))

    model = Linen()
    variables = model.init(jax.random.PRNGKey(0), jnp.zeros((1,) + SIZE + (1,)))
    rep = jinvert.flax_layer(model, variables, "Conv_0", input_size=SIZE, channels=1)
    x = rep.preprocess(_photo(1))
    assert x.shape == SIZE + (1,)
    p = variables["params"]["Conv_0"]
    by_hand = _conv(x[None], p["kernel"], p["bias"], 1, ("NHWC", "HWIO", "NHWC"))[0]
    np.testing.assert_allclose(rep(x), by_hand, rtol=1e-5, atol=1e-6)


# -- equinox, RGB input -----------------------------------------------------

def _equinox_net():
    eqx = pytest.importorskip(
        "equinox", reason="equinox is not installed (pip install equinox; the test extra has it)")

    class EqxNet(eqx.Module):
        """conv1(3 → 6, 3 × 3, stride 2) → relu1 → conv2(6 → 8) → relu2; the
        call stops at the layer it is asked for."""
        conv1: eqx.nn.Conv2d
        conv2: eqx.nn.Conv2d

        def __init__(self, key):
            k1, k2 = jax.random.split(key)
            self.conv1 = eqx.nn.Conv2d(3, 6, 3, stride=2, padding=1, key=k1)
            self.conv2 = eqx.nn.Conv2d(6, 8, 3, padding=1, key=k2)

        def __call__(self, x, layer):
            x = jax.nn.relu(self.conv1(x))
            if layer == "relu1":
                return x
            x = jax.nn.relu(self.conv2(x))
            if layer == "relu2":
                return x
            raise ValueError(f"EqxNet has no layer {layer!r}")

    return EqxNet(jax.random.PRNGKey(0))


def test_equinox_layer_equals_the_hand_computation():
    model = _equinox_net()
    relu1 = jinvert.equinox_layer(model, "relu1", input_size=SIZE)
    relu2 = jinvert.equinox_layer(model, "relu2", input_size=SIZE)
    x = relu1.preprocess(_photo())
    nchw = ("NCHW", "OIHW", "NCHW")
    chw = jnp.moveaxis(x, -1, 0)[None]
    h1 = jax.nn.relu(_conv(chw, model.conv1.weight, model.conv1.bias, 2, nchw, PAD1))
    assert h1.shape == (1, 6, 16, 16)
    np.testing.assert_allclose(relu1(x), h1[0], rtol=1e-5, atol=1e-6)
    h2 = jax.nn.relu(_conv(h1, model.conv2.weight, model.conv2.bias, 1, nchw, PAD1))
    np.testing.assert_allclose(relu2(x), h2[0], rtol=1e-5, atol=1e-6)
    # Another call convention, channels last: the layer as a method's argument.
    last = jinvert.equinox_layer(model, "relu1", channels_first=False, input_size=SIZE,
                                 call=lambda m, y, layer: m(jnp.moveaxis(y, -1, 0), layer))
    np.testing.assert_allclose(last(x), h1[0], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="no layer 'relu9'"):
        jinvert.equinox_layer(model, "relu9", input_size=SIZE)
    # The gradient check runs in float64, on a float64 copy of the model
    # (equinox's convolutions take one dtype).
    def relu2_64():
        model64 = jax.tree_util.tree_map(
            lambda a: a.astype(jnp.float64) if isinstance(a, jax.Array) else a, model)
        return jinvert.equinox_layer(model64, "relu2", input_size=SIZE, sigma=1.0,
                                     call=lambda m, y, layer: m(y.astype(jnp.float64), layer))

    _check_jit_vmap_grad(relu2, x, relu2_64)


def test_invert_an_equinox_layer():
    rep = jinvert.equinox_layer(_equinox_net(), "relu2", input_size=SIZE)
    _check_inverts(rep, rep.preprocess(_photo()))


# -- any JAX function, 4 channels -------------------------------------------

MIX = np.array([[1.0, -0.5, 0.2],
                [0.3, 1.0, -0.7],
                [-0.4, 0.6, 1.0],
                [0.5, 0.5, -0.5]], np.float32)  # 4 channels in -> 3 out


def features(x):
    """(H, W, 4) -> (H/2, W/2, 3): relu of a 1 × 1 channel mix, then 2 × 2
    average pooling."""
    y = jax.nn.relu(jnp.einsum("hwc,cd->hwd", x, MIX, precision=HIGHEST))
    h, w, d = y.shape
    return y.reshape(h // 2, 2, w // 2, 2, d).mean(axis=(1, 3))


def rgbg(image):
    """(H, W, 3) in [0, 1] -> RGB and grey, minus 0.5: (H, W, 4)."""
    rgb = jinvert.images.to_rgb(image)
    return jnp.asarray(np.concatenate([rgb, jinvert.images.to_grey(rgb)[..., None]], -1)) - 0.5


def first_three(x):
    return jnp.clip(jnp.asarray(x)[..., :3] + 0.5, 0.0, 1.0)


def test_function_representation_four_channels_equals_numpy():
    rep = jinvert.function_representation(features, name="mix-pool", channels=4,
                                          preprocess=rgbg, deprocess=first_three)
    assert rep.input_size is None and rep.channels == 4 and rep.name == "mix-pool"
    x = rep.preprocess(_photo())
    assert x.shape == SIZE + (4,)
    xn = np.asarray(x, np.float64)
    by_hand = np.zeros((16, 16, 3))
    for i in range(16):
        for j in range(16):
            patch = xn[2 * i:2 * i + 2, 2 * j:2 * j + 2].reshape(4, 4)  # 4 pixels × 4 channels
            by_hand[i, j] = np.maximum(patch @ MIX.astype(np.float64), 0).mean(axis=0)
    np.testing.assert_allclose(rep(x), by_hand, rtol=1e-5, atol=1e-6)
    # σ on the bundled photo in this input space, B from white and black.
    assert rep.sigma == pytest.approx(jinvert.model_layer.estimate_sigma(rgbg))
    assert rep.pixel_range == pytest.approx(0.5)
    with pytest.raises(ValueError, match="channels=4: pass preprocess="):
        jinvert.function_representation(features, channels=4)
    with pytest.raises(ValueError, match="not \\(32, 32, 4\\)"):
        jinvert.function_representation(features, channels=4, input_size=SIZE,
                                        preprocess=lambda im: jnp.asarray(im) - 0.5,
                                        deprocess=first_three)
    _check_jit_vmap_grad(rep, x[:8, :8])


def test_invert_a_function():
    rep = jinvert.function_representation(features, channels=4, preprocess=rgbg,
                                          deprocess=first_three)
    x0 = rep.preprocess(_photo())
    r = jinvert.invert(rep, rep(x0), key=jax.random.PRNGKey(0), shape=x0.shape,
                       config=rep.defaults.replace(lambda_tv=0.5, stages=(30,)))
    start = float(np.sqrt(r.history["data"][0, 0]))
    end = jinvert.relative_error(r.codes[0], rep(x0))
    assert r.images.shape == (1,) + SIZE + (4,)
    assert np.isfinite(end) and end < 0.6 * start, (start, end)
