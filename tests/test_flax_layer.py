"""Bring your own network: a layer of a small flax model, by capture and by
sow, inverted with jinvert.invert."""

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinvert


class Small(nn.Module):
    """conv(8, 3×3, stride 2) → relu → conv(8, 3×3) → relu, sowing the last."""

    @nn.compact
    def __call__(self, x):
        x = nn.relu(nn.Conv(8, (3, 3), strides=(2, 2))(x))
        x = nn.relu(nn.Conv(8, (3, 3))(x))
        self.sow("intermediates", "features", x)
        return jnp.mean(x, axis=(1, 2))


MODEL = Small()
VARIABLES = MODEL.init(jax.random.PRNGKey(0), jnp.zeros((1, 16, 16, 3)))


def test_capture_and_sow_give_the_layer_outputs():
    x = jax.random.uniform(jax.random.PRNGKey(1), (16, 16, 3)) - 0.5
    conv0 = jinvert.flax_layer(MODEL, VARIABLES, "Conv_0", input_size=(16, 16))
    sown = jinvert.flax_layer(MODEL, VARIABLES, "features", input_size=(16, 16))
    # By hand, with the model's own parameters.
    k0 = VARIABLES["params"]["Conv_0"]
    expected = nn.Conv(8, (3, 3), strides=(2, 2)).apply({"params": k0}, x[None])[0]
    np.testing.assert_allclose(conv0(x), expected, rtol=1e-5, atol=1e-6)
    assert sown(x).shape == (8, 8, 8) and float(jnp.min(sown(x))) >= 0.0
    assert conv0(jnp.stack([x, x])).shape == (2, 8, 8, 8)
    with pytest.raises(ValueError, match="Conv_0"):
        jinvert.flax_layer(MODEL, VARIABLES, "Conv_9", input_size=(16, 16))


def test_invert_a_flax_layer():
    rep = jinvert.flax_layer(MODEL, VARIABLES, "Conv_1", input_size=(16, 16))
    photo = jinvert.images.resize_and_crop(jinvert.images.load_image(), (16, 16))
    x0 = rep.preprocess(photo)
    code = rep(x0)
    r = jinvert.invert(rep, code, key=jax.random.PRNGKey(0), samples=2,
                       config=rep.defaults.replace(lambda_tv=0.5).with_iterations(80))
    assert r.images.shape == (2, 16, 16, 3)
    data = r.history["data"]
    assert np.all(np.isfinite(data)) and np.all(data[:, -1] < 0.5 * data[:, 0])
    np.testing.assert_allclose(r.codes[0], rep(r.images[0]), rtol=1e-4, atol=1e-4)
