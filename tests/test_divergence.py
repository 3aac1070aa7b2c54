"""A run whose samples diverge says so (jinvert.DivergenceWarning) instead
of handing back NaN images without a word; callers that restart diverged
starts themselves (the experiments) hear nothing."""

import warnings

import jax
import numpy as np
import pytest

import jinvert
from jinvert import divergence
from jinvert.experiments import common

SHAPE = (32, 32)


@pytest.fixture(scope="module")
def problem():
    rep = jinvert.hog()
    x = np.random.default_rng(0).random((*SHAPE, 1)).astype(np.float32) * 255
    return rep, np.asarray(rep(x)), rep.defaults.with_iterations(8)


def test_check_history_names_the_count_and_first_iteration():
    total = np.ones((2, 3, 10), np.float32)
    total[0, 1, 6:] = np.nan
    total[1, 2, 4:] = np.inf
    with pytest.warns(jinvert.DivergenceWarning,
                      match=r"^2 of 6 samples diverged .* from iteration 4 on"):
        divergence.check_history(total)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        divergence.check_history(np.ones((1, 1, 5)))  # finite: silent


def test_a_diverging_inversion_warns_and_a_sound_one_does_not(problem):
    rep, code, config = problem
    key = jax.random.PRNGKey(0)
    with pytest.warns(jinvert.DivergenceWarning, match=r"^2 of 2 samples diverged"):
        bad = jinvert.invert(rep, code, key=key, shape=SHAPE, samples=2,
                             config=config.replace(learning_rate=100.0))
    assert not np.isfinite(np.asarray(bad.images)).any(axis=(1, 2, 3)).any()
    with warnings.catch_warnings():
        warnings.simplefilter("error", jinvert.DivergenceWarning)
        good = jinvert.invert(rep, code, key=key, shape=SHAPE, samples=2, config=config)
    assert np.isfinite(np.asarray(good.images)).all()


def test_the_experiments_restart_divergence_without_the_warning(problem):
    rep, code, config = problem
    with warnings.catch_warnings():
        warnings.simplefilter("error", jinvert.DivergenceWarning)
        images, _, _ = common.invert_batch(rep, code[None], jax.random.PRNGKey(0)[None],
                                           config=config.replace(learning_rate=100.0),
                                           shape=(*SHAPE, 1))
    assert not np.isfinite(images).any()


def test_the_command_says_a_divergence_once_as_its_error(tmp_path, capsys):
    from PIL import Image

    from jinvert import cli

    photo = tmp_path / "photo.png"
    rng = np.random.default_rng(0)
    Image.fromarray(rng.uniform(0, 255, (30, 40, 3)).astype(np.uint8)).save(photo)
    code = cli.main(["invert", str(photo), "--rep", "hog", "--learning-rate", "100",
                     "--iterations", "8", "--max-size", "32", "--out", str(tmp_path / "o.png")])
    err = capsys.readouterr().err
    assert code == 2 and "jinvert: error: the optimisation diverged" in err
    assert "DivergenceWarning" not in err and not (tmp_path / "o.png").exists()
