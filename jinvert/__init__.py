"""jinvert: understanding image representations by inverting them, in JAX.

Representations (each a :class:`Representation`): :func:`hog`, :func:`dsift`,
:func:`alexnet`, :func:`efficientnet_lite0`, any flax model's layer
(:func:`flax_layer`; NNX: :func:`nnx_layer`), an equinox model's
(:func:`equinox_layer`) and any JAX function of an image
(:func:`function_representation`). The engine: :func:`minimize` finds images
that minimise a data term of :mod:`jinvert.terms` plus regularisers, from a
:class:`Start`, in a :class:`Loop`; inversion (:func:`invert`) is its
specialisation to the paper's eq. 3, with its settings :class:`Config` and
the paper's optimiser :func:`paper_sgd` (an optax transformation,
:mod:`jinvert.optimizers`).
Beyond the paper: image parameterisations (:func:`pixels`, :func:`fourier`,
:func:`deep_image_prior`), transforms (:func:`jitter`, :func:`compose`), any
optax optimiser (``invert(..., optimizer=optax.adam(1e-3))``), :func:`ssim`
and a learned feed-forward decoder, also a warm start (:mod:`jinvert.decoders`,
``invert(..., start=Start(decoder))``).
Beyond the paper, its sequel's (IJCV 2016) natural pre-images on the same
engine: activation maximisation (:func:`maximize`), caricatures
(:func:`caricature`), the energy's terms (:mod:`jinvert.terms`) and the
IJCV recipe (:func:`recipe`). Error metric of the paper: :func:`reconstruction_error`. Pictures:
:func:`render_hog`. Masks over codes: :func:`central_mask`,
:func:`group_mask`. Every photo of a folder, resumable, over processes and
hosts: :func:`invert_folder`. A run whose samples diverge (NaN) warns with
a :class:`DivergenceWarning`. Compiled programs kept on disk between
sessions: :func:`compilation_cache.enable`.
"""

from jinvert import (compilation_cache, images, masks, metrics, objective, optimizers, terms,
                     weights)
from jinvert.config import Config
from jinvert.divergence import DivergenceWarning
from jinvert.energy import image_energy
from jinvert.engine import InversionResult, Loop, Start, minimize
from jinvert.flax_layer import flax_layer
from jinvert.model_layer import equinox_layer, function_representation, nnx_layer
from jinvert.hog_render import render_hog
from jinvert.masks import central_mask, group_mask
from jinvert.metrics import reconstruction_error, relative_error, ssim
from jinvert.inversion import invert
from jinvert.optimizers import paper_sgd
from jinvert.parameterizations import deep_image_prior, fourier, pixels
from jinvert.preimages import activation_scale, caricature, maximize
from jinvert.recipes import recipe
from jinvert.representation import Representation
from jinvert.representations.alexnet import alexnet
from jinvert.representations.dsift import dsift
from jinvert.representations.efficientnet import efficientnet_lite0
from jinvert.representations.hog import hog
from jinvert.transforms import compose, jitter

__version__ = "0.1.0"


def __getattr__(name):
    # jinvert.decoders imports flax (0.3 s): loaded on first use, so that a
    # command that needs no decoder starts that much sooner (issue 28).
    if name == "decoders":
        import importlib
        return importlib.import_module("jinvert.decoders")
    if name == "invert_folder":  # jinvert.folder runs on jinvert.experiments
        from jinvert.folder import invert_folder
        return invert_folder
    raise AttributeError(f"module 'jinvert' has no attribute {name!r}")

__all__ = [
    "Representation", "hog", "dsift", "alexnet", "efficientnet_lite0",
    "minimize", "Start", "Loop", "image_energy", "invert", "invert_folder", "InversionResult",
    "Config",
    "DivergenceWarning",
    "paper_sgd", "flax_layer",
    "nnx_layer", "equinox_layer", "function_representation", "reconstruction_error", "relative_error",
    "render_hog", "central_mask", "group_mask", "ssim",
    "pixels", "fourier", "deep_image_prior", "jitter", "compose",
    "maximize", "caricature", "activation_scale", "recipe",
    "compilation_cache", "decoders", "images", "masks", "metrics", "objective", "optimizers",
    "terms",
    "weights",
]
