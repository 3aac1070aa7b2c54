"""The objective of the paper (eq. 3) as small pure functions.

The optimiser works on the normalised image ``u = x / σ`` where ``x`` is the
image in the representation's input space (already mean-subtracted) and σ the
average Euclidean norm of natural images there (``rep.sigma``):

    E(u) = ||M ⊙ (Φ(σu) − Φ0)||² / ||M ⊙ Φ0||²             (data)
         + λα · Σ |u|^α                                      (alpha)
         + λV · Σ_ij ((u_i,j+1 − u_ij)² + (u_i+1,j − u_ij)²)^(β/2)   (tv)

with sums over pixels and colour channels, and finite differences with a
replicated last row/column (so the differences at the far border are zero).
This module holds the math of those terms as pure functions of arrays
(and the IJCV bounded range, :func:`pixel_norm_power`); it imports nothing
of jinvert. :mod:`jinvert.terms` builds the energy's terms on them and
assembles eq. 3 (:func:`jinvert.terms.paper_energy`), where the data term is
pluggable: activation maximisation and caricatures (IJCV 2016) swap it, the
IJCV recipe adds the bounded range. :func:`jinvert.energy.image_energy`
evaluates E for one image exactly as the engine does.

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


def pixel_norm_power(u: Array, alpha: float) -> Array:
    """Σ over pixels of ||u_pixel||^α, the norm over the last (colour) axis
    of ``(..., H, W, C)``: a scalar. Safe gradient at 0 (as
    :func:`alpha_norm`)."""
    s = jnp.sum(u * u, axis=-1)
    if float(alpha).is_integer() and int(alpha) % 2 == 0:
        return jnp.sum(s ** (int(alpha) // 2))  # an integer power: exact, 0 at 0
    positive = s > 0
    safe = jnp.where(positive, s, 1.0)
    return jnp.sum(jnp.where(positive, safe ** (alpha / 2.0), 0.0))


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


@jax.jit
def reference_norm2(reference: Array, mask: Array) -> Array:
    """||M ⊙ Φ0||² of each code of a batch: ``(B, *code)`` twice -> ``(B,)``
    (the normaliser of :func:`data_term`). Compiled, so that a code's norm
    is the same number however it is batched or called."""
    return jnp.sum((mask * reference) ** 2, axis=tuple(range(1, reference.ndim)))
