"""`invert`: reconstruct images from a code by gradient descent (paper Sect. 2.1).

The loop follows the reference code (deep-goggle ``invert_nn.m``): start from
Gaussian noise of unit Euclidean norm in the normalised space u = x/σ, then
step an optax transformation on E(u) of eq. 3 (:func:`jinvert.objective.batch_terms`)
for ``config.iterations`` iterations. The default transformation is the
paper's, :func:`jinvert.paper_sgd`: SGD with momentum 0.9, the learning rate
divided by 10 at each stage and the momentum restarted there. All samples
and all codes are optimised together under ``vmap``; on the CPU each
iteration is one compiled call, on accelerators a chunk of iterations
(see :data:`ITERATIONS_PER_CALL` and :func:`_loop`).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jinvert.config import Config
from jinvert.objective import batch_terms, paper_energy, reference_norm2
from jinvert.parameterizations import Fourier, Pixels, init_batch, pixels
from jinvert.progress import Progress, watched

Array = jax.Array


class InversionResult(NamedTuple):
    """What :func:`invert` returns (a pytree).

    Attributes:
      images: reconstructions in the representation's input space, float32
        ``(samples, H, W, C)``, or ``(B, samples, H, W, C)`` for B codes
        (a JAX array, sharded as the codes were).
      codes: Φ of each reconstruction, ``(samples, *code_shape)`` or
        ``(B, samples, *code_shape)``.
      history: ``{"data", "alpha", "tv", "total"}`` → the value of each term
        (λ included) at every iteration, before its update, NumPy float32
        ``(samples, iterations)`` or ``(B, samples, iterations)``.
      config: the :class:`jinvert.Config` used, sized to the image (its
        ``sigma`` and λ are the values the objective saw).
    """

    images: Array
    codes: Array
    history: dict
    config: Config


#: ``fold_in`` constant that separates the keys of the random transforms
#: from the initialisation's (which uses the call's key itself).
_TRANSFORM_STREAM = 0x6A177E4


class _Problem(NamedTuple):
    """The arrays of one run that every step reads (a pytree).

    energy: ``(per_problem, shared)`` :mod:`jinvert.terms` energies
    (:func:`jinvert.objective.batch_terms`; their arrays, targets, masks
    and λ, are arguments, so new values do not recompile, while their kinds
    of terms and exponents key the program); tkeys: ``(B, S)`` keys of the
    random transforms; sigma: a float32 scalar.
    """

    energy: Any
    tkeys: Array
    sigma: Array


class _Programs(NamedTuple):
    """The compiled pieces of an inversion for one representation and shape."""

    start: Callable
    step: Callable
    chunk: Callable
    finish: Callable
    weights: list  # the arrays Φ closes over, passed to step/finish


# Per representation (weakly keyed, so dropping the rep frees its programs),
# per image shape; jax.jit then caches per static settings.
_PROGRAMS: "weakref.WeakKeyDictionary[Any, dict]" = weakref.WeakKeyDictionary()


#: Arrays Φ closes over that are larger than this (bytes) enter the compiled
#: programs as arguments; smaller ones stay constants (see _with_weights).
HOISTED_BYTES = 8 << 20


def _with_weights(apply, shape):
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


def _programs(rep, shape, count) -> _Programs:
    """The programs for ``count`` images of ``shape`` at once (B·S)."""
    per_shape = _PROGRAMS.setdefault(rep, {})
    if (shape, count) in per_shape:
        return per_shape[(shape, count)]

    # Φ of all B·S images in one call: a representation with a batched
    # path of its own (rep.apply_batch) uses it.
    phi, weights = _with_weights(rep.batch_apply, (count,) + tuple(shape))

    def render(parameterization, params):
        """Parameters of (B, S) images -> u, (B, S, H, W, C)."""
        return jax.vmap(jax.vmap(lambda p: parameterization.render(p, shape)))(params)

    def start(key, reference, mask, *, samples, per_code_keys, parameterization):
        # reference, mask: (B, *code_shape). key: one key, or (B,) keys.
        batch = reference.shape[0]
        norm2 = reference_norm2(reference, mask)
        if per_code_keys:
            # Each code draws from its own key exactly what a batch of one
            # would draw (so results do not depend on how codes are batched).
            params = jax.vmap(lambda k: jax.tree_util.tree_map(
                lambda leaf: leaf[0], init_batch(parameterization, k, (1, samples), shape)))(key)
            tkeys = jax.vmap(lambda k: jax.random.split(
                jax.random.fold_in(k, _TRANSFORM_STREAM), samples))(key)
        else:
            params = init_batch(parameterization, key, (batch, samples), shape)
            # One key per reconstruction for the transforms, from a stream of
            # the call's key that the initialisation does not use.
            tkeys = jax.random.split(jax.random.fold_in(key, _TRANSFORM_STREAM),
                                     batch * samples)
            tkeys = tkeys.reshape((batch, samples) + tkeys.shape[1:])
        return params, tkeys, norm2

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
            terms = batch_terms(lambda x: phi(weights, x), u, problem.energy,
                                sigma=problem.sigma, seen=seen)
            # The reconstructions are independent: the gradient of the sum
            # is each one's own gradient.
            return jnp.sum(terms["total"]), terms

        (_, terms), grads = jax.value_and_grad(energy, has_aux=True)(params)
        updates, state = update(grads, state, params)
        return optax.apply_updates(params, updates), state, terms

    def chunk(params, state, weights, problem, first, count, *, length, **static):
        """Up to ``length`` steps in one call: iterations ``first`` to
        ``first + count − 1`` (``count`` ≤ ``length``, traced, so any count
        runs in the one program), the terms of each written into
        ``(length, B, S)`` buffers whose first ``count`` rows are valid."""
        terms = jax.eval_shape(lambda: step(params, state, weights, problem, first,
                                            **static)[2])
        buffers = jax.tree_util.tree_map(
            lambda t: jnp.zeros((length,) + t.shape, t.dtype), terms)

        def body(j, carry):
            params, state, buffers = carry
            params, state, terms = step(params, state, weights, problem, first + j, **static)
            buffers = jax.tree_util.tree_map(
                lambda b, t: jax.lax.dynamic_update_index_in_dim(b, t, j, 0), buffers, terms)
            return params, state, buffers

        return jax.lax.fori_loop(0, count, body, (params, state, buffers))

    def finish(params, weights, sigma, *, parameterization):
        images = sigma * render(parameterization, params)
        codes = phi(weights, images.reshape((-1,) + tuple(shape)))
        return images, codes.reshape(images.shape[:2] + codes.shape[1:])

    programs = _Programs(
        start=jax.jit(start, static_argnames=("samples", "per_code_keys", "parameterization")),
        # The iterate and optimiser state are updated in place.
        step=jax.jit(step, donate_argnums=(0, 1),
                     static_argnames=("parameterization", "transform", "update")),
        chunk=jax.jit(chunk, donate_argnums=(0, 1),
                      static_argnames=("length", "parameterization", "transform", "update")),
        finish=jax.jit(finish, static_argnames=("parameterization",)),
        weights=weights)
    per_shape[(shape, count)] = programs
    return programs


#: Iterations per compiled call when ``invert`` is not told
#: (``iterations_per_call``), per backend. The CPU runs one step per call:
#: XLA:CPU runs convolutions and their gradients inside a loop 2–10×
#: slower than in a top-level program (AlexNet pool5: 57 ms per iteration
#: in a scan, 24 ms as a step), and a dispatch costs well under a
#: millisecond there. On a GPU the host's dispatch of one step per
#: iteration (0.67 ms measured on an H200, whatever the batch) is most of
#: a HOG iteration, so the steps run in chunks. The GPU/TPU value is not yet
#: measured against others: ``python benchmarks/gpu.py --iterations-per-call
#: K`` for K = 1, 10, 100 is the measurement to make.
ITERATIONS_PER_CALL = {"cpu": 1, "gpu": 100, "cuda": 100, "rocm": 100, "tpu": 100}


class _Reports:
    """When the loop reports, and to whom: ``progress`` as :func:`invert`
    takes it (a callable ``(iteration, total, terms)``, ``True``, ``False``
    or ``None``) and the run's ``total`` iterations.

    ``interval``: iterations between reports (a chunk never runs past the
    next one), ``None`` when nothing is reported. A callable is called at
    every multiple of about 1 % of the iterations and at the last; a
    :class:`jinvert.progress.Progress` gets the same reports plus the first.
    """

    def __init__(self, progress, total: int):
        self.total = total
        self.callback = progress if callable(progress) else None
        show = watched() if progress is None else (progress is True)
        self.display = Progress(total) if show else None
        self.every = max(1, total // 100)
        self.interval = self.every if (self.callback or self.display) else None
        self.reported = 0

    def __call__(self, iteration: int, terms) -> None:
        """After ``iteration`` (1-based) iterations; ``terms``: a function
        returning the last iteration's terms (device arrays)."""
        due = iteration // self.every > self.reported // self.every or iteration == self.total
        first = self.reported == 0 and self.display is not None
        if not (due or first):
            return
        self.reported = iteration
        # Waits for the device: what is reported has been computed.
        means = {k: float(np.mean(v)) for k, v in jax.device_get(terms()).items()}
        if self.callback is not None and due:
            self.callback(iteration, self.total, means)
        if self.display is not None:
            self.display(iteration, means)

    def close(self) -> None:
        if self.display is not None:
            self.display.close()


def _loop(step, chunk, params, state, total: int, per_call: int, report) -> tuple[Any, list]:
    """Run ``total`` iterations from ``params, state``.

    ``step(params, state, i) -> (params, state, terms)`` is one compiled
    iteration; ``chunk(params, state, i, n) -> (params, state, buffers)``
    runs iterations i … i+n−1 in one compiled call (n ≤ ``per_call``; its
    terms are the first n rows of ``buffers``). With ``per_call`` = 1 each
    iteration is one call of ``step``, else of ``chunk``; the number of
    iterations is an argument of both, so changing it does not recompile.
    A chunk stops at the next report (``report.interval``). The momentum
    restarts and learning-rate drops live in the optimiser's state, so they
    fall where they fall whatever the chunking. With donated buffers the
    iterate and optimiser state are updated in place.

    Returns ``(params, [(n, terms) of each call])`` (terms ``(B, S)`` for
    a step, ``(per_call, B, S)`` buffers for a chunk); ``report(i,
    terms_fn)`` after each call.
    """
    calls = []
    done = 0
    while done < total:
        if per_call == 1:
            params, state, terms = step(params, state, jnp.int32(done))
            n, last = 1, (lambda terms=terms: terms)
        else:
            n = min(per_call, total - done)
            if report.interval is not None:
                n = min(n, report.interval - done % report.interval)
            params, state, terms = chunk(params, state, jnp.int32(done), jnp.int32(n))
            last = (lambda terms=terms, n=n: {k: v[n - 1] for k, v in terms.items()})
        calls.append((n, terms))
        done += n
        report(done, last)
    return params, calls


def _history(calls, per_call: int) -> dict:
    """``{name: (B, S, iterations)}`` NumPy arrays from :func:`_loop`'s calls
    (stacked on the host: one transfer of small arrays, and no program whose
    shape depends on the number of iterations)."""
    calls = jax.device_get(calls)
    return {name: np.concatenate([np.asarray(t[name])[None] if per_call == 1
                                  else np.asarray(t[name])[:n] for n, t in calls],
                                 axis=0).transpose(1, 2, 0) for name in calls[0][1]}


def _resolve_shape(rep, shape) -> tuple[int, int, int]:
    if shape is None:
        if rep.input_size is None:
            raise ValueError(f"{rep.name} accepts images of any size: pass shape=(H, W)")
        shape = tuple(rep.input_size)
    shape = tuple(int(s) for s in shape)
    if len(shape) == 2:
        shape = shape + (int(rep.channels),)
    if len(shape) != 3 or min(shape) < 1:
        raise ValueError(f"shape must be (H, W) or (H, W, C) with positive sizes, got {shape}")
    if shape[2] != rep.channels:
        raise ValueError(f"{rep.name} takes {rep.channels}-channel images, "
                         f"but shape has {shape[2]} channels")
    if rep.input_size is not None and shape[:2] != tuple(rep.input_size):
        raise ValueError(f"{rep.name} takes {rep.input_size[0]}×{rep.input_size[1]} "
                         f"images, got shape {shape[:2]}")
    return shape


def _per_code_keys(key, codes_shape, batched) -> bool:
    """Whether ``key`` is one key (False) or one key per code (True)."""
    typed = jax.dtypes.issubdtype(getattr(key, "dtype", None) or np.uint32,
                                  jax.dtypes.prng_key)
    ndim = np.ndim(key) - (0 if typed else 1)
    if ndim == 0:
        return False
    if ndim == 1 and batched and np.shape(key)[0] == codes_shape[0]:
        return True
    raise ValueError(f"key must be one jax.random key, or one per code ({codes_shape[0]} "
                     f"for a batch of {codes_shape[0]} codes); got an array of shape "
                     f"{np.shape(key)}")


def _check_codes(rep, code, shape, mask) -> tuple[Array, Array, bool]:
    """``(codes (B, *code), mask (B, *code) 0/1 float32, batched)``, as JAX
    arrays (device or sharded arrays keep their placement), or ValueError."""
    if not isinstance(code, jax.Array):
        code = np.asarray(code)
    if not np.issubdtype(code.dtype, np.number):
        raise ValueError(f"the code must be a numeric array, got dtype {code.dtype}")
    code = jnp.asarray(code, jnp.float32)
    expected = tuple(jax.eval_shape(rep.apply,
                                    jax.ShapeDtypeStruct(shape, jnp.float32)).shape)
    if tuple(code.shape) == expected:
        batched, codes = False, code[None]
    elif code.ndim == len(expected) + 1 and tuple(code.shape[1:]) == expected:
        batched, codes = True, code
    else:
        raise ValueError(f"{rep.name} gives codes of shape {expected} for images of shape "
                         f"{shape}; got a code of shape {tuple(code.shape)} (wrong image size?)")
    if codes.shape[0] == 0:
        raise ValueError("got an empty batch of codes")
    if not bool(jnp.all(jnp.isfinite(codes))):
        raise ValueError("the code has NaN or infinite values; compute it from a finite image")
    if mask is None:
        m = jnp.ones_like(codes)
    else:
        if not isinstance(mask, jax.Array):
            mask = np.asarray(mask)
        if tuple(mask.shape) == expected:
            mask = jnp.broadcast_to(jnp.asarray(mask), codes.shape)
        elif not (batched and tuple(mask.shape) == tuple(codes.shape)):
            raise ValueError(f"the mask must have the shape of one code {expected}"
                             + (f" or of the batch {tuple(codes.shape)}" if batched else "")
                             + f", got {tuple(mask.shape)}")
        m = (jnp.asarray(mask) != 0).astype(jnp.float32)
    peak = jnp.max(jnp.abs(codes * m).reshape(codes.shape[0], -1), axis=1)
    if bool(jnp.any(peak == 0)):
        if mask is None:
            raise ValueError("the code is all zeros (a blank image?); nothing to invert")
        raise ValueError("the code is all zeros where the mask selects it; nothing to invert")
    return codes, m, batched


def _warm_start(init, noise, rep, codes, shape, sigma, init_noise, parameterization):
    """``init/σ + init_noise·noise``, broadcast to the ``(B, S, H, W, C)`` of
    ``noise`` (the paper's start); see ``init`` in :func:`invert`. With
    ``init=None``, ``init_noise·noise`` (any linear parameterisation:
    ``noise`` is then its parameters). ``codes``: ``(B, *code)`` for a
    decoder ``init``, or ``None``."""
    from jinvert.decoders import initial_images

    if isinstance(init_noise, bool) or not (np.isfinite(init_noise) and init_noise >= 0):
        raise ValueError(f"init_noise must be a finite number >= 0, got {init_noise!r}")
    if init is None:
        if not isinstance(parameterization, (Pixels, Fourier)):
            raise ValueError("a scaled random start needs a linear parameterisation "
                             "(pixels, fourier)")
        return jax.tree_util.tree_map(lambda p: p * jnp.float32(init_noise), noise)
    if not isinstance(parameterization, Pixels):
        raise ValueError("init (a warm start) works with the pixels parameterisation only")
    images = initial_images(init, rep, codes, shape)
    batch, samples = noise.shape[:2]
    layouts = {3: images[None, None], 4: images[:, None], 5: images}
    ok = images.ndim in layouts and tuple(images.shape[-3:]) == tuple(shape)
    if ok and images.ndim >= 4:
        ok = images.shape[0] == batch and (images.ndim == 4 or images.shape[1] == samples)
    if not ok:
        raise ValueError(f"init must be images {tuple(shape)}, ({batch}, *{tuple(shape)}) "
                         f"or ({batch}, {samples}, *{tuple(shape)}); got shape "
                         f"{tuple(images.shape)}")
    if not bool(jnp.all(jnp.isfinite(images))):
        raise ValueError("init has NaN or infinite values")
    return layouts[images.ndim] / sigma + jnp.float32(init_noise) * noise


def invert(rep, code, *, key, shape=None, samples: int = 1, mask=None,
           config: Config | None = None, optimizer: optax.GradientTransformation | None = None,
           parameterization=None, transforms=None, progress=None, init=None,
           init_noise: float = 0.1, iterations_per_call: int | None = None) -> InversionResult:
    """Find images whose code under ``rep`` is ``code`` (paper eq. 3).

    Args:
      rep: a :class:`jinvert.Representation`.
      code: Φ0, the code of one image (the shape ``rep.apply`` gives at
        ``shape``), or a batch ``(B, *code_shape)`` of codes, float; NumPy,
        or JAX arrays kept where they are (on a device, or sharded over
        devices along B: the whole run follows that sharding).
      key: a ``jax.random`` key (the same key gives the same
        reconstructions), or for a batch one key per code, ``(B,)`` keys
        (stacked ``PRNGKey``s ``(B, 2)``): then each code's result is what
        it would be inverted alone with its key, whatever the batch.
      shape: ``(H, W)`` or ``(H, W, C)`` of the reconstruction; defaults to
        ``rep.input_size`` for fixed-size representations, required otherwise.
      samples: reconstructions per code, from independent random starts
        (vmapped: one compiled program).
      mask: optional bool array over one code (or over the whole batch):
        only its true entries count in the data term (:mod:`jinvert.masks`).
      config: a :class:`jinvert.Config`, default ``rep.defaults`` (the
        paper's settings for ``rep``; change some with
        ``rep.defaults.replace(lambda_tv=...)`` or
        ``.with_iterations(N)``). Unless its ``sigma`` is set, σ and the λ
        are converted to ``shape`` by :meth:`jinvert.Config.sized`.
      optimizer: an ``optax.GradientTransformation``; default
        ``config.optimizer()``, the paper's :func:`jinvert.paper_sgd`.
        Any other (e.g. ``optax.adam(0.001)``, whose step is in units of
        u = x/σ) runs ``config.iterations`` steps from one state; the
        config's learning rate and momentum are then unused. Its ``update``
        keys the compiled step: reuse one object to reuse the compilation.
      parameterization: what the optimiser moves (beyond the paper;
        :mod:`jinvert.parameterizations`): ``None`` or ``pixels()`` is the
        paper's (u itself), ``fourier()`` a frequency-scaled Fourier basis,
        ``deep_image_prior()`` the weights of a small conv generator.
      transforms: ``None`` (``jitter(config.jitter)`` when the config asks
        for jitter, else none: the paper) or a random transform ``(key, u) ->
        u`` (:mod:`jinvert.transforms`, e.g. ``jitter(2)``) applied to the
        image seen by the data term at every iteration; the priors see the
        untransformed image.
      progress: ``None`` (default): a progress bar where a person is
        watching (a terminal or a notebook), whose rate and ETA leave out
        compilation; ``True``: always (plain lines every 10 % without a
        terminal); ``False``: silent; or a callable ``(iteration, total,
        terms)`` called about every 1 % of the iterations and at the last,
        ``terms`` the mean of each term over all reconstructions (floats).
      iterations_per_call: iterations run by one compiled call (a
        ``lax.fori_loop`` over them), default per backend
        (:data:`ITERATIONS_PER_CALL`: 1 on the CPU, where it is fastest, 100
        on accelerators, where dispatching each step from the host would
        cost more than the step). Results equal those of one iteration per
        call up to float rounding (the same arithmetic, fused differently);
        a chunk never runs past a progress report.
      init: beyond the paper, a warm start instead of noise: images x (not
        u) in the input space, one ``(H, W, C)`` for every code, ``(B, H,
        W, C)`` one per code, or ``(B, S, H, W, C)`` one per sample; or a
        :class:`jinvert.decoders.Decoder` (or the path of its file), whose
        output for each code is used. Sample s of code b then starts from
        u = init/σ + ``init_noise``·n, n the unit-norm noise the paper's
        start would have drawn for it, so samples still differ. Pixels
        parameterisation only. ``None`` (default): the paper's noise start.
      init_noise: the norm of the noise added to a warm start (in u = x/σ,
        where the paper's start has norm 1 and a natural image about 1).

    Returns:
      :class:`InversionResult` with images in the input space (x = σu),
      ``(samples, H, W, C)`` or ``(B, samples, H, W, C)``.

    Raises:
      ValueError: a code of the wrong shape, with NaN/inf, or all zeros; a
        bad ``samples``, ``shape``, ``mask``, ``key``, ``config`` or
        ``optimizer``.
    """
    if config is None:
        config = rep.defaults
    samples = _check_run(config, samples, optimizer)
    if parameterization is None:
        parameterization = pixels()  # the paper's: u itself
    shape = _resolve_shape(rep, shape)
    codes, mask, batched = _check_codes(rep, code, shape, mask)
    per_code_keys = _per_code_keys(key, codes.shape, batched)
    iterations_per_call = per_call(iterations_per_call, next(iter(codes.devices())).platform)
    config = config.sized(shape, rep.sigma)
    if optimizer is None:  # after sizing: Adam's learning rate depends on the size
        optimizer = config.optimizer()

    programs = _programs(rep, shape, int(codes.shape[0]) * samples)
    params, tkeys, norm2 = programs.start(key, codes, mask, samples=samples,
                                          per_code_keys=per_code_keys,
                                          parameterization=parameterization)
    if init is not None:
        params = _warm_start(init, params, rep, codes, shape, jnp.float32(config.sigma),
                             init_noise, parameterization)
    images, out_codes, history = _solve(
        programs, params, tkeys, paper_energy(config, codes, mask, norm2), config=config,
        optimizer=optimizer, parameterization=parameterization, transforms=transforms,
        progress=progress, iterations_per_call=iterations_per_call)
    return _result(images, out_codes, history, config, batched)


def _check_run(config, samples, optimizer) -> int:
    """The arguments :func:`invert` and :func:`jinvert.maximize` share:
    ValueError unless ``config`` is a Config, ``samples`` a positive
    integer and ``optimizer`` None or an optax transformation; returns
    ``int(samples)``."""
    if not isinstance(config, Config):
        raise ValueError(f"config must be a jinvert.Config (e.g. rep.defaults.replace(...)), "
                         f"got {type(config).__name__}")
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    if optimizer is not None and not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation (default: "
                         f"config.optimizer(), the paper's jinvert.paper_sgd for the CVPR "
                         f"settings), got {optimizer!r}")
    return int(samples)


def _result(images, codes, history, config, batched: bool) -> InversionResult:
    """What :func:`invert` and :func:`jinvert.maximize` return: the ``(B, S,
    ...)`` arrays of :func:`_solve`, without B for a single problem."""
    if not batched:
        images, codes = images[0], codes[0]
        history = {k: v[0] for k, v in history.items()}
    return InversionResult(images=images, codes=codes, history=history, config=config)


def per_call(iterations_per_call, platform: str) -> int:
    """Iterations per compiled call: the one asked for (a positive integer,
    else ValueError), else the backend's :data:`ITERATIONS_PER_CALL`."""
    if iterations_per_call is None:
        return ITERATIONS_PER_CALL.get(platform, 1)
    if (isinstance(iterations_per_call, bool) or int(iterations_per_call) != iterations_per_call
            or iterations_per_call < 1):
        raise ValueError(f"iterations_per_call must be a positive integer, "
                         f"got {iterations_per_call!r}")
    return int(iterations_per_call)


def _solve(programs, params, tkeys, energy, *, config, optimizer, parameterization,
           transforms, progress, iterations_per_call: int):
    """Minimise ``energy`` (``(per_problem, shared)`` terms, see
    :func:`jinvert.objective.batch_terms`) from ``params`` for
    ``config.iterations`` steps, ``iterations_per_call`` per compiled call:
    the driver that :func:`invert` and :func:`jinvert.maximize` share.

    Returns ``(images (B, S, H, W, C), codes (B, S, *code), history)``,
    history ``{name: (B, S, iterations)}`` NumPy float32.
    """
    if transforms is None and config.jitter:
        from jinvert.transforms import jitter
        transforms = jitter(config.jitter)
    sigma = jnp.float32(config.sigma)
    problem = _Problem(energy, tkeys, sigma)
    static = dict(parameterization=parameterization, transform=transforms,
                  update=optimizer.update)

    def step(params, state, iteration):
        return programs.step(params, state, programs.weights, problem, iteration, **static)

    def chunk(params, state, first, count):
        return programs.chunk(params, state, programs.weights, problem, first, count,
                              length=iterations_per_call, **static)

    report = _Reports(progress, config.iterations)
    try:
        params, calls = _loop(step, chunk, params, optimizer.init(params), config.iterations,
                              iterations_per_call, report)
    finally:
        report.close()
    images, out_codes = programs.finish(params, programs.weights, sigma,
                                        parameterization=parameterization)
    history = _history(calls, iterations_per_call)
    return images, out_codes, history
