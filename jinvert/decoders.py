"""A learned feed-forward inverter: a small convolutional decoder code → image.

Beyond the paper. Mahendran & Vedaldi's Table 1 compares their optimisation
with HOGgle (Vondrick et al.), a *learned* HOG inverter: one pass, no
optimisation, far worse error. Dosovitskiy & Brox (2016) later trained
convolutional decoders for CNN codes. A :class:`Decoder` here is such a
network for one representation (HOG, HOGb, DSIFT…): fully convolutional, so
one trained at 128 × 128 crops decodes a code of any size. It gives

* an instant reconstruction, ``decoder(codes, shape)``, and
* a starting point for the paper's optimisation:
  ``jinvert.invert(rep, code, start=jinvert.Start(decoder), ...)`` (see ``start`` there).

This module owns the decoders shipped with jinvert (:func:`bundled`) and
what ``invert``'s ``init`` stands for (:func:`initial_images`), and is where
users reach decoders: :class:`Decoder` and :func:`load` (defined with the
network and its file format in :mod:`jinvert.decoder_network`), :func:`train`
and :class:`TrainSettings` (defined in :mod:`jinvert.decoder_training`, with
``jinvert train-decoder``'s loss, step and checkpoints).
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp

from jinvert.decoder_network import Decoder, load
from jinvert.decoder_training import TrainSettings, train

__all__ = ["Decoder", "load", "train", "TrainSettings", "BUNDLED", "bundled", "initial_images"]

Array = jax.Array


#: Decoders shipped in ``jinvert/data``, by representation (see
#: :func:`bundled`).
BUNDLED = {"hog": "hog-decoder.npz"}


def bundled(rep_name: str) -> Decoder:
    """The decoder shipped with jinvert for ``rep_name`` (``"hog"``).

    Trained here by ``jinvert train-decoder`` with its defaults
    (:class:`TrainSettings`) on 42 tiles of 12 photos that scikit-image
    ships under CC0 or in the public domain (``benchmarks/cc0_photos.py``
    writes them and lists each licence), not on ImageNet photos. Its header
    (``decoder.training``) records the settings; docs/results.md gives its
    error on held-out ImageNet photos (54 % alone, HOGgle's 66 %).

    Raises:
      ValueError: no decoder ships for ``rep_name``.
    """
    if rep_name not in BUNDLED:
        raise ValueError(f"no decoder ships for {rep_name!r} (only for "
                         f"{', '.join(BUNDLED)}); train one with 'jinvert train-decoder "
                         f"--rep {rep_name}'")
    return load(os.path.join(os.path.dirname(__file__), "data", BUNDLED[rep_name]))


def initial_images(init, rep, codes: Array, shape) -> Array:
    """What :func:`jinvert.invert`'s ``init`` stands for, as input-space images.

    Args:
      init: a :class:`Decoder` (or the path of a decoder file): its output
        for each code; or an array ``(H, W, C)``, ``(B, H, W, C)`` or
        ``(B, S, H, W, C)`` of images, returned as is.
      rep: the representation (a decoder must be for it).
      codes: ``(B, *code_shape)``, or ``None`` where there are none (then a
        decoder raises ValueError).
      shape: ``(H, W, C)``.

    Returns:
      float32 ``(H, W, C)``, ``(B, H, W, C)`` or ``(B, S, H, W, C)``.
    """
    if isinstance(init, (str, os.PathLike)):
        init = load(init)
    if isinstance(init, Decoder):
        if codes is None:
            raise ValueError("a decoder starts from codes: use it with jinvert.invert, or "
                             "pass its images as init")
        init.check(rep)
        return init(codes, shape)
    return jnp.asarray(init, jnp.float32)
