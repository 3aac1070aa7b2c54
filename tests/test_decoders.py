"""The learned decoder (jinvert.decoders: the network and file in
jinvert.decoder_network, training in jinvert.decoder_training) and invert's
warm start (start=Start(decoder))."""

import dataclasses
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinvert
from jinvert import Start, cli, decoder_network, decoder_training, decoders, images

#: A tiny network and short run: these tests check behaviour, not quality.
TINY = decoders.TrainSettings(steps=60, batch_size=8, crop=32, learning_rate=5e-3,
                              feature_weight=0.0, width=8, blocks=1, seed=0)
#: The same with the feature loss, at a weight that is neither 0 nor 1 (so a
#: dropped or mis-weighted term shows).
FEATURE = dataclasses.replace(TINY, steps=8, feature_weight=3.0)


@pytest.fixture(scope="module")
def photos():
    from skimage import data
    return [data.camera()[:200, :260].astype(np.float32) / 255.0,
            data.astronaut()[40:260, 60:300].astype(np.float32) / 255.0]


@pytest.fixture(scope="module")
def trained(photos):
    return decoders.train("hog", photos, TINY, progress=False)


@pytest.fixture(scope="module")
def feature_run(photos):
    """A run of FEATURE: (decoder, the losses reported at every step)."""
    reports = []
    decoder, _ = decoders.train("hog", photos, FEATURE,
                                progress=lambda step, steps, losses: reports.append(losses))
    return decoder, reports


def test_training_lowers_the_loss(trained, photos):
    decoder, losses = trained
    assert len(losses) == TINY.steps and np.all(np.isfinite(losses))
    rep = jinvert.hog(texture=False)
    pool = decoder_training.training_pool(rep, photos)
    crops = jnp.asarray(pool[:, 40:104, 40:104])                 # 6 fixed 64 x 64 crops

    def loss(d):  # the pixel loss, in units of the training pixels' RMS
        return float(jnp.mean((d(rep(crops), crops.shape[1:]) - crops) ** 2)
                     / decoder.pixel_scale ** 2)

    fresh = decoder_training.new_decoder(rep, "hog", pool, TINY)
    assert loss(decoder) < 0.5 * loss(fresh)
    # Better than the best flat image of each crop (its own mean, which the
    # decoder is not told): the decoder uses the code's structure.
    flat = float(jnp.mean((crops - crops.mean(axis=(1, 2, 3), keepdims=True)) ** 2)
                 / decoder.pixel_scale ** 2)
    assert loss(decoder) < 0.9 * flat


def test_decoder_is_fully_convolutional_and_fits_the_shape(trained):
    decoder, _ = trained
    rep = jinvert.hog(texture=False)
    x = rep.preprocess(images.load_image()[:61, :75])          # 61 x 75: 8 x 9 cells
    code = rep(x)
    out = decoder(code, x.shape)
    assert out.shape == x.shape
    assert decoder(code).shape == (8 * code.shape[0], 8 * code.shape[1], 1)
    # The edge-padded border repeats the last decoded row and column.
    np.testing.assert_array_equal(out[-1], out[8 * code.shape[0] - 1])
    # A batch decodes as its members one by one.
    both = decoder(jnp.stack([code, 0.5 * code]), x.shape)
    np.testing.assert_allclose(both[0], out, rtol=1e-5, atol=1e-3)


def test_saved_decoder_reloads_to_identical_outputs(trained, tmp_path):
    decoder, _ = trained
    path = tmp_path / "hog.npz"
    decoder.save(path)
    again = decoders.load(path)
    assert again.header() == decoder.header()
    rep = jinvert.hog(texture=False)
    code = rep(rep.preprocess(images.load_image()[:64, :64]))
    np.testing.assert_array_equal(np.asarray(again(code)), np.asarray(decoder(code)))
    # Readable without jinvert: NumPy and json.
    import json
    with np.load(path) as f:
        header = json.loads(str(f["header"]))
        assert header["rep"] == "hog" and header["architecture"]["code_channels"] == 27
        assert "params/Conv_0/kernel" in f.files


def test_load_refuses_other_files(tmp_path):
    with pytest.raises(ValueError, match="not found"):
        decoders.load(tmp_path / "missing.npz")
    (tmp_path / "junk.npz").write_bytes(b"not a zip")
    with pytest.raises(ValueError, match="not a jinvert decoder") as err:
        decoders.load(tmp_path / "junk.npz")
    assert "allow_pickle" not in str(err.value)    # NumPy's advice is not passed on
    np.savez(tmp_path / "other.npz", a=np.zeros(3))
    with pytest.raises(ValueError, match="not a jinvert decoder"):
        decoders.load(tmp_path / "other.npz")


def test_resumed_training_ends_where_an_uninterrupted_one_does(photos, feature_run, tmp_path,
                                                              capsys):
    # With the feature loss (the default's), so that its path runs too.
    settings = FEATURE
    full, _ = feature_run
    ckpt = str(tmp_path / "ckpt.npz")

    class Stop(Exception):
        pass

    def interrupt(step, steps, losses):
        assert steps == 8 and set(losses) == {"loss", "pixel", "feature"}
        if step == 6:
            raise Stop  # as a kill after step 6, before its checkpoint
    with pytest.raises(Stop):
        decoders.train("hog", photos, settings, checkpoint=ckpt, checkpoint_every=4,
                       progress=interrupt)
    reports = []
    resumed, losses = decoders.train("hog", photos, settings, checkpoint=ckpt,
                                     checkpoint_every=4, resume=True,
                                     progress=lambda *r: reports.append(r[0]))
    assert "resumed from" in capsys.readouterr().err and reports == [5, 6, 7, 8]
    assert len(losses) == 4 and np.all(np.isfinite(losses))
    for a, b in zip(jax.tree_util.tree_leaves(full.params),
                    jax.tree_util.tree_leaves(resumed.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    with pytest.raises(ValueError, match=r"other settings: seed 0 \(now 1\)"):
        decoders.train("hog", photos, dataclasses.replace(settings, seed=1),
                       checkpoint=ckpt, resume=True, progress=False)


def test_training_loss_is_pixels_plus_weighted_features(trained, photos):
    """decoder_training.training_loss against its definition, recomputed from the
    decoder's own output: pixel = mean (x̂ − x)² / pixel_scale², feature =
    mean over crops of ||Φ(x̂) − Φ(x)||² / ||Φ(x)||², total = pixel + w·feature."""
    decoder, _ = trained
    rep = jinvert.hog(texture=False)
    crops = jnp.asarray(decoder_training.training_pool(rep, photos)[:3, 40:104, 40:104])
    phi = jax.jit(rep.apply)
    codes = jnp.stack([phi(c) for c in crops])
    out = decoder(codes, crops.shape[1:])
    pixel = float(jnp.mean((out - crops) ** 2)) / decoder.pixel_scale ** 2
    feature = np.mean([float(jnp.sum((phi(o) - c) ** 2) / jnp.sum(c ** 2))
                       for o, c in zip(out, codes)])
    assert feature > 0.05                          # large enough for its weight to show
    total, parts = decoder_training.training_loss(decoder, crops, 3.0)
    assert float(parts["pixel"]) == pytest.approx(pixel, rel=1e-5)
    assert float(parts["feature"]) == pytest.approx(feature, rel=1e-4)
    assert float(total) == pytest.approx(pixel + 3.0 * feature, rel=1e-5)
    total, parts = decoder_training.training_loss(decoder, crops, 0.0)
    assert float(total) == pytest.approx(pixel, rel=1e-5) and float(parts["feature"]) == 0.0


def test_training_follows_the_feature_loss(feature_run):
    """train minimises pixel + w·feature: every step's reported loss is that
    sum, with a non-trivial feature term (a term dropped or weighted
    otherwise in the training step fails here; test_training_loss_... pins
    the term's definition)."""
    _, reports = feature_run
    assert len(reports) == FEATURE.steps
    for losses in reports:
        assert losses["feature"] > 0.05
        assert losses["loss"] == pytest.approx(
            losses["pixel"] + FEATURE.feature_weight * losses["feature"], rel=1e-5)


def _problem():
    rep = jinvert.hog(texture=False)
    x0 = rep.preprocess(images.load_image()[100:140, 80:128])  # 40 x 48
    return rep, x0, rep(x0)


def test_init_zeros_with_unit_noise_is_the_paper_start():
    # u0 = 0/σ + 1·n is exactly the noise the paper's start draws: init
    # changes nothing else in invert (same iterates, same history).
    rep, x0, code = _problem()
    config = rep.defaults.replace(stages=(4, 3))
    key = jax.random.PRNGKey(2)
    plain = jinvert.invert(rep, code, shape=x0.shape, key=key, samples=2, config=config)
    warm = jinvert.invert(rep, code, shape=x0.shape, key=key, samples=2, config=config,
                          start=Start(np.zeros(x0.shape, np.float32), noise=1.0))
    np.testing.assert_array_equal(np.asarray(warm.images), np.asarray(plain.images))
    for k in plain.history:
        np.testing.assert_array_equal(warm.history[k], plain.history[k])


def test_init_is_where_the_optimisation_starts(trained):
    rep, x0, code = _problem()
    config = rep.defaults.replace(stages=(2,))
    key = jax.random.PRNGKey(0)
    # From the original itself, without noise, the data term starts at 0.
    r = jinvert.invert(rep, code, shape=x0.shape, key=key, config=config,
                       start=Start(x0, noise=0.0))
    assert r.history["data"][0, 0] < 1e-3
    # A decoder: the start is its output (as if that were passed as an image),
    # and the samples differ by their noise.
    decoder, _ = trained
    a = jinvert.invert(rep, code, shape=x0.shape, key=key, config=config,
                       start=Start(decoder), samples=2)
    b = jinvert.invert(rep, code, shape=x0.shape, key=key, config=config,
                       start=Start(np.asarray(decoder(code, x0.shape))), samples=2)
    np.testing.assert_array_equal(a.history["total"], b.history["total"])
    assert not np.array_equal(np.asarray(a.images[0]), np.asarray(a.images[1]))
    # One start per code of a batch, and one per sample.
    codes = jnp.stack([code, code])
    starts = jnp.stack([x0, jnp.zeros_like(x0)])
    r = jinvert.invert(rep, codes, shape=x0.shape, key=key, config=config,
                       start=Start(starts, noise=0.0))
    assert r.history["data"][0, 0, 0] < 1e-3 < r.history["data"][1, 0, 0]
    r = jinvert.invert(rep, codes, shape=x0.shape, key=key, config=config,
                       start=Start(jnp.stack([starts, starts[::-1]], axis=1), noise=0.0),
                       samples=2)
    assert r.history["data"][0, 0, 0] < 1e-3 < r.history["data"][0, 1, 0]


def test_bad_init_is_refused(trained):
    rep, x0, code = _problem()
    config = rep.defaults.replace(stages=(1,))
    kw = dict(shape=x0.shape, key=jax.random.PRNGKey(0), config=config)
    with pytest.raises(ValueError, match="init must be images"):
        jinvert.invert(rep, code, start=Start(np.zeros((8, 8, 1))), **kw)
    with pytest.raises(ValueError, match="NaN"):
        jinvert.invert(rep, code, start=Start(np.full(x0.shape, np.nan)), **kw)
    with pytest.raises(ValueError, match="pixels"):
        jinvert.invert(rep, code, start=Start(x0), parameterization=jinvert.fourier(), **kw)
    with pytest.raises(ValueError, match="noise must be a finite number"):
        jinvert.invert(rep, code, start=Start(x0, noise=-1.0), **kw)
    decoder, _ = trained
    hogb = jinvert.hog(bilinear=True, texture=False)
    with pytest.raises(ValueError, match="trained for 'hog'"):
        jinvert.invert(hogb, hogb(x0), start=Start(decoder), **kw)


def test_cli_trains_a_decoder_and_starts_from_it(tmp_path, capsys, monkeypatch, two_photo_folder):
    folder = two_photo_folder
    out = str(tmp_path / "dec.npz")
    assert cli.main(["train-decoder", "--images", str(folder), "--out", out, "--steps", "4",
                     "--batch-size", "2", "--crop", "32", "--width", "8", "--blocks", "0", "--feature-weight", "0",
                     "--checkpoint-every", "2"]) == 0
    assert os.path.exists(out) and os.path.exists(str(tmp_path / "dec.ckpt.npz"))
    err = capsys.readouterr().err
    assert "training a hog decoder on 2 photos" in err and "step 4/4 (100 %), loss" in err
    picture = str(tmp_path / "warm.png")
    assert cli.main(["invert", "--init", f"decoder:{out}", "--size", "48", "48",
                     "--iterations", "2", "--out", picture]) == 0
    assert os.path.exists(picture)
    bundled = str(tmp_path / "bundled.png")                     # the decoder jinvert ships
    drawn, real = [], images.labelled_montage
    monkeypatch.setattr(images, "labelled_montage",
                        lambda *a, **k: (lambda r: drawn.append(r[1]) or r)(real(*a, **k)))
    assert cli.main(["invert", "--init", "decoder", "--size", "48", "48",
                     "--iterations", "2", "--out", bundled]) == 0
    assert os.path.exists(bundled)
    # The picture shows the start: the decoder's output, with its error.
    (texts,) = drawn
    assert "2 iterations from the bundled decoder's output" in texts[0]
    assert texts[1].startswith("original") and texts[2] == "HOG glyphs"
    assert texts[3].startswith("decoder alone: error ") and texts[4].startswith("reconstruction 1")
    # Bad files and flags: one line, status 2.
    for argv, message in (
            (["invert", "--init", f"decoder:{tmp_path}/none.npz"], "decoder file not found"),
            (["invert", "--init", "decoder:"],
             "--init must be 'noise', 'decoder' or 'decoder:FILE'"),
            (["invert", "--rep", "dsift", "--init", "decoder"], "no decoder ships for 'dsift'"),
            (["invert", "--rep", "hogb", "--init", f"decoder:{out}"], "trained for 'hog'"),
            (["train-decoder", "--images", str(folder), "--out", str(tmp_path / "d.txt")],
             "ending in .npz"),
            (["train-decoder", "--images", str(folder), "--out", out, "--crop", "400"],
             "crop 400 is larger than the training images")):
        assert cli.main(argv) == 2
        assert message in capsys.readouterr().err


def test_documented_names_are_reached_through_jinvert_decoders():
    """README's names stay in jinvert.decoders: the objects of the modules
    that define them."""
    assert decoders.Decoder is decoder_network.Decoder and decoders.load is decoder_network.load
    assert decoders.train is decoder_training.train
    assert decoders.TrainSettings is decoder_training.TrainSettings


def test_upsampling_stages_are_the_strides_prime_factors():
    assert decoder_network.upsampling_factors(8) == (2, 2, 2)
    assert decoder_network.upsampling_factors(15) == (3, 5)
    assert decoder_network.upsampling_factors(1) == ()
    with pytest.raises(ValueError, match="stride"):
        decoder_network.upsampling_factors(0)


def test_dsift_decoder_trains_and_upsamples_by_its_step(photos):
    settings = dataclasses.replace(TINY, crop=46, steps=40)     # 46 pixels: 3 x 3 descriptors
    decoder, losses = decoders.train("dsift", photos, settings, progress=False)
    assert decoder.training["crop"] == 46 and decoder.architecture["stride"] == 15
    assert np.mean(losses[-10:]) < 0.7 * np.mean(losses[:5])
    rep = jinvert.dsift()
    x = rep.preprocess(images.load_image()[:61, :80])           # 4 x 5 descriptors
    code = rep(x)
    assert code.shape[:2] == (4, 5)
    assert decoder(code).shape == (60, 75, 1)
    assert decoder(code, x.shape).shape == x.shape
    # The default crop is DSIFT's own: 9 descriptors, a frame past the last step.
    assert decoder_training.CROPS["dsift"] == 15 * 8 + 16
    with pytest.raises(ValueError, match="trained for 'dsift'"):
        jinvert.invert(jinvert.hog(), jinvert.hog()(x), key=jax.random.PRNGKey(0),
                       shape=x.shape, start=Start(decoder))


def test_bundled_hog_decoder_decodes_a_photo_it_never_saw():
    """The shipped decoder (trained on scikit-image's CC0 and public-domain
    photos) on a photo outside its training set: its code error is well
    below a flat image's (1.0), and it is small enough to ship."""
    from skimage import data

    decoder = decoders.bundled("hog")
    path = os.path.join(os.path.dirname(decoders.__file__), "data", decoders.BUNDLED["hog"])
    assert os.path.getsize(path) < 5e6
    assert decoder.rep == "hog" and decoder.training["step"] == decoder.training["steps"]
    rep = jinvert.hog(texture=False)
    x = rep.preprocess(images.resize(data.stereo_motorcycle()[0] / 255.0, (227, 227)))
    code = rep(x)
    relative = float(jnp.linalg.norm(rep(decoder(code, x.shape)) - code) / jnp.linalg.norm(code))
    assert relative < 0.55                                      # measured: 0.509
    with pytest.raises(ValueError, match="no decoder ships for 'dsift'"):
        decoders.bundled("dsift")
