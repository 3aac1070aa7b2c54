"""Training a learned decoder (:mod:`jinvert.decoder_network`): ``jinvert train-decoder``.

Owns :class:`TrainSettings`, the training images (:func:`training_pool`,
random crops; for network taps :func:`tap_pool`), a fresh decoder's scales
and weights (:func:`new_decoder`),
the loss (:func:`training_loss`), the Adam step and :func:`train` with its
checkpoints. :func:`train` and :class:`TrainSettings` are also reached
through :mod:`jinvert.decoders`, as the README names them.

Training: Adam on random crops, horizontal flips and rescales of photos, the
loss the mean squared pixel error in units of the training pixels' RMS,
optionally plus the data term of eq. 3, ||Φ(x̂) − Φ0||² / ||Φ0||². Every
step's batch is drawn from ``fold_in(PRNGKey(seed), step)``, so a run
resumed from a checkpoint ends with the weights an uninterrupted run would
have had.

Network taps (``efficientnet:LAYER``): one forward pass of EfficientNet per
crop and step would cost most of a CPU's training time, so the photos are
used whole instead, resized to ``crop`` × ``crop`` (224 by default: the
network's own size), each also flipped left-right, and their codes computed
once (:func:`tap_pool`); a step draws a batch of these pairs. The pixel loss
alone is their default (``feature_weight`` 0; the feature loss, which runs
the network forward and backward on the decoded batch, stays available).
"""

from __future__ import annotations

import dataclasses
import functools
import os
import sys
from typing import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jinvert.decoder_network import (ConvDecoder, Decoder, is_network_tap, network_output,
                                     param_arrays, read_npz, saved_params, stride_of,
                                     write_npz)
from jinvert.progress import Progress, watched

Array = jax.Array

#: Default side of the training crops: HOG 16 cells; DSIFT 9 descriptors
#: (15·8 + 16 pixels, a descriptor's frame past the last step).
CROPS = {"hog": 128, "hogb": 128, "dsift": 136}

#: Default side of the whole photos a network tap's decoder trains on: the
#: network's input size.
TAP_SIDE = 224

#: Default weight of the feature loss: HOG, HOGb and DSIFT; network taps.
FEATURE_WEIGHTS = {"shallow": 16.0, "tap": 0.0}

#: Shorter sides (pixels) the training photos are resized to, each then
#: centre-cropped to a square of the smallest: rescales around the 227 of
#: the paper's test images.
TRAIN_SIZES = (192, 227, 272)


def training_pool(rep, photos: Sequence[np.ndarray], sizes: Sequence[int] = TRAIN_SIZES
                  ) -> np.ndarray:
    """The images training draws its crops from.

    Args:
      rep: the representation (its ``preprocess`` maps photos in).
      photos: RGB or grey images in [0, 1], any sizes.
      sizes: each photo is resized so its shorter side is each of ``sizes``
        and centre-cropped to ``min(sizes)`` square.

    Returns:
      float32 ``(len(photos)·len(sizes), S, S, C)`` in the input space.
    """
    from jinvert import images as im

    side = int(min(sizes))
    pool = []
    for photo in photos:
        for s in sizes:
            h, w = photo.shape[:2]
            scale = s / min(h, w)
            scaled = im.resize(photo, (max(side, round(h * scale)), max(side, round(w * scale))))
            top, left = (scaled.shape[0] - side) // 2, (scaled.shape[1] - side) // 2
            pool.append(np.asarray(rep.preprocess(scaled[top:top + side, left:left + side])))
    return np.stack(pool).astype(np.float32)


def input_images(rep, photos: Sequence[np.ndarray], side: int) -> np.ndarray:
    """Photos resized and centre-cropped to ``side`` × ``side``, in ``rep``'s
    input space: for a representation whose ``preprocess`` maps to a fixed
    input size (EfficientNet's 224 × 224) and is otherwise pointwise, or one
    of any size (``input_size`` None: its ``preprocess`` as it is).

    Why not ``rep.preprocess`` of the small picture: it would enlarge it to
    224 again. The picture is put in the corner of a blank canvas of the
    input size, which ``preprocess`` then maps pixel by pixel, exactly, and
    cut out again.

    Args:
      rep: the representation; photos: RGB or grey images in [0, 1], any sizes.
      side: pixels, at most the input size (ValueError otherwise).

    Returns:
      float32 ``(len(photos), side, side, C)``.
    """
    from jinvert import images as im

    out = []
    if rep.input_size is None:  # a representation of any size: its own preprocess
        for photo in photos:
            out.append(np.asarray(rep.preprocess(im.resize_and_crop(photo, (side, side)))))
        return np.stack(out).astype(np.float32)
    full = tuple(int(n) for n in rep.input_size)
    if side > min(full):
        raise ValueError(f"side {side} is larger than {rep.name}'s input size {full}")
    for photo in photos:
        pixels = im.resize_and_crop(photo, (side, side))
        canvas = np.zeros(full + pixels.shape[2:], np.float32)
        canvas[:side, :side] = pixels
        out.append(np.asarray(rep.preprocess(canvas))[:side, :side])
    return np.stack(out).astype(np.float32)


def tap_pool(rep, photos: Sequence[np.ndarray], side: int = TAP_SIDE
             ) -> tuple[np.ndarray, np.ndarray]:
    """A network tap's training pairs: each photo whole (:func:`input_images`)
    and flipped left-right, with their codes computed once.

    Returns:
      ``(images, codes)``: float32 ``(2·len(photos), side, side, C)`` in the
      input space (photo i at 2i, its mirror at 2i + 1) and ``(2·len(photos),
      *code)``.
    """
    xs = input_images(rep, photos, side)
    images = np.stack([xs, xs[:, :, ::-1]], axis=1).reshape(-1, *xs.shape[1:])
    encode = jax.jit(rep.batch_apply)
    # In chunks: a whole batch of 224 × 224 photos through the network at once
    # would hold every layer's activations.
    codes = np.concatenate([np.asarray(encode(jnp.asarray(images[i:i + 8])))
                            for i in range(0, len(images), 8)])
    return images, codes


def _batch(pool: Array, key, batch_size: int, crop: int) -> Array:
    """Random crops ``(batch_size, crop, crop, C)`` of random pool images,
    each flipped left-right with probability 1/2."""
    k_index, k_top, k_left, k_flip = jax.random.split(key, 4)
    n, side = pool.shape[0], pool.shape[1]
    index = jax.random.randint(k_index, (batch_size,), 0, n)
    top = jax.random.randint(k_top, (batch_size,), 0, side - crop + 1)
    left = jax.random.randint(k_left, (batch_size,), 0, side - crop + 1)
    flip = jax.random.bernoulli(k_flip, 0.5, (batch_size,))

    def one(i, t, l, f):
        x = jax.lax.dynamic_slice(pool[i], (t, l, 0), (crop, crop, pool.shape[-1]))
        return jnp.where(f, x[:, ::-1], x)

    return jax.vmap(one)(index, top, left, flip)


@dataclasses.dataclass(frozen=True)
class TrainSettings:
    """How :func:`train` trains (all recorded in the decoder's header).

    The defaults made the bundled HOG decoder (6.4 minutes on a quiet
    2-core CPU, 10–11 with other jobs; with the feature loss a step costs
    about 3.5 times a step of the pixel loss alone, for the backward pass
    through Φ). A feature weight of 16 and 5000 steps, rather than 4 and
    3000, took a HOG decoder alone from 60.6 to 50.9 % error on held-out
    photos (docs/results.md).

    Attributes:
      steps: optimiser steps in all.
      batch_size: crops per step.
      crop: side of the square crops in pixels; ``None``: the
        representation's (:data:`CROPS`: 128 for HOG, 136 for DSIFT). For a
        network tap, the side of the whole photos (no crops; default
        :data:`TAP_SIDE`, 224); a vector code's decoder makes that size only.
      learning_rate: Adam's peak rate (cosine decay to 0 after a warm-up of
        ``min(100, steps // 10)`` steps).
      feature_weight: weight of the feature loss ||Φ(x̂) − Φ0||² / ||Φ0||²
        beside the pixel loss (0: pixels only); ``None``: the
        representation's (:data:`FEATURE_WEIGHTS`: 16 for HOG, HOGb and
        DSIFT, 0 for network taps).
      width, blocks: the :class:`ConvDecoder`'s.
      seed: of the initial weights and of every batch.
    """

    steps: int = 5000
    batch_size: int = 8
    crop: int | None = None
    learning_rate: float = 2e-3
    feature_weight: float | None = None
    width: int = 64
    blocks: int = 2
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "crop", "width"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.blocks < 0 or not self.learning_rate > 0 or not (
                self.feature_weight is None or self.feature_weight >= 0):
            raise ValueError("need blocks >= 0, learning_rate > 0 and feature_weight >= 0")


@functools.lru_cache(maxsize=8)
def _optimizer(settings: TrainSettings) -> optax.GradientTransformation:
    """Adam on its schedule; one object per settings, so that the compiled
    training step is reused by later runs with the same settings."""
    warmup = min(100, settings.steps // 10)
    schedule = optax.warmup_cosine_decay_schedule(0.0, settings.learning_rate, warmup,
                                                  settings.steps)
    return optax.adam(schedule)


@functools.lru_cache(maxsize=8)
def _representation(name: str):
    """The registry's representation ``name``, one object per name (the
    compiled training step is keyed by it)."""
    from jinvert.registry import resolve_representation
    return resolve_representation(name)


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _train_step(module, rep, settings, params, state, pool, key, code_scale, pixel_scale):
    """One Adam step on a batch drawn from ``key``: ``(params, state, loss,
    {"pixel", "feature"})``."""
    crops = _batch(pool, key, settings.batch_size, settings.crop)
    (loss, parts), grads = jax.value_and_grad(
        lambda p: _losses(module, p, rep, crops, code_scale, pixel_scale,
                          settings.feature_weight), has_aux=True)(params)
    updates, state = _optimizer(settings).update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss, parts


@functools.partial(jax.jit, static_argnums=(0, 1, 2))
def _tap_train_step(module, rep, settings, params, state, images, codes, key, code_scale,
                    pixel_scale):
    """One Adam step on ``batch_size`` pairs of :func:`tap_pool` drawn from
    ``key``: ``(params, state, loss, {"pixel", "feature"})``."""
    index = jax.random.randint(key, (settings.batch_size,), 0, images.shape[0])
    (loss, parts), grads = jax.value_and_grad(
        lambda p: _coded_losses(module, p, rep, images[index], codes[index], code_scale,
                                pixel_scale, settings.feature_weight), has_aux=True)(params)
    updates, state = _optimizer(settings).update(grads, state, params)
    return optax.apply_updates(params, updates), state, loss, parts


def _losses(module, params, rep, crops, code_scale, pixel_scale, feature_weight):
    """``(total, {"pixel", "feature"})`` of a batch of crops (means over it)."""
    return _coded_losses(module, params, rep, crops, rep.batch_apply(crops), code_scale,
                         pixel_scale, feature_weight)


def _coded_losses(module, params, rep, crops, codes, code_scale, pixel_scale,
                  feature_weight):
    """:func:`_losses` given the crops' codes."""
    out = network_output(module, params, codes, code_scale, crops.shape[1:]) * pixel_scale
    pixel = jnp.mean((out - crops) ** 2) / pixel_scale ** 2
    feature = jnp.float32(0.0)
    if feature_weight:
        again = rep.batch_apply(out)
        axes = tuple(range(1, codes.ndim))
        feature = jnp.mean(jnp.sum((again - codes) ** 2, axis=axes)
                           / jnp.maximum(jnp.sum(codes ** 2, axis=axes), 1e-12))
    return pixel + feature_weight * feature, {"pixel": pixel, "feature": feature}


#: :func:`_losses` compiled (run op by op, HOG's forward pass alone would take seconds).
_jitted_losses = jax.jit(_losses, static_argnums=(0, 2, 6))


def training_loss(decoder: Decoder, crops, feature_weight: float) -> tuple[Array, dict]:
    """The loss :func:`train` minimises, at ``decoder``'s weights, on given crops.

    Args:
      decoder: a :class:`Decoder` (its representation is the registry's
        ``decoder.rep``).
      crops: input-space images ``(N, S, S, C)`` (the training batch).
      feature_weight: w, the weight of the feature loss
        (:attr:`TrainSettings.feature_weight`).

    Returns:
      ``(total, {"pixel", "feature"})``, float32 scalars: ``pixel`` the mean
      squared pixel error over the batch divided by ``pixel_scale²``;
      ``feature`` the mean over the crops of ||Φ(x̂) − Φ(x)||² / ||Φ(x)||²,
      x̂ the decoder's output for Φ(x) (0 when w is 0: not computed);
      ``total`` = pixel + w·feature.
    """
    return _jitted_losses(decoder.module, decoder.params, _representation(decoder.rep),
                          jnp.asarray(crops, jnp.float32), jnp.float32(decoder.code_scale),
                          jnp.float32(decoder.pixel_scale), float(feature_weight))


def _training_reporter(progress, steps: int, start: int):
    """``progress`` of :func:`train` as a callable ``(step, losses)``, or None
    (``start``: the steps a resumed run has already done)."""
    if progress is False:
        return None
    if callable(progress):
        return lambda step, losses: progress(step, steps, losses)
    if progress is None and not watched():
        return None
    return Progress(steps, start=start, unit="step", activity="training",
                    terms={"loss": ("loss", ".4f"), "pixel": ("pixel", ".4f"),
                           "feature": ("feature", ".4f")})


def new_decoder(rep, rep_name: str, pool: np.ndarray, settings: TrainSettings,
                codes: np.ndarray | None = None) -> Decoder:
    """An untrained decoder for ``rep`` with its scales measured on ``pool``
    (input-space images ``(N, S, S, C)``) and weights from ``settings.seed``.

    ``codes``: the codes of ``pool`` for a network tap (:func:`tap_pool`),
    whose decoder decodes whole ``S × S`` images; ``None``: crops of
    ``settings.crop`` pixels are encoded here."""
    stride = stride_of(rep_name)
    if settings.crop is None:
        raise ValueError("settings.crop must be set (train sets the representation's)")
    if settings.crop > pool.shape[1]:
        raise ValueError(f"crop {settings.crop} is larger than the training images "
                         f"({pool.shape[1]} pixels a side)")
    if codes is None:
        sample = jnp.asarray(pool[:: max(1, len(pool) // 16)][:16, : settings.crop,
                                                                  : settings.crop])
        codes = jax.jit(rep.batch_apply)(sample)
    codes = jnp.asarray(codes)
    arch = {"channels": int(rep.channels), "stride": stride, "width": int(settings.width),
            "blocks": int(settings.blocks), "code_channels": int(codes.shape[-1])}
    if codes.ndim == 2:  # a vector code: a Dense layer to a grid, one output size
        side = int(pool.shape[1])
        cells = -(-side // stride)
        arch.update(grid=[cells, cells], size=[side, int(pool.shape[2])])
    module = ConvDecoder(channels=arch["channels"], stride=stride, width=arch["width"],
                         blocks=arch["blocks"],
                         grid=tuple(arch["grid"]) if "grid" in arch else None)
    params = module.init(jax.random.PRNGKey(settings.seed), codes[:1])["params"]
    return Decoder(rep=rep_name, architecture=arch,
                   code_scale=float(jnp.sqrt(jnp.mean(codes ** 2))),
                   pixel_scale=float(np.sqrt(np.mean(np.square(pool, dtype=np.float64)))),
                   params=params)


def train(rep_name: str, photos: Sequence[np.ndarray], settings: TrainSettings = TrainSettings(),
          *, checkpoint: str | None = None, checkpoint_every: int = 200,
          resume: bool = False, progress=None,
          description: str = "") -> tuple[Decoder, list[float]]:
    """Train a decoder for the representation ``rep_name`` on ``photos``.

    Args:
      rep_name: a registry name: ``"hog"``, ``"hogb"``, ``"dsift"`` or a
        network tap ``"efficientnet:LAYER"`` (trained on whole photos with
        precomputed codes, see the module's docstring).
      photos: images in [0, 1], ``(H, W[, 3])``, at least one, each at
        least ``min(TRAIN_SIZES)`` after rescaling (any size works).
      settings: :class:`TrainSettings`.
      checkpoint: a ``.npz`` path written every ``checkpoint_every`` steps
        and at the end: the decoder, Adam's state and the step.
      resume: continue from ``checkpoint`` if it exists (the settings must
        be the same); the result equals an uninterrupted run's.
      progress: as :func:`jinvert.invert`'s: ``None`` (default) a bar where
        a person watches, ``True`` always (plain lines every 10 % without a
        terminal), ``False`` silent, or a callable ``(step, steps, losses)``
        called about every 1 % of the steps and at the last, ``losses``
        ``{"loss", "pixel", "feature"}`` (floats, of that step's batch).
      description: words on the photos, kept in the header.

    Returns:
      ``(decoder, losses)``: the trained decoder and the loss of every step
      run in this call (before its update).
    """
    if not photos:
        raise ValueError("train needs at least one photo")
    stride_of(rep_name)  # before reading the photos
    tap = is_network_tap(rep_name)
    if settings.crop is None:
        settings = dataclasses.replace(settings, crop=TAP_SIDE if tap else CROPS[rep_name])
    if settings.feature_weight is None:
        settings = dataclasses.replace(
            settings, feature_weight=FEATURE_WEIGHTS["tap" if tap else "shallow"])
    rep = _representation(rep_name)
    if tap:
        pool, pool_codes = tap_pool(rep, photos, settings.crop)
    else:
        pool, pool_codes = training_pool(rep, photos), None
    decoder = new_decoder(rep, rep_name, pool, settings, pool_codes)
    optimizer = _optimizer(settings)
    state = optimizer.init(decoder.params)
    params, start = decoder.params, 0
    recorded = {**dataclasses.asdict(settings), "photos": len(photos),
                "description": description,
                "sizes": [settings.crop] if tap else list(TRAIN_SIZES)}
    if tap:
        recorded["pool"] = "whole photos and their mirrors, codes computed once"
    if checkpoint and os.path.exists(checkpoint) and not resume and progress is not False:
        print(f"jinvert: starting afresh, overwriting {checkpoint} (resume=True / --resume "
              f"continues it)", file=sys.stderr, flush=True)
    if resume and checkpoint and os.path.exists(checkpoint):
        header, arrays = read_npz(checkpoint)
        saved = {k: header["training"].get(k) for k in dataclasses.asdict(settings)}
        differ = [f"{k} {saved[k]} (now {v})" for k, v in dataclasses.asdict(settings).items()
                  if saved[k] != v]
        if header["rep"] != rep_name:
            differ.insert(0, f"representation {header['rep']} (now {rep_name})")
        if differ:
            raise ValueError(f"{checkpoint} was written with other settings: "
                             f"{', '.join(differ)}; resume with the same ones")
        params = saved_params(arrays)
        leaves = [jnp.asarray(arrays[f"opt/{i}"])
                  for i in range(len(jax.tree_util.tree_leaves(state)))]
        state = jax.tree_util.tree_unflatten(jax.tree_util.tree_structure(state), leaves)
        start = int(header["training"]["step"])
        decoder = dataclasses.replace(decoder, code_scale=header["code_scale"],
                                      pixel_scale=header["pixel_scale"])
        if progress is not False:
            print(f"jinvert: resumed from {checkpoint} at step {start}/{settings.steps}",
                  file=sys.stderr, flush=True)

    module = decoder.module
    code_scale = jnp.float32(decoder.code_scale)
    pixel_scale = jnp.float32(decoder.pixel_scale)
    pool_dev = jnp.asarray(pool)
    codes_dev = None if pool_codes is None else jnp.asarray(pool_codes)
    base = jax.random.PRNGKey(settings.seed)

    def step(params, state, i):
        if tap:
            return _tap_train_step(module, rep, settings, params, state, pool_dev, codes_dev,
                                   jax.random.fold_in(base, i), code_scale, pixel_scale)
        return _train_step(module, rep, settings, params, state, pool_dev,
                           jax.random.fold_in(base, i), code_scale, pixel_scale)

    def save(step_done):
        done = dataclasses.replace(decoder, params=params,
                                   training={**recorded, "step": step_done})
        arrays = param_arrays(params)
        arrays.update({f"opt/{i}": np.asarray(leaf)
                       for i, leaf in enumerate(jax.tree_util.tree_leaves(state))})
        write_npz(checkpoint, arrays, done.header())

    report = _training_reporter(progress, settings.steps, start) if start < settings.steps \
        else None
    losses, every = [], max(1, settings.steps // 100)
    for i in range(start, settings.steps):
        params, state, loss, parts = step(params, state, i)
        losses.append(loss)  # read back at reports and at the end, not every step
        if report and ((i + 1) % every == 0 or i + 1 == settings.steps or i == start):
            report(i + 1, {"loss": float(loss), "pixel": float(parts["pixel"]),
                           "feature": float(parts["feature"])})
        if checkpoint and ((i + 1) % checkpoint_every == 0 or i + 1 == settings.steps):
            save(i + 1)
    if isinstance(report, Progress):
        report.close()
    if checkpoint and start >= settings.steps:
        save(settings.steps)
    return dataclasses.replace(decoder, params=params,
                               training={**recorded, "step": settings.steps}), [
        float(loss) for loss in jax.device_get(losses)]
