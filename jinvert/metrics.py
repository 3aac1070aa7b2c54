"""Error metrics of reconstructions.

* :func:`reconstruction_error` is the paper's normalised error (Tables 1 and
  3). For test images x_1..x_N with reconstructions x*_1..x*_N, the text of
  the paper (Sect. 4) defines it with norms:

      err_i = ||Φ(x*_i) − Φ(x_i)||₂ / N_Φ,   N_Φ = mean_{j≠k} ||Φ(x_j) − Φ(x_k)||₂,

  the average Euclidean distance between the codes of two different test
  images. This is the default, and the published tables follow it (HOG
  28.1 %, HOGb 10.67 %, DSIFT 10.89 % on ILSVRC-2012 val 1–100).
  ``squared=True`` gives the variant that the public MATLAB code
  (deep-goggle, ``experiment_shallow_quantitative.m``) computes,

      err_i = ||Φ(x*_i) − Φ(x_i)||² / mean_{j,k} ||Φ(x_j) − Φ(x_k)||²

  (all N² ordered pairs, the N zero pairs j = k included, as MATLAB's
  ``mean(pdist2(Y0, Y0).^2)``), which comes out near the *square* of the
  paper's figure (HOG ≈ 8 % where the text's metric gives ≈ 28 %). Use it
  only to compare with that code, and name it when you report it.
  Report either as mean ± std over i, in percent.
* :func:`image_errors` (beyond the paper) judges the same reconstructions
  in image space, as Dosovitskiy & Brox (CVPR 2016) do: the paper's
  normalisation applied to the pictures, ‖x*_i − x_i‖ / N_x with N_x the
  mean distance between two different test pictures, and SSIM to the photo.
* :func:`relative_error` is the single-image ratio ||Φ(x*) − Φ0|| / ||Φ0||
  (``squared=True``: the data term of the objective, ||Φ − Φ0||² / ||Φ0||²),
  which needs no other images; the command line prints it. It is *not* the
  paper's Table-1 number.
"""

from __future__ import annotations

import functools

import numpy as np


def _stack_flat(codes, name: str) -> np.ndarray:
    """List of arrays (any shapes) or an (N, ...) array -> (N, D) float64,
    each code flattened and zero-padded to the longest."""
    if isinstance(codes, (list, tuple)):
        flats = [np.asarray(c, dtype=np.float64).ravel() for c in codes]
    else:
        arr = np.asarray(codes, dtype=np.float64)
        if arr.ndim < 1:
            raise ValueError(f"{name}: expected N codes, got a scalar")
        flats = list(arr.reshape(arr.shape[0], -1))
    if not flats:
        raise ValueError(f"{name}: got no codes")
    d = max(f.size for f in flats)
    out = np.zeros((len(flats), d))
    for i, f in enumerate(flats):
        out[i, :f.size] = f
    if not np.all(np.isfinite(out)):
        raise ValueError(f"{name}: codes have NaN or infinite values")
    return out


def pairwise_sq_distances(codes) -> np.ndarray:
    """Squared Euclidean distances between N codes: float64 ``(N, N)``.

    Args:
      codes: ``(N, D)`` float64 (flattened codes).

    Computed as |a|² + |b|² − 2a·b with the diagonal set to exactly 0 and
    round-off below 0 clipped.
    """
    sq = np.sum(codes ** 2, axis=1)
    pair = np.maximum(sq[:, None] + sq[None, :] - 2.0 * codes @ codes.T, 0.0)
    np.fill_diagonal(pair, 0.0)
    return pair


def reconstruction_error(codes, reference_codes, *, squared: bool = False) -> np.ndarray:
    """The paper's normalised reconstruction error, per image, as a fraction.

    Args:
      codes: Φ(x*_i) of the N reconstructions: a list of N arrays (any
        shapes; flattened and zero-padded to a common length) or an
        ``(N, ...)`` array.
      reference_codes: Φ(x_i) of the N original test images, likewise.
      squared: False (default): the paper's text, err_i = ||Φ(x*_i) −
        Φ(x_i)||₂ / N_Φ with N_Φ the mean of ||Φ(x_j) − Φ(x_k)||₂ over the
        N(N − 1) ordered pairs of *different* images. The j = k pairs are
        left out because a distance between an image and itself is not a
        "pairwise distance between codes" and only shrinks N_Φ by the
        factor (N − 1)/N: with them, the same reconstructions would score
        worse on a smaller test set. True: the public MATLAB code's variant,
        ||Φ(x*_i) − Φ(x_i)||² over the mean of ||Φ(x_j) − Φ(x_k)||² over all
        N² ordered pairs, j = k included, as that code does. The published
        Tables 1 and 3 follow the text (squared=False); the squared variant
        is about the square of it.

    Returns:
      float64 ``(N,)``. Multiply by 100 for the percentages of the paper's
      Tables 1 and 3; report mean ± std over the images.

    Raises:
      ValueError: N < 2, different N, non-finite codes, or reference codes
        all equal (the normaliser is zero).
    """
    y = _stack_flat(codes, "codes")
    y0 = _stack_flat(reference_codes, "reference_codes")
    if y.shape[0] != y0.shape[0]:
        raise ValueError(f"got {y.shape[0]} codes but {y0.shape[0]} reference codes")
    n = y0.shape[0]
    if n < 2:
        raise ValueError("reconstruction_error needs at least 2 images (it is normalised "
                         "by their mutual distances); use relative_error for one")
    d = max(y.shape[1], y0.shape[1])
    y = np.pad(y, ((0, 0), (0, d - y.shape[1])))
    y0 = np.pad(y0, ((0, 0), (0, d - y0.shape[1])))
    pair = pairwise_sq_distances(y0)
    residual = np.sum((y - y0) ** 2, axis=1)
    if squared:
        normaliser = pair.mean()                                  # N² pairs, j = k included
    else:
        normaliser = np.sqrt(pair).sum() / (n * (n - 1))          # N(N − 1) pairs, j ≠ k
        residual = np.sqrt(residual)
    if normaliser == 0:
        raise ValueError("the reference codes are all equal; the error is undefined")
    return residual / normaliser


def relative_error(code, reference, *, squared: bool = False) -> float:
    """||Φ(x*) − Φ0||₂ / ||Φ0||₂ for one reconstruction (a fraction).

    Args:
      code: Φ(x*), any shape; reference: Φ0 = Φ(x0), the same shape.
      squared: True gives ||Φ(x*) − Φ0||² / ||Φ0||², the data term of the
        objective (eq. 3) without a mask.

    Neither is the paper's Table-1 metric, which normalises by the distances
    between the codes of a set of test images (see
    :func:`reconstruction_error`).
    """
    code = np.asarray(code, dtype=np.float64)
    reference = np.asarray(reference, dtype=np.float64)
    if code.shape != reference.shape:
        raise ValueError(f"code shape {code.shape} != reference shape {reference.shape}")
    norm2 = np.sum(reference ** 2)
    if norm2 == 0:
        raise ValueError("the reference code is all zeros; the relative error is undefined")
    ratio = float(np.sum((code - reference) ** 2) / norm2)
    return ratio if squared else float(np.sqrt(ratio))


def _gaussian_taps(sigma: float, truncate: float = 3.5):
    """1-D Gaussian window normalised to sum 1, radius int(truncate·σ + 0.5)
    (scikit-image's ``gaussian_weights=True`` window: 11 taps at σ = 1.5)."""
    radius = int(truncate * sigma + 0.5)
    t = np.arange(-radius, radius + 1, dtype=np.float64)
    w = np.exp(-0.5 * (t / sigma) ** 2)
    return (w / w.sum()).astype(np.float32)


def ssim(a, b, *, data_range: float = 1.0, sigma: float = 1.5,
         k1: float = 0.01, k2: float = 0.03):
    """Structural similarity (Wang et al., 2004) of two images, in JAX.

    The mean over the valid interior of the per-pixel SSIM map computed with
    a Gaussian window (σ = 1.5, 11 taps) and population (co)variances, per
    channel, then averaged over channels: scikit-image's
    ``structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
    use_sample_covariance=False, data_range=data_range, channel_axis=-1)``
    (which crops the same border after filtering).

    Args:
      a, b: images ``(H, W)`` or ``(H, W, C)`` (same shape, H and W at least
        the window size), in units where ``data_range`` is the value range
        (1 for images in [0, 1]).
      data_range: the dynamic range L; the constants are (k1·L)², (k2·L)².

    Returns:
      a float32 scalar (jax array) in [−1, 1], 1 when ``a == b``;
      differentiable in both images.
    """
    import jax

    # Host arrays stay NumPy until the one compiled call; JAX arrays (and
    # tracers, for gradients) go in as they are.
    a = a if isinstance(a, jax.Array) else np.asarray(a, np.float32)
    b = b if isinstance(b, jax.Array) else np.asarray(b, np.float32)
    if a.shape != b.shape:
        raise ValueError(f"ssim: shapes differ, {a.shape} and {b.shape}")
    size = _gaussian_taps(sigma).size
    if a.ndim not in (2, 3) or min(a.shape[:2]) < size:
        raise ValueError(f"ssim: images must be (H, W) or (H, W, C), at least {size}×{size}, "
                         f"got {a.shape}")
    return _compiled_ssim()(a, b, data_range=float(data_range), sigma=float(sigma),
                            k1=float(k1), k2=float(k2))


@functools.lru_cache(maxsize=None)
def _compiled_ssim():
    """:func:`ssim`'s arithmetic as one compiled program (made on first use,
    so that importing this module does not import JAX): op by op it
    compiled twenty small programs on every run of the ``jinvert`` command
    (issue 28)."""
    import jax
    import jax.numpy as jnp

    def compute(a, b, *, data_range, sigma, k1, k2):
        a = jnp.asarray(a, jnp.float32)
        b = jnp.asarray(b, jnp.float32)
        if a.ndim == 2:
            a, b = a[..., None], b[..., None]
        taps = jnp.asarray(_gaussian_taps(sigma))

        def blur(x):
            # Separable valid filtering of every channel: (H, W, C) → (H−2r, W−2r, C).
            x = jnp.moveaxis(x, -1, 0)[:, None]                       # (C, 1, H, W)
            # Full float32 on every backend (not TF32 on NVIDIA GPUs).
            highest = jax.lax.Precision.HIGHEST
            x = jax.lax.conv(x, taps[None, None, :, None], (1, 1), "VALID", precision=highest)
            x = jax.lax.conv(x, taps[None, None, None, :], (1, 1), "VALID", precision=highest)
            return jnp.moveaxis(x[:, 0], 0, -1)

        mu_a, mu_b = blur(a), blur(b)
        # (Co)variances from images centred on their global means: they do not
        # change, and E[x²] − E[x]² cancels far less in float32.
        ca, cb = a - jnp.mean(a), b - jnp.mean(b)
        mu_ca, mu_cb = blur(ca), blur(cb)
        var_a = blur(ca * ca) - mu_ca ** 2
        var_b = blur(cb * cb) - mu_cb ** 2
        cov = blur(ca * cb) - mu_ca * mu_cb
        c1, c2 = (k1 * data_range) ** 2, (k2 * data_range) ** 2
        ssim_map = ((2 * mu_a * mu_b + c1) * (2 * cov + c2)
                    / ((mu_a ** 2 + mu_b ** 2 + c1) * (var_a + var_b + c2)))
        return jnp.mean(ssim_map)

    return jax.jit(compute, static_argnames=("data_range", "sigma", "k1", "k2"))


def image_errors(pictures, reference_pictures, *, data_range: float = 1.0) -> dict:
    """Image-space scores of N reconstructions (beyond the paper).

    Args:
      pictures: the N reconstructions as pictures (``rep.deprocess``: grey
        ``(H, W)`` / ``(H, W, 1)`` or RGB ``(H, W, 3)`` in [0, 1]), a list
        or an ``(N, ...)`` array.
      reference_pictures: the N photos they reconstruct, alike.
      data_range: the pictures' value range (SSIM's L).

    Returns:
      ``{"pixel": (N,), "ssim": (N,)}`` float64: ``pixel`` is
      ‖x*_i − x_i‖ / N_x, N_x the mean of ‖x_j − x_k‖ over the ordered pairs
      of *different* photos (the paper's normalisation, applied to pixels:
      :func:`reconstruction_error` of the pictures; a fraction, about 1 for
      a picture that kept nothing of its photo), and ``ssim`` the structural
      similarity of each picture to its photo (:func:`ssim`, 1 for the photo
      itself).

    Raises:
      ValueError: as :func:`reconstruction_error`; a picture whose shape
        differs from its photo's.
    """
    pictures = [np.asarray(p, np.float64) for p in pictures]
    references = [np.asarray(p, np.float64) for p in reference_pictures]
    if len(pictures) != len(references):
        raise ValueError(f"got {len(pictures)} pictures but {len(references)} photos")
    for a, b in zip(pictures, references):
        if a.shape != b.shape:
            raise ValueError(f"a picture of shape {a.shape} for a photo of shape {b.shape}")
    pixel = reconstruction_error(pictures, references)
    similarity = np.array([float(ssim(a, b, data_range=data_range))
                           for a, b in zip(pictures, references)])
    return {"pixel": pixel, "ssim": similarity}
