"""AlexNet weights as a NumPy ``.npz`` file: :func:`save_npz` writes one,
:func:`load_npz` reads it back (fast to load, no SciPy or torch needed).

Keys: ``"conv1/kernel"`` (kh, kw, cin/groups, cout; RGB input),
``"conv1/bias"`` (cout,), …, ``"fc8/bias"``, all float32; optional
``"mean"`` ((3,) or (H, W, 3), RGB, 0..255) and ``"variant"`` (a string:
caffe-ref, caffe-alex or torchvision; without it, 64 conv1 filters mean
torchvision, else caffe-ref).
"""

from __future__ import annotations

import os

import numpy as np

from jinvert.representations import alexnet as _alexnet
from jinvert.weights.layout import AlexNetWeights, fit


def load_npz(path: str) -> AlexNetWeights:
    """The AlexNet weights of the ``.npz`` file ``path`` (see the module
    docstring). Raises ``ValueError`` for an unknown variant, a missing
    array or a parameter of the wrong shape."""
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
            params.setdefault(name, {})[part] = fit(name, part, data[key], shp[part])
    mean = np.asarray(data["mean"], np.float32) if "mean" in data else None
    return AlexNetWeights(params, variant, mean, None, path, "npz")


def save_npz(path: str | os.PathLike, weights: AlexNetWeights | dict,
             variant: str | None = None, mean=None) -> None:
    """Write weights as an ``.npz`` that :func:`jinvert.weights.load` reads
    back (fast to load, no SciPy/torch needed): keys ``"<layer>/kernel"``,
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
