"""CNN-A (AlexNet): layers against NumPy / PyTorch references, gradients,
jit/vmap, geometry, bad input. Random parameters of the real shapes; the
pretrained-weights tests skip unless $JINVERT_ALEXNET_WEIGHTS names a file."""

import os
import warnings

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jinvert import weights
from jinvert.config import Config

from jinvert.representations import alexnet as A
from jinvert.representations import caffe_layers as L


@pytest.fixture(scope="module")
def params():
    return A.random_params(jax.random.PRNGKey(0), "caffe-ref")


@pytest.fixture(scope="module")
def tv_params():
    return A.random_params(jax.random.PRNGKey(1), "torchvision")


def np_params(params):
    return {k: {p: np.asarray(v[p], np.float64) for p in v} for k, v in params.items()}


# --------------------------------------------------------------------------
# Independent NumPy references (float64, loops where it keeps them obvious)
# --------------------------------------------------------------------------

def np_conv(x, kernel, bias, stride, pad, groups):
    """(H, W, Cin) * (kh, kw, Cin/g, Cout) by explicit patches, group by group."""
    x = np.pad(x, ((pad, pad), (pad, pad), (0, 0)))
    kh, kw, cg, cout = kernel.shape
    H = (x.shape[0] - kh) // stride + 1
    W = (x.shape[1] - kw) // stride + 1
    og = cout // groups
    out = np.zeros((H, W, cout))
    for g in range(groups):
        xs = x[:, :, g * cg:(g + 1) * cg]
        ks = kernel[..., g * og:(g + 1) * og]
        for i in range(H):
            for j in range(W):
                patch = xs[i * stride:i * stride + kh, j * stride:j * stride + kw]
                out[i, j, g * og:(g + 1) * og] = np.tensordot(patch, ks, axes=3)
    return out + bias


def np_lrn(x, n=5, alpha=1e-4, beta=0.75, k=1.0):
    """Caffe's LRN: x_c / (k + alpha/n Σ_{c' in window} x_c'^2)^beta."""
    C = x.shape[-1]
    out = np.empty_like(x)
    for c in range(C):
        lo, hi = max(0, c - n // 2), min(C, c + n // 2 + 1)
        s = np.sum(x[..., lo:hi] ** 2, axis=-1)
        out[..., c] = x[..., c] / (k + alpha / n * s) ** beta
    return out


def np_pool_ceil(x, size=3, stride=2):
    """Caffe max pooling: ceil rounding, windows clipped at the border."""
    H, W = x.shape[:2]
    Ho = int(np.ceil((H - size) / stride)) + 1
    Wo = int(np.ceil((W - size) / stride)) + 1
    out = np.empty((Ho, Wo) + x.shape[2:])
    for i in range(Ho):
        for j in range(Wo):
            win = x[i * stride:min(i * stride + size, H), j * stride:min(j * stride + size, W)]
            out[i, j] = win.max(axis=(0, 1))
    return out


def image(key, hw=(227, 227), scale=60.0):
    return scale * jax.random.normal(jax.random.PRNGKey(key), hw + (3,), jnp.float32)


# --------------------------------------------------------------------------
# Layer types
# --------------------------------------------------------------------------

def test_lrn_matches_caffe_formula():
    # Large activations so the normalisation is far from the identity.
    x = np.random.default_rng(1).normal(0, 150, (3, 4, 13)).astype(np.float32)
    got = np.asarray(L.lrn(jnp.asarray(x)))
    want = np_lrn(x.astype(np.float64))
    assert np.abs(want / x).min() < 0.7  # the test really exercises the scaling
    np.testing.assert_allclose(got, want, rtol=2e-5, atol=1e-5)


@pytest.mark.parametrize("hw", [(8, 8), (13, 13), (27, 27), (10, 7)])
def test_max_pool_ceil_and_minus_inf_padding(hw):
    # All-negative values: zero padding would win the clipped border windows.
    x = -1.0 - np.random.default_rng(2).random(hw + (4,)).astype(np.float32)
    got = np.asarray(L.max_pool(jnp.asarray(x)[None])[0])
    want = np_pool_ceil(x)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want.astype(np.float32))
    assert L.caffe_pool_output_size(hw[0]) == want.shape[0]


def test_pool_ceil_differs_from_floor():
    # 8 → 4 with Caffe's ceil rounding, 3 with floor.
    assert L.caffe_pool_output_size(8) == 4
    x = jnp.zeros((1, 8, 8, 1))
    assert L.max_pool(x, ceil_mode=False).shape == (1, 3, 3, 1)


@pytest.mark.parametrize("hw,k,stride,pad", [
    ((67, 61), 11, 4, 0),   # conv1: space-to-depth
    ((64, 60), 11, 4, 2),   # torchvision's conv1: padded, then space-to-depth
    ((21, 18), 5, 1, 2),    # conv2: plain
    ((13, 11), 3, 1, 1),    # conv3-5: matrix product of patches
    ((70, 40), 3, 1, 1),    # a large map: bands of rows (70·40 > 2048)
    ((19, 23), 4, 3, 1),    # stride not dividing the kernel
])
def test_conv2d_matches_numpy(hw, k, stride, pad):
    rng = np.random.default_rng(5)
    x = rng.normal(0, 1, hw + (3,)).astype(np.float32)
    kernel = rng.normal(0, 0.1, (k, k, 3, 4)).astype(np.float32)
    got = np.asarray(L.conv2d(jnp.asarray(x)[None], jnp.asarray(kernel), stride, pad)[0])
    want = np_conv(x.astype(np.float64), kernel.astype(np.float64), 0.0, stride, pad, 1)
    assert got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_conv2d_gradient_matches_lax_convolution():
    # The rewrites change the gradient's computation too; compare it with
    # the gradient of XLA's own strided, padded convolution.
    rng = np.random.default_rng(6)
    for hw, k, stride, pad in [((67, 61), 11, 4, 0), ((70, 40), 3, 1, 1), ((13, 11), 3, 1, 1)]:
        x = jnp.asarray(rng.normal(0, 1, (2,) + hw + (3,)), jnp.float32)
        kernel = jnp.asarray(rng.normal(0, 0.1, (k, k, 3, 4)), jnp.float32)
        lax_conv = lambda x: jax.lax.conv_general_dilated(  # noqa: E731
            x, kernel, (stride, stride), ((pad, pad), (pad, pad)),
            dimension_numbers=("NHWC", "HWIO", "NHWC"))
        ours = jax.grad(lambda x: jnp.sum(jnp.sin(L.conv2d(x, kernel, stride, pad))))(x)
        want = jax.grad(lambda x: jnp.sum(jnp.sin(lax_conv(x))))(x)
        np.testing.assert_allclose(ours, want, rtol=1e-4, atol=1e-5)


def test_max_pool_gradient_goes_to_the_window_maximum():
    # Distinct values (no ties): d/dx Σ pool(x) counts, for each input, the
    # windows whose maximum it is (Caffe's gradient), windows clipped at the
    # border as in the forward pass.
    x = np.random.default_rng(7).permutation(9 * 8 * 2).reshape(9, 8, 2).astype(np.float32)
    got = np.asarray(jax.grad(lambda x: jnp.sum(L.max_pool(x[None])))(jnp.asarray(x)))
    want = np.zeros_like(x)
    for i in range(L.caffe_pool_output_size(9)):
        for j in range(L.caffe_pool_output_size(8)):
            win = x[2 * i:2 * i + 3, 2 * j:2 * j + 3]
            for c in range(2):
                a, b = np.unravel_index(np.argmax(win[..., c]), win.shape[:2])
                want[2 * i + a, 2 * j + b, c] += 1
    np.testing.assert_array_equal(got, want)


def test_network_layers_match_numpy(params):
    """conv1 (stride 4), mpool1, norm1, conv2 (2 groups) of the network, each
    from the previous layer's output, against the NumPy references."""
    p = np_params(params)
    x = image(3, (67, 67))
    out = {n: np.asarray(A.alexnet(params, n)(x), np.float64)
           for n in ("conv1", "relu1", "mpool1", "norm1", "conv2")}
    np.testing.assert_allclose(out["conv1"], np_conv(np.asarray(x, np.float64),
                               p["conv1"]["kernel"], p["conv1"]["bias"], 4, 0, 1),
                               rtol=1e-4, atol=1e-2)
    np.testing.assert_allclose(out["relu1"], np.maximum(out["conv1"], 0), atol=1e-6)
    np.testing.assert_allclose(out["mpool1"], np_pool_ceil(out["relu1"]), atol=1e-6)
    np.testing.assert_allclose(out["norm1"], np_lrn(out["mpool1"]), rtol=1e-4, atol=1e-4)
    want = np_conv(out["norm1"], p["conv2"]["kernel"], p["conv2"]["bias"], 1, 2, 2)
    np.testing.assert_allclose(out["conv2"], want, rtol=1e-4, atol=1e-2)
    # A single-group convolution would give something else: groups matter.
    assert out["conv2"].shape == (7, 7, 256)


def test_grouped_conv4_and_caffe_alex_order(params):
    p = np_params(params)
    x = image(4, (99, 99))
    r3 = np.asarray(A.alexnet(params, "relu3")(x), np.float64)
    c4 = np.asarray(A.alexnet(params, "conv4")(x), np.float64)
    np.testing.assert_allclose(c4, np_conv(r3, p["conv4"]["kernel"], p["conv4"]["bias"],
                                           1, 1, 2), rtol=1e-4, atol=1e-2)
    # bvlc_alexnet normalises before pooling.
    relu1 = np.asarray(A.alexnet(params, "relu1", "caffe-alex")(x), np.float64)
    norm1 = np.asarray(A.alexnet(params, "norm1", "caffe-alex")(x), np.float64)
    pool1 = np.asarray(A.alexnet(params, "mpool1", "caffe-alex")(x), np.float64)
    np.testing.assert_allclose(norm1, np_lrn(relu1), rtol=1e-4, atol=1e-4)
    np.testing.assert_allclose(pool1, np_pool_ceil(norm1), atol=1e-5)
    assert A.VARIANT_LAYERS["caffe-alex"][:4] == ("conv1", "relu1", "norm1", "mpool1")


def test_output_sizes_at_227(params):
    want = {"conv1": (55, 55, 96), "mpool1": (27, 27, 96), "norm1": (27, 27, 96),
            "conv2": (27, 27, 256), "mpool2": (13, 13, 256), "conv3": (13, 13, 384),
            "conv4": (13, 13, 384), "relu5": (13, 13, 256), "mpool5": (6, 6, 256),
            "fc6": (1, 1, 4096), "relu7": (1, 1, 4096), "fc8": (1, 1, 1000)}
    x = jax.ShapeDtypeStruct((227, 227, 3), jnp.float32)
    for variant in ("caffe-ref", "caffe-alex"):
        if variant == "caffe-alex":  # normalises before pooling
            want = dict(want, norm1=(55, 55, 96))
        for name, shape in want.items():
            rep = A.alexnet(params, name, variant)
            assert jax.eval_shape(rep.apply, x).shape == shape, (variant, name)
            assert A.output_shape(name, variant) == shape
    assert len(A.LAYERS) == 20 and A.LAYERS[14] == "mpool5"


def test_fc6_is_the_dense_layer_on_pool5(params):
    x = image(5)
    pool5 = np.asarray(A.alexnet(params, "mpool5")(x), np.float64)
    fc6 = np.asarray(A.alexnet(params, "fc6")(x), np.float64)
    k = np.asarray(params["fc6"]["kernel"], np.float64).reshape(-1, 4096)
    want = pool5.reshape(-1) @ k + np.asarray(params["fc6"]["bias"])
    np.testing.assert_allclose(fc6.reshape(-1), want, rtol=1e-3, atol=1e-2 * np.abs(want).max())


# --------------------------------------------------------------------------
# Against PyTorch (an independent implementation), when torch is installed
# --------------------------------------------------------------------------

# The networks written out again here (not read from jinvert's tables), so
# that a wrong stride, padding, group count or layer order in jinvert shows.
# name: (stride, padding, groups); the kernels come with the params.
_CAFFE = {"conv1": (4, 0, 1), "conv2": (1, 2, 2), "conv3": (1, 1, 1), "conv4": (1, 1, 2),
          "conv5": (1, 1, 2), "fc6": (1, 0, 1), "fc7": (1, 0, 1), "fc8": (1, 0, 1)}
_TORCHVISION = {"conv1": (4, 2, 1), "conv2": (1, 2, 1), "conv3": (1, 1, 1),
                "conv4": (1, 1, 1), "conv5": (1, 1, 1), "fc6": (1, 0, 1), "fc7": (1, 0, 1),
                "fc8": (1, 0, 1)}
_TAIL = ("conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "mpool5",
         "fc6", "relu6", "fc7", "relu7", "fc8")
TORCH_NETS = {  # variant: (layers in evaluation order, convolutions)
    # CaffeNet pools before normalising, bvlc_alexnet after; torchvision has no LRN.
    "caffe-ref": (("conv1", "relu1", "mpool1", "norm1", "conv2", "relu2", "mpool2", "norm2")
                  + _TAIL, _CAFFE),
    "caffe-alex": (("conv1", "relu1", "norm1", "mpool1", "conv2", "relu2", "norm2", "mpool2")
                   + _TAIL, _CAFFE),
    "torchvision": (("conv1", "relu1", "mpool1", "conv2", "relu2", "mpool2") + _TAIL,
                    _TORCHVISION),
}


def torch_forward(params, x, variant):
    torch = pytest.importorskip("torch")
    F = torch.nn.functional
    t = torch.from_numpy(np.array(x, np.float32)).permute(2, 0, 1)[None]
    layers, convs = TORCH_NETS[variant]
    for name in layers:
        if name in convs:
            s, pd, g = convs[name]
            w = torch.from_numpy(np.array(params[name]["kernel"])).permute(3, 2, 0, 1)
            b = torch.from_numpy(np.array(params[name]["bias"]))
            t = F.conv2d(t, w.contiguous(), b, stride=s, padding=pd, groups=g)
        elif name.startswith("relu"):
            t = F.relu(t)
        elif name.startswith("mpool"):
            t = F.max_pool2d(t, 3, 2, ceil_mode=variant != "torchvision")
        else:
            t = F.local_response_norm(t, 5, alpha=1e-4, beta=0.75, k=1.0)
    return t[0].permute(1, 2, 0).numpy()


@pytest.mark.parametrize("variant", ["caffe-ref", "caffe-alex", "torchvision"])
def test_fc8_matches_pytorch(variant, params, tv_params):
    p = params if variant != "torchvision" else tv_params
    x = image(6, A.INPUT_SIZE[variant], 60.0 if variant != "torchvision" else 1.0)
    got = np.asarray(A.alexnet(p, "fc8", variant)(x))
    want = torch_forward(p, x, variant)
    assert got.shape == want.shape == (1, 1, 1000)
    np.testing.assert_allclose(got, want, rtol=1e-3, atol=1e-3 * np.abs(want).max())


# --------------------------------------------------------------------------
# Differentiation, jit, vmap
# --------------------------------------------------------------------------

@pytest.mark.parametrize("layer,hw", [("norm2", (67, 67)), ("relu5", (99, 99)),
                                      ("fc8", (227, 227))])
def test_gradient_matches_finite_differences(params, layer, hw):
    rep = A.alexnet(params, layer)
    x0 = image(7, hw)
    target = rep.apply(image(8, hw))

    def loss(x):  # the paper's data term
        return jnp.sum((rep.apply(x) - target) ** 2) / jnp.sum(target ** 2)

    g = jax.grad(loss)(x0)
    assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.abs(g).max()) > 0
    v = jax.random.normal(jax.random.PRNGKey(9), x0.shape)
    v = v / jnp.linalg.norm(v)
    eps = 0.5  # input units (±128 scale): big enough to beat float32 rounding
    fd = (loss(x0 + eps * v) - loss(x0 - eps * v)) / (2 * eps)
    an = jnp.vdot(g, v)
    assert abs(float(fd - an)) <= 0.03 * abs(float(an)) + 1e-7, (float(fd), float(an))


def test_gradient_is_finite_for_flat_image_and_zero_code(params):
    rep = A.alexnet(params, "norm2")
    g = jax.grad(lambda x: jnp.sum(rep.apply(x) ** 2))(jnp.zeros((67, 67, 3)))
    assert bool(jnp.all(jnp.isfinite(g)))


def test_jit_and_vmap_agree(params):
    rep = A.alexnet(params, "mpool5")
    xs = jnp.stack([image(10 + i) for i in range(3)])
    one = [np.asarray(rep.apply(x)) for x in xs]
    batched = np.asarray(rep(xs))  # vmapped
    jitted = np.asarray(jax.jit(jax.vmap(rep.apply))(xs))
    for i in range(3):
        np.testing.assert_allclose(batched[i], one[i], rtol=1e-4, atol=1e-3)
        np.testing.assert_allclose(jitted[i], one[i], rtol=1e-4, atol=1e-3)
    assert not np.allclose(one[0], one[1])


@pytest.mark.parametrize("pieces", [1, 2, 8])
def test_batch_in_pieces_equals_one_batch(params, pieces):
    # The convolutional layers run the batch in pieces (3 images in 1, 2 or
    # 3 pieces), the fully connected layers all at once: same codes and
    # gradients as image by image.
    xs = jnp.stack([image(20 + i) for i in range(3)])
    variables = {"params": {k: v for k, v in params.items()}}
    module = A.AlexNet(layer="fc7", pieces=pieces)
    got = np.asarray(jax.jit(module.apply)(variables, xs))
    rep = A.alexnet(params, "fc7")
    want = np.stack([np.asarray(rep.apply(x)) for x in xs])
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-3)
    g = jax.grad(lambda xs: jnp.sum(module.apply(variables, xs) ** 2))(xs)
    g1 = jax.grad(lambda x: jnp.sum(rep.apply(x) ** 2))(xs[1])
    np.testing.assert_allclose(g[1], g1, rtol=1e-3, atol=1e-3 * float(jnp.abs(g1).max()))


# --------------------------------------------------------------------------
# Names, defaults, geometry, pre/deprocessing, bad input
# --------------------------------------------------------------------------

def test_layer_names_and_unknown_layer(params):
    assert A.canonical_layer("pool5") == "mpool5"
    assert A.canonical_layer("mpool5") == "mpool5"
    assert A.canonical_layer(13) == "conv5"
    assert A.canonical_layer("4", "caffe-alex") == "mpool1"
    with pytest.raises(ValueError, match=r"valid layers: conv1, relu1, mpool1.*fc8"):
        A.alexnet(params, "conv6")
    with pytest.raises(ValueError, match="valid layers"):
        weights.alexnet_from_spec("alexnet:pool7", "random")
    with pytest.raises(ValueError, match="variant"):
        A.alexnet(params, "conv1", variant="vgg")


def test_paper_defaults():
    d = A.paper_defaults("relu1")
    assert d == Config(lambda_tv=0.5, beta=2.0, lambda_alpha=2.16e8, alpha=6.0,
                       learning_rate=0.004, stages=(100, 200, 100))
    assert A.paper_defaults("norm1").lambda_tv == 0.5      # layer 4
    assert A.paper_defaults("mpool2").lambda_tv == 5.0     # layer 7
    assert A.paper_defaults("relu4").lambda_tv == 5.0      # layer 12
    assert A.paper_defaults("conv5").lambda_tv == 50.0     # layer 13
    assert A.paper_defaults("fc8").lambda_tv == 50.0


def test_receptive_field_matches_gradient_support(params):
    assert A.receptive_field("conv1") == (11, 4, 5.0)
    assert A.receptive_field("conv5")[:2] == (163, 16)
    assert A.receptive_field("pool5")[:2] == (195, 32)
    size, stride, offset = A.receptive_field("conv2")
    assert (size, stride) == (51, 8)
    # The gradient of one conv2 unit w.r.t. the input lives inside its field.
    rep = A.alexnet(params, "conv2")
    i = j = 4
    g = jax.grad(lambda x: rep.apply(x)[i, j, 7])(image(11, (91, 91)))
    rows, cols = np.nonzero(np.abs(np.asarray(g)).sum(-1))
    c = offset + i * stride
    lo, hi = c - (size - 1) / 2, c + (size - 1) / 2
    assert rows.min() >= lo and rows.max() <= hi and cols.min() >= lo and cols.max() <= hi
    assert rows.max() - rows.min() >= 0.6 * size  # and fills most of it


def test_preprocess_roundtrip_and_input_space(params):
    rep = A.alexnet(params, "conv1")
    img = np.random.default_rng(3).random((227, 227, 3)).astype(np.float32)
    x = rep.preprocess(img)
    assert x.shape == (227, 227, 3) and x.dtype == jnp.float32
    assert float(jnp.abs(x).max()) <= 160 and float(x.min()) < -100  # ±128-ish
    np.testing.assert_allclose(np.asarray(rep.deprocess(x)), img, atol=1e-5)
    assert rep.sigma == A.PAPER_SIGMA and rep.input_size == (227, 227)
    grey = rep.preprocess(np.full((300, 400), 0.5, np.float32))
    assert grey.shape == (227, 227, 3)
    mean = np.zeros((227, 227, 3), np.float32) + [10, 20, 30]
    rep2 = A.alexnet(params, "conv1", mean=mean)
    np.testing.assert_allclose(np.asarray(rep2.preprocess(np.zeros((227, 227, 3))))[5, 5],
                               [-10, -20, -30])


def test_too_small_image_warns_and_too_small_input_raises(params):
    rep = A.alexnet(params, "relu5")
    with pytest.warns(UserWarning, match="smaller"):
        x = rep.preprocess(np.zeros((100, 150, 3), np.float32))
    assert x.shape == (227, 227, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        rep.preprocess(np.zeros((240, 320, 3), np.float32))  # no warning when shrinking
    with pytest.raises(ValueError, match="too small"):
        A.alexnet(params, "fc6")(np.zeros((100, 100, 3), np.float32))
    with pytest.raises(ValueError, match=r"\(H, W, 3\)"):
        rep(np.zeros((227, 227, 1), np.float32))


def test_from_spec_without_weights_explains(monkeypatch):
    monkeypatch.delenv(A.ENV_WEIGHTS, raising=False)
    with pytest.raises(ValueError, match="--weights random") as err:
        weights.alexnet_from_spec("alexnet:pool5")
    assert "imagenet-caffe-ref.mat" in str(err.value)
    with pytest.warns(UserWarning, match="random"):
        rep = weights.alexnet_from_spec("alexnet:pool5", "random")
    assert rep.name == "alexnet:mpool5" and rep.defaults.lambda_tv == 50.0


def test_random_params_reproducible_and_scaled(params, tv_params):
    a = tv_params
    b = A.random_params(jax.random.PRNGKey(1), "torchvision")
    np.testing.assert_array_equal(a["conv2"]["kernel"], b["conv2"]["kernel"])
    np.testing.assert_array_equal(a["fc8"]["kernel"], b["fc8"]["kernel"])
    assert not np.array_equal(params["conv3"]["kernel"], b["conv3"]["kernel"])
    assert a["conv1"]["kernel"].shape == (11, 11, 3, 64)
    rep = A.alexnet(a, "relu7", "torchvision")
    y = rep(rep.preprocess(np.random.default_rng(0).random((224, 224, 3))))
    assert float(jnp.std(y)) > 1e-2  # He scaling: activations do not vanish


# --------------------------------------------------------------------------
# Real pretrained weights (absent on the development machine)
# --------------------------------------------------------------------------

# ImageNet class indices acceptable for each scikit-image photo.
PHOTOS = {"chelsea": {281, 282, 283, 284, 285, 287},   # tabby, tiger cat, ..., lynx
          "coffee": {504, 967, 968, 925, 809},           # mug, espresso, cup, consomme, soup bowl
          "rocket": {812, 657, 744, 403}}                # space shuttle, missile, projectile, aircraft carrier


@pytest.mark.skipif(not os.environ.get(A.ENV_WEIGHTS),
                    reason="no pretrained AlexNet given: set "
                           f"${A.ENV_WEIGHTS} to MatConvNet's imagenet-caffe-ref.mat or another "
                           "AlexNet weight file (Caffe .caffemodel, .npz, torchvision state dict)")
@pytest.mark.parametrize("photo", sorted(PHOTOS))
def test_pretrained_top5(photo):
    skimage_data = pytest.importorskip("skimage.data")
    from jinvert import weights
    w = weights.load(os.environ[A.ENV_WEIGHTS])
    print(f"weights: {w.source} ({w.format}, {w.variant})")
    rep = A.alexnet(w, "fc8")
    img = getattr(skimage_data, photo)().astype(np.float32) / 255.0
    scores = np.asarray(rep(rep.preprocess(img))).reshape(-1)
    top5 = set(np.argsort(scores)[-5:].tolist())
    assert top5 & PHOTOS[photo], (photo, sorted(top5))


def test_fully_connected_dense_and_conv_paths_agree():
    fc = L.FullyConnected(features=5, kernel_size=6)
    x = jax.random.normal(jax.random.PRNGKey(12), (1, 7, 7, 8))
    v = fc.init(jax.random.PRNGKey(13), x[:, :6, :6])
    v = {"params": {"kernel": v["params"]["kernel"], "bias": jnp.arange(5.0)}}
    big = fc.apply(v, x)  # convolution: a 2×2 map of outputs
    assert big.shape == (1, 2, 2, 5)
    for i in range(2):
        for j in range(2):
            np.testing.assert_allclose(fc.apply(v, x[:, i:i + 6, j:j + 6])[0, 0, 0],
                                       big[0, i, j], rtol=1e-5, atol=1e-5)
