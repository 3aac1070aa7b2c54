"""Caffe's layers as JAX functions and flax modules, NHWC float32.

The building blocks of CNN-A (:mod:`jinvert.representations.alexnet`), each
computing what Caffe computes (and PyTorch, where said):

- :func:`conv2d`: cross-correlation with zero padding and a stride, kernel
  ``(k, k, Cin, Cout)`` (HWIO), no bias;
- :class:`GroupedConv`: a convolution with Caffe's filter groups, plus bias;
- :class:`FullyConnected`: a fully connected layer stored as a ``k×k`` valid
  convolution, so a network stays fully convolutional;
- :func:`max_pool`: max pooling with Caffe's ceil rounding and −∞ padding
  (:func:`caffe_pool_output_size` gives its output length), or PyTorch's
  floor rounding;
- :func:`lrn`: Caffe's across-channel local response normalisation.

Each is written for speed on XLA:CPU with its gradient (timings in the
docstrings, on 2 cores) while computing the same values, up to float
rounding, as the plain formula.
"""

from __future__ import annotations

import functools

import flax.linen as nn
import jax
import jax.numpy as jnp

Array = jax.Array

#: CNN-A's max pooling: 3×3 windows, stride 2.
POOL_SIZE, POOL_STRIDE = 3, 2
#: CNN-A's local response normalisation: window of 5 channels, α, β, k.
LRN_SIZE, LRN_ALPHA, LRN_BETA, LRN_K = 5, 1e-4, 0.75, 1.0


def caffe_pool_output_size(n: int, size: int = POOL_SIZE, stride: int = POOL_STRIDE,
                           pad: int = 0) -> int:
    """Output length of Caffe's max pooling along one axis of length ``n``.

    Caffe rounds up: ``ceil((n + 2·pad − size) / stride) + 1``, then drops
    the last window when it would start inside the bottom/right padding.
    """
    out = -(-(n + 2 * pad - size) // stride) + 1
    if pad > 0 and (out - 1) * stride >= n + pad:
        out -= 1
    return out


def max_pool(x: Array, size: int = POOL_SIZE, stride: int = POOL_STRIDE,
             pad: int = 0, ceil_mode: bool = True) -> Array:
    """Max pooling ``(N, H, W, C) -> (N, H', W', C)``, padding with −∞.

    With ``ceil_mode`` (Caffe), windows that overhang the bottom/right border
    are kept and see only the pixels inside; otherwise (PyTorch's default)
    they are dropped.

    Computed as maxima of strided views of the padded input, first along
    rows, then along columns, rather than ``lax.reduce_window``: the
    gradient of reduce_window (select-and-scatter) is slow on XLA:CPU
    (conv1, relu1 and mpool1 of 8 images with their gradient on 2 cores:
    77 ms with reduce_window, 53 ms with separable views, 46 ms without
    the pooling). Where several inputs tie for a window's maximum the
    gradient is shared among them (a convex combination, still a
    subgradient) instead of going to the first one as in Caffe.
    """
    pads, outs = [], []
    for length in x.shape[1:3]:
        if ceil_mode:
            out = caffe_pool_output_size(length, size, stride, pad)
        else:
            out = (length + 2 * pad - size) // stride + 1
        # Extra bottom/right padding so the last window fits; −∞ never wins.
        pads.append((pad, max(0, (out - 1) * stride + size - length - pad)))
        outs.append(out)
    x = jnp.pad(x, ((0, 0), pads[0], pads[1], (0, 0)), constant_values=-jnp.inf)
    for axis, out in zip((1, 2), outs):
        views = [jax.lax.slice_in_dim(x, i, i + (out - 1) * stride + 1, stride, axis)
                 for i in range(size)]
        x = functools.reduce(jnp.maximum, views)
    return x


def lrn(x: Array, size: int = LRN_SIZE, alpha: float = LRN_ALPHA,
        beta: float = LRN_BETA, k: float = LRN_K) -> Array:
    """Caffe's across-channel local response normalisation, ``(..., C)``.

    ``y_c = x_c / (k + alpha/size · Σ_{|c'−c| ≤ size//2} x_c'²)^beta``, the
    sum zero-padded at the ends of the channel axis. Caffe divides ``alpha``
    by ``size`` (MatConvNet stores the already divided value).
    """
    half = size // 2
    sq = jnp.square(x)
    pad = [(0, 0)] * (x.ndim - 1) + [(half, half)]
    window = (1,) * (x.ndim - 1) + (size,)
    summed = jax.lax.reduce_window(sq, 0.0, jax.lax.add, window,
                                   (1,) * x.ndim, pad)
    # The base is ≥ k = 1 > 0, so the power has a finite gradient everywhere.
    return x * jnp.power(k + (alpha / size) * summed, -beta)


#: Output positions per image above which :func:`conv2d` cuts a convolution
#: into bands of rows (see there).
CONV_BAND_POSITIONS = 2048


def conv2d(x: Array, kernel: Array, stride: int = 1, pad: int = 0) -> Array:
    """Cross-correlation ``(N, H, W, Cin) × (k, k, Cin, Cout) -> (N, H', W', Cout)``
    with zero padding ``pad`` on every side and stride ``stride`` (Caffe's
    convolution, without bias), ``H' = (H + 2·pad − k) // stride + 1``.

    Rewrites that change no value (up to float rounding) but the speed on
    XLA:CPU, measured on 2 cores with the input gradient:

    * A strided convolution is computed as a stride-1 convolution of
      space-to-depth blocks: the padded input cut into ``stride×stride``
      blocks stacked along channels, the kernel zero-padded to a multiple of
      the stride and cut the same way (conv1 of 8 images: 69 ms → 41 ms).
    * An output of more than :data:`CONV_BAND_POSITIONS` positions per image
      is computed in bands of rows, each a convolution of its own: XLA:CPU's
      convolution kernel loses half its speed once a batch of large maps
      no longer fits in cache (41 ms → 21 ms; conv1 of one image is 1.8 ms).
    * A 3×3 kernel on a smaller map is a matrix product of the map's
      patches (conv3 of one image: 4.0 ms → 2.6 ms).
    """
    dims = ("NHWC", "HWIO", "NHWC")
    n, h, w, cin = x.shape
    k, cout = kernel.shape[0], kernel.shape[-1]
    s = stride
    if s > 1:
        blocks = -(-k // s)                                # kernel size in blocks
        out_h, out_w = (h + 2 * pad - k) // s + 1, (w + 2 * pad - k) // s + 1
        nh, nw = out_h - 1 + blocks, out_w - 1 + blocks    # input blocks needed
        # Pad (or crop the unused bottom/right) to exactly nh·s × nw·s.
        x = jnp.pad(x, ((0, 0), (pad, max(0, nh * s - h - pad)),
                        (pad, max(0, nw * s - w - pad)), (0, 0)))[:, :nh * s, :nw * s]
        x = x.reshape(n, nh, s, nw, s, cin).transpose(0, 1, 3, 2, 4, 5)
        x = x.reshape(n, nh, nw, s * s * cin)
        kernel = jnp.pad(kernel, ((0, blocks * s - k), (0, blocks * s - k), (0, 0), (0, 0)))
        kernel = kernel.reshape(blocks, s, blocks, s, cin, cout).transpose(0, 2, 1, 3, 4, 5)
        kernel = kernel.reshape(blocks, blocks, s * s * cin, cout)
    elif pad:
        x = jnp.pad(x, ((0, 0), (pad, pad), (pad, pad), (0, 0)))
    k = kernel.shape[0]
    out_h, out_w = x.shape[1] - k + 1, x.shape[2] - k + 1
    bands = -(-out_h * out_w // CONV_BAND_POSITIONS)
    if k == 3 and bands == 1:
        # A 3×3 convolution of a small map as one matrix product of its
        # patches: conv3 of one image with its gradient in 2.6 ms against 4.0.
        patches = jnp.concatenate([x[:, i:i + out_h, j:j + out_w, :] for i in range(k)
                                   for j in range(k)], axis=-1)
        return patches @ kernel.reshape(-1, cout)
    rows = -(-out_h // bands)
    outs = [jax.lax.conv_general_dilated(x[:, r:min(r + rows, out_h) + k - 1], kernel,
                                         (1, 1), "VALID", dimension_numbers=dims)
            for r in range(0, out_h, rows)]
    return outs[0] if len(outs) == 1 else jnp.concatenate(outs, axis=1)


class FullyConnected(nn.Module):
    """A fully connected layer stored as a ``k×k`` valid convolution.

    Kernel ``(k, k, cin, features)``, bias ``(features,)``. On a ``k×k`` input
    (the network's own size) it runs as one matrix product: the input
    gradient is then a plain product with the kernel, whereas a convolution's
    backward pass makes a transposed copy of fc6's 151 MB kernel at every
    step (measured 2–3× slower per inversion iteration on CPU). Larger inputs
    give a map of outputs, as a convolution.
    """

    features: int
    kernel_size: int

    @nn.compact
    def __call__(self, x: Array) -> Array:
        k = self.kernel_size
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (k, k, x.shape[-1], self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        n, h, w, c = x.shape
        if (h, w) == (k, k):
            # Row-major flattening of (k, k, c) matches the kernel's first axes.
            y = x.reshape(n, k * k * c) @ kernel.reshape(k * k * c, self.features)
            return (y + bias).reshape(n, 1, 1, self.features)
        y = jax.lax.conv_general_dilated(x, kernel, (1, 1), "VALID",
                                         dimension_numbers=("NHWC", "HWIO", "NHWC"))
        return y + bias


class GroupedConv(nn.Module):
    """Convolution with ``groups`` filter groups (Caffe's ``group``).

    ``(N, H, W, Cin) -> (N, H', W', features)``; parameters ``kernel``
    ``(size, size, Cin/groups, features)`` and ``bias`` ``(features,)``, as
    flax's ``nn.Conv`` with ``feature_group_count``. Each group is its own
    convolution, concatenated: XLA:CPU runs one grouped convolution with its
    gradient about 3× slower than the two halves (conv2: 15 ms against 5).
    """

    features: int
    size: int
    stride: int = 1
    pad: int = 0
    groups: int = 1

    @nn.compact
    def __call__(self, x: Array) -> Array:
        cin = x.shape[-1] // self.groups
        cout = self.features // self.groups
        kernel = self.param("kernel", nn.initializers.lecun_normal(),
                            (self.size, self.size, cin, self.features), jnp.float32)
        bias = self.param("bias", nn.initializers.zeros, (self.features,), jnp.float32)
        outs = [conv2d(x[..., i * cin:(i + 1) * cin], kernel[..., i * cout:(i + 1) * cout],
                       self.stride, self.pad)
                for i in range(self.groups)]
        y = outs[0] if self.groups == 1 else jnp.concatenate(outs, axis=-1)
        return y + bias
