"""Read PyTorch state-dict files (``.pth``) into NumPy arrays without torch.

A ``.pth`` file is a Python pickle, and unpickling runs whatever callables the
file names: loading one with :mod:`pickle` is loading code. Here the pickle is
read by a restricted :class:`pickle.Unpickler` that knows only the handful of
globals a state dict of plain tensors needs (the tensor rebuild function, the
storage classes, ``collections.OrderedDict``); any other global, e.g.
``os.system``, raises :class:`UnsafePickleError` before anything is called.

Two layouts are understood:

* the *legacy* (non-zip) stream written by ``torch.save(...,
  _use_new_zipfile_serialization=False)`` and by torch < 1.6: a magic number,
  a protocol version and a dict of system info, each a small pickle; then the
  object pickle, whose tensors refer to storages by persistent id; then a
  pickled list of storage keys, and, for each key in that order, an int64
  element count followed by the raw little-endian storage bytes;
* the *zip* archive written by torch >= 1.6: ``<root>/data.pkl`` plus one
  ``<root>/data/<key>`` member of raw bytes per storage.

Tensors come back as C-contiguous NumPy arrays with their own memory.
"""

from __future__ import annotations

import collections
import io
import os
import pickle
import struct
import zipfile
from typing import Any

import numpy as np

__all__ = ["UnsafePickleError", "load_state_dict", "load_torch_pickle"]

#: First pickle of a legacy torch file (``torch.serialization.MAGIC_NUMBER``).
LEGACY_MAGIC = 0x1950A86A20F9469CFC6C
#: The only legacy protocol version torch has written.
LEGACY_PROTOCOL = 1001

#: torch storage class name -> NumPy dtype of its elements (little-endian).
_STORAGE_DTYPES = {
    "FloatStorage": np.dtype("<f4"),
    "DoubleStorage": np.dtype("<f8"),
    "HalfStorage": np.dtype("<f2"),
    "LongStorage": np.dtype("<i8"),
    "IntStorage": np.dtype("<i4"),
    "ShortStorage": np.dtype("<i2"),
    "CharStorage": np.dtype("i1"),
    "ByteStorage": np.dtype("u1"),
    "BoolStorage": np.dtype("?"),
}


class UnsafePickleError(pickle.UnpicklingError, ValueError):
    """The file asks for something other than plain tensors (a global that is
    not on the allow-list, or a malformed storage reference)."""


class _StorageType:
    """Stand-in for ``torch.FloatStorage`` etc.: remembers the dtype."""

    def __init__(self, name: str):
        self.name = name
        self.dtype = _STORAGE_DTYPES[name]

    def __repr__(self):
        return f"torch.{self.name}"


class _Storage:
    """A storage whose bytes are read after the object pickle (legacy) or from
    a zip member; ``data`` is a flat NumPy array once known."""

    def __init__(self, key: str, dtype: np.dtype, numel: int):
        self.key, self.dtype, self.numel = key, dtype, numel
        self.data: np.ndarray | None = None


class _TensorRef:
    """A tensor waiting for its storage bytes (they follow the pickle)."""

    def __init__(self, storage, offset, size, stride):
        if not isinstance(storage, _Storage):
            raise UnsafePickleError("tensor rebuilt from something that is not a storage")
        self.storage = storage
        self.offset = int(offset)
        self.size = tuple(int(s) for s in size)
        self.stride = tuple(int(s) for s in stride)
        if len(self.size) != len(self.stride) or min(self.size + (0,)) < 0 \
                or min(self.stride + (0,)) < 0 or self.offset < 0:
            raise UnsafePickleError(
                f"bad tensor geometry: size {self.size}, stride {self.stride}, "
                f"offset {self.offset}")

    def materialise(self) -> np.ndarray:
        flat = self.storage.data
        if flat is None:
            raise UnsafePickleError(f"storage {self.storage.key!r} has no data in the file")
        if 0 in self.size:
            return np.zeros(self.size, dtype=flat.dtype)
        # The last element touched must lie inside the storage, or as_strided
        # would read foreign memory.
        last = self.offset + sum((n - 1) * s for n, s in zip(self.size, self.stride))
        if last >= flat.size:
            raise UnsafePickleError(
                f"tensor of size {self.size} (stride {self.stride}, offset "
                f"{self.offset}) overruns its storage of {flat.size} elements")
        view = np.lib.stride_tricks.as_strided(
            flat[self.offset:], shape=self.size,
            strides=tuple(s * flat.itemsize for s in self.stride), writeable=False)
        return np.array(view, copy=True, order="C")


def _rebuild_tensor_v2(storage, storage_offset, size, stride, requires_grad=False,
                       backward_hooks=None, metadata=None):
    # Same signature as torch._utils._rebuild_tensor_v2; builds a placeholder.
    return _TensorRef(storage, storage_offset, size, stride)


def _rebuild_parameter(data, requires_grad=False, backward_hooks=None):
    # nn.Parameter pickles wrap a plain tensor: keep the tensor.
    return data


#: (module, name) -> object; everything a state dict of plain tensors needs.
_ALLOWED = {
    ("collections", "OrderedDict"): collections.OrderedDict,
    ("torch._utils", "_rebuild_tensor_v2"): _rebuild_tensor_v2,
    ("torch._utils", "_rebuild_parameter"): _rebuild_parameter,
    **{("torch", name): _StorageType(name) for name in _STORAGE_DTYPES},
}


class _RestrictedUnpickler(pickle.Unpickler):
    """Unpickler that resolves only allow-listed globals and torch storage ids."""

    def __init__(self, file, storages: dict[str, _Storage]):
        super().__init__(file)
        self._storages = storages

    def find_class(self, module, name):
        try:
            return _ALLOWED[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"refusing to load global {module}.{name}: a weight file should "
                f"hold only tensors") from None

    def persistent_load(self, pid):
        # ('storage', storage_type, key, location, numel[, view_metadata])
        if not (isinstance(pid, tuple) and len(pid) >= 5 and pid[0] == "storage"
                and isinstance(pid[1], _StorageType)):
            raise UnsafePickleError(f"unsupported persistent id {pid!r}")
        if len(pid) > 5 and pid[5] is not None:
            raise UnsafePickleError("storage views (pre-0.4 torch files) are not supported")
        storage_type, key, numel = pid[1], str(pid[2]), int(pid[4])
        if key not in self._storages:
            self._storages[key] = _Storage(key, storage_type.dtype, numel)
        return self._storages[key]


def _resolve(obj):
    """Replace every tensor placeholder in a (nested) container by its array."""
    if isinstance(obj, _TensorRef):
        return obj.materialise()
    if isinstance(obj, dict):
        return type(obj)((k, _resolve(v)) for k, v in obj.items()) \
            if isinstance(obj, collections.OrderedDict) else {k: _resolve(v) for k, v in obj.items()}
    if isinstance(obj, list):
        return [_resolve(v) for v in obj]
    if isinstance(obj, tuple):
        return tuple(_resolve(v) for v in obj)
    return obj


def _load_legacy(buf: bytes):
    f = io.BytesIO(buf)
    storages: dict[str, _Storage] = {}
    # The three header pickles hold only ints, bools, strings and dicts; they
    # go through the restricted unpickler as well.
    magic = _RestrictedUnpickler(f, storages).load()
    if magic != LEGACY_MAGIC:
        raise ValueError("not a torch file: wrong magic number")
    protocol = _RestrictedUnpickler(f, storages).load()
    if protocol != LEGACY_PROTOCOL:
        raise ValueError(f"unsupported legacy torch protocol {protocol!r}")
    sys_info = _RestrictedUnpickler(f, storages).load()
    if isinstance(sys_info, dict) and not sys_info.get("little_endian", True):
        raise ValueError("big-endian torch files are not supported")
    obj = _RestrictedUnpickler(f, storages).load()
    keys = _RestrictedUnpickler(f, storages).load()
    if not isinstance(keys, list):
        raise UnsafePickleError("malformed torch file: storage key list missing")
    for key in keys:
        key = str(key)
        if key not in storages:
            raise UnsafePickleError(f"storage {key!r} is listed but never used")
        st = storages[key]
        header = f.read(8)
        if len(header) != 8:
            raise ValueError(f"truncated torch file: no size for storage {key!r}")
        (numel,) = struct.unpack("<q", header)
        nbytes = numel * st.dtype.itemsize
        if numel != st.numel:
            raise ValueError(
                f"storage {key!r}: file says {numel} elements, pickle says {st.numel}")
        raw = f.read(nbytes)
        if len(raw) != nbytes:
            raise ValueError(f"truncated torch file: storage {key!r} is short")
        st.data = np.frombuffer(raw, dtype=st.dtype)
    return _resolve(obj)


def _load_zip(path_or_buf):
    with zipfile.ZipFile(path_or_buf) as zf:
        names = zf.namelist()
        pkl = [n for n in names if n.endswith("/data.pkl") or n == "data.pkl"]
        if len(pkl) != 1:
            raise ValueError("not a torch zip file: no single data.pkl")
        root = pkl[0][: -len("data.pkl")]
        storages: dict[str, _Storage] = {}
        obj = _RestrictedUnpickler(io.BytesIO(zf.read(pkl[0])), storages).load()
        for key, st in storages.items():
            member = f"{root}data/{key}"
            if member not in names:
                raise ValueError(f"torch zip file lacks storage {member}")
            raw = zf.read(member)
            if len(raw) < st.numel * st.dtype.itemsize:
                raise ValueError(f"storage {key!r} is short")
            st.data = np.frombuffer(raw[: st.numel * st.dtype.itemsize], dtype=st.dtype)
        return _resolve(obj)


def load_torch_pickle(source: str | os.PathLike | bytes) -> Any:
    """Load a torch-saved object made of containers and tensors, without torch.

    Args:
      source: path of a ``.pth``/``.pt`` file, or its bytes. Legacy (non-zip)
        and zip layouts are accepted.

    Returns:
      The saved object with every tensor replaced by a C-contiguous NumPy
      array of the same shape and dtype (float32 stays float32).

    Raises:
      UnsafePickleError: the pickle names a global outside the allow-list
        (anything but tensors, storages and ``OrderedDict``) or is malformed.
      ValueError: not a torch file, truncated, or an unsupported variant.
    """
    buf = source if isinstance(source, (bytes, bytearray)) else open(os.fspath(source), "rb").read()
    buf = bytes(buf)
    if buf[:4] == b"PK\x03\x04":
        return _load_zip(io.BytesIO(buf))
    return _load_legacy(buf)


def load_state_dict(source: str | os.PathLike | bytes) -> dict[str, np.ndarray]:
    """Load a torch state dict (``name -> tensor``) as ``name -> np.ndarray``.

    Same as :func:`load_torch_pickle`, and checks that the result is a flat
    mapping from strings to arrays; raises ``ValueError`` otherwise.
    """
    obj = load_torch_pickle(source)
    if not isinstance(obj, dict) or not all(
            isinstance(k, str) and isinstance(v, np.ndarray) for k, v in obj.items()):
        raise ValueError("the file does not hold a state dict (a mapping name -> tensor)")
    return dict(obj)
