"""Bring your own network: any layer of a flax (linen) model as a Representation.

    rep = jinvert.flax_layer(model, variables, "Conv_1", input_size=(64, 64))
    result = jinvert.invert(rep, rep(rep.preprocess(photo)), key=key)

The layer's output is read with flax's ``capture_intermediates`` (the output
of every submodule's ``__call__``, named by its path, e.g. ``"Conv_1"`` or
``"Block_0/Conv_0"``) or, for a value the model ``sow``s into the
``"intermediates"`` collection, by the sown name (``"features"``). Inside
:func:`jinvert.invert` the whole program is jitted, so the intermediates the
layer does not need are dropped by XLA. Flax NNX modules, equinox models
and any JAX function of an image: :mod:`jinvert.model_layer`, on which this
builds.
"""

from __future__ import annotations

from typing import Any, Callable

import jax

from jinvert.config import Config
from jinvert.model_layer import estimate_sigma, function_representation  # noqa: F401
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


def flax_layer(model, variables, layer: str, *, input_size=None, channels: int = 3,
               preprocess: Callable[[Any], Array] | None = None,
               deprocess: Callable[[Array], Array] | None = None, sigma: float | None = None,
               defaults: Config | None = None, **apply_kwargs) -> Representation:
    """A layer of a flax linen model as a :class:`jinvert.Representation`.

    Args:
      model: a ``flax.linen.Module`` taking a batch ``(N, H, W, C)``.
      variables: its variables (``model.init(...)``'s result, or trained ones).
      layer: the path of a submodule whose output is the code (``"Conv_1"``,
        ``"Block_0/Dense_0"``, or ``""`` for the model's own output), or the
        name of a value the model sows into ``"intermediates"``.
      input_size: ``(H, W)`` when the model needs a fixed size, else ``None``.
      channels: C of the input (any count: 3 and 1 have defaults).
      preprocess: image in [0, 1] ``(H, W[, 3])`` -> model input ``(H, W, C)``
        (default: RGB minus 0.5 for C = 3, grey minus 0.5 for C = 1;
        required for any other C); deprocess: its inverse, -> ``(H, W, 3)``
        clipped to [0, 1] (see :func:`jinvert.function_representation`).
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

    return function_representation(
        lambda x: apply_batch(x[None])[0], name=f"flax:{layer}",
        description=f"layer {layer!r} of {type(model).__name__}", input_size=input_size,
        channels=channels, preprocess=preprocess, deprocess=deprocess, sigma=sigma,
        defaults=defaults, apply_batch=apply_batch)
