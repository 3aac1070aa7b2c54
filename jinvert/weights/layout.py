"""The parameters a weights file yields: :class:`AlexNetWeights`, and fitting
a file's arrays into jinvert's AlexNet layout.

The layout (that of :mod:`jinvert.representations.alexnet`) is ``{layer:
{"kernel": (kh, kw, cin/groups, cout), "bias": (cout,)}}`` float32 NumPy
arrays for conv1..conv5, fc6..fc8, kernels in HWIO order for RGB input. The
readers of each format (:mod:`jinvert.weights.matconvnet`,
:mod:`~jinvert.weights.caffe`, :mod:`~jinvert.weights.npz`,
:mod:`~jinvert.weights.pth`) bring their arrays into it with :func:`fit`
(any layout with the same element order) and :func:`caffe_to_hwio` (Caffe's
and PyTorch's ``(Cout, Cin, kh, kw)``), and tell CaffeNet from the original
AlexNet by their layer order with :func:`variant_from_order`.
"""

from __future__ import annotations

import dataclasses

import numpy as np


@dataclasses.dataclass(frozen=True, eq=False)
class AlexNetWeights:
    """Weights read by :func:`jinvert.weights.load`.

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


def _squeezed(shape) -> tuple[int, ...]:
    return tuple(int(d) for d in shape if d != 1)


def fit(layer: str, part: str, array, expected: tuple[int, ...],
        accepted: tuple[tuple[int, ...], ...] = ()) -> np.ndarray:
    """``array`` reshaped to ``expected`` (a C-contiguous float32 copy), or
    ValueError naming the layer, the part (``"kernel"``/``"bias"``) and the
    expected and found shapes.

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


def caffe_to_hwio(layer: str, part: str, array, expected: tuple[int, ...]) -> np.ndarray:
    """A Caffe/PyTorch ``(Cout, Cin, kh, kw)`` blob, or for fc layers a
    ``(Cout, Cin·kh·kw)`` matrix, as an HWIO kernel of shape ``expected``
    ``(kh, kw, Cin, Cout)``, float32. Input channels keep the file's order.

    Errors (as :func:`fit`) quote the shape in the file's own layout (a
    matrix for fc layers).
    """
    kh, kw, cin, cout = expected
    conv, dense = (cout, cin, kh, kw), (cout, cin * kh * kw)
    primary, other = (dense, conv) if layer.startswith("fc") else (conv, dense)
    oihw = fit(layer, part, array, primary, accepted=(other,)).reshape(conv)
    return np.ascontiguousarray(oihw.transpose(2, 3, 1, 0))


def variant_from_order(names: list[str], types: list[str]) -> str:
    """``"caffe-alex"`` when a file's layers (``names`` and ``types``, in
    file order) normalise before the first pooling, as bvlc_alexnet does;
    else ``"caffe-ref"`` (CaffeNet pools first)."""
    def first(pred):
        return next((i for i, (n, t) in enumerate(zip(names, types)) if pred(n, t)), None)

    pool = first(lambda n, t: "pool" in t.lower() or n.startswith("pool"))
    norm = first(lambda n, t: t.lower() in ("normalize", "lrn", "dagnn.lrn")
                 or n.startswith("norm"))
    if pool is not None and norm is not None and norm < pool:
        return "caffe-alex"
    return "caffe-ref"
