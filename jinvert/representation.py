"""The `Representation` type: an image representation Φ that jinvert inverts.

A representation is a pure function from an image in its own *input space*
(float32, NHWC without the N, e.g. grey levels 255·g − 128 for HOG, or a
mean-subtracted RGB image for AlexNet) to a code (any array shape). It carries
the conversions from and to ordinary images in [0, 1], and the paper's
inversion defaults for it.
"""

from __future__ import annotations

import dataclasses
from typing import Any, Callable

import jax
import jax.numpy as jnp
import numpy as np

from jinvert.config import Config

Array = jax.Array

#: The paper's σ: the average Euclidean norm of natural images in the input
#: space of the reference experiments (227×227, grey levels in about ±128).
#: It is the value that turns the reference code's ``lambdaL2 = 8e-10`` into
#: the paper's λα = 2.16e8 (λα = lambdaL2/2 · σ^(α−2) with α = 6).
PAPER_SIGMA = 27_100.0


@dataclasses.dataclass(frozen=True, eq=False)
class Representation:
    """An image representation Φ with what is needed to invert it.

    Attributes:
      name: short name, e.g. ``"hog"`` or ``"alexnet:relu5"``.
      description: one line for humans.
      apply: the unbatched map ``(H, W, C) float32 -> code``, jit-able and
        differentiable. Use :meth:`__call__`, which also batches.
      preprocess_fn: ``(H, W) or (H, W, 3) array in [0, 1] -> (H', W', C)``
        image in the input space.
      deprocess_fn: ``(H', W', C)`` input-space image ``-> (H', W', 3)`` in
        [0, 1] (clipped).
      channels: C, the number of channels of the input space (1 or 3).
      input_size: ``(H, W)`` when the representation needs a fixed size (a
        CNN), else ``None``.
      sigma: σ of the paper, the average Euclidean norm of natural images in
        the input space; the optimiser works on x/σ.
      defaults: the paper's inversion settings for this representation, a
        :class:`jinvert.Config` (what :func:`jinvert.invert` uses unless
        given another). A mapping is turned into ``Config().replace(**it)``
        (an unknown setting raises).
      validate: optional check of an input-space image's shape: it is
        given a stand-in of the shape ``(H, W, C)`` (NumPy, no values, so
        that no small program is compiled for it); raises ``ValueError``
        with a message for people.
      apply_batch: optional Φ of a batch, ``(N, H, W, C) -> (N, *code)``,
        equal to ``vmap(apply)`` but faster (e.g. a CNN that runs its
        convolutions image by image, see :func:`jinvert.alexnet`). When
        ``None``, :meth:`batch_apply` is ``vmap(apply)`` (``apply`` alone
        for a batch of one).
      render: optional picture of a code, ``code -> (h, w[, 3])`` float in
        [0, 1] (HOG's glyphs, :func:`jinvert.render_hog`); ``None`` when the
        code has no picture of its own.
      pixel_range: B of the papers, half the range of a pixel value in the
        input space (128 for grey levels or mean-subtracted RGB in about
        ±128, the default; 1.0 for EfficientNet-Lite0's ±1): the unit of the
        IJCV bounded-range regulariser (:func:`jinvert.recipe`).
      cpu_batching: how :meth:`batch_apply` runs a batch without
        ``apply_batch`` on the CPU: ``"vmap"`` (one program over the batch
        axis) or ``"map"`` (``lax.map``: image after image in one program,
        for representations whose vmapped form XLA:CPU runs slower per
        image, as HOG's and DSIFT's: measured in
        ``benchmarks/speed.py --samples 8``). Other backends always vmap.
      compiled_call: ``rep(x)`` on a concrete image runs Φ as one compiled
        program (made once per representation and shape) instead of op by
        op: the same function as inside :func:`jinvert.invert`, and faster
        (HOG's and DSIFT's: about 2 s of the main job were HOG run op by op).
        True for HOG and DSIFT, whose ties are decided the same way jitted or
        not; the CNNs stay eager (compiling a 60 M-parameter AlexNet for each
        new representation object has not been measured against its gain).
    """

    name: str
    description: str
    apply: Callable[[Array], Array]
    preprocess_fn: Callable[[Any], Array]
    deprocess_fn: Callable[[Array], Array]
    channels: int
    input_size: tuple[int, int] | None = None
    sigma: float = PAPER_SIGMA
    defaults: Config = dataclasses.field(default_factory=Config)
    validate: Callable[[Any], None] | None = None
    apply_batch: Callable[[Array], Array] | None = None
    render: Callable[[Any], Any] | None = None
    pixel_range: float = 128.0
    cpu_batching: str = "vmap"
    compiled_call: bool = False

    def __post_init__(self):
        if self.cpu_batching not in ("vmap", "map"):
            raise ValueError(f"cpu_batching must be 'vmap' or 'map', got {self.cpu_batching!r}")
        if not isinstance(self.defaults, Config):
            object.__setattr__(self, "defaults", Config().replace(**dict(self.defaults or {})))

    def batch_apply(self, x: Array) -> Array:
        """Φ of a batch ``(N, H, W, C) -> (N, *code)`` (``apply_batch``, or
        ``vmap(apply)``); no checks, for use inside ``jit`` and ``grad``."""
        if self.apply_batch is not None:
            return self.apply_batch(x)
        if x.shape[0] == 1:
            # Without vmap: its batch axis of one costs HOG a fifth of an
            # inversion step on XLA:CPU.
            return self.apply(x[0])[None]
        if self.cpu_batching == "map" and jax.default_backend() == "cpu":
            return jax.lax.map(self.apply, x)
        return jax.vmap(self.apply)(x)

    def __call__(self, x) -> Array:
        """Φ(x) for one image ``(H, W, C)`` (``(H, W)`` when C = 1) or a
        batch ``(N, H, W, C)``; a batch gives codes with a leading N."""
        if isinstance(x, jax.core.Tracer):
            x = jnp.asarray(x)
        else:
            x = check_image_array(x, name=self.name)
        if x.ndim == 2:
            x = x[..., None]
        if x.ndim not in (3, 4):
            raise ValueError(
                f"{self.name}: expected an image (H, W), (H, W, C) or a batch "
                f"(N, H, W, C); got an array of shape {tuple(x.shape)}")
        if self.validate is not None and not isinstance(x, jax.core.Tracer):
            # Every image of a batch has the same shape: one stand-in.
            self.validate(np.broadcast_to(np.float32(0), x.shape[-3:]))
        if self.compiled_call and not isinstance(x, jax.core.Tracer):
            return self._compiled(x.ndim == 4)(x)
        return self.batch_apply(x) if x.ndim == 4 else self.apply(x)

    def _compiled(self, batch: bool):
        """``apply`` (``batch_apply`` for a batch) as one compiled program,
        made once per representation (then once per shape): Φ(x) is then the
        same compiled function as inside :func:`jinvert.invert`, not op by op."""
        name = "_jit_batch_apply" if batch else "_jit_apply"
        fn = self.__dict__.get(name)
        if fn is None:
            fn = jax.jit(self.batch_apply if batch else self.apply)
            object.__setattr__(self, name, fn)
        return fn

    def preprocess(self, image) -> Array:
        """``(H, W)`` or ``(H, W, 3)`` image in [0, 1] -> input space."""
        return self.preprocess_fn(check_image_array(image, name=self.name))

    def deprocess(self, x) -> Array:
        """Input-space image ``(H, W, C)`` -> ``(H, W, 3)`` in [0, 1]."""
        return self.deprocess_fn(x if isinstance(x, jax.Array)
                                 else jax.device_put(np.asarray(x, np.float32)))

    def __repr__(self) -> str:
        return f"Representation({self.name!r}: {self.description})"


#: What a CNN representation's ``precision`` accepts (JAX's names for the
#: float32 matrix products and convolutions it traces): ``"highest"`` full
#: float32 on every backend, ``"default"`` the backend's own choice (TF32
#: on NVIDIA GPUs since Ampere, bfloat16 passes on TPUs, full float32 on
#: CPUs), ``"high"`` in between.
PRECISIONS = ("highest", "high", "default")


def matmul_precision(precision: str, name: str):
    """A context within which traced products and convolutions without a
    precision of their own run at ``precision`` (one of :data:`PRECISIONS`;
    ValueError naming the representation ``name`` otherwise)."""
    if precision not in PRECISIONS:
        raise ValueError(f"{name}: precision must be one of {', '.join(PRECISIONS)}; "
                         f"got {precision!r}")
    return jax.default_matmul_precision(precision)


def as_float_array(x) -> Array:
    """``x`` as a JAX array, float32 unless it already has a float dtype
    (float64 passes through, for finite-difference checks under x64)."""
    x = jnp.asarray(x)
    return x if jnp.issubdtype(x.dtype, jnp.floating) else x.astype(jnp.float32)


@jax.jit
def _all_finite(x) -> Array:
    return jnp.all(jnp.isfinite(x))


def check_image_array(x, *, name: str = "image"):
    """Turn ``x`` into a float32 array, or raise ValueError saying why not.

    Rejects non-numeric arrays, empty arrays and non-finite pixels. Tracers
    (inside ``jit``/``grad``) pass through unchecked.
    """
    if isinstance(x, jax.core.Tracer):
        return x
    arr = np.asarray(x) if not isinstance(x, jax.Array) else x
    if not (np.issubdtype(arr.dtype, np.number) or arr.dtype == np.bool_):
        raise ValueError(
            f"{name}: expected a numeric image array, got dtype {arr.dtype}")
    if np.issubdtype(arr.dtype, np.complexfloating):
        raise ValueError(f"{name}: expected a real image, got complex values")
    if arr.size == 0:
        raise ValueError(f"{name}: got an empty array of shape {arr.shape}")
    # Checked where the array is (NumPy on the host, one compiled program
    # on a device): op by op, each check would compile a program per run.
    if isinstance(arr, jax.Array):
        arr = arr if arr.dtype == jnp.float32 else arr.astype(jnp.float32)
        finite = bool(_all_finite(arr))
    else:
        arr = np.asarray(arr, dtype=np.float32)
        finite = bool(np.isfinite(arr).all())
        arr = jax.device_put(arr)  # (jnp.asarray compiles a copy per shape)
    if not finite:
        raise ValueError(
            f"{name}: the image has NaN or infinite pixels; expected finite values")
    return arr
