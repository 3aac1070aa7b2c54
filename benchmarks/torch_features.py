"""Independent PyTorch references of jinvert's representations, for the speed
comparisons of ``benchmarks/gpu.py`` and as oracles for its tests.

Each builder returns Φ of a batch as a torch function ``(N, C, H, W) ->
(N, *code)``, differentiable, on the device of its weights. Everything here
is written again from the definitions (VLFeat's C code for HOG and dense
SIFT, the published layer shapes of CaffeNet and EfficientNet-Lite0):
layer tables, padding arithmetic, pooling weights and window weights are
this module's own, and it imports nothing from ``jinvert`` (the networks'
weights come in as arguments, already loaded by jinvert's readers). So
``tests/test_gpu_benchmark.py``, which checks each against jinvert,
compares two separate programs; a test there parses this file and fails
if it ever imports jinvert again.

* :func:`hog`: VLFeat's ``vl_hog`` (UoCTTI): undivided differences
  ``I(x+1) − I(x−1)`` on the pixels off the border; hard orientation
  assignment (the largest |projection| on the O undirected directions, its
  sign picking the half) or bilinear (between the two nearest of 2·O
  directed bins); bilinear spatial pooling into cells by VLFeat's
  accumulation rule; the four 2×2 block norms of the undirected energy at
  clamped cell indices, each + 1e-4; clamp 0.2; × 0.5; optional texture
  channels. Output ``(N, h, w, 3·O [+4])``. Grey input ``(N, 1, H, W)`` only.
* :func:`dsift`: VLFeat's fast dense SIFT (``vl_dsift``, flat window):
  central differences, one-sided on the border; ``vl_fast_atan2_f``;
  bilinear binning into T directed orientations; a triangular filter of
  half-width ``bin_size`` with padding by continuity, sampled at the bin
  centres; one Gaussian-window mean per spatial bin; L2 normalise, clamp
  0.2, L2 normalise. Output ``(N, rows, cols, num_bins²·T)``.
* :func:`alexnet`: CNN-A (CaffeNet, "caffe-ref") up to a layer, from params
  ``{layer: {"kernel" (kh, kw, cin/groups, cout), "bias"}}``; cuDNN
  convolutions with the groups of conv2/4/5, torch's LRN (Caffe's α/n),
  ceil-mode 3×3/2 max pooling. Output NCHW.
* :func:`efficientnet`: EfficientNet-Lite0 up to a tap, from the folded
  params pytree (batch norm folded into the convolutions), TensorFlow
  "SAME" padding. Output NCHW (or ``(N, C)`` for pool and logits).
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

# --------------------------------------------------------------------------
# Numerically safe pieces (finite gradients where an image is flat)
# --------------------------------------------------------------------------

#: C's FLT_EPSILON (VLFeat's VL_EPSILON_F), 2⁻²³.
FLT_EPSILON = 2.0 ** -23


def _root(s, floor: float = 0.0):
    """``sqrt(s)``, 0 where ``s ≤ floor``; the gradient there is 0, not inf."""
    keep = s > floor
    return torch.where(keep, torch.sqrt(torch.where(keep, s, torch.ones_like(s))),
                       torch.zeros_like(s))


def _angle(gy, gx):
    """``atan2(gy, gx)`` in (−π, π]; 0 with a zero gradient at the origin
    (atan2's derivative there is 0/0)."""
    origin = (gx == 0) & (gy == 0)
    return torch.where(origin, torch.zeros_like(gx),
                       torch.atan2(torch.where(origin, torch.ones_like(gy), gy),
                                   torch.where(origin, torch.ones_like(gx), gx)))


def _linear_orientation_bins(position, magnitude, bins: int):
    """Split ``magnitude`` ``(N, H, W)`` between bins ⌊p⌋ and ⌊p⌋ + 1 (mod
    ``bins``) of a fractional bin position ``p`` ``(N, H, W)``, in
    proportions 1 − frac(p) and frac(p): ``(N, bins, H, W)``."""
    below = torch.floor(position)
    upper = position - below
    first = torch.remainder(below, bins)
    second = torch.remainder(first + 1, bins)
    out = []
    for k in range(bins):
        w = (torch.where(first == k, 1.0 - upper, torch.zeros_like(upper))
             + torch.where(second == k, upper, torch.zeros_like(upper)))
        out.append(w * magnitude)
    return torch.stack(out, dim=1)


def _separable_pool(maps, along_rows, along_cols):
    """``(N, B, H, W)`` -> ``(N, B, h, w)``: ``along_rows (h, H) · maps ·
    along_colsᵀ``, a separable spatial filter sampled at the output cells."""
    return torch.matmul(torch.matmul(along_rows, maps), along_cols.transpose(0, 1))


# --------------------------------------------------------------------------
# HOG (VLFeat's vl_hog, UoCTTI)
# --------------------------------------------------------------------------

def hog_cell_weights(length: int, cell_size: int) -> np.ndarray:
    """``(cells, length)`` float32: how much pixel x adds to each cell along
    one axis, by ``vl_hog_put_image``'s rule. ``hx = (x + ½)/cell_size − ½``
    is the pixel's position in cell units; it goes to cell ⌊hx⌋ with weight
    1 − (hx − ⌊hx⌋) and to cell ⌊hx⌋ + 1 with the rest, a cell outside
    ``[0, cells)`` dropping its share. ``cells = (length + cell_size//2) //
    cell_size``, VLFeat's count (the last cell at least half inside)."""
    cells = (length + cell_size // 2) // cell_size
    out = np.zeros((cells, length), np.float64)
    for x in range(length):
        hx = (x + 0.5) / cell_size - 0.5
        left = math.floor(hx)
        share = hx - left
        if 0 <= left < cells:
            out[left, x] += 1.0 - share
        if 0 <= left + 1 < cells:
            out[left + 1, x] += share
    return out.astype(np.float32)


def hog(shape, cell_size: int = 8, orientations: int = 9, bilinear: bool = False,
        texture: bool = False, device="cpu"):
    """Φ of UoCTTI HOG (VLFeat's ``vl_hog``) for grey images of ``shape =
    (H, W)``: ``(N, 1, H, W)`` grey levels -> ``(N, h, w, 3·O [+4])``, channel
    order as ``vl_hog`` (2·O directed bins, O undirected, 4 texture).
    The defaults are the paper's CNN-HOG (27 channels)."""
    height, width = shape
    O = orientations
    down = torch.as_tensor(hog_cell_weights(height, cell_size), device=device)
    across = torch.as_tensor(hog_cell_weights(width, cell_size), device=device)
    # vl_hog's undirected directions (cos, sin)(πk/O), rounded to float32.
    theta = np.pi * np.arange(O) / O
    directions = [(float(np.float32(np.cos(t))), float(np.float32(np.sin(t)))) for t in theta]

    def phi(x):
        if x.shape[1] != 1:
            raise ValueError(f"hog: grey images (N, 1, H, W) only, got {tuple(x.shape)}")
        g = x[:, 0]
        # I(x+1) − I(x−1) at the pixels off the border; vl_hog skips the
        # border pixels, so they add nothing (zero gradient).
        gx = F.pad(g[:, 1:-1, 2:] - g[:, 1:-1, :-2], (1, 1, 1, 1))     # (N, H, W)
        gy = F.pad(g[:, 2:, 1:-1] - g[:, :-2, 1:-1], (1, 1, 1, 1))
        grad = _root(gx * gx + gy * gy)
        if bilinear:
            # Angle in units of π/O (2·O directed bins on the circle).
            binned = _linear_orientation_bins(_angle(gy, gx) / (math.pi / O), grad, 2 * O)
        else:
            # The unit gradient's projection on each undirected direction;
            # the largest |projection| wins (the first one on ties, as
            # vl_hog's strict >), its sign picking bin k or k + O. No
            # gradient flows through the choice.
            scale = torch.clamp(grad.detach(), min=1e-10)
            ux, uy = gx.detach() / scale, gy.detach() / scale
            scores = torch.stack([ux * c + uy * s for c, s in directions], dim=1)
            best = torch.argmax(scores.abs(), dim=1, keepdim=True)      # (N, 1, H, W)
            negative = torch.gather(scores, 1, best) < 0
            directed = (best + O * negative.long())[:, 0]               # (N, H, W)
            binned = torch.stack([torch.where(directed == k, grad, torch.zeros_like(grad))
                                  for k in range(2 * O)], dim=1)
        hist = _separable_pool(binned, down, across)                    # (N, 2O, h, w)
        folded = hist[:, :O] + hist[:, O:]                              # undirected
        norm = (folded * folded).sum(1)                                 # (N, h, w)
        h, w = norm.shape[1:]
        # vl_hog_extract: the neighbours' indices clamped to the grid.
        ys = torch.arange(h, device=norm.device)
        xs = torch.arange(w, device=norm.device)
        y_m, y_p = (ys - 1).clamp(min=0), (ys + 1).clamp(max=h - 1)
        x_m, x_p = (xs - 1).clamp(min=0), (xs + 1).clamp(max=w - 1)

        def at(rows, cols):
            return norm[:, rows][:, :, cols]
        n = {(r, c): at(ry, cx) for r, ry in (("m", y_m), ("0", ys), ("p", y_p))
             for c, cx in (("m", x_m), ("0", xs), ("p", x_p))}
        # Blocks above-left, above-right, below-left, below-right of the cell.
        block_energy = [
            n["m", "m"] + n["m", "0"] + n["0", "m"] + n["0", "0"],
            n["m", "0"] + n["m", "p"] + n["0", "0"] + n["0", "p"],
            n["0", "m"] + n["0", "0"] + n["p", "m"] + n["p", "0"],
            n["0", "0"] + n["0", "p"] + n["p", "0"] + n["p", "p"],
        ]
        cell = torch.cat([hist, folded], dim=1)                         # (N, 3O, h, w)
        truncated = [torch.clamp(cell * (1.0 / torch.sqrt(e + 1e-4))[:, None], max=0.2)
                     for e in block_energy]
        out = 0.5 * (truncated[0] + truncated[1] + truncated[2] + truncated[3])
        if texture:
            t = torch.stack([c[:, 2 * O:].sum(1) for c in truncated], dim=1)
            out = torch.cat([out, t * (1.0 / math.sqrt(18.0))], dim=1)
        return out.permute(0, 2, 3, 1)

    return phi


# --------------------------------------------------------------------------
# Dense SIFT (VLFeat's vl_dsift, fast variant)
# --------------------------------------------------------------------------

def _vl_fast_atan2(y, x):
    """VLFeat's ``vl_fast_atan2_f``: a cubic in r, (−π, π], ~5e-3 rad.
    Both branches' denominators equal ``|x| + |y| + ε`` (never zero), so the
    branch not taken cannot put a NaN into the gradient."""
    ay = y.abs() + FLT_EPSILON
    right = x >= 0
    r = torch.where(right, x - ay, x + ay) / (x.abs() + ay)
    base = torch.where(right, torch.full_like(x, math.pi / 4), torch.full_like(x, 3 * math.pi / 4))
    a = base + (0.1821 * r * r - 0.9675) * r
    return torch.where(y < 0, -a, a)


def _vl_dsift_derivative(g, dim: int):
    """d/d(dim) of ``g``: ½(g[i+1] − g[i−1]) inside, forward and backward
    differences on the first and last pixels (VLFeat's dsift)."""
    n = g.shape[dim]
    head = g.narrow(dim, 1, 1) - g.narrow(dim, 0, 1)
    body = 0.5 * (g.narrow(dim, 2, n - 2) - g.narrow(dim, 0, n - 2))
    tail = g.narrow(dim, n - 1, 1) - g.narrow(dim, n - 2, 1)
    return torch.cat([head, body, tail], dim=dim)


def dsift_bin_weights(length: int, bin_size: int, num_bins: int, step: int) -> np.ndarray:
    """``(frames·num_bins, length)`` float32: the triangular filter
    ``max(0, 1 − |t − c|/bin_size)`` centred on every spatial bin centre c,
    frame-major, taps past the ends read from the edge pixel (padding by
    continuity). Frames start at 0, step, 2·step, … while their last bin
    centre, ``bin_size·(num_bins − 1)`` further, is inside."""
    span = bin_size * (num_bins - 1)
    starts = range(0, length - span, step)
    out = np.zeros((len(starts) * num_bins, length), np.float64)
    row = 0
    for start in starts:
        for b in range(num_bins):
            c = start + b * bin_size
            for t in range(c - bin_size + 1, c + bin_size):
                out[row, min(max(t, 0), length - 1)] += 1.0 - abs(t - c) / bin_size
            row += 1
    return out.astype(np.float32)


def dsift_window_means(bin_size: int, num_bins: int, window_size: float) -> np.ndarray:
    """``(num_bins,)`` float32: VLFeat's ``_vl_dsift_get_bin_window_mean``,
    the mean of exp(−z²/2), z = (x − δ_b)/σ, over the 2·bin_size − 1 taps x
    of bin b, δ_b its offset from the descriptor centre, σ = bin_size·window_size."""
    sigma = bin_size * window_size
    means = []
    for b in range(num_bins):
        delta = bin_size * (b - 0.5 * (num_bins - 1))
        taps = [math.exp(-0.5 * ((x - delta) / sigma) ** 2)
                for x in range(-bin_size + 1, bin_size)]
        means.append(sum(taps) / len(taps))
    return np.asarray(means, np.float32)


def dsift(shape, bin_size: int = 5, step: int = 15, num_bins: int = 4,
          orientations: int = 8, window_size: float = 2.0, device="cpu"):
    """Φ of VLFeat's fast dense SIFT for grey images of ``shape = (H, W)``:
    ``(N, 1, H, W)`` -> ``(N, rows, cols, num_bins²·orientations)`` unit-norm
    descriptors, each in VLFeat's order (bin y, bin x, orientation)."""
    height, width = shape
    T, nb = orientations, num_bins
    down = torch.as_tensor(dsift_bin_weights(height, bin_size, nb, step), device=device)
    across = torch.as_tensor(dsift_bin_weights(width, bin_size, nb, step), device=device)
    wy = torch.as_tensor(dsift_window_means(bin_size, nb, window_size), device=device)
    window = (wy[:, None] * wy[None, :])[:, :, None]                    # (by, bx, 1)

    def l2_normalised(d):
        return d / (_root((d * d).sum(-1, keepdim=True)) + FLT_EPSILON)

    def phi(x):
        g = x[:, 0]
        gx, gy = _vl_dsift_derivative(g, 2), _vl_dsift_derivative(g, 1)
        theta = _vl_fast_atan2(gy, gx)
        theta = torch.where(theta < 0, theta + 2 * math.pi, theta)      # [0, 2π)
        # The floor keeps sqrt's gradient finite on (nearly) flat pixels.
        modulus = _root(gx * gx + gy * gy, floor=1e-8)
        binned = _linear_orientation_bins(theta * (T / (2 * math.pi)), modulus, T)
        pooled = _separable_pool(binned, down, across)                  # (N, T, rows·nb, cols·nb)
        n, _, ry, cx = pooled.shape
        d = pooled.reshape(n, T, ry // nb, nb, cx // nb, nb).permute(0, 2, 4, 3, 5, 1)
        d = (d * window).reshape(n, ry // nb, cx // nb, nb * nb * T)
        return l2_normalised(torch.clamp(l2_normalised(d), max=0.2))

    return phi


# --------------------------------------------------------------------------
# CNN-A: CaffeNet ("caffe-ref")
# --------------------------------------------------------------------------

#: CaffeNet in evaluation order, the paper's Table 2 (pool before norm).
CAFFENET_LAYERS = ("conv1", "relu1", "mpool1", "norm1", "conv2", "relu2", "mpool2", "norm2",
                   "conv3", "relu3", "conv4", "relu4", "conv5", "relu5", "mpool5",
                   "fc6", "relu6", "fc7", "relu7", "fc8")
#: name: (kernel, stride, padding, output channels, groups). fc6–8 run as
#: convolutions whose kernel covers the whole map (6×6 of pool5, then 1×1).
CAFFENET_CONVS = {
    "conv1": (11, 4, 0, 96, 1),
    "conv2": (5, 1, 2, 256, 2),
    "conv3": (3, 1, 1, 384, 1),
    "conv4": (3, 1, 1, 384, 2),
    "conv5": (3, 1, 1, 256, 2),
    "fc6": (6, 1, 0, 4096, 1),
    "fc7": (1, 1, 0, 4096, 1),
    "fc8": (1, 1, 0, 1000, 1),
}


def _caffenet_layer(layer) -> str:
    """A Table 2 name, Caffe's ``poolN`` spelling, or the 1-based number."""
    key = str(layer).strip().lower()
    if key.isdigit() and 1 <= int(key) <= len(CAFFENET_LAYERS):
        return CAFFENET_LAYERS[int(key) - 1]
    key = "m" + key if key.startswith("pool") else key
    if key not in CAFFENET_LAYERS:
        raise ValueError(f"unknown CaffeNet layer {layer!r}; one of {', '.join(CAFFENET_LAYERS)}")
    return key


def alexnet(params, layer: str, device="cpu"):
    """Φ of CNN-A (caffe-ref) up to ``layer`` from params ``{name: {"kernel"
    (kh, kw, cin/groups, cout), "bias"}}``: ``(N, 3, 227, 227)`` (mean
    subtracted, ±128) -> ``(N, C, H', W')``."""
    names = CAFFENET_LAYERS[:CAFFENET_LAYERS.index(_caffenet_layer(layer)) + 1]
    weights = {}
    cin = 3
    for name in names:
        if name not in CAFFENET_CONVS:
            continue
        k, _, _, cout, groups = CAFFENET_CONVS[name]
        kernel = np.asarray(params[name]["kernel"], np.float32)
        if kernel.shape != (k, k, cin // groups, cout):
            raise ValueError(f"{name}: kernel {kernel.shape}, CaffeNet's is "
                             f"{(k, k, cin // groups, cout)}")
        weights[name] = (torch.as_tensor(kernel.transpose(3, 2, 0, 1).copy(), device=device),
                         torch.as_tensor(np.array(params[name]["bias"], np.float32),
                                         device=device))
        cin = cout

    def phi(x):
        rectify_after_pool = False
        for i, name in enumerate(names):
            if name in CAFFENET_CONVS:
                _, stride, pad, _, groups = CAFFENET_CONVS[name]
                x = F.conv2d(x, *weights[name], stride=stride, padding=pad, groups=groups)
            elif name.startswith("relu"):
                # max(0, ·) commutes with max pooling: rectify the pooled
                # map (a quarter of the size) when a pooling follows.
                if i + 1 < len(names) and names[i + 1].startswith("mpool"):
                    rectify_after_pool = True
                else:
                    x = F.relu(x)
            elif name.startswith("mpool"):
                # Caffe rounds the output size up (no padding, so the last
                # window always starts inside the map).
                x = F.max_pool2d(x, 3, 2, ceil_mode=True)
                if rectify_after_pool:
                    x, rectify_after_pool = F.relu(x), False
            else:
                # Caffe's LRN: x / (1 + 1e-4/5 · Σ₅ x²)^0.75 (torch divides α by n too).
                x = F.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=1.0)
        return x

    return phi


# --------------------------------------------------------------------------
# EfficientNet-Lite0
# --------------------------------------------------------------------------

#: Lite0 = the B0 layout without squeeze-and-excitation, stem 32, head 1280:
#: stages of (repeats, kernel, first stride, expansion, in, out).
LITE0_STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
                (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
                (1, 3, 1, 6, 192, 320))


def _lite0_blocks():
    """One (kernel, stride, expansion, in, out) per MBConv block (16)."""
    blocks = []
    for repeats, k, stride, e, cin, cout in LITE0_STAGES:
        for r in range(repeats):
            blocks.append((k, stride if r == 0 else 1, e, cin if r == 0 else cout, cout))
    return blocks


#: The taps: stem, block0 … block15, head, pool, logits.
LITE0_TAPS = ("stem",) + tuple(f"block{i}" for i in range(len(_lite0_blocks()))) + (
    "head", "pool", "logits")


def tf_same_padding(n: int, k: int, stride: int) -> tuple[int, int]:
    """TensorFlow's "SAME" padding of an axis of ``n`` pixels for a ``k``-tap
    kernel at ``stride``: ⌈n/stride⌉ outputs, the missing input split with
    the odd pixel at the end (bottom/right). Returns (before, after)."""
    outputs = (n + stride - 1) // stride
    missing = (outputs - 1) * stride + k - n
    missing = missing if missing > 0 else 0
    before = missing // 2
    return before, missing - before


def efficientnet(params, layer: str, device="cpu"):
    """Φ of EfficientNet-Lite0 up to the tap ``layer`` from the folded
    params pytree ``{"stem", "blocks": [{"expand"?, "dw", "project"}],
    "head", "fc"}`` (``{"w": HWIO, "b"}`` leaves, ``fc = {"w": (1280, 1000),
    "b"}``): ``(N, 3, H, W)`` in ``(255·rgb − 127)/128`` -> ``(N, C, h, w)``,
    or ``(N, C)`` for pool and logits."""
    if layer not in LITE0_TAPS:
        raise ValueError(f"unknown EfficientNet-Lite0 tap {layer!r}; one of "
                         f"{', '.join(LITE0_TAPS)}")
    stop = LITE0_TAPS.index(layer)
    table = _lite0_blocks()
    if len(params["blocks"]) != len(table):
        raise ValueError(f"{len(params['blocks'])} blocks, Lite0 has {len(table)}")

    def tensor(a):
        return torch.as_tensor(np.array(a, np.float32), device=device)

    def oihw(p, k, cin_per_group, cout):
        w = np.asarray(p["w"], np.float32)
        if w.shape != (k, k, cin_per_group, cout):
            raise ValueError(f"kernel {w.shape}, expected {(k, k, cin_per_group, cout)}")
        return tensor(w.transpose(3, 2, 0, 1)), tensor(p["b"])

    stem = oihw(params["stem"], 3, 3, 32)
    blocks = []
    for (k, _, e, cin, cout), p in zip(table, params["blocks"]):
        mid = cin * e
        blocks.append({"expand": oihw(p["expand"], 1, cin, mid) if e != 1 else None,
                       "dw": oihw(p["dw"], k, 1, mid),
                       "project": oihw(p["project"], 1, mid, cout)})
    head = oihw(params["head"], 1, table[-1][4], 1280)
    fc = tensor(np.asarray(params["fc"]["w"]).T), tensor(params["fc"]["b"])

    def conv(x, wb, stride=1, depthwise=False):
        w, b = wb
        k = w.shape[-1]
        top, bottom = tf_same_padding(x.shape[2], k, stride)
        left, right = tf_same_padding(x.shape[3], k, stride)
        groups = x.shape[1] if depthwise else 1
        if (top, left) == (bottom, right):  # symmetric: the convolution pads
            return F.conv2d(x, w, b, stride=stride, padding=(top, left), groups=groups)
        return F.conv2d(F.pad(x, (left, right, top, bottom)), w, b, stride=stride,
                        groups=groups)

    def phi(x):
        h = F.relu6(conv(x, stem, 2))
        if stop == 0:
            return h
        for i, ((_, stride, _, cin, cout), p) in enumerate(zip(table, blocks)):
            y = F.relu6(conv(h, p["expand"])) if p["expand"] is not None else h
            y = F.relu6(conv(y, p["dw"], stride, depthwise=True))
            y = conv(y, p["project"])                  # linear bottleneck
            h = h + y if (stride == 1 and cin == cout) else y
            if stop == i + 1:
                return h
        h = F.relu6(conv(h, head))
        if layer == "head":
            return h
        pooled = h.mean((2, 3))
        return pooled if layer == "pool" else F.linear(pooled, *fc)

    return phi
