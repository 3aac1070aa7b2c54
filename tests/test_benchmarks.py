"""The benchmarks behind published numbers, run at toy sizes: each table is
what its reconstructions score, scored here independently.

* ``benchmarks/priors.py`` (docs/priors.md): 3 of scikit-image's photos at
  32 × 32, 8 iterations, HOG, options ``paper`` and ``best``;
* ``benchmarks/decoder.py`` (docs/results.md): the bundled HOG decoder on
  3 photos at 48 × 48, 8 iterations.

The scores are recomputed from the kept images: their codes Φ(x*) computed
here, the errors from the paper's definition written out below (not
:func:`jinvert.reconstruction_error`), SSIM by scikit-image.
"""

import glob
import importlib.util
import json
import os
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

import jinvert
from jinvert import decoders, images
from jinvert.experiments import common
from jinvert.registry import resolve_representation

BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")


def _benchmark(name):
    """The module benchmarks/<name>.py (its ``main(argv)`` runs it)."""
    spec = importlib.util.spec_from_file_location(f"benchmark_{name}",
                                                  os.path.join(BENCHMARKS, f"{name}.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def _paper_error(codes, refs):
    """The paper's metric (Sect. 4), in %: ||Φ(x*_i) − Φ(x_i)|| over the mean
    distance between the codes of two different test images (j ≠ k)."""
    y = np.asarray(codes, np.float64).reshape(len(codes), -1)
    y0 = np.asarray(refs, np.float64).reshape(len(refs), -1)
    n = len(y0)
    pairs = np.linalg.norm(y0[:, None] - y0[None], axis=-1)
    return 100 * np.linalg.norm(y - y0, axis=1) / (pairs.sum() / (n * (n - 1)))


def _squared_error(codes, refs):
    """deep-goggle's variant, in %: ||Φ(x*_i) − Φ(x_i)||² over the mean
    squared distance of all N² ordered pairs of test codes (j = k included)."""
    y = np.asarray(codes, np.float64).reshape(len(codes), -1)
    y0 = np.asarray(refs, np.float64).reshape(len(refs), -1)
    pairs = np.sum((y0[:, None] - y0[None]) ** 2, axis=-1)
    return 100 * np.sum((y - y0) ** 2, axis=1) / pairs.mean()


def _codes(rep, xs):
    """Φ of each input-space image of ``xs`` ``(N, H, W, C)``, one at a time."""
    phi = jax.jit(rep.apply)
    return np.stack([np.asarray(phi(jnp.asarray(x))) for x in xs])


def _table(text, first_cells):
    """The cells of the Markdown table row of ``text`` that starts with
    ``first_cells``."""
    for line in text.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if cells[:len(first_cells)] == list(first_cells):
            return cells
    raise AssertionError(f"no table row {first_cells} in:\n{text}")


def _mean_std(cell):
    """``"m ± s"`` -> (m, s)."""
    mean, std = cell.split("±")
    return float(mean), float(std)


def _square_photos(photos, rep, size):
    """The photos resized and centre-cropped to size × size, in ``rep``'s input space."""
    return np.stack([np.asarray(rep.preprocess(images.resize_and_crop(
        p.pixels, (size, size), name=p.name))) for p in photos])


def test_priors_benchmark_scores_its_reconstructions(tmp_path, capsys):
    from skimage.metrics import structural_similarity

    out = tmp_path / "priors"
    _benchmark("priors").main(["--limit", "3", "--size", "32", "--iterations", "8",
                               "--reps", "hog", "--options", "paper,best", "--out", str(out)])
    printed = capsys.readouterr().out
    with open(out / "priors.json", encoding="utf-8") as f:
        saved = json.load(f)
    rep = resolve_representation("hog")
    photos = common.load_image_set(None, 3)
    assert saved["photos"] == [p.name for p in photos]
    x0 = _square_photos(photos, rep, 32)
    refs = _codes(rep, x0)
    grey = lambda x: np.clip((x[..., 0] + 128.0) / 255.0, 0.0, 1.0)  # noqa: E731  (255g − 128)
    kept = {}
    for row in saved["rows"]:
        option = row["option"]
        kept[option] = arrays = dict(np.load(out / f"hog-{option}.npz"))
        np.testing.assert_allclose(arrays["originals"], x0, rtol=0, atol=1e-4)
        np.testing.assert_allclose(arrays["reference_codes"], refs, rtol=1e-4, atol=1e-5)
        codes = _codes(rep, arrays["images"])                   # Φ of the kept images
        np.testing.assert_allclose(arrays["codes"], codes, rtol=1e-4, atol=1e-5)
        err, err_sq = _paper_error(codes, refs), _squared_error(codes, refs)
        sims = np.array([structural_similarity(grey(a), grey(b), gaussian_weights=True,
                                               sigma=1.5, use_sample_covariance=False,
                                               data_range=1.0)
                         for a, b in zip(arrays["images"], x0)])
        np.testing.assert_allclose(row["error"], err, rtol=1e-4)
        np.testing.assert_allclose(row["squared"], err_sq, rtol=1e-4)
        np.testing.assert_allclose(row["ssim"], sims, atol=1e-4)
        # The published table: mean ± population std (ddof 0) of those, to
        # its decimals.
        cells = _table(printed, ["hog", option])
        for cell, values, places in ((cells[2], err, 2), (cells[3], err_sq, 2),
                                     (cells[4], sims, 3)):
            assert _mean_std(cell) == pytest.approx(
                (values.mean(), values.std(ddof=0)), abs=0.6 * 10 ** -places)
        assert cells[5] == "0"                                  # none diverged
    assert sorted(kept) == ["best", "paper"]
    # 'paper' is a plain invert at the paper's settings (its schedule scaled
    # to 8 iterations), key PRNGKey(i) for photo i.
    config = rep.defaults.with_iterations(8)
    for i, code in enumerate(kept["paper"]["reference_codes"]):
        r = jinvert.invert(rep, code, shape=x0.shape[1:], key=jax.random.PRNGKey(i),
                           config=config)
        np.testing.assert_allclose(np.asarray(r.images[0]), kept["paper"]["images"][i],
                                   rtol=0, atol=1e-3)
    # The options are other methods: other reconstructions from the same photos.
    assert np.abs(kept["best"]["images"] - kept["paper"]["images"]).max() > 1.0


def test_decoder_benchmark_scores_its_runs(tmp_path, capsys):
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    for name, photo in (("a", data.camera()[:120, :150]), ("b", data.astronaut()[:150, :130]),
                        ("c", data.coffee()[:130, :160])):
        images.save_image(folder / f"{name}.png", photo / 255.0)
    out = tmp_path / "runs"
    path = os.path.join(os.path.dirname(decoders.__file__), "data", decoders.BUNDLED["hog"])
    benchmark = _benchmark("decoder")
    assert benchmark.main(
        ["--decoder", path, "--images", str(folder), "--first", "1", "--last", "3",
         "--iterations", "8", "--size", "48", "--out", str(out)]) == 0
    capsys.readouterr()
    with open(out / "decoder.json", encoding="utf-8") as f:
        saved = json.load(f)
    with open(out / "decoder.md", encoding="utf-8") as f:
        table = f.read()
    rows = {r["start"]: r for r in saved["rows"]}
    assert [r["iterations"] for r in saved["rows"]] == [0, 8, 8]
    rep = resolve_representation("hog")
    photos = common.load_image_set(str(folder))
    assert saved["photos"] == ["a", "b", "c"]
    x0 = _square_photos(photos, rep, 48)
    refs = _codes(rep, x0)
    keys = jnp.stack([common.image_key(jax.random.PRNGKey(0), p.name) for p in photos])
    config = rep.defaults.with_iterations(8)
    decoder = decoders.bundled("hog")

    def scored(label, reconstructions):
        """The row ``label`` holds the scores of ``reconstructions``, in its
        JSON and in the Markdown table (mean ± std, ddof 0, two decimals)."""
        codes = _codes(rep, reconstructions)
        err, err_sq = _paper_error(codes, refs), _squared_error(codes, refs)
        np.testing.assert_allclose(rows[label]["error"], err, rtol=1e-4)
        np.testing.assert_allclose(rows[label]["squared"], err_sq, rtol=1e-4)
        cells = _table(table, [label])
        assert _mean_std(cells[2]) == pytest.approx((err.mean(), err.std()), abs=6e-3)
        assert _mean_std(cells[3]) == pytest.approx((err_sq.mean(), err_sq.std()), abs=6e-3)
        # Image space: the pictures' distance to the photos over the mean
        # distance between two different photos, written out here.
        shown = np.clip(np.stack([np.asarray(rep.deprocess(x)) for x in reconstructions]), 0, 1)
        photos_shown = np.clip(np.stack([np.asarray(rep.deprocess(x)) for x in x0]), 0, 1)
        flat = shown.reshape(len(shown), -1).astype(np.float64)
        ref = photos_shown.reshape(len(shown), -1).astype(np.float64)
        pair = np.linalg.norm(ref[:, None] - ref[None], axis=-1)
        n = len(ref)
        pixel = 100 * np.linalg.norm(flat - ref, axis=1) / (pair.sum() / (n * (n - 1)))
        np.testing.assert_allclose(rows[label]["image_error"], pixel, rtol=1e-4)
        assert _mean_std(cells[5]) == pytest.approx((pixel.mean(), pixel.std()), abs=6e-3)
        assert all(-1 < v <= 1 for v in rows[label]["ssim"])
        return err

    # The decoder alone: its own output for each photo's code.
    alone = scored("decoder alone (one pass)", np.asarray(decoder(refs, x0.shape[1:])))
    # From noise: the kept run is a plain invert at the paper's settings
    # (schedule scaled to 8 iterations, Table 1's per-photo keys).
    with np.load(out / "noise-8-seed0.npz") as f:
        noise = f["images"]
    plain = jinvert.invert(rep, refs, key=keys, shape=x0.shape[1:], config=config)
    np.testing.assert_allclose(noise, np.asarray(plain.images)[:, 0], rtol=0, atol=1e-3)
    cold = scored(benchmark.NOISE, noise)
    # From the decoder: invert started at its output plus noise of norm 0.1.
    (warm_file,) = glob.glob(str(out / "decoder-*-8-seed0.npz"))
    with np.load(warm_file) as f:
        warm = f["images"]
    started = jinvert.invert(rep, refs, key=keys, shape=x0.shape[1:], config=config,
                             start=jinvert.Start(decoder, noise=0.1))
    np.testing.assert_allclose(warm, np.asarray(started.images)[:, 0], rtol=0, atol=1e-3)
    warmed = scored(benchmark.WARM, warm)
    # The three rows are three methods: after 8 iterations the runs from the
    # decoder keep most of its lead over the runs from noise.
    assert len({tuple(alone), tuple(cold), tuple(warmed)}) == 3
    assert warmed.mean() < 0.75 * cold.mean()


_FIRST_SLOW = ("import os, sys, time; c = os.environ['JINVERT_CACHE_DIR']; "
               "first = not os.path.exists(c); os.makedirs(c, exist_ok=True); "
               "time.sleep(0.8 if first else 0.2)")


def test_main_job_benchmark_times_first_run_and_rerun_on_one_fresh_cache(tmp_path, capsys):
    """benchmarks/main_job.py (README's timings of the main job): each trial
    gives the two runs one fresh cache, so a command that is slow only while
    its cache is empty reads slow then fast, in every trial; the ratio column
    is rerun / first of the row's own numbers and the medians are medians."""
    out = tmp_path / "t.md"
    command = f"{sys.executable} -c \"{_FIRST_SLOW}\""
    assert _benchmark("main_job").main(["--trials", "3", "--command", command,
                                        "--imports", "json,pytest", "--out", str(out)]) == 0
    rows = [r for r in out.read_text().splitlines() if r.startswith("| ")][1:]
    numbers = [[float(c.strip(" *")) for c in r.split("|")[2:5]] for r in rows]
    assert len(numbers) == 4
    for first, rerun, ratio in numbers[:3]:
        assert first >= 0.8 and 0.2 <= rerun < first - 0.4
        # From the unrounded seconds: the printed ones are rounded to 0.01 s.
        assert ratio == pytest.approx(rerun / first, abs=0.015)
    median = [sorted(n[i] for n in numbers[:3])[1] for i in (0, 1)]
    assert numbers[3][:2] == pytest.approx(median, abs=0.006)
    printed = capsys.readouterr().out
    assert "rerun / first <= 0.45" in printed
    # The import line: each module named with its own version (json has none).
    imports = re.search(r"`import json` ([0-9.]+) s \(no version\), "
                        r"`import pytest` ([0-9.]+) s \((.*?)\)", printed)
    assert imports and imports.group(3) == pytest.__version__
    assert 0 <= float(imports.group(1)) < 5 and imports.group(0) in out.read_text()
    if os.path.exists("/proc/stat"):
        assert re.search(r"stolen by the hypervisor during the trials: \d+ %", printed)


def test_main_job_benchmark_stolen_share_is_steal_over_all_time():
    """The steal line: stolen jiffies over all jiffies between two readings."""
    benchmark = _benchmark("main_job")
    assert benchmark.stolen_share((10, 100), (40, 200)) == pytest.approx(0.3)
    assert benchmark.stolen_share(None, (40, 200)) is None
    assert benchmark.stolen_share((10, 100), (10, 100)) is None


def test_decoder_taps_benchmark_scores_its_three_methods(tmp_path, capsys):
    """benchmarks/decoder_taps.py at 32 × 32, two taps (a spatial one and the
    vector logits), 2 training and 2 held-out photos: each table row is what
    its kept reconstructions score, recomputed here."""
    import dataclasses
    from skimage import data

    folder = tmp_path / "photos"
    folder.mkdir()
    for name, photo in (("a", data.astronaut()), ("b", data.coffee()), ("c", data.chelsea()),
                        ("d", data.rocket())):
        images.save_image(folder / f"{name}.png", photo / 255.0)
    out = tmp_path / "taps"
    benchmark = _benchmark("decoder_taps")
    assert benchmark.main(["--images", str(folder), "--photos", "2,2", "--taps", "stem,logits",
                           "--size", "32", "--steps", "4", "--iterations", "4", "--width", "8",
                           "--out", str(out)]) == 0
    capsys.readouterr()
    with open(out / "decoder_taps.json", encoding="utf-8") as f:
        saved = json.load(f)
    with open(out / "decoder_taps.md", encoding="utf-8") as f:
        table = f.read()
    assert saved["photos"] == ["c", "d"] and os.path.exists(out / "decoder_taps.png")
    photos = common.load_image_set(str(folder))[2:]
    # The held-out photos at 32 × 32 in EfficientNet's input space, (255·x − 127)/128.
    x0 = np.stack([(255 * images.resize_and_crop(p.pixels, (32, 32)) - 127) / 128
                   for p in photos]).astype(np.float32)
    keys = jnp.stack([common.image_key(jax.random.PRNGKey(0), p.name) for p in photos])
    for tap, entry in zip(("stem", "logits"), saved["taps"]):
        assert entry["tap"] == tap and entry["steps"] == 4 and entry["train_seconds"] > 0
        rep = dataclasses.replace(resolve_representation(f"efficientnet:{tap}"),
                                  input_size=None)               # any size, for invert
        refs = _codes(rep, x0)
        decoder = decoders.load(out / f"{tap}.npz")
        assert decoder.rep == f"efficientnet:{tap}" and decoder.training["step"] == 4
        rows = {r["method"]: r for r in entry["rows"]}
        config = rep.defaults.with_iterations(4)
        (noise_file,) = glob.glob(str(out / f"{tap}-*-noise.npz"))
        (warm_file,) = glob.glob(str(out / f"{tap}-*-decoder-*.npz"))
        kept = {}
        for key, path in (("noise", noise_file), ("warm", warm_file)):
            with np.load(path) as f:
                kept[key] = f["images"]
        # One run of each kind redone (each a compilation of EfficientNet's
        # step): from noise for stem, from the decoder for logits.
        if tap == "stem":
            plain = jinvert.invert(rep, refs, key=keys, shape=x0.shape[1:], config=config)
            np.testing.assert_allclose(kept["noise"], np.asarray(plain.images)[:, 0],
                                       atol=1e-3)
        else:
            warm = jinvert.invert(rep, refs, key=keys, shape=x0.shape[1:], config=config,
                                  start=jinvert.Start(decoder, noise=0.1))
            np.testing.assert_allclose(kept["warm"], np.asarray(warm.images)[:, 0], atol=1e-3)
        errs = []
        for label, reconstructions in (
                (benchmark.DECODER, np.asarray(decoder(refs, x0.shape[1:]))),
                (benchmark.OPTIMISATION, kept["noise"]), (benchmark.WARM, kept["warm"])):
            err = _paper_error(_codes(rep, reconstructions), refs)
            np.testing.assert_allclose(rows[label]["error"], err, rtol=1e-3)
            shown = np.clip((reconstructions * 128 + 127) / 255, 0, 1).reshape(2, -1)
            ref = np.clip((x0 * 128 + 127) / 255, 0, 1).reshape(2, -1).astype(np.float64)
            pixel = 100 * np.linalg.norm(shown - ref, axis=1) / np.linalg.norm(ref[0] - ref[1])
            np.testing.assert_allclose(rows[label]["image_error"], pixel, rtol=1e-4)
            assert all(-1 < v <= 1 for v in rows[label]["ssim"])
            # The Markdown table: this tap's section, mean ± population std.
            section = table.split(f"## {tap} ")[1].split("## ")[0]
            cells = _table(section, [label])
            assert _mean_std(cells[1]) == pytest.approx((err.mean(), err.std()), abs=6e-3)
            assert _mean_std(cells[2]) == pytest.approx((pixel.mean(), pixel.std()), abs=6e-3)
            errs.append(tuple(err))
        assert len(set(errs)) == 3                               # three methods, three results
