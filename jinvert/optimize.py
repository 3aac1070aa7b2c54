"""`invert`: reconstruct images from a code by SGD with momentum (paper Sect. 2.1).

The loop follows the reference code (deep-goggle ``invert_nn.m``): start from
Gaussian noise of unit Euclidean norm in the normalised space u = x/σ, then
run SGD with momentum 0.9 for ``stages[0]`` iterations at ``learning_rate``,
``stages[1]`` at ``learning_rate/10``, and so on, zeroing the momentum at each
change. Each stage is one ``lax.scan`` with a fresh ``optax.sgd`` state, which
is exactly the reference's ``v ← μv − lr·∇E; u ← u + v`` within a stage
(optax keeps m = g + μm and steps −lr·m = v). All samples and all codes are
optimised together under ``vmap`` inside a single ``jit``.
"""

from __future__ import annotations

import threading
import weakref
from typing import Any, Callable, Mapping, NamedTuple

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jinvert.objective import TERMS, alpha_norm, data_term, energy_terms, total_variation

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
        (λ included) at every iteration, before its update,
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


# --------------------------------------------------------------------------
# Progress callbacks. The compiled program always calls `_dispatch`, which
# forwards to whatever callback the current `invert` call registered, so the
# compiled program does not depend on the callback object (no recompiles).
# A plain global, not a thread-local: the runtime calls back from its own
# threads. Concurrent `invert` calls with callbacks are serialised by a lock.
_active_callback: list = [None]
_callback_lock = threading.Lock()


def _dispatch(iteration, total, terms):
    callback = _active_callback[0]
    if callback is not None:
        callback(int(iteration), int(total),
                 {k: float(v) for k, v in terms.items()})


#: ``fold_in`` constant that separates the keys of the random transforms
#: from the initialisation's (which uses the call's key itself).
_TRANSFORM_STREAM = 0x6A177E4


def _segments(optimizer, stages, learning_rate, momentum):
    """[(optax transformation, iterations)], run one after another, each with
    a fresh state.

    * ``None``: the paper's SGD with momentum, learning rate divided by 10
      at each stage (k counts empty stages too, as before).
    * ``"adam"``: ``optax.adam`` with the same per-stage learning rates.
    * an ``optax.GradientTransformation``: itself, for all iterations in one
      segment (one state; the stages only set the total).
    """
    if optimizer is None or optimizer == "adam":
        make = ((lambda lr: optax.sgd(lr, momentum=momentum)) if optimizer is None
                else optax.adam)
        # A fresh optimiser per stage: the momentum restarts at zero when
        # the learning rate drops, as in the reference code.
        return [(make(learning_rate * (0.1 ** k)), n) for k, n in enumerate(stages) if n]
    return [(optimizer, sum(stages))]


# One jitted runner per representation (weakly keyed, so dropping the rep
# frees its programs); jax.jit then caches per static settings and shapes.
_RUNNERS: "weakref.WeakKeyDictionary[Any, Callable]" = weakref.WeakKeyDictionary()


def _runner(rep) -> Callable:
    try:
        return _RUNNERS[rep]
    except KeyError:
        pass
    apply = rep.apply

    def run(key, reference, mask, sigma, lambda_alpha, lambda_tv, learning_rate, momentum,
            *, shape, samples, stages, alpha, beta, callback_every,
            parameterization=None, transform=None, optimizer=None):
        # reference: (B, *code_shape); mask: same shape, float 0/1.
        from jinvert.parameterizations import init_batch, pixels

        batch = reference.shape[0]
        norm2 = jnp.sum((mask * reference) ** 2, axis=tuple(range(1, reference.ndim)))
        param = pixels() if parameterization is None else parameterization

        def loss(p, tkey, ref, m, n2):
            u = param.render(p, shape)
            if transform is None:
                terms = energy_terms(apply, u, ref, m, sigma=sigma, lambda_alpha=lambda_alpha,
                                     alpha=alpha, lambda_tv=lambda_tv, beta=beta,
                                     reference_norm2=n2)
            else:
                # The data term sees the transformed image, the priors the
                # image itself (they are translation-invariant anyway, up
                # to the border, and should judge what is returned).
                data = data_term(apply(sigma * transform(tkey, u)), ref, m, n2)
                a = lambda_alpha * alpha_norm(u, alpha)
                v = lambda_tv * total_variation(u, beta)
                terms = {"data": data, "alpha": a, "tv": v, "total": data + a + v}
            return terms["total"], terms

        grad_one = jax.value_and_grad(loss, has_aux=True)
        # Inner vmap over samples (one code), outer vmap over codes.
        grad_all = jax.vmap(jax.vmap(grad_one, in_axes=(0, 0, None, None, None)),
                            in_axes=(0, 0, 0, 0, 0))

        params = init_batch(param, key, (batch, samples), tuple(shape))
        # One key per reconstruction for the transforms, from a stream of the
        # call's key that the initialisation does not use; folded with the
        # iteration number at each step. Unused (and compiled away) without
        # transforms.
        tkeys = jax.random.split(jax.random.fold_in(key, _TRANSFORM_STREAM), batch * samples)
        tkeys = tkeys.reshape((batch, samples) + tkeys.shape[1:])
        fold = jax.vmap(jax.vmap(jax.random.fold_in, in_axes=(0, None)), in_axes=(0, None))

        total = sum(stages)
        histories = []
        start = 0
        for opt, n in _segments(optimizer, stages, learning_rate, momentum):
            state = opt.init(params)

            def body(carry, it, opt=opt):
                p, state = carry
                (_, terms), g = grad_all(p, fold(tkeys, it), reference, mask, norm2)
                if callback_every:
                    done = it + 1
                    report = (done % callback_every == 0) | (done == total)
                    means = {name: jnp.mean(v) for name, v in terms.items()}
                    jax.lax.cond(report,
                                 lambda: jax.debug.callback(_dispatch, done, total, means,
                                                            ordered=True),
                                 lambda: None)
                updates, state = opt.update(g, state, p)
                return (optax.apply_updates(p, updates), state), terms

            (params, _), hist = jax.lax.scan(body, (params, state), jnp.arange(start, start + n))
            histories.append(hist)
            start += n

        history = {name: jnp.moveaxis(jnp.concatenate([h[name] for h in histories]), 0, -1)
                   for name in TERMS}
        u = jax.vmap(jax.vmap(lambda p: param.render(p, shape)))(params)
        images = sigma * u
        codes = jax.vmap(jax.vmap(apply))(images)
        return images, codes, history

    runner = jax.jit(run, static_argnames=("shape", "samples", "stages", "alpha",
                                           "beta", "callback_every", "parameterization",
                                           "transform", "optimizer"))
    _RUNNERS[rep] = runner
    return runner


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
        ``callback_every`` iterations (and at the end) from inside the
        compiled loop, with ``terms`` the mean of each term over all
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
    runner = _runner(rep)
    call = lambda: runner(  # noqa: E731
        key, jnp.asarray(codes), jnp.asarray(m), sigma,
        settings["lambda_alpha"], settings["lambda_tv"], settings["learning_rate"],
        settings["momentum"], shape=shape, samples=samples, stages=settings["stages"],
        alpha=settings["alpha"], beta=settings["beta"],
        callback_every=int(callback_every) if callback is not None else 0,
        parameterization=parameterization, transform=transforms, optimizer=optimizer)
    if callback is None:
        images, out_codes, history = call()
    else:
        with _callback_lock:
            _active_callback[0] = callback
            try:
                images, out_codes, history = call()
                jax.block_until_ready(images)
                jax.effects_barrier()  # every progress report delivered before we return
            finally:
                _active_callback[0] = None

    if not batched:
        images, out_codes = images[0], out_codes[0]
        history = {k: v[0] for k, v in history.items()}
    settings = dict(settings, samples=samples, shape=shape, sigma=sigma)
    return InversionResult(images=images, codes=out_codes, history=history, settings=settings)
