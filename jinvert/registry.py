"""Representations by name, for the command line and for scripts.

Names: ``hog`` (CNN-HOG, 27 channels, hard orientation binning, as the
paper's HOG), ``hogb`` (bilinear orientation binning, the paper's HOGb),
``dsift`` (dense SIFT, bin size 5), ``alexnet:LAYER`` (e.g. ``alexnet:relu5``,
needs weights) and ``efficientnet:LAYER``. Modules are imported only when
their representation is asked for, so a missing optional dependency only
affects the names that need it.
"""

from __future__ import annotations

import importlib

#: Names with no layer part, and what they build.
SHALLOW = {
    "hog": "CNN-HOG: hog(texture=False), 27 channels, cells of 8×8",
    "hogb": "CNN-HOGb: hog(bilinear=True, texture=False), bilinear orientations",
    "dsift": "CNN-DSIFT: dsift(), bin size 5",
}
#: Families that take a layer: ``family:LAYER``.
DEEP = {
    "alexnet": "alexnet:LAYER, e.g. alexnet:relu5 (needs --weights or fetched weights)",
    "efficientnet": "efficientnet:LAYER, e.g. efficientnet:block9",
}
#: A typical layer of each family, for examples and hints.
EXAMPLE_LAYER = {"alexnet": "relu5", "efficientnet": "block9"}


def layers(family: str) -> tuple[str, ...]:
    """The layer names ``family:LAYER`` accepts, input to output: AlexNet's
    20 layers of the paper's Table 2 (CaffeNet order), EfficientNet-Lite0's
    20 taps. Imports the network's module (and so JAX)."""
    family = family.lower()
    if family not in DEEP:
        raise ValueError(f"{family!r} has no layers; families with layers: {', '.join(DEEP)}")
    return tuple(importlib.import_module(f"jinvert.representations.{family}").LAYERS)


def layers_text(width: int = 78) -> str:
    """The layers of every family, for help texts (one indented block each)."""
    import textwrap

    notes = {"alexnet": "CNN-A, the paper's Table 2; also pool1, pool2, pool5 "
                        "and the numbers 1-20",
             "efficientnet": "EfficientNet-Lite0 taps, aligned with CNN-A's 20 layers"}
    out = []
    for family in DEEP:
        try:
            names = " ".join(layers(family))
        except ImportError as err:  # an optional dependency missing
            names = f"(unavailable: {err})"
        out.append(textwrap.fill(f"{family}:LAYER ({notes[family]}):", width,
                                 initial_indent="  ", subsequent_indent="      "))
        out.append(textwrap.fill(names, width, initial_indent="    ",
                                 subsequent_indent="    "))
    return "\n".join(out)


def names() -> list[str]:
    """The accepted names, for help texts and error messages."""
    return list(SHALLOW) + [f"{k}:LAYER" for k in DEEP]


def resolve_representation(name: str, weights=None, *, precision: str = "highest"):
    """Build the representation called ``name``.

    Args:
      name: ``hog``, ``hogb``, ``dsift``, ``alexnet:LAYER`` or
        ``efficientnet:LAYER`` (case-insensitive).
      weights: path of a weight file for ``alexnet`` (passed to
        ``jinvert.weights.alexnet_from_spec``); rejected for the others.
      precision: of a CNN's float32 convolutions and products
        (:data:`jinvert.representation.PRECISIONS`): ``"highest"`` (default)
        or e.g. ``"default"`` (the backend's choice: TF32 on NVIDIA GPUs).
        HOG, HOGb and DSIFT always compute in float32: any other value is
        rejected for them.

    Returns:
      a :class:`jinvert.Representation`.

    Raises:
      ValueError: an unknown name (the message lists the valid ones), a
        missing layer, or weights given where none are used.
    """
    raw = str(name).strip()
    family, _, layer = raw.partition(":")
    family = family.lower()
    valid = ", ".join(names())
    if family in SHALLOW:
        if layer:
            raise ValueError(f"representation {raw!r} takes no layer; valid names: {valid}")
        if weights is not None:
            raise ValueError(f"representation {family!r} has no weights; drop --weights")
        if precision != "highest":
            raise ValueError(f"representation {family!r} computes in float32 whatever the "
                             f"precision; precision={precision!r} applies to CNNs")
        if family == "dsift":
            return importlib.import_module("jinvert.representations.dsift").dsift()
        hog = importlib.import_module("jinvert.representations.hog").hog
        return hog(bilinear=(family == "hogb"), texture=False)
    if family in DEEP:
        if not layer:
            try:
                valid_layers = ", ".join(layers(family))
            except ImportError:
                valid_layers = "see 'jinvert invert --help'"
            raise ValueError(f"representation {raw!r} needs a layer, as {family}:LAYER "
                             f"(e.g. {family}:{EXAMPLE_LAYER[family]}); layers: "
                             f"{valid_layers}")
        if family == "alexnet":  # its weights are read by jinvert.weights
            return importlib.import_module("jinvert.weights").alexnet_from_spec(
                layer, weights, precision=precision)
        module = importlib.import_module(f"jinvert.representations.{family}")
        if weights is not None:
            raise ValueError(f"representation {family!r} takes no --weights")
        return module.from_spec(layer, precision=precision)
    raise ValueError(f"unknown representation {raw!r}; valid names: {valid}")

