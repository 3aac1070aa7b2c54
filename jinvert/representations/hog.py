"""HOG (UoCTTI / DPM v5 variant), equal to VLFeat's ``vl_hog``.

The pipeline, as the paper's CNN-HOG and VLFeat's ``vl_hog`` (``hog.c``):

1. Image derivatives ``I(x+1) − I(x−1)`` (VLFeat does not halve them) at the
   pixels that are not on the border; on a colour image, at each pixel the
   channel with the strongest gradient.
2. Orientation binning into ``2·O`` directed orientations: to the nearest
   (HOG) or bilinearly to the two nearest (HOGb, ``bilinear=True``).
3. Bilinear spatial pooling into cells of ``cell_size`` pixels: cell j is
   centred at pixel ``(j + ½)·cell_size − ½``, and has
   ``(W + cell_size/2) // cell_size`` columns (integer division).
4. Four 2×2-block normalisations of each cell, by the energy of the
   contrast-insensitive histograms (directed bins k and k + O folded), with
   ε = 1e-4, each clamped at 0.2 and the four averaged (× 0.5): 2·O directed
   + O undirected channels.
5. ``texture=True`` adds VLFeat's 4 texture channels: for each block
   normalisation, the sum of the clamped undirected histogram / √18.

Code layout: ``(h, w, 3·O + 4)`` (31 for O = 9), or ``(h, w, 3·O)`` (27)
without texture, channel order as ``vl_hog``: directed bins 0..2O−1, then
undirected bins, then texture.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np

from jinvert import images
from jinvert.config import Config
from jinvert.hog_render import render_hog
from jinvert.representation import Representation, as_float_array
from jinvert.representations import gradients

Array = jax.Array

#: Clamp of the block-normalised histograms (UoCTTI).
CLAMP = 0.2
#: ε added to the squared block norm before the square root (UoCTTI).
EPSILON = 1e-4


def grey_input_space(image) -> Array:
    """``(H, W)`` or ``(H, W, 3)`` in [0, 1] -> ``(H, W, 1)`` grey levels
    ``255·g − 128`` (the reference code's normalisation for HOG and DSIFT)."""
    # In NumPy (to_grey is), then one transfer: no small programs per run.
    return jax.device_put((255.0 * images.to_grey(image) - 128.0)[..., None])


@jax.jit
def grey_output_space(x) -> Array:
    """``(H, W, 1)`` grey levels ``255·g − 128`` -> ``(H, W, 3)`` in [0, 1]
    (compiled: one program instead of five, each compiled per run)."""
    if x.ndim == 2:
        x = x[..., None]
    return jnp.clip(jnp.repeat((x + 128.0) / 255.0, 3, axis=-1), 0.0, 1.0)


def cell_grid(length: int, cell_size: int) -> int:
    """Number of HOG cells along an axis of ``length`` pixels (as vl_hog)."""
    return (length + cell_size // 2) // cell_size


def cell_centres(length: int, cell_size: int) -> np.ndarray:
    """Pixel coordinate of the centre of each cell along an axis."""
    return (np.arange(cell_grid(length, cell_size)) + 0.5) * cell_size - 0.5


def oriented_histograms(image: Array, cell_size: int = 8, orientations: int = 9,
                        bilinear: bool = False) -> Array:
    """Steps 1–3: cell histograms over ``2·orientations`` directed bins.

    Args:
      image: ``(H, W, C)`` float array.

    Returns:
      ``(h, w, 2·orientations)`` unnormalised histograms (gradient units).
    """
    gx, gy = gradients.image_gradient(image, border="zero")
    # vl_hog uses undivided differences I(x+1) − I(x−1).
    gx, gy = 2.0 * gx, 2.0 * gy
    if image.shape[-1] == 1:
        gx, gy = gx[..., 0], gy[..., 0]
    else:
        # The channel with the strongest gradient (the first one on ties),
        # by a one-hot select: gathers are slow under vmap. Its squared norm
        # rounded as vl_hog's C rounds it, jitted or not (a fused
        # multiply-add would break exact ties between channels differently).
        pick = jax.nn.one_hot(jnp.argmax(gradients.squared_norm(gx, gy), axis=-1),
                              image.shape[-1], dtype=gx.dtype)
        gx, gy = jnp.sum(pick * gx, axis=-1), jnp.sum(pick * gy, axis=-1)
    magnitude = gradients.safe_norm(gx, gy)
    if bilinear:
        angle = gradients.safe_atan2(gy, gx)
        binned = gradients.soft_orientation_bins(angle, magnitude, 2 * orientations)
    else:
        binned = gradients.hard_orientation_bins(gx, gy, magnitude, orientations)
    height, width = image.shape[:2]
    return gradients.triangular_pool(binned, cell_centres(height, cell_size),
                                     cell_centres(width, cell_size), cell_size)


def normalise_cells(hist: Array, orientations: int = 9, texture: bool = True) -> Array:
    """Steps 4–5: UoCTTI block normalisation of ``(h, w, 2·O)`` histograms.

    Returns:
      ``(h, w, 3·O + 4)`` with texture, else ``(h, w, 3·O)``.
    """
    directed = hist
    undirected = hist[..., :orientations] + hist[..., orientations:]
    energy = jnp.sum(undirected * undirected, axis=-1)
    # Blocks at the border reuse the edge cells (vl_hog clamps the indices).
    e = jnp.pad(energy, 1, mode="edge")
    h, w = energy.shape
    def shifted(dy, dx):
        return e[1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
    centre = shifted(0, 0)
    # The four 2×2 blocks that hold each cell: up-left, up-right, down-left,
    # down-right (vl_hog's factor1..4 on a non-transposed image).
    blocks = [
        shifted(-1, -1) + shifted(-1, 0) + shifted(0, -1) + centre,
        shifted(-1, 0) + shifted(-1, 1) + centre + shifted(0, 1),
        shifted(0, -1) + centre + shifted(1, -1) + shifted(1, 0),
        centre + shifted(0, 1) + shifted(1, 0) + shifted(1, 1),
    ]
    # vl_hog forms the undirected histogram from the unclamped directed ones.
    both = jnp.concatenate([directed, undirected], axis=-1)  # (h, w, 3·O)
    # One block normalisation at a time (no short trailing axis: faster
    # under vmap on XLA:CPU).
    clamped = [jnp.minimum(CLAMP, both * jax.lax.rsqrt(block + EPSILON)[..., None])
               for block in blocks]  # 4 × (h, w, 3·O)
    features = 0.5 * sum(clamped)
    if texture:
        texture_channels = jnp.stack(
            [jnp.sum(c[..., 2 * orientations:], axis=-1) for c in clamped], axis=-1) / np.sqrt(18.0)
        features = jnp.concatenate([features, texture_channels], axis=-1)
    return features


def hog_features(image: Array, cell_size: int = 8, orientations: int = 9,
                 bilinear: bool = False, texture: bool = True) -> Array:
    """UoCTTI HOG of one image.

    Args:
      image: ``(H, W)`` or ``(H, W, C)`` float array, any scale (VLFeat's
        ε makes the code depend slightly on the scale: use grey levels).

    Returns:
      ``(h, w, 31)`` (``(h, w, 27)`` without texture) float32, where
      ``h = (H + cell_size // 2) // cell_size`` and likewise w.
    """
    image = as_float_array(image)
    if image.ndim == 2:
        image = image[..., None]
    hist = oriented_histograms(image, cell_size, orientations, bilinear)
    return normalise_cells(hist, orientations, texture)


def _validate(cell_size: int, name: str):
    def validate(image) -> None:
        h, w = image.shape[:2]
        if min(h, w) < max(3, cell_size):
            raise ValueError(
                f"{name}: the image is {h}×{w} pixels, smaller than one {cell_size}×"
                f"{cell_size} cell; expected at least {max(3, cell_size)} pixels a side")
    return validate


def hog(cell_size: int = 8, orientations: int = 9, bilinear: bool = False,
        texture: bool = True) -> Representation:
    """HOG as a :class:`~jinvert.Representation` (the paper's CNN-HOG / HOGb).

    Args:
      cell_size: cell side in pixels (paper: 8).
      orientations: O, undirected orientations (paper: 9).
      bilinear: bilinear orientation assignment (the paper's HOGb).
      texture: add VLFeat's 4 texture channels (31 in all); the paper's
        CNN-HOG has the first 27 only (``texture=False``).

    Calling it on ``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` (or a batch
    ``(N, H, W, C)``) gives what ``vl_hog(..., 'UoCTTI')`` gives, including
    the choice of the strongest colour channel. Its input space for
    inversion is grey levels ``255·g − 128``, shape ``(H, W, 1)``.
    """
    if not (isinstance(cell_size, (int, np.integer)) and cell_size >= 1):
        raise ValueError(f"cell_size must be a positive integer, got {cell_size!r}")
    if not (isinstance(orientations, (int, np.integer)) and orientations >= 1):
        raise ValueError(f"orientations must be a positive integer, got {orientations!r}")
    name = "hogb" if bilinear else "hog"
    channels = 3 * orientations + (4 if texture else 0)
    apply = functools.partial(hog_features, cell_size=int(cell_size),
                              orientations=int(orientations), bilinear=bool(bilinear),
                              texture=bool(texture))
    kind = "bilinear" if bilinear else "hard"
    return Representation(
        name=name,
        description=(f"UoCTTI HOG, {cell_size}-pixel cells, {orientations} orientations "
                     f"({kind} orientation assignment), {channels} channels"),
        apply=apply,
        preprocess_fn=grey_input_space,
        deprocess_fn=grey_output_space,
        channels=1,
        # The paper's shallow settings (Sect. 4): Config's own defaults.
        defaults=Config(),
        validate=_validate(cell_size, name),
        render=functools.partial(render_hog, orientations=int(orientations)),
        # Batched by vmap, XLA:CPU runs it 1.7–2.2× slower per image than
        # one image alone; image after image (lax.map) costs no more than
        # alone (benchmarks/speed.py --samples 8).
        cpu_batching="map",
        # rep(x) compiled: ties decided alike jitted or not (squared_norm).
        compiled_call=True,
    )
