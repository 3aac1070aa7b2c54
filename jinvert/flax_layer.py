"""Bring your own network: any layer of a flax (linen) model as a Representation.

    rep = jinvert.flax_layer(model, variables, "Conv_1", input_size=(64, 64))
    result = jinvert.invert(rep, rep(rep.preprocess(photo)), key=key)

The layer's output is read with flax's ``capture_intermediates`` (the output
of every submodule's ``__call__``, named by its path, e.g. ``"Conv_1"`` or
``"Block_0/Conv_0"``) or, for a value the model ``sow``s into the
``"intermediates"`` collection, by the sown name (``"features"``). Inside
:func:`jinvert.invert` the whole program is jitted, so the intermediates the
layer does not need are dropped by XLA.
"""

from __future__ import annotations

from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jinvert import images
from jinvert.config import PAPER_VALUES, Config
from jinvert.representation import Representation

Array = jax.Array


def _paths(tree, prefix=()) -> dict[str, Any]:
    """``{"A/B": value}`` for the captured or sown values of an intermediates tree."""
    out = {}
    for name, value in dict(tree).items():
        if name == "__call__":
            out["/".join(prefix)] = value
        elif isinstance(value, tuple):  # sown: a tuple of the values sown
            out["/".join(prefix + (name,))] = value
        else:
            out.update(_paths(value, prefix + (name,)))
    return out


def _centred(image) -> Array:
    """RGB in [0, 1] -> RGB in [-0.5, 0.5] (the default input space)."""
    return images.to_rgb(jnp.asarray(image, jnp.float32)) - 0.5


def _uncentred(x) -> Array:
    """Inverse of :func:`_centred`, clipped to [0, 1]."""
    return jnp.clip(jnp.asarray(x) + 0.5, 0.0, 1.0)


def estimate_sigma(preprocess: Callable[[Any], Array], size=None) -> float:
    """σ of an input space, in the paper's units: the norm a natural image of
    227 × 227 × 3 values would have there, √(PAPER_VALUES · mean(x²)) over
    the bundled photo mapped by ``preprocess`` (resized to ``size`` = (H, W)
    when given)."""
    photo = images.load_image()
    if size is not None:
        photo = images.resize_and_crop(photo, tuple(size))
    x = np.asarray(preprocess(photo), np.float64)
    return float(np.sqrt(PAPER_VALUES * np.mean(x ** 2)))


def flax_layer(model, variables, layer: str, *, input_size=None, channels: int = 3,
               preprocess: Callable[[Any], Array] = _centred,
               deprocess: Callable[[Array], Array] = _uncentred, sigma: float | None = None,
               defaults: Config | None = None, **apply_kwargs) -> Representation:
    """A layer of a flax linen model as a :class:`jinvert.Representation`.

    Args:
      model: a ``flax.linen.Module`` taking a batch ``(N, H, W, C)``.
      variables: its variables (``model.init(...)``'s result, or trained ones).
      layer: the path of a submodule whose output is the code (``"Conv_1"``,
        ``"Block_0/Dense_0"``, or ``""`` for the model's own output), or the
        name of a value the model sows into ``"intermediates"``.
      input_size: ``(H, W)`` when the model needs a fixed size, else ``None``.
      channels: C of the input (3 or 1).
      preprocess: image in [0, 1] ``(H, W[, 3])`` -> model input ``(H, W, C)``
        (default: RGB minus 0.5); deprocess: its inverse, clipped to [0, 1].
      sigma: σ of the input space in the paper's units (see
        :class:`jinvert.Representation`); default measured on the bundled
        photo by :func:`estimate_sigma`.
      defaults: the inversion settings (:class:`jinvert.Config`); default the
        paper's shallow settings (for a deep layer the paper used
        ``Config(lambda_tv=50.0, stages=(100, 200, 100))``).
      **apply_kwargs: passed to ``model.apply`` (e.g. ``train=False``).

    Returns:
      a Representation named ``"flax:" + layer``; its ``apply_batch`` runs
      the model once on a batch.

    Raises:
      ValueError: no such layer (the message lists the model's layers).
    """
    layer = str(layer).strip("/")

    def apply_batch(x: Array) -> Array:
        _, state = model.apply(variables, x, capture_intermediates=True,
                               mutable=["intermediates"], **apply_kwargs)
        found = _paths(state.get("intermediates", {}))
        if layer not in found:
            raise ValueError(f"flax_layer: the model has no layer or sown value {layer!r}; "
                             f"it has {', '.join(repr(k) for k in sorted(found))}")
        value = found[layer]
        return value[-1] if isinstance(value, tuple) else value

    def apply(x: Array) -> Array:
        return apply_batch(x[None])[0]

    size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
    # Check the layer now, with a shape-only trace, so a typo fails here.
    probe = (size or (32, 32)) + (int(channels),)
    jax.eval_shape(apply, jax.ShapeDtypeStruct(probe, jnp.float32))
    if sigma is None:
        sigma = estimate_sigma(preprocess, size)
    # B, half the range of a pixel value: from a white and a black image.
    probe_image = np.ones(probe[:2] + (3,), np.float32)
    pixel_range = float(np.max(np.asarray(preprocess(probe_image), np.float64)
                               - np.asarray(preprocess(0 * probe_image), np.float64))) / 2
    return Representation(
        name=f"flax:{layer}", description=f"layer {layer!r} of {type(model).__name__}",
        apply=apply, preprocess_fn=preprocess, deprocess_fn=deprocess,
        channels=int(channels), input_size=size, sigma=float(sigma),
        defaults=Config() if defaults is None else defaults, apply_batch=apply_batch,
        pixel_range=pixel_range if pixel_range > 0 else 128.0)
