"""The representations of jinvert written in PyTorch, for speed comparisons.

Each builder returns Φ of a batch as a torch function ``(N, C, H, W) ->
(N, *code)``, differentiable, on the device of its weights. They compute
what jinvert's representations compute, op for op where PyTorch has the op:

* :func:`hog`: jinvert's UoCTTI HOG (:mod:`jinvert.representations.hog`):
  undivided central differences with zero gradient on the border pixels,
  hard (vl_hog's projection loop) or bilinear orientation binning into 2·O
  directed bins, bilinear cell pooling as two matrix products with
  jinvert's own pooling matrices, the four 2×2 block normalisations by the
  undirected energy, clamp 0.2, × 0.5. Output ``(N, h, w, 3·O [+4])``,
  jinvert's layout. Grey input ``(N, 1, H, W)`` only (what inversion uses;
  jinvert also picks the strongest of 3 colour channels).
* :func:`dsift`: jinvert's dense SIFT (:mod:`jinvert.representations.dsift`):
  one-sided border differences, VLFeat's fast atan2, bilinear binning into
  8 orientations, pooling with jinvert's replicate-border matrices, the
  flat Gaussian window, unit norm, clamp, unit norm. Output
  ``(N, rows, cols, 128)``.
* :func:`alexnet`: CNN-A (caffe-ref) up to a layer, from jinvert's params
  ``{layer: {"kernel" HWIO, "bias"}}``; cuDNN convolutions, torch's LRN and
  ceil-mode max pooling; relu after the max pooling it commutes with, as
  jinvert does. Output NCHW.
* :func:`efficientnet`: EfficientNet-Lite0 up to a tap, from jinvert's
  folded params (batch norm folded into the convolutions, as jinvert runs
  it), TensorFlow "SAME" padding. Output NCHW (or ``(N, C)``).

``tests/test_gpu_benchmark.py`` checks each against jinvert.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from jinvert.representations import alexnet as _alexnet
from jinvert.representations import dsift as _dsift
from jinvert.representations import efficientnet as _efficientnet
from jinvert.representations import gradients as _gradients
from jinvert.representations import hog as _hog


def _safe_sqrt(s, floor: float = 0.0):
    # sqrt with a finite gradient at 0 (as gradients.safe_sqrt).
    positive = s > floor
    return torch.where(positive, torch.sqrt(torch.where(positive, s, torch.ones_like(s))),
                       torch.zeros_like(s))


def _safe_atan2(gy, gx):
    zero = (gx == 0) & (gy == 0)
    return torch.where(zero, torch.zeros_like(gx),
                       torch.atan2(torch.where(zero, torch.zeros_like(gy), gy),
                                   torch.where(zero, torch.ones_like(gx), gx)))


def _soft_bins(angle, magnitude, num_bins: int):
    """``(N, H, W)`` -> ``(N, num_bins, H, W)``, as gradients.soft_orientation_bins."""
    position = angle / (2.0 * math.pi / num_bins)
    lower = torch.floor(position)
    frac = position - lower
    first = torch.remainder(lower, num_bins).to(torch.int32)
    second = torch.remainder(first + 1, num_bins)
    low, high = magnitude * (1.0 - frac), magnitude * frac
    zero = torch.zeros_like(magnitude)
    return torch.stack([torch.where(first == k, low, zero) + torch.where(second == k, high, zero)
                        for k in range(num_bins)], dim=1)


def _hard_bins(gx, gy, magnitude, orientations: int):
    """``(N, H, W)`` -> ``(N, 2·O, H, W)``, as gradients.hard_orientation_bins."""
    angles = np.pi * np.arange(orientations) / orientations
    cos_table = np.cos(angles).astype(np.float32)
    sin_table = np.sin(angles).astype(np.float32)
    norm = torch.clamp(magnitude.detach(), min=1e-10)
    ux, uy = gx.detach() / norm, gy.detach() / norm
    best_score = ux * float(cos_table[0]) + uy * float(sin_table[0])
    best_abs = best_score.abs()
    best = torch.zeros_like(ux, dtype=torch.int32)
    for k in range(1, orientations):
        score = ux * float(cos_table[k]) + uy * float(sin_table[k])
        better = score.abs() > best_abs
        best_abs = torch.where(better, score.abs(), best_abs)
        best_score = torch.where(better, score, best_score)
        best = torch.where(better, torch.full_like(best, k), best)
    directed = best + orientations * (best_score < 0).to(torch.int32)
    zero = torch.zeros_like(magnitude)
    return torch.stack([torch.where(directed == k, magnitude, zero)
                        for k in range(2 * orientations)], dim=1)


def _pool(binned, rows, cols):
    """``(N, B, H, W)`` -> ``(N, B, h, w)``: ``rows (h, H) · binned · colsᵀ``."""
    return torch.matmul(torch.matmul(rows, binned), cols.transpose(0, 1))


def hog(shape, cell_size: int = 8, orientations: int = 9, bilinear: bool = False,
        texture: bool = False, device="cpu"):
    """Φ of jinvert's ``hog(cell_size, orientations, bilinear, texture)`` for
    grey images of ``shape = (H, W)``: ``(N, 1, H, W) -> (N, h, w, 3·O [+4])``.
    (The defaults are the paper's CNN-HOG, jinvert's ``hog`` name.)"""
    height, width = shape
    as_tensor = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    rows = as_tensor(_gradients.triangle_matrix(height, _hog.cell_centres(height, cell_size),
                                                cell_size))
    cols = as_tensor(_gradients.triangle_matrix(width, _hog.cell_centres(width, cell_size),
                                                cell_size))
    O = orientations

    def phi(x):
        g = x[:, 0]
        # vl_hog: undivided differences, no gradient on the border pixels.
        gx = F.pad(g[:, 1:-1, 2:] - g[:, 1:-1, :-2], (1, 1, 1, 1))
        gy = F.pad(g[:, 2:, 1:-1] - g[:, :-2, 1:-1], (1, 1, 1, 1))
        magnitude = _safe_sqrt(gx * gx + gy * gy)
        if bilinear:
            binned = _soft_bins(_safe_atan2(gy, gx), magnitude, 2 * O)
        else:
            binned = _hard_bins(gx, gy, magnitude, O)
        hist = _pool(binned, rows, cols)                       # (N, 2O, h, w)
        undirected = hist[:, :O] + hist[:, O:]
        energy = (undirected * undirected).sum(1)              # (N, h, w)
        e = F.pad(energy[:, None], (1, 1, 1, 1), mode="replicate")[:, 0]
        h, w = energy.shape[1:]

        def shifted(dy, dx):
            return e[:, 1 + dy:1 + dy + h, 1 + dx:1 + dx + w]
        centre = shifted(0, 0)
        blocks = [shifted(-1, -1) + shifted(-1, 0) + shifted(0, -1) + centre,
                  shifted(-1, 0) + shifted(-1, 1) + centre + shifted(0, 1),
                  shifted(0, -1) + centre + shifted(1, -1) + shifted(1, 0),
                  centre + shifted(0, 1) + shifted(1, 0) + shifted(1, 1)]
        both = torch.cat([hist, undirected], dim=1)            # (N, 3O, h, w)
        clamped = [torch.clamp(both * torch.rsqrt(b + _hog.EPSILON)[:, None], max=_hog.CLAMP)
                   for b in blocks]
        features = 0.5 * sum(clamped)
        if texture:
            channels = torch.stack([c[:, 2 * O:].sum(1) for c in clamped], dim=1)
            features = torch.cat([features, channels / np.sqrt(18.0)], dim=1)
        return features.permute(0, 2, 3, 1)

    return phi


def _fast_atan2(y, x):
    abs_y = y.abs() + _dsift.FLOAT_EPSILON
    positive = x >= 0
    r = (x - torch.where(positive, abs_y, -abs_y)) / (x.abs() + abs_y)
    angle = torch.where(positive, math.pi / 4, 3 * math.pi / 4)
    angle = angle + (0.1821 * r * r - 0.9675) * r
    return torch.where(y < 0, -angle, angle)


def _one_sided(g, dim: int):
    n = g.shape[dim]
    first = g.narrow(dim, 1, 1) - g.narrow(dim, 0, 1)
    inner = 0.5 * (g.narrow(dim, 2, n - 2) - g.narrow(dim, 0, n - 2))
    last = g.narrow(dim, n - 1, 1) - g.narrow(dim, n - 2, 1)
    return torch.cat([first, inner, last], dim=dim)


def dsift(shape, bin_size: int = 5, step: int = 15, num_bins: int = 4,
          orientations: int = 8, window_size: float = 2.0, device="cpu"):
    """Φ of jinvert's ``dsift(...)`` for grey images of ``shape = (H, W)``:
    ``(N, 1, H, W) -> (N, rows, cols, num_bins²·orientations)``."""
    height, width = shape
    as_tensor = lambda a: torch.as_tensor(a, device=device)  # noqa: E731
    rows = as_tensor(_gradients.triangle_matrix(
        height, _dsift.bin_centres(height, bin_size, num_bins, step), bin_size,
        border="replicate"))
    cols = as_tensor(_gradients.triangle_matrix(
        width, _dsift.bin_centres(width, bin_size, num_bins, step), bin_size,
        border="replicate"))
    window = as_tensor(_dsift.window_means(bin_size, num_bins, window_size))
    window = window[:, None, None] * window[None, :, None]     # (by, bx, 1)
    nb, T = num_bins, orientations

    def unit(d):
        return d / (_safe_sqrt((d * d).sum(-1, keepdim=True)) + _dsift.FLOAT_EPSILON)

    def phi(x):
        g = x[:, 0]
        gx, gy = _one_sided(g, 2), _one_sided(g, 1)
        angle = torch.remainder(_fast_atan2(gy, gx), 2 * math.pi)
        magnitude = _safe_sqrt(gx * gx + gy * gy, floor=1e-8)
        pooled = _pool(_soft_bins(angle, magnitude, T), rows, cols)  # (N, T, R·nb, C·nb)
        n, _, rb, cb = pooled.shape
        desc = pooled.reshape(n, T, rb // nb, nb, cb // nb, nb).permute(0, 2, 4, 3, 5, 1)
        desc = (desc * window).reshape(n, rb // nb, cb // nb, nb * nb * T)
        return unit(torch.clamp(unit(desc), max=_dsift.CLAMP))

    return phi


def alexnet(params, layer: str, device="cpu"):
    """Φ of CNN-A (caffe-ref) up to ``layer`` from jinvert's params
    ``{name: {"kernel" (kh, kw, cin/groups, cout), "bias"}}``:
    ``(N, 3, 227, 227) -> (N, C, H', W')``."""
    convs = _alexnet._CONVS["caffe-ref"]
    stop = _alexnet.canonical_layer(layer)
    names = list(_alexnet.LAYERS[:_alexnet.LAYERS.index(stop) + 1])
    weights = {n: (torch.as_tensor(np.asarray(p["kernel"]).transpose(3, 2, 0, 1).copy(),
                                   device=device),
                   torch.as_tensor(np.array(p["bias"]), device=device))
               for n, p in params.items() if n in names}

    def phi(x):
        deferred_relu = False
        for i, name in enumerate(names):
            if name in convs:
                k, s, pd, _, _, g = convs[name]
                # fc6-8 too: convolutions whose kernel covers the whole map.
                x = F.conv2d(x, *weights[name], stride=s, padding=pd, groups=g)
            elif name.startswith("relu"):
                # relu commutes with the max pooling after it (as jinvert).
                if names[i + 1:i + 2] and names[i + 1].startswith("mpool"):
                    deferred_relu = True
                else:
                    x = F.relu(x)
            elif name.startswith("mpool"):
                x = F.max_pool2d(x, 3, 2, ceil_mode=True)
                if deferred_relu:
                    x, deferred_relu = F.relu(x), False
            else:
                x = F.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=1.0)
        return x

    return phi


def efficientnet(params, layer: str, device="cpu"):
    """Φ of EfficientNet-Lite0 up to the tap ``layer`` from jinvert's folded
    params (:func:`jinvert.representations.efficientnet.load_params`):
    ``(N, 3, H, W) -> (N, C, h, w)``, or ``(N, C)`` for pool and logits."""
    stop = _efficientnet._check_layer(layer)
    as_tensor = lambda a: torch.as_tensor(np.array(a), device=device)  # noqa: E731

    def conv_weights(p):  # HWIO -> OIHW (a depthwise (k, k, 1, C) -> (C, 1, k, k))
        return as_tensor(np.asarray(p["w"]).transpose(3, 2, 0, 1).copy()), as_tensor(p["b"])

    stem = conv_weights(params["stem"])
    blocks = [{k: conv_weights(v) for k, v in blk.items()} for blk in params["blocks"]]
    head = conv_weights(params["head"])
    fc = as_tensor(np.asarray(params["fc"]["w"]).T.copy()), as_tensor(params["fc"]["b"])

    def conv(x, wb, stride=1, groups=1):
        w, b = wb
        k = w.shape[-1]
        (top, bottom), (left, right) = (_efficientnet._same_padding(x.shape[2], k, stride),
                                        _efficientnet._same_padding(x.shape[3], k, stride))
        if top == bottom and left == right:  # symmetric: let the convolution pad
            return F.conv2d(x, w, b, stride=stride, padding=(top, left), groups=groups)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride,
                        groups=groups)

    def phi(x):
        h = F.relu6(conv(x, stem, 2))
        if stop == 0:
            return h
        for i, ((_, s, e, cin, cout), p) in enumerate(zip(_efficientnet.BLOCKS, blocks)):
            y = F.relu6(conv(h, p["expand"])) if e != 1 else h
            y = F.relu6(conv(y, p["dw"], s, groups=y.shape[1]))
            y = conv(y, p["project"])
            h = y + h if (s == 1 and cin == cout) else y
            if stop == i + 1:
                return h
        h = F.relu6(conv(h, head))
        if layer == "head":
            return h
        pooled = h.mean((2, 3))
        return pooled if layer == "pool" else F.linear(pooled, *fc)

    return phi
