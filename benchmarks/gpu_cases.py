"""What ``benchmarks/gpu.py`` measures: the representations as jinvert and
PyTorch build them (the same weights, the same image), and the ``ROW``
lines in which a child process reports its measurements to the parent.
"""

from __future__ import annotations

import json

SHALLOW = ("hog", "hogb", "dsift")
MIB = float(1 << 20)

#: Why a row has no ms/it: the runs of 2n iterations were not slower than
#: those of n (noise swamped the loop; per_iteration then floors it at 1e-9).
NOISY = "noisy: t(2n) <= t(n), raise --iterations"


class Case:
    """A representation as jinvert has it: ``rep``, the image ``x0`` (input
    space, ``(H, W, C)`` NumPy), and whether jinvert pins float32 products
    for it (then PyTorch must not use TF32 either)."""

    def __init__(self, rep, x0, pins_float32: bool):
        self.rep, self.x0, self.pins_float32 = rep, x0, pins_float32


def alexnet_params():
    """AlexNet's random weights of the real shapes, the same in every
    process (NumPy draws seeded by the key's bits)."""
    import jax

    from jinvert.representations import alexnet as A
    return A.random_params(jax.random.PRNGKey(0), bias=0.1)


def build_case(name: str, size: int, precision: str = "default") -> Case:
    """The representation called ``name`` (see ``--reps``) at ``size`` (HOG
    and DSIFT), on the bundled astronaut photo; the networks' products and
    convolutions at ``precision`` (``"default"``: TF32 on NVIDIA GPUs)."""
    import numpy as np

    from jinvert import images
    from jinvert.registry import resolve_representation

    photo = images.load_image()
    family, _, layer = name.partition(":")
    if name in SHALLOW:
        rep = resolve_representation(name)
        return Case(rep, np.asarray(rep.preprocess(images.resize_and_crop(photo, (size, size)))),
                    True)
    if family == "alexnet":
        from jinvert.representations import alexnet as A
        rep = A.alexnet(alexnet_params(), layer, precision=precision)
    else:
        from jinvert.representations import efficientnet as E
        rep = E.efficientnet_lite0(E.load_params(), layer, precision=precision)
    return Case(rep, np.asarray(rep.preprocess(photo)), precision == "highest")


def build_torch_phi(name: str, size: int, device):
    """PyTorch's Φ of ``name`` on ``device`` (``benchmarks/torch_features.py``),
    with the weights jinvert's :func:`build_case` uses."""
    import torch_features

    family, _, layer = name.partition(":")
    if name == "dsift":
        return torch_features.dsift((size, size), device=device)
    if name in SHALLOW:
        return torch_features.hog((size, size), bilinear=(name == "hogb"), device=device)
    if family == "alexnet":
        return torch_features.alexnet(alexnet_params(), layer, device=device)
    from jinvert.representations import efficientnet as E
    return torch_features.efficientnet(E.load_params(), layer, device=device)


def reason(err: BaseException) -> str:
    """A table cell's short account of ``err``: its type and 70 characters."""
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:70]}" if text else type(err).__name__


def ms_per_iteration(t):
    """Milliseconds of a :class:`timing.LoopTiming`'s iteration, or None
    where the loop's timing was noise (:data:`NOISY`)."""
    return None if t.iteration <= 1e-9 else 1e3 * t.iteration


def print_row(row: dict) -> None:
    """Report one row to the parent process (a ``ROW {json}`` line)."""
    print("ROW " + json.dumps(row), flush=True)
