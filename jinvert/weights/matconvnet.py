"""Reading MatConvNet's AlexNet files (``imagenet-caffe-ref.mat``,
``imagenet-caffe-alex.mat``): MATLAB v5 files, read with SciPy.

Three encodings of a network are understood: the old ``layers`` cell array
with ``filters``/``biases`` fields, the newer simplenn ``weights = {filters,
biases}``, and DagNN files (a ``params`` struct array of ``name``/``value``
that the layers refer to by name). MatConvNet already stores kernels as
H×W×Cin×Cout for RGB input, jinvert's layout; the mean image
(``[meta.]normalization.averageImage``, RGB, 0..255) and the class
descriptions are kept. A network with 64 first-layer filters is taken for
torchvision's variant.
"""

from __future__ import annotations

import numpy as np

from jinvert.representations import alexnet as _alexnet
from jinvert.weights.layout import AlexNetWeights, fit, variant_from_order


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


def load_matconvnet(path: str) -> AlexNetWeights:
    """The AlexNet weights of the MatConvNet file ``path`` (MATLAB v5), with
    its mean image and class descriptions when it has them; the variant is
    found from the layer order (see :func:`jinvert.weights.layout.variant_from_order`).

    Raises ``ValueError`` for an unreadable file, a file without ``layers``,
    a missing layer or a parameter of the wrong shape.
    """
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
    variant = variant_from_order(names, types)
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
        params[name] = {"kernel": fit(name, "kernel", kernel, shp["kernel"]),
                        "bias": fit(name, "bias", bias, shp["bias"])}
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
