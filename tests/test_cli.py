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


def test_invert_writes_montage(toy, photo, tmp_path, capsys):
    out = tmp_path / "out.png"
    code = cli.main(["invert", str(photo), "--rep", "dsift", "--samples", "2", "--out", str(out),
                     *FAST])
    assert code == 0
    with Image.open(out) as im:
        w, h = im.size
    # Shrunk to 18×24 (longer side 24): original + 2 reconstructions, 4-pixel gaps.
    assert h == 18 + 8 and w == 3 * 24 + 4 * 4
    printed = capsys.readouterr().out
    assert printed.count("relative error") == 2 and "wrote" in printed
    assert not [p for p in os.listdir(tmp_path) if "partial" in p]


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
    import jinvert.optimize

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(jinvert.optimize, "invert", interrupted)
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
        assert im.size[1] == 24 + 8  # 30×40 shrunk to 24×32, plus padding
    assert "relative error" in capsys.readouterr().out


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
    assert a.shape == b.shape and np.abs(a - b).max() > 10


def test_negative_jitter_is_one_line_error(toy, photo, capsys):
    assert cli.main(["invert", str(photo), "--rep", "dsift", "--jitter", "-2", *FAST]) == 2
    assert "--jitter" in _one_error_line(capsys)
