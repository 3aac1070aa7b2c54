"""`invert`: reconstruct images from a code (paper Sect. 2.1, eq. 3).

Inversion is :func:`jinvert.minimize` of the inversion data term
||M ⊙ (Φ(σu) − Φ0)||² / ||M ⊙ Φ0||² (:func:`jinvert.terms.inversion`) with
the paper's regularisers and optimiser (``rep.defaults``). This module adds
what is particular to it: checking the codes (one, or a batch kept where it
lives: on a device, or sharded), their mask, and starts from a learned
decoder's output.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
import optax

from jinvert import terms
from jinvert.config import Config
from jinvert.engine import InversionResult, Loop, Start, image_shape, minimize
from jinvert.objective import reference_norm2

Array = jax.Array

def _check_codes(rep, code, shape, mask) -> tuple[terms.Inversion, bool]:
    """The inversion data term's arrays for the codes ``(B, *code)`` (codes,
    0/1 float32 mask, ||M ⊙ Φ0||²; device or sharded arrays keep their
    placement) and whether the code was a batch, or ValueError."""
    if not isinstance(code, jax.Array):
        code = np.asarray(code)
    if not np.issubdtype(code.dtype, np.number):
        raise ValueError(f"the code must be a numeric array, got dtype {code.dtype}")
    expected = tuple(jax.eval_shape(rep.apply,
                                    jax.ShapeDtypeStruct(shape, jnp.float32)).shape)
    if tuple(code.shape) == expected:
        batched = False
    elif code.ndim == len(expected) + 1 and tuple(code.shape[1:]) == expected:
        batched = True
    else:
        raise ValueError(f"{rep.name} gives codes of shape {expected} for images of shape "
                         f"{shape}; got a code of shape {tuple(code.shape)} (wrong image size?)")
    if batched and code.shape[0] == 0:
        raise ValueError("got an empty batch of codes")
    if mask is not None:
        if not isinstance(mask, jax.Array):
            mask = np.asarray(mask)
        if not (tuple(mask.shape) == expected
                or (batched and tuple(mask.shape) == tuple(code.shape))):
            raise ValueError(f"the mask must have the shape of one code {expected}"
                             + (f" or of the batch {(code.shape[0], *expected)}" if batched
                                else "") + f", got {tuple(mask.shape)}")
    data, finite, peak = _data_term_arrays(code, mask, batched=batched)
    if not bool(finite):
        raise ValueError("the code has NaN or infinite values; compute it from a finite image")
    if np.any(np.asarray(peak) == 0):
        if mask is None:
            raise ValueError("the code is all zeros (a blank image?); nothing to invert")
        raise ValueError("the code is all zeros where the mask selects it; nothing to invert")
    return data, batched


@functools.partial(jax.jit, static_argnames="batched")
def _data_term_arrays(code, mask, *, batched: bool):
    """One compiled program (issue 28: op by op, these checks compiled a
    dozen small programs on every run): the data term's batched arrays,
    whether every code value is finite, and each code's largest selected
    magnitude ``(B,)``."""
    codes = code.astype(jnp.float32)
    codes = codes if batched else codes[None]
    if mask is None:
        m = jnp.ones_like(codes)
    else:
        m = (jnp.broadcast_to(mask, codes.shape) != 0).astype(jnp.float32)
    peak = jnp.max(jnp.abs(codes * m).reshape(codes.shape[0], -1), axis=1)
    data = terms.Inversion(codes, m, reference_norm2(codes, m))
    return data, jnp.all(jnp.isfinite(codes)), peak


def invert(rep, code, *, key, shape=None, samples: int = 1, mask=None,
           config: Config | None = None, optimizer: optax.GradientTransformation | None = None,
           parameterization=None, transforms=None, start: Start | None = None,
           loop: Loop | None = None) -> InversionResult:
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
      start: where each sample starts (:class:`jinvert.Start`): default
        the paper's unit-norm noise; beyond the paper a warm start,
        ``Start(init=x)`` with images x in the input space (one for every
        code, one per code, or one per sample) or a
        :class:`jinvert.decoders.Decoder` (or its file's path), whose
        output for each code is used; sample s then starts from
        u = x/σ + 0.1·n (``Start(init, noise=...)`` to change the 0.1), n
        the noise the paper's start would have drawn for it. Pixels
        parameterisation only.
      loop: progress and iterations per compiled call (:class:`jinvert.Loop`).

    Returns:
      :class:`InversionResult` with images in the input space (x = σu),
      ``(samples, H, W, C)`` or ``(B, samples, H, W, C)``.

    Raises:
      ValueError: a code of the wrong shape, with NaN/inf, or all zeros; a
        bad ``samples``, ``shape``, ``mask``, ``key``, ``config`` or
        ``optimizer``.

    Warns:
      :class:`jinvert.DivergenceWarning`: some samples diverged (NaN images).
    """
    shape = image_shape(rep, shape)
    data, batched = _check_codes(rep, code, shape, mask)
    start = Start() if start is None else start
    if isinstance(start, Start) and start.init is not None:
        from jinvert.decoders import initial_images

        # A decoder's output for each code (images pass through).
        start = Start(initial_images(start.init, rep, data.target, shape), start.noise)
    return minimize(rep, terms.Batch(data) if batched else _single(data), key=key, shape=shape,
                    samples=samples, config=config, optimizer=optimizer,
                    parameterization=parameterization, transforms=transforms, start=start,
                    loop=loop)


@jax.jit
def _single(data: terms.Inversion) -> terms.Inversion:
    """The one code of a batch of one, without its batch axis."""
    return jax.tree_util.tree_map(lambda a: a[0], data)
