"""Shared test fixtures: natural photos that ship with scikit-image, and
VLFeat's outputs stored in tests/golden/vlfeat.npz."""

import os
import types

import numpy as np
import pytest

from golden import make_golden

# The jinvert command turns JAX's persistent compilation cache on; in tests
# it stays off (no writes to the user's cache directory, and no test that
# compiles depends on what an earlier one left there) unless a test sets it.
os.environ["JINVERT_CACHE_DIR"] = ""

#: Why the tests against the live VLFeat skip (the golden-file ones still run).
NO_CYVLFEAT = ("cyvlfeat (VLFeat's Python binding) is not installed, so only the stored "
               "VLFeat outputs (tests/golden/vlfeat.npz) are checked: apt-get install "
               "libvlfeat-dev, then pip install numpy cython && pip install "
               "--no-build-isolation cyvlfeat (as README says)")


def import_cyvlfeat(module: str):
    """``cyvlfeat.<module>``, or skip the calling test with :data:`NO_CYVLFEAT`."""
    return pytest.importorskip(f"cyvlfeat.{module}", reason=NO_CYVLFEAT)


def _photos():
    from skimage import data
    return {
        # odd, unequal sizes on purpose: not multiples of the cell size
        "camera": data.camera().astype(np.float32)[7:140, 11:108],        # 133×97 grey
        "coins": data.coins().astype(np.float32)[:157, :203],             # 157×203 grey
        "astronaut": data.astronaut().astype(np.float32)[100:221, 150:263],  # 121×113 RGB
        "coffee": data.coffee().astype(np.float32)[50:167, 300:479] / 255.0,  # 117×179 RGB, [0, 1]
    }


@pytest.fixture(scope="session")
def photos():
    """Crops of natural photos, float32, of odd and unequal sizes."""
    return _photos()


@pytest.fixture(scope="session")
def grey_photos(photos):
    from jinvert.images import to_grey
    return {name: to_grey(im) if im.ndim == 3 else im for name, im in photos.items()}


@pytest.fixture(scope="session")
def golden():
    """VLFeat's HOG and DSIFT of small crops, as tests/golden/make_golden.py
    stored them: ``.arrays`` (name -> array), ``.meta`` (versions, calls),
    ``.images`` (name -> float32 test image), ``.grey`` (name -> the float32
    grey image given to vl_dsift)."""
    arrays, meta = make_golden.load()
    images = make_golden.golden_images(arrays, meta)
    grey = {name: arrays.get(f"grey_{name}", images[name]) for name in images}
    return types.SimpleNamespace(arrays=arrays, meta=meta, images=images, grey=grey,
                                 compute=make_golden.compute)


def assert_golden_is_fresh(golden, prefixes) -> list[str]:
    """The stored arrays whose names start with ``prefixes`` are what the
    installed VLFeat computes on the stored crops now, to 1e-5 of each
    array's largest value (a stale golden file fails here: regenerate it with
    ``python tests/golden/make_golden.py``). Returns the names checked.

    Not bit for bit: VLFeat's float arithmetic differs in the last bits from
    host to host (it picks its SSE2/AVX paths at run time). Two CI hosts with
    the same VLFeat 0.9.21 gave DSIFT descriptors 3.4e-6 of the largest value
    apart (21 of 6272 values); a stale file is off by whole bins."""
    crops = {name: golden.arrays[f"input_{name}"] for name in golden.meta["images"]}
    fresh, _ = golden.compute(crops)
    keys = sorted(k for k in fresh if k.startswith(prefixes))
    assert keys == sorted(k for k in golden.arrays if k.startswith(prefixes))
    for key in keys:
        assert fresh[key].shape == golden.arrays[key].shape, key
        np.testing.assert_allclose(fresh[key], golden.arrays[key], rtol=0,
                                   atol=1e-5 * np.abs(golden.arrays[key]).max(), err_msg=key)
    return keys


def smooth_image(key, shape):
    """A smooth, non-integer grey image ``(H, W, 1)`` in the input space's
    units (about ±100), without the exact ties of integer photos."""
    import jax
    import jax.numpy as jnp
    h, w = shape
    noise = jax.random.normal(key, (h + 8, w + 8))
    kernel = jnp.outer(jnp.hanning(9), jnp.hanning(9))
    blurred = jax.scipy.signal.convolve2d(noise, kernel / kernel.sum(), mode="valid",
                                           precision=jax.lax.Precision.HIGHEST)
    ramp = jnp.linspace(-1.0, 1.0, w)[None, :] * jnp.linspace(0.5, 1.0, h)[:, None]
    return (60.0 * blurred / blurred.std() + 40.0 * ramp)[..., None]


def assert_gradient_matches_finite_differences(apply, shape=(40, 44), directions=3):
    """In float64, along random unit directions v, d/dt Σ w·Φ(x + t·v) from
    ``jax.grad`` equals the central difference with step 1e-4 (small enough
    that no orientation bin or clamp switches inside it) to 1e-4."""
    import jax
    import jax.numpy as jnp
    with jax.enable_x64(True):
        x = smooth_image(jax.random.PRNGKey(0), shape)
        weights = jax.random.normal(jax.random.PRNGKey(1), apply(x).shape, jnp.float64)
        f = lambda x: jnp.sum(weights * apply(x))  # noqa: E731
        grad = jax.grad(f)(x)
        assert grad.dtype == jnp.float64
        for seed in range(directions):
            v = jax.random.normal(jax.random.PRNGKey(10 + seed), x.shape, jnp.float64)
            v = v / jnp.linalg.norm(v)
            eps = 1e-4
            numeric = (f(x + eps * v) - f(x - eps * v)) / (2 * eps)
            analytic = jnp.vdot(grad, v)
            assert abs(float(numeric - analytic)) <= 1e-4 * abs(float(analytic)) + 1e-9


#: Modules whose tests each compile programs around a whole random AlexNet
#: (60 M parameters, 240 MB) closed over as constants: their programs are
#: dropped after every test.
_HEAVY_MODULES = {"test_alexnet", "test_weights", "test_efficientnet"}

#: Elsewhere, programs are dropped once the process has grown by this much
#: since they were last dropped: HOG's and DSIFT's tests run op by op on many
#: image sizes, which caches a small program per primitive and shape (about
#: 100 MB a test), and dropping them after every test would triple the
#: time of those modules in recompilation.
_GROWTH_MB = 300


def _resident_mb() -> int:
    """The test process's resident memory in MB (0 where /proc is absent)."""
    try:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 2 ** 20
    except (OSError, ValueError, IndexError):
        return 0


def _drop_compiled_programs():
    import ctypes
    import gc
    import jax
    jax.clear_caches()
    gc.collect()
    try:  # hand the freed pages back (glibc), so that the growth is measurable
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass
    _dropped_at[0] = _resident_mb()


_dropped_at = [0]


@pytest.fixture(autouse=True, scope="module")
def _release_compiled_programs():
    """Drop JAX's compiled programs (and the weights folded into them as
    constants) after each test module: the suite otherwise keeps every
    module's programs alive to the end and peaks at about 5 GB."""
    yield
    _drop_compiled_programs()


@pytest.fixture(autouse=True)
def _release_programs_as_needed(request):
    """The same after each test of the AlexNet-sized modules, and after any
    test past which the process has grown by :data:`_GROWTH_MB`."""
    yield
    if (request.module.__name__.rsplit(".", 1)[-1] in _HEAVY_MODULES
            or _resident_mb() - _dropped_at[0] > _GROWTH_MB):
        _drop_compiled_programs()


@pytest.fixture(autouse=True)
def _full_float32_products(request):
    """Every test computes its products and convolutions in full float32,
    on every backend: the tolerances here (VLFeat, PyTorch, NumPy, finite
    differences) are set for float32, and JAX's default on NVIDIA GPUs is
    TF32 (about 5e-4 relative). The library's own programs ask for full
    precision themselves; tests/test_precision.py checks that, outside this
    context."""
    if request.module.__name__.endswith("test_precision"):
        yield
        return
    import jax

    with jax.default_matmul_precision("highest"):
        yield


@pytest.fixture
def figure_texts(monkeypatch):
    """The texts (title, labels, caption, …) of every figure that
    ``jinvert.experiments.figures.save`` draws during the test, one list
    per figure."""
    from jinvert.experiments import figures

    drawn = []
    real = figures.save
    monkeypatch.setattr(figures, "save", lambda *a, **k: drawn.append(real(*a, **k)) or drawn[-1])
    return drawn


@pytest.fixture
def two_photo_folder(tmp_path):
    """A folder of two overlapping crops of the bundled photo (a.png, b.png),
    the training images of the decoder commands' tests."""
    from jinvert import images
    folder = tmp_path / "photos"
    folder.mkdir()
    photo = images.load_image()
    images.save_image(folder / "a.png", photo[:, :200])
    images.save_image(folder / "b.png", photo[:, 56:])
    return folder
