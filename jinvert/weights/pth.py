"""Reading torchvision's AlexNet state dict (``alexnet-owt-7be5be79.pth``)
with torch, when it is installed.

torchvision's AlexNet is a different network from CNN-A (the
``"torchvision"`` variant of :mod:`jinvert.representations.alexnet`); its
state dict names the layers ``features.0`` … ``classifier.6`` and stores
PyTorch's ``(Cout, Cin, kh, kw)`` kernels and ``(Cout, Cin)`` matrices,
turned here into jinvert's HWIO layout (RGB input, as torchvision's).
"""

from __future__ import annotations

from jinvert.representations import alexnet as _alexnet
from jinvert.weights.layout import AlexNetWeights, caffe_to_hwio, fit

_TORCHVISION_KEYS = {"conv1": "features.0", "conv2": "features.3", "conv3": "features.6",
                     "conv4": "features.8", "conv5": "features.10",
                     "fc6": "classifier.1", "fc7": "classifier.4", "fc8": "classifier.6"}


def load_torchvision(path: str) -> AlexNetWeights:
    """The weights of torchvision's AlexNet from the torch file ``path`` (a
    state dict, or a checkpoint dict with a ``"state_dict"``), read by
    ``torch.load(..., weights_only=True)``. Raises ``ValueError`` when torch
    is missing, a layer is missing or a parameter has the wrong shape."""
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
        params[name] = {"kernel": caffe_to_hwio(name, "kernel", w, shp["kernel"]),
                        "bias": fit(name, "bias", b, shp["bias"])}
    return AlexNetWeights(params, "torchvision", None, None, path, "torchvision")
