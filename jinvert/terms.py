"""The terms of the energy, one vocabulary for inversion, activation
maximisation and caricatures (Mahendran & Vedaldi, IJCV 2016, eq. 1).

Every visualisation minimises

    E(u) = Σ_k w_k · T_k(Φ(σ·T(u)), u)

over the normalised image u = x/σ: data terms read the code Φ, regularisers
the image u. A term is a small frozen dataclass registered as a JAX pytree:
its arrays (a target code, a mask, a weight) are the pytree's leaves, its
exponents and its name are static. So a compiled step takes a term as an
ordinary argument: it is compiled once per *kind* of energy (the classes,
exponents and array shapes) and new targets or weights do not recompile.
Terms compose like lucent's objectives::

    energy = activation(mask) + 0.5 * activation(other) + total_variation(lam, 2)

Data terms (their history name is ``"data"``):

* :func:`inversion` — ||M ⊙ (Φ − Φ0)||² / ||M ⊙ Φ0||² (CVPR 2015, eq. 3);
* :func:`activation` — −⟨Φ, W⟩ / Z, activation maximisation of the code's
  component(s) selected and weighted by W (a neuron, a channel, a class
  logit: :func:`neuron`, :func:`channel`), Z a normaliser (IJCV: the
  data term is −1 at the level Z; we take Z as the largest value the
  component reaches on natural photos, :func:`jinvert.activation_scale`);
* :func:`caricature` — −⟨M ⊙ Φ, M ⊙ Φ0⟩ / ||M ⊙ Φ0||², −1 at the photo
  itself: an activation maximisation whose weights are the photo's own code.

Regularisers of the image:

* :func:`alpha_norm` ``"alpha"`` — λ Σ |u|^α over pixels and channels (CVPR);
* :func:`bounded_range` ``"range"`` — λ Σ_pixels ||u_pixel||^α, the norm
  taken over the colour channels (IJCV's bounded-range regulariser);
* :func:`total_variation` ``"tv"`` — λ V^β(u) (CVPR and IJCV).

Inside :func:`jinvert.invert` and :func:`jinvert.maximize` the data terms
have a leading axis of B on every leaf (one per code or per target,
:func:`batched`, :func:`stack`) and the regularisers are shared
(:func:`jinvert.energy.batch_terms`); :func:`evaluate` computes the
terms of one image. Eq. 3 itself is :func:`paper_energy`: the inversion
data term plus :func:`priors` of a :class:`jinvert.Config`. The terms' math
is :mod:`jinvert.objective`'s (pure functions of arrays).
"""

from __future__ import annotations

import dataclasses
import functools
import operator
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np

from jinvert import objective

Array = jax.Array


class Term:
    """Base of the energy's terms: ``+`` gives a :class:`Sum`, ``w * term``
    a :class:`Scaled` (``w`` a number or an array scalar, a leaf: changing
    it does not recompile)."""

    def __add__(self, other):
        if not isinstance(other, Term):
            return NotImplemented
        return Sum(_parts(self) + _parts(other))

    def __mul__(self, weight):
        if isinstance(weight, Term):
            return NotImplemented
        return Scaled(_weight(weight, "a term's weight"), self)

    __rmul__ = __mul__

    def __neg__(self):
        return -1.0 * self

    def __sub__(self, other):
        return self + (-other)


def _parts(term) -> tuple:
    return term.parts if isinstance(term, Sum) else (term,)


def _weight(value, what: str) -> Array:
    w = np.asarray(value) if not isinstance(value, jax.Array) else value
    if not (np.issubdtype(w.dtype, np.number) and np.ndim(w) <= 1):
        raise ValueError(f"{what} must be a number, got {value!r}")
    if not isinstance(w, jax.core.Tracer) and not bool(np.all(np.isfinite(np.asarray(w)))):
        raise ValueError(f"{what} must be finite, got {value!r}")
    if isinstance(w, jax.Array):
        return w.astype(jnp.float32)
    # Rounded on the host (jnp.asarray would compile a conversion per run).
    return jax.device_put(np.asarray(w, np.float32))


def term_class(data: tuple[str, ...], meta: tuple[str, ...] = ()):
    """Class decorator for a term of your own: a frozen dataclass registered
    as a pytree, ``data`` fields its leaves (arrays: new values do not
    recompile), ``meta`` fields static (they key the compilation). The class
    derives from :class:`Term` and has a ``name`` (its history key) and
    ``value(code, u) -> scalar`` (``code`` Φ of the image the data terms see,
    ``u`` the normalised image ``(H, W, C)``)::

        @terms.term_class(data=("target",))
        class Gram(terms.Term):
            target: jax.Array
            name = "style"

            def value(self, code, u):
                f = code.reshape(-1, code.shape[-1])
                return jnp.sum((f.T @ f / f.shape[0] - self.target) ** 2)
    """
    def wrap(cls):
        cls = dataclasses.dataclass(frozen=True, eq=False)(cls)
        return jax.tree_util.register_dataclass(cls, data_fields=list(data),
                                                meta_fields=list(meta))
    return wrap


# ----------------------------------------------------------------------------
# Data terms: functions of the code
# ----------------------------------------------------------------------------

@term_class(data=("target", "mask", "norm2"))
class Inversion(Term):
    """||M ⊙ (Φ − Φ0)||² / ||M ⊙ Φ0||² (:func:`jinvert.objective.data_term`).

    Attributes: target Φ0, mask M (0/1, the code's shape), norm2 ||M ⊙ Φ0||².
    """

    target: Array
    mask: Array
    norm2: Array
    name = "data"

    def value(self, code: Array, u: Array) -> Array:
        return objective.data_term(code, self.target, self.mask, self.norm2)


@term_class(data=("weights", "scale"))
class Activation(Term):
    """−⟨Φ, W⟩ / Z: activation maximisation (and, with W = M ⊙ Φ0 and
    Z = ||M ⊙ Φ0||², the caricature).

    Attributes: weights W (the code's shape, any real values), scale Z > 0.
    """

    weights: Array
    scale: Array
    name = "data"

    def value(self, code: Array, u: Array) -> Array:
        return -jnp.sum(self.weights * code) / self.scale


# ----------------------------------------------------------------------------
# Regularisers: functions of the image u
# ----------------------------------------------------------------------------

@term_class(data=("weight",), meta=("alpha",))
class AlphaNorm(Term):
    """λ · Σ |u|^α over pixels and channels (the CVPR paper's α-norm)."""

    weight: Array
    alpha: float
    name = "alpha"

    def value(self, code: Array, u: Array) -> Array:
        return self.weight * objective.alpha_norm(u, self.alpha)


@term_class(data=("weight",), meta=("alpha",))
class BoundedRange(Term):
    """λ · Σ_pixels (Σ_channels u²)^(α/2): the IJCV bounded-range regulariser.

    The α-norm of each pixel's colour vector: it keeps every pixel's colour
    inside a ball (radius B in the input space, through λ; see
    :func:`jinvert.recipe`) rather than each channel inside an interval. For
    one channel it equals :class:`AlphaNorm`. The gradient is finite at 0.
    """

    weight: Array
    alpha: float
    name = "range"

    def value(self, code: Array, u: Array) -> Array:
        return self.weight * objective.pixel_norm_power(u, self.alpha)


@term_class(data=("weight",), meta=("beta",))
class TotalVariation(Term):
    """λ · V^β(u) (:func:`jinvert.objective.total_variation`)."""

    weight: Array
    beta: float
    name = "tv"

    def value(self, code: Array, u: Array) -> Array:
        return self.weight * objective.total_variation(u, self.beta)


# ----------------------------------------------------------------------------
# Composition
# ----------------------------------------------------------------------------

@term_class(data=("parts",))
class Sum(Term):
    """The sum of ``parts`` (a tuple of terms), in order."""

    parts: tuple


@term_class(data=("weight", "term"))
class Scaled(Term):
    """``weight · term`` (weight a float32 scalar array, a leaf)."""

    weight: Array
    term: Any


def _leaves(term, weight=None):
    """``[(weight or None, leaf term)]`` in order, Sums flattened and
    Scaled weights multiplied through."""
    if isinstance(term, Sum):
        return [pair for part in term.parts for pair in _leaves(part, weight)]
    if isinstance(term, Scaled):
        w = term.weight if weight is None else weight * term.weight
        return _leaves(term.term, w)
    if not isinstance(term, Term) or not hasattr(term, "value"):
        raise ValueError(f"not an energy term: {term!r} (build one with jinvert.terms: "
                         f"inversion, activation, caricature, alpha_norm, ...)")
    return [(weight, term)]


def evaluate(energy: Term, code: Array, u: Array) -> dict[str, Array]:
    """The terms of one image: ``{name: value, ..., "total": E}`` (scalars).

    Args:
      energy: a term (unbatched leaves, or sliced by ``vmap``).
      code: Φ of the image the data terms see, the code's shape.
      u: the normalised image ``(H, W, C)`` the regularisers judge.

    Terms with the same name add up; ``total`` is the sum of all, in the
    order they were composed.
    """
    out: dict[str, Array] = {}
    for weight, term in _leaves(energy):
        v = term.value(code, u)
        if weight is not None:
            v = weight * v
        out[term.name] = out[term.name] + v if term.name in out else v
    out["total"] = functools.reduce(operator.add, list(out.values()))
    return out


def names(energy: Term) -> list[str]:
    """The history keys of ``energy``: its terms' names, then ``"total"``."""
    return list(dict.fromkeys(t.name for _, t in _leaves(energy))) + ["total"]


@term_class(data=("term",))
class Batch:
    """B energies of one structure as one: ``term``'s leaves all have a
    leading axis of B (problem b is the term sliced at b). What
    :func:`jinvert.minimize` optimises together (one compiled program for
    all B·S images); build one with :func:`stack` or :func:`batched`, or
    wrap a term whose arrays already have the axis (``Batch(inversion)``
    with ``(B, *code)`` targets, as :func:`jinvert.invert` does)."""

    term: Any

    @property
    def count(self) -> int:
        """B, the number of problems."""
        leaves = jax.tree_util.tree_leaves(self.term)
        counts = {int(jnp.shape(a)[0]) if jnp.ndim(a) else -1 for a in leaves}
        if len(counts) != 1 or -1 in counts:
            raise ValueError("every array of a batch of energies needs the same leading "
                             f"axis (the number of problems); got leading sizes "
                             f"{sorted(counts)}")
        return counts.pop()


def check_code_shape(energy, code_shape) -> None:
    """ValueError unless the code-shaped arrays of ``energy``'s data terms
    (targets, masks, weights of :class:`Inversion` and :class:`Activation`)
    have the shape ``code_shape`` of one code (after the batch axis of a
    :class:`Batch`). Terms of other classes are the user's to check."""
    lead = 1 if isinstance(energy, Batch) else 0
    for _, term in _leaves(energy.term if lead else energy):
        arrays = (term.target, term.mask) if isinstance(term, Inversion) else \
            (term.weights,) if isinstance(term, Activation) else ()
        for a in arrays:
            if tuple(jnp.shape(a)[lead:]) != tuple(code_shape):
                raise ValueError(f"the energy's arrays must have the shape of one code "
                                 f"{tuple(code_shape)}, got an array of shape "
                                 f"{tuple(jnp.shape(a)[lead:])}")


def batched(energy: Term, count: int) -> Batch:
    """``energy`` for ``count`` problems (every leaf broadcast along a new
    leading axis)."""
    _leaves(energy)  # validates
    return Batch(_broadcast_leaves(energy, count))


@functools.partial(jax.jit, static_argnums=1)
def _broadcast_leaves(energy, count: int):
    # One compiled program, not one per leaf on every run (issue 28).
    return jax.tree_util.tree_map(
        lambda a: jnp.broadcast_to(a, (count,) + jnp.shape(a)), energy)


def stack(energies) -> Batch:
    """One batch from energies of the same structure (the same terms in the
    same order, arrays of the same shapes).

    Raises:
      ValueError: structures or shapes differ.
    """
    energies = list(energies)
    if not energies:
        raise ValueError("got no objective")
    for e in energies:
        _leaves(e)
    first = jax.tree_util.tree_structure(energies[0])
    for e in energies[1:]:
        if jax.tree_util.tree_structure(e) != first:
            raise ValueError("objectives of one batch must be built alike (the same terms "
                             "in the same order); got different structures")
    try:
        return Batch(jax.tree_util.tree_map(
            lambda *a: jnp.stack([jnp.asarray(x) for x in a]), *energies))
    except ValueError as err:
        raise ValueError(f"objectives of one batch must have arrays of the same shapes: "
                         f"{err}") from None


# ----------------------------------------------------------------------------
# Constructors (what users call)
# ----------------------------------------------------------------------------

def _code_array(value, what: str) -> Array:
    arr = np.asarray(value) if not isinstance(value, jax.Array) else value
    if not np.issubdtype(arr.dtype, np.number) and arr.dtype != np.bool_:
        raise ValueError(f"{what} must be a numeric array, got dtype {arr.dtype}")
    arr = jnp.asarray(arr, jnp.float32)
    if arr.size == 0:
        raise ValueError(f"{what} is empty")
    if not bool(jnp.all(jnp.isfinite(arr))):
        raise ValueError(f"{what} has NaN or infinite values")
    return arr


def inversion(code, mask=None) -> Inversion:
    """The inversion data term of ``code`` (Φ0), optionally masked.

    Raises:
      ValueError: a non-finite or all-zero (where masked) code, or a mask of
        another shape.
    """
    code = _code_array(code, "the code")
    m = jnp.ones_like(code) if mask is None else _mask(mask, code.shape)
    norm2 = objective.reference_norm2(code[None], m[None])[0]
    if float(norm2) == 0:
        raise ValueError("the code is all zeros where the mask selects it; nothing to invert")
    return Inversion(code, m, norm2)


def _mask(mask, shape) -> Array:
    m = _code_array(mask, "the mask")
    if tuple(m.shape) != tuple(shape):
        raise ValueError(f"the mask must have the code's shape {tuple(shape)}, "
                         f"got {tuple(m.shape)}")
    return (m != 0).astype(jnp.float32)


def activation(weights, scale=1.0) -> Activation:
    """−⟨Φ, W⟩ / Z: maximise the components of the code that ``weights`` W
    select (a one-hot neuron, a channel's mean, a class logit, any real
    direction in code space).

    Args:
      weights: W, the shape of one code (build one with :func:`neuron`,
        :func:`channel`, or by hand).
      scale: Z > 0, the activation at which the term is −1 (the IJCV
        normaliser); :func:`jinvert.activation_scale` gives the largest
        value reached on natural photos.

    Raises:
      ValueError: non-finite or all-zero weights, a scale ≤ 0.
    """
    w = _code_array(weights, "the activation's weights")
    if not bool(jnp.any(w != 0)):
        raise ValueError("the activation's weights are all zero: nothing to maximise")
    z = _weight(scale, "the activation's scale")
    if z.ndim != 0 or not float(z) > 0:
        raise ValueError(f"the activation's scale must be a positive number, got {scale!r}")
    return Activation(w, z)


def caricature(code, mask=None) -> Activation:
    """−⟨M ⊙ Φ, M ⊙ Φ0⟩ / ||M ⊙ Φ0||² for the photo's code Φ0: −1 at the
    photo, lower where the patterns Φ0 detects are stronger.

    Raises:
      ValueError: as :func:`inversion`.
    """
    inv = inversion(code, mask)
    return Activation(inv.mask * inv.target, inv.norm2)


def neuron(code_shape, index) -> np.ndarray:
    """One-hot weights on the code entry ``index`` (a tuple into
    ``code_shape``; for a class logit ``(k,)``)."""
    shape = tuple(int(s) for s in code_shape)
    index = tuple(int(i) for i in np.atleast_1d(index))
    if len(index) != len(shape) or any(not 0 <= i < s for i, s in zip(index, shape)):
        raise ValueError(f"neuron index {index} is outside a code of shape {shape}")
    w = np.zeros(shape, np.float32)
    w[index] = 1.0
    return w


def channel(code_shape, c: int) -> np.ndarray:
    """Weights 1/(h·w) on every position of channel ``c`` of an ``(h, w, C)``
    code: ⟨Φ, W⟩ is the channel's mean activation."""
    shape = tuple(int(s) for s in code_shape)
    if len(shape) != 3:
        raise ValueError(f"a channel needs an (h, w, C) code, got a code of shape {shape}")
    if not 0 <= int(c) < shape[2]:
        raise ValueError(f"channel {c} is outside 0..{shape[2] - 1}")
    w = np.zeros(shape, np.float32)
    w[..., int(c)] = 1.0 / (shape[0] * shape[1])
    return w


def alpha_norm(weight, alpha: float = 6.0) -> AlphaNorm:
    """λ Σ|u|^α (α ≥ 1)."""
    if not float(alpha) >= 1:
        raise ValueError(f"alpha must be >= 1, got {alpha!r}")
    return AlphaNorm(_weight(weight, "lambda_alpha"), float(alpha))


def bounded_range(weight, alpha: float = 6.0) -> BoundedRange:
    """λ Σ_pixels ||u_pixel||^α (α ≥ 1)."""
    if not float(alpha) >= 1:
        raise ValueError(f"alpha must be >= 1, got {alpha!r}")
    return BoundedRange(_weight(weight, "lambda_range"), float(alpha))


def total_variation(weight, beta: float = 2.0) -> TotalVariation:
    """λ V^β(u) (β > 0)."""
    if not float(beta) > 0:
        raise ValueError(f"beta must be > 0, got {beta!r}")
    return TotalVariation(_weight(weight, "lambda_tv"), float(beta))


def priors(config) -> Term:
    """The regularisers a :class:`jinvert.Config` (sized) asks for, in
    order: α-norm (left out when ``lambda_alpha`` is 0 and the bounded
    range replaces it), bounded range (only when ``lambda_range > 0``), V^β."""
    parts = []
    if config.lambda_alpha > 0 or config.lambda_range == 0:
        parts.append(alpha_norm(config.lambda_alpha, config.alpha))
    if config.lambda_range > 0:
        parts.append(bounded_range(config.lambda_range, config.alpha))
    parts.append(total_variation(config.lambda_tv, config.beta))
    return functools.reduce(operator.add, parts)


def paper_energy(config, reference: Array, mask: Array, norm2: Array) -> tuple[Term, Term]:
    """Eq. 3 as terms, for a batch of B codes: ``(per_problem, shared)``, the
    inversion data term of each code (leaves with a leading axis B) and the
    regularisers of a sized :class:`jinvert.Config` (:func:`priors`), as
    :func:`jinvert.energy.batch_terms` takes them.

    Args:
      config: a Config whose ``sigma`` is set (:meth:`jinvert.Config.sized`).
      reference, mask: ``(B, *code)``; norm2: ``(B,)`` ||M ⊙ Φ0||²
        (:func:`jinvert.objective.reference_norm2`).
    """
    return Inversion(reference, mask, norm2), priors(config)
