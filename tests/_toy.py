"""A small stand-in representation for the engine's tests: zero-mean random
3×3 filters with stride 2 and a ReLU (a flat image has a zero code, as HOG)."""

import jax
import jax.numpy as jnp
import numpy as np

from jinvert.representation import Representation


# invert() converts σ and λ from the paper's 227×227×3 values to the image
# size; these paper-unit values give σ = 1200, λα = 2e3 at 16×16×1.
_R16 = 16 * 16 / (227 * 227 * 3)
PAPER_SIGMA_16 = 1200.0 / _R16 ** 0.5


def toy_rep(channels: int = 1, features: int = 6, seed: int = 0,
            sigma: float = PAPER_SIGMA_16,
            input_size=None, name: str = "toy") -> Representation:
    """Grey (or RGB) input space 255·g − 128; code (h, w, features)."""
    w = np.random.default_rng(seed).normal(size=(3, 3, channels, features)) / 3.0
    w -= w.mean(axis=(0, 1, 2), keepdims=True)
    w = jnp.asarray(w, jnp.float32)

    def apply(x):
        y = jax.lax.conv_general_dilated(x[None], w.astype(x.dtype), (2, 2), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))[0]
        return jax.nn.relu(y - 1e-3)  # exactly 0 on a flat image despite round-off

    def preprocess(image):
        image = jnp.asarray(image, jnp.float32)
        if channels == 1:
            if image.ndim == 3:
                image = image @ jnp.array([0.2989, 0.5870, 0.1140], jnp.float32)
            image = image[..., None]
        return 255.0 * image - 128.0

    def deprocess(x):
        x = jnp.clip((x + 128.0) / 255.0, 0.0, 1.0)
        return jnp.repeat(x, 3, axis=-1) if x.shape[-1] == 1 else x

    return Representation(name=name, description="toy conv+relu", apply=apply,
                          preprocess_fn=preprocess, deprocess_fn=deprocess,
                          channels=channels, input_size=input_size, sigma=sigma,
                          # λ balanced for ~16×16 images (paper, Sect. 2), in
                          # paper units (see _R16).
                          defaults=dict(lambda_alpha=2e3 / _R16 ** 2, lambda_tv=0.5))


def toy_image(shape=(16, 16, 1), seed: int = 1) -> np.ndarray:
    """A smooth random input-space image (values about ±128)."""
    rng = np.random.default_rng(seed)
    h, w, c = shape
    coarse = rng.uniform(-128, 127, size=(h // 4 + 1, w // 4 + 1, c))
    return np.kron(coarse, np.ones((4, 4, 1)))[:h, :w].astype(np.float32)
