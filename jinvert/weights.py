"""Pretrained AlexNet weights from the files people have.

:func:`load` finds the format by itself and returns an :class:`AlexNetWeights`
whose ``params`` are ``{layer: {"kernel": (kh, kw, cin/groups, cout), "bias":
(cout,)}}`` float32 arrays for conv1..conv5, fc6..fc8 (the layout of
:mod:`jinvert.representations.alexnet`, RGB input order), every shape checked.

Formats:

- MatConvNet ``imagenet-caffe-ref.mat`` / ``imagenet-caffe-alex.mat``
  (MATLAB v5, read with SciPy): the old ``layers`` cell array with
  ``filters``/``biases`` fields, the newer simplenn ``weights = {filters,
  biases}``, and DagNN files (``params`` struct array of ``name``/``value``).
  MatConvNet already stores H×W×Cin×Cout, RGB; the mean image
  (``[meta.]normalization.averageImage``) and class descriptions are kept.
- Caffe ``.caffemodel`` (binary protobuf, both the current ``layer`` and the
  old V1 ``layers`` encodings), read by a small wire-format reader here (no
  protobuf dependency). Caffe stores Cout×Cin×H×W for BGR input; conv1 is
  flipped to RGB. The mean is the ImageNet mean colour (a .caffemodel
  carries none).
- NumPy ``.npz`` (see :func:`save_npz`): keys ``"conv1/kernel"`` (kh, kw,
  cin/groups, cout; RGB input), ``"conv1/bias"`` (cout,), …, ``"fc8/bias"``;
  optional ``"mean"`` ((3,) or (H, W, 3), RGB, 0..255) and ``"variant"``
  (a string: caffe-ref, caffe-alex or torchvision).
- torchvision's AlexNet state dict (``alexnet-owt-7be5be79.pth``), read with
  torch if it is installed.

:func:`fetch` downloads a known file to a cache and checks its digest.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import urllib.request
import warnings
import zipfile
from typing import Any

import jax
import numpy as np

from jinvert.representations import alexnet as _alexnet

CONVS = ("conv1", "conv2", "conv3", "conv4", "conv5", "fc6", "fc7", "fc8")


@dataclasses.dataclass(frozen=True, eq=False)
class AlexNetWeights:
    """Weights read by :func:`load`.

    Attributes:
      params: ``{layer: {"kernel": (kh, kw, cin/groups, cout), "bias": (cout,)}}``
        float32 NumPy arrays, RGB input order.
      variant: ``"caffe-ref"``, ``"caffe-alex"`` or ``"torchvision"``.
      mean: mean image ``(H, W, 3)`` or colour ``(3,)``, RGB, 0..255, or None
        (then the ImageNet mean colour is used; torchvision uses mean/std).
      classes: the 1000 class descriptions when the file has them, else None.
      source: the path read.
      format: ``"matconvnet"``, ``"caffemodel"``, ``"npz"`` or ``"torchvision"``.
    """

    params: dict[str, dict[str, np.ndarray]]
    variant: str
    mean: np.ndarray | None = None
    classes: tuple[str, ...] | None = None
    source: str = ""
    format: str = ""


# --------------------------------------------------------------------------
# Shape checking
# --------------------------------------------------------------------------

def _squeezed(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape if d != 1)


def _fit(layer: str, part: str, array, expected: tuple[int, ...],
         accepted: tuple[tuple[int, ...], ...] = ()) -> np.ndarray:
    """``array`` reshaped to ``expected``, or ValueError naming the layer.

    Singleton axes are ignored when comparing (MATLAB and SciPy drop or add
    them), and ``accepted`` lists other layouts with the same element order
    (for example a fully connected matrix for a 1×1 convolution).
    """
    array = np.asarray(array)
    found = tuple(array.shape)
    for form in (expected,) + tuple(accepted):
        if _squeezed(found) == _squeezed(form):
            return np.ascontiguousarray(array.reshape(expected), dtype=np.float32)
    raise ValueError(
        f"weights do not fit AlexNet: layer {layer} {part} has shape {found}, "
        f"expected {expected}; is this a file of another network?")


def _caffe_to_hwio(layer: str, part: str, array, expected: tuple[int, ...]) -> np.ndarray:
    """A Caffe/PyTorch (Cout, Cin, kh, kw) or fc (Cout, Cin·kh·kw) blob -> HWIO.

    Errors quote the shape in the file's own layout (a matrix for fc layers).
    """
    kh, kw, cin, cout = expected
    conv, dense = (cout, cin, kh, kw), (cout, cin * kh * kw)
    primary, other = (dense, conv) if layer.startswith("fc") else (conv, dense)
    oihw = _fit(layer, part, array, primary, accepted=(other,)).reshape(conv)
    return np.ascontiguousarray(oihw.transpose(2, 3, 1, 0))


def check(weights: AlexNetWeights) -> AlexNetWeights:
    """Raise ValueError (naming the layer, expected and found shapes) unless
    every parameter has the shape of ``weights.variant``; returns ``weights``."""
    _alexnet.check_params(weights.params, weights.variant)
    return weights


# --------------------------------------------------------------------------
# Format detection
# --------------------------------------------------------------------------

def load(path: str | os.PathLike, *, variant: str | None = None) -> AlexNetWeights:
    """Read AlexNet weights from ``path``, finding the format by itself.

    Args:
      path: a MatConvNet ``.mat``, Caffe ``.caffemodel``, ``.npz`` or
        torchvision ``.pth`` file (see the module docstring).
      variant: override the variant found in the file (caffe-ref and
        caffe-alex have the same shapes; the file's layer order tells them
        apart when it has one, else caffe-ref is assumed).

    Returns an :class:`AlexNetWeights` with every shape checked. Raises
    ``ValueError`` for a missing, unreadable or wrong-architecture file (the
    message names the layer and the expected and found shapes).
    """
    path = os.fspath(path)
    if not os.path.isfile(path):
        raise ValueError(f"weights file not found: {path}")
    with open(path, "rb") as f:
        head = f.read(128)
    if head.startswith(b"MATLAB"):
        if b"7.3" in head[:40]:
            raise ValueError(
                f"{path} is a MATLAB v7.3 (HDF5) file, which SciPy cannot read; "
                "re-save it in MATLAB with save(file, '-struct', 'net', '-v7')")
        weights = _load_mat(path)
    elif head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith(".npy") for n in names):
            weights = _load_npz(path)
        elif any(n.endswith("data.pkl") for n in names):
            weights = _load_torch(path)
        else:
            raise ValueError(f"{path}: a zip file that is neither .npz nor a torch file")
    elif head[:1] == b"\x80" and path.endswith((".pth", ".pt")):
        weights = _load_torch(path)  # legacy (non-zip) torch pickle
    else:
        try:
            weights = _load_caffemodel(path)
        except _ProtoError as err:
            raise ValueError(
                f"cannot read {path} as AlexNet weights: not a MatConvNet .mat, "
                f".npz, torch file or Caffe .caffemodel ({err})") from None
    if variant is not None:
        weights = dataclasses.replace(weights, variant=variant)
    return check(weights)


# --------------------------------------------------------------------------
# MatConvNet
# --------------------------------------------------------------------------

def _field(obj, *names, default=None):
    for name in names:
        if obj is not None and hasattr(obj, name):
            return getattr(obj, name)
    return default


def _as_list(x) -> list:
    if isinstance(x, np.ndarray) and x.dtype == object:
        return list(x.ravel())
    if isinstance(x, (list, tuple)):
        return list(x)
    return [x]


def _load_mat(path: str) -> AlexNetWeights:
    import scipy.io  # a listed dependency; imported here to keep `import jinvert` light

    try:
        mat = scipy.io.loadmat(path, squeeze_me=True, struct_as_record=False)
    except Exception as err:  # scipy raises several types for corrupt files
        raise ValueError(f"cannot read {path} as a MATLAB file ({err})") from None
    if "layers" not in mat:
        raise ValueError(f"{path}: no 'layers' variable; not a MatConvNet network "
                         f"(variables: {sorted(k for k in mat if not k.startswith('__'))})")
    layers = _as_list(mat["layers"])
    dag_params = {}
    if "params" in mat:  # DagNN: parameters live apart, referenced by name
        for p in _as_list(mat["params"]):
            dag_params[str(_field(p, "name"))] = _field(p, "value")
    names = [str(_field(l, "name", default="")) for l in layers]
    types = [str(_field(l, "type", default="")) for l in layers]
    variant = _variant_from_order(names, types)
    if "conv1" in names:  # 64 first-layer filters: torchvision's network
        k = _conv_weights(layers[names.index("conv1")], dag_params)[0]
        if k is not None and np.shape(k)[-1] == 64:
            variant = "torchvision"
    shapes = _alexnet.param_shapes(variant)
    params = {}
    for name, shp in shapes.items():
        if name not in names:
            raise ValueError(f"{path}: weights do not fit AlexNet: no layer {name!r} "
                             f"(layers found: {', '.join(names)})")
        kernel, bias = _conv_weights(layers[names.index(name)], dag_params)
        if kernel is None or bias is None:
            raise ValueError(f"{path}: layer {name} has no filters/biases")
        params[name] = {"kernel": _fit(name, "kernel", kernel, shp["kernel"]),
                        "bias": _fit(name, "bias", bias, shp["bias"])}
    meta = mat.get("meta")
    norm = _field(meta, "normalization") if meta is not None else mat.get("normalization")
    mean = _field(norm, "averageImage")
    mean = None if mean is None or np.size(mean) < 3 else np.asarray(mean, np.float32)
    cls = _field(meta, "classes") if meta is not None else mat.get("classes")
    desc = _field(cls, "description", "name")
    classes = tuple(str(d) for d in _as_list(desc)) if desc is not None else None
    return AlexNetWeights(params, variant, mean, classes, path, "matconvnet")


def _conv_weights(layer, dag_params):
    """(filters, biases) of one MatConvNet layer in any of its encodings."""
    w = _field(layer, "weights")
    if w is not None and len(_as_list(w)) == 2:
        return tuple(_as_list(w))
    f, b = _field(layer, "filters"), _field(layer, "biases")
    if f is not None:
        return f, b
    refs = _field(layer, "params")
    if refs is not None:
        refs = [str(r) for r in _as_list(refs)]
        if len(refs) == 2 and all(r in dag_params for r in refs):
            return dag_params[refs[0]], dag_params[refs[1]]
    return None, None


def _variant_from_order(names: list[str], types: list[str]) -> str:
    """caffe-alex normalises before pooling, caffe-ref pools first."""
    def first(pred):
        return next((i for i, (n, t) in enumerate(zip(names, types)) if pred(n, t)), None)

    pool = first(lambda n, t: "pool" in t.lower() or n.startswith("pool"))
    norm = first(lambda n, t: t.lower() in ("normalize", "lrn", "dagnn.lrn")
                 or n.startswith("norm"))
    if pool is not None and norm is not None and norm < pool:
        return "caffe-alex"
    return "caffe-ref"


# --------------------------------------------------------------------------
# NumPy .npz
# --------------------------------------------------------------------------

def _load_npz(path: str) -> AlexNetWeights:
    with np.load(path, allow_pickle=False) as z:
        data = {k: z[k] for k in z.files}
    variant = str(data["variant"]) if "variant" in data else None
    if variant is None:
        k = data.get("conv1/kernel")
        variant = "torchvision" if k is not None and k.shape[-1] == 64 else "caffe-ref"
    if variant not in _alexnet.VARIANTS:
        raise ValueError(f"{path}: unknown variant {variant!r}")
    params = {}
    for name, shp in _alexnet.param_shapes(variant).items():
        for part in ("kernel", "bias"):
            key = f"{name}/{part}"
            if key not in data:
                raise ValueError(f"{path}: weights do not fit AlexNet: no array {key!r} "
                                 f"(found {sorted(data)})")
            params.setdefault(name, {})[part] = _fit(name, part, data[key], shp[part])
    mean = np.asarray(data["mean"], np.float32) if "mean" in data else None
    return AlexNetWeights(params, variant, mean, None, path, "npz")


def save_npz(path: str | os.PathLike, weights: AlexNetWeights | dict,
             variant: str | None = None, mean=None) -> None:
    """Write weights as an ``.npz`` that :func:`load` reads back (fast to
    load, no SciPy/torch needed): keys ``"<layer>/kernel"``,
    ``"<layer>/bias"``, ``"variant"`` and, when known, ``"mean"``."""
    if isinstance(weights, AlexNetWeights):
        params, variant, mean = weights.params, variant or weights.variant, (
            weights.mean if mean is None else mean)
    else:
        params = weights.get("params", weights)
    arrays = {f"{n}/{p}": np.asarray(v[p], np.float32) for n, v in params.items()
              for p in ("kernel", "bias")}
    arrays["variant"] = np.array(variant or "caffe-ref")
    if mean is not None:
        arrays["mean"] = np.asarray(mean, np.float32)
    path = os.fspath(path)
    tmp = f"{path}.partial-{os.getpid()}.npz"
    try:
        np.savez(tmp, **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


# --------------------------------------------------------------------------
# Caffe .caffemodel: a minimal protobuf wire-format reader
# --------------------------------------------------------------------------

class _ProtoError(Exception):
    pass


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise _ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise _ProtoError("varint too long")


def proto_fields(buf) -> list[tuple[int, int, Any]]:
    """Decode one protobuf message: a list of ``(field, wire_type, value)``.

    ``value`` is an int for varints (wire type 0), a memoryview for
    length-delimited fields (2) and raw bytes for fixed 32/64-bit ones (5/1).
    Raises ``_ProtoError`` on malformed input.
    """
    buf = memoryview(buf)
    pos, out = 0, []
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise _ProtoError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise _ProtoError("truncated length-delimited field")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = bytes(buf[pos:pos + 4]), pos + 4
        elif wire == 1:
            value, pos = bytes(buf[pos:pos + 8]), pos + 8
        else:
            raise _ProtoError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise _ProtoError("truncated field")
        out.append((field, wire, value))
    return out


def _packed_varints(value) -> list[int]:
    buf, pos, out = memoryview(value), 0, []
    while pos < len(buf):
        v, pos = _varint(buf, pos)
        out.append(v)
    return out


def _blob(buf) -> np.ndarray:
    """A Caffe BlobProto -> float32 array of its declared shape."""
    shape, legacy, chunks, doubles = None, {}, [], []
    for field, wire, value in proto_fields(buf):
        if field == 7 and wire == 2:  # BlobShape {repeated int64 dim = 1}
            dims = []
            for f2, w2, v2 in proto_fields(value):
                if f2 == 1:
                    dims.extend(_packed_varints(v2) if w2 == 2 else [v2])
            shape = tuple(dims)
        elif field in (1, 2, 3, 4) and wire == 0:  # num, channels, height, width
            legacy[field] = value
        elif field == 5:  # repeated float data, packed or not
            chunks.append(np.frombuffer(value, "<f4"))  # packed run or one fixed32
        elif field == 8:  # repeated double double_data
            doubles.append(np.frombuffer(value, "<f8"))
    data = np.concatenate(chunks) if chunks else (
        np.concatenate(doubles) if doubles else np.zeros(0))
    if shape is None:
        shape = tuple(legacy.get(f, 1) for f in (1, 2, 3, 4))
    if int(np.prod(shape)) != data.size:
        raise _ProtoError(f"blob of shape {shape} holds {data.size} numbers")
    return data.astype(np.float32, copy=False).reshape(shape)


# V1LayerParameter.LayerType values of the layers that matter here.
_V1_TYPES = {4: "Convolution", 14: "InnerProduct", 15: "LRN", 17: "Pooling", 18: "ReLU"}


def caffe_layers(data) -> list[tuple[str, str, list[np.ndarray]]]:
    """The layers of a Caffe NetParameter message: ``(name, type, blobs)``.

    Understands both the current encoding (``layer = 100``: name 1, type 2
    as a string, blobs 7) and the deprecated V1 one (``layers = 2``: name 4,
    type 5 as an enum, blobs 6).
    """
    layers = []
    for field, wire, value in proto_fields(data):
        if wire != 2 or field not in (100, 2):
            continue
        name, ltype, blobs = "", "", []
        name_f, type_f, blob_f = (1, 2, 7) if field == 100 else (4, 5, 6)
        for f, w, v in proto_fields(value):
            if f == name_f and w == 2:
                name = bytes(v).decode("utf-8", "replace")
            elif f == type_f:
                ltype = (bytes(v).decode("utf-8", "replace") if w == 2
                         else _V1_TYPES.get(v, str(v)))
            elif f == blob_f and w == 2:
                blobs.append(_blob(v))
        layers.append((name, ltype, blobs))
    if not layers:
        raise _ProtoError("no layers found")
    return layers


def _load_caffemodel(path: str) -> AlexNetWeights:
    with open(path, "rb") as f:
        data = f.read()
    layers = caffe_layers(data)
    names = [n for n, _, _ in layers]
    types = [t for _, t, _ in layers]
    variant = _variant_from_order(names, types)
    params = {}
    for name, shp in _alexnet.param_shapes(variant).items():
        if name not in names:
            raise ValueError(f"{path}: weights do not fit AlexNet: no layer {name!r} "
                             f"(layers found: {', '.join(names)})")
        blobs = layers[names.index(name)][2]
        if len(blobs) != 2:
            raise ValueError(f"{path}: layer {name} has {len(blobs)} blobs, expected 2 "
                             "(weights and bias)")
        kernel = _caffe_to_hwio(name, "kernel", blobs[0], shp["kernel"])
        if name == "conv1":
            kernel = kernel[:, :, ::-1, :].copy()  # Caffe reads BGR images; we feed RGB
        params[name] = {"kernel": kernel, "bias": _fit(name, "bias", blobs[1], shp["bias"])}
    return AlexNetWeights(params, variant, None, None, path, "caffemodel")


# --------------------------------------------------------------------------
# torchvision
# --------------------------------------------------------------------------

_TORCHVISION_KEYS = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
                     "conv4": "features.8", "conv5": "features.10",
                     "fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"}


def _load_torch(path: str) -> AlexNetWeights:
    try:
        import torch
    except ImportError:
        raise ValueError(f"{path} is a PyTorch file; reading it needs torch "
                         "(pip install torch), or convert it once to .npz") from None
    state = torch.load(path, map_location="cpu", weights_only=True)
    if isinstance(state, dict) and "state_dict" in state:
        state = state["state_dict"]
    params = {}
    for name, shp in _alexnet.param_shapes("torchvision").items():
        key = _TORCHVISION_KEYS[name]
        if f"{key}.weight" not in state:
            raise ValueError(f"{path}: weights do not fit torchvision's AlexNet: no "
                             f"{key}.weight (layer {name})")
        w = state[f"{key}.weight"].detach().float().numpy()
        b = state[f"{key}.bias"].detach().float().numpy()
        params[name] = {"kernel": _caffe_to_hwio(name, "kernel", w, shp["kernel"]),
                        "bias": _fit(name, "bias", b, shp["bias"])}
    return AlexNetWeights(params, "torchvision", None, None, path, "torchvision")


# --------------------------------------------------------------------------
# Downloads
# --------------------------------------------------------------------------

@dataclasses.dataclass(frozen=True)
class Known:
    """A downloadable weights file: URL, file name, and its published digest
    (``algorithm`` is ``"sha256"`` or ``"sha1"``; ``digest`` may be a prefix,
    as torchvision publishes; ``None`` when nothing is published)."""

    url: str
    filename: str
    algorithm: str | None = None
    digest: str | None = None
    note: str = ""


#: Files ``fetch`` knows by name (digests as published by their authors).
KNOWN: dict[str, Known] = {
    "caffe-ref": Known("https://www.vlfeat.org/matconvnet/models/imagenet-caffe-ref.mat",
                       "imagenet-caffe-ref.mat",
                       note="MatConvNet CaffeNet, the paper's CNN-A (no published digest)"),
    "caffe-alex": Known("https://www.vlfeat.org/matconvnet/models/imagenet-caffe-alex.mat",
                        "imagenet-caffe-alex.mat",
                        note="MatConvNet bvlc_alexnet (no published digest)"),
    "bvlc_reference_caffenet": Known(
        "http://dl.caffe.berkeleyvision.org/bvlc_reference_caffenet.caffemodel",
        "bvlc_reference_caffenet.caffemodel", "sha1",
        "4c8d77deb20ea792f84eb5e6d0a11ca0a8660a46", "Caffe CaffeNet (caffe-ref)"),
    "bvlc_alexnet": Known(
        "http://dl.caffe.berkeleyvision.org/bvlc_alexnet.caffemodel",
        "bvlc_alexnet.caffemodel", "sha1",
        "9116a64c0fbe4459d18f4bb6b56d647b63920377", "Caffe bvlc_alexnet (caffe-alex)"),
    "torchvision": Known("https://download.pytorch.org/models/alexnet-owt-7be5be79.pth",
                         "alexnet-owt-7be5be79.pth", "sha256", "7be5be79",
                         "torchvision AlexNet (a different network)"),
}


#: Other names people use for the same files.
ALIASES = {"caffenet": "bvlc_reference_caffenet", "imagenet-caffe-ref": "caffe-ref",
           "imagenet-caffe-alex": "caffe-alex", "alexnet": "bvlc_alexnet",
           "torchvision-alexnet": "torchvision"}


def default_cache_dir() -> str:
    """``$JINVERT_CACHE``, else ``$XDG_CACHE_HOME/jinvert``, else ``~/.cache/jinvert``."""
    if os.environ.get("JINVERT_CACHE"):
        return os.environ["JINVERT_CACHE"]
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return os.path.join(base, "jinvert")


def file_digest(path: str, algorithm: str = "sha256") -> str:
    """Hex digest of a file, read in 1 MiB chunks."""
    h = hashlib.new(algorithm)
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def fetch(name: str, url: str | None = None, cache_dir: str | None = None,
          sha256: str | None = None) -> str:
    """Download the weights file ``name`` into the cache and return its path.

    Args:
      name: a key of :data:`KNOWN` (``caffe-ref``, ``caffe-alex``,
        ``bvlc_reference_caffenet``, ``bvlc_alexnet``, ``torchvision``) or of
        :data:`ALIASES` (``caffenet``, ...), or any file name when ``url`` is
        given.
      url: override the download address (any urllib URL, ``file://`` too).
      cache_dir: default :func:`default_cache_dir`.
      sha256: expected SHA-256 (hex, or a prefix of it); default the known
        digest of ``name``. A file that does not match is deleted and
        ``ValueError`` is raised. Without any digest the file is kept and a
        warning gives its SHA-256.

    A file already in the cache with the right digest is not downloaded
    again. The download goes to a temporary name and is renamed when
    complete and verified.
    """
    known = KNOWN.get(ALIASES.get(name, name))
    if known is None and url is None:
        raise ValueError(f"unknown weights {name!r}; known: {', '.join(KNOWN)} "
                         f"(also {', '.join(ALIASES)}), or pass a url")
    url = url or known.url
    filename = known.filename if known else os.path.basename(name)
    if sha256 is not None:
        algorithm, digest = "sha256", sha256.lower()
    elif known is not None and known.digest and url == known.url:
        algorithm, digest = known.algorithm, known.digest.lower()
    else:
        algorithm, digest = None, None
    cache_dir = cache_dir or default_cache_dir()
    os.makedirs(cache_dir, exist_ok=True)
    target = os.path.join(cache_dir, filename)

    def ok(path: str) -> bool:
        return digest is None or file_digest(path, algorithm).startswith(digest)

    if os.path.exists(target) and digest is not None and ok(target):
        return target
    tmp = f"{target}.partial-{os.getpid()}"
    try:
        try:
            with urllib.request.urlopen(url) as response, open(tmp, "wb") as out:
                shutil.copyfileobj(response, out, 1 << 20)
        except OSError as err:
            raise ValueError(f"cannot download {name} from {url}: {err}") from None
        if not ok(tmp):
            raise ValueError(
                f"downloaded {name} from {url} but its {algorithm} is "
                f"{file_digest(tmp, algorithm)}, expected {digest}; file discarded")
        if digest is None:
            warnings.warn(f"{name}: no published checksum; sha256 of the download is "
                          f"{file_digest(tmp, 'sha256')}", stacklevel=2)
        os.replace(tmp, target)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)
    return target


NO_WEIGHTS_MESSAGE = (
    "no AlexNet weights given. Pass a weights file (--weights PATH, or set "
    f"${_alexnet.ENV_WEIGHTS}): MatConvNet's imagenet-caffe-ref.mat (the paper's CNN-A) "
    "or imagenet-caffe-alex.mat, Caffe's bvlc_reference_caffenet.caffemodel or "
    "bvlc_alexnet.caffemodel, a .npz conversion, or torchvision's alexnet "
    "state dict (.pth). Download one with `jinvert weights fetch caffe-ref` "
    "(see `jinvert.weights.KNOWN`), or pass --weights random for random "
    "parameters of the real shapes (reconstructions then show no natural "
    "image structure).")


def alexnet_from_spec(layer: str = "relu5", weights: str | None = None,
                      variant: str | None = None):
    """The AlexNet representation (:func:`jinvert.alexnet`) for a CLI spec such
    as ``"alexnet:pool5"``, its weights read by :func:`load`.

    Args:
      layer: ``"pool5"``, ``"mpool5"``, ``"13"`` or the whole spec
        ``"alexnet:pool5"`` (empty: relu5).
      weights: path of a weights file (any format :func:`load`
        reads), ``"random"`` for random parameters of the real shapes
        (``jax.random.PRNGKey(0)``), or ``None`` to use ``$JINVERT_ALEXNET_WEIGHTS``.
      variant: force a variant; default the weights file's (caffe-ref for random).

    Raises ``ValueError`` with instructions when no weights are available, and
    for an unknown layer (listing the valid ones).
    """
    layer = str(layer)
    if ":" in layer:
        prefix, layer = layer.split(":", 1)
        if not prefix.startswith("alexnet"):
            raise ValueError(f"not an AlexNet spec: {prefix}:{layer}")
        if prefix.startswith("alexnet-") and variant is None:
            variant = prefix[len("alexnet-"):]
    layer = layer or "relu5"
    # Fail on a bad layer name before loading 240 MB of weights.
    _alexnet.canonical_layer(layer, _alexnet._check_variant(variant or "caffe-ref"))
    if weights is None:
        weights = os.environ.get(_alexnet.ENV_WEIGHTS) or None
    if weights is None:
        raise ValueError(NO_WEIGHTS_MESSAGE)
    if weights == "random":
        v = variant or "caffe-ref"
        warnings.warn("alexnet: using random parameters (--weights random); "
                      "they are not a trained network", stacklevel=2)
        return _alexnet.alexnet(_alexnet.random_params(jax.random.PRNGKey(0), v), layer, v)
    loaded = load(weights)
    if variant is not None and variant != loaded.variant:
        warnings.warn(f"alexnet: {weights} holds a {loaded.variant} network; "
                      f"evaluating it as {variant}", stacklevel=2)
    return _alexnet.alexnet(loaded, layer, variant or loaded.variant)
