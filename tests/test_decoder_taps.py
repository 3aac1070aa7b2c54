"""Learned decoders for EfficientNet-Lite0's taps (jinvert.decoder_network's
geometry and vector-code decoder, jinvert.decoder_training's whole-photo
training with precomputed codes), at 32 × 32 on four photos: behaviour, not
quality."""

import dataclasses
import json
import math

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinvert
from jinvert import cli, decoder_network, decoder_training, decoders, images
from jinvert.registry import resolve_representation

SIDE = 32
#: A tiny network and a short run (each tap trains in about 15 s on 2 cores).
TINY = decoders.TrainSettings(steps=40, batch_size=4, crop=SIDE, learning_rate=3e-3,
                              width=8, blocks=1, seed=0)
#: A vector code's decoder at 32 × 32 has a 1 × 1 grid: wider, and all eight
#: pairs (four photos and their mirrors) in each step.
VECTOR = dataclasses.replace(TINY, width=16, steps=60, batch_size=8, learning_rate=5e-3)
#: Bounds on the trained decoder's pixel loss, as fractions of an untrained
#: one's and of the mean training image's (measured: stem about 0.2 and 0.5,
#: logits 0.46 and 0.72).
BOUNDS = {"stem": (0.35, 0.8), "logits": (0.6, 0.85)}


@pytest.fixture(scope="module")
def photos():
    from skimage import data
    return [data.astronaut() / 255.0, data.coffee() / 255.0, data.chelsea() / 255.0,
            data.rocket() / 255.0]


@pytest.fixture(scope="module")
def stem(photos):
    return decoders.train("efficientnet:stem", photos, TINY, progress=False)


@pytest.fixture(scope="module")
def logits(photos):
    return decoders.train("efficientnet:logits", photos, VECTOR, progress=False)


def test_tap_strides_come_from_the_networks_output_shapes():
    # 'same' padding: a tap of stride s has ceil(224 / s) cells a side.
    for tap, stride in (("stem", 2), ("block0", 2), ("block2", 4), ("block4", 8),
                        ("block5", 16), ("block9", 16), ("block13", 32), ("head", 32)):
        got, shape = decoder_network.tap_geometry(f"efficientnet:{tap}")
        assert got == stride and shape[:2] == (math.ceil(224 / stride),) * 2, tap
        assert decoder_network.stride_of(f"efficientnet:{tap}") == stride
    assert decoder_network.tap_geometry("efficientnet:logits") == (32, (1000,))
    assert decoder_network.tap_geometry("efficientnet:pool") == (32, (1280,))
    assert decoder_network.stride_of("hog") == 8                 # the old ones unchanged
    with pytest.raises(ValueError, match="no decoder geometry for 'alexnet:relu5'"):
        decoder_network.stride_of("alexnet:relu5")


def test_input_images_are_the_networks_preprocessing_at_a_smaller_size(photos):
    rep = resolve_representation("efficientnet:stem")
    small = decoder_training.input_images(rep, photos[:2], SIDE)
    pixels = images.resize_and_crop(photos[0], (SIDE, SIDE))
    np.testing.assert_allclose(small[0], (255 * pixels - 127) / 128, rtol=0, atol=1e-5)
    full = decoder_training.input_images(rep, photos[:1], 224)
    np.testing.assert_array_equal(full[0], np.asarray(rep.preprocess(photos[0])))
    pool, codes = decoder_training.tap_pool(rep, photos[:2], SIDE)
    np.testing.assert_array_equal(pool[0], small[0])
    np.testing.assert_array_equal(pool[1], small[0][:, ::-1])   # each photo's mirror next
    np.testing.assert_allclose(codes, np.asarray(rep(jnp.asarray(pool))), rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("tap", ["stem", "logits"])
def test_training_beats_an_untrained_decoder_and_the_mean_image(tap, stem, logits, photos):
    decoder, losses = {"stem": stem, "logits": logits}[tap]
    settings = dataclasses.replace(VECTOR if tap == "logits" else TINY, feature_weight=0.0)
    assert len(losses) == settings.steps and np.all(np.isfinite(losses))
    rep = resolve_representation(f"efficientnet:{tap}")
    pool, codes = decoder_training.tap_pool(rep, photos, SIDE)

    def pixel_loss(d):  # mean squared error in units of the training pixels' RMS
        out = d(codes, pool.shape[1:])
        return float(jnp.mean((out - pool) ** 2) / decoder.pixel_scale ** 2)

    fresh = decoder_training.new_decoder(rep, f"efficientnet:{tap}", pool, settings, codes)
    trained, untrained = pixel_loss(decoder), pixel_loss(fresh)
    # And better than the mean training image, the best a decoder that
    # ignores the codes (or learnt from mismatched targets) can do.
    mean = float(np.mean((pool - pool.mean(axis=0)) ** 2) / decoder.pixel_scale ** 2)
    print(f"{tap}: trained / untrained {trained / untrained:.3f}, trained / mean image "
          f"{trained / mean:.3f}")
    assert trained < BOUNDS[tap][0] * untrained
    assert trained < BOUNDS[tap][1] * mean
    # The public loss says the same.
    total, parts = decoder_training.training_loss(decoder, pool, 0.0)
    assert float(parts["pixel"]) == pytest.approx(trained, rel=1e-4)
    assert float(total) == pytest.approx(trained, rel=1e-4)


def test_pixel_loss_is_the_default_for_taps(stem, logits):
    for decoder, _ in (stem, logits):
        assert decoder.training["feature_weight"] == 0.0
        assert decoder.training["crop"] == SIDE and decoder.training["sizes"] == [SIDE]
    assert decoders.TrainSettings().feature_weight is None       # resolved per representation
    assert decoder_training.FEATURE_WEIGHTS == {"shallow": 16.0, "tap": 0.0}


def test_output_shapes_and_the_vector_decoders_one_size(stem, logits, photos):
    rep = resolve_representation("efficientnet:stem")
    x = decoder_training.input_images(rep, photos[:1], 48)[0]   # another size: 24 x 24 cells
    code = rep(x)
    s, _ = stem
    assert code.shape == (24, 24, 32) and s(code).shape == (48, 48, 3)
    assert s(code[None], (40, 44)).shape == (1, 40, 44, 3)
    v, _ = logits
    assert v.vector and v.architecture["grid"] == [1, 1] and v.architecture["size"] == [32, 32]
    assert v.architecture["code_channels"] == 1000 and v.architecture["width"] == 16
    vec = resolve_representation("efficientnet:logits")
    codes = vec(jnp.asarray(decoder_training.input_images(vec, photos[:3], SIDE)))
    assert v(codes[0]).shape == (SIDE, SIDE, 3)
    assert v(codes, (SIDE, SIDE, 3)).shape == (3, SIDE, SIDE, 3)
    np.testing.assert_allclose(v(codes)[1], v(codes[1]), rtol=1e-5, atol=1e-5)
    with pytest.raises(ValueError, match=r"makes 32 × 32 images only"):
        v(codes, (64, 64, 3))
    with pytest.raises(ValueError, match=r"takes codes \(1000,\) or \(B, 1000\)"):
        v(code)
    with pytest.raises(ValueError, match=r"takes codes \(h, w, 32\)"):
        s(codes)
    # As a warm start: invert's init is the decoder's output for each code.
    np.testing.assert_array_equal(
        np.asarray(decoders.initial_images(v, vec, codes, (SIDE, SIDE, 3))),
        np.asarray(v(codes, (SIDE, SIDE, 3))))
    with pytest.raises(ValueError, match="trained for 'efficientnet:logits'"):
        decoders.initial_images(v, rep, codes, (SIDE, SIDE, 3))


@pytest.mark.parametrize("tap", ["stem", "logits"])
def test_saved_tap_decoders_reload_to_identical_outputs(tap, stem, logits, tmp_path):
    decoder, _ = {"stem": stem, "logits": logits}[tap]
    path = tmp_path / f"{tap}.npz"
    decoder.save(path)
    again = decoders.load(path)
    assert again.header() == decoder.header()
    codes = jax.random.normal(jax.random.PRNGKey(1), (2, 16, 16, 32) if tap == "stem"
                              else (2, 1000))
    np.testing.assert_array_equal(np.asarray(again(codes)), np.asarray(decoder(codes)))
    with np.load(path) as f:                                     # NumPy and json suffice
        header = json.loads(str(f["header"]))
        assert header["format"] == decoder_network.FORMAT == "jinvert-decoder-1"
        assert header["rep"] == f"efficientnet:{tap}"
        assert ("params/Dense_0/kernel" in f.files) == (tap == "logits")


def test_cli_trains_a_tap_decoder_resumably(tmp_path, capsys, two_photo_folder):
    folder = two_photo_folder
    out = str(tmp_path / "block2.npz")
    argv = ["train-decoder", "--rep", "efficientnet:block2", "--photos", str(folder),
            "--out", out, "--steps", "4", "--batch-size", "2", "--crop", "32", "--width", "8",
            "--blocks", "0", "--checkpoint-every", "2"]
    assert cli.main(argv) == 0
    err = capsys.readouterr().err
    assert "training a efficientnet:block2 decoder on 2 photos" in err
    assert "step 4/4 (100 %), loss" in err
    decoder = decoders.load(out)
    assert decoder.rep == "efficientnet:block2" and decoder.architecture["stride"] == 4
    assert decoder.training["feature_weight"] == 0.0 and decoder.training["step"] == 4
    # --resume from the finished checkpoint: nothing left, the same weights.
    again = str(tmp_path / "again.npz")
    assert cli.main(argv[:6] + [again] + argv[7:] + ["--checkpoint",
                                                     str(tmp_path / "block2.ckpt.npz"),
                                                     "--resume"]) == 0
    assert "resumed from" in capsys.readouterr().err
    for a, b in zip(jax.tree_util.tree_leaves(decoder.params),
                    jax.tree_util.tree_leaves(decoders.load(again).params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
    assert cli.main(["train-decoder", "--rep", "efficientnet:nope", "--photos", str(folder),
                     "--out", out]) == 2
    assert "unknown EfficientNet-Lite0 layer 'nope'" in capsys.readouterr().err


def test_resumed_tap_training_ends_where_an_uninterrupted_one_does(photos, tmp_path, capsys):
    settings = dataclasses.replace(TINY, steps=6, feature_weight=0.5)  # the feature path too
    full, _ = decoders.train("efficientnet:block2", photos[:2], settings, progress=False)
    ckpt = str(tmp_path / "ckpt.npz")

    class Stop(Exception):
        pass

    def interrupt(step, steps, losses):
        if step == 5:
            raise Stop  # a kill after step 5, before its checkpoint
    with pytest.raises(Stop):
        decoders.train("efficientnet:block2", photos[:2], settings, checkpoint=ckpt,
                       checkpoint_every=3, progress=interrupt)
    resumed, losses = decoders.train("efficientnet:block2", photos[:2], settings,
                                     checkpoint=ckpt, checkpoint_every=3, resume=True,
                                     progress=False)
    assert len(losses) == 3 and np.all(np.isfinite(losses))
    for a, b in zip(jax.tree_util.tree_leaves(full.params),
                    jax.tree_util.tree_leaves(resumed.params)):
        np.testing.assert_array_equal(np.asarray(a), np.asarray(b))
