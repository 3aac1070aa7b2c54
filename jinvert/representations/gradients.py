"""Oriented gradients: what HOG and dense SIFT share.

Three steps, each a differentiable array program:

1. :func:`image_gradient` — central derivatives ``[-1 0 1]/2`` of an image.
2. Orientation binning — the gradient magnitude split over orientation
   channels, either to the nearest bin (:func:`hard_orientation_bins`, HOG) or
   bilinearly between the two nearest bins (:func:`soft_orientation_bins`,
   HOGb and SIFT).
3. :func:`triangular_pool` — bilinear spatial pooling: every output cell is a
   sum of the pixels around its centre weighted by ``1 - |d| / size``
   (separable in x and y), i.e. a strided convolution with a triangular
   kernel, written as two small matrix products.

Conventions are VLFeat's: x to the right, y downwards, angles measured from
the x axis towards y (clockwise on screen). All functions work on
unbatched arrays; batch with ``jax.vmap``.
"""

from __future__ import annotations

import functools
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

#: Precision of every matrix product and convolution of HOG, DSIFT and the
#: metrics: full float32 on every backend. JAX's default lets NVIDIA GPUs
#: use TF32 (10-bit mantissa) for float32 products, which changes HOG codes by
#: ~5e-4 relative; CPUs compute float32 in full either way.
PRECISION = jax.lax.Precision.HIGHEST


def image_gradient(image: Array, *, border: str = "one-sided") -> tuple[Array, Array]:
    """Central derivatives of an image, ``[-1 0 1]/2`` along x and y.

    Args:
      image: ``(H, W)`` or ``(H, W, C)`` float array (H, W ≥ 2).
      border: what the pixels of the first and last rows and columns get:
        ``"one-sided"`` (forward/backward differences, as VLFeat's
        ``vl_dsift``) or ``"zero"`` (no gradient at all, both components, as
        ``vl_hog``, which skips border pixels).

    Returns:
      ``(gx, gy)``, each the shape of ``image``, in image units per pixel.
    """
    def along(axis):
        x = jnp.moveaxis(image, axis, 0)
        inner = 0.5 * (x[2:] - x[:-2])
        first, last = x[1:2] - x[:1], x[-1:] - x[-2:-1]
        return jnp.moveaxis(jnp.concatenate([first, inner, last], axis=0), 0, axis)

    gx, gy = along(1), along(0)
    if border == "zero":
        interior = jnp.zeros(image.shape[:2], image.dtype).at[1:-1, 1:-1].set(1.0)
        interior = interior.reshape(interior.shape + (1,) * (image.ndim - 2))
        return gx * interior, gy * interior
    if border != "one-sided":
        raise ValueError(f"border must be 'one-sided' or 'zero', got {border!r}")
    return gx, gy


def safe_sqrt(s: Array, *, floor: float = 0.0) -> Array:
    """``sqrt(s)`` for ``s ≥ 0``, 0 where ``s ≤ floor``, with a finite
    gradient at 0 (plain ``sqrt`` has an infinite one, which gives NaN)."""
    positive = s > floor
    return jnp.where(positive, jnp.sqrt(jnp.where(positive, s, 1.0)), 0.0)


def safe_norm(gx: Array, gy: Array, *, floor: float = 0.0) -> Array:
    """``sqrt(gx² + gy²)`` with a finite gradient at zero (0 below ``floor``)."""
    return safe_sqrt(gx * gx + gy * gy, floor=floor)


def safe_atan2(gy: Array, gx: Array) -> Array:
    """``atan2(gy, gx)`` in radians, with a zero (not NaN) gradient at the origin."""
    zero = (gx == 0) & (gy == 0)
    return jnp.where(zero, 0.0, jnp.arctan2(jnp.where(zero, 0.0, gy), jnp.where(zero, 1.0, gx)))


def soft_orientation_bins(angle: Array, magnitude: Array, num_bins: int) -> Array:
    """Split ``magnitude`` bilinearly over ``num_bins`` directions on the circle.

    Bin ``k`` is centred at angle ``2πk / num_bins``; a gradient at angle θ
    gives bin k the weight ``max(0, 1 - |θ - θ_k| / Δ)`` (angular distance,
    Δ = 2π / num_bins), so the two nearest bins share it linearly.

    Args:
      angle: ``(...)`` angles in radians (any range).
      magnitude: ``(...)`` gradient magnitudes.
      num_bins: number of directed bins over the full circle.

    Returns:
      ``(..., num_bins)`` binned magnitudes.
    """
    position = angle / (2.0 * math.pi / num_bins)
    lower = jnp.floor(position)
    frac = position - lower                      # the gradient flows through here
    first = jnp.mod(lower, num_bins).astype(jnp.int32)
    second = jnp.mod(first + 1, num_bins)
    # Two compare-selects per bin on whole (…) arrays, stacked at the end:
    # ~4× faster on XLA:CPU (with the backward pass) than the wrapped
    # distance to every bin centre, and no short trailing axis under vmap.
    low, high = magnitude * (1.0 - frac), magnitude * frac
    return jnp.stack([jnp.where(first == k, low, 0.0) + jnp.where(second == k, high, 0.0)
                      for k in range(num_bins)], axis=-1)


def rounded_product(x: Array, y: Array) -> Array:
    """``x·y`` rounded to float32 (to nearest, ties to even), as a float32
    multiply does on its own, but computed with integer operations.

    Inside ``jit`` XLA fuses elementwise code and may contract a multiply
    and the add that uses it into one fused multiply-add (XLA:CPU and GPUs
    do), which rounds once instead of twice: ``a·b + c·d`` then differs in
    its last bit from the same sum op by op (and from VLFeat's C). Where the
    result only decides a comparison (HOG's strongest colour channel), that
    last bit breaks exact ties differently jitted and eager. A product built
    from integers is no multiply for the compiler to fuse:
    ``rounded_product(a, b) + rounded_product(c, d)`` is the same bits
    jitted, eager and in C. (About 30 integer operations: for decisions,
    not for the values the inversion differentiates.)

    For finite float32 inputs whose product is a normal float32 (a product
    below ~1.2e-38 gives a signed zero, one above ~3.4e38 infinity; no
    gradient). Args and result: float32 arrays, broadcast together.
    """
    x, y = jnp.broadcast_arrays(jnp.asarray(x, jnp.float32), jnp.asarray(y, jnp.float32))
    bx = jax.lax.bitcast_convert_type(x, jnp.uint32)
    by = jax.lax.bitcast_convert_type(y, jnp.uint32)
    sign = (bx ^ by) & jnp.uint32(0x80000000)
    ex = ((bx >> 23) & 0xFF).astype(jnp.int32)
    ey = ((by >> 23) & 0xFF).astype(jnp.int32)
    mx = (bx & 0x7FFFFF) | 0x800000            # 24-bit significands
    my = (by & 0x7FFFFF) | 0x800000
    # mx·my < 2^48 from 12-bit halves, every partial product exact in 32 bits:
    # mx·my = high·2^24 + low24.
    xh, xl, yh, yl = mx >> 12, mx & 0xFFF, my >> 12, my & 0xFFF
    middle = xh * yl + xl * yh                   # < 2^25
    low = ((middle & 0xFFF) << 12) + xl * yl     # < 2^25
    high = xh * yh + (middle >> 12) + (low >> 24)
    low24 = low & 0xFFFFFF
    big = high >= (1 << 23)                      # product in [2^47, 2^48)
    significand = jnp.where(big, high, (high << 1) | (low24 >> 23))
    rest = jnp.where(big, low24, (low24 & 0x7FFFFF) << 1)  # the dropped bits, 24 of them
    half = jnp.uint32(1 << 23)
    up = (rest > half) | ((rest == half) & ((significand & 1) == 1))
    significand = significand + up.astype(jnp.uint32)
    carry = significand >> 24                    # rounded up to 2^24
    significand = jnp.where(carry == 1, jnp.uint32(1 << 23), significand)
    exponent = ex + ey - 127 + big.astype(jnp.int32) + carry.astype(jnp.int32)
    bits = sign | (jnp.clip(exponent, 0, 255).astype(jnp.uint32) << 23) | (significand & 0x7FFFFF)
    bits = jnp.where(exponent >= 255, sign | jnp.uint32(0x7F800000), bits)
    bits = jnp.where((exponent <= 0) | (ex == 0) | (ey == 0), sign, bits)
    return jax.lax.bitcast_convert_type(bits, jnp.float32)


def squared_norm(gx: Array, gy: Array) -> Array:
    """``gx² + gy²`` rounded as float32 arithmetic op by op (and as VLFeat's
    C) rounds it, jitted or not (:func:`rounded_product`): for comparisons,
    no gradient. ``(...)`` float32 arrays -> ``(...)``."""
    gx, gy = jax.lax.stop_gradient(gx), jax.lax.stop_gradient(gy)
    return rounded_product(gx, gx) + rounded_product(gy, gy)


def hard_orientation_bins(gx: Array, gy: Array, magnitude: Array,
                          num_orientations: int) -> Array:
    """Put ``magnitude`` in the nearest of ``2·num_orientations`` directed bins.

    As ``vl_hog``: the unit gradient is projected on the undirected directions
    ``(cos πk/O, sin πk/O)`` (float32 table), the projection of largest
    absolute value wins (first one on ties) and its sign picks bin k or k + O.

    Jitted or not, the same choice at exact ties: two projections are equal
    exactly only for a gradient along a bisector of two table directions
    that the float32 table keeps symmetric, i.e. ``gx = 0`` between πk/O
    and π(O−k)/O (90° for O = 9, between 80° and 100°), where ``ux = 0``
    makes every product exact, so a fused multiply-add rounds them as op by
    op does. Elsewhere projections differ by far more than a rounding for
    gradients of integer images (|gx|, |gy| ≤ 255: by at least 3.9e-6 of the
    gradient's norm, 65 float32 roundings).

    Args:
      gx, gy: ``(...)`` gradient components.
      magnitude: ``(...)`` the value to put in the bin.
      num_orientations: O, undirected orientations in [0, π).

    Returns:
      ``(..., 2·O)`` one-hot binned magnitudes (no gradient through the choice).
    """
    angles = np.pi * np.arange(num_orientations) / num_orientations
    cos_table = np.cos(angles).astype(np.float32)
    sin_table = np.sin(angles).astype(np.float32)
    norm = jnp.maximum(jax.lax.stop_gradient(magnitude), 1e-10)
    ux, uy = jax.lax.stop_gradient(gx) / norm, jax.lax.stop_gradient(gy) / norm
    # vl_hog's loop, one orientation at a time on whole (…) arrays: the
    # first strictly larger |score| wins. Elementwise selects only — an
    # argmax over a short trailing axis is ~3× slower under vmap on XLA:CPU.
    best_score = ux * cos_table[0] + uy * sin_table[0]
    best_abs, best = jnp.abs(best_score), jnp.zeros(ux.shape, jnp.int32)
    for k in range(1, num_orientations):
        score = ux * cos_table[k] + uy * sin_table[k]
        better = jnp.abs(score) > best_abs
        best_abs = jnp.where(better, jnp.abs(score), best_abs)
        best_score = jnp.where(better, score, best_score)
        best = jnp.where(better, k, best)
    directed = best + num_orientations * (best_score < 0)
    return jnp.stack([jnp.where(directed == k, magnitude, 0.0)
                      for k in range(2 * num_orientations)], axis=-1)


def _triangle_weights(offsets, size: float) -> np.ndarray:
    return np.maximum(0.0, 1.0 - np.abs(np.asarray(offsets, np.float64)) / size)


def triangle_matrix(length: int, centres, size: float, *, border: str = "zero") -> np.ndarray:
    """Weights of triangular pooling along one axis, as a matrix.

    Row i holds ``max(0, 1 - |x - centres[i]| / size)`` for pixel x. With
    ``border="replicate"`` the taps that fall outside ``[0, length)`` are
    moved onto the nearest edge pixel (VLFeat's padding by continuity); with
    ``"zero"`` they are dropped.

    Returns:
      ``(len(centres), length)`` float32 NumPy array.
    """
    centres = np.asarray(centres, dtype=np.float64)
    span = math.ceil(size) + 1
    out = np.zeros((len(centres), length), dtype=np.float64)
    for i, c in enumerate(centres):
        taps = np.arange(math.floor(c - span), math.ceil(c + span) + 1)
        weights = _triangle_weights(taps - c, size)
        if border == "replicate":
            np.add.at(out[i], np.clip(taps, 0, length - 1), weights)
        elif border == "zero":
            inside = (taps >= 0) & (taps < length)
            out[i, taps[inside]] += weights[inside]
        else:
            raise ValueError(f"border must be 'zero' or 'replicate', got {border!r}")
    return out.astype(np.float32)


@functools.lru_cache(maxsize=128)
def _cached_matrix(length: int, centres: tuple, size: float, border: str) -> np.ndarray:
    return triangle_matrix(length, centres, size, border=border)


def triangular_pool(maps: Array, row_centres, col_centres, size: int, *,
                    border: str = "zero") -> Array:
    """Bilinear (triangular) spatial pooling, separable in y and x.

    ``out[i, j, c] = Σ_y,x k(y − row_centres[i]) k(x − col_centres[j]) maps[y, x, c]``
    with ``k(d) = max(0, 1 − |d| / size)``; taps outside the image are
    dropped (``border="zero"``) or read from the edge pixel
    (``"replicate"``, VLFeat's padding by continuity).

    Args:
      maps: ``(H, W, C)``.
      row_centres, col_centres: pixel coordinates of the output cells
        (may be half-integers).
      size: half-width of the triangle, in pixels.

    Returns:
      ``(len(row_centres), len(col_centres), C)``.
    """
    # A dense matrix product per axis: on XLA:CPU it beats a strided
    # depthwise convolution (~15×) and a block reshape (~4×) at 227×227.
    # Full float32 (PRECISION): the GPU default (TF32) would move HOG codes by
    # ~5e-4 relative, past the 1e-4 parity with VLFeat.
    rows = _cached_matrix(maps.shape[0], tuple(np.asarray(row_centres, float)), size, border)
    cols = _cached_matrix(maps.shape[1], tuple(np.asarray(col_centres, float)), size, border)
    pooled = jnp.einsum("iy,yxc->ixc", jnp.asarray(rows), maps, precision=PRECISION)
    return jnp.einsum("jx,ixc->ijc", jnp.asarray(cols), pooled, precision=PRECISION)
