"""The energy evaluated: the terms of a batch of images as the engine's
step computes them (:func:`batch_terms`), and E of one image exactly as
:func:`jinvert.minimize` minimises it (:func:`image_energy`, for checks,
gradients and benchmarks outside the loop).
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

from jinvert import terms
from jinvert.objective import reference_norm2

Array = jax.Array


def batch_terms(phi: Callable[[Array], Array], u: Array, energy, *, sigma,
                seen: Array | None = None) -> dict[str, Array]:
    """The terms of the energy for a ``(B, S)`` batch: what
    :func:`jinvert.minimize` minimises (its step differentiates the sum of
    ``total``).

    Args:
      phi: Φ of a batch, ``(N, H, W, C) -> (N, *code)`` (``rep.batch_apply``).
      u: normalised images ``x/σ``, ``(B, S, H, W, C)`` float32 (S samples
        for each of B codes or targets).
      energy: ``(per_problem, shared)``: :mod:`jinvert.terms` terms, the
        first with a leading axis B on every leaf (each of the B problems'
        own terms: its data term), the second unbatched, the same for all
        (the regularisers), or ``None``; E of problem b is
        ``per_problem[b] + shared`` (eq. 3 is ``inversion`` and
        ``alpha_norm + total_variation``).
      sigma: σ (input-space units, may be traced): Φ sees ``σ·seen``.
      seen: the images the data terms see, as ``u`` (e.g. jittered copies);
        default ``u``. The regularisers always judge ``u``.

    Returns:
      dict ``{name: (B, S) array}`` of each term's name (``"data"``,
      ``"alpha"``, ``"tv"``, ...) and ``"total"`` = E.
    """
    seen = u if seen is None else seen
    shape = u.shape[2:]
    codes = phi((sigma * seen).reshape((-1,) + tuple(shape)))
    codes = codes.reshape(u.shape[:2] + codes.shape[1:])
    per_code, shared = energy if isinstance(energy, tuple) else (energy, None)

    def one(per_code, code, v):
        return terms.evaluate(per_code if shared is None else per_code + shared, code, v)

    return jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)))(per_code, codes, u)


def image_energy(rep, image: Array, reference: Array | None = None, mask: Array | None = None,
                 *, config=None, data=None) -> dict[str, Array]:
    """E(x) for one input-space image, exactly as :func:`jinvert.minimize` computes
    it (same settings, same size conversion, same function): eq. 3 for
    :func:`jinvert.invert`, or any data term.

    Args:
      rep: a :class:`jinvert.Representation` (its ``batch_apply``, ``sigma``,
        ``defaults``).
      image: ``(H, W, C)`` in the representation's input space (x, not u).
      reference: Φ0, the code of one image; mask: optional 0/1 mask over it
        (the inversion data term).
      config: a :class:`jinvert.Config` (default ``rep.defaults``), sized
        to the image by :meth:`jinvert.Config.sized` unless its ``sigma``
        is set; u = x/σ. Its regularisers are added to the data term.
      data: instead of ``reference``, any data term of :mod:`jinvert.terms`
        (``activation(...)``, ``caricature(...)``, sums of them), unbatched.

    Returns:
      dict ``{"data", "alpha", "tv", ..., "total"}`` of scalars.

    Raises:
      ValueError: neither or both of ``reference`` and ``data``.
    """
    if (reference is None) == (data is None):
        raise ValueError("give either reference (inversion) or data (a jinvert.terms term)")
    image = jnp.asarray(image)
    if not jnp.issubdtype(image.dtype, jnp.floating):
        image = image.astype(jnp.float32)
    config = (rep.defaults if config is None else config).sized(image.shape, rep.sigma)
    sigma = jnp.asarray(config.sigma, image.dtype)  # float64 images stay float64
    if data is None:
        reference = jnp.asarray(reference, image.dtype)[None]
        m = jnp.ones_like(reference) if mask is None else (jnp.asarray(mask) != 0).astype(
            jnp.float32).reshape(reference.shape)
        energy = terms.paper_energy(config, reference, m, reference_norm2(reference, m))
    else:
        energy = (terms.batched(data, 1).term, terms.priors(config))
    out = batch_terms(rep.batch_apply, (image / sigma)[None, None], energy, sigma=sigma)
    return {k: v[0, 0] for k, v in out.items()}
