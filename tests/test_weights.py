"""Reading AlexNet weights: files written here in the real formats (MatConvNet
.mat via SciPy, Caffe .caffemodel via a protobuf writer of this test, .npz,
torch state dicts) with random parameters of the real shapes; wrong shapes;
downloads from a file:// URL."""

import os
import pathlib

import jax
import numpy as np
import pytest
import scipy.io

from jinvert import weights as W
from jinvert.representations import alexnet as A


@pytest.fixture(scope="module")
def params():
    p = A.random_params(jax.random.PRNGKey(5), "caffe-ref", bias=0.1)
    return {k: {q: np.asarray(v[q]) for q in v} for k, v in p.items()}


def assert_same_params(got, want):
    assert set(got) == set(want)
    for name in want:
        for part in ("kernel", "bias"):
            np.testing.assert_array_equal(got[name][part], want[name][part], err_msg=name)


# --------------------------------------------------------------------------
# A protobuf writer independent of the library's reader
# --------------------------------------------------------------------------

def varint(n):
    out = bytearray()
    while True:
        b, n = n & 0x7F, n >> 7
        out.append(b | (0x80 if n else 0))
        if not n:
            return bytes(out)


def field_bytes(num, payload):
    return varint(num << 3 | 2) + varint(len(payload)) + payload


def field_int(num, value):
    return varint(num << 3) + varint(value)


def blob(arr, legacy=False):
    arr = np.asarray(arr, np.float32)
    if legacy:  # V1: num/channels/height/width, padded on the left with 1s
        dims = (1,) * (4 - arr.ndim) + arr.shape
        head = b"".join(field_int(i + 1, d) for i, d in enumerate(dims))
    else:  # BlobShape {repeated int64 dim = 1 [packed]}
        head = field_bytes(7, field_bytes(1, b"".join(varint(d) for d in arr.shape)))
    return head + field_bytes(5, arr.astype("<f4").tobytes())


V1_CODES = {"Convolution": 4, "InnerProduct": 14, "LRN": 15, "Pooling": 17, "ReLU": 18}


def caffemodel(params, order, v1=False, override=None):
    """A NetParameter in Caffe's layout: OIHW kernels, BGR conv1, fc matrices."""
    out = field_bytes(1, b"TestNet")
    for lname in order:
        name = lname[1:] if lname.startswith("mpool") else lname
        ltype = {"c": "Convolution", "f": "InnerProduct", "r": "ReLU", "m": "Pooling",
                 "n": "LRN"}[lname[0]]
        blobs = []
        if override and lname in override:
            blobs = override[lname]
        elif lname in params:
            k = params[lname]["kernel"]
            w = k.transpose(3, 2, 0, 1)  # (kh, kw, cin, cout) -> (cout, cin, kh, kw)
            if lname == "conv1":
                w = w[:, ::-1]  # Caffe's first layer reads B, G, R
            if ltype == "InnerProduct":
                w = w.reshape(w.shape[0], -1)
            blobs = [w, params[lname]["bias"]]
        if v1:
            body = field_bytes(4, name.encode()) + field_int(5, V1_CODES[ltype])
            body += b"".join(field_bytes(6, blob(b, legacy=True)) for b in blobs)
            out += field_bytes(2, body)
        else:
            body = field_bytes(1, name.encode()) + field_bytes(2, ltype.encode())
            body += b"".join(field_bytes(7, blob(b)) for b in blobs)
            out += field_bytes(100, body)
    return out


# --------------------------------------------------------------------------
# Caffe
# --------------------------------------------------------------------------

def test_caffemodel_current_format(tmp_path, params):
    path = tmp_path / "bvlc_reference_caffenet.caffemodel"
    path.write_bytes(caffemodel(params, A.LAYERS))
    w = W.load(path)
    assert (w.format, w.variant, w.mean) == ("caffemodel", "caffe-ref", None)
    assert_same_params(w.params, params)


def test_caffemodel_v1_format_and_bgr_semantics(tmp_path, params):
    path = tmp_path / "bvlc_alexnet.caffemodel"
    path.write_bytes(caffemodel(params, A.VARIANT_LAYERS["caffe-alex"], v1=True))
    w = W.load(path)
    assert w.variant == "caffe-alex"  # norm1 before pool1 in the file
    assert_same_params(w.params, params)
    # What Caffe computes for one conv1 unit on a BGR image equals ours on RGB.
    rgb = np.random.default_rng(0).random((11, 11, 3)).astype(np.float32)
    caffe_w = params["conv1"]["kernel"].transpose(3, 2, 0, 1)[:, ::-1]  # as stored
    bgr = rgb[..., ::-1].transpose(2, 0, 1)
    want = np.einsum("ochw,chw->o", caffe_w, bgr) + params["conv1"]["bias"]
    got = np.einsum("hwco,hwc->o", w.params["conv1"]["kernel"], rgb) + w.params["conv1"]["bias"]
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-4)


def test_caffemodel_wrong_architecture(tmp_path, params):
    path = tmp_path / "ten_classes.caffemodel"
    bad = {"fc8": [np.zeros((10, 4096), np.float32), np.zeros(10, np.float32)]}
    # conv1..conv5 real, fc6/fc7 left out to keep the file small, fc8 wrong:
    # each layer is checked in order, so name the first missing one.
    small = {k: v for k, v in params.items() if k.startswith("conv")}
    small["fc8"] = params["fc8"]
    path.write_bytes(caffemodel(small, A.LAYERS[:15] + ("fc8",), override=bad))
    with pytest.raises(ValueError, match="no layer 'fc6'"):
        W.load(path)
    # A network with 10 classes: fc8 does not fit, the message says how.
    fc = {"fc6": [np.zeros((4096, 9216), np.float32), np.zeros(4096, np.float32)],
          "fc7": [np.zeros((4096, 4096), np.float32), np.zeros(4096, np.float32)]}
    path.write_bytes(caffemodel(small, A.LAYERS, override=dict(bad, **fc)))
    with pytest.raises(ValueError, match=r"layer fc8 kernel has shape \(10, 4096\), "
                                         r"expected \(1000, 4096\)"):
        W.load(path)


# --------------------------------------------------------------------------
# MatConvNet
# --------------------------------------------------------------------------

def mat_layers(params, order, new_style=False, override=None):
    cells = []
    for name in order:
        if name in params:
            k = (override or {}).get(name, params[name]["kernel"])
            b = params[name]["bias"]
            layer = {"name": name, "type": "conv", "stride": 1, "pad": 0}
            if new_style:
                wb = np.empty(2, dtype=object)
                wb[0], wb[1] = k, b.reshape(1, -1)
                layer["weights"] = wb
            else:
                layer["filters"], layer["biases"] = k, b.reshape(1, -1)
        elif name.startswith("relu"):
            layer = {"name": name, "type": "relu"}
        elif name.startswith("mpool"):
            layer = {"name": name[1:], "type": "pool", "method": "max",
                     "pool": np.array([3, 3]), "stride": 2, "pad": 0}
        else:
            layer = {"name": name, "type": "normalize", "param": np.array([5, 1, 2e-5, 0.75])}
        cells.append(layer)
    cells.append({"name": "prob", "type": "softmax"})
    arr = np.empty(len(cells), dtype=object)
    arr[:] = cells
    return arr


def test_matconvnet_old_format(tmp_path, params):
    mean = np.random.default_rng(1).uniform(90, 130, (227, 227, 3)).astype(np.float32)
    desc = np.array([f"class {i}" for i in range(1000)], dtype=object)
    path = tmp_path / "imagenet-caffe-ref.mat"
    scipy.io.savemat(path, {"layers": mat_layers(params, A.LAYERS),
                            "normalization": {"averageImage": mean,
                                              "imageSize": np.array([227, 227, 3])},
                            "classes": {"name": desc, "description": desc}})
    w = W.load(path)
    assert (w.format, w.variant) == ("matconvnet", "caffe-ref")
    assert_same_params(w.params, params)
    np.testing.assert_array_equal(w.mean, mean)
    assert len(w.classes) == 1000 and w.classes[7] == "class 7"
    # The representation subtracts the file's mean image.
    rep = A.alexnet(w, "conv1")
    np.testing.assert_allclose(np.asarray(rep.preprocess(np.zeros((227, 227, 3)))), -mean)


def test_matconvnet_new_format_caffe_alex(tmp_path, params):
    path = tmp_path / "imagenet-caffe-alex.mat"
    colour = np.array([122.7, 116.7, 104.0], np.float32)
    scipy.io.savemat(path, {"layers": mat_layers(params, A.VARIANT_LAYERS["caffe-alex"],
                                                 new_style=True),
                            "meta": {"normalization": {"averageImage": colour.reshape(1, 1, 3)}}})
    w = W.load(path)
    assert w.variant == "caffe-alex"
    assert_same_params(w.params, params)
    np.testing.assert_allclose(np.ravel(w.mean), colour)


def test_matconvnet_wrong_architecture(tmp_path, params):
    path = tmp_path / "other.mat"
    small = {k: params[k] for k in ("conv1", "conv2", "conv3")}
    bad = {"conv3": np.zeros((3, 3, 256, 300), np.float32)}
    scipy.io.savemat(path, {"layers": mat_layers(small, A.LAYERS[:10], override=bad)})
    with pytest.raises(ValueError, match=r"layer conv3 kernel has shape \(3, 3, 256, 300\), "
                                         r"expected \(3, 3, 256, 384\)"):
        W.load(path)
    scipy.io.savemat(path, {"layers": mat_layers(small, A.LAYERS[:10])})
    with pytest.raises(ValueError, match="no layer 'conv4'"):
        W.load(path)


# --------------------------------------------------------------------------
# NumPy, torch, bad files
# --------------------------------------------------------------------------

def test_npz_roundtrip_and_wrong_shape(tmp_path, params):
    path = tmp_path / "alexnet.npz"
    mean = np.array([1.0, 2.0, 3.0], np.float32)
    W.save_npz(path, params, variant="caffe-alex", mean=mean)
    w = W.load(path)
    assert (w.format, w.variant) == ("npz", "caffe-alex")
    assert_same_params(w.params, params)
    np.testing.assert_array_equal(w.mean, mean)
    # Forgetting the two filter groups of conv2 is the classic mistake.
    bad = {f"{n}/{p}": params[n][p] for n in params for p in ("kernel", "bias")}
    bad["conv2/kernel"] = np.zeros((5, 5, 96, 256), np.float32)
    np.savez(tmp_path / "bad.npz", **bad)
    with pytest.raises(ValueError, match=r"conv2 kernel has shape \(5, 5, 96, 256\), "
                                         r"expected \(5, 5, 48, 256\)"):
        W.load(tmp_path / "bad.npz")


def test_torchvision_state_dict(tmp_path):
    torch = pytest.importorskip("torch", reason="torch not installed")
    p = A.random_params(jax.random.PRNGKey(2), "torchvision")
    keys = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
            "conv4": "features.8", "conv5": "features.10", "fc6": "classifier.1",
            "fc7": "classifier.4", "fc8": "classifier.6"}
    state = {}
    for name, key in keys.items():
        k = np.asarray(p[name]["kernel"]).transpose(3, 2, 0, 1)
        if name.startswith("fc"):
            k = k.reshape(k.shape[0], -1)
        state[f"{key}.weight"] = torch.from_numpy(np.ascontiguousarray(k))
        state[f"{key}.bias"] = torch.from_numpy(np.array(p[name]["bias"]))
    path = tmp_path / "alexnet-owt.pth"
    torch.save(state, path)
    w = W.load(path)
    assert (w.format, w.variant) == ("torchvision", "torchvision")
    for name in keys:
        np.testing.assert_array_equal(w.params[name]["kernel"], np.asarray(p[name]["kernel"]))


def test_bad_files(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        W.load(tmp_path / "missing.mat")
    junk = tmp_path / "junk.bin"
    junk.write_bytes(b"\x07\xff\xff" * 50)
    with pytest.raises(ValueError, match="cannot read"):
        W.load(junk)
    v73 = tmp_path / "v73.mat"
    v73.write_bytes(b"MATLAB 7.3 MAT-file, Platform: GLNXA64" + b"\0" * 200)
    with pytest.raises(ValueError, match="v7.3"):
        W.load(v73)


# --------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------

def test_fetch_from_file_url(tmp_path):
    import hashlib

    src = tmp_path / "weights.bin"
    src.write_bytes(os.urandom(3000))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()
    cache = tmp_path / "cache"
    path = W.fetch("weights.bin", url=src.as_uri(), cache_dir=str(cache), sha256=digest)
    assert pathlib.Path(path).read_bytes() == src.read_bytes()
    assert os.path.dirname(path) == str(cache)
    # Cached: found again without the source.
    src2 = src.read_bytes()
    src.unlink()
    assert W.fetch("weights.bin", url=src.as_uri(), cache_dir=str(cache),
                   sha256=digest[:16]) == path
    # A wrong checksum discards the download and says so.
    src.write_bytes(src2 + b"tampered")
    with pytest.raises(ValueError, match="sha256"):
        W.fetch("other.bin", url=src.as_uri(), cache_dir=str(cache), sha256=digest)
    assert sorted(os.listdir(cache)) == ["weights.bin"]
    # A known name with a local URL, and unknown names.
    p2 = W.fetch("caffenet", url=src.as_uri(), cache_dir=str(cache),
                 sha256=hashlib.sha256(src.read_bytes()).hexdigest())
    assert os.path.basename(p2) == "bvlc_reference_caffenet.caffemodel"
    with pytest.raises(ValueError, match="known: caffe-ref"):
        W.fetch("vgg16", cache_dir=str(cache))
    with pytest.raises(ValueError, match="cannot download"):
        W.fetch("x.bin", url=(tmp_path / "nope").as_uri(), cache_dir=str(cache))
