"""Natural pre-images (IJCV 2016) on invert's engine: the energy's terms,
activation maximisation, caricatures and the IJCV recipe."""

import dataclasses

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

import jinvert
from _toy import toy_image, toy_rep
from jinvert import images as im
from jinvert import terms
from jinvert.energy import image_energy as objective
from jinvert.objective import alpha_norm
from jinvert.preimages import maximize_config


def _natural_photos(size=(32, 32)):
    import skimage.data

    return [im.resize_and_crop(im.to_rgb(np.asarray(getattr(skimage.data, n)(), np.float32)
                                         / 255.0), size)
            for n in ("astronaut", "camera", "coffee", "chelsea", "rocket")]


def test_composed_objective_gradient_is_sum_of_parts():
    rep = toy_rep(channels=3)
    x0 = jnp.asarray(toy_image((16, 16, 3), seed=2))
    x = jnp.asarray(toy_image((16, 16, 3), seed=3))
    code0 = rep(x0)
    sigma = 1200.0
    w1 = terms.channel(code0.shape, 2)
    w2 = terms.neuron(code0.shape, (3, 4, 1))
    parts = [(1.0, terms.activation(w1, 2.0)), (0.5, terms.caricature(code0)),
             (-0.25, terms.inversion(code0)), (2.0, terms.activation(w2)),
             (1.0, terms.bounded_range(3e4, 6)), (1.0, terms.total_variation(0.7, 2))]
    composed = parts[0][1] + 0.5 * parts[1][1] - 0.25 * parts[2][1] \
        + parts[3][1] * 2.0 + parts[4][1] + parts[5][1]

    def energy(term, u):
        return terms.evaluate(term, rep.apply(sigma * u), u)["total"]

    u = x / sigma
    g = jax.grad(lambda v: energy(composed, v))(u)
    expected = sum(w * jax.grad(lambda v, t=t: energy(t, v))(u) for w, t in parts)
    np.testing.assert_allclose(np.asarray(g), np.asarray(expected), rtol=1e-5,
                               atol=1e-6 * float(jnp.max(jnp.abs(expected))))
    assert float(energy(composed, u)) == pytest.approx(
        sum(w * float(energy(t, u)) for w, t in parts), rel=1e-5)
    # The history names: data terms add up under "data", regularisers apart.
    assert terms.names(composed) == ["data", "range", "tv", "total"]


def test_data_terms_known_values():
    code = jnp.asarray([[1.0, 2.0], [0.0, -2.0]])
    assert float(terms.caricature(code).value(code, None)) == pytest.approx(-1.0)
    assert float(terms.caricature(code).value(2 * code, None)) == pytest.approx(-2.0)
    assert float(terms.inversion(code).value(code, None)) == 0.0
    act = terms.activation(terms.neuron(code.shape, (0, 1)), scale=4.0)
    assert float(act.value(code, None)) == pytest.approx(-0.5)
    ch = terms.channel((2, 3, 2), 1)
    assert ch.sum() == pytest.approx(1.0) and ch[..., 0].sum() == 0


def test_bounded_range_is_the_colour_norm():
    u = jnp.zeros((2, 2, 2)).at[0, 0].set(jnp.asarray([3.0, 4.0]))  # a pixel of norm 5
    assert float(terms.bounded_range(1.0, 2).value(None, u)) == pytest.approx(25.0)
    assert float(terms.bounded_range(2.0, 6).value(None, u)) == pytest.approx(2 * 5.0 ** 6)
    grey = jnp.asarray(toy_image((8, 8, 1))) / 100.0
    assert float(terms.bounded_range(1.0, 6).value(None, grey)) == pytest.approx(
        float(alpha_norm(grey, 6)), rel=1e-6)
    # Finite gradient at 0, also for a non-even exponent.
    for a in (3.0, 6.0):
        g = jax.grad(lambda v: terms.bounded_range(1.0, a).value(None, v))(jnp.zeros((3, 3, 3)))
        assert bool(jnp.all(jnp.isfinite(g))) and float(jnp.max(jnp.abs(g))) == 0.0


def test_activation_maximisation_beats_natural_photos():
    rep = toy_rep()
    photos = _natural_photos()
    codes = rep(jnp.stack([rep.preprocess(p) for p in photos]))
    w = terms.channel(codes.shape[1:], 1)
    natural = np.asarray(jnp.sum(codes * w, axis=(1, 2, 3)))
    z = jinvert.activation_scale(rep, w, photos, size=(32, 32))
    assert z == pytest.approx(float(natural.max()), rel=1e-5)
    config = maximize_config(rep, data_weight=100.0).with_iterations(200)
    r = jinvert.maximize(rep, terms.activation(w, z), key=jax.random.PRNGKey(0), shape=(32, 32),
                         samples=2, config=config, start=jinvert.Start(noise=0.3))
    reached = np.asarray(jnp.sum(r.codes * w, axis=(1, 2, 3)))
    # Measured: 43.7 and 46.8 against at most 4.9 on the five photos.
    assert reached.min() > 3 * natural.max()
    assert r.images.shape == (2, 32, 32, 1)
    assert float(r.history["data"][0, -1]) < -3  # −⟨Φ, W⟩ / Z
    # The bounded range (at 1/C = 1/100 of its IJCV weight) keeps the pixels
    # within a few B (160 grey levels here; measured 357).
    assert float(jnp.max(jnp.abs(r.images))) < 3 * 160


def test_batch_of_objectives_are_optimised_apart():
    rep = toy_rep()
    w = terms.channel((15, 15, 6), 1)
    config = maximize_config(rep, data_weight=100.0).with_iterations(120)
    # One batch: raise channel 1, and lower it (weights −W).
    r = jinvert.maximize(rep, [terms.activation(w), terms.activation(-w)],
                         key=jax.random.PRNGKey(1), shape=(32, 32), config=config,
                         start=jinvert.Start(noise=0.3))
    assert r.images.shape == (2, 1, 32, 32, 1)
    raised, lowered = (float(jnp.sum(r.codes[b, 0] * w)) for b in range(2))
    assert raised > 10 and lowered < 0.5 * raised  # measured: 19.3 and 5.4


def test_caricature_exaggerates_the_photo_code():
    rep = toy_rep()
    x0 = rep.preprocess(_natural_photos()[1])  # camera, 32×32 grey
    code0 = rep(x0)
    config = maximize_config(rep, data_weight=10.0).replace(jitter=0).with_iterations(60)
    r = jinvert.caricature(rep, x0, key=jax.random.PRNGKey(0), config=config)
    # It starts at the photo: the data term is −1 there.
    assert float(r.history["data"][0, 0]) == pytest.approx(-1.0, rel=1e-5)
    projection = float(jnp.sum(r.codes[0] * code0))
    assert projection > 1.5 * float(jnp.sum(code0 * code0))
    # objective() computes what the engine minimised, at the start.
    e = objective(rep, x0, data=terms.caricature(code0), config=config)
    for name in ("data", "range", "tv", "total"):
        assert float(e[name]) == pytest.approx(float(r.history[name][0, 0]), rel=1e-5)


def test_ijcv_recipe_numbers():
    hog = jinvert.hog(texture=False)
    c = jinvert.recipe(hog, "ijcv")
    # B = 1.25 · 128 = 160, V = B/6.5, σ = 27100, HW = 227²: C keeps λV = 5.
    assert c.lambda_tv == pytest.approx(5.0)
    assert c.lambda_range == pytest.approx(9.740e7, rel=1e-3)
    assert (c.lambda_alpha, c.alpha, c.beta, c.jitter, c.update_rule) == (0, 6, 2, 1, "adam")
    assert jinvert.recipe(hog, "ijcv", data_weight=1.0).lambda_tv == pytest.approx(23.52, rel=1e-3)
    assert jinvert.recipe(hog, "cvpr") == hog.defaults
    # Adam's learning rate follows the image size (its step is per value of u).
    sized = c.sized((113, 113, 1), hog.sigma)
    assert sized.learning_rate == pytest.approx(c.learning_rate * (3 * 227 ** 2 / 113 ** 2) ** 0.5)
    assert hog.defaults.sized((113, 113, 1), hog.sigma).learning_rate == 0.004


def test_staged_adam_drops_tenfold_per_stage_even_empty_ones():
    opt = jinvert.optimizers.staged_adam(1e-3, (2, 0, 3), 0.9)
    # The schedule lives in the state: one update function (one compiled
    # step) for every learning rate and schedule.
    assert opt.update is jinvert.optimizers.staged_adam(5e-4, (7,), 0.9).update
    params = jnp.zeros(3)
    state = opt.init(params)
    steps = []
    for _ in range(4):
        update, state = opt.update(jnp.ones(3), state, params)
        steps.append(float(update[0]))
    np.testing.assert_allclose(steps, [-1e-3, -1e-3, -1e-5, -1e-5], rtol=1e-3)
    # The arithmetic of optax.adam on a piecewise-constant schedule, to the bit.
    ref = optax.adam(optax.piecewise_constant_schedule(1e-3, {2: 0.1, 5: 0.1}), b1=0.9)
    new = jinvert.optimizers.staged_adam(1e-3, (2, 3, 4), 0.9)
    s1, s2 = ref.init(params), new.init(params)
    for i in range(9):
        g = jnp.sin(jnp.arange(3.0) + i)
        u1, s1 = ref.update(g, s1, params)
        u2, s2 = new.update(g, s2, params)
        np.testing.assert_array_equal(np.asarray(u1), np.asarray(u2))


def test_inversion_with_the_ijcv_recipe_runs_through_invert():
    rep = toy_rep()
    code = rep.apply(jnp.asarray(toy_image((16, 16, 1))))
    config = jinvert.recipe(rep, "ijcv").with_iterations(80)
    r = jinvert.invert(rep, code, shape=(16, 16), key=jax.random.PRNGKey(0), config=config)
    assert set(r.history) == {"data", "range", "tv", "total"}
    assert float(r.history["data"][0, -1]) < 0.5 * float(r.history["data"][0, 0])


@pytest.mark.parametrize("make, message", [
    (lambda: terms.activation(np.zeros(4)), "all zero"),
    (lambda: terms.activation(np.ones(4), scale=0.0), "positive"),
    (lambda: terms.activation(np.array([1.0, np.nan])), "NaN"),
    (lambda: terms.neuron((4, 4, 2), (4, 0, 0)), "outside"),
    (lambda: terms.channel((10,), 0), "channel needs"),
    (lambda: terms.channel((2, 2, 3), 3), "outside"),
    (lambda: terms.caricature(np.zeros((3, 3))), "all zeros"),
    (lambda: terms.inversion(np.ones((3, 3)), mask=np.ones((2, 3))), "mask"),
    (lambda: terms.stack([terms.activation(np.ones(3)),
                          terms.activation(np.ones(3)) + terms.activation(np.ones(3))]),
     "built alike"),
    (lambda: 2.0 * terms.activation(np.ones(3)) * "x", "number"),
    (lambda: jinvert.recipe(jinvert.hog(), "lucid"), "unknown recipe"),
    (lambda: jinvert.Config(update_rule="rmsprop"), "update_rule"),
    (lambda: jinvert.Config(jitter=-1), "jitter"),
])
def test_bad_terms_raise(make, message):
    with pytest.raises(ValueError, match=message):
        make()


def test_maximize_rejects_bad_objectives():
    rep = toy_rep()
    key = jax.random.PRNGKey(0)
    with pytest.raises(ValueError, match="shape of one code"):
        jinvert.maximize(rep, terms.activation(np.ones((5, 5, 6))), key=key, shape=(32, 32))
    with pytest.raises(ValueError, match="jinvert.terms term"):
        jinvert.maximize(rep, np.ones((15, 15, 6)), key=key, shape=(32, 32))
    with pytest.raises(ValueError, match="init must be images"):
        jinvert.maximize(rep, terms.activation(np.ones((15, 15, 6))), key=key, shape=(32, 32),
                         start=jinvert.Start(init=np.zeros((8, 8, 1))))
    with pytest.raises(ValueError, match="noise must be a finite number"):
        jinvert.maximize(rep, terms.activation(np.ones((15, 15, 6))), key=key, shape=(32, 32),
                         start=jinvert.Start(noise=-1.0))
    with pytest.raises(ValueError, match="jinvert.Start"):
        jinvert.maximize(rep, terms.activation(np.ones((15, 15, 6))), key=key, shape=(32, 32),
                         start=np.zeros((32, 32, 1)))
    with pytest.raises(ValueError, match="iterations_per_call"):
        jinvert.maximize(rep, terms.activation(np.ones((15, 15, 6))), key=key, shape=(32, 32),
                         loop=jinvert.Loop(iterations_per_call=0))
    with pytest.raises(ValueError, match="optimizer"):
        jinvert.maximize(rep, terms.activation(np.ones((15, 15, 6))), key=key, shape=(32, 32),
                         optimizer="adam")
    assert isinstance(maximize_config(rep).optimizer(), optax.GradientTransformation)


# ----------------------------------------------------------------------------
# The defaults the documentation states (docs/preimages.md, README)
# ----------------------------------------------------------------------------

def _short(rep, iterations=12):
    """``rep`` with a one-stage schedule of ``iterations`` steps: maximize's
    and caricature's default length is the representation's, so that runs
    without a config stay short; nothing else of the defaults changes."""
    return dataclasses.replace(rep, defaults=rep.defaults.replace(stages=(iterations,)))


def _documented(rep, c, shape=None):
    """The settings docs/preimages.md states for data weight ``c``, from its
    formulas (not from jinvert.recipes): λ_range = (σ/B)^6 / (HW·C), λV =
    (σ/V)² / (HW·C), HW = 227², B = 1.25 · pixel range, V = B / 6.5; Adam
    at 1e-4. Sized to ``shape`` if given (n values, r = n / (227·227·3)):
    σ·√r, λ_range·r², λV·r⁰, the learning rate / √r."""
    hw, bound = 227 ** 2, 1.25 * rep.pixel_range
    r = 1.0 if shape is None else float(np.prod(shape)) / (3 * hw)
    settings = dict(learning_rate=1e-4 / r ** 0.5,
                    lambda_range=(rep.sigma / bound) ** 6 / (hw * c) * r ** 2,
                    lambda_tv=(rep.sigma / (bound / 6.5)) ** 2 / (hw * c),
                    lambda_alpha=0.0, alpha=6.0, beta=2.0, update_rule="adam")
    return settings if shape is None else dict(settings, sigma=rep.sigma * r ** 0.5)


def _assert_settings(config, expected):
    for name, value in expected.items():
        got = getattr(config, name)
        assert got == (pytest.approx(value, rel=1e-5) if isinstance(value, float) else value), \
            (name, got, value)


def test_caricature_default_is_the_documented_c_10():
    """Without a config, caricature weighs its data term by C = 10 (docs:
    "`caricature` C = 10"): the settings from the documented formulas, the
    same images as a run given C = 10 explicitly, and priors at the photo
    (the start) a tenth of C = 1's."""
    rep = _short(toy_rep())
    x0 = rep.preprocess(_natural_photos((16, 16))[1])          # camera, 16×16 grey
    key = jax.random.PRNGKey(0)
    default = jinvert.caricature(rep, x0, key=key)
    _assert_settings(default.config, _documented(rep, 10.0, (16, 16, 1)))
    # One stage of the representation's length, jitter 1 (a representation
    # of any size, as HOG and DSIFT).
    assert (default.config.stages, default.config.jitter) == ((12,), 1)

    def explicit(c):
        config = jinvert.recipe(rep, "ijcv", data_weight=c).replace(learning_rate=1e-4)
        return jinvert.caricature(rep, x0, key=key, config=config)

    np.testing.assert_array_equal(np.asarray(default.images), np.asarray(explicit(10.0).images))
    at_c1 = explicit(1.0)
    for prior in ("range", "tv"):
        assert float(default.history[prior][0, 0]) == pytest.approx(
            0.1 * float(at_c1.history[prior][0, 0]), rel=1e-5)
    assert float(default.history["data"][0, 0]) == float(at_c1.history["data"][0, 0])


def test_maximize_defaults_are_the_documented_ones():
    """Without a config, maximize runs the IJCV recipe at C = 1 with Adam at
    a constant 1e-4 (docs/preimages.md): the settings from the documented
    formulas, and the same images as a run given them explicitly."""
    rep = _short(toy_rep())
    objective = terms.activation(terms.channel((7, 7, 6), 1))
    key = jax.random.PRNGKey(0)
    default = jinvert.maximize(rep, objective, key=key, shape=(16, 16))
    _assert_settings(default.config, _documented(rep, 1.0, (16, 16, 1)))
    assert (default.config.stages, default.config.jitter) == ((12,), 1)
    config = jinvert.recipe(rep, "ijcv", data_weight=1.0).replace(learning_rate=1e-4)
    explicit = jinvert.maximize(rep, objective, key=key, shape=(16, 16), config=config)
    np.testing.assert_array_equal(np.asarray(default.images), np.asarray(explicit.images))


def _needs_efficientnet():
    try:
        from jinvert.representations.efficientnet import weights_path
        weights_path()
    except ImportError as err:
        pytest.skip(f"EfficientNet-Lite0 weights missing: {err}")


def test_maximize_defaults_for_efficientnet_are_the_documented_ones():
    """docs/preimages.md: for EfficientNet-Lite0, 400 iterations in one
    stage at Adam 1e-4, jitter 4, B = 1.25 (its pixel range 1), C = 1;
    caricatures C = 10."""
    _needs_efficientnet()
    rep = jinvert.efficientnet_lite0(layer="stem")
    assert rep.pixel_range == 1.0
    for config, c in ((maximize_config(rep), 1.0),
                      (maximize_config(rep, data_weight=jinvert.preimages.CARICATURE_DATA_WEIGHT),
                       10.0)):
        assert (config.stages, config.jitter, config.sigma) == ((400,), 4, None)
        _assert_settings(config, _documented(rep, c))


# ----------------------------------------------------------------------------
# The figures of docs/preimages.md, at a tiny size
# ----------------------------------------------------------------------------

def _montages(monkeypatch) -> list:
    """``(tiles, labels, keywords)`` of every labelled montage drawn during
    the test (the figure's tiles as drawn, its labels, its title)."""
    drawn = []
    real = im.labelled_montage
    monkeypatch.setattr(im, "labelled_montage",
                        lambda tiles, labels, **k: drawn.append((tiles, labels, k))
                        or real(tiles, labels, **k))
    return drawn


def _spy(monkeypatch, module, name, calls):
    """Replace ``module.name`` by a wrapper that records its keyword arguments."""
    real = getattr(module, name)

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(module, name, spy)


def test_maxima_figure(tmp_path, monkeypatch):
    """The maxima figure's path (python -m jinvert.experiments.preimages
    maxima) on two stem channels, 30 iterations: every label carries the
    value recomputed from its tile, each maximum excites its own channel
    more than the other maximum does and beyond natural photos (Z), the
    top-1 class is the network's on the tile, and the run used C = 1."""
    _needs_efficientnet()
    from jinvert.experiments import preimages as figures

    calls = []
    _spy(monkeypatch, jinvert.preimages, "maximize", calls)
    drawn = _montages(monkeypatch)
    out = tmp_path / "maxima.png"
    rows = figures.figure("maxima", str(out), 30, classes=(), taps={"stem": (0, 3)},
                          log=lambda line: None)
    assert out.exists()
    ((tiles, labels, drawn_with),) = drawn
    assert "channels 0, 3 of stem" in drawn_with["title"] and "C = 1," in drawn_with["title"]
    rep = jinvert.efficientnet_lite0(layer="stem")
    xs = jnp.stack([rep.preprocess(t) for t in tiles])       # the tiles, back to the input
    ws = [terms.channel(rep(xs[0]).shape, c) for c in (0, 3)]
    values = np.asarray([[float(jnp.sum(rep(x) * w)) for w in ws] for x in xs])
    logits = np.asarray(figures.classifier()(xs))
    for b, (label, (name, reached, z, top)) in enumerate(zip(labels, rows)):
        c = (0, 3)[b]
        # "stem channel 0: 5.82 (photos <= 2.93); top-1 class 892"
        assert label.startswith(f"stem channel {c}: ") and name == f"stem channel {c}"
        shown, photos_z = float(label.split()[3]), float(label.split("<= ")[1].split(")")[0])
        assert shown == pytest.approx(values[b, b], rel=5e-3)
        assert reached[0] == pytest.approx(values[b, b], rel=1e-3)
        assert photos_z == pytest.approx(z, rel=5e-3)
        assert int(label.split("top-1 class ")[1]) == top[0, 0] == int(np.argmax(logits[b]))
        # Measured: 5.82 and 1.83 against Z = 2.93 and 1.23.
        assert values[b, b] > 1.3 * z
    # Measured: channel 0 at 5.82 on its maximum, 2.86 on the other; channel 3
    # at 1.83 against 0.42.
    assert values[0, 0] > 1.5 * values[1, 0] and values[1, 1] > 1.5 * values[0, 1]
    (kwargs,) = calls
    _assert_settings(kwargs["config"], _documented(rep, 1.0))
    assert (kwargs["config"].stages, kwargs["config"].jitter) == ((30,), 4)


def test_caricatures_figure(tmp_path, monkeypatch):
    """The caricatures figure's path on the astronaut at the stem, 10
    iterations: the photo tile is the photo, the caricature starts from it
    (still like it after 10 small steps), its label carries the projection
    recomputed from the tile, and the run used C = 10."""
    _needs_efficientnet()
    import skimage.data

    from jinvert.experiments import preimages as figures

    calls = []
    _spy(monkeypatch, jinvert.preimages, "caricature", calls)
    drawn = _montages(monkeypatch)
    out = tmp_path / "caricatures.png"
    rows = figures.figure("caricatures", str(out), 10, photos=("astronaut",), taps=("stem",),
                          log=lambda line: None)
    assert out.exists()
    ((tiles, labels, drawn_with),) = drawn
    assert "C = 10," in drawn_with["title"]
    rep = jinvert.efficientnet_lite0(layer="stem")
    photo = im.resize_and_crop(np.asarray(skimage.data.astronaut(), np.float32) / 255.0,
                               (224, 224))
    np.testing.assert_allclose(np.asarray(tiles[0]), photo, atol=1e-5)
    assert labels[0] == "astronaut (224x224)"
    code0 = rep(rep.preprocess(photo))
    projection = float(jnp.sum(rep(rep.preprocess(tiles[1])) * code0) / jnp.sum(code0 * code0))
    ((name, tap, reached),) = rows
    assert (name, tap) == ("astronaut", "stem")
    assert reached == pytest.approx(projection, rel=1e-3)
    assert labels[1] == f"stem: projection {projection:.2f}"
    # Started from the photo: after 10 steps it still correlates with it
    # (measured 0.986; 0.18 from faint noise, from_image=False).
    a, b = np.asarray(tiles[1]) - np.mean(tiles[1]), photo - np.mean(photo)
    assert float(np.sum(a * b) / np.sqrt(np.sum(a * a) * np.sum(b * b))) > 0.9
    (kwargs,) = calls
    _assert_settings(kwargs["config"], _documented(rep, 10.0))
    assert (kwargs["config"].stages, kwargs["config"].jitter) == ((10,), 4)
