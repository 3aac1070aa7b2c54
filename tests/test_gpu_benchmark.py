"""The PyTorch side of ``benchmarks/gpu.py`` computes what jinvert computes:
the same codes (HOG, HOGb, DSIFT, AlexNet, EfficientNet-Lite0), the same
energy and gradient, the same paper_sgd trajectory (skipped without torch);
it is written independently of jinvert (it imports nothing from it, checked
on its source); its timer reads a loop's cost per iteration off runs of
n and 2n; and a run's state file resumes only what it should. (The
roofline and the CPU run of gpu.py: tests/test_roofline.py.)"""

import ast
import importlib.util
import os
import sys

import jax
import jax.numpy as jnp
import numpy as np
import pytest

sys.path.insert(0, os.path.join(os.path.dirname(__file__), "..", "benchmarks"))
import gpu_state  # noqa: E402
import timing  # noqa: E402

HAVE_TORCH = importlib.util.find_spec("torch") is not None
if HAVE_TORCH:
    import torch
    import torch_features
    import torch_inversion
needs_torch = pytest.mark.skipif(not HAVE_TORCH,
                                 reason="the benchmark's PyTorch side needs torch")

from jinvert import Loop, image_energy, images, invert  # noqa: E402
from jinvert.parameterizations import pixels, init_batch  # noqa: E402
from jinvert.representations import alexnet as A  # noqa: E402
from jinvert.representations import efficientnet as E  # noqa: E402
from jinvert.representations.dsift import dsift  # noqa: E402
from jinvert.representations.hog import hog  # noqa: E402


def _nchw(x):
    return torch.from_numpy(np.array(x)).permute(2, 0, 1)[None].contiguous()


def _photo(size):
    return images.resize_and_crop(images.load_image(), size)


def _max_relative(a, b):
    return float(np.max(np.abs(np.asarray(a) - np.asarray(b))) / np.max(np.abs(np.asarray(b))))


BENCHMARKS = os.path.join(os.path.dirname(__file__), "..", "benchmarks")
#: The PyTorch references, and what they may take from jinvert: readers of
#: weights only, so that a parity test never compares jinvert with itself.
#: The PyTorch references, relative to the repository root.
REFERENCES = ("benchmarks/torch_features.py", "benchmarks/torch_inversion.py",
              "jinvert/representations/efficientnet_torch.py")
WEIGHT_LOADERS = {"jinvert.weights": {"load"},
                  "jinvert.representations.efficientnet": {"load_params"}}


def _jinvert_imports(source: str) -> list[str]:
    """What ``source`` takes from jinvert beyond :data:`WEIGHT_LOADERS`:
    ``import jinvert…`` (the whole module), ``from jinvert… import name``,
    ``importlib.import_module("jinvert…")`` / ``__import__``, at any depth."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [a.name for a in node.names if a.name.split(".")[0] == "jinvert"]
        elif isinstance(node, ast.ImportFrom):
            module = node.module or ""
            if node.level == 0 and module.split(".")[0] == "jinvert":
                allowed = WEIGHT_LOADERS.get(module, set())
                found += [f"{module}.{a.name}" for a in node.names if a.name not in allowed]
        elif isinstance(node, ast.Call) and node.args:
            func = node.func
            name = func.attr if isinstance(func, ast.Attribute) else getattr(func, "id", "")
            arg = node.args[0]
            if (name in ("import_module", "__import__") and isinstance(arg, ast.Constant)
                    and str(arg.value).split(".")[0] == "jinvert"):
                found.append(str(arg.value))
    return found


def test_jinvert_import_finder_sees_every_form():
    # The finder itself: each way of reaching jinvert is caught, the
    # weight loaders and other packages are not.
    assert _jinvert_imports("import jinvert.representations.hog as h") == [
        "jinvert.representations.hog"]
    assert _jinvert_imports("def f():\n    from jinvert.representations import hog") == [
        "jinvert.representations.hog"]
    assert _jinvert_imports("from jinvert.representations.efficientnet import load_params, "
                            "_same_padding") == ["jinvert.representations.efficientnet."
                                                 "_same_padding"]
    assert _jinvert_imports("importlib.import_module('jinvert.representations.dsift')") == [
        "jinvert.representations.dsift"]
    assert _jinvert_imports("from jinvert.weights import load\nimport torch\n"
                            "from .jinvert import x") == []


@pytest.mark.parametrize("name", REFERENCES)
def test_torch_references_import_nothing_from_jinvert(name):
    with open(os.path.join(BENCHMARKS, "..", name), encoding="utf-8") as f:
        assert _jinvert_imports(f.read()) == []


SHALLOW = {
    "hog": (lambda: hog(texture=False), lambda s: torch_features.hog(s)),
    "hogb": (lambda: hog(bilinear=True, texture=False),
             lambda s: torch_features.hog(s, bilinear=True)),
    "hog31": (lambda: hog(texture=True), lambda s: torch_features.hog(s, texture=True)),
    "dsift": (lambda: dsift(), lambda s: torch_features.dsift(s)),
}


@needs_torch
@pytest.mark.parametrize("name", sorted(SHALLOW))
def test_shallow_codes_match_jinvert(name):
    # An odd size: the cell grids and the border handling must agree too.
    make_rep, make_phi = SHALLOW[name]
    rep, shape = make_rep(), (61, 75)
    x0 = np.asarray(rep.preprocess(_photo(shape)))
    expected = np.asarray(rep(x0))
    got = make_phi(shape)(_nchw(x0))[0].numpy()
    assert got.shape == expected.shape
    assert _max_relative(got, expected) < 1e-5


@needs_torch
def test_alexnet_code_matches_jinvert():
    params = A.random_params(jax.random.PRNGKey(1), bias=0.1)
    rep = A.alexnet(params, "conv3")
    x0 = np.asarray(rep.preprocess(_photo((227, 227))))
    expected = np.asarray(rep(x0))                               # (13, 13, 384)
    got = torch_features.alexnet(params, "conv3")(_nchw(x0))[0].permute(1, 2, 0).numpy()
    assert _max_relative(got, expected) < 1e-4


@needs_torch
def test_efficientnet_code_matches_jinvert():
    # Random weights at a small size: the stride-2 "SAME" paddings are the
    # part that is easy to get wrong (an even size pads bottom/right only).
    params = E.random_params(jax.random.PRNGKey(2))
    x = np.random.default_rng(0).standard_normal((1, 64, 64, 3)).astype(np.float32)
    for layer in ("block4", "logits"):
        expected = np.asarray(E.forward(params, jnp.asarray(x), layer))
        got = torch_features.efficientnet(params, layer)(_nchw(x[0]))
        got = (got.permute(0, 2, 3, 1) if got.ndim == 4 else got).numpy()
        assert _max_relative(got, expected) < 1e-4, layer


def _torch_loop(rep, shape, config, samples, key):
    """jinvert's start for (key, samples) and a TorchInversion from it."""
    phi = {"hogb": lambda: torch_features.hog(shape[:2], bilinear=True),
           "dsift": lambda: torch_features.dsift(shape[:2])}[rep.name]()
    x0 = np.asarray(rep.preprocess(_photo(shape[:2])))
    start = np.asarray(init_batch(pixels(), key, (1, samples), shape))[0]
    loop = torch_inversion.TorchInversion(
        phi, _nchw(x0)[0], config.sized(shape, rep.sigma), samples,
        start=torch.from_numpy(np.array(start)).permute(0, 3, 1, 2).contiguous())
    return loop, x0


@needs_torch
@pytest.mark.parametrize("make_rep", [lambda: hog(bilinear=True, texture=False), dsift],
                         ids=["hogb", "dsift"])
def test_energy_and_gradient_match_jinvert(make_rep):
    rep, shape = make_rep(), (40, 48, 1)
    loop, x0 = _torch_loop(rep, shape, rep.defaults, 1, jax.random.PRNGKey(3))
    config = rep.defaults.sized(shape, rep.sigma)
    code = jnp.asarray(rep(x0))
    terms = loop.terms(loop.u)
    (grad,) = torch.autograd.grad(terms["total"].sum(), loop.u)
    x = jnp.asarray(loop.u.detach()[0].permute(1, 2, 0).numpy()) * config.sigma
    (_, expected), jgrad = jax.jit(jax.value_and_grad(
        lambda x: (image_energy(rep, x, code)["total"], image_energy(rep, x, code)),
        has_aux=True))(x)
    for name in ("data", "alpha", "tv", "total"):
        np.testing.assert_allclose(float(terms[name][0].detach()), float(expected[name]),
                                   rtol=1e-4)
    # d/du of E(σu) is σ·dE/dx.
    jgrad = config.sigma * jgrad
    np.testing.assert_allclose(grad[0].permute(1, 2, 0).numpy(), np.asarray(jgrad),
                               rtol=2e-3, atol=2e-3 * float(jnp.max(jnp.abs(jgrad))))


@needs_torch
def test_paper_sgd_trajectory_matches_invert():
    # Two stages: the learning-rate drop and the momentum restart must be
    # the same, or the images part after the third iteration.
    rep, shape, key = hog(bilinear=True, texture=False), (40, 48, 1), jax.random.PRNGKey(4)
    config = rep.defaults.replace(stages=(4, 4))
    loop, x0 = _torch_loop(rep, shape, config, 2, key)
    expected = invert(rep, rep(x0), key=key, shape=shape, samples=2, config=config,
                      loop=Loop(progress=False)).images
    got = loop.run().permute(0, 2, 3, 1).numpy()
    assert _max_relative(got, expected) < 1e-4  # measured 3e-7; without the
    # momentum restart 0.2, without the learning-rate drop 1.1.
    # And the loop moved the start by much more than that.
    start = config.sized(shape, rep.sigma).sigma * np.asarray(
        init_batch(pixels(), key, (1, 2), shape))[0]
    assert _max_relative(start, expected) > 1e-2


def test_per_iteration_separates_fixed_cost_and_compilation():
    calls = []

    def run(n):  # 0.5 s per call, 10 ms per iteration, 3 s more the first time
        calls.append(n)
        return 0.5 + 0.01 * n + (3.0 if len(calls) == 1 else 0.0)

    t = timing.per_iteration(run, 20, repeats=2)
    assert t.iteration == pytest.approx(0.01)
    assert t.fixed == pytest.approx(0.5)
    assert t.first == pytest.approx(3.0)
    # Both lengths run once untimed, then `repeats` times each.
    assert calls == [20, 40, 20, 20, 40, 40]
    with pytest.raises(ValueError):
        timing.per_iteration(run, 0)


def test_state_resumes_only_rows_of_the_same_settings(tmp_path):
    path = str(tmp_path / "state.jsonl")
    settings = {"device": "cpu", "iterations": 3}
    state = gpu_state.State(path, settings)
    state.put({"jinvert_ms": 1.0}, kind="row", rep="hog", samples=1, per_call=None)
    state.put({"jinvert_ms": 2.0}, kind="row", rep="hog", samples=1, per_call=None)  # later wins
    state.put({"line": "hog 1e-7"}, kind="parity")
    gpu_state.State(path, {"device": "cpu", "iterations": 50}).put(
        {"jinvert_ms": 9.0}, kind="row", rep="hog", samples=8, per_call=None)
    with open(path, "a") as f:
        f.write('{"settings": {"device": "cpu", "iter')  # a line cut off by a kill
    again = gpu_state.State(path, settings)
    assert again.get(kind="row", rep="hog", samples=1, per_call=None) == {"jinvert_ms": 2.0}
    assert again.get(rep="hog", samples=1, per_call=None, kind="row") == {"jinvert_ms": 2.0}
    assert again.get(kind="row", rep="hog", samples=1, per_call=10) is None
    assert again.get(kind="row", rep="hog", samples=8, per_call=None) is None  # other settings
    assert again.get(kind="parity") == {"line": "hog 1e-7"}
    assert len(again) == 2 and again.ignored == 2
