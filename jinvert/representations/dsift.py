"""Dense SIFT, equal to VLFeat's ``vl_dsift`` (fast, flat-window variant).

The pipeline, as VLFeat's ``dsift.c`` and the paper's CNN-DSIFT:

1. Image derivatives ``[-1 0 1]/2`` with one-sided differences on the border;
   angle by VLFeat's ``vl_fast_atan2_f`` (a cubic approximation, kept so
   that codes match VLFeat's to 1e-3) and magnitude ``√(gx² + gy²)`` (0 below
   1e-8).
2. Bilinear orientation binning into ``T`` = 8 directed bins, bin t centred
   at angle ``2πt/T``.
3. Bilinear spatial pooling: a triangular filter of half-width ``bin_size``
   (padding by continuity), sampled at the bin centres
   ``x0 + b·bin_size`` of every descriptor, ``x0 = 0, step, 2·step, …``
   while the 4×4 bins fit in the image.
4. The Gaussian window of the descriptor (``window_size`` = 2 bins), applied
   in the flat-window variant as one mean weight per spatial bin.
5. L2 normalisation, clamp at 0.2, L2 normalisation again.

Code layout: ``(rows, cols, 4·4·8)``: descriptors on a grid, row-major
(frame y then x), each flattened in VLFeat's order (bin y, bin x, angle t).
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

from jinvert.representation import Representation, as_float_array
from jinvert.representations import gradients
from jinvert.config import Config
from jinvert.representations.hog import grey_input_space, grey_output_space

Array = jax.Array

#: Clamp of the normalised descriptor (SIFT).
CLAMP = 0.2
#: VLFeat's single-precision machine epsilon, added to descriptor norms.
FLOAT_EPSILON = float(np.finfo(np.float32).eps)


def fast_atan2(y: Array, x: Array) -> Array:
    """VLFeat's ``vl_fast_atan2_f``: atan2 to about 5e-3 rad, in (−π, π].

    A cubic in ``r = (x − |y|)/(x + |y|)`` (or its mirror for x < 0); it is
    smooth and its gradient is finite everywhere, the origin included.
    """
    abs_y = jnp.abs(y) + FLOAT_EPSILON
    positive = x >= 0
    # One expression for both branches, its denominator never zero: a
    # jnp.where between two quotients would give NaN gradients.
    r = (x - jnp.where(positive, abs_y, -abs_y)) / (jnp.abs(x) + abs_y)
    angle = jnp.where(positive, math.pi / 4, 3 * math.pi / 4)
    angle = angle + (0.1821 * r * r - 0.9675) * r
    return jnp.where(y < 0, -angle, angle)


def frame_origins(length: int, bin_size: int, num_bins: int, step: int) -> np.ndarray:
    """Top-left pixel of each descriptor along one axis (VLFeat's framex)."""
    frame_size = bin_size * (num_bins - 1) + 1
    return np.arange(0, length - frame_size + 1, step)


def window_means(bin_size: int, num_bins: int, window_size: float) -> np.ndarray:
    """Mean of the Gaussian window over each spatial bin, ``(num_bins,)``.

    VLFeat's ``_vl_dsift_get_bin_window_mean``: the Gaussian has σ =
    ``bin_size · window_size`` and is centred on the descriptor.
    """
    sigma = bin_size * window_size
    taps = np.arange(-bin_size + 1, bin_size)
    centres = bin_size * (np.arange(num_bins) - 0.5 * (num_bins - 1))
    z = (taps[None, :] - centres[:, None]) / sigma
    return np.exp(-0.5 * z * z).mean(axis=1).astype(np.float32)


def bin_centres(length: int, bin_size: int, num_bins: int, step: int) -> np.ndarray:
    """``(frames·num_bins,)`` pixel coordinate of every spatial bin centre,
    frame-major, along an axis of ``length`` pixels."""
    origins = frame_origins(length, bin_size, num_bins, step)
    return (origins[:, None] + bin_size * np.arange(num_bins)[None, :]).ravel()


def dsift_features(image: Array, bin_size: int = 5, step: int = 15,
                   num_bins: int = 4, orientations: int = 8,
                   window_size: float = 2.0) -> Array:
    """Dense SIFT descriptors of one grey image.

    Args:
      image: ``(H, W)`` or ``(H, W, 1)`` float array (any scale).

    Returns:
      ``(rows, cols, num_bins²·orientations)`` float32 unit-norm descriptors,
      ``rows = ⌊(H − bin_size·(num_bins−1) − 1)/step⌋ + 1`` and likewise cols.
    """
    image = as_float_array(image)
    if image.ndim == 3:
        image = image[..., 0]
    height, width = image.shape
    gx, gy = gradients.image_gradient(image, border="one-sided")
    angle = jnp.mod(fast_atan2(gy, gx), 2 * math.pi)
    magnitude = gradients.safe_norm(gx, gy, floor=1e-8)
    binned = gradients.soft_orientation_bins(angle, magnitude, orientations)
    pooled = gradients.triangular_pool(
        binned, bin_centres(height, bin_size, num_bins, step),
        bin_centres(width, bin_size, num_bins, step), bin_size, border="replicate")
    rows = pooled.shape[0] // num_bins
    cols = pooled.shape[1] // num_bins
    # (rows·by, cols·bx, t) -> (rows, cols, by, bx, t)
    desc = pooled.reshape(rows, num_bins, cols, num_bins, orientations).transpose(0, 2, 1, 3, 4)
    weights = window_means(bin_size, num_bins, window_size)
    desc = desc * jnp.asarray(weights)[:, None, None] * jnp.asarray(weights)[None, :, None]
    desc = desc.reshape(rows, cols, num_bins * num_bins * orientations)
    desc = _unit(desc)
    return _unit(jnp.minimum(desc, CLAMP))


def _unit(desc: Array) -> Array:
    """Divide each descriptor by its L2 norm + ε (VLFeat's normalisation;
    the gradient stays finite on an all-zero descriptor)."""
    energy = jnp.sum(desc * desc, axis=-1, keepdims=True)
    return desc / (gradients.safe_sqrt(energy) + FLOAT_EPSILON)


def _validate(bin_size: int, num_bins: int, name: str):
    frame = bin_size * (num_bins - 1) + 1

    def validate(image) -> None:
        h, w = image.shape[:2]
        if image.ndim == 3 and image.shape[-1] != 1:
            raise ValueError(f"{name}: expected a grey image (H, W) or (H, W, 1); "
                             f"got {image.shape[-1]} channels")
        if min(h, w) < max(frame, 2):
            raise ValueError(
                f"{name}: the image is {h}×{w} pixels, smaller than one descriptor "
                f"({frame}×{frame} pixels for {num_bins}×{num_bins} bins of {bin_size})")
    return validate


def dsift(bin_size: int = 5, step: int = 15, num_bins: int = 4,
          orientations: int = 8, window_size: float = 2.0) -> Representation:
    """Dense SIFT as a :class:`~jinvert.Representation` (the paper's CNN-DSIFT).

    Args:
      bin_size: spatial bin side in pixels (paper: 5).
      step: pixels between descriptors (15 here, about the paper's 3 bins).
      num_bins: spatial bins per side (4: 4×4×8 = 128 dimensions).
      orientations: orientation bins T (8).
      window_size: σ of the Gaussian window in bins (VLFeat's default 2).

    On ``(H, W)`` it returns ``(rows, cols, 128)``: the descriptors of
    ``cyvlfeat.sift.dsift(image, step=step, size=bin_size, fast=True,
    float_descriptors=True)``, read row-major, up to their global scale.
    """
    for label, value in (("bin_size", bin_size), ("step", step), ("num_bins", num_bins),
                         ("orientations", orientations)):
        if not (isinstance(value, (int, np.integer)) and value >= 1):
            raise ValueError(f"{label} must be a positive integer, got {value!r}")
    apply = functools.partial(dsift_features, bin_size=int(bin_size), step=int(step),
                              num_bins=int(num_bins), orientations=int(orientations),
                              window_size=float(window_size))
    dims = num_bins * num_bins * orientations
    return Representation(
        name="dsift",
        description=(f"dense SIFT (VLFeat fast), bins of {bin_size} pixels every {step} "
                     f"pixels, {dims} dimensions"),
        apply=apply,
        preprocess_fn=grey_input_space,
        deprocess_fn=grey_output_space,
        channels=1,
        defaults=Config(),  # the paper's shallow settings (Sect. 4)
        validate=_validate(bin_size, num_bins, "dsift"),
        # Batched by vmap, XLA:CPU runs it 1.7–2.2× slower per image than
        # one image alone; image after image (lax.map) costs no more than
        # alone (benchmarks/speed.py --samples 8).
        cpu_batching="map",
        # rep(x) compiled: ties decided alike jitted or not (squared_norm).
        compiled_call=True,
    )
