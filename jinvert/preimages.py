"""Natural pre-images beyond inversion: activation maximisation and
caricatures (Mahendran & Vedaldi, IJCV 2016), on the engine of
:func:`jinvert.minimize`.

The three visualisations differ only in the data term of the energy
(:mod:`jinvert.terms`): inversion matches a code, activation maximisation
raises ⟨Φ(x), W⟩ for weights W over the code (a neuron, a channel, a class
logit), a caricature raises ⟨Φ(x), Φ0⟩ for the code Φ0 of a photo, so that
what Φ detects in the photo is exaggerated. :func:`maximize` is
:func:`jinvert.minimize` with the IJCV recipe's settings and a faint random
start;
:func:`caricature` is :func:`maximize` of :func:`jinvert.terms.caricature`
started from the photo.
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
import numpy as np

from jinvert import images as im
from jinvert import terms
from jinvert.config import Config
from jinvert.engine import InversionResult, Start, minimize
from jinvert.recipes import recipe

Array = jax.Array


def maximize(rep, objective, *, key, shape=None, samples: int = 1,
             config: Config | None = None, start: Start | None = None,
             **options) -> InversionResult:
    """Images that minimise ``objective + regularisers``: activation
    maximisation (IJCV 2016), :func:`jinvert.minimize` with the IJCV
    recipe's settings and a faint random start.

    Args:
      rep: a :class:`jinvert.Representation`.
      objective: a data term of :mod:`jinvert.terms` over one code
        (``activation(W, Z)``, ``caricature(Φ0)``, ``inversion(Φ0)``, or a
        composition ``a + 0.5 * b``), or a list of B such terms built alike
        (a batch: B problems optimised together).
      key: a ``jax.random`` key (same key, same images).
      shape: ``(H, W)`` or ``(H, W, C)``; default ``rep.input_size``.
      samples: images per objective from independent random starts (vmapped).
      config: a :class:`jinvert.Config` for the regularisers and the schedule;
        default :func:`maximize_config` (the IJCV recipe: bounded range, V²,
        jitter, Adam), sized to ``shape`` unless its ``sigma`` is set.
      start: where each sample starts (:class:`jinvert.Start`); default
        ``Start(noise=0.1)``: faint noise (1 is the paper's start, whose
        noise the maximisation does not remove in a few hundred steps);
        ``Start(init=x, noise=...)`` from an input-space image ``(H, W, C)``
        (or one per objective, ``(B, H, W, C)``).
      **options: ``optimizer``, ``parameterization``, ``transforms``,
        ``loop``, as for :func:`jinvert.minimize`.

    Returns:
      :class:`jinvert.InversionResult`: ``images`` ``(samples, H, W, C)`` in
      the input space (``(B, samples, ...)`` for a list), their ``codes``,
      ``history`` of every term (``"data"`` is the objective's value) and
      the sized ``config``.

    Raises:
      ValueError: as :func:`jinvert.minimize`.
    """
    if config is None:
        config = maximize_config(rep)
    if start is None:
        start = Start(noise=MAXIMIZE_START_NOISE)
    return minimize(rep, objective, key=key, shape=shape, samples=samples, config=config,
                    start=start, **options)


#: The norm of :func:`maximize`'s random start in u = x/σ (the paper's is 1).
MAXIMIZE_START_NOISE = 0.1


#: Adam's first learning rate of :func:`maximize_config` (u = x/σ per step):
#: 1e-3, the IJCV recipe's for inversion, left EfficientNet-Lite0's class
#: maxima full of high-frequency patterns in 80 steps; 1e-4 did not.
MAXIMIZE_LEARNING_RATE = 1e-4


def maximize_config(rep, *, data_weight: float = 1.0) -> Config:
    """The default settings of :func:`maximize`: the IJCV recipe
    (:func:`jinvert.recipe`) with data weight C = ``data_weight`` (the
    data term −1 at a natural photo's level outweighs the priors of a
    natural photo, each about 1/C) and Adam at a constant
    :data:`MAXIMIZE_LEARNING_RATE` for the representation's number of
    iterations (400 for EfficientNet-Lite0; ``.with_iterations(N)``)."""
    config = recipe(rep, "ijcv", data_weight=data_weight)
    # One stage at a constant rate: with the inversion schedule's tenfold
    # drops a short run would spend most of its steps barely moving.
    return config.replace(learning_rate=MAXIMIZE_LEARNING_RATE, stages=(config.iterations,))


#: C of a caricature's default settings. The IJCV regularisers of a natural
#: photo are several times its data term (−1) at C = 1 (EfficientNet-Lite0
#: block4, astronaut: V² 4.3, bounded range 1.4), so a caricature started
#: from the photo would mostly smooth it; C = 10 lets the data term lead.
CARICATURE_DATA_WEIGHT = 10.0


def caricature(rep, image, *, key, mask=None, samples: int = 1, config: Config | None = None,
               from_image: bool = True, **options) -> InversionResult:
    """A caricature of ``image``: the patterns ``rep`` detects in it,
    exaggerated (:func:`jinvert.terms.caricature`, −⟨Φ(x), Φ0⟩ / ||Φ0||²).

    Args:
      rep: a :class:`jinvert.Representation`.
      image: the photo in rep's input space ``(H, W, C)`` (``rep.preprocess``).
      key: a ``jax.random`` key.
      mask: optional 0/1 mask over the code (exaggerate only part of it).
      samples: caricatures of the photo (they differ by their jitter, or by
        their noise when ``from_image`` is False).
      config: default ``maximize_config(rep, data_weight=CARICATURE_DATA_WEIGHT)``.
      from_image: start from the photo (default) or from faint random noise.
      **options: ``optimizer``, ``parameterization``, ``transforms``,
        ``loop`` as for :func:`jinvert.minimize`.

    Returns:
      as :func:`maximize`; ``history["data"]`` is −1 at the photo itself.
    """
    x0 = jnp.asarray(image, jnp.float32)
    if x0.ndim != 3:
        raise ValueError(f"image must be one input-space image (H, W, C), got shape "
                         f"{tuple(x0.shape)}")
    objective = terms.caricature(rep(x0), mask)
    if config is None:
        config = maximize_config(rep, data_weight=CARICATURE_DATA_WEIGHT)
    start = Start(init=x0, noise=0.0) if from_image else None
    return maximize(rep, objective, key=key, shape=x0.shape, samples=samples, config=config,
                    start=start, **options)


def activation_scale(rep, weights, photos=None, *, size=None) -> float:
    """Z for :func:`jinvert.terms.activation`: the largest |⟨Φ(x), W⟩| over
    natural photos ``x`` (so the data term is about −1 where natural photos
    excite W most; 1.0 when they give 0 everywhere).

    Args:
      rep: a :class:`jinvert.Representation`.
      weights: W, the shape of the code of an image of ``size``.
      photos: images in [0, 1] ``(H, W, 3)``, resized and cropped to
        ``size``; default the bundled astronaut and scikit-image's chelsea,
        coffee, rocket and camera.
      size: ``(H, W)``; default ``rep.input_size``, or 227 × 227 for
        representations of any size.

    Raises:
      ValueError: weights that do not have the code's shape.
    """
    if photos is None:
        import skimage.data

        photos = [im.load_image()] + [
            im.to_rgb(np.asarray(getattr(skimage.data, n)(), np.float32) / 255.0)
            for n in ("chelsea", "coffee", "rocket", "camera")]
    if size is None:
        size = tuple(rep.input_size) if rep.input_size is not None else (227, 227)
    size = tuple(int(s) for s in size)
    xs = jnp.stack([rep.preprocess(im.resize_and_crop(np.asarray(p, np.float32), size))
                    for p in photos])
    w = jnp.asarray(weights, jnp.float32)
    codes = jax.jit(rep.batch_apply)(xs)
    if tuple(codes.shape[1:]) != tuple(w.shape):
        raise ValueError(f"weights of shape {tuple(w.shape)} do not fit codes of shape "
                         f"{tuple(codes.shape[1:])}")
    values = jnp.sum(codes * w, axis=tuple(range(1, codes.ndim)))
    z = float(jnp.max(jnp.abs(values)))
    return z if z > 0 else 1.0
