"""`invert`: reconstruct images from a code by gradient descent (paper Sect. 2.1).

The loop follows the reference code (deep-goggle ``invert_nn.m``): start from
Gaussian noise of unit Euclidean norm in the normalised space u = x/σ, then
step an optax transformation on E(u) of eq. 3 (:func:`jinvert.objective.batch_terms`)
for ``config.iterations`` iterations. The default transformation is the
paper's, :func:`jinvert.paper_sgd`: SGD with momentum 0.9, the learning rate
divided by 10 at each stage and the momentum restarted there. All samples
and all codes are optimised together under ``vmap``; each iteration is one
compiled step (see :func:`_loop` for why not a ``lax.scan``).
"""

from __future__ import annotations

import math
import sys
import time
import weakref
from typing import Any, Callable, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jinvert.config import Config
from jinvert.objective import TERMS, batch_terms, reference_norm2
from jinvert.parameterizations import init_batch, pixels

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
    """The arrays of one inversion that every step reads (a pytree).

    reference, mask: ``(B, *code)``; norm2: ``(B,)`` ||M ⊙ Φ0||²; tkeys:
    ``(B, S)`` keys of the random transforms; sigma, lambda_alpha,
    lambda_tv: float32 scalars (arguments, so new values do not recompile).
    """

    reference: Array
    mask: Array
    norm2: Array
    tkeys: Array
    sigma: Array
    lambda_alpha: Array
    lambda_tv: Array


class _Programs(NamedTuple):
    """The compiled pieces of an inversion for one representation and shape."""

    start: Callable
    step: Callable
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

    def step(params, state, weights, problem, iteration, *, alpha, beta, parameterization,
             transform, update):
        def energy(params):
            u = render(parameterization, params)
            seen = None
            if transform is not None:
                # The data term sees the transformed image, the priors the
                # image itself (they are translation-invariant anyway, up
                # to the border, and should judge what is returned).
                seen = jax.vmap(jax.vmap(lambda k, v: transform(
                    jax.random.fold_in(k, iteration), v)))(problem.tkeys, u)
            terms = batch_terms(lambda x: phi(weights, x), u, problem.reference, problem.mask,
                                problem.norm2, sigma=problem.sigma,
                                lambda_alpha=problem.lambda_alpha, alpha=alpha,
                                lambda_tv=problem.lambda_tv, beta=beta, seen=seen)
            # The reconstructions are independent: the gradient of the sum
            # is each one's own gradient.
            return jnp.sum(terms["total"]), terms

        (_, terms), grads = jax.value_and_grad(energy, has_aux=True)(params)
        updates, state = update(grads, state, params)
        return optax.apply_updates(params, updates), state, terms

    def finish(params, weights, sigma, *, parameterization):
        images = sigma * render(parameterization, params)
        codes = phi(weights, images.reshape((-1,) + tuple(shape)))
        return images, codes.reshape(images.shape[:2] + codes.shape[1:])

    programs = _Programs(
        start=jax.jit(start, static_argnames=("samples", "per_code_keys", "parameterization")),
        # The iterate and optimiser state are updated in place.
        step=jax.jit(step, donate_argnums=(0, 1),
                     static_argnames=("alpha", "beta", "parameterization", "transform",
                                      "update")),
        finish=jax.jit(finish, static_argnames=("parameterization",)),
        weights=weights)
    per_shape[(shape, count)] = programs
    return programs


def _watched() -> bool:
    """Whether a person is probably watching: stderr is a terminal, or we
    run in a Jupyter/Colab kernel."""
    try:
        if sys.stderr.isatty():
            return True
    except (AttributeError, ValueError):
        pass
    shell = getattr(sys.modules.get("IPython"), "get_ipython", lambda: None)()
    return shell is not None and "IPKernelApp" in getattr(shell, "config", {})


class _Progress:
    """Reports of the loop: a callable, a tqdm bar, or plain lines.

    ``progress``: a callable ``(iteration, total, terms)``, called about
    every 1 % of the iterations and at the last; ``True``: a bar on a
    terminal or in a notebook, else a plain line on stderr about every
    10 %; ``False``: nothing; ``None``: ``True`` where a person is watching
    (:func:`_watched`). The bar's rate and ETA start after the first step
    returns, so compilation is not counted.
    """

    def __init__(self, progress, total: int):
        self.total = total
        self.every = max(1, total // 100)
        self.callback = progress if callable(progress) else None
        watched = _watched()
        show = watched if progress is None else (progress is True)
        self.mode = ("bar" if watched else "lines") if show else None
        self.bar = None
        self.start = None
        self.next_line = 0.1
        if self.mode == "bar":
            try:
                from tqdm import tqdm
                if "ipykernel" in sys.modules:
                    try:  # a widget bar where ipywidgets is there, else text
                        import ipywidgets  # noqa: F401
                        from tqdm.notebook import tqdm
                    except ImportError:
                        pass
            except ImportError:  # the bar is a nicety
                self.mode = "lines"
            else:
                self.bar = tqdm(total=total, desc="compiling", unit="it", file=sys.stderr,
                                dynamic_ncols=True, leave=False)
        if self.mode == "lines":
            print(f"jinvert: compiling, then {total} iterations", file=sys.stderr, flush=True)

    @property
    def active(self) -> bool:
        return self.callback is not None or self.mode is not None

    def __call__(self, iteration: int, terms) -> None:
        """After ``iteration`` (1-based) steps; ``terms`` of the last step."""
        due = iteration % self.every == 0 or iteration == self.total
        if not (due or (iteration == 1 and self.mode is not None)):
            return
        # Waits for the step: what is reported has been computed.
        means = {k: float(np.mean(v)) for k, v in jax.device_get(terms).items()}
        if self.callback is not None and due:
            self.callback(iteration, self.total, means)
        if self.start is None:
            self.start = (iteration, time.perf_counter())
            if self.bar is not None:
                self.bar.reset()  # the clock starts now, compiled
                self.bar.n = self.bar.initial = self.bar.last_print_n = iteration
                self.bar.set_description("inverting")
        if self.bar is not None:
            self.bar.update(iteration - self.bar.n)
            self.bar.set_postfix(loss=f"{means['total']:.4g}", refresh=False)
        elif self.mode == "lines" and (iteration / self.total >= self.next_line
                                       or iteration == self.total):
            self.next_line = math.floor(10 * iteration / self.total + 1) / 10
            done, t0 = self.start
            elapsed = time.perf_counter() - t0
            rate = (iteration - done) / elapsed if elapsed > 0 else float("nan")
            left = (self.total - iteration) / rate if rate > 0 else float("nan")
            print(f"jinvert: {iteration}/{self.total} iterations "
                  f"({100 * iteration // self.total} %), {rate:.1f} it/s, "
                  f"about {left:.0f} s left, loss {means['total']:.4g}",
                  file=sys.stderr, flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def _loop(step, params, state, total: int, report) -> tuple[Any, list]:
    """Run ``total`` steps: ``params, state, terms = step(params, state, i)``.

    The loop is driven from Python, one compiled step per iteration, not a
    ``lax.scan``: XLA:CPU runs convolutions and their gradients inside a
    while loop 2–10× slower than in a top-level program (measured on
    AlexNet's pool5: 57 ms per iteration in a scan, 24 ms as a step; a
    ``lax.map`` over 8 samples is still 1.8× slower than one batch), and
    the dispatch of a step costs well under a millisecond. With donated
    buffers the iterate and optimiser state are updated in place as in a
    scan. The step does not depend on the number of iterations, so changing
    it does not recompile. (This is the one place that would run K steps
    per dispatch on an accelerator.)

    Returns ``(params, [terms of each step])``; ``report(i, terms)`` after
    each step (it decides itself when to wait for the device).
    """
    terms = []
    for i in range(total):
        params, state, step_terms = step(params, state, jnp.int32(i))
        terms.append(step_terms)
        report(i + 1, step_terms)
    return params, terms


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
    ``noise`` (the paper's start); see ``init`` in :func:`invert`."""
    from jinvert.decoders import initial_images

    if not isinstance(parameterization, type(pixels())):
        raise ValueError("init (a warm start) works with the pixels parameterisation only")
    if isinstance(init_noise, bool) or not (np.isfinite(init_noise) and init_noise >= 0):
        raise ValueError(f"init_noise must be a finite number >= 0, got {init_noise!r}")
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
           init_noise: float = 0.1) -> InversionResult:
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
      transforms: ``None`` (the paper) or a random transform ``(key, u) ->
        u`` (:mod:`jinvert.transforms`, e.g. ``jitter(2)``) applied to the
        image seen by the data term at every iteration; the priors see the
        untransformed image.
      progress: ``None`` (default): a progress bar where a person is
        watching (a terminal or a notebook), whose rate and ETA leave out
        compilation; ``True``: always (plain lines every 10 % without a
        terminal); ``False``: silent; or a callable ``(iteration, total,
        terms)`` called about every 1 % of the iterations and at the last,
        ``terms`` the mean of each term over all reconstructions (floats).
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
    if not isinstance(config, Config):
        raise ValueError(f"config must be a jinvert.Config (e.g. rep.defaults.replace(...)), "
                         f"got {type(config).__name__}")
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    samples = int(samples)
    if optimizer is None:
        optimizer = config.optimizer()
    if not isinstance(optimizer, optax.GradientTransformation):
        raise ValueError(f"optimizer must be an optax.GradientTransformation (default: the "
                         f"paper's jinvert.paper_sgd), got {optimizer!r}")
    if parameterization is None:
        parameterization = pixels()  # the paper's: u itself
    shape = _resolve_shape(rep, shape)
    codes, mask, batched = _check_codes(rep, code, shape, mask)
    per_code_keys = _per_code_keys(key, codes.shape, batched)
    config = config.sized(shape, rep.sigma)

    programs = _programs(rep, shape, int(codes.shape[0]) * samples)
    params, tkeys, norm2 = programs.start(key, codes, mask, samples=samples,
                                          per_code_keys=per_code_keys,
                                          parameterization=parameterization)
    sigma = jnp.float32(config.sigma)
    if init is not None:
        params = _warm_start(init, params, rep, codes, shape, sigma, init_noise,
                             parameterization)
    problem = _Problem(codes, mask, norm2, tkeys, sigma, jnp.float32(config.lambda_alpha),
                       jnp.float32(config.lambda_tv))
    static = dict(alpha=config.alpha, beta=config.beta, parameterization=parameterization,
                  transform=transforms, update=optimizer.update)

    def step(params, state, iteration):
        return programs.step(params, state, programs.weights, problem, iteration, **static)

    report = _Progress(progress, config.iterations)
    try:
        params, terms = _loop(step, params, optimizer.init(params), config.iterations,
                              report if report.active else (lambda i, t: None))
    finally:
        report.close()
    images, out_codes = programs.finish(params, programs.weights, sigma,
                                        parameterization=parameterization)
    # Stacked on the host: one transfer of small arrays, and no program
    # whose shape depends on the number of iterations.
    terms = jax.device_get(terms)
    history = {name: np.stack([t[name] for t in terms], axis=-1) for name in TERMS}
    if not batched:
        images, out_codes = images[0], out_codes[0]
        history = {k: v[0] for k, v in history.items()}
    return InversionResult(images=images, codes=out_codes, history=history, config=config)
