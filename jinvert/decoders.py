"""A learned feed-forward inverter: a small convolutional decoder code → image.

Beyond the paper. Mahendran & Vedaldi's Table 1 compares their optimisation
with HOGgle (Vondrick et al.), a *learned* HOG inverter: one pass, no
optimisation, far worse error. Dosovitskiy & Brox (2016) later trained
convolutional decoders for CNN codes. A :class:`Decoder` here is such a
network for one representation (HOG, HOGb, DSIFT…): fully convolutional, so
one trained at 128 × 128 crops decodes a code of any size. It gives

* an instant reconstruction, ``decoder(codes, shape)``, and
* a starting point for the paper's optimisation:
  ``jinvert.invert(rep, code, init=decoder, ...)`` (see ``init`` there).

The network (:class:`ConvDecoder`): the code, divided by a fixed scale,
goes through a 3 × 3 convolution to ``width`` channels and ``blocks``
residual blocks at the code's resolution, then one stage per prime factor f
of the stride (HOG's 8: 2, 2, 2; DSIFT's 15: 3, 5) of ×f bilinear
upsampling + 3 × 3 convolution + ReLU (channels halving down to 16), and a
3 × 3 convolution to the input space's channels, multiplied by a fixed pixel
scale. The output, ``stride·h × stride·w``, is cropped or edge-padded at the
bottom and right to the requested ``(H, W)``: HOG's cell j covers pixels
[8j, 8j + 8) and a border of up to 7 pixels is left over; DSIFT's
descriptor j (every 15 pixels, 16 wide) covers [15j, 15j + 16).

Training (:func:`train`, ``jinvert train-decoder``): Adam on random crops,
horizontal flips and rescales of photos, the loss the mean squared pixel
error in units of the training pixels' RMS, optionally plus the data term of
eq. 3, ||Φ(x̂) − Φ0||² / ||Φ0||². Every step's batch is drawn from
``fold_in(PRNGKey(seed), step)``, so a run resumed from a checkpoint ends
with the weights an uninterrupted run would have had.

File format (:meth:`Decoder.save`, :func:`load`): one ``.npz`` with one
array per parameter, named by its path (``params/Conv_0/kernel``), and
``header``, a JSON string: the representation's registry name, the
architecture, the two scales and how it was trained. Readable with NumPy and
``json`` alone.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
import sys
from typing import Any, Sequence

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import optax

from jinvert.progress import Progress, watched

Array = jax.Array

#: The format written by :meth:`Decoder.save`; :func:`load` reads this one.
FORMAT = "jinvert-decoder-1"

#: Input-space pixels of the representations' grids: HOG's cell, 8 pixels;
#: DSIFT's step between descriptors, 15 (the registry's ``dsift``).
STRIDES = {"hog": 8, "hogb": 8, "dsift": 15}

#: Default side of the training crops: HOG 16 cells; DSIFT 9 descriptors
#: (15·8 + 16 pixels, a descriptor's frame past the last step).
CROPS = {"hog": 128, "hogb": 128, "dsift": 136}


def stride_of(rep_name: str) -> int:
    """Input-space pixels per code cell of ``rep_name`` (:data:`STRIDES`);
    ValueError for a representation without a decoder geometry."""
    if rep_name not in STRIDES:
        raise ValueError(f"no decoder geometry for {rep_name!r}; decoders exist for "
                         f"{', '.join(STRIDES)}")
    return STRIDES[rep_name]


def upsampling_factors(stride: int) -> tuple[int, ...]:
    """The prime factors of ``stride``, smallest first: one ×f upsampling
    stage of :class:`ConvDecoder` each (8 → (2, 2, 2), 15 → (3, 5))."""
    stride, factors, f = int(stride), [], 2
    if stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    while stride > 1:
        while stride % f == 0:
            factors.append(f)
            stride //= f
        f += 1
    return tuple(factors)


class ConvDecoder(nn.Module):
    """Code ``(N, h, w, K)`` → image ``(N, stride·h, stride·w, C)``, both
    in units scaled to about 1 (see :class:`Decoder` for the scales).

    Attributes:
      channels: C, the channels of the representation's input space.
      stride: pixels per code cell (HOG: 8, DSIFT: 15); one upsampling
        stage per prime factor (:func:`upsampling_factors`).
      width: channels at the code's resolution.
      blocks: residual blocks (two 3 × 3 convolutions each) at that resolution.
    """

    channels: int = 1
    stride: int = 8
    width: int = 64
    blocks: int = 2

    @nn.compact
    def __call__(self, code: Array) -> Array:
        x = nn.relu(nn.Conv(self.width, (3, 3))(code))
        for _ in range(self.blocks):
            y = nn.relu(nn.Conv(self.width, (3, 3))(x))
            x = x + nn.Conv(self.width, (3, 3))(y)
            x = nn.relu(x)
        features = self.width
        for f in upsampling_factors(self.stride):
            n, h, w, c = x.shape
            x = jax.image.resize(x, (n, f * h, f * w, c), "bilinear")
            features = max(16, features // 2)
            x = nn.relu(nn.Conv(features, (3, 3))(x))
        return nn.Conv(self.channels, (3, 3))(x)


def _fit(images: Array, shape) -> Array:
    """Crop or edge-pad ``(N, H', W', C)`` at the bottom/right to ``shape[:2]``."""
    h, w = int(shape[0]), int(shape[1])
    images = images[:, :h, :w]
    pad_h, pad_w = h - images.shape[1], w - images.shape[2]
    if pad_h or pad_w:
        images = jnp.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return images


@dataclasses.dataclass(frozen=True, eq=False)
class Decoder:
    """A trained (or freshly initialised) decoder for one representation.

    Attributes:
      rep: the representation's registry name (``"hog"``, ``"hogb"``,
        ``"dsift"``: :func:`jinvert.registry.resolve_representation`).
      architecture: the :class:`ConvDecoder` fields (``channels``,
        ``stride``, ``width``, ``blocks``) and ``code_channels`` K.
      code_scale: the code is divided by it before the network (the RMS of
        the training codes).
      pixel_scale: the network's output is multiplied by it to give
        input-space values (the RMS of the training pixels, e.g. grey levels).
      params: the flax parameters (a pytree of float32 arrays).
      training: how it was trained (steps, images, seed, …), for the record.
    """

    rep: str
    architecture: dict
    code_scale: float
    pixel_scale: float
    params: Any = dataclasses.field(repr=False)
    training: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        arch = dict(self.architecture)
        module = ConvDecoder(**{k: arch[k] for k in ("channels", "stride", "width", "blocks")})
        object.__setattr__(self, "module", module)

    def __call__(self, codes, shape=None) -> Array:
        """Decode codes into input-space images, in one pass.

        Args:
          codes: one code ``(h, w, K)`` or a batch ``(B, h, w, K)``.
          shape: ``(H, W)`` or ``(H, W, C)`` of the images; default
            ``(stride·h, stride·w)``.

        Returns:
          float32 ``(H, W, C)`` or ``(B, H, W, C)`` in the representation's
          input space (HOG: grey levels 255·g − 128).
        """
        codes = jnp.asarray(codes, jnp.float32)
        given = tuple(codes.shape)
        single = codes.ndim == 3
        if single:
            codes = codes[None]
        k = int(self.architecture["code_channels"])
        if codes.ndim != 4 or codes.shape[-1] != k:
            raise ValueError(f"this decoder takes codes (h, w, {k}) or (B, h, w, {k}) of "
                             f"{self.rep!r} as jinvert.registry.resolve_representation"
                             f"({self.rep!r}) computes them; got shape {given}")
        stride = int(self.architecture["stride"])
        if shape is None:
            shape = (stride * codes.shape[1], stride * codes.shape[2])
        shape = tuple(int(s) for s in shape)[:2]
        images = _decode(self.module, self.params, codes, jnp.float32(self.code_scale),
                              shape)
        images = images * jnp.float32(self.pixel_scale)
        return images[0] if single else images

    def save(self, path: str | os.PathLike) -> None:
        """Write the decoder as one ``.npz`` (see the module's docstring),
        atomically (beside the target, then renamed)."""
        _save_npz(path, _param_arrays(self.params), self.header())

    def header(self) -> dict:
        """The JSON header: everything but the parameters."""
        return {"format": FORMAT, "rep": self.rep, "architecture": dict(self.architecture),
                "code_scale": float(self.code_scale), "pixel_scale": float(self.pixel_scale),
                "training": dict(self.training)}

    def check(self, rep) -> None:
        """Raise ``ValueError`` unless this decoder is for ``rep`` (a
        :class:`jinvert.Representation`): same name and input channels."""
        if rep.name != self.rep or int(rep.channels) != int(self.architecture["channels"]):
            raise ValueError(f"this decoder was trained for {self.rep!r} "
                             f"({self.architecture['channels']}-channel input), not for "
                             f"{rep.name!r}")


def _apply(module, params, codes: Array) -> Array:
    """The network in full float32 on every backend (convolutions and the
    bilinear upsampling's products), as HOG and DSIFT themselves are.

    Why: a HOG decoder trained on an H100 at JAX's default precision (TF32
    convolutions there) lost most of its quality on the CPU, its feature
    loss on training crops rising from about 0.13 to 0.39, while HOGb and
    DSIFT decoders trained alike moved by under 10 %. HOG's hard orientation
    bins make its code jump with small changes of the image; the decoder had
    learnt images for TF32's arithmetic. Pinned, training and decoding do
    the same arithmetic on every backend up to rounding order (not yet
    re-measured on a GPU)."""
    with jax.default_matmul_precision("highest"):
        return module.apply({"params": params}, codes)


@functools.partial(jax.jit, static_argnums=(0, 4))
def _decode(module, params, codes, code_scale, shape):
    return _fit(_apply(module, params, codes / code_scale), shape)


def _flatten(tree) -> dict[str, np.ndarray]:
    """``{"a/b/c": array}`` of a nested dict of arrays."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out["/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)] = \
            np.asarray(leaf)
    return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jnp.asarray(value)
    return tree


def _save_npz(path, arrays: dict, header: dict) -> None:
    path = os.fspath(path)
    tmp = f"{path}.partial-{os.getpid()}.npz"
    try:
        np.savez(tmp, header=np.asarray(json.dumps(header)), **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _read_npz(path) -> tuple[dict, dict]:
    """``(header, arrays)`` of a decoder or checkpoint file, or ValueError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"decoder file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        header = json.loads(str(arrays.pop("header")))
    except (OSError, ValueError, KeyError):
        # (NumPy's own message would suggest allow_pickle=True: never for
        # a file one did not write.)
        raise ValueError(f"{path} is not a jinvert decoder file (not a NumPy .npz archive "
                         f"with a JSON header)") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a jinvert decoder file (format "
                         f"{header.get('format')!r}, expected {FORMAT!r})")
    return header, arrays


def _param_arrays(params) -> dict[str, np.ndarray]:
    """The arrays a decoder or checkpoint file stores its flax parameters
    as, ``params/Conv_0/kernel``... (read back by :func:`_saved_params`)."""
    return {f"params/{k}": v for k, v in _flatten(params).items()}


def _saved_params(arrays: dict) -> dict:
    """The flax parameters of a decoder or checkpoint file's arrays (those
    named ``params/...``; a checkpoint's ``opt/...`` are Adam's state)."""
    return _unflatten({k[len("params/"):]: v for k, v in arrays.items()
                       if k.startswith("params/")})


def load(path: str | os.PathLike) -> Decoder:
    """Read a decoder written by :meth:`Decoder.save` (or a training
    checkpoint, whose optimiser state is ignored).

    Raises:
      ValueError: a missing file, or one that is not a decoder file.
    """
    header, arrays = _read_npz(path)
    params = _saved_params(arrays)
    return Decoder(rep=header["rep"], architecture=header["architecture"],
                   code_scale=header["code_scale"], pixel_scale=header["pixel_scale"],
                   params=params, training=header.get("training", {}))


#: Decoders shipped in ``jinvert/data``, by representation (see
#: :func:`bundled`).
BUNDLED = {"hog": "hog-decoder.npz"}


def bundled(rep_name: str) -> Decoder:
    """The decoder shipped with jinvert for ``rep_name`` (``"hog"``).

    Trained here by ``jinvert train-decoder`` with its defaults
    (:class:`TrainSettings`) on 42 tiles of 12 photos that scikit-image
    ships under CC0 or in the public domain (``benchmarks/cc0_photos.py``
    writes them and lists each licence), not on ImageNet photos. Its header
    (``decoder.training``) records the settings; docs/results.md gives its
    error on held-out ImageNet photos (54 % alone, HOGgle's 66 %).

    Raises:
      ValueError: no decoder ships for ``rep_name``.
    """
    if rep_name not in BUNDLED:
        raise ValueError(f"no decoder ships for {rep_name!r} (only for "
                         f"{', '.join(BUNDLED)}); train one with 'jinvert train-decoder "
                         f"--rep {rep_name}'")
    return load(os.path.join(os.path.dirname(__file__), "data", BUNDLED[rep_name]))


def initial_images(init, rep, codes: Array, shape) -> Array:
    """What :func:`jinvert.invert`'s ``init`` stands for, as input-space images.

    Args:
      init: a :class:`Decoder` (or the path of a decoder file): its output
        for each code; or an array ``(H, W, C)``, ``(B, H, W, C)`` or
        ``(B, S, H, W, C)`` of images, returned as is.
      rep: the representation (a decoder must be for it).
      codes: ``(B, *code_shape)``, or ``None`` where there are none (then a
        decoder raises ValueError).
      shape: ``(H, W, C)``.

    Returns:
      float32 ``(H, W, C)``, ``(B, H, W, C)`` or ``(B, S, H, W, C)``.
    """
    if isinstance(init, (str, os.PathLike)):
        init = load(init)
    if isinstance(init, Decoder):
        if codes is None:
            raise ValueError("a decoder starts from codes: use it with jinvert.invert, or "
                             "pass its images as init")
        init.check(rep)
        return init(codes, shape)
    return jnp.asarray(init, jnp.float32)


# ----------------------------------------------------------------------------
# Training
# ----------------------------------------------------------------------------

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
        representation's (:data:`CROPS`: 128 for HOG, 136 for DSIFT).
      learning_rate: Adam's peak rate (cosine decay to 0 after a warm-up of
        ``min(100, steps // 10)`` steps).
      feature_weight: weight of the feature loss ||Φ(x̂) − Φ0||² / ||Φ0||²
        beside the pixel loss (0: pixels only).
      width, blocks: the :class:`ConvDecoder`'s.
      seed: of the initial weights and of every batch.
    """

    steps: int = 5000
    batch_size: int = 8
    crop: int | None = None
    learning_rate: float = 2e-3
    feature_weight: float = 16.0
    width: int = 64
    blocks: int = 2
    seed: int = 0

    def __post_init__(self):
        for name in ("steps", "batch_size", "crop", "width"):
            if getattr(self, name) is not None and int(getattr(self, name)) < 1:
                raise ValueError(f"{name} must be a positive integer, got {getattr(self, name)}")
        if self.blocks < 0 or not self.learning_rate > 0 or not self.feature_weight >= 0:
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


def _losses(module, params, rep, crops, code_scale, pixel_scale, feature_weight):
    """``(total, {"pixel", "feature"})`` of a batch of crops (means over it)."""
    codes = rep.batch_apply(crops)
    out = _fit(_apply(module, params, codes / code_scale), crops.shape[1:]) \
        * pixel_scale
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


def new_decoder(rep, rep_name: str, pool: np.ndarray, settings: TrainSettings) -> Decoder:
    """An untrained decoder for ``rep`` with its scales measured on ``pool``
    (input-space images ``(N, S, S, C)``) and weights from ``settings.seed``."""
    stride = stride_of(rep_name)
    if settings.crop is None:
        raise ValueError("settings.crop must be set (train sets the representation's)")
    if settings.crop > pool.shape[1]:
        raise ValueError(f"crop {settings.crop} is larger than the training images "
                         f"({pool.shape[1]} pixels a side)")
    sample = jnp.asarray(pool[:: max(1, len(pool) // 16)][:16, : settings.crop,
                                                              : settings.crop])
    codes = jax.jit(rep.batch_apply)(sample)
    arch = {"channels": int(rep.channels), "stride": stride, "width": int(settings.width),
            "blocks": int(settings.blocks), "code_channels": int(codes.shape[-1])}
    module = ConvDecoder(channels=arch["channels"], stride=stride, width=arch["width"],
                         blocks=arch["blocks"])
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
      rep_name: a registry name: ``"hog"``, ``"hogb"`` or ``"dsift"``.
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
    if settings.crop is None:
        settings = dataclasses.replace(settings, crop=CROPS[rep_name])
    rep = _representation(rep_name)
    pool = training_pool(rep, photos)
    decoder = new_decoder(rep, rep_name, pool, settings)
    optimizer = _optimizer(settings)
    state = optimizer.init(decoder.params)
    params, start = decoder.params, 0
    recorded = {**dataclasses.asdict(settings), "photos": len(photos),
                "description": description, "sizes": list(TRAIN_SIZES)}
    if checkpoint and os.path.exists(checkpoint) and not resume and progress is not False:
        print(f"jinvert: starting afresh, overwriting {checkpoint} (resume=True / --resume "
              f"continues it)", file=sys.stderr, flush=True)
    if resume and checkpoint and os.path.exists(checkpoint):
        header, arrays = _read_npz(checkpoint)
        saved = {k: header["training"].get(k) for k in dataclasses.asdict(settings)}
        differ = [f"{k} {saved[k]} (now {v})" for k, v in dataclasses.asdict(settings).items()
                  if saved[k] != v]
        if header["rep"] != rep_name:
            differ.insert(0, f"representation {header['rep']} (now {rep_name})")
        if differ:
            raise ValueError(f"{checkpoint} was written with other settings: "
                             f"{', '.join(differ)}; resume with the same ones")
        params = _saved_params(arrays)
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
    base = jax.random.PRNGKey(settings.seed)

    def step(params, state, i):
        return _train_step(module, rep, settings, params, state, pool_dev,
                           jax.random.fold_in(base, i), code_scale, pixel_scale)

    def save(step_done):
        done = dataclasses.replace(decoder, params=params,
                                   training={**recorded, "step": step_done})
        arrays = _param_arrays(params)
        arrays.update({f"opt/{i}": np.asarray(leaf)
                       for i, leaf in enumerate(jax.tree_util.tree_leaves(state))})
        _save_npz(checkpoint, arrays, done.header())

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
