"""`invert`: reconstruct images from a code by SGD with momentum (paper Sect. 2.1).

The loop follows the reference code (deep-goggle ``invert_nn.m``): start from
Gaussian noise of unit Euclidean norm in the normalised space u = x/σ, then
run SGD with momentum 0.9 for ``stages[0]`` iterations at ``learning_rate``,
``stages[1]`` at ``learning_rate/10``, and so on, zeroing the momentum at each
change. Each stage runs with a fresh ``optax.sgd`` state, which is exactly
the reference's ``v ← μv − lr·∇E; u ← u + v`` within a stage (optax keeps
m = g + μm and steps −lr·m = v). All samples and all codes are optimised
together under ``vmap``; each iteration is one compiled step (see
:func:`_run` for why not a ``lax.scan``).
"""

from __future__ import annotations

import weakref
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jinvert.objective import TERMS, data_term, with_priors

Array = jax.Array

#: The paper's settings for the shallow representations (HOG, HOGb, DSIFT):
#: 4 × 200 iterations from 0.004, λα = 2.16e8 with α = 6, λV = 5 with β = 2.
#: A representation's ``defaults`` override these; keyword arguments of
#: :func:`invert` override both.
DEFAULTS: Mapping[str, Any] = {
    "learning_rate": 0.004,
    "stages": (200, 200, 200, 200),
    "lambda_alpha": 2.16e8,
    "alpha": 6.0,
    "lambda_tv": 5.0,
    "beta": 2.0,
    "momentum": 0.9,
}


class InversionResult(NamedTuple):
    """What :func:`invert` returns (a pytree).

    Attributes:
      images: reconstructions in the representation's input space, float32
        ``(samples, H, W, C)``, or ``(B, samples, H, W, C)`` for B codes.
      codes: Φ of each reconstruction, ``(samples, *code_shape)`` or
        ``(B, samples, *code_shape)``.
      history: ``{"data", "alpha", "tv", "total"}`` → the value of each term
        (λ included) at every iteration, before its update, NumPy float32
        ``(samples, iterations)`` or ``(B, samples, iterations)``.
      settings: the settings used (a dict of Python numbers and tuples).
    """

    images: Array
    codes: Array
    history: dict
    settings: dict


def resolve_settings(rep, **overrides) -> dict[str, Any]:
    """Library defaults ← ``rep.defaults`` ← explicit (non-None) overrides.

    Returns a dict with ``learning_rate`` (float), ``stages`` (tuple of
    positive ints), ``lambda_alpha``, ``alpha``, ``lambda_tv``, ``beta``,
    ``momentum`` (floats). Raises ValueError on a bad value.
    """
    settings = dict(DEFAULTS)
    settings.update({k: v for k, v in dict(getattr(rep, "defaults", {}) or {}).items()
                     if k in DEFAULTS})
    settings.update({k: v for k, v in overrides.items() if v is not None})
    try:
        stages = tuple(int(s) for s in np.atleast_1d(settings["stages"]))
    except (TypeError, ValueError):
        raise ValueError(f"stages must be a sequence of iteration counts, "
                         f"got {settings['stages']!r}") from None
    if not stages or any(s < 0 for s in stages) or sum(stages) == 0:
        raise ValueError(f"stages must be non-negative iteration counts with a "
                         f"positive total, got {settings['stages']!r}")
    settings["stages"] = stages
    for name in ("learning_rate", "lambda_alpha", "alpha", "lambda_tv", "beta", "momentum"):
        value = float(settings[name])
        if not np.isfinite(value) or value < 0:
            raise ValueError(f"{name} must be a finite non-negative number, got {settings[name]!r}")
        settings[name] = value
    if settings["alpha"] < 1 or settings["beta"] <= 0:
        raise ValueError(f"need alpha >= 1 and beta > 0, got alpha={settings['alpha']}, "
                         f"beta={settings['beta']}")
    return settings


def rescale_stages(stages, iterations: int) -> tuple[int, ...]:
    """Scale a schedule to ``iterations`` in total, keeping the proportions.

    ``rescale_stages((200, 200, 200, 200), 100) == (25, 25, 25, 25)``; the
    rounding remainder goes to the first stages, empty stages are dropped.
    """
    stages = [int(s) for s in stages]
    iterations = int(iterations)
    if iterations < 1:
        raise ValueError(f"the number of iterations must be positive, got {iterations}")
    total = sum(stages)
    exact = [s * iterations / total for s in stages]
    out = [int(np.floor(e)) for e in exact]
    # Largest remainders first, ties to the earlier stage.
    order = sorted(range(len(out)), key=lambda i: (-(exact[i] - out[i]), i))
    for i in order[: iterations - sum(out)]:
        out[i] += 1
    return tuple(s for s in out if s > 0)


def initial_noise(key, shape) -> Array:
    """The starting point: Gaussian noise with unit Euclidean norm per image.

    Args:
      key: a ``jax.random`` key.
      shape: ``(*batch, H, W, C)``; each trailing ``(H, W, C)`` image is
        normalised on its own.

    Returns:
      float32 array of ``shape`` in the normalised space u = x/σ (the
      reference's ``x = randn; x = x/norm(x)·σ``).
    """
    noise = jax.random.normal(key, tuple(shape), jnp.float32)
    norms = jnp.sqrt(jnp.sum(noise ** 2, axis=(-3, -2, -1), keepdims=True))
    return noise / norms


#: ``fold_in`` constant that separates the keys of the random transforms
#: from the initialisation's (which uses the call's key itself).
_TRANSFORM_STREAM = 0x6A177E4


def _segments(optimizer, stages, learning_rate):
    """[(learning rate, iterations)], run one after another, each from a
    fresh optimiser state.

    * ``None`` (the paper's SGD with momentum) and ``"adam"``: the learning
      rate divided by 10 at each stage (k counts empty stages too).
    * an ``optax.GradientTransformation``: one segment of ``sum(stages)``
      iterations (one state; the stages only set the total; the rate is
      unused).
    """
    if optimizer is None or optimizer == "adam":
        return [(learning_rate * (0.1 ** k), n) for k, n in enumerate(stages) if n]
    return [(learning_rate, sum(stages))]


def _transformation(optimizer, learning_rate, momentum):
    """The optax transformation of one segment (rates may be traced)."""
    if optimizer is None:
        return optax.sgd(learning_rate, momentum=momentum)
    if optimizer == "adam":
        return optax.adam(learning_rate)
    return optimizer


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
    from jinvert.parameterizations import init_batch

    # Φ of all B·S images in one call: a representation with a batched
    # path of its own (rep.apply_batch) uses it.
    phi, weights = _with_weights(rep.batch_apply, (count,) + tuple(shape))
    # ``parameterization`` below: the static option, resolved by _run.

    def render(parameterization, params):
        """Parameters of (B, S) images -> u, (B, S, H, W, C)."""
        return jax.vmap(jax.vmap(lambda p: parameterization.render(p, shape)))(params)

    def codes_of(weights, x):
        """Input-space images (B, S, H, W, C) -> their codes (B, S, *code)."""
        codes = phi(weights, x.reshape((-1,) + tuple(shape)))
        return codes.reshape(x.shape[:2] + codes.shape[1:])

    def start(key, reference, mask, *, samples, per_code_keys, parameterization):
        # reference, mask: (B, *code_shape). key: one key, or (B,) keys.
        batch = reference.shape[0]
        norm2 = jnp.sum((mask * reference) ** 2, axis=tuple(range(1, reference.ndim)))
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

    def step(params, state, weights, iteration, learning_rate, momentum, tkeys,
             reference, mask, norm2, sigma, lambda_alpha, lambda_tv, *, alpha, beta,
             parameterization, transform, optimizer):
        each = lambda f: jax.vmap(jax.vmap(f))  # noqa: E731  over (codes, samples)

        def energy(params):
            u = render(parameterization, params)
            if transform is None:
                seen = u
            else:
                # The data term sees the transformed image, the priors the
                # image itself (they are translation-invariant anyway, up
                # to the border, and should judge what is returned).
                seen = each(lambda k, v: transform(jax.random.fold_in(k, iteration), v))(
                    tkeys, u)
            data = jax.vmap(jax.vmap(data_term, in_axes=(0, None, None, None)))(
                codes_of(weights, sigma * seen), reference, mask, norm2)
            terms = each(lambda d, v: with_priors(d, v, lambda_alpha=lambda_alpha, alpha=alpha,
                                                  lambda_tv=lambda_tv, beta=beta))(data, u)
            # The reconstructions are independent: the gradient of the sum
            # is each one's own gradient.
            return jnp.sum(terms["total"]), terms

        (_, terms), grads = jax.value_and_grad(energy, has_aux=True)(params)
        opt = _transformation(optimizer, learning_rate, momentum)
        updates, state = opt.update(grads, state, params)
        return optax.apply_updates(params, updates), state, terms

    def finish(params, weights, sigma, *, parameterization):
        images = sigma * render(parameterization, params)
        return images, codes_of(weights, images)

    programs = _Programs(
        start=jax.jit(start, static_argnames=("samples", "per_code_keys", "parameterization")),
        # The iterate and optimiser state are updated in place.
        step=jax.jit(step, donate_argnums=(0, 1),
                     static_argnames=("alpha", "beta", "parameterization", "transform",
                                      "optimizer")),
        finish=jax.jit(finish, static_argnames=("parameterization",)),
        weights=weights)
    per_shape[(shape, count)] = programs
    return programs


def _run(rep, key, reference, mask, sigma, lambda_alpha, lambda_tv, learning_rate, momentum,
         *, shape, samples, stages, alpha, beta, per_code_keys=False, callback=None,
         callback_every=50, parameterization=None, transform=None, optimizer=None):
    """The optimisation loop on checked arrays: ``(images, codes, history)``.

    ``reference``, ``mask``: ``(B, *code_shape)`` (possibly sharded over
    devices along B; the programs follow their sharding). ``key``: one key
    for the whole batch, or ``(B,)`` keys with ``per_code_keys=True``.

    The loop is driven from Python, one compiled step per iteration, not a
    ``lax.scan``: XLA:CPU runs convolutions and their gradients inside a
    while loop 2–10× slower than in a top-level program (measured on
    AlexNet's pool5: 57 ms per iteration in a scan, 24 ms as a step; a
    ``lax.map`` over 8 samples is still 1.8× slower than one batch), and
    the dispatch of a step costs well under a millisecond. With donated
    buffers the iterate and optimiser state are updated in place as in a
    scan. The step does not depend on the number of iterations, so changing
    it does not recompile.

    Each step evaluates Φ once on all B·S images, through
    ``rep.batch_apply`` (a representation's own batched path when it has
    one, else ``vmap``), and the priors image by image.
    """
    from jinvert.parameterizations import pixels

    if parameterization is None:
        parameterization = pixels()  # the paper's: u itself
    programs = _programs(rep, tuple(shape), int(reference.shape[0]) * int(samples))
    total = sum(stages)
    params, tkeys, norm2 = programs.start(key, reference, mask, samples=samples,
                                          per_code_keys=per_code_keys,
                                          parameterization=parameterization)
    sigma, lambda_alpha, lambda_tv, momentum = (jnp.float32(v) for v in
                                                (sigma, lambda_alpha, lambda_tv, momentum))
    static = dict(alpha=alpha, beta=beta, parameterization=parameterization,
                  transform=transform, optimizer=optimizer)
    iteration, terms = 0, []
    for rate, n in _segments(optimizer, stages, learning_rate):
        # A fresh state per segment: the momentum restarts at zero when the
        # learning rate drops, as in the reference code.
        state = _transformation(optimizer, rate, momentum).init(params)
        rate = jnp.float32(rate)
        for _ in range(n):
            params, state, step_terms = programs.step(
                params, state, programs.weights, jnp.int32(iteration), rate,
                momentum, tkeys, reference, mask, norm2, sigma, lambda_alpha, lambda_tv,
                **static)
            terms.append(step_terms)
            iteration += 1
            if callback is not None and (iteration % callback_every == 0 or iteration == total):
                callback(iteration, total, {k: float(np.mean(v)) for k, v in
                                            jax.device_get(step_terms).items()})
    images, codes = programs.finish(params, programs.weights, sigma,
                                    parameterization=parameterization)
    # Stacked on the host: one transfer of small arrays, and no program
    # whose shape depends on the number of iterations.
    terms = jax.device_get(terms)
    history = {name: np.stack([t[name] for t in terms], axis=-1) for name in TERMS}
    return images, codes, history


#: The number of input values the paper's σ and λ were set for: 227 × 227
#: pixels × 3 colours (CNN-A's input; σ = 27 100 is the norm of such images).
PAPER_VALUES = 227 * 227 * 3


def size_adjusted(rep, shape, settings: Mapping[str, Any]) -> tuple[float, dict]:
    """σ and λ for an image of ``shape`` = (H, W, C), from the paper's values.

    The paper's σ is the average norm of natural images of 227 × 227 × 3
    values (``PAPER_VALUES``) and its λ balance sums over that many values.
    For ``n = H·W·C`` values, with r = n / PAPER_VALUES,
    σ' = σ·√r, λα' = λα·r^(α/2 − 1), λV' = λV·r^(β/2 − 1), so that

    * the starting noise has the same amplitude per value as in the paper
      (σ'/√n = σ/√PAPER_VALUES, about 69 grey levels), and
    * each prior has the same total weight as on a paper-size image with the
      same pixel statistics (λ'·Σ|x/σ'|^p = λ/σ^p · PAPER_VALUES · mean|x|^p).

    :func:`invert` applies it whenever ``sigma`` is not given; at the paper's
    size (AlexNet, 227 × 227 × 3) nothing changes. Without it a 227 × 227
    grey image (a third of the values) would start from noise of 119 grey
    levels a pixel, whose tails pass ±530, where the α = 6 prior's step
    becomes unstable at the paper's learning rate and the run diverges.

    Args:
      rep: the representation (its ``sigma``); shape: ``(H, W[, C])`` (C
        defaults to ``rep.channels``); settings: with ``lambda_alpha``,
        ``alpha``, ``lambda_tv``, ``beta``.

    Returns:
      ``(sigma, settings)`` with the three values replaced.
    """
    channels = int(shape[2]) if len(shape) > 2 else int(rep.channels)
    ratio = int(shape[0]) * int(shape[1]) * channels / PAPER_VALUES
    out = dict(settings)
    out["lambda_alpha"] = float(settings["lambda_alpha"]) * ratio ** (float(settings["alpha"]) / 2 - 1)
    out["lambda_tv"] = float(settings["lambda_tv"]) * ratio ** (float(settings["beta"]) / 2 - 1)
    return float(rep.sigma) * ratio ** 0.5, out


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


def invert(rep, code, *, shape=None, key, samples: int = 1, mask=None,
           lambda_tv=None, beta=None, lambda_alpha=None, alpha=None,
           learning_rate=None, stages=None, momentum=None, sigma=None,
           callback: Callable[[int, int, dict], None] | None = None,
           callback_every: int = 50, parameterization=None, transforms=None,
           optimizer=None) -> InversionResult:
    """Find images whose code under ``rep`` is ``code`` (paper eq. 3).

    Args:
      rep: a :class:`jinvert.Representation`.
      code: Φ0, the code of one image (the shape ``rep.apply`` gives at
        ``shape``), or a batch ``(B, *code_shape)`` of codes, float.
      shape: ``(H, W)`` or ``(H, W, C)`` of the reconstruction; defaults to
        ``rep.input_size`` for fixed-size representations, required otherwise.
      key: a ``jax.random`` key; the same key gives the same reconstructions.
      samples: reconstructions per code, from independent random starts
        (vmapped: one compiled program).
      mask: optional bool array over one code (or over the whole batch):
        only its true entries count in the data term (:mod:`jinvert.masks`).
      lambda_tv, beta, lambda_alpha, alpha: λV, β, λα, α of the paper (see
        :mod:`jinvert.objective` for the conversion from the reference code).
      learning_rate: of the first stage; divided by 10 at each next stage.
      stages: iterations per stage, e.g. ``(200, 200, 200, 200)``.
      momentum: SGD momentum μ (0.9), reset to zero at each stage.
      sigma: σ. By default σ and the λ are the paper's (``rep.sigma``,
        the values above) converted to the size of ``shape`` by
        :func:`size_adjusted`; an explicit ``sigma`` turns that off and the
        λ are used as given.
        Every setting left at None comes from ``rep.defaults``, then
        :data:`DEFAULTS` (the paper's shallow-representation settings).
      callback: ``callback(iteration, total, terms)`` called every
        ``callback_every`` iterations (and at the end), in the calling
        thread, with ``terms`` the mean of each term over all
        reconstructions (Python floats).
      callback_every: iterations between callbacks.
      parameterization: what the optimiser moves (beyond the paper;
        :mod:`jinvert.parameterizations`): ``None`` or ``pixels()`` is the
        paper's (u itself), ``fourier()`` a frequency-scaled Fourier basis,
        ``deep_image_prior()`` the weights of a small conv generator. The
        objective is evaluated on the rendered image.
      transforms: ``None`` (the paper) or a random transform ``(key, u) ->
        u`` (:mod:`jinvert.transforms`, e.g. ``jitter(2)``) applied to the
        image seen by the data term at every iteration, with a key folded
        from ``key``, the iteration and the reconstruction; the priors see
        the untransformed image.
      optimizer: ``None``: the paper's SGD with momentum and tenfold
        learning-rate drops, fresh state per stage. ``"adam"``: optax.adam
        with the same per-stage learning rates (``learning_rate``, /10 per
        stage) and a fresh state per stage; ``learning_rate`` is then
        Adam's step in parameter units (for pixels, u = x/σ). An
        ``optax.GradientTransformation``: used as is, one state for all
        ``sum(stages)`` iterations (``learning_rate`` and ``momentum`` are
        then ignored; the stages only set the total). Options must be
        hashable (they key the compiled program); optax transformations are
        hashed by identity, so reuse one object to reuse the compilation.

    Returns:
      :class:`InversionResult` with images in the input space (x = σu),
      ``(samples, H, W, C)`` or ``(B, samples, H, W, C)``.

    Raises:
      ValueError: a code of the wrong shape, with NaN/inf, or all zeros; a
        bad ``samples``, ``shape``, ``mask`` or setting.
    """
    settings = resolve_settings(rep, lambda_tv=lambda_tv, beta=beta,
                                lambda_alpha=lambda_alpha, alpha=alpha,
                                learning_rate=learning_rate, stages=stages,
                                momentum=momentum)
    if isinstance(samples, bool) or int(samples) != samples or samples < 1:
        raise ValueError(f"samples must be a positive integer, got {samples!r}")
    samples = int(samples)
    if not (optimizer is None or optimizer == "adam"
            or isinstance(optimizer, optax.GradientTransformation)):
        raise ValueError(f"optimizer must be None, 'adam' or an optax.GradientTransformation, "
                         f"got {optimizer!r}")
    if int(callback_every) != callback_every or callback_every < 1:
        raise ValueError(f"callback_every must be a positive integer, got {callback_every!r}")
    shape = _resolve_shape(rep, shape)

    code = np.asarray(code)
    if not np.issubdtype(code.dtype, np.number):
        raise ValueError(f"the code must be a numeric array, got dtype {code.dtype}")
    code = code.astype(np.float32)
    expected = tuple(jax.eval_shape(rep.apply,
                                    jax.ShapeDtypeStruct(shape, jnp.float32)).shape)
    if code.shape == expected:
        batched = False
        codes = code[None]
    elif code.ndim == len(expected) + 1 and code.shape[1:] == expected:
        batched = True
        codes = code
    else:
        raise ValueError(f"{rep.name} gives codes of shape {expected} for images of shape "
                         f"{shape}; got a code of shape {code.shape} (wrong image size?)")
    if codes.shape[0] == 0:
        raise ValueError("got an empty batch of codes")
    if not np.all(np.isfinite(codes)):
        raise ValueError("the code has NaN or infinite values; compute it from a finite image")

    if mask is None:
        m = np.ones(codes.shape, np.float32)
    else:
        m = np.asarray(mask)
        if m.shape == expected:
            m = np.broadcast_to(m, codes.shape)
        elif not (batched and m.shape == codes.shape):
            raise ValueError(f"the mask must have the shape of one code {expected}"
                             + (f" or of the batch {codes.shape}" if batched else "")
                             + f", got {m.shape}")
        m = (m != 0).astype(np.float32)
    flat = np.abs(codes * m).reshape(codes.shape[0], -1)
    if np.any(flat.max(axis=1) == 0):
        if mask is None:
            raise ValueError("the code is all zeros (a blank image?); nothing to invert")
        raise ValueError("the code is all zeros where the mask selects it; nothing to invert")

    if sigma is None:
        sigma, settings = size_adjusted(rep, shape, settings)
    sigma = float(sigma)
    if not (np.isfinite(sigma) and sigma > 0):
        raise ValueError(f"sigma must be a positive number, got {sigma!r}")
    images, out_codes, history = _run(
        rep, key, jnp.asarray(codes), jnp.asarray(m), sigma, settings["lambda_alpha"],
        settings["lambda_tv"], settings["learning_rate"], settings["momentum"], shape=shape,
        samples=samples, stages=settings["stages"], alpha=settings["alpha"],
        beta=settings["beta"], callback=callback, callback_every=int(callback_every),
        parameterization=parameterization, transform=transforms, optimizer=optimizer)

    if not batched:
        images, out_codes = images[0], out_codes[0]
        history = {k: v[0] for k, v in history.items()}
    settings = dict(settings, samples=samples, shape=shape, sigma=sigma)
    return InversionResult(images=images, codes=out_codes, history=history, settings=settings)
