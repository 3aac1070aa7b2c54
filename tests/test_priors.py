"""Beyond the paper: parameterisations, transforms, optimiser choice, SSIM.

Each option of :func:`jinvert.invert`: shapes, the key decides the result,
finite gradients (also at a zero image), the paper path unchanged."""

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from _toy import toy_image, toy_rep
from jinvert.config import Config
from jinvert.metrics import ssim
from jinvert import invert
from jinvert.parameterizations import (COLOUR_DECORRELATION, deep_image_prior, fourier,
                                       init_batch, pixels)
from jinvert.transforms import compose, jitter

REP = toy_rep()
X0 = toy_image((16, 16, 1))
CODE = np.asarray(REP.apply(jnp.asarray(X0)))
CONFIG = Config(learning_rate=0.004, stages=(15, 15), lambda_alpha=2e3, lambda_tv=0.5)
FAST = dict(shape=(16, 16), config=CONFIG)
# Reused objects: a transformation's update keys the compiled step.
ADAM = optax.adam(1e-3)
ADAM_DIP = optax.adam(1e-2)

PARAMETERIZATIONS = [pixels(), fourier(), fourier(decorrelate=False, decay=0.5),
                     deep_image_prior(channels=2, depth=1)]
OPTIONS = {
    "jitter": dict(transforms=jitter(2)),
    "fourier": dict(parameterization=fourier()),
    "adam": dict(optimizer=ADAM),
    "dip": dict(parameterization=deep_image_prior(channels=2, depth=1), optimizer=ADAM_DIP),
}


@pytest.mark.parametrize("param", PARAMETERIZATIONS, ids=repr)
@pytest.mark.parametrize("shape", [(16, 16, 1), (15, 17, 3)])
def test_parameterization_init_render(param, shape):
    # Jitted: eager dispatch of the small ops would dominate the test time.
    start = jax.jit(lambda key: param.render(param.init(key, shape), shape))
    a = start(jax.random.PRNGKey(0))
    b = start(jax.random.PRNGKey(0))
    c = start(jax.random.PRNGKey(1))
    assert a.shape == shape and a.dtype == jnp.float32
    assert not jnp.iscomplexobj(a)
    np.testing.assert_array_equal(a, b)
    assert float(jnp.abs(a - c).max()) > 1e-4
    # Every parameterisation starts where the paper does: unit norm.
    assert float(jnp.linalg.norm(a)) == pytest.approx(1.0, rel=1e-4)
    # The batch initialiser gives the leading axes.
    u = jax.jit(lambda key: jax.vmap(jax.vmap(lambda p: param.render(p, shape)))(
        init_batch(param, key, (2, 3), shape)))(jax.random.PRNGKey(0))
    assert u.shape == (2, 3) + shape
    assert float(jnp.abs(u[0, 0] - u[1, 2]).max()) > 1e-4


@pytest.mark.parametrize("param", PARAMETERIZATIONS, ids=repr)
def test_parameterization_gradients_finite(param):
    shape = (16, 16, 3)
    params = param.init(jax.random.PRNGKey(0), shape)
    loss = lambda p: jnp.sum(jnp.sin(param.render(p, shape) * 50.0))  # noqa: E731
    grads = jax.grad(loss)(params)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))
    assert sum(float(jnp.abs(g).sum()) for g in jax.tree_util.tree_leaves(grads)) > 0
    # At all-zero parameters (a zero image) too.
    zero = jax.tree_util.tree_map(jnp.zeros_like, params)
    grads = jax.grad(loss)(zero)
    assert all(np.all(np.isfinite(g)) for g in jax.tree_util.tree_leaves(grads))


def test_fourier_is_linear_real_and_scaled():
    shape = (12, 10, 3)
    f = fourier()
    p = f.init(jax.random.PRNGKey(0), shape)
    assert p.shape == (2, 12, 6, 3)
    u = f.render(p, shape)
    np.testing.assert_allclose(f.render(2 * p, shape), 2 * u, rtol=1e-5, atol=1e-6)
    # decay 0, no colour step: an orthonormal basis, so the real part of a
    # lone interior coefficient renders to an image of norm sqrt(2) (it and
    # its Hermitian mirror).
    plain = fourier(decorrelate=False, decay=0.0)
    q = jnp.zeros((2, 12, 6, 1)).at[0, 2, 2, 0].set(1.0)
    assert float(jnp.linalg.norm(plain.render(q, (12, 10, 1)))) == pytest.approx(
        np.sqrt(2), rel=1e-5)
    # Low frequencies are scaled up relative to high ones.
    s = f.scale(shape)
    assert s[0, 1] > s[6, 5] and np.mean(s ** 2) == pytest.approx(1.0, rel=1e-5)
    # Colour decorrelation: 3 channels mixed by the fixed matrix.
    nocolour = fourier(decorrelate=False).render(p, shape)
    np.testing.assert_allclose(u, nocolour @ COLOUR_DECORRELATION.T, rtol=1e-4, atol=1e-6)


def test_deep_image_prior_code_is_fixed():
    shape = (16, 16, 1)
    dip = deep_image_prior(channels=2, depth=1)
    params = dip.init(jax.random.PRNGKey(0), shape)
    grads = jax.grad(lambda p: jnp.sum(dip.render(p, shape) ** 2))(params)
    assert float(jnp.abs(grads["z"]).max()) == 0.0
    assert float(jnp.abs(grads["layers"][0][0]).max()) > 0.0


def test_jitter_and_compose():
    u = jnp.asarray(toy_image((16, 16, 1)))
    np.testing.assert_array_equal(jitter(0)(jax.random.PRNGKey(0), u), u)
    np.testing.assert_array_equal(compose()(jax.random.PRNGKey(0), u), u)
    shifted = [jitter(2)(jax.random.PRNGKey(k), u) for k in range(20)]
    np.testing.assert_array_equal(jitter(2)(jax.random.PRNGKey(3), u), shifted[3])
    # A cyclic shift keeps the values; across keys several shifts occur,
    # each one within ±2 pixels.
    valid = {jnp.roll(u, (dy, dx), (0, 1)).tobytes() for dy in range(-2, 3)
             for dx in range(-2, 3)}
    assert all(np.asarray(s).tobytes() in valid for s in shifted)
    assert len({np.asarray(s).tobytes() for s in shifted}) > 3
    both = compose(jitter(1), jitter(1))(jax.random.PRNGKey(0), u)
    assert both.shape == u.shape
    with pytest.raises(ValueError):
        jitter(-1)


def _paper_sgd_by_hand(key, samples):
    """The paper's method on the toy problem, written out from its definition
    (DESIGN.md, eq. 3 and the reference code's optimiser), sharing nothing
    with the engine but the toy representation: ``(samples, 16, 16, 1)``
    input-space images.

    Start: Gaussian noise of unit norm per image, u = x/σ, drawn as one
    ``(1, samples, 16, 16, 1)`` array from ``key`` (the paper path's draw
    for one code). σ and the λ are the paper-size ones converted to 16×16×1
    values (r = n/(227·227·3): σ·√r, λα·r^(α/2−1), λV·r^(β/2−1)). Energy:
    ||Φ(σu) − Φ0||²/||Φ0||² + λα Σ|u|^α + λV Σ (dx² + dy²)^(β/2), last
    row/column replicated. Optimiser: v ← μv − lr·∇E, u ← u + v, v = 0 and
    lr divided by 10 at each stage."""
    shape = (16, 16, 1)
    r = np.prod(shape) / (227 * 227 * 3)
    sigma = REP.sigma * r ** 0.5
    l_alpha = CONFIG.lambda_alpha * r ** (CONFIG.alpha / 2 - 1)
    l_tv = CONFIG.lambda_tv * r ** (CONFIG.beta / 2 - 1)
    code = jnp.asarray(CODE)

    def energy(u):  # one image (16, 16, 1)
        data = jnp.sum((REP.apply(sigma * u) - code) ** 2) / jnp.sum(code ** 2)
        dx = jnp.concatenate([u[:, 1:], u[:, -1:]], axis=1) - u
        dy = jnp.concatenate([u[1:], u[-1:]], axis=0) - u
        return (data + l_alpha * jnp.sum(jnp.abs(u) ** CONFIG.alpha)
                + l_tv * jnp.sum((dx ** 2 + dy ** 2) ** (CONFIG.beta / 2)))

    grad = jax.jit(jax.vmap(jax.grad(energy)))
    noise = jax.random.normal(key, (1, samples) + shape, jnp.float32)[0]
    u = noise / jnp.sqrt(jnp.sum(noise ** 2, axis=(1, 2, 3), keepdims=True))
    for k, n in enumerate(CONFIG.stages):
        lr, v = CONFIG.learning_rate * 0.1 ** k, jnp.zeros_like(u)
        for _ in range(n):
            v = CONFIG.momentum * v - lr * grad(u)
            u = u + v
    return np.asarray(sigma * u)


def test_default_path_unchanged_with_explicit_pixels():
    """Left at None, and with pixels() and the paper's optimiser passed
    explicitly, invert runs the paper's method: the images of a loop written
    out by hand (a scale in pixels()' start or render, or a change to the
    paper's SGD, fails here)."""
    kw = dict(key=jax.random.PRNGKey(5), samples=2, **FAST)
    a = invert(REP, CODE, **kw)
    b = invert(REP, CODE, parameterization=pixels(), **kw)
    c = invert(REP, CODE, parameterization=pixels(), transforms=None,
               optimizer=CONFIG.optimizer(), **kw)
    expected = _paper_sgd_by_hand(jax.random.PRNGKey(5), 2)
    # Float32 arithmetic in another order: agreement to rounding, far below
    # the iterates' own movement (the images span about ±100 input units).
    assert np.ptp(expected) > 50
    for result in (a, b, c):
        np.testing.assert_allclose(np.asarray(result.images), expected, rtol=0,
                                   atol=1e-5 * np.abs(expected).max())
    # The three calls are one program: the same bits, the same history.
    for other in (b, c):
        np.testing.assert_array_equal(a.images, other.images)
        for k in a.history:
            np.testing.assert_array_equal(a.history[k], other.history[k])


@pytest.mark.parametrize("name", list(OPTIONS))
def test_option_shapes_keys_finite(name):
    kw = dict(FAST, **OPTIONS[name])
    a = invert(REP, CODE, key=jax.random.PRNGKey(7), samples=2, **kw)
    b = invert(REP, CODE, key=jax.random.PRNGKey(7), samples=2, **kw)
    c = invert(REP, CODE, key=jax.random.PRNGKey(8), samples=2, **kw)
    assert a.images.shape == (2, 16, 16, 1) and a.codes.shape == (2,) + CODE.shape
    assert all(v.shape == (2, 30) for v in a.history.values())
    np.testing.assert_array_equal(a.images, b.images)
    assert np.abs(np.asarray(a.images - c.images)).max() > 1e-2
    assert np.all(np.isfinite(np.asarray(a.images)))
    total = np.asarray(a.history["total"])
    assert np.all(np.isfinite(total)) and np.all(total[:, -1] < total[:, 0])
    if name not in ("fourier", "dip"):
        return  # the layout is the parameterisation's business; spare compiles
    # A batch of codes keeps the (B, samples) layout.
    other = np.asarray(REP.apply(jnp.asarray(toy_image((16, 16, 1), seed=9))))
    r = invert(REP, np.stack([CODE, other]), key=jax.random.PRNGKey(0), samples=2, **kw)
    assert r.images.shape == (2, 2, 16, 16, 1)


def test_jitter_changes_the_result_and_zero_jitter_does_not():
    kw = dict(key=jax.random.PRNGKey(5), **FAST)
    a = invert(REP, CODE, **kw)
    b = invert(REP, CODE, transforms=jitter(0), **kw)
    c = invert(REP, CODE, transforms=jitter(2), **kw)
    np.testing.assert_allclose(a.images, b.images, rtol=1e-5, atol=1e-3)
    assert np.abs(np.asarray(a.images - c.images)).max() > 1.0


def test_user_optax_transformation_is_used():
    kw = dict(key=jax.random.PRNGKey(5), **FAST)
    still = invert(REP, CODE, optimizer=optax.sgd(0.0), **kw)
    start = invert(REP, CODE, **dict(kw, config=CONFIG.replace(stages=(1,))),
                   optimizer=optax.sgd(0.0))
    # lr 0: the image stays the initial noise, whatever the stages say.
    np.testing.assert_array_equal(still.images, start.images)
    assert float(np.ptp(np.asarray(still.history["total"]))) == 0.0
    moved = invert(REP, CODE, optimizer=optax.sgd(0.004, momentum=0.9), **kw)
    assert np.abs(np.asarray(moved.images - still.images)).max() > 1.0
    with pytest.raises(ValueError):
        invert(REP, CODE, optimizer="rmsprop", **kw)


def test_ssim_matches_skimage_and_simple_cases():
    rng = np.random.default_rng(0)
    a = rng.random((24, 30)).astype(np.float32)
    assert float(ssim(a, a)) == pytest.approx(1.0, abs=1e-6)
    # Constant images: SSIM = (2μaμb + C1)/(μa² + μb² + C1), by hand.
    c1 = 0.01 ** 2
    expected = (2 * 0.2 * 0.6 + c1) / (0.2 ** 2 + 0.6 ** 2 + c1)
    assert float(ssim(np.full((16, 16), 0.2), np.full((16, 16), 0.6))) == pytest.approx(
        expected, rel=1e-5)
    b = np.clip(a + 0.2 * rng.standard_normal(a.shape), 0, 1).astype(np.float32)
    metrics = pytest.importorskip("skimage.metrics")
    ref = metrics.structural_similarity(a, b, gaussian_weights=True, sigma=1.5,
                                        use_sample_covariance=False, data_range=1.0)
    assert float(ssim(a, b)) == pytest.approx(ref, abs=1e-5)
    a3, b3 = rng.random((20, 20, 3)), rng.random((20, 20, 3))
    ref3 = metrics.structural_similarity(a3, b3, gaussian_weights=True, sigma=1.5,
                                         use_sample_covariance=False, data_range=1.0,
                                         channel_axis=-1)
    assert float(ssim(a3, b3)) == pytest.approx(ref3, abs=1e-5)
    assert np.all(np.isfinite(jax.grad(lambda x: ssim(x, b))(jnp.asarray(a))))
