"""The engine: images that minimise an energy, by gradient descent (paper
Sect. 2.1; Mahendran & Vedaldi, IJCV 2016, eq. 1).

Every visualisation of jinvert is one problem: find images x = σu that
minimise

    E(u) = data(Φ(σ·T(u))) + regularisers(u)

for a representation Φ, a data term of :mod:`jinvert.terms` (inversion,
activation, caricature, or your own sum of them) and the regularisers of a
:class:`jinvert.Config` (eq. 3's α-norm and V^β, or the IJCV bounded range).
:func:`minimize` solves it; :func:`jinvert.invert` (the data term matches a
code), :func:`jinvert.maximize` and :func:`jinvert.caricature` are short
specialisations of it.

The loop follows the reference code (deep-goggle ``invert_nn.m``): start from
Gaussian noise of unit Euclidean norm in the normalised space u = x/σ
(:class:`Start`), then step an optax transformation (the paper's
:func:`jinvert.paper_sgd` by default) on E for ``config.iterations``
iterations. All samples of all problems are optimised together under
``vmap`` by the programs of :mod:`jinvert.programs`; on the CPU each
iteration is one compiled call, on accelerators a chunk of iterations
(:class:`Loop`, :data:`ITERATIONS_PER_CALL`).
"""

from __future__ import annotations

import os
from typing import Any, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jinvert import terms
from jinvert.config import Config
from jinvert.divergence import check_history
from jinvert.parameterizations import Fourier, Pixels, pixels
from jinvert.programs import Problem, programs
from jinvert.progress import Reports

Array = jax.Array


class InversionResult(NamedTuple):
    """What :func:`minimize` (and so :func:`jinvert.invert`,
    :func:`jinvert.maximize`, :func:`jinvert.caricature`) returns (a pytree).

    Attributes:
      images: reconstructions in the representation's input space, float32
        ``(samples, H, W, C)``, or ``(B, samples, H, W, C)`` for B
        problems (a JAX array, sharded as the energy's arrays were).
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


class Start(NamedTuple):
    """Where each sample starts: u = ``init``/σ + ``noise``·n, n Gaussian
    noise of unit Euclidean norm drawn from the run's key (the paper's
    start is n alone: ``Start()``).

    Attributes:
      init: ``None`` (noise only), or images x (not u) in the input space:
        one ``(H, W, C)`` for every problem, ``(B, H, W, C)`` one per
        problem, or ``(B, S, H, W, C)`` one per sample; for
        :func:`jinvert.invert` also a :class:`jinvert.decoders.Decoder` (or
        the path of its file), whose output for each code is used. Beyond
        the paper; the pixels parameterisation only.
      noise: the norm of n in u (a natural image has about 1); ``None``:
        1 without ``init`` (the paper's start), 0.1 with one (a warm start
        whose samples still differ).
    """

    init: Any = None
    noise: float | None = None

    @property
    def noise_norm(self) -> float:
        """``noise``, its default resolved."""
        if self.noise is None:
            return 1.0 if self.init is None else 0.1
        return self.noise


class Loop(NamedTuple):
    """How the loop runs: what it reports and how many iterations each
    compiled call runs. Neither changes the result (up to float rounding
    for ``iterations_per_call``).

    Attributes:
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
    """

    progress: Any = None
    iterations_per_call: int | None = None


#: Iterations per compiled call when :class:`Loop` does not say, per
#: backend. The CPU runs one step per call: XLA:CPU runs convolutions and their gradients inside a loop 2–10×
#: slower than in a top-level program (AlexNet pool5: 57 ms per iteration
#: in a scan, 24 ms as a step), and a dispatch costs well under a
#: millisecond there. On a GPU the host's dispatch of one step per
#: iteration (0.67 ms measured on an H200, whatever the batch) is most of
#: a HOG iteration, so the steps run in chunks. The GPU/TPU value is not yet
#: measured against others: ``bash benchmarks/gpu_check.sh sweep`` (K = 1,
#: 10, 100, 1000) is the measurement to make.
ITERATIONS_PER_CALL = {"cpu": 1, "gpu": 100, "cuda": 100, "rocm": 100, "tpu": 100}


def image_shape(rep, shape=None) -> tuple[int, int, int]:
    """``(H, W, C)`` of the images to find: ``shape`` (``(H, W)`` or
    ``(H, W, C)``), default ``rep.input_size``; ValueError where ``rep``
    cannot take it."""
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


def _per_problem_keys(key, count: int, batched: bool) -> bool:
    """Whether ``key`` is one key (False) or one key per problem (True)."""
    typed = jax.dtypes.issubdtype(getattr(key, "dtype", None) or np.uint32,
                                  jax.dtypes.prng_key)
    ndim = np.ndim(key) - (0 if typed else 1)
    if ndim == 0:
        return False
    if ndim == 1 and batched and np.shape(key)[0] == count:
        return True
    raise ValueError(f"key must be one jax.random key, or one per problem ({count} for a "
                     f"batch of {count}); got an array of shape {np.shape(key)}")


def _check_run(config, samples, optimizer) -> int:
    """ValueError unless ``config`` is a Config, ``samples`` a positive
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


def _per_call(iterations_per_call, platform: str) -> int:
    """Iterations per compiled call: the one asked for (a positive integer,
    else ValueError), else the backend's :data:`ITERATIONS_PER_CALL`."""
    if iterations_per_call is None:
        return ITERATIONS_PER_CALL.get(platform, 1)
    if (isinstance(iterations_per_call, bool) or int(iterations_per_call) != iterations_per_call
            or iterations_per_call < 1):
        raise ValueError(f"iterations_per_call must be a positive integer, "
                         f"got {iterations_per_call!r}")
    return int(iterations_per_call)


def _check_start(start) -> Start:
    if start is None:
        return Start()
    if not isinstance(start, Start):
        raise ValueError(f"start must be a jinvert.Start (e.g. Start(init=images, noise=0.1)), "
                         f"got {type(start).__name__}")
    noise = start.noise_norm
    if isinstance(noise, bool) or not (np.isfinite(noise) and noise >= 0):
        raise ValueError(f"the start's noise must be a finite number >= 0, got {start.noise!r}")
    return start


def _started(start: Start, noise, shape, sigma, parameterization):
    """The parameters of ``start`` (:class:`Start`), from ``noise``, the
    paper's start ``(B, S, ...)`` (any linear parameterisation: ``noise`` is
    then its parameters; pixels with an ``init``)."""
    init, init_noise = start.init, start.noise_norm
    if init is None:
        if init_noise == 1.0:
            return noise  # the paper's start
        if not isinstance(parameterization, (Pixels, Fourier)):
            raise ValueError("a scaled random start needs a linear parameterisation "
                             "(pixels, fourier)")
        return jax.tree_util.tree_map(lambda p: p * jnp.float32(init_noise), noise)
    if not isinstance(parameterization, Pixels):
        raise ValueError("a warm start (Start(init=...)) works with the pixels "
                         "parameterisation only")
    if isinstance(init, (str, os.PathLike)) or not hasattr(init, "__array__") and not \
            isinstance(init, (list, tuple)):
        raise ValueError(f"Start(init=...) must be images here, got {type(init).__name__} "
                         f"(a decoder starts from codes: jinvert.invert takes one)")
    images = jnp.asarray(init, jnp.float32)
    batch, samples = noise.shape[:2]
    layouts = {3: images[None, None], 4: images[:, None], 5: images}
    ok = images.ndim in layouts and tuple(images.shape[-3:]) == tuple(shape)
    if ok and images.ndim >= 4:
        ok = images.shape[0] == batch and (images.ndim == 4 or images.shape[1] == samples)
    if not ok:
        raise ValueError(f"the start's init must be images {tuple(shape)}, ({batch}, "
                         f"*{tuple(shape)}) or ({batch}, {samples}, *{tuple(shape)}); got "
                         f"shape {tuple(images.shape)}")
    if not bool(jnp.all(jnp.isfinite(images))):
        raise ValueError("the start's init has NaN or infinite values")
    return layouts[images.ndim] / sigma + jnp.float32(init_noise) * noise


def _initial_state(optimizer: optax.GradientTransformation, params):
    """``optimizer.init(params)``, compiled when ``init`` is hashable (the
    paper's SGD; optax's own are, by identity): op by op, its zeros and
    constants compiled a small program each on every run (issue 28)."""
    try:
        hash(optimizer.init)
    except TypeError:
        return optimizer.init(params)
    return _compiled_init(optimizer.init, params)


_compiled_init = jax.jit(lambda init, params: init(params), static_argnums=0)
#: The one problem of an unbatched run, without its batch axis.
_first = jax.jit(lambda tree: jax.tree_util.tree_map(lambda a: a[0], tree))


def _run(step, chunk, params, state, total: int, per_call: int, report) -> tuple[Any, list]:
    """Run ``total`` iterations from ``params, state``.

    ``step(params, state, i) -> (params, state, terms)`` is one compiled
    iteration; ``chunk(params, state, i, n) -> (params, state, buffers)``
    runs iterations i … i+n−1 in one compiled call (n ≤ ``per_call``; its
    terms are the first n rows of ``buffers``). With ``per_call`` = 1 each
    iteration is one call of ``step``, else of ``chunk``; the number of
    iterations is an argument of both, so changing it does not recompile.
    A chunk stops at the next report (``report.interval``, :class:`jinvert.progress.Reports`). The momentum
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
            # NumPy scalars: jnp.int32 would compile a conversion per run.
            params, state, terms = step(params, state, np.int32(done))
            n, last = 1, (lambda terms=terms: terms)
        else:
            n = min(per_call, total - done)
            if report.interval is not None:
                n = min(n, report.interval - done % report.interval)
            params, state, terms = chunk(params, state, np.int32(done), np.int32(n))
            last = (lambda terms=terms, n=n: {k: v[n - 1] for k, v in terms.items()})
        calls.append((n, terms))
        done += n
        report(done, last)
    return params, calls


def _history(calls, per_call: int) -> dict:
    """``{name: (B, S, iterations)}`` NumPy arrays from :func:`_run`'s calls
    (stacked on the host: one transfer of small arrays, and no program whose
    shape depends on the number of iterations)."""
    calls = jax.device_get(calls)
    return {name: np.concatenate([np.asarray(t[name])[None] if per_call == 1
                                  else np.asarray(t[name])[:n] for n, t in calls],
                                 axis=0).transpose(1, 2, 0) for name in calls[0][1]}


def _code_shape(rep, shape) -> tuple[int, ...]:
    return tuple(jax.eval_shape(rep.apply, jax.ShapeDtypeStruct(shape, jnp.float32)).shape)


def _batch_of(energy, code_shape) -> tuple[terms.Term, int, bool]:
    """``(term with a leading axis B on every leaf, B, batched)`` of what
    :func:`minimize` takes as its energy, or ValueError."""
    batched = isinstance(energy, (list, tuple, terms.Batch))
    if isinstance(energy, (list, tuple)):
        for e in energy:
            if not isinstance(e, terms.Term):
                raise ValueError(f"every energy of a list must be a jinvert.terms term, got "
                                 f"{type(e).__name__}")
        energy = terms.stack(energy)
    elif isinstance(energy, terms.Term):
        energy = terms.batched(energy, 1)
    elif not isinstance(energy, terms.Batch):
        raise ValueError(f"the energy must be a jinvert.terms term (activation, caricature, "
                         f"inversion, or a sum of them), a list of them or a terms.Batch; "
                         f"got {type(energy).__name__}")
    count = energy.count
    if count == 0:
        raise ValueError("got an empty batch of energies")
    terms.check_code_shape(energy, code_shape)
    return energy.term, count, batched


def _platform(tree) -> str:
    """The platform the arrays of ``tree`` live on (the default backend's
    for host arrays)."""
    for leaf in jax.tree_util.tree_leaves(tree):
        if isinstance(leaf, jax.Array) and not isinstance(leaf, jax.core.Tracer):
            return next(iter(leaf.devices())).platform
    return jax.default_backend()


def minimize(rep, energy, *, key, shape=None, samples: int = 1, config: Config | None = None,
             optimizer: optax.GradientTransformation | None = None, parameterization=None,
             transforms=None, start: Start | None = None,
             loop: Loop | None = None) -> InversionResult:
    """Images x = σu that minimise ``energy`` plus the regularisers of
    ``config``: the engine under every visualisation of jinvert.

    Args:
      rep: a :class:`jinvert.Representation` (Φ).
      energy: the data term, a :mod:`jinvert.terms` term over one code
        (``inversion(Φ0)``, ``activation(W, Z)``, ``caricature(Φ0)``, sums
        and multiples of them, or a term of your own: a
        :class:`jinvert.terms.Term` with a ``name`` and a ``value(code, u)``,
        registered as a pytree); or a batch of B problems solved together:
        a list of terms built alike, or a :class:`jinvert.terms.Batch`
        (every leaf with a leading axis B). Its arrays are arguments of the
        compiled step, so new values do not recompile.
      key: a ``jax.random`` key (same key, same images), or for a batch one
        key per problem, ``(B,)`` keys (stacked ``PRNGKey``s ``(B, 2)``):
        then each problem's result is what it would be alone with its key.
      shape: ``(H, W)`` or ``(H, W, C)`` of the images; default
        ``rep.input_size`` for fixed-size representations, required otherwise.
      samples: images per problem, from independent random starts (vmapped:
        one compiled program).
      config: a :class:`jinvert.Config` (default ``rep.defaults``, the
        paper's settings for ``rep``): the regularisers
        (:func:`jinvert.terms.priors`), the schedule, the jitter. Unless its
        ``sigma`` is set, σ and the λ are converted to ``shape`` by
        :meth:`jinvert.Config.sized`.
      optimizer: an ``optax.GradientTransformation``; default
        ``config.optimizer()`` (the paper's :func:`jinvert.paper_sgd`, or
        :func:`jinvert.optimizers.staged_adam`). Any other (e.g.
        ``optax.adam(0.001)``, whose step is in units of u = x/σ) runs
        ``config.iterations`` steps from one state. Its ``update`` keys the
        compiled step: reuse one object to reuse the compilation.
      parameterization: what the optimiser moves (beyond the paper;
        :mod:`jinvert.parameterizations`): ``None`` or ``pixels()`` is u
        itself, ``fourier()`` a frequency-scaled Fourier basis,
        ``deep_image_prior()`` the weights of a small conv generator.
      transforms: ``None`` (``jitter(config.jitter)`` when the config asks
        for jitter, else none) or a random transform ``(key, u) -> u``
        (:mod:`jinvert.transforms`) applied to the image the data term sees
        at every iteration; the regularisers see the untransformed image.
      start: a :class:`Start`; default ``Start()``, the paper's noise.
      loop: a :class:`Loop` (progress, iterations per compiled call).

    Returns:
      :class:`InversionResult`: ``images`` ``(samples, H, W, C)`` in the
      input space (``(B, samples, ...)`` for a batch), their ``codes``, the
      ``history`` of every term (the data term's name is ``"data"``) and
      the sized ``config``.

    Raises:
      ValueError: an energy that is not a term, or whose arrays do not have
        the code's shape; a bad ``key``, ``samples``, ``shape``, ``config``,
        ``optimizer``, ``start`` or ``loop``.

    Warns:
      :class:`jinvert.DivergenceWarning`: some samples diverged (NaN/inf
      energy; their images are NaN), with how many and from which iteration.
    """
    run = _prepare(rep, energy, key, shape, samples, config, optimizer, parameterization,
                   transforms, start, loop)
    compiled, problem, static = run.compiled, run.problem, run.static

    def step(params, state, iteration):
        return compiled.step(params, state, compiled.weights, problem, iteration, **static)

    def chunk(params, state, first, count):
        return compiled.chunk(params, state, compiled.weights, problem, first, count,
                              length=run.per_call, **static)

    report = Reports(run.loop.progress, run.config.iterations)
    try:
        params, calls = _run(step, chunk, run.params, _initial_state(run.optimizer, run.params),
                             run.config.iterations, run.per_call, report)
    finally:
        report.close()
    images, codes = compiled.finish(params, compiled.weights, problem.sigma,
                                    parameterization=static["parameterization"])
    history = _history(calls, run.per_call)
    check_history(history["total"])
    if not run.batched:
        images, codes = _first((images, codes))
        history = {k: v[0] for k, v in history.items()}
    return InversionResult(images=images, codes=codes, history=history, config=run.config)


class _Prepared(NamedTuple):
    """A run of :func:`minimize` ready to loop: the compiled programs, the
    start, the problem's arrays, the static settings of the step."""

    compiled: Any
    params: Any
    problem: Problem
    static: dict
    config: Config
    optimizer: optax.GradientTransformation
    per_call: int
    batched: bool
    loop: Loop


def _prepare(rep, energy, key, shape, samples, config, optimizer, parameterization, transforms,
             start, loop) -> _Prepared:
    """Checks :func:`minimize`'s arguments and sets its run up (see there)."""
    config = rep.defaults if config is None else config
    samples = _check_run(config, samples, optimizer)
    shape = image_shape(rep, shape)
    per_problem, count, batched = _batch_of(energy, _code_shape(rep, shape))
    per_problem_keys = _per_problem_keys(key, count, batched)
    start = _check_start(start)
    loop = Loop() if loop is None else loop
    if not isinstance(loop, Loop):
        raise ValueError(f"loop must be a jinvert.Loop, got {type(loop).__name__}")
    per_call = _per_call(loop.iterations_per_call, _platform(per_problem))
    parameterization = pixels() if parameterization is None else parameterization
    config = config.sized(shape, rep.sigma)
    if optimizer is None:  # after sizing: Adam's learning rate depends on the size
        optimizer = config.optimizer()
    if transforms is None and config.jitter:
        from jinvert.transforms import jitter
        transforms = jitter(config.jitter)

    compiled = programs(rep, shape, count * samples)
    params, tkeys = compiled.start(key, batch=count, samples=samples,
                                   per_code_keys=per_problem_keys,
                                   parameterization=parameterization)
    sigma = np.float32(config.sigma)
    params = _started(start, params, shape, sigma, parameterization)
    problem = Problem((per_problem, terms.priors(config)), tkeys, sigma)
    static = dict(parameterization=parameterization, transform=transforms,
                  update=optimizer.update)
    return _Prepared(compiled, params, problem, static, config, optimizer, per_call, batched,
                     loop)


def lower_step(rep, energy, *, key, shape=None, samples: int = 1,
               config: Config | None = None, optimizer: optax.GradientTransformation | None = None,
               parameterization=None, transforms=None,
               start: Start | None = None) -> jax.stages.Lowered:
    """The compiled step :func:`minimize` would run for these arguments
    (the same ones), lowered with its first iteration's arguments: for
    XLA's cost analysis (``.compile().cost_analysis()``: FLOPs and bytes of
    one iteration of all samples) and for reading its HLO (``.as_text()``).
    Nothing is run."""
    run = _prepare(rep, energy, key, shape, samples, config, optimizer, parameterization,
                   transforms, start, None)
    return run.compiled.step.lower(run.params, run.optimizer.init(run.params),
                                   run.compiled.weights, run.problem, jnp.int32(0),
                                   **run.static)
