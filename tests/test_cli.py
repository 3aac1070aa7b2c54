"""The `jinvert` command: output written, one-line errors with exit 2 and
no traceback, Ctrl-C leaves no file, help texts."""

import os
import subprocess
import sys

import numpy as np
import pytest
from PIL import Image

from _toy import toy_rep
from jinvert import cli, registry
from jinvert.progress import Progress

FAST = ["--iterations", "12", "--max-size", "24"]


@pytest.fixture
def toy(monkeypatch):
    """Make every --rep name resolve to the small toy representation."""
    rep = toy_rep()
    monkeypatch.setattr(registry, "resolve_representation", lambda name, weights=None: rep)
    return rep


@pytest.fixture
def photo(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "photo.png"
    Image.fromarray((rng.uniform(0, 255, (30, 40, 3))).astype(np.uint8)).save(path)
    return path


def _one_error_line(capsys):
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1, err
    assert err.startswith("jinvert: error: ") and "Traceback" not in err
    return err


def test_invert_writes_labelled_montage(toy, photo, tmp_path, capsys, monkeypatch):
    from jinvert import images

    drawn = []
    real = images.labelled_montage
    monkeypatch.setattr(images, "labelled_montage",
                        lambda *a, **k: (lambda r: drawn.append(r[1]) or r)(real(*a, **k)))
    out = tmp_path / "out.png"
    code = cli.main(["invert", str(photo), "--rep", "dsift", "--samples", "2", "--out", str(out),
                     *FAST])
    assert code == 0
    with Image.open(out) as im:
        w, h = im.size
        pixels = np.asarray(im.convert("RGB"), np.float32)
    # Shrunk to 18×24 (longer side 24): original + 2 reconstructions, 4-pixel
    # gaps, unlabelled 26 pixels high; the title, labels and caption add rows.
    assert h > 18 + 8 + 3 * 12 and w >= 3 * 24 + 4 * 4
    printed = capsys.readouterr().out
    errors = [l for l in printed.splitlines() if "relative code error" in l]
    assert len(errors) == 2 and "wrote" in printed and "Table-1" in printed
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]
    # Every panel labelled, each reconstruction with the error printed for it.
    (texts,) = drawn
    title, original, rec1, rec2, caption = texts
    assert title.startswith("dsift (toy") and "photo.png" in title \
        and "12 iterations from noise" in title
    assert original.startswith("original")
    for k, (label, line) in enumerate([(rec1, errors[0]), (rec2, errors[1])], start=1):
        value = float(line.split("=")[1].split("%")[0])
        assert label.startswith(f"reconstruction {k}: error ") and label.endswith(" %")
        assert float(label.split()[-2]) == pytest.approx(value, abs=0.051)
    assert "||phi(x*)-phi(x0)|| / ||phi(x0)||" in caption
    # The label band above the tiles carries ink.
    assert (pixels[:20].min(axis=2) < 100).sum() > 30


def test_invert_prints_each_samples_ssim_to_the_photo(toy, photo, tmp_path, monkeypatch,
                                                     capsys):
    """Beyond the paper, image space: each sample's printed SSIM is that of
    its picture (deprocessed, clipped to [0, 1]) to the photo as the
    representation saw it, recomputed here with scikit-image."""
    import jinvert.inversion
    import jinvert.metrics
    from skimage.metrics import structural_similarity

    results, compared = [], []
    real_invert, real_ssim = jinvert.inversion.invert, jinvert.metrics.ssim
    monkeypatch.setattr(jinvert.inversion, "invert",
                        lambda *a, **k: (lambda r: results.append(r) or r)(real_invert(*a, **k)))
    monkeypatch.setattr(jinvert.metrics, "ssim",
                        lambda a, b, **k: compared.append((np.asarray(a), np.asarray(b)))
                        or real_ssim(a, b, **k))
    assert cli.main(["invert", str(photo), "--rep", "dsift", "--samples", "2",
                     "--out", str(tmp_path / "o.png"), *FAST]) == 0
    printed = [float(l.split("SSIM to the photo = ")[1]) for l in
               capsys.readouterr().out.splitlines() if "SSIM to the photo" in l]
    assert len(printed) == 2 and len(compared) == 2
    (result,) = results
    for k, ((picture, shown), value) in enumerate(zip(compared, printed)):
        expected = np.clip(np.asarray(toy.deprocess(result.images[k])), 0, 1)
        np.testing.assert_allclose(picture, expected, atol=1e-6)
        reference = structural_similarity(picture, shown, gaussian_weights=True, sigma=1.5,
                                          use_sample_covariance=False, data_range=1.0,
                                          channel_axis=-1)
        assert value == pytest.approx(reference, abs=2e-3)
    assert not np.allclose(compared[0][0], compared[0][1])  # not the photo itself


def test_code_error_is_the_norm_ratio():
    from jinvert.cli.invert import code_error

    code = np.array([3.0, 4.0])
    assert code_error(code, code) == 0
    assert code_error(np.array([3.0, 4.0 + 5.0]), code) == pytest.approx(1.0)
    assert code_error(np.array([0.0, 0.0]), code) == pytest.approx(1.0)
    assert np.isnan(code_error(code, np.zeros(2)))       # an all-zero reference code


def test_default_output_name(toy, photo, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert cli.main(["invert", str(photo), "--rep", "dsift", *FAST]) == 0
    assert (tmp_path / "photo-dsift.png").exists()


@pytest.mark.parametrize("argv, message", [
    (["invert", "no/such/file.png"], "not found"),
    (["invert", "--rep", "sift"], "unknown representation 'sift'; valid names: hog, hogb"),
    (["invert", "--rep", "alexnet"], "needs a layer"),
    (["invert", "--samples", "0"], "positive integer"),
    (["invert", "--lambda-tv", "nan"], "finite"),
    (["invert", "--out", "no/such/dir/x.png"], "output folder does not exist"),
    (["bogus"], "invalid choice"),
])
def test_bad_arguments_one_line_exit_2(argv, message, capsys):
    assert cli.main(argv) == 2
    assert message in _one_error_line(capsys)


def test_unreadable_image(toy, tmp_path, capsys):
    bad = tmp_path / "bad.png"
    bad.write_bytes(b"this is not a png")
    assert cli.main(["invert", str(bad), "--out", str(tmp_path / "o.png"), *FAST]) == 2
    assert "cannot read" in _one_error_line(capsys)
    assert not (tmp_path / "o.png").exists()


def test_blank_image_says_nothing_to_invert(toy, tmp_path, capsys):
    blank = tmp_path / "blank.png"
    Image.fromarray(np.full((20, 20, 3), 200, np.uint8)).save(blank)
    assert cli.main(["invert", str(blank), "--out", str(tmp_path / "o.png"), *FAST]) == 2
    assert "all zeros (a blank image?)" in _one_error_line(capsys)
    assert not (tmp_path / "o.png").exists()


def test_interrupt_during_inversion_writes_nothing(toy, photo, tmp_path, monkeypatch, capsys):
    import jinvert.inversion

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jinvert.inversion, "invert", interrupted)
    out = tmp_path / "o.png"
    assert cli.main(["invert", str(photo), "--rep", "dsift", "--out", str(out), *FAST]) == 130
    assert "interrupted" in capsys.readouterr().err
    assert os.listdir(tmp_path) == ["photo.png"]


def test_interrupt_while_writing_leaves_no_partial_file(toy, photo, tmp_path, monkeypatch):
    real_save = Image.Image.save

    def half_save(self, fp, *args, **kwargs):
        with open(fp, "wb") as f:  # a half-written file, then Ctrl-C
            f.write(b"\x89PNG partial")
        raise KeyboardInterrupt

    monkeypatch.setattr(Image.Image, "save", half_save)
    out = tmp_path / "o.png"
    assert cli.main(["invert", str(photo), "--rep", "dsift", "--out", str(out), *FAST]) == 130
    monkeypatch.setattr(Image.Image, "save", real_save)
    assert os.listdir(tmp_path) == ["photo.png"]


def test_help_documents_options(capsys):
    with pytest.raises(SystemExit) as info:
        cli.main(["invert", "--help"])
    assert info.value.code == 0
    text = capsys.readouterr().out
    for option in ["--rep", "--samples", "--iterations", "--lambda-tv", "--beta", "--seed",
                   "--size", "--max-size", "--weights", "--out", "hogb", "dsift",
                   "alexnet:LAYER", "256"]:
        assert option in text
    with pytest.raises(SystemExit):
        cli.main(["--help"])
    assert "invert" in capsys.readouterr().out and "weights" in cli.build_parser().format_help()


def test_help_lists_every_layer(capsys):
    from jinvert.representations import alexnet, efficientnet

    with pytest.raises(SystemExit):
        cli.main(["invert", "--help"])
    text = capsys.readouterr().out
    words = set(text.split())
    assert set(alexnet.LAYERS) <= words and set(efficientnet.LAYERS) <= words
    assert "efficientnet:block9" in text and "alexnet:relu5" in text
    assert "jinvert reproduce table1" in text       # where the paper's metric is
    assert "benchmarks/" not in text
    assert max(len(line) for line in text.splitlines()) <= 80


@pytest.mark.parametrize("family", ["efficientnet", "alexnet"])
def test_missing_layer_hint_names_real_layers(family, capsys):
    assert cli.main(["invert", "--rep", family]) == 2
    err = _one_error_line(capsys)
    layers = registry.layers(family)
    example = err.split("(e.g. ")[1].split(")")[0]
    assert example.startswith(f"{family}:") and example.split(":")[1] in layers
    assert all(name in err for name in layers)
    if family == "efficientnet":
        assert "relu5" not in err


def test_warnings_become_one_line_notes(toy, photo, tmp_path, monkeypatch, capsys):
    import warnings

    def warn_then_toy(name, weights=None):
        warnings.warn("alexnet: using random parameters (--weights random); they are "
                      "not a trained network", stacklevel=2)
        return toy

    monkeypatch.setattr(registry, "resolve_representation", warn_then_toy)
    assert cli.main(["invert", str(photo), "--out", str(tmp_path / "o.png"), *FAST]) == 0
    notes = [l for l in capsys.readouterr().err.splitlines() if "note" in l]
    assert notes == ["jinvert: note: alexnet: using random parameters (--weights random); "
                     "they are not a trained network"]


def test_random_weights_note_in_a_real_process(photo, tmp_path):
    """The real AlexNet with --weights random: one note line on stderr, no
    file path or Python warning; progress as plain lines (not a terminal)."""
    out = tmp_path / "ax.png"
    proc = subprocess.run(
        [sys.executable, "-m", "jinvert.cli", "invert", str(photo), "--rep", "alexnet:conv1",
         "--weights", "random", "--iterations", "2", "--out", str(out)],
        capture_output=True, text=True, cwd=tmp_path,
        env=dict(os.environ, PYTHONPATH=os.getcwd()), timeout=600)
    assert proc.returncode == 0, proc.stderr
    lines = proc.stderr.strip().splitlines()
    notes = [l for l in lines if l.startswith("jinvert: note:")]
    assert len(notes) == 2, lines     # random weights; the 30×40 photo enlarged
    assert any("random parameters" in n for n in notes)
    assert any("photo.png" in n and "enlarged" in n for n in notes)
    others = [l for l in lines if l not in notes]
    assert others[0] == "jinvert: compiling, then 2 iterations", lines
    assert others[1:] and all(l.startswith("jinvert: iteration ") for l in others[1:]), lines
    assert "Warning" not in proc.stderr and ".py" not in proc.stderr
    with Image.open(out) as im:
        pixels = np.asarray(im.convert("RGB"), np.int32)
    red = (pixels[..., 0] - pixels[..., 1] > 100) & (pixels[..., 0] > 150)
    assert red[:60].sum() > 20         # the red "random weights" mark near the top


def test_progress_lines_without_a_terminal():
    import io

    clock = iter(range(0, 10_000)).__next__
    stream = io.StringIO()
    progress = Progress(800, stream=stream, bar=False, clock=clock)  # clock 0
    for it in range(8, 801, 8):  # clock 1 (compiled) … 100
        progress(it, {"total": 1.0 / it, "data": 0.5 / it})
    progress.close()
    lines = stream.getvalue().splitlines()
    assert lines[0] == "jinvert: compiling, then 800 iterations"
    assert len(lines) == 11, lines
    # 72 iterations in 9 clock ticks after compiling: 8 it/s, 720 left.
    assert lines[1] == ("jinvert: iteration 80/800 (10 %), loss 0.0125, data term 0.00625, "
                        "8.0 it/s, about 90 s left, 10.0 s elapsed "
                        "(1.0 s of it compiling and the first 8 iteration(s))")
    assert lines[-1].startswith("jinvert: iteration 800/800 (100 %), loss")
    assert "left" not in lines[-1] and "compiling" not in lines[-1]
    assert all("s elapsed" in line for line in lines[1:])


def test_progress_lines_of_a_resumed_training():
    """Training's terms and unit, resumed after 200 of 1000 steps: the counts
    go on from 200 and the first line's compile note counts this run's steps."""
    import io

    clock = iter(range(0, 10_000)).__next__
    stream = io.StringIO()
    progress = Progress(1000, stream=stream, bar=False, clock=clock, start=200, unit="step",
                        terms={"loss": ("loss", ".2f"), "pixel": ("pixel", ".2f")})
    for step in range(210, 1001, 10):
        progress(step, {"loss": 2.0, "pixel": 0.5})
    lines = stream.getvalue().splitlines()
    assert lines[0] == "jinvert: compiling, then 800 steps (201 to 1000)"
    assert lines[1] == ("jinvert: step 300/1000 (30 %), loss 2.00, pixel 0.50, 10.0 steps/s, "
                        "about 70 s left, 10.0 s elapsed (1.0 s of it compiling and the "
                        "first 10 step(s))")
    assert len(lines) == 1 + 8 and lines[-1].startswith("jinvert: step 1000/1000 (100 %)")


def test_progress_bar_clock_starts_after_compilation():
    """On a terminal, the bar's estimate ignores the first (compiling) step:
    a bar created at the first callback, its count starting there."""
    import io

    pytest.importorskip("tqdm")
    stream = io.StringIO()
    progress = Progress(800, stream=stream, bar=True)
    assert progress.bar is not None and "compiling" in progress.bar.desc
    import time as _time
    _time.sleep(0.3)                                   # "compilation"
    progress(8, {"total": 1.0, "data": 0.5})
    info = progress.bar.format_dict
    assert info["initial"] == 8 and info["n"] == 8 and info["elapsed"] < 0.2
    progress(16, {"total": 1.0, "data": 0.5})
    assert progress.bar.n == 16
    progress.close()


def test_weights_fetch_calls_library(monkeypatch, capsys):
    import types

    calls = []
    fake = types.SimpleNamespace(fetch=lambda name, url=None, cache_dir=None:
                                 calls.append((name, url, cache_dir)) or "/cache/x.mat")
    monkeypatch.setitem(sys.modules, "jinvert.weights", fake)
    import jinvert
    monkeypatch.setattr(jinvert, "weights", fake, raising=False)
    assert cli.main(["weights", "fetch", "caffenet", "--url", "http://x/y"]) == 0
    assert calls == [("caffenet", "http://x/y", None)]
    assert capsys.readouterr().out.strip() == "/cache/x.mat"


def test_unknown_name_from_registry():
    with pytest.raises(ValueError, match="valid names: hog, hogb, dsift, alexnet:LAYER"):
        registry.resolve_representation("nope")


def test_real_process_has_no_traceback(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "jinvert.cli", "invert", "missing.png"],
                          capture_output=True, text=True, cwd=tmp_path,
                          env=dict(os.environ, PYTHONPATH=os.getcwd()))
    assert proc.returncode == 2
    assert proc.stderr.strip() == "jinvert: error: image file not found: missing.png"


def test_real_hog_end_to_end(photo, tmp_path, capsys):
    pytest.importorskip("jinvert.representations.hog")
    out = tmp_path / "hog.png"
    assert cli.main(["invert", str(photo), "--rep", "hogb", "--out", str(out),
                     "--iterations", "8", "--max-size", "32"]) == 0
    with Image.open(out) as im:
        assert im.size[1] > 24 + 8  # 30×40 shrunk to 24×32, padding and labels
    assert "relative code error" in capsys.readouterr().out


def test_beyond_the_paper_options_change_the_reconstruction(toy, photo, tmp_path):
    """--parameterization fourier / --jitter / --optimizer adam reach invert():
    the same seed gives another picture than the paper's setting."""
    paths = {}
    for name, extra in [("paper", []),
                        ("fourier", ["--parameterization", "fourier", "--jitter", "1",
                                     "--optimizer", "adam", "--learning-rate", "0.001"])]:
        paths[name] = tmp_path / f"{name}.png"
        assert cli.main(["invert", str(photo), "--rep", "dsift", "--out", str(paths[name]),
                         *FAST, *extra]) == 0
    a, b = (np.asarray(Image.open(p), np.float32) for p in paths.values())
    # the tiles sit at the bottom, above the caption (labels may wrap differently)
    assert a.shape[1] == b.shape[1] and np.abs(a[-45:] - b[-45:]).max() > 10


def test_negative_jitter_is_one_line_error(toy, photo, capsys):
    assert cli.main(["invert", str(photo), "--rep", "dsift", "--jitter", "-2", *FAST]) == 2
    assert "--jitter" in _one_error_line(capsys)


_COUNT_CACHE_HITS = """
import sys
import jax.monitoring
hits, misses = [], []
jax.monitoring.register_event_listener(
    lambda event, **kw: hits.append(event) if event.endswith("/cache_hits")
    else misses.append(event) if event.endswith("/cache_misses") else None)
from jinvert import cli
status = cli.main(sys.argv[1:])
print("cache hits:", len(hits), "cache misses:", len(misses))
sys.exit(status)
"""


def test_a_second_run_loads_its_programs_from_the_cache(photo, tmp_path):
    """The command keeps every program it compiles in JINVERT_CACHE_DIR (the
    small ones too): the first run writes them, a second process reads them
    all back (JAX's own counts of persistent-cache hits and misses) and
    compiles nothing."""
    cache = tmp_path / "cache"
    env = dict(os.environ, PYTHONPATH=os.getcwd(), JINVERT_CACHE_DIR=str(cache))
    hits = []
    for run in range(2):
        proc = subprocess.run(
            [sys.executable, "-c", _COUNT_CACHE_HITS, "invert", str(photo), "--iterations", "3",
             "--out", str(tmp_path / f"o{run}.png")],
            capture_output=True, text=True, cwd=tmp_path, env=env, timeout=600)
        assert proc.returncode == 0, proc.stderr
        counts = proc.stdout.split("cache hits:")[1].split("cache misses:")
        hits.append((int(counts[0]), int(counts[1])))
        if run == 0:
            assert any(p.name.startswith("jit_step") for p in cache.iterdir())
    (first_hits, first_misses), (second_hits, second_misses) = hits
    assert first_hits == 0 and first_misses >= 1, hits
    # And few programs in all (each costs a lowering and a cache read on
    # every run): op by op, the photo's checks, SSIM, the optimiser's state
    # and the results' unpacking made 62 (issue 28), now 16.
    assert first_misses <= 20, hits
    assert second_misses == 0 and second_hits == first_misses, hits


def test_compilation_cache_directory(monkeypatch, tmp_path):
    from jinvert import compilation_cache

    monkeypatch.setenv("JINVERT_CACHE_DIR", "")
    assert compilation_cache.default_directory() is None
    monkeypatch.delenv("JINVERT_CACHE_DIR")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert compilation_cache.default_directory() == str(tmp_path / "jinvert" / "jax")


def test_maximize_writes_labelled_maxima(toy, tmp_path, capsys, monkeypatch):
    from jinvert import images

    drawn = []
    real = images.labelled_montage
    monkeypatch.setattr(images, "labelled_montage",
                        lambda *a, **k: (lambda r: drawn.append(r[1]) or r)(real(*a, **k)))
    out = tmp_path / "max.png"
    assert cli.main(["maximize", "--rep", "toy", "--channel", "1,4", "--iterations", "12",
                     "--out", str(out)]) == 0
    assert out.exists()
    captured = capsys.readouterr()
    printed = captured.out
    lines = [l for l in printed.splitlines() if l.startswith("channel ")]
    assert len(lines) == 2 and "wrote" in printed
    # The work outside the optimisation says what it is (no silent stretch).
    assert "jinvert: computing Z of 2 objective(s)" in captured.err, captured.err
    (texts,) = drawn
    title, tile1, tile2, caption = texts
    assert "activation maxima" in title and "12 iterations" in title
    for tile, line, c in ((tile1, lines[0], 1), (tile2, lines[1], 4)):
        assert tile.startswith(f"channel {c}: ") and line.startswith(f"channel {c}: reached ")
        # The tile shows 3 significant digits, the line 4.
        assert float(tile.split()[2]) == pytest.approx(float(line.split()[3]), rel=5e-3)


def test_caricature_writes_photo_and_caricature(toy, photo, tmp_path, capsys):
    out = tmp_path / "car.png"
    assert cli.main(["caricature", str(photo), "--rep", "toy", "--iterations", "12",
                     "--out", str(out)]) == 0
    printed = capsys.readouterr().out
    assert out.exists() and "projection" in printed and "(1 at the photo)" in printed


@pytest.mark.parametrize("argv, message", [
    (["maximize", "--rep", "toy", "--class", "3"], "classifier's output"),
    (["maximize", "--rep", "toy", "--channel", "9"], "outside"),
    (["maximize", "--rep", "toy", "--neuron", "1,x,2"], "integers"),
    (["maximize", "--rep", "toy"], "one of the arguments"),
    (["maximize", "--rep", "toy", "--channel", "1", "--data-weight", "0"], "data_weight"),
    (["caricature", "--rep", "toy", "--data-weight", "0"], "data_weight"),
])
def test_maximize_bad_arguments_one_line_exit_2(toy, argv, message, capsys, tmp_path,
                                                monkeypatch):
    monkeypatch.chdir(tmp_path)  # a run that wrongly succeeds writes its PNG there
    assert cli.main(argv) == 2
    assert message in _one_error_line(capsys)


def _spy(monkeypatch, module, name):
    """Replace ``module.name`` by a wrapper that records its keyword
    arguments and calls the real function; returns the list of records."""
    calls, real = [], getattr(module, name)
    monkeypatch.setattr(module, name, lambda *a, **k: calls.append(k) or real(*a, **k))
    return calls


def test_invert_jitter_and_adam_reach_invert(toy, photo, tmp_path, monkeypatch):
    """`--jitter 3 --optimizer adam --learning-rate 0.002`: invert() is given
    a transform that shifts an image by every offset in [−3, 3]² and no
    more, and an optimiser whose updates are optax.adam(0.002)'s."""
    import jax
    import jax.numpy as jnp
    import optax

    import jinvert.inversion
    from jinvert.transforms import jitter

    calls = _spy(monkeypatch, jinvert.inversion, "invert")
    assert cli.main(["invert", str(photo), "--rep", "dsift", "--jitter", "3", "--optimizer",
                     "adam", "--learning-rate", "0.002", "--out", str(tmp_path / "o.png"),
                     *FAST]) == 0
    (kwargs,) = calls
    transform, optimizer = kwargs.get("transforms"), kwargs.get("optimizer")
    if transform is None and kwargs["config"].jitter:  # the same jitter, by the config
        transform = jitter(kwargs["config"].jitter)
    assert transform is not None, "--jitter 3 did not reach invert()"
    impulse = jnp.zeros((16, 16, 1)).at[8, 8, 0].set(1.0)
    moved = jax.vmap(lambda k: transform(k, impulse))(
        jax.random.split(jax.random.PRNGKey(0), 400))
    at = np.asarray(jnp.argmax(moved.reshape(400, -1), axis=1))
    dy, dx = at // 16 - 8, at % 16 - 8
    assert set(dy) == set(dx) == set(range(-3, 4))
    if optimizer is None:
        optimizer = kwargs["config"].optimizer()
    reference = optax.adam(0.002)
    params = jnp.zeros(3)
    s1, s2 = optimizer.init(params), reference.init(params)
    for i in range(4):
        g = jnp.sin(jnp.arange(3.0) + i) * 10.0 ** i
        u1, s1 = optimizer.update(g, s1, params)
        u2, s2 = reference.update(g, s2, params)
        np.testing.assert_allclose(np.asarray(u1), np.asarray(u2), rtol=1e-6)


def test_invert_defaults_are_the_papers(toy, photo, tmp_path, monkeypatch):
    """Without the options: no jitter and the paper's SGD (the config's)."""
    import jinvert.inversion

    calls = _spy(monkeypatch, jinvert.inversion, "invert")
    assert cli.main(["invert", str(photo), "--rep", "dsift", "--out", str(tmp_path / "o.png"),
                     *FAST]) == 0
    (kwargs,) = calls
    assert kwargs.get("transforms") is None and kwargs["config"].jitter == 0
    assert kwargs.get("optimizer") is None and kwargs["config"].update_rule == "sgd"


def _ijcv(rep, c):
    from jinvert.recipes import recipe

    return recipe(rep, "ijcv", data_weight=c)


@pytest.mark.parametrize("command", ["maximize", "caricature"])
def test_preimage_options_reach_the_engine(command, toy, photo, tmp_path, monkeypatch, capsys):
    """--jitter, --learning-rate, --data-weight, --samples and --iterations
    reach jinvert.maximize (which caricature runs too); without them C is
    the documented 1 (maximize) or 10 (caricature), Adam 1e-4, jitter 1."""
    import jinvert.preimages

    what = ["--channel", "1"] if command == "maximize" else [str(photo)]
    calls = _spy(monkeypatch, jinvert.preimages, "maximize")
    assert cli.main([command, *what, "--rep", "toy", "--iterations", "5", "--jitter", "0",
                     "--learning-rate", "0.0007", "--data-weight", "2.5", "--samples", "2",
                     "--out", str(tmp_path / "a.png")]) == 0
    assert cli.main([command, *what, "--rep", "toy", "--iterations", "6",
                     "--out", str(tmp_path / "b.png")]) == 0
    given, default = calls
    expected = _ijcv(toy, 2.5)
    assert given["samples"] == 2 and given["config"].iterations == 5
    assert (given["config"].jitter, given["config"].learning_rate) == (0, 0.0007)
    assert given["config"].lambda_tv == pytest.approx(expected.lambda_tv, rel=1e-6)
    assert given["config"].lambda_range == pytest.approx(expected.lambda_range, rel=1e-6)
    c = 1.0 if command == "maximize" else 10.0
    assert default["samples"] == 1 and default["config"].iterations == 6
    assert (default["config"].jitter, default["config"].learning_rate) == (1, 1e-4)
    assert default["config"].lambda_tv == pytest.approx(_ijcv(toy, c).lambda_tv, rel=1e-6)
    assert default["config"].lambda_range == pytest.approx(_ijcv(toy, c).lambda_range,
                                                           rel=1e-6)
    # Two samples printed in the first run, one in the second.
    first, second = capsys.readouterr().out.split("wrote ")[:2]
    key = "reached " if command == "maximize" else "||^2: "
    count = lambda text: len(text.split(key)[1].split("(")[0].split(","))  # noqa: E731
    assert (count(first), count(second)) == (2, 1)


def test_seconds_since_start_counts_from_the_process_start():
    """The time jinvert invert prints as 'since the command started' counts
    start-up too: in a process that slept 1.5 s before asking, at least that."""
    script = ("import time; time.sleep(1.5); from jinvert.cli.invert import seconds_since_start; "
              "print(seconds_since_start())")
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    seconds = float(done.stdout.strip())
    assert 1.5 <= seconds < 100, seconds


@pytest.mark.parametrize("command", ["invert", "maximize", "caricature"])
def test_an_unwritable_output_fails_before_any_work(command, toy, tmp_path, monkeypatch, capsys):
    """An output folder that refuses writes is one line and exit 2 before the
    optimisation starts (it used to fail after it, with a raw '[Errno 30] …
    x.png.partial-NNNN'): nothing is inverted."""
    import jinvert.images as images_module
    from jinvert import cli

    locked = tmp_path / "locked"
    locked.mkdir()
    real_open = open

    def refusing_open(path, *args, **kwargs):  # as a read-only file system would
        if str(path).startswith(str(locked)):
            raise OSError(30, "Read-only file system", str(path))
        return real_open(path, *args, **kwargs)

    monkeypatch.setattr("builtins.open", refusing_open)
    started = []
    monkeypatch.setattr("jinvert.registry.resolve_representation",
                        lambda *a, **k: started.append(1) or toy)
    argv = {"invert": ["invert", "--rep", "toy"],
            "maximize": ["maximize", "--rep", "toy", "--channel", "0"],
            "caricature": ["caricature", "--rep", "toy"]}[command]
    assert cli.main([*argv, "--out", str(locked / "x.png")]) == 2
    err = capsys.readouterr().err
    assert f"cannot write {locked / 'x.png'}: Read-only file system" in err, err
    assert len(err.strip().splitlines()) == 1 and started == [], err
    assert images_module.check_output(str(tmp_path / "x.png")) == str(tmp_path / "x.png")
    assert not list(tmp_path.glob(".x.png.probe-*"))            # the probe is removed


def test_a_class_that_does_not_exist_is_named_as_a_class(toy):
    """`maximize --class 5000` on a 1000-class output speaks of classes."""
    import dataclasses

    import jax

    from jinvert.experiments.preimages import objectives_for

    vector = dataclasses.replace(toy, name="classes",
                                 apply=lambda x: jax.numpy.mean(x) * jax.numpy.ones(1000))
    with pytest.raises(ValueError, match=r"no class 5000: classes has 1000 classes, "
                                         r"numbered 0 to 999"):
        objectives_for(vector, (8, 8, 1), classes="130,5000")
    labels, _ = objectives_for(vector, (8, 8, 1), classes="130,999")
    assert labels[0].startswith("class 130") and labels[1] == "class 999"
