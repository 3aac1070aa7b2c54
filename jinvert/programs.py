"""The compiled pieces of one run of the engine (:func:`jinvert.minimize`).

For one representation, image shape and number of images N = B·S (B
problems, S samples each) :func:`programs` compiles, once per process:

* ``start``: the random start of every sample (the parameterisation's
  initial parameters) and the keys of the random transforms;
* ``step``: one iteration, E of every image (:func:`jinvert.energy.batch_terms`), its
  gradient, and the optimiser's update, in place (donated buffers);
* ``chunk``: up to ``length`` steps in one call (a ``lax.fori_loop``);
* ``finish``: the images x = σu and their codes.

Φ's large closed-over arrays (a CNN's weights) enter these programs as
arguments (:func:`hoist_weights`). The energy's arrays (targets, masks, λ)
are arguments too (:class:`Problem`), so a new code or weight does not
recompile; the kinds of terms, exponents, parameterisation, transform and
optimiser key the compilation.
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jinvert.energy import batch_terms
from jinvert.parameterizations import init_batch

Array = jax.Array

#: ``fold_in`` constant that separates the keys of the random transforms
#: from the initialisation's (which uses the call's key itself).
TRANSFORM_STREAM = 0x6A177E4


class Problem(NamedTuple):
    """The arrays of one run that every step reads (a pytree).

    energy: ``(per_problem, shared)`` :mod:`jinvert.terms` energies
    (:func:`jinvert.energy.batch_terms`; their arrays, targets, masks and λ, are
    arguments, so new values do not recompile, while their kinds of terms
    and exponents key the program); tkeys: ``(B, S)`` keys of the random
    transforms; sigma: a float32 scalar.
    """

    energy: Any
    tkeys: Array
    sigma: Array


class Programs(NamedTuple):
    """The compiled pieces of a run for one representation, shape and count
    (see the module's notes); ``weights``: the arrays Φ closes over that
    are passed to ``step``, ``chunk`` and ``finish`` (:func:`hoist_weights`)."""

    start: Callable
    step: Callable
    chunk: Callable
    finish: Callable
    weights: list


# Per representation (weakly keyed, so dropping the rep frees its programs),
# per image shape and count; jax.jit then caches per static settings.
_PROGRAMS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


#: Arrays Φ closes over that are larger than this (bytes) enter the compiled
#: programs as arguments; smaller ones stay constants (see hoist_weights).
HOISTED_BYTES = 8 << 20


def hoist_weights(apply, shape):
    """``(apply_with, weights)``: Φ with its large closed-over arrays as an
    argument, ``apply_with(weights, x) == apply(x)`` for ``x`` of ``shape``.

    Closed-over arrays are embedded in every compiled program as constants,
    and XLA constant-folds through them. For small arrays that is a gain
    (a convolution kernel's transposed copy for the gradient is made once,
    at compile time, not at every step), for large ones a loss: AlexNet's
    fc6 alone is 151 MB, its folded transpose took seconds of each
    compilation and doubled the program's size. Arrays above
    :data:`HOISTED_BYTES` are therefore passed as arguments.
    """
    closed, out_shape = jax.make_jaxpr(apply, return_shape=True)(
        jax.ShapeDtypeStruct(tuple(shape), jnp.float32))
    treedef = jax.tree_util.tree_structure(out_shape)
    consts = list(closed.consts)
    hoisted = [i for i, c in enumerate(consts) if np.size(c) * np.dtype(c.dtype).itemsize
               > HOISTED_BYTES]
    weights = [jnp.asarray(consts[i]) for i in hoisted]

    def apply_with(weights, x):
        values = list(consts)
        for i, w in zip(hoisted, weights):
            values[i] = w
        return jax.tree_util.tree_unflatten(treedef,
                                            jax.core.eval_jaxpr(closed.jaxpr, values, x))

    return apply_with, weights


def programs(rep, shape, count: int) -> Programs:
    """The programs for ``count`` images (B·S) of ``shape`` ``(H, W, C)``
    at once, compiled on first use and kept while ``rep`` lives."""
    per_shape = _PROGRAMS.setdefault(rep, {})
    if (shape, count) in per_shape:
        return per_shape[(shape, count)]

    # Φ of all B·S images in one call: a representation with a batched
    # path of its own (rep.apply_batch) uses it.
    phi, weights = hoist_weights(rep.batch_apply, (count,) + tuple(shape))

    def render(parameterization, params):
        """Parameters of (B, S) images -> u, (B, S, H, W, C)."""
        return jax.vmap(jax.vmap(lambda p: parameterization.render(p, shape)))(params)

    def start(key, *, batch, samples, per_code_keys, parameterization):
        # key: one key, or (B,) keys (one per problem).
        if per_code_keys:
            # Each code draws from its own key exactly what a batch of one
            # would draw (so results do not depend on how codes are batched).
            params = jax.vmap(lambda k: jax.tree_util.tree_map(
                lambda leaf: leaf[0], init_batch(parameterization, k, (1, samples), shape)))(key)
            tkeys = jax.vmap(lambda k: jax.random.split(
                jax.random.fold_in(k, TRANSFORM_STREAM), samples))(key)
        else:
            params = init_batch(parameterization, key, (batch, samples), shape)
            # One key per reconstruction for the transforms, from a stream of
            # the call's key that the initialisation does not use.
            tkeys = jax.random.split(jax.random.fold_in(key, TRANSFORM_STREAM),
                                     batch * samples)
            tkeys = tkeys.reshape((batch, samples) + tkeys.shape[1:])
        return params, tkeys

    def step(params, state, weights, problem, iteration, *, parameterization, transform,
             update):
        def energy(params):
            u = render(parameterization, params)
            seen = None
            if transform is not None:
                # The data term sees the transformed image, the priors the
                # image itself (they are translation-invariant anyway, up
                # to the border, and should judge what is returned).
                seen = jax.vmap(jax.vmap(lambda k, v: transform(
                    jax.random.fold_in(k, iteration), v)))(problem.tkeys, u)
            values = batch_terms(lambda x: phi(weights, x), u, problem.energy,
                                 sigma=problem.sigma, seen=seen)
            # The reconstructions are independent: the gradient of the sum
            # is each one's own gradient.
            return jnp.sum(values["total"]), values

        (_, values), grads = jax.value_and_grad(energy, has_aux=True)(params)
        updates, state = update(grads, state, params)
        return optax.apply_updates(params, updates), state, values

    def chunk(params, state, weights, problem, first, count, *, length, **static):
        """Up to ``length`` steps in one call: iterations ``first`` to
        ``first + count − 1`` (``count`` ≤ ``length``, traced, so any count
        runs in the one program), the terms of each written into
        ``(length, B, S)`` buffers whose first ``count`` rows are valid."""
        shapes = jax.eval_shape(lambda: step(params, state, weights, problem, first,
                                             **static)[2])
        buffers = jax.tree_util.tree_map(
            lambda t: jnp.zeros((length,) + t.shape, t.dtype), shapes)

        def body(j, carry):
            params, state, buffers = carry
            params, state, values = step(params, state, weights, problem, first + j, **static)
            buffers = jax.tree_util.tree_map(
                lambda b, t: jax.lax.dynamic_update_index_in_dim(b, t, j, 0), buffers, values)
            return params, state, buffers

        return jax.lax.fori_loop(0, count, body, (params, state, buffers))

    def finish(params, weights, sigma, *, parameterization):
        images = sigma * render(parameterization, params)
        codes = phi(weights, images.reshape((-1,) + tuple(shape)))
        return images, codes.reshape(images.shape[:2] + codes.shape[1:])

    compiled = Programs(
        start=jax.jit(start, static_argnames=("batch", "samples", "per_code_keys",
                                             "parameterization")),
        # The iterate and optimiser state are updated in place.
        step=jax.jit(step, donate_argnums=(0, 1),
                     static_argnames=("parameterization", "transform", "update")),
        chunk=jax.jit(chunk, donate_argnums=(0, 1),
                      static_argnames=("length", "parameterization", "transform", "update")),
        finish=jax.jit(finish, static_argnames=("parameterization",)),
        weights=weights)
    per_shape[(shape, count)] = compiled
    return compiled
