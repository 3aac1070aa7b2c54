"""Image parameterisations: what the optimiser of :func:`jinvert.invert` moves.

The paper optimises the pixels of the normalised image u = x/σ directly. A
parameterisation replaces those pixels by parameters p and a fixed,
differentiable map ``render(p) -> u``; the objective (data term and priors)
is evaluated on the rendered u, and the optimiser steps in p. Changing p
changes the geometry of gradient descent (which directions are cheap), and
for a generator network it restricts u to what the network renders easily —
an image prior of its own.

Each parameterisation is a frozen (hashable, compared by value) dataclass
with

* ``init(key, shape) -> params``: a pytree of float32 arrays for one image
  of ``shape = (H, W, C)``, random through ``key``, rendering to an image of
  unit Euclidean norm (the paper's start: noise with ||u|| = 1);
* ``render(params, shape) -> u``: the image ``(H, W, C)`` float32 in the
  normalised space u = x/σ. ``shape`` is passed because it cannot always be
  read back from the parameters (an rfft2 of width W has W//2 + 1 columns
  for two values of W).

:func:`init_batch` draws the parameters of a ``(B, S)`` batch of images.
Being hashable by value, two calls ``fourier()`` with the same arguments
share one compiled program in :func:`jinvert.invert`.
"""

from __future__ import annotations

import dataclasses
import math

import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array


def initial_noise(key, shape) -> Array:
    """The paper's starting point: Gaussian noise with unit Euclidean norm per image.

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

#: Colour decorrelation for 3-channel images: M = U·√S of the SVD
#: C = U·S·Uᵀ of the RGB covariance of pixels in [0, 1], divided by the
#: largest column norm of U·√S (so no decorrelated channel is amplified).
#: Our numbers: computed from the four colour photos bundled with
#: scikit-image 0.26 (astronaut, coffee, chelsea, rocket; 1.06 M pixels),
#: whose covariance is
#: [[.0854 .0547 .0316] [.0547 .0536 .0452] [.0316 .0452 .0502]]
#: with eigenvalues .1536, .0341, .0015. Rendering u_rgb = M·u_dec makes the
#: optimised channels uncorrelated-ish luminance / two opponent colours, with
#: luminance weighted most, as in natural photos.
COLOUR_DECORRELATION = np.array([[-0.6757, 0.3138, 0.0315],
                                 [-0.5773, -0.0994, -0.0785],
                                 [-0.4585, -0.3372, 0.0524]], np.float32)


def _norm(tree) -> Array:
    return jnp.sqrt(sum(jnp.sum(leaf ** 2) for leaf in jax.tree_util.tree_leaves(tree)))


@dataclasses.dataclass(frozen=True)
class Pixels:
    """The paper's parameterisation: the parameters are u itself.

    ``init`` is :func:`initial_noise` (Gaussian noise of
    unit norm); ``render`` is the identity.
    """

    def init(self, key, shape) -> Array:
        """``(H, W, C)`` unit-norm Gaussian noise."""
        return initial_noise(key, tuple(shape))

    def init_batch(self, key, batch, shape) -> Array:
        """``(*batch, H, W, C)``: one draw for the whole batch, exactly the
        noise the paper path of :func:`jinvert.invert` always drew (so passing
        ``pixels()`` changes no bit of the result)."""
        return initial_noise(key, tuple(batch) + tuple(shape))

    def render(self, params, shape) -> Array:
        """The identity: ``(H, W, C)`` → the same array."""
        return params


@dataclasses.dataclass(frozen=True)
class Fourier:
    """A frequency-scaled (and for RGB colour-decorrelated) Fourier basis.

    Parameters: real and imaginary parts of the ``rfft2`` of the image,
    ``(2, H, W//2 + 1, C)`` float32. Rendering multiplies coefficient f by
    s(f) = 1/max(|f|, 1/max(H, W))^decay (|f| in cycles per pixel), scaled so
    that the mean of s² over the spectrum is 1, and applies the orthonormal
    inverse ``irfft2``; for C = 3 and ``decorrelate`` it then mixes the
    channels by :data:`COLOUR_DECORRELATION`. Gradient descent on the
    coefficients is thus preconditioned by s², favouring low frequencies (the
    1/f amplitude spectrum of natural images), instead of by the identity.

    Attributes:
      decorrelate: mix colour channels by the fixed decorrelation (C = 3
        only; grey images have no colour step).
      decay: the exponent of the frequency scaling; 0 gives a plain
        orthonormal Fourier basis (same geometry as pixels).
    """

    decorrelate: bool = True
    decay: float = 1.0

    def scale(self, shape) -> np.ndarray:
        """s(f) of every rfft2 coefficient, ``(H, W//2 + 1)`` float32, with
        mean(s²) = 1 (so a unit isotropic step in the coefficients has on
        average the energy of a unit step in pixels)."""
        h, w = int(shape[0]), int(shape[1])
        fy = np.fft.fftfreq(h)[:, None]
        fx = np.fft.rfftfreq(w)[None, :]
        f = np.sqrt(fx ** 2 + fy ** 2)
        s = 1.0 / np.maximum(f, 1.0 / max(h, w)) ** float(self.decay)
        return (s / np.sqrt(np.mean(s ** 2))).astype(np.float32)

    def init(self, key, shape) -> Array:
        """``(2, H, W//2 + 1, C)`` Gaussian coefficients, rescaled so that
        the rendered image has unit norm."""
        h, w, c = (int(s) for s in shape)
        coeffs = jax.random.normal(key, (2, h, w // 2 + 1, c), jnp.float32)
        # render is linear, so dividing by the rendered norm gives norm 1.
        return coeffs / _norm(self.render(coeffs, shape))

    def render(self, params, shape) -> Array:
        """Coefficients ``(2, H, W//2 + 1, C)`` → real image ``(H, W, C)``."""
        h, w, c = (int(s) for s in shape)
        s = jnp.asarray(self.scale(shape))[..., None]
        spectrum = jax.lax.complex(params[0] * s, params[1] * s)
        image = jnp.fft.irfft2(spectrum, s=(h, w), axes=(0, 1), norm="ortho")
        if self.decorrelate and c == 3:
            image = image @ jnp.asarray(COLOUR_DECORRELATION).T
        return image.astype(jnp.float32)


@dataclasses.dataclass(frozen=True)
class DeepImagePrior:
    """A small randomly initialised conv generator (Ulyanov et al., 2018).

    Parameters: ``{"z": fixed input code (h, w, channels), "layers": [(W, b)
    for each of `depth` blocks], "out": (W, b)}``. A block doubles the size
    (bilinear), then applies a 3×3 convolution and a leaky ReLU (slope 0.2);
    a final 1×1 convolution gives C channels, cropped to ``(H, W)``.
    h = ⌈H / 2^depth⌉. ``z`` is U(0, 0.1) noise held fixed (render stops its
    gradient, so any optimiser leaves it in place); only the weights move. The
    output layer is scaled at init so that the rendered image has unit norm.

    Cost per iteration ≈ 2·9·channels²·(H·W)(1 + 1/4 + 1/16) multiply-adds
    forward; channels = 16, depth = 3 at 227×227 is about 0.25 GFLOP.

    Attributes:
      channels: feature channels of every block.
      depth: number of upsampling blocks.
    """

    channels: int = 16
    depth: int = 3

    def init(self, key, shape) -> dict:
        """Random weights (He-normal convolutions, zero biases) and code."""
        h, w, c = (int(s) for s in shape)
        k = int(self.channels)
        factor = 2 ** int(self.depth)
        keys = jax.random.split(key, int(self.depth) + 2)
        z = 0.1 * jax.random.uniform(keys[0], (math.ceil(h / factor), math.ceil(w / factor), k),
                                     jnp.float32)
        layers = []
        for i in range(int(self.depth)):
            weight = jax.random.normal(keys[i + 1], (3, 3, k, k), jnp.float32)
            layers.append((weight * np.sqrt(2.0 / (9 * k)), jnp.zeros((k,), jnp.float32)))
        out = jax.random.normal(keys[-1], (1, 1, k, c), jnp.float32) * np.sqrt(1.0 / k)
        params = {"z": z, "layers": layers, "out": (out, jnp.zeros((c,), jnp.float32))}
        # The output layer is linear and its bias zero: scaling its weight
        # scales the image, so this gives exactly unit norm.
        norm = _norm(self.render(params, shape))
        params["out"] = (out / norm, params["out"][1])
        return params

    def render(self, params, shape) -> Array:
        """Weights → image ``(H, W, C)`` float32."""
        h, w, c = (int(s) for s in shape)
        x = jax.lax.stop_gradient(params["z"])
        for weight, bias in params["layers"]:
            x = jax.image.resize(x, (2 * x.shape[0], 2 * x.shape[1], x.shape[2]), "bilinear")
            x = _conv(x, weight) + bias
            x = jax.nn.leaky_relu(x, 0.2)
        weight, bias = params["out"]
        return (_conv(x, weight) + bias)[:h, :w, :]


def _conv(x: Array, weight: Array) -> Array:
    """SAME convolution (cross-correlation) of one ``(H, W, Cin)`` image by
    ``(kh, kw, Cin, Cout)`` (odd kh, kw) → ``(H, W, Cout)``.

    Written as shifted copies and one matrix product rather than
    ``lax.conv``: inside a ``lax.scan`` (as the optimiser's loop once was)
    XLA:CPU computed the weight gradient of a ``lax.conv`` about 10× slower
    than outside a loop (0.5 s for one 232×232×16 layer on 2 cores), while a
    matmul's gradient stays fast in both.
    """
    kh, kw, cin, cout = weight.shape
    h, w = x.shape[0], x.shape[1]
    padded = jnp.pad(x, ((kh // 2, kh // 2), (kw // 2, kw // 2), (0, 0)))
    patches = jnp.concatenate([padded[i:i + h, j:j + w, :] for i in range(kh)
                               for j in range(kw)], axis=-1)       # (H, W, kh·kw·Cin)
    return patches @ weight.reshape(kh * kw * cin, cout)


def pixels() -> Pixels:
    """The paper's parameterisation (identity); see :class:`Pixels`."""
    return Pixels()


def fourier(decorrelate: bool = True, decay: float = 1.0) -> Fourier:
    """A decorrelated-colour, 1/f^decay-scaled Fourier basis; see :class:`Fourier`."""
    return Fourier(decorrelate=bool(decorrelate), decay=float(decay))


def deep_image_prior(channels: int = 16, depth: int = 3) -> DeepImagePrior:
    """A small conv generator whose weights are optimised; see :class:`DeepImagePrior`."""
    if int(channels) < 1 or int(depth) < 0:
        raise ValueError(f"need channels >= 1 and depth >= 0, got {channels}, {depth}")
    return DeepImagePrior(channels=int(channels), depth=int(depth))


def init_batch(parameterization, key, batch, shape):
    """Parameters of ``batch = (B, S)`` images: a pytree whose leaves have the
    leading axes ``batch``.

    Uses the parameterisation's own ``init_batch`` when it has one (pixels:
    one noise draw, as the paper path), else vmaps ``init`` over
    ``prod(batch)`` keys split from ``key``.
    """
    batch = tuple(int(b) for b in batch)
    own = getattr(parameterization, "init_batch", None)
    if own is not None:
        return own(key, batch, shape)
    keys = jax.random.split(key, int(np.prod(batch)))
    params = jax.vmap(lambda k: parameterization.init(k, shape))(keys)
    return jax.tree_util.tree_map(lambda leaf: leaf.reshape(batch + leaf.shape[1:]), params)
