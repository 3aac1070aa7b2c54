"""Random image transforms applied before the data term of :func:`jinvert.invert`.

A transform is a pure function ``(key, u) -> u'`` on one normalised image
``(H, W, C)`` that keeps its shape. :func:`jinvert.invert` draws a fresh key
for every iteration and every reconstruction (``fold_in`` of the call's
key), so the data term sees a differently transformed image at each step
while the result stays a function of the key alone. The priors (α-norm, TV)
see the untransformed image.

Asking Φ(T(u)) ≈ Φ0 for random T makes the reconstruction robust to T
(Mahendran & Vedaldi, IJCV 2016, jitter their pre-images): detail that only
matches the code at one exact alignment is averaged away.

Transforms are frozen dataclasses (hashable by value, so equal transforms
share a compiled program).
"""

from __future__ import annotations

import dataclasses

import jax
import jax.numpy as jnp

Array = jax.Array


@dataclasses.dataclass(frozen=True)
class Jitter:
    """Cyclic translation by a uniform random (dy, dx) in [−max_shift, max_shift]².

    Cyclic (``jnp.roll``) rather than pad-and-crop: it loses no pixel and
    keeps the image statistics; the wrap-around seam is at most ``max_shift``
    pixels wide.

    Attributes:
      max_shift: largest shift in pixels along each axis (0 = identity).
    """

    max_shift: int = 1

    def __call__(self, key, u: Array) -> Array:
        """``(H, W, C)`` → the same image rolled by a random (dy, dx)."""
        if self.max_shift == 0:
            return u
        shift = jax.random.randint(key, (2,), -self.max_shift, self.max_shift + 1)
        return jnp.roll(u, (shift[0], shift[1]), axis=(0, 1))


@dataclasses.dataclass(frozen=True)
class Compose:
    """Apply ``transforms`` in order, each with its own key (split from the
    given one).

    Attributes:
      transforms: a tuple of transforms ``(key, u) -> u``.
    """

    transforms: tuple = ()

    def __call__(self, key, u: Array) -> Array:
        """``(H, W, C)`` → ``(H, W, C)``."""
        if not self.transforms:
            return u
        keys = jax.random.split(key, len(self.transforms))
        for k, transform in zip(keys, self.transforms):
            u = transform(k, u)
        return u


def jitter(max_shift: int = 1) -> Jitter:
    """Random translation by up to ``max_shift`` pixels; see :class:`Jitter`."""
    if int(max_shift) != max_shift or max_shift < 0:
        raise ValueError(f"max_shift must be a non-negative integer, got {max_shift!r}")
    return Jitter(int(max_shift))


def compose(*transforms) -> Compose:
    """The transform that applies ``transforms`` left to right."""
    return Compose(tuple(transforms))
