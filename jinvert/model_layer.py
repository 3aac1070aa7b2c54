"""Bring your own network, whatever it is written in: a JAX function of an
image, a layer of a flax NNX module or of an equinox model, as a Representation.

    rep = jinvert.function_representation(lambda x: my_features(x), input_size=(64, 64))
    rep = jinvert.nnx_layer(module, "blocks/0/conv", input_size=(64, 64))
    rep = jinvert.equinox_layer(model, "conv2", input_size=(64, 64))
    result = jinvert.invert(rep, rep(rep.preprocess(photo)), key=key)

:func:`function_representation` is the common ground: everything else (and
:func:`jinvert.flax_layer`, for flax linen) builds on it. It supplies what
:func:`jinvert.invert` needs beside Φ: the input space (``preprocess`` from
an image in [0, 1], ``deprocess`` back), its σ measured on the bundled photo
(:func:`estimate_sigma`), B (half the range of a pixel value there) and the
paper's shallow settings as defaults. The input space defaults to the image
minus 0.5: RGB for 3 channels, grey for 1; any other channel count needs
its own ``preprocess`` and ``deprocess``.

Neither flax NNX nor equinox is imported here: :func:`nnx_layer` imports
``flax.nnx`` when called, and :func:`equinox_layer` only calls the model.
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


def _centred(image) -> Array:
    """RGB in [0, 1] ``(H, W[, 3])`` -> RGB in [-0.5, 0.5] ``(H, W, 3)``
    (the default 3-channel input space)."""
    return jnp.asarray(images.to_rgb(image)) - 0.5


def _uncentred(x) -> Array:
    """Inverse of :func:`_centred`: ``(H, W, 3)`` -> [0, 1], clipped."""
    return jnp.clip(jnp.asarray(x) + 0.5, 0.0, 1.0)


def _grey_centred(image) -> Array:
    """Image in [0, 1] ``(H, W[, 3])`` -> grey in [-0.5, 0.5] ``(H, W, 1)``
    (the default 1-channel input space; luma of an RGB image)."""
    return jnp.asarray(images.to_grey(image))[..., None] - 0.5


def _grey_uncentred(x) -> Array:
    """Inverse of :func:`_grey_centred`: ``(H, W, 1)`` -> grey as RGB
    ``(H, W, 3)`` in [0, 1], clipped."""
    return jnp.repeat(jnp.clip(jnp.asarray(x) + 0.5, 0.0, 1.0), 3, axis=-1)


def input_space(channels: int, preprocess=None, deprocess=None) -> tuple[Callable, Callable]:
    """``(preprocess, deprocess)`` for ``channels`` input channels: those
    given, else the image minus 0.5 (RGB for 3 channels, grey for 1).

    Raises:
      ValueError: ``channels`` is neither 1 nor 3 and one of them is missing.
    """
    channels = int(channels)
    if channels == 3:
        defaults = (_centred, _uncentred)
    elif channels == 1:
        defaults = (_grey_centred, _grey_uncentred)
    elif preprocess is None or deprocess is None:
        raise ValueError(f"channels={channels}: pass preprocess= (an image in [0, 1], "
                         f"(H, W, 3) -> the input (H, W, {channels})) and deprocess= "
                         f"(its inverse, -> (H, W, 3) in [0, 1]); the defaults are for "
                         f"1 (grey) or 3 (RGB) channels")
    else:
        defaults = (preprocess, deprocess)
    return (defaults[0] if preprocess is None else preprocess,
            defaults[1] if deprocess is None else deprocess)


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


def function_representation(fn: Callable[[Array], Array], *, name: str = "function",
                            description: str | None = None, input_size=None,
                            channels: int = 3, preprocess: Callable[[Any], Array] | None = None,
                            deprocess: Callable[[Array], Array] | None = None,
                            sigma: float | None = None, defaults: Config | None = None,
                            apply_batch: Callable[[Array], Array] | None = None
                            ) -> Representation:
    """Any JAX function of one image as a :class:`jinvert.Representation`.

    Args:
      fn: Φ of one input-space image, ``(H, W, C) float32 -> code`` (any
        array shape), written in JAX: jit-able and differentiable (it is
        vmapped for a batch unless ``apply_batch`` is given).
      name: the representation's name (``"function"``); description: one
        line for humans (default: ``fn``'s name).
      input_size: ``(H, W)`` when ``fn`` needs a fixed size, else ``None``.
      channels: C of the input space (any count: 1 and 3 have defaults).
      preprocess: image in [0, 1] ``(H, W[, 3])`` -> input ``(H, W, C)``;
        deprocess: input -> ``(H, W, 3)`` in [0, 1], clipped. Default the
        image minus 0.5, RGB for C = 3 and grey for C = 1 (deprocess
        repeats the grey level); required for any other C.
      sigma: σ of the input space in the paper's units (see
        :class:`jinvert.Representation`); default measured on the bundled
        photo by :func:`estimate_sigma`.
      defaults: the inversion settings (:class:`jinvert.Config`); default the
        paper's shallow settings (for a deep layer the paper used
        ``Config(lambda_tv=50.0, stages=(100, 200, 100))``).
      apply_batch: optional Φ of a batch ``(N, H, W, C) -> (N, *code)``,
        equal to ``vmap(fn)`` (e.g. a network run once on the batch).

    Returns:
      the Representation; its B (``pixel_range``) is half the largest
      difference between ``preprocess`` of a white and of a black image.

    Raises:
      ValueError: ``preprocess`` gives another channel count than
        ``channels``, or (from ``fn`` itself) ``fn`` fails on an input of
        ``input_size`` (32 × 32 without one), traced for shapes only, so a
        wrong layer name fails here.
    """
    channels = int(channels)
    preprocess, deprocess = input_space(channels, preprocess, deprocess)
    size = None if input_size is None else (int(input_size[0]), int(input_size[1]))
    probe = (size or (32, 32)) + (channels,)
    # A shape-only trace of Φ, so a typo in a layer's name fails here.
    if apply_batch is None:
        jax.eval_shape(fn, jax.ShapeDtypeStruct(probe, jnp.float32))
    else:
        jax.eval_shape(apply_batch, jax.ShapeDtypeStruct((1,) + probe, jnp.float32))
    white = np.asarray(preprocess(np.ones(probe[:2] + (3,), np.float32)), np.float64)
    black = np.asarray(preprocess(np.zeros(probe[:2] + (3,), np.float32)), np.float64)
    if white.shape != probe:
        raise ValueError(f"{name}: preprocess maps a {probe[0]}×{probe[1]} image to shape "
                         f"{white.shape}, not {probe} ({channels} channels)")
    if sigma is None:
        sigma = estimate_sigma(preprocess, size)
    pixel_range = float(np.max(white - black)) / 2
    return Representation(
        name=name, description=description or getattr(fn, "__name__", "a function"),
        apply=fn, preprocess_fn=preprocess, deprocess_fn=deprocess, channels=channels,
        input_size=size, sigma=float(sigma), defaults=Config() if defaults is None else defaults,
        apply_batch=apply_batch, pixel_range=pixel_range if pixel_range > 0 else 128.0)


def _nnx_paths(state, nnx) -> dict[str, Any]:
    """``{"A/B": value}`` from the captured intermediates of an NNX module:
    the output of submodule ``A/B`` (a path ending in ``__call__``) or the
    value sown as ``A/B``; the last value of each (a submodule called twice
    gives its second output)."""
    found = {}
    flat = nnx.to_flat_state(state) if hasattr(nnx, "to_flat_state") else state.flat_state()
    for path, variable in flat:
        keys = [str(k) for k in path]
        if keys and keys[-1] == "__call__":
            keys = keys[:-1]
        value = variable.get_value() if hasattr(variable, "get_value") else variable.value
        found["/".join(keys)] = value[-1] if isinstance(value, tuple) else value
    return found


def nnx_layer(module, layer: str, *, input_size=None, channels: int = 3,
              preprocess: Callable[[Any], Array] | None = None,
              deprocess: Callable[[Array], Array] | None = None, sigma: float | None = None,
              defaults: Config | None = None, **call_kwargs) -> Representation:
    """A layer of a flax NNX module as a :class:`jinvert.Representation`.

    The layer is read with ``nnx.capture`` (flax 0.12): the output of every
    submodule's ``__call__`` (and of every method, by its name), named by its
    path, e.g. ``"conv1"``, ``"blocks/0"`` or ``"blocks/0/conv"`` (list
    items by index), and every value the module sows with
    ``self.sow(nnx.Intermediate, "features", x)``, by its path (``"features"``,
    ``"blocks/0/act"``).

    Args:
      module: an ``nnx.Module`` taking a batch ``(N, H, W, C)``, in the mode
        to invert (``module.eval()`` for dropout and batch norm); its state
        is copied now (``nnx.split``), so later changes to it do not reach
        the representation, which never changes it either.
      layer: a submodule's path (``""`` for the module's own output) or a
        sown value's path.
      input_size, channels, preprocess, deprocess, sigma, defaults: as for
        :func:`function_representation` (default input: RGB or grey − 0.5).
      **call_kwargs: passed to the module's ``__call__``.

    Returns:
      a Representation named ``"nnx:" + layer``; its ``apply_batch`` runs
      the module once on a batch.

    Raises:
      ValueError: no such layer (the message lists the module's layers).
      ImportError: this flax has no ``nnx.capture``.
    """
    from flax import nnx

    if not hasattr(nnx, "capture"):
        raise ImportError("nnx_layer needs flax.nnx.capture (flax 0.12 or later)")
    layer = str(layer).strip("/")
    graphdef, state = nnx.split(module)

    def apply_batch(x: Array) -> Array:
        model = nnx.merge(graphdef, state)  # a fresh copy: capture marks its modules
        _, captured = nnx.capture(model, nnx.Intermediate,
                                  method_outputs=nnx.Intermediate)(x, **call_kwargs)
        found = _nnx_paths(captured, nnx)
        if layer not in found:
            raise ValueError(f"nnx_layer: the module has no layer or sown value {layer!r}; "
                             f"it has {', '.join(repr(k) for k in sorted(found))}")
        return found[layer]

    return function_representation(
        lambda x: apply_batch(x[None])[0], name=f"nnx:{layer}",
        description=f"layer {layer!r} of {type(module).__name__}", input_size=input_size,
        channels=channels, preprocess=preprocess, deprocess=deprocess, sigma=sigma,
        defaults=defaults, apply_batch=apply_batch)


def _call_with_layer(model, x: Array, layer) -> Array:
    """The default call of :func:`equinox_layer`: ``model(x, layer)``."""
    return model(x, layer)


def equinox_layer(model, layer, *, call: Callable[[Any, Array, Any], Array] = _call_with_layer,
                  channels_first: bool = True, input_size=None, channels: int = 3,
                  preprocess: Callable[[Any], Array] | None = None,
                  deprocess: Callable[[Array], Array] | None = None, sigma: float | None = None,
                  defaults: Config | None = None) -> Representation:
    """A layer of an equinox model (or any callable pytree) as a
    :class:`jinvert.Representation`.

    Equinox has no record of intermediate values, so the model says which
    layer to return: the code is ``call(model, x, layer)``, by default
    ``model(x, layer)``, a ``__call__`` that takes the layer to stop at
    (a name, an index: any value the model understands). ``x`` is one
    image, unbatched as equinox's layers take it: ``(C, H, W)`` (channels
    first, as ``eqx.nn.Conv2d``), or ``(H, W, C)`` with
    ``channels_first=False``. A batch is vmapped.

    Args:
      model: the equinox model, in inference mode
        (``eqx.nn.inference_mode(model)`` for dropout and batch norm).
      layer: the layer selector passed to ``call``.
      call: ``(model, x, layer) -> code``, e.g.
        ``lambda m, x, layer: m.features(x)[layer]``.
      channels_first: give the model ``(C, H, W)`` (True) or ``(H, W, C)``.
      input_size, channels, preprocess, deprocess, sigma, defaults: as for
        :func:`function_representation` (the input space is ``(H, W, C)``
        whatever the model's layout; default RGB or grey − 0.5).

    Returns:
      a Representation named ``"equinox:" + str(layer)``.

    Raises:
      whatever ``call`` raises on an input of ``input_size`` (traced for
      shapes only) for a layer the model does not have.
    """
    def apply(x: Array) -> Array:
        return call(model, jnp.moveaxis(x, -1, 0) if channels_first else x, layer)

    return function_representation(
        apply, name=f"equinox:{layer}", description=f"layer {layer!r} of {type(model).__name__}",
        input_size=input_size, channels=channels, preprocess=preprocess, deprocess=deprocess,
        sigma=sigma, defaults=defaults)
