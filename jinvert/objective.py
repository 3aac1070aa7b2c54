"""The objective of the paper (eq. 3) as small pure functions.

The optimiser works on the normalised image ``u = x / σ`` where ``x`` is the
image in the representation's input space (already mean-subtracted) and σ the
average Euclidean norm of natural images there (``rep.sigma``):

    E(u) = ||M ⊙ (Φ(σu) − Φ0)||² / ||M ⊙ Φ0||²             (data)
         + λα · Σ |u|^α                                      (alpha)
         + λV · Σ_ij ((u_i,j+1 − u_ij)² + (u_i+1,j − u_ij)²)^(β/2)   (tv)

with sums over pixels and colour channels, and finite differences with a
replicated last row/column (so the differences at the far border are zero).
The engine evaluates it as terms of :mod:`jinvert.terms` (:func:`batch_terms`,
:func:`paper_energy`), where the data term is pluggable: activation
maximisation and caricatures (IJCV 2016) swap it, the IJCV recipe adds the
bounded range.

How the λ relate to the reference code (deep-goggle ``invert_nn.m``). The
reference optimises ``x`` itself with ``lambdaL2/2 · Σ x^α`` and
``lambdaTV/2 · tv(x, β)`` divided by σ², so in terms of u = x/σ

    λα = lambdaL2 / 2 · σ^(α − 2),       λV = lambdaTV / 2 · σ^(β − 2).

With σ = 27100 and α = 6, ``lambdaL2 = 8e-10`` gives the paper's
λα = 2.16e8; with β = 2, λV = lambdaTV / 2. The λ of this library are the
paper's. The reference's update ``v ← μv − lr·(σ²·∇ₓE)``, ``x ← x + v`` is
exactly SGD with momentum on u with the same learning rate.
"""

from __future__ import annotations

from typing import Callable

import jax
import jax.numpy as jnp

Array = jax.Array


def alpha_norm(u: Array, alpha: float) -> Array:
    """Σ |u|^α over all entries (pixels and channels): a scalar.

    The gradient α·|u|^(α−1)·sign(u) is finite everywhere for α ≥ 1; at
    u = 0 it is taken as 0 (for α = 1 the subgradient 0), never NaN.
    """
    a = jnp.abs(u)
    if isinstance(alpha, (int, float)) and float(alpha).is_integer() and alpha >= 2:
        # An integer power is a few products (lax.integer_pow) whose
        # derivative k·|u|^(k−1) is 0 at u = 0; a float power is
        # exp(α·log|u|), 13× slower with its gradient (4 ms against 0.3 for
        # 8 images of 227×227×3).
        return jnp.sum(a ** int(alpha))
    # Where u == 0 put 1 into the power so that its derivative is finite,
    # then zero the term: no 0^(α−1) with α < 1 and no sign(0)·inf.
    nonzero = a > 0
    safe = jnp.where(nonzero, a, 1.0)
    return jnp.sum(jnp.where(nonzero, safe ** alpha, 0.0))


def _differences(u: Array) -> tuple[Array, Array]:
    """Forward differences along x and y of ``(..., H, W, C)`` with the last
    column/row replicated (the reference's ``x(:,[2:end end]) − x``)."""
    dx = jnp.concatenate([u[..., :, 1:, :], u[..., :, -1:, :]], axis=-2) - u
    dy = jnp.concatenate([u[..., 1:, :, :], u[..., -1:, :, :]], axis=-3) - u
    return dx, dy


def total_variation(u: Array, beta: float) -> Array:
    """V^β(u) = Σ_ij ((u_i,j+1 − u_ij)² + (u_i+1,j − u_ij)²)^(β/2): a scalar.

    ``u`` is ``(H, W, C)`` (or with leading batch axes, all summed); the sum
    runs over pixels and channels, each channel with its own differences.
    β = 1 is the total variation, β = 2 the squared-gradient prior. Where all
    differences vanish (a flat region) the β < 2 gradient would be 0/0; it is
    taken as 0 (the subgradient), so ``grad`` is finite on a constant image.
    """
    dx, dy = _differences(u)
    s = dx * dx + dy * dy
    if beta == 2:
        return jnp.sum(s)
    positive = s > 0
    safe = jnp.where(positive, s, 1.0)
    return jnp.sum(jnp.where(positive, safe ** (beta / 2.0), 0.0))


def data_term(code: Array, reference: Array, mask: Array | None = None,
              reference_norm2: Array | None = None) -> Array:
    """||M ⊙ (Φ − Φ0)||² / ||M ⊙ Φ0||²: a scalar, dimensionless.

    Args:
      code: Φ(σu), any shape.
      reference: Φ0, same shape.
      mask: optional bool/0-1 array of the same shape; entries where it is
        false count neither in the distance nor in the normaliser.
      reference_norm2: ||M ⊙ Φ0||² if already known (saves a reduction).
    """
    m = jnp.ones_like(reference) if mask is None else jnp.asarray(mask, reference.dtype)
    d = m * (code - reference)
    if reference_norm2 is None:
        reference_norm2 = jnp.sum((m * reference) ** 2)
    return jnp.sum(d * d) / reference_norm2


def reference_norm2(reference: Array, mask: Array) -> Array:
    """||M ⊙ Φ0||² of each code of a batch: ``(B, *code)`` twice -> ``(B,)``
    (the normaliser of :func:`data_term`)."""
    return jnp.sum((mask * reference) ** 2, axis=tuple(range(1, reference.ndim)))


def batch_terms(phi: Callable[[Array], Array], u: Array, energy, *, sigma,
                seen: Array | None = None) -> dict[str, Array]:
    """The terms of the energy for a ``(B, S)`` batch: what :func:`jinvert.invert`
    and :func:`jinvert.maximize` minimise (their step differentiates the sum
    of ``total``).

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
    from jinvert.terms import evaluate

    seen = u if seen is None else seen
    shape = u.shape[2:]
    codes = phi((sigma * seen).reshape((-1,) + tuple(shape)))
    codes = codes.reshape(u.shape[:2] + codes.shape[1:])
    per_code, shared = energy if isinstance(energy, tuple) else (energy, None)

    def one(per_code, code, v):
        return evaluate(per_code if shared is None else per_code + shared, code, v)

    return jax.vmap(jax.vmap(one, in_axes=(None, 0, 0)))(per_code, codes, u)


def paper_energy(config, reference: Array, mask: Array, norm2: Array):
    """Eq. 3 as terms, for a batch: ``(per_problem, shared)`` of
    :func:`batch_terms`, the inversion data term of each code and the
    regularisers of a sized :class:`jinvert.Config`
    (:func:`jinvert.terms.priors`).

    Args:
      config: a Config whose ``sigma`` is set (:meth:`jinvert.Config.sized`).
      reference, mask: ``(B, *code)``; norm2: ``(B,)`` ||M ⊙ Φ0||².
    """
    from jinvert import terms

    return terms.Inversion(reference, mask, norm2), terms.priors(config)


def objective(rep, image: Array, reference: Array | None = None, mask: Array | None = None,
              *, config=None, data=None) -> dict[str, Array]:
    """E(x) for one input-space image, exactly as :func:`jinvert.invert`
    (eq. 3) or :func:`jinvert.maximize` computes it (same settings, same
    size conversion, same function).

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
    from jinvert import terms

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
        energy = paper_energy(config, reference, m, reference_norm2(reference, m))
    else:
        energy = (terms.batched(data, 1), terms.priors(config))
    out = batch_terms(rep.batch_apply, (image / sigma)[None, None], energy, sigma=sigma)
    return {k: v[0, 0] for k, v in out.items()}
