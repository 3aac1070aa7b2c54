"""The objective of eq. 3: values on hand-worked cases, gradients against
finite differences, safe gradients at zero, and masks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import enable_x64

from _toy import toy_image, toy_rep
from jinvert import Config, invert
from jinvert.masks import central_mask, group_mask
from jinvert.energy import image_energy as objective
from jinvert.objective import alpha_norm, data_term, total_variation


def test_total_variation_hand_case():
    # 2×2 single-channel image [[0, 3], [4, 5]], replicate boundary:
    # (0,0): dx=3, dy=4 -> 25; (0,1): dx=0, dy=2 -> 4; (1,0): dx=1, dy=0 -> 1; (1,1): 0.
    u = jnp.array([[0.0, 3.0], [4.0, 5.0]])[..., None]
    assert float(total_variation(u, 2.0)) == pytest.approx(30.0)
    assert float(total_variation(u, 1.0)) == pytest.approx(5.0 + 2.0 + 1.0)
    # Channels are summed, each with its own differences.
    two = jnp.concatenate([u, 2 * u], axis=-1)
    assert float(total_variation(two, 2.0)) == pytest.approx(30.0 * 5)


def test_alpha_norm_hand_case():
    u = jnp.array([[[-1.0], [2.0]], [[0.0], [0.5]]])
    assert float(alpha_norm(u, 6.0)) == pytest.approx(1 + 64 + 0 + 0.5 ** 6)
    assert float(alpha_norm(u, 1.0)) == pytest.approx(3.5)


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_tv_gradient_finite_on_constant_image(beta):
    u = jnp.full((5, 6, 3), 0.25)
    g = jax.grad(total_variation)(u, beta)
    assert np.all(np.isfinite(g)) and np.all(g == 0)
    # Also where only some differences vanish.
    u = u.at[2, 3, 1].set(1.0)
    g = jax.grad(total_variation)(u, beta)
    assert np.all(np.isfinite(g)) and np.abs(g).max() > 0


@pytest.mark.parametrize("alpha", [1.0, 2.0, 6.0])
def test_alpha_gradient_finite_at_zero(alpha):
    u = jnp.zeros((4, 4, 1)).at[1, 1, 0].set(-0.5)
    g = jax.grad(alpha_norm)(u, alpha)
    assert np.all(np.isfinite(g))
    assert float(g[0, 0, 0]) == 0.0
    assert float(g[1, 1, 0]) == pytest.approx(-alpha * 0.5 ** (alpha - 1))


@pytest.mark.parametrize("beta", [1.0, 2.0])
def test_energy_gradient_matches_finite_differences(beta):
    with enable_x64():
        rep = toy_rep(seed=3)
        x0 = toy_image((12, 12, 1), seed=2).astype(np.float64)
        ref = rep.apply(jnp.asarray(x0))
        mask = np.zeros(ref.shape, bool)
        mask[1:4, :, :4] = True
        rng = np.random.default_rng(0)
        u = jnp.asarray(rng.normal(size=(12, 12, 1)) / 12.0 + x0 / rep.sigma)
        config = Config(sigma=rep.sigma, lambda_alpha=2.16e8 * 1e-3, alpha=6.0,
                        lambda_tv=5.0, beta=beta)

        def energy(v):  # E as a function of u = x/σ, as the optimiser sees it
            return objective(rep, rep.sigma * v, ref, mask, config=config)["total"]

        g = jax.grad(energy)(u)
        assert g.dtype == jnp.float64
        for i in range(4):
            d = jnp.asarray(rng.normal(size=u.shape))
            eps = 1e-6
            fd = (energy(u + eps * d) - energy(u - eps * d)) / (2 * eps)
            assert float(jnp.vdot(g, d)) == pytest.approx(float(fd), rel=1e-5, abs=1e-9)
        # Each regulariser alone has the gradient its formula says.
        ga = jax.grad(alpha_norm)(u, 6.0)
        np.testing.assert_allclose(ga, 6.0 * u ** 5, rtol=1e-12)


def test_terms_dict_and_wrapper_agree():
    rep = toy_rep()
    x = jnp.asarray(toy_image((16, 16, 1)))
    ref = rep.apply(x + 10.0 * jnp.sin(jnp.arange(16.0))[:, None, None])
    # σ given: the λ are used as given (no conversion to the image size).
    config = Config(lambda_alpha=2.16e8, alpha=6, lambda_tv=5, beta=2, sigma=rep.sigma)
    terms = objective(rep, x, ref, config=config)
    assert set(terms) == {"data", "alpha", "tv", "total"}
    u = x / rep.sigma
    assert float(terms["alpha"]) == pytest.approx(2.16e8 * float(jnp.sum(u ** 6)), rel=1e-4)
    assert float(terms["tv"]) == pytest.approx(5 * float(total_variation(u, 2.0)), rel=1e-4)
    expected_data = float(jnp.sum((rep.apply(x) - ref) ** 2) / jnp.sum(ref ** 2))
    assert float(terms["data"]) == pytest.approx(expected_data, rel=1e-4)
    assert float(terms["total"]) == pytest.approx(
        float(terms["data"] + terms["alpha"] + terms["tv"]), rel=1e-6)
    # The data term is 0 at the image itself.
    assert float(objective(rep, x, rep.apply(x))["data"]) < 1e-10


def test_objective_is_what_invert_minimises():
    rep = toy_rep()
    x0 = jnp.asarray(toy_image((16, 16, 1)))
    ref = np.asarray(rep.apply(x0))
    mask = central_mask(ref.shape, 4)
    # One iteration at learning rate 0: the returned image is the start,
    # and the history holds E at it, at rep.defaults sized to 16×16.
    config = rep.defaults.replace(stages=(1,), learning_rate=0.0)
    r = invert(rep, ref, key=jax.random.PRNGKey(0), shape=(16, 16), mask=mask, config=config)
    terms = objective(rep, r.images[0], ref, mask, config=config)
    for name in ("data", "alpha", "tv", "total"):
        assert float(terms[name]) == pytest.approx(float(r.history[name][0, 0]), rel=1e-5)
    # And without a config it uses rep.defaults the same way.
    default = objective(rep, r.images[0], ref, mask)
    assert float(default["alpha"]) == pytest.approx(float(terms["alpha"]), rel=1e-6)


def test_masked_out_code_does_not_matter():
    rep = toy_rep()
    x = jnp.asarray(toy_image((16, 16, 1)))
    ref = np.asarray(rep.apply(x))
    mask = central_mask(ref.shape, 3)
    other = ref.copy()
    other[~mask] = 1e3 * np.random.default_rng(0).normal(size=(~mask).sum())
    u = jnp.asarray(toy_image((16, 16, 1), seed=5)) / rep.sigma
    config = Config(sigma=rep.sigma, lambda_alpha=1.0, alpha=6.0, lambda_tv=1.0, beta=2.0)

    def data(v, r):
        return objective(rep, rep.sigma * v, r, mask, config=config)["data"]

    assert float(data(u, ref)) == pytest.approx(float(data(u, other)), rel=1e-6)
    np.testing.assert_allclose(jax.grad(data)(u, ref), jax.grad(data)(u, other), rtol=1e-5)
    # ...while the masked-in part does.
    changed = ref.copy()
    changed[mask] += 1.0
    assert abs(float(data(u, changed)) - float(data(u, ref))) > 1e-3
    # And without a mask the far entries count.
    assert float(data_term(rep.apply(u * rep.sigma), jnp.asarray(other))) != pytest.approx(
        float(data_term(rep.apply(u * rep.sigma), jnp.asarray(ref))))


def test_central_mask_matches_reference_indexing():
    # w = 5, n = 2: 1-based start ceil((5-2+1)/2) = 2 -> columns 2, 3 -> 0-based 1, 2.
    m = central_mask((4, 5, 2), 2)
    assert m.dtype == bool and m.shape == (4, 5, 2)
    # h = 4, n = 2: start ceil(3/2) = 2 -> rows 1, 2 (0-based).
    assert np.array_equal(np.argwhere(m[..., 0]), [[1, 1], [1, 2], [2, 1], [2, 2]])
    assert np.array_equal(m[..., 0], m[..., 1])
    # n = 1 on an even width sits right of centre: ceil(4/2) = 2 -> 0-based 1... of w=4.
    assert np.argwhere(central_mask((1, 4, 1), 1)[0, :, 0]).ravel().tolist() == [1]
    # Larger than the code: everything.
    assert central_mask((3, 3, 1), 10).all()
    with pytest.raises(ValueError):
        central_mask((3, 3), 1)


def test_group_mask_halves():
    first, second = group_mask((2, 2, 6), 1), group_mask((2, 2, 6), 2)
    assert first[..., :3].all() and not first[..., 3:].any()
    assert second[..., 3:].all() and not second[..., :3].any()
    assert group_mask((8,), 2).tolist() == [False] * 4 + [True] * 4
    with pytest.raises(ValueError):
        group_mask((2, 2, 5), 1)
    with pytest.raises(ValueError):
        group_mask((2, 2, 6), 3)
