"""Masks over a code: invert only a subset of a representation (paper Sect. 4).

A mask is a boolean (or 0/1) array with the shape of one code; the data term
of the objective counts only the entries where it is true. Codes here are
spatial ``(h, w, c)`` arrays (HOG cells, DSIFT grid, CNN feature maps); fully
connected codes ``(c,)`` accept channel masks only.
"""

from __future__ import annotations

import math

import numpy as np


def _check_spatial(code_shape) -> tuple[int, int, int]:
    code_shape = tuple(int(s) for s in code_shape)
    if len(code_shape) != 3:
        raise ValueError(
            f"expected a spatial code shape (h, w, c); got {code_shape}")
    return code_shape  # type: ignore[return-value]


def central_mask(code_shape, n: int) -> np.ndarray:
    """The central ``n × n`` spatial positions of an ``(h, w, c)`` code.

    Args:
      code_shape: ``(h, w, c)``, the shape of one code.
      n: side of the window in code positions (cells, neurons); clipped to
        the code's height and width, as the reference code's ``neigh``.

    Returns:
      bool ``(h, w, c)`` array, true on all channels of the window. When the
      window cannot be exactly centred it sits one position lower/right, as
      the reference's ``sx = (0:nx-1) + ceil((w-nx+1)/2)`` (1-based) does.
    """
    h, w, c = _check_spatial(code_shape)
    if int(n) != n or n < 1:
        raise ValueError(f"central_mask: n must be a positive integer, got {n}")
    ny, nx = min(int(n), h), min(int(n), w)
    # 1-based start ceil((w - nx + 1)/2) is 0-based ceil((w - nx + 1)/2) - 1.
    y0 = math.ceil((h - ny + 1) / 2) - 1
    x0 = math.ceil((w - nx + 1) / 2) - 1
    mask = np.zeros((h, w, c), dtype=bool)
    mask[y0:y0 + ny, x0:x0 + nx, :] = True
    return mask


def group_mask(code_shape, group: int, groups: int = 2) -> np.ndarray:
    """The channels of one filter group (the reference's ``filterGroup``).

    Args:
      code_shape: shape of one code, channels last (``(h, w, c)`` or ``(c,)``).
      group: which group, 1-based (1 = first half of the channels when
        ``groups = 2``, 2 = the second half), as the reference code.
      groups: number of equal groups the channels are split into.

    Returns:
      bool array of ``code_shape``, true on the channels of that group.
    """
    code_shape = tuple(int(s) for s in code_shape)
    if not code_shape:
        raise ValueError("group_mask: the code must have a channel axis")
    c = code_shape[-1]
    if groups < 1 or c % groups:
        raise ValueError(
            f"group_mask: {c} channels cannot be split into {groups} equal groups")
    if not 1 <= group <= groups:
        raise ValueError(f"group_mask: group must be in 1..{groups}, got {group}")
    size = c // groups
    mask = np.zeros(code_shape, dtype=bool)
    mask[..., (group - 1) * size:group * size] = True
    return mask
