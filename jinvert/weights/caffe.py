"""Reading Caffe's ``.caffemodel`` files: a minimal protobuf wire-format
reader (no protobuf dependency) and the AlexNet weights it finds.

A ``.caffemodel`` is a binary ``NetParameter`` message. Both of its layer
encodings are understood: the current ``layer`` (field 100) and the
deprecated V1 ``layers`` (field 2). Caffe stores kernels as
Cout×Cin×H×W (fc layers as Cout×Cin matrices) for BGR input; they come out
in jinvert's HWIO layout with conv1 flipped to RGB. The file carries no
mean (the ImageNet mean colour is then used).
"""

from __future__ import annotations

from typing import Any

import numpy as np

from jinvert.representations import alexnet as _alexnet
from jinvert.weights.layout import AlexNetWeights, caffe_to_hwio, fit, variant_from_order


class ProtoError(Exception):
    """Malformed protobuf data: not a .caffemodel (or a damaged one)."""


def _varint(buf: memoryview, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise ProtoError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7
        if shift > 63:
            raise ProtoError("varint too long")


def proto_fields(buf) -> list[tuple[int, int, Any]]:
    """Decode one protobuf message: a list of ``(field, wire_type, value)``.

    ``value`` is an int for varints (wire type 0), a memoryview for
    length-delimited fields (2) and raw bytes for fixed 32/64-bit ones (5/1).
    Raises ``ProtoError`` on malformed input.
    """
    buf = memoryview(buf)
    pos, out = 0, []
    while pos < len(buf):
        key, pos = _varint(buf, pos)
        field, wire = key >> 3, key & 7
        if field == 0:
            raise ProtoError("field number 0")
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 2:
            n, pos = _varint(buf, pos)
            if pos + n > len(buf):
                raise ProtoError("truncated length-delimited field")
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = bytes(buf[pos:pos + 4]), pos + 4
        elif wire == 1:
            value, pos = bytes(buf[pos:pos + 8]), pos + 8
        else:
            raise ProtoError(f"unsupported wire type {wire}")
        if pos > len(buf):
            raise ProtoError("truncated field")
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
        raise ProtoError(f"blob of shape {shape} holds {data.size} numbers")
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
        raise ProtoError("no layers found")
    return layers


def load_caffemodel(path: str) -> AlexNetWeights:
    """The AlexNet weights of the Caffe file ``path``; the variant is found
    from the layer order (see :func:`jinvert.weights.layout.variant_from_order`),
    the mean is left None (a .caffemodel carries none).

    conv1's input channels are reversed: Caffe's networks read BGR images,
    jinvert's RGB. Raises ``ProtoError`` when the file is not a protobuf
    message with layers, ``ValueError`` for a missing layer or a parameter
    of the wrong shape.
    """
    with open(path, "rb") as f:
        data = f.read()
    layers = caffe_layers(data)
    names = [n for n, _, _ in layers]
    types = [t for _, t, _ in layers]
    variant = variant_from_order(names, types)
    params = {}
    for name, shp in _alexnet.param_shapes(variant).items():
        if name not in names:
            raise ValueError(f"{path}: weights do not fit AlexNet: no layer {name!r} "
                             f"(layers found: {', '.join(names)})")
        blobs = layers[names.index(name)][2]
        if len(blobs) != 2:
            raise ValueError(f"{path}: layer {name} has {len(blobs)} blobs, expected 2 "
                             "(weights and bias)")
        kernel = caffe_to_hwio(name, "kernel", blobs[0], shp["kernel"])
        if name == "conv1":
            kernel = kernel[:, :, ::-1, :].copy()  # Caffe reads BGR images; we feed RGB
        params[name] = {"kernel": kernel, "bias": fit(name, "bias", blobs[1], shp["bias"])}
    return AlexNetWeights(params, variant, None, None, path, "caffemodel")
