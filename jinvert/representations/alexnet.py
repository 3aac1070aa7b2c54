"""CNN-A: AlexNet as trained in Caffe, as a flax module, invertible at each of its layers.

The paper's CNN-A (Table 2) is CaffeNet, Caffe's reference AlexNet
("caffe-ref"); its 20 layers are

    conv1 relu1 mpool1 norm1 conv2 relu2 mpool2 norm2 conv3 relu3
    conv4 relu4 conv5 relu5 mpool5 fc6 relu6 fc7 relu7 fc8

Two more variants share the code:

- ``"caffe-alex"``: the original ``bvlc_alexnet``, which normalises *before*
  pooling (``conv1 relu1 norm1 mpool1 conv2 relu2 norm2 mpool2 ...``), same
  parameter shapes as caffe-ref;
- ``"torchvision"``: torchvision's AlexNet ("one weird trick" version), a
  different network (64/192/384/256/256 filters, no groups, no LRN, floor
  pooling, 224×224 input, ImageNet mean/std normalisation); 18 layers.

Everything is NHWC float32. The layers (convolutions with filter groups,
max pooling with Caffe's rounding, LRN) are those of
:mod:`jinvert.representations.caffe_layers`. The fully connected layers are
convolutions (fc6 is a 6×6 valid convolution on mpool5), so the network stays
fully convolutional. Parameters are a plain pytree ``{layer: {"kernel": (kh, kw,
cin/groups, cout), "bias": (cout,)}}`` (flax's ``nn.Conv`` layout, also
MatConvNet's); :func:`jinvert.weights.load` reads them from the usual files
and :func:`random_params` draws random ones of the real shapes.

Input space (as MatConvNet and Caffe): RGB, range ×255, mean image or mean
colour subtracted, so pixels lie in about ±128; σ is then the paper's
``PAPER_SIGMA``.
"""

from __future__ import annotations

import math
from typing import Any, Mapping

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

from jinvert import images
from jinvert.config import Config
from jinvert.representation import PAPER_SIGMA, Representation, matmul_precision
from jinvert.representations.caffe_layers import (POOL_SIZE, POOL_STRIDE, FullyConnected,
                                                  GroupedConv, caffe_pool_output_size, lrn,
                                                  max_pool)

Array = jax.Array

VARIANTS = ("caffe-ref", "caffe-alex", "torchvision")

#: The paper's Table 2: the 20 layers of CNN-A (CaffeNet, "caffe-ref").
LAYERS = ("conv1", "relu1", "mpool1", "norm1", "conv2", "relu2", "mpool2",
          "norm2", "conv3", "relu3", "conv4", "relu4", "conv5", "relu5",
          "mpool5", "fc6", "relu6", "fc7", "relu7", "fc8")

_ALEX_LAYERS = ("conv1", "relu1", "norm1", "mpool1", "conv2", "relu2", "norm2",
                "mpool2") + LAYERS[8:]
_TV_LAYERS = tuple(n for n in LAYERS if not n.startswith("norm"))

#: Layer names of each variant, in evaluation order.
VARIANT_LAYERS = {"caffe-ref": LAYERS, "caffe-alex": _ALEX_LAYERS,
                  "torchvision": _TV_LAYERS}

# Convolutions: kernel size, stride, padding, input channels, output
# channels, groups. Caffe splits conv2/4/5 into two groups because the
# network was trained on two GPUs; each group sees half of the input channels.
_CAFFE_CONVS = {
    "conv1": (11, 4, 0, 3, 96, 1),
    "conv2": (5, 1, 2, 96, 256, 2),
    "conv3": (3, 1, 1, 256, 384, 1),
    "conv4": (3, 1, 1, 384, 384, 2),
    "conv5": (3, 1, 1, 384, 256, 2),
    "fc6": (6, 1, 0, 256, 4096, 1),
    "fc7": (1, 1, 0, 4096, 4096, 1),
    "fc8": (1, 1, 0, 4096, 1000, 1),
}
_TV_CONVS = {
    "conv1": (11, 4, 2, 3, 64, 1),
    "conv2": (5, 1, 2, 64, 192, 1),
    "conv3": (3, 1, 1, 192, 384, 1),
    "conv4": (3, 1, 1, 384, 256, 1),
    "conv5": (3, 1, 1, 256, 256, 1),
    "fc6": (6, 1, 0, 256, 4096, 1),
    "fc7": (1, 1, 0, 4096, 4096, 1),
    "fc8": (1, 1, 0, 4096, 1000, 1),
}
_CONVS = {"caffe-ref": _CAFFE_CONVS, "caffe-alex": _CAFFE_CONVS,
          "torchvision": _TV_CONVS}

#: ImageNet mean colour, RGB, 0..255 (Caffe's ilsvrc_2012_mean averaged
#: over the image), used when a weights file carries no mean.
IMAGENET_MEAN_RGB = np.array([122.67891434, 116.66876762, 104.00698793], np.float32)
#: torchvision's normalisation, RGB, in [0, 1] units.
TORCHVISION_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
TORCHVISION_STD = np.array([0.229, 0.224, 0.225], np.float32)

INPUT_SIZE = {"caffe-ref": (227, 227), "caffe-alex": (227, 227),
              "torchvision": (224, 224)}

ENV_WEIGHTS = "JINVERT_ALEXNET_WEIGHTS"

# The paper's per-layer inversion settings (Sect. 3, and deep-goggle's
# experiments/experiment_cnn.m: lambdaTV = 1, 10, 100 for layers 1–6, 7–12,
# 13–20 with TVbeta = 2, which the paper writes λV = 0.5 / 5 / 50 because the
# reference halves it; lambdaL2 = 8e-10 with beta = 6, the paper's
# λα = 2.16e8; learning rate 0.004 for 100 iterations, then 0.0004 for 200,
# then 0.00004 for 100, momentum reset at each change).
#: The paper's λV bands for layers 1–6 / 7–12 / 13–20 and its CNN schedule
#: (λα, α, β, learning rate and momentum are Config's defaults).
PAPER_LAMBDA_TV_BANDS = (0.5, 5.0, 50.0)
PAPER_STAGES = (100, 200, 100)


# --------------------------------------------------------------------------
# The network
# --------------------------------------------------------------------------

#: On a CPU, the convolutional layers of :class:`AlexNet` run a batch in at
#: most this many pieces, one after another (see there).
CONV_PIECES = 8


class AlexNet(nn.Module):
    """CNN-A as a flax module, evaluated up to ``layer`` and no further.

    Input ``(N, H, W, 3)`` in the input space; output ``(N, H', W', C')``, the
    code of ``layer``. Parameters: ``{"params": {conv: {"kernel", "bias"}}}``
    for the convolutions reached.

    The layers before fc6 run the batch in ``min(N, pieces)`` pieces, each
    its own chain of convolutions; the fully connected layers take the whole
    batch. On XLA:CPU one image's maps stay in cache where a batch's do
    not: 8 inversions of pool5 at once take 135 ms per iteration this way,
    151 ms as one batch (2 cores), while fc layers are faster batched.
    ``pieces=None`` (default) means :data:`CONV_PIECES` when JAX's default
    backend is the CPU and 1 (one batch) on accelerators, where that
    measurement does not apply.
    """

    variant: str = "caffe-ref"
    layer: str = "fc8"
    pieces: int | None = None

    @nn.compact
    def __call__(self, x: Array) -> Array:
        convs = _CONVS[self.variant]
        ceil_mode = self.variant != "torchvision"
        names = VARIANT_LAYERS[self.variant]
        names = names[:names.index(self.layer) + 1]
        # One module per layer with parameters, called once per piece.
        modules = {}
        for name in names:
            if name.startswith("fc"):
                k, _, _, _, cout, _ = convs[name]
                modules[name] = FullyConnected(cout, k, name=name)
            elif name in convs:
                k, s, p, _, cout, g = convs[name]
                modules[name] = GroupedConv(cout, k, s, p, g, name=name)

        def run(x: Array, layers: list[str]) -> Array:
            deferred_relu = False
            for name in layers:
                if name in modules:
                    x = modules[name](x)
                elif name.startswith("relu"):
                    following = names[names.index(name) + 1:]
                    if following and following[0].startswith("mpool"):
                        # relu and max pooling commute: rectify the pooled
                        # map, a quarter of the size (same values and
                        # gradients, one pass less over the largest maps).
                        deferred_relu = True
                    else:
                        x = jax.nn.relu(x)
                elif name.startswith("mpool"):
                    x = max_pool(x, ceil_mode=ceil_mode)
                    if deferred_relu:
                        x, deferred_relu = jax.nn.relu(x), False
                elif name.startswith("norm"):
                    x = lrn(x)
            return x

        first_fc = next((i for i, n in enumerate(names) if n.startswith("fc")), len(names))
        features, classifier = names[:first_fc], names[first_fc:]
        n = x.shape[0]
        pieces = self.pieces
        if pieces is None:
            pieces = CONV_PIECES if jax.default_backend() == "cpu" else 1
        size = -(-n // max(1, min(n, pieces)))
        outs = [run(x[i:i + size], features) for i in range(0, n, size)]
        x = outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=0)
        return run(x, classifier)


# --------------------------------------------------------------------------
# Names, shapes, geometry
# --------------------------------------------------------------------------

def check_variant(variant: str) -> str:
    """``variant`` if it is one of :data:`VARIANTS`, else ``ValueError``
    listing them."""
    if variant not in VARIANTS:
        raise ValueError(f"unknown AlexNet variant {variant!r}; expected one of "
                         f"{', '.join(VARIANTS)}")
    return variant


def canonical_layer(layer: str | int, variant: str = "caffe-ref") -> str:
    """The layer's name in :data:`VARIANT_LAYERS` for ``layer``.

    Accepts the Table 2 names (``"mpool5"``), Caffe's spelling (``"pool5"``)
    and the paper's 1-based layer numbers (``13`` or ``"13"`` for conv5).
    Raises ``ValueError`` listing the valid names otherwise.
    """
    names = VARIANT_LAYERS[check_variant(variant)]
    key = str(layer).strip().lower()
    if key.isdigit() and 1 <= int(key) <= len(names):
        return names[int(key) - 1]
    if key.startswith("pool"):
        key = "m" + key
    if key in names:
        return key
    raise ValueError(
        f"unknown AlexNet layer {layer!r} for variant {variant!r}; valid layers: "
        f"{', '.join(names)} (pool1/pool2/pool5 also accepted for the mpool ones, "
        f"or the layer's number 1–{len(names)})")


def param_shapes(variant: str = "caffe-ref") -> dict[str, dict[str, tuple[int, ...]]]:
    """Shapes of the parameters: ``{layer: {"kernel": (kh, kw, cin/groups,
    cout), "bias": (cout,)}}`` for the eight convolutions/fc layers."""
    return {name: {"kernel": (k, k, cin // g, cout), "bias": (cout,)}
            for name, (k, s, p, cin, cout, g) in _CONVS[check_variant(variant)].items()}


def _geometry(variant: str):
    """Per layer: (name, kernel, stride, pad) of its spatial operation."""
    convs = _CONVS[variant]
    for name in VARIANT_LAYERS[variant]:
        if name in convs:
            k, s, p = convs[name][:3]
            yield name, k, s, p
        elif name.startswith("mpool"):
            yield name, POOL_SIZE, POOL_STRIDE, 0
        else:  # relu, norm: pointwise in space
            yield name, 1, 1, 0


def receptive_field(layer: str | int, variant: str = "caffe-ref") -> tuple[int, int, float]:
    """Receptive field of one unit of ``layer``: ``(size, stride, offset)``.

    In input pixels: unit ``(i, j)`` of the layer sees the square of side
    ``size`` centred at ``(offset + i·stride, offset + j·stride)`` (0-based
    pixel coordinates of the input, padding included, so fields near the
    border overhang the image). For Fig. 9's boxes.
    """
    name = canonical_layer(layer, variant)
    size, stride, offset = 1, 1, 0.0
    for n, k, s, p in _geometry(variant):
        size += (k - 1) * stride
        offset += ((k - 1) / 2 - p) * stride
        stride *= s
        if n == name:
            return size, stride, offset
    raise AssertionError(name)


def output_shape(layer: str | int, variant: str = "caffe-ref",
                 input_hw: tuple[int, int] | None = None) -> tuple[int, int, int]:
    """``(H', W', C')`` of the code of ``layer`` for an input of ``input_hw``
    (default the variant's input size); a non-positive size means the input
    is too small."""
    name = canonical_layer(layer, variant)
    h, w = input_hw or INPUT_SIZE[variant]
    c = 3
    convs = _CONVS[variant]
    for n, k, s, p in _geometry(variant):
        if n in convs:
            h, w, c = (h + 2 * p - k) // s + 1, (w + 2 * p - k) // s + 1, convs[n][4]
        elif n.startswith("mpool"):
            if variant == "torchvision":
                h, w = (h - k) // s + 1, (w - k) // s + 1
            else:
                h, w = caffe_pool_output_size(h), caffe_pool_output_size(w)
        if n == name:
            return h, w, c
    raise AssertionError(name)


# --------------------------------------------------------------------------
# Parameters
# --------------------------------------------------------------------------

def random_params(key: Array, variant: str = "caffe-ref", *, bias: float = 0.0
                  ) -> dict[str, dict[str, Array]]:
    """Random parameters of the real shapes (for tests and benchmarks).

    Kernels are He-normal (std √(2/fan_in), fan_in = kh·kw·cin/groups) so that
    the activations keep their scale through the ReLUs instead of vanishing;
    biases are the constant ``bias``. Returns ``{layer: {"kernel", "bias"}}``
    of float32 arrays, about 61 M numbers (caffe variants).
    """
    shapes = param_shapes(variant)
    # NumPy's generator, seeded from the key's bits, draws the 61 M numbers
    # about ten times faster than jax.random on CPU (no per-shape compile);
    # the result is still a pure function of ``key``.
    seed = np.asarray(jax.random.key_data(key), dtype=np.uint32).ravel().tolist()
    rng = np.random.default_rng(seed)
    params = {}
    for name, shp in shapes.items():
        kh, kw, cin, cout = shp["kernel"]
        std = np.float32(math.sqrt(2.0 / (kh * kw * cin)))
        kernel = rng.standard_normal(shp["kernel"], dtype=np.float32)
        kernel *= std
        params[name] = {"kernel": jnp.asarray(kernel),
                        "bias": jnp.full(shp["bias"], bias, jnp.float32)}
    return params


def _unwrap(params: Mapping[str, Any]) -> Mapping[str, Any]:
    """Accept both ``{layer: ...}`` and flax's ``{"params": {layer: ...}}``."""
    if "params" in params and isinstance(params["params"], Mapping):
        params = params["params"]
    if hasattr(params, "params") and not isinstance(params, Mapping):  # weights.AlexNetWeights
        params = params.params
    return params


def check_params(params: Mapping[str, Any], variant: str = "caffe-ref",
                 layer: str | None = None) -> None:
    """Raise ``ValueError`` naming the layer, expected and found shapes, when
    ``params`` (for the layers up to ``layer``, default all) do not fit."""
    params = _unwrap(params)
    needed = VARIANT_LAYERS[variant]
    if layer is not None:
        needed = needed[:needed.index(canonical_layer(layer, variant)) + 1]
    for name, shp in param_shapes(variant).items():
        if name not in needed:
            continue
        if name not in params:
            raise ValueError(f"AlexNet ({variant}) parameters have no layer {name!r}; "
                             f"found layers {sorted(params)}")
        for part, expected in shp.items():
            found = tuple(np.shape(params[name].get(part)))
            if found != expected:
                raise ValueError(
                    f"AlexNet ({variant}) layer {name} {part}: expected shape "
                    f"{expected}, found {found}; is this a weights file of another "
                    f"network or variant?")


# --------------------------------------------------------------------------
# The representation
# --------------------------------------------------------------------------

def paper_defaults(layer: str | int, variant: str = "caffe-ref") -> Config:
    """The paper's inversion settings for ``layer`` (a :class:`jinvert.Config`):
    λV = 0.5 / 5 / 50 for layers 1–6 / 7–12 / 13–20 of
    Table 2, β = 2, λα = 2.16e8, α = 6, learning rate 0.004 for 100
    iterations, then ÷10 for 200, then ÷100 for 100."""
    name = canonical_layer(layer, variant)
    # Numbered as in Table 2 (torchvision's layers by their caffe-ref twin).
    index = (LAYERS.index(name) if variant == "torchvision"
             else VARIANT_LAYERS[variant].index(name)) + 1
    band = 0 if index <= 6 else 1 if index <= 12 else 2
    return Config(lambda_tv=PAPER_LAMBDA_TV_BANDS[band], stages=PAPER_STAGES)


def _mean_for(variant: str, mean, size: tuple[int, int]) -> np.ndarray:
    """Mean to subtract, broadcastable to ``(H, W, 3)``, in input units."""
    if variant == "torchvision":
        return TORCHVISION_MEAN
    if mean is None:
        return IMAGENET_MEAN_RGB
    mean = np.asarray(mean, np.float32)
    if mean.ndim == 3 and mean.shape[:2] != tuple(size):
        # A mean image of another size (Caffe's 256×256): crop its centre,
        # or fall back to its mean colour when it is too small.
        h, w = mean.shape[:2]
        if h >= size[0] and w >= size[1]:
            t, l = (h - size[0]) // 2, (w - size[1]) // 2
            mean = mean[t:t + size[0], l:l + size[1]]
        else:
            mean = mean.reshape(-1, 3).mean(axis=0)
    return mean.reshape(-1)[:3] if mean.ndim != 3 else mean


def alexnet(params, layer: str | int = "relu5", variant: str | None = None,
            mean=None, *, precision: str = "highest") -> Representation:
    """CNN-A (AlexNet) up to ``layer`` as a :class:`jinvert.Representation`.

    Args:
      params: ``{layer: {"kernel", "bias"}}`` (see :func:`random_params`), the
        flax form ``{"params": ...}``, or a :class:`jinvert.weights.AlexNetWeights`
        (then its variant and mean are used unless given).
      layer: a name of :data:`VARIANT_LAYERS` ``[variant]`` (``"pool5"`` is
        accepted for ``"mpool5"``) or the paper's layer number 1–20.
      variant: ``"caffe-ref"`` (default; the paper's CNN-A), ``"caffe-alex"``
        or ``"torchvision"``.
      mean: the mean image ``(227, 227, 3)`` or colour ``(3,)``, RGB, 0..255,
        subtracted by ``preprocess``; default the weights' own, else the
        ImageNet mean colour (ignored by torchvision, which uses mean/std).
      precision: of the float32 convolutions and products: ``"highest"``
        (default: the same codes on every backend) or ``"default"`` (the
        backend's choice: TF32 on recent NVIDIA GPUs, which moved pool5's
        and fc8's codes by 6e-4 relative on an H200); see
        :data:`jinvert.representation.PRECISIONS`.

    Returns a Representation whose ``apply`` maps an input-space image
    ``(H, W, 3)`` (227×227 for the caffe variants: RGB, 0..255, mean
    subtracted, so about ±128) to the layer's code ``(H', W', C')``, e.g.
    ``(13, 13, 256)`` at relu5 or ``(1, 1, 1000)`` at fc8. ``preprocess``
    resizes the shorter side and centre-crops to the input size (warning when
    it has to enlarge); ``deprocess`` undoes the mean and scale into [0, 1].
    """
    if hasattr(params, "params") and not isinstance(params, Mapping):
        variant = variant or params.variant
        mean = params.mean if mean is None else mean
        params = params.params
    variant = check_variant(variant or "caffe-ref")
    name = canonical_layer(layer, variant)
    params = _unwrap(params)
    check_params(params, variant, name)
    size = INPUT_SIZE[variant]
    mean = jnp.asarray(_mean_for(variant, mean, size))
    # Only the parameters the truncated network uses are closed over, so a
    # low layer does not drag fc6/fc7 (200 MB) into every jitted function.
    needed = VARIANT_LAYERS[variant][:VARIANT_LAYERS[variant].index(name) + 1]
    variables = {"params": {k: {"kernel": jnp.asarray(v["kernel"], jnp.float32),
                                "bias": jnp.asarray(v["bias"], jnp.float32)}
                            for k, v in params.items() if k in needed}}
    module = AlexNet(variant=variant, layer=name)

    matmul_precision(precision, f"alexnet:{name}")  # a bad value fails now

    def apply_batch(x: Array) -> Array:
        with matmul_precision(precision, f"alexnet:{name}"):
            return module.apply(variables, jnp.asarray(x, jnp.float32))

    def apply(x: Array) -> Array:
        return apply_batch(jnp.asarray(x)[None])[0]

    if variant == "torchvision":
        scale = jnp.asarray(TORCHVISION_STD)

        def preprocess(image) -> Array:
            rgb = images.to_rgb(image)
            rgb = images.resize_and_crop(rgb, size, name=f"alexnet:{name}")
            return (jnp.asarray(rgb) - mean) / scale

        def deprocess(x: Array) -> Array:
            return jnp.clip(x * scale + mean, 0.0, 1.0)

        # σ of natural images in this space: the paper's σ (±128 units at
        # 227²) rescaled to unit-std channels at 224² (an approximation).
        sigma = PAPER_SIGMA * (224 / 227) / (255.0 * float(TORCHVISION_STD.mean()))
    else:
        def preprocess(image) -> Array:
            rgb = images.to_rgb(image)
            rgb = images.resize_and_crop(rgb, size, name=f"alexnet:{name}")
            return jnp.asarray(rgb) * 255.0 - mean

        def deprocess(x: Array) -> Array:
            return jnp.clip((x + mean) / 255.0, 0.0, 1.0)

        sigma = PAPER_SIGMA

    def validate(x) -> None:
        shape = tuple(np.shape(x))
        if len(shape) != 3 or shape[-1] != 3:
            raise ValueError(f"alexnet:{name}: expected an RGB input-space image "
                             f"(H, W, 3); got shape {shape} (use .preprocess)")
        out = output_shape(name, variant, shape[:2])
        if min(out[:2]) < 1:
            raise ValueError(
                f"alexnet:{name}: an input of {shape[0]}×{shape[1]} is too small "
                f"for layer {name} (the network expects {size[0]}×{size[1]}; "
                f"use .preprocess to resize)")

    return Representation(
        name=f"alexnet:{name}" if variant == "caffe-ref" else f"alexnet-{variant}:{name}",
        description=f"AlexNet ({variant}) up to layer {name} "
                    f"(layer {VARIANT_LAYERS[variant].index(name) + 1} of "
                    f"{len(VARIANT_LAYERS[variant])}), code {output_shape(name, variant)}",
        apply=apply, preprocess_fn=preprocess, deprocess_fn=deprocess, channels=3,
        input_size=size, sigma=sigma, defaults=paper_defaults(name, variant),
        validate=validate, apply_batch=apply_batch)

