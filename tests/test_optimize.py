"""The inversion engine: the loss falls, keys, vmapped samples and batches,
momentum reset at stage changes (against a NumPy transcription of the
reference update), masks, compilation cache, callbacks, input checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from _toy import toy_image, toy_rep
from jinvert.config import Config
from jinvert.masks import central_mask
from jinvert import DivergenceWarning, Loop, invert
from jinvert.parameterizations import initial_noise

REP = toy_rep()
X0 = toy_image((16, 16, 1))
CODE = np.asarray(REP.apply(jnp.asarray(X0)))
CONFIG = Config(learning_rate=0.004, stages=(30, 30), lambda_alpha=2e3, lambda_tv=0.5)
FAST = dict(shape=(16, 16), config=CONFIG)


def test_loss_falls_and_shapes():
    r = invert(REP, CODE, key=jax.random.PRNGKey(0), samples=3, **FAST)
    assert r.images.shape == (3, 16, 16, 1) and r.images.dtype == jnp.float32
    assert r.codes.shape == (3,) + CODE.shape
    assert set(r.history) == {"data", "alpha", "tv", "total"}
    assert all(v.shape == (3, 60) for v in r.history.values())
    total = np.asarray(r.history["total"])
    assert np.all(np.isfinite(total))
    assert np.all(total[:, -1] < 0.2 * total[:, 0])
    # The returned codes are the codes of the returned images.
    np.testing.assert_allclose(r.codes[1], REP.apply(r.images[1]), rtol=1e-4, atol=1e-3)
    # The history's data term is ||Φ−Φ0||²/||Φ0||² of the iterates.
    assert float(r.history["data"][0, -1]) < 0.1
    assert r.config.stages == (30, 30) and r.config.sigma is not None


def test_same_key_same_result_other_key_other_result():
    a = invert(REP, CODE, key=jax.random.PRNGKey(7), samples=2, **FAST)
    b = invert(REP, CODE, key=jax.random.PRNGKey(7), samples=2, **FAST)
    c = invert(REP, CODE, key=jax.random.PRNGKey(8), samples=2, **FAST)
    np.testing.assert_array_equal(a.images, b.images)
    assert np.abs(np.asarray(a.images - c.images)).max() > 1.0
    # The samples of one call start from different noise and end apart.
    assert np.abs(np.asarray(a.images[0] - a.images[1])).max() > 1.0


def test_batch_of_codes_is_vmapped():
    other = np.asarray(REP.apply(jnp.asarray(toy_image((16, 16, 1), seed=9))))
    r = invert(REP, np.stack([CODE, other]), key=jax.random.PRNGKey(0), samples=2, **FAST)
    assert r.images.shape == (2, 2, 16, 16, 1)
    assert r.codes.shape == (2, 2) + CODE.shape
    assert r.history["data"].shape == (2, 2, 60)
    # Each reconstruction matches its own code better than the other one.
    for b, target in enumerate([CODE, other]):
        mine = np.sum((np.asarray(r.codes[b, 0]) - target) ** 2)
        theirs = np.sum((np.asarray(r.codes[b, 0]) - [other, CODE][b]) ** 2)
        assert mine < theirs


def _reference_update(u0, code, sigma, lr, stages, lambda_alpha, alpha, lambda_tv, reset):
    """NumPy transcription of the reference loop (in x = σu, the reference's
    own variables and λ) for the linear representation Φ(x) = A x."""
    lambda_l2 = 2 * lambda_alpha / sigma ** (alpha - 2)   # λα = lambdaL2/2·σ^(α−2)
    lambda_tv_ref = 2 * lambda_tv                          # β = 2: λV = lambdaTV/2
    x = (sigma * u0).astype(np.float64)
    y0 = code.astype(np.float64)
    y0_norm2 = np.sum(y0 ** 2)
    v = np.zeros_like(x)
    for k, n in enumerate(stages):
        if reset:
            v = np.zeros_like(x)
        rate = lr * 0.1 ** k
        for _ in range(n):
            d1 = np.concatenate([x[:, 1:], x[:, -1:]], axis=1) - x
            d2 = np.concatenate([x[1:], x[-1:]], axis=0) - x
            dtv = -2 * (d1 + d2)
            dtv[:, 1:] += 2 * d1[:, :-1]
            dtv[1:] += 2 * d2[:-1]
            dr = lambda_tv_ref / 2 * dtv + lambda_l2 / 2 * alpha * x ** (alpha - 1)
            ddata = 2 * (x - y0)  # Φ = identity
            v = 0.9 * v - rate * dr - rate * sigma ** 2 / y0_norm2 * ddata
            x = x + v
    return x


def test_momentum_reset_matches_reference_update():
    from jinvert.representation import Representation

    rep = Representation("identity", "Φ(x) = x", apply=lambda x: x,
                         preprocess_fn=lambda im: im, deprocess_fn=lambda x: x,
                         channels=1, sigma=500.0)
    code = toy_image((8, 8, 1), seed=4) / 4.0
    config = Config(learning_rate=0.02, stages=(6, 6, 6), lambda_alpha=30.0, alpha=6.0,
                    lambda_tv=0.05, beta=2.0, sigma=500.0)
    key = jax.random.PRNGKey(3)
    ours = np.asarray(invert(rep, code, key=key, shape=(8, 8), config=config).images[0])
    u0 = np.asarray(initial_noise(key, (1, 1, 8, 8, 1))[0, 0])
    assert np.linalg.norm(u0) == pytest.approx(1.0, rel=1e-5)
    args = (u0, code, 500.0, 0.02, (6, 6, 6), 30.0, 6.0, 0.05)
    with_reset = _reference_update(*args, reset=True)
    without = _reference_update(*args, reset=False)
    scale = np.abs(with_reset).max()
    np.testing.assert_allclose(ours, with_reset, atol=1e-4 * scale, rtol=1e-4)
    # The test can tell: not resetting gives a visibly different iterate.
    assert np.abs(without - with_reset).max() > 1e-2 * scale


def test_mask_only_counts_selected_code():
    mask = central_mask(CODE.shape, 3)
    other = CODE.copy()
    other[~mask] = 50.0  # changes only the masked-out part
    key = jax.random.PRNGKey(1)
    a = invert(REP, CODE, key=key, mask=mask, **FAST)
    b = invert(REP, other, key=key, mask=mask, **FAST)
    np.testing.assert_allclose(a.images, b.images, rtol=1e-5, atol=1e-3)
    c = invert(REP, other, key=key, **FAST)
    assert np.abs(np.asarray(a.images - c.images)).max() > 1.0


def counting_rep(seed: int = 0):
    """``(rep, traces)``: the toy representation whose Φ appends to
    ``traces`` each time it is traced (a compilation traces it; a reused
    program does not)."""
    from dataclasses import replace

    traces = []
    base = toy_rep(seed=seed)

    def apply(x):
        traces.append(1)  # runs only while tracing
        return base.apply(x)

    return replace(base, apply=apply), traces


def test_compiled_program_is_reused():
    rep, traces = counting_rep(seed=5)
    code = np.asarray(toy_rep(seed=5).apply(jnp.asarray(X0)))
    invert(rep, code, key=jax.random.PRNGKey(0), **FAST)
    n = len(traces)
    assert n > 0
    invert(rep, code, key=jax.random.PRNGKey(1), shape=(16, 16),
           config=CONFIG.replace(learning_rate=0.01, lambda_tv=2.0))
    invert(rep, code * 1.5, key=jax.random.PRNGKey(2), **FAST)
    assert len(traces) == n  # new key, λ, learning rate, code: no retrace
    # Nor does another number of iterations recompile the step (a new
    # compilation would trace Φ again). The paper's optimiser keeps its
    # schedule in its state: the number of stages is the state's shape, the
    # iterations and rates its values.
    invert(rep, code, key=jax.random.PRNGKey(3), shape=(16, 16),
           config=CONFIG.replace(stages=(7, 11)))
    assert len(traces) == n


def test_large_closed_over_arrays_become_arguments():
    # Φ closing over a 12 MB array: compiled programs take it as an argument
    # (not a folded constant); the small one stays a constant.
    from jinvert.programs import HOISTED_BYTES, hoist_weights

    big = jnp.linspace(0.0, 1.0, 3_000_000, dtype=jnp.float32)
    assert big.nbytes > HOISTED_BYTES
    small = jnp.arange(4.0)

    def apply(x):
        return x * big[:x.size].reshape(x.shape) + small[1]

    apply_with, weights = hoist_weights(apply, (8, 8, 1))
    assert len(weights) == 1 and weights[0].shape == big.shape
    x = jnp.asarray(toy_image((8, 8, 1)))
    np.testing.assert_array_equal(jax.jit(apply_with)(weights, x), apply(x))
    # It really is an input: other values give another result.
    np.testing.assert_allclose(apply_with([2 * big], x), 2 * apply(x) - small[1], rtol=1e-6)


def test_callback_reports_progress():
    calls = []
    r = invert(REP, CODE, key=jax.random.PRNGKey(0), samples=2, shape=(16, 16),
               loop=Loop(progress=lambda i, n, t: calls.append((i, n, t))),
               config=CONFIG.replace(stages=(150, 100)))
    # About every 1 % of the iterations (here 2), and the last.
    assert [c[0] for c in calls] == list(range(2, 251, 2))
    assert all(c[1] == 250 for c in calls)
    assert set(calls[-1][2]) == {"data", "alpha", "tv", "total"}
    last = float(np.mean(np.asarray(r.history["total"])[:, 249]))
    assert calls[-1][2]["total"] == pytest.approx(last, rel=1e-5)


def test_a_run_nobody_watches_never_waits_for_its_terms():
    """With no callback and no display the loop never fetches the terms
    (each fetch waits for the device: the host would stall every 1 %)."""
    from jinvert.progress import Reports

    def fetch():
        raise AssertionError("fetched the terms with nobody to report to")

    for progress in (False, None):  # None: not watched here (no terminal)
        reports = Reports(progress, 250)
        for i in range(1, 251):
            reports(i, fetch)
    seen = []
    Reports(lambda i, n, t: seen.append(i), 250)(2, lambda: {"total": np.ones(2)})
    assert seen == [2]


def test_total_variation_beta_one_runs_finite():
    r = invert(REP, CODE, key=jax.random.PRNGKey(0), shape=(16, 16),
               config=CONFIG.replace(beta=1.0))
    assert np.all(np.isfinite(np.asarray(r.images)))


def test_first_stage_only_is_the_start_of_the_full_run():
    """``first_stage_only(n)``: the first n iterations of the full schedule,
    by the same compiled step (the warm-up of ``reproduce`` and the timing
    of the benchmarks rely on both)."""
    rep, traces = counting_rep()
    config = CONFIG.replace(stages=(6, 4))
    assert config.first_stage_only(3).stages == (3, 0)
    one_per_call = Loop(progress=False, iterations_per_call=1)
    full = invert(rep, CODE, key=jax.random.PRNGKey(0), shape=(16, 16), config=config,
                  loop=one_per_call)
    before = len(traces)
    short = invert(rep, CODE, key=jax.random.PRNGKey(0), shape=(16, 16),
                   config=config.first_stage_only(3), loop=one_per_call)
    assert len(traces) == before  # nothing traced again: the same programs
    np.testing.assert_array_equal(short.history["total"], full.history["total"][:, :3])
    with pytest.raises(ValueError, match="positive"):
        config.first_stage_only(0)


def rescale_stages(stages, n):
    return Config(stages=stages).with_iterations(n).stages


def test_rescale_stages():
    assert rescale_stages((200, 200, 200, 200), 100) == (25, 25, 25, 25)
    assert rescale_stages((800, 500, 500, 200, 100), 21) == (8, 5, 5, 2, 1)
    assert sum(rescale_stages((200, 200, 200, 200), 7)) == 7
    assert rescale_stages((100, 200, 100), 2) == (1, 1)
    with pytest.raises(ValueError):
        rescale_stages((1, 2), 0)


@pytest.mark.parametrize("code, kwargs, message", [
    (np.zeros((7, 7, 6)), {}, "all zeros"),
    (np.full((7, 7, 6), np.nan), {}, "NaN"),
    (np.ones((6, 7, 6)), {}, "shape"),
    (np.ones((7, 7, 6)), {"samples": 0}, "samples"),
    (np.ones((7, 7, 6)), {"samples": 1.5}, "samples"),
    (np.ones((7, 7, 6)), {"mask": np.ones((7, 7))}, "mask"),
    (np.ones((7, 7, 6)), {"stages": ()}, "stages"),
    (np.ones((7, 7, 6)), {"learning_rate": -1.0}, "learning_rate"),
    (np.ones((7, 7, 6)), {"lambda_V": 1.0}, "unknown setting"),
    (np.ones((7, 7, 6)), {"config": {"lambda_tv": 1.0}}, "Config"),
    (np.ones((7, 7, 6)), {"optimizer": "adam"}, "optax"),
    (np.ones((7, 7, 6)), {"key": jax.random.split(jax.random.PRNGKey(0), 3)}, "key"),
])
def test_bad_input_raises_one_line(code, kwargs, message):
    kwargs = dict(kwargs)
    settings = {k: kwargs.pop(k) for k in list(kwargs)
                if k not in ("samples", "mask", "config", "optimizer", "key")}
    kwargs.setdefault("key", jax.random.PRNGKey(0))
    with pytest.raises(ValueError, match=message) as info:
        invert(REP, code, shape=(16, 16), **kwargs,
               **({"config": REP.defaults.replace(**settings)} if settings else {}))
    assert "\n" not in str(info.value)


def test_shape_required_for_flexible_rep():
    with pytest.raises(ValueError, match="shape"):
        invert(REP, CODE, key=jax.random.PRNGKey(0))


def test_size_adjusted_is_identity_at_paper_size_and_per_pixel_invariant():
    from jinvert.objective import alpha_norm

    s = Config(lambda_alpha=2.16e8, alpha=6.0, lambda_tv=5.0, beta=2.0)
    same = s.sized((227, 227, 3), 27100.0)
    assert same.sigma == pytest.approx(27100.0) and same.lambda_alpha == pytest.approx(2.16e8)
    small = s.sized((57, 113, 1), 27100.0)
    sigma = small.sigma
    assert sigma == pytest.approx(27100.0 * np.sqrt(57 * 113 / (3 * 227 ** 2)))
    # The α prior of a constant image has the same total as on a paper-size
    # image (so it is balanced against the normalised data term as there).
    big = 2.16e8 * float(alpha_norm(jnp.full((227, 227, 3), 50.0) / 27100.0, 6.0))
    little = small.lambda_alpha * float(alpha_norm(jnp.full((57, 113, 1), 50.0) / sigma, 6.0))
    assert little == pytest.approx(big, rel=1e-4)
    assert small.lambda_tv == pytest.approx(5.0)  # β = 2: no change
    # A Config whose σ is set is not converted again.
    assert small.sized((9, 9, 1), 1.0) == small


def test_invert_applies_size_adjustment_unless_sigma_given():
    shape = (24, 20, 1)
    code = REP.apply(jnp.asarray(toy_image(shape, seed=3)))
    config = REP.defaults.replace(stages=(3,))
    auto = invert(REP, code, shape=shape, key=jax.random.PRNGKey(0), config=config)
    sized = config.sized(shape, REP.sigma)
    assert auto.config == sized
    assert auto.config.lambda_alpha == pytest.approx(sized.lambda_alpha)
    # The starting noise has the paper's amplitude per value: σ/√(227·227·3).
    start = invert(REP, code, shape=shape, key=jax.random.PRNGKey(0),
                   config=config.replace(stages=(1,), learning_rate=0.0))
    rms = float(jnp.sqrt(jnp.mean(start.images ** 2)))
    assert rms == pytest.approx(REP.sigma / np.sqrt(227 * 227 * 3), rel=1e-3)
    # Unconverted, this small image starts from noise far above the
    # paper's per-value amplitude and diverges at the paper's step (README).
    with pytest.warns(DivergenceWarning, match="1 of 1 samples diverged"):
        manual = invert(REP, code, shape=shape, key=jax.random.PRNGKey(0),
                        config=config.replace(sigma=REP.sigma))
    assert manual.config.sigma == pytest.approx(REP.sigma)
    assert manual.config.lambda_alpha == config.lambda_alpha


def test_config_is_frozen_hashable_and_rejects_unknown_settings():
    a, b = Config(), Config(stages=[200, 200, 200, 200])
    assert a == b and hash(a) == hash(b) and b.stages == (200, 200, 200, 200)
    with pytest.raises(Exception):
        a.lambda_tv = 1.0
    with pytest.raises(ValueError, match="unknown setting"):
        a.replace(lambda_V=1.0)
    assert a.replace(lambda_tv=None) == a  # None keeps a setting
    assert a.iterations == 800 and a.with_iterations(100).stages == (25, 25, 25, 25)
    with pytest.raises(ValueError):
        Config(sigma=-1.0)
    # A Representation's defaults given as a mapping become a Config, and
    # an unknown key raises instead of being dropped.
    assert isinstance(REP.defaults, Config) and REP.defaults.lambda_tv == 0.5
    from dataclasses import replace
    with pytest.raises(ValueError, match="unknown setting"):
        replace(REP, defaults={"lambda_TV": 1.0})


def test_per_code_keys_match_single_runs():
    other = np.asarray(REP.apply(jnp.asarray(toy_image((16, 16, 1), seed=9))))
    keys = jnp.stack([jax.random.PRNGKey(11), jax.random.PRNGKey(12)])
    both = invert(REP, np.stack([CODE, other]), key=keys, samples=2, **FAST)
    alone = invert(REP, other[None], key=keys[1:], samples=2, **FAST)
    np.testing.assert_allclose(both.images[1], alone.images[0], rtol=1e-5, atol=1e-3)


def test_progress_bar_and_lines(capsys):
    invert(REP, CODE, key=jax.random.PRNGKey(0), loop=Loop(progress=True), **FAST)
    err = capsys.readouterr().err
    # No terminal here: plain lines about every 10 %, after compiling.
    lines = [l for l in err.splitlines() if l.startswith("jinvert:")]
    assert "compiling" in lines[0] and "60/60" in lines[-1] and 8 <= len(lines) <= 12
    invert(REP, CODE, key=jax.random.PRNGKey(0), loop=Loop(progress=False), **FAST)
    invert(REP, CODE, key=jax.random.PRNGKey(0), **FAST)  # not watched: silent
    assert capsys.readouterr().err == ""


def _equal_up_to_rounding(a, b):
    """Equal up to float32 rounding: the loop body is the step's arithmetic,
    but XLA fuses it differently inside a loop (on this toy, 6e-5 relative
    after 60 iterations; HOG came out bit-identical)."""
    a, b = np.asarray(a), np.asarray(b)
    np.testing.assert_allclose(a, b, rtol=5e-4, atol=5e-5 * np.abs(b).max())


@pytest.mark.parametrize("per_call", [4, 7, 60, 100])
def test_chunks_of_iterations_change_nothing(per_call):
    """K iterations per compiled call give the results of one per call,
    whether K divides the stages (30, 30) or not (the momentum restart at
    iteration 30 then falls inside a chunk), equals the run or exceeds it."""
    one = invert(REP, CODE, key=jax.random.PRNGKey(3), samples=2,
                 loop=Loop(progress=False, iterations_per_call=1), **FAST)
    many = invert(REP, CODE, key=jax.random.PRNGKey(3), samples=2,
                  loop=Loop(progress=False, iterations_per_call=per_call), **FAST)
    _equal_up_to_rounding(many.images, one.images)
    for name in one.history:
        assert many.history[name].shape == (2, 60)
        _equal_up_to_rounding(many.history[name], one.history[name])


def test_chunked_reports_and_no_recompilation():
    """Chunks stop at every report, so a callback sees what it sees with one
    iteration per call; another number of iterations reuses the chunk's
    program (the count is an argument)."""
    rep, traces = counting_rep()
    seen = {}
    for per_call in (1, 100):
        calls = []
        invert(rep, CODE, key=jax.random.PRNGKey(0), shape=(16, 16),
               loop=Loop(progress=lambda i, n, t: calls.append((i, t["total"])),
                         iterations_per_call=per_call),
               config=CONFIG.replace(stages=(150, 100)))
        seen[per_call] = calls
    assert [c[0] for c in seen[100]] == list(range(2, 251, 2))
    np.testing.assert_allclose([c[1] for c in seen[100]], [c[1] for c in seen[1]], rtol=1e-4)
    before = len(traces)
    for stages in ((13, 20), (40, 9)):  # as many stages: the same optimiser update
        invert(rep, CODE, key=jax.random.PRNGKey(0), shape=(16, 16),
               loop=Loop(progress=False, iterations_per_call=100),
               config=CONFIG.replace(stages=stages))
    assert len(traces) == before  # the chunk's program reused


@pytest.mark.parametrize("bad", [0, -3, 2.5, True, "8"])
def test_bad_iterations_per_call(bad):
    with pytest.raises((ValueError, TypeError), match="iterations_per_call|invalid literal"):
        invert(REP, CODE, key=jax.random.PRNGKey(0), loop=Loop(iterations_per_call=bad), **FAST)
