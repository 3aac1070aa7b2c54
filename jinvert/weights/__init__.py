"""Pretrained AlexNet weights: reading them from the files people have, and
downloading the known ones.

:func:`load` finds the format by itself and returns an :class:`AlexNetWeights`
whose ``params`` are ``{layer: {"kernel": (kh, kw, cin/groups, cout), "bias":
(cout,)}}`` float32 arrays for conv1..conv5, fc6..fc8 (the layout of
:mod:`jinvert.representations.alexnet`, RGB input order), every shape checked.

Formats, one module each:

- MatConvNet ``imagenet-caffe-ref.mat`` / ``imagenet-caffe-alex.mat``
  (MATLAB v5, read with SciPy; :mod:`jinvert.weights.matconvnet`): the old
  ``layers`` cell array, the newer simplenn and DagNN files. MatConvNet
  already stores H×W×Cin×Cout, RGB; the mean image
  (``[meta.]normalization.averageImage``) and class descriptions are kept.
- Caffe ``.caffemodel`` (binary protobuf, both the current ``layer`` and the
  old V1 ``layers`` encodings; :mod:`jinvert.weights.caffe`), read by a
  small wire-format reader (no protobuf dependency). Caffe stores
  Cout×Cin×H×W for BGR input; conv1 is flipped to RGB. The mean is the
  ImageNet mean colour (a .caffemodel carries none).
- NumPy ``.npz`` (:func:`save_npz`, :mod:`jinvert.weights.npz`): keys
  ``"conv1/kernel"`` (kh, kw, cin/groups, cout; RGB input), ``"conv1/bias"``
  (cout,), …, ``"fc8/bias"``; optional ``"mean"`` ((3,) or (H, W, 3), RGB,
  0..255) and ``"variant"`` (a string: caffe-ref, caffe-alex or torchvision).
- torchvision's AlexNet state dict (``alexnet-owt-7be5be79.pth``), read with
  torch if it is installed (:mod:`jinvert.weights.pth`).

:mod:`jinvert.weights.layout` holds :class:`AlexNetWeights` and the shape
fitting the readers share. :func:`fetch` downloads a known file
(:data:`KNOWN`) to a cache and checks its digest; :func:`alexnet_from_spec`
builds the representation the ``jinvert`` command asks for.
"""

from __future__ import annotations

import dataclasses
import hashlib
import os
import shutil
import urllib.request
import warnings
import zipfile

import jax

from jinvert.representations import alexnet as _alexnet
from jinvert.weights.caffe import ProtoError, load_caffemodel
from jinvert.weights.layout import AlexNetWeights
from jinvert.weights.matconvnet import load_matconvnet
from jinvert.weights.npz import load_npz, save_npz
from jinvert.weights.pth import load_torchvision

__all__ = ["AlexNetWeights", "load", "check", "save_npz", "Known", "KNOWN", "ALIASES",
           "default_cache_dir", "file_digest", "fetch", "NO_WEIGHTS_MESSAGE",
           "alexnet_from_spec"]


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
        weights = load_matconvnet(path)
    elif head.startswith(b"PK\x03\x04"):
        with zipfile.ZipFile(path) as z:
            names = z.namelist()
        if any(n.endswith(".npy") for n in names):
            weights = load_npz(path)
        elif any(n.endswith("data.pkl") for n in names):
            weights = load_torchvision(path)
        else:
            raise ValueError(f"{path}: a zip file that is neither .npz nor a torch file")
    elif head[:1] == b"\x80" and path.endswith((".pth", ".pt")):
        weights = load_torchvision(path)  # legacy (non-zip) torch pickle
    else:
        try:
            weights = load_caffemodel(path)
        except ProtoError as err:
            raise ValueError(
                f"cannot read {path} as AlexNet weights: not a MatConvNet .mat, "
                f".npz, torch file or Caffe .caffemodel ({err})") from None
    if variant is not None:
        weights = dataclasses.replace(weights, variant=variant)
    return check(weights)


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
                      variant: str | None = None, *, precision: str = "highest"):
    """The AlexNet representation (:func:`jinvert.alexnet`) for a CLI spec such
    as ``"alexnet:pool5"``, its weights read by :func:`load`.

    Args:
      layer: ``"pool5"``, ``"mpool5"``, ``"13"`` or the whole spec
        ``"alexnet:pool5"`` (empty: relu5).
      weights: path of a weights file (any format :func:`load`
        reads), ``"random"`` for random parameters of the real shapes
        (``jax.random.PRNGKey(0)``), or ``None`` to use ``$JINVERT_ALEXNET_WEIGHTS``.
      variant: force a variant; default the weights file's (caffe-ref for random).
      precision: of the float32 convolutions and products, as :func:`jinvert.alexnet`'s.

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
    _alexnet.canonical_layer(layer, _alexnet.check_variant(variant or "caffe-ref"))
    if weights is None:
        weights = os.environ.get(_alexnet.ENV_WEIGHTS) or None
    if weights is None:
        raise ValueError(NO_WEIGHTS_MESSAGE)
    if weights == "random":
        v = variant or "caffe-ref"
        warnings.warn("alexnet: using random parameters (--weights random); "
                      "they are not a trained network", stacklevel=2)
        return _alexnet.alexnet(_alexnet.random_params(jax.random.PRNGKey(0), v), layer, v,
                                precision=precision)
    loaded = load(weights)
    if variant is not None and variant != loaded.variant:
        warnings.warn(f"alexnet: {weights} holds a {loaded.variant} network; "
                      f"evaluating it as {variant}", stacklevel=2)
    return _alexnet.alexnet(loaded, layer, variant or loaded.variant, precision=precision)
