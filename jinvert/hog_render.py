"""Pictures of HOG codes: the glyph image of VLFeat's ``vl_hog('render')``.

Each cell becomes a ``glyph_size``² tile where every undirected orientation
draws a bar perpendicular to its gradient direction (so bars follow image
edges), weighted by the sum of the cell's two directed and one undirected
values for that orientation; the tile is then clamped to the range of those
weights, as ``vl_hog_render`` does.
"""

from __future__ import annotations

import functools
import math

import numpy as np

#: VLFeat's glyph size for the UoCTTI variant, in pixels.
GLYPH_SIZE = 21


def _round(v: float) -> int:
    """C's ``round``: halves away from zero (VLFeat's ``vl_round_d``)."""
    return int(math.floor(v + 0.5)) if v >= 0 else -int(math.floor(-v + 0.5))


@functools.lru_cache(maxsize=8)
def glyphs(orientations: int = 9, size: int = GLYPH_SIZE) -> np.ndarray:
    """The bar of each undirected orientation, ``(orientations, size, size)``
    of 0/1, rows downwards, as VLFeat draws them."""
    out = np.zeros((orientations, size, size), np.float32)
    for o in range(orientations):
        angle = math.fmod(o * math.pi / orientations + math.pi / 2, math.pi)
        x2, y2 = size * math.cos(angle) / 2, size * math.sin(angle) / 2
        if angle <= math.pi / 4 or angle >= math.pi * 3 / 4:
            slope = y2 / x2
            offset = (1 - slope) * (size - 1) / 2
            skip = int((1 - abs(math.cos(angle))) / 2 * size)
            for i in range(skip, size - skip):
                out[o, _round(slope * i + offset), i] = 1
        else:
            slope = x2 / y2
            offset = (1 - slope) * (size - 1) / 2
            skip = int((1 - math.sin(angle)) / 2 * size)
            for j in range(skip, size - skip):
                out[o, j, _round(slope * j + offset)] = 1
    return out


def render_hog(code, *, orientations: int = 9, glyph_size: int = GLYPH_SIZE,
               normalize: bool = True) -> np.ndarray:
    """Draw a UoCTTI HOG code as an image of oriented bars.

    Args:
      code: ``(h, w, 3·orientations [+ 4])`` HOG code (texture channels, if
        present, are not drawn).
      orientations: O of the code.
      glyph_size: pixels per cell side in the picture (VLFeat: 21).
      normalize: rescale to [0, 1] (min to 0, max to 1) for display; without
        it, the values of ``vl_hog_render``.

    Returns:
      ``(h·glyph_size, w·glyph_size)`` float32 image.
    """
    code = np.asarray(code, dtype=np.float32)
    if code.ndim != 3 or code.shape[-1] < 3 * orientations:
        raise ValueError(
            f"render_hog: expected a HOG code (h, w, ≥{3 * orientations}); got shape {code.shape}")
    o = orientations
    weights = code[..., :o] + code[..., o:2 * o] + code[..., 2 * o:3 * o]  # (h, w, O)
    bars = glyphs(o, glyph_size)
    tiles = np.einsum("hwo,oyx->hwyx", weights, bars)
    low = np.minimum(weights.min(-1), 0.0)[..., None, None]
    high = np.maximum(weights.max(-1), 0.0)[..., None, None]
    tiles = np.clip(tiles, low, high)
    h, w = code.shape[:2]
    image = tiles.transpose(0, 2, 1, 3).reshape(h * glyph_size, w * glyph_size)
    if normalize:
        span = image.max() - image.min()
        image = (image - image.min()) / span if span > 0 else np.zeros_like(image)
    return image.astype(np.float32)
