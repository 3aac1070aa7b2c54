"""An independent PyTorch reference of EfficientNet-Lite0, to check ours.

Written with torch ops from the checkpoint's own tensors — batch norm
unfolded, TensorFlow "SAME" padding computed here (not taken from
:mod:`jinvert.representations.efficientnet`) — so that the tests and
``benchmarks/efficientnet_accuracy.py`` compare two separate programs.
Needs ``torch`` (``pip install torch==2.13.0``); jinvert itself does not.
"""

from __future__ import annotations

import numpy as np

#: EfficientNet-Lite0's stages as published (Tan & Le 2019, Table 1; Lite
#: drops squeeze-and-excitation and uses ReLU6): (repeats, kernel, stride of
#: the first block, expansion, input width, output width). Written here, not
#: taken from :mod:`jinvert.representations.efficientnet`, so that a wrong
#: table there shows up as a difference.
STAGES = ((1, 3, 1, 1, 32, 16), (2, 3, 2, 6, 16, 24), (2, 5, 2, 6, 24, 40),
          (3, 3, 2, 6, 40, 80), (3, 5, 1, 6, 80, 112), (4, 5, 2, 6, 112, 192),
          (1, 3, 1, 6, 192, 320))


def blocks():
    """The 16 blocks, ``(kernel, stride, expansion, in, out)`` each."""
    return [(k, s if r == 0 else 1, e, cin if r == 0 else cout, cout)
            for (n, k, s, e, cin, cout) in STAGES for r in range(n)]


def torch_logits(sd, x_nhwc, symmetric=False):
    """EfficientNet-Lite0 logits with torch ops.

    Args:
      sd: the checkpoint's state dict (PyTorch names, NumPy or torch arrays).
      x_nhwc: ``(N, H, W, 3)`` preprocessed images.
      symmetric: use PyTorch's symmetric ``k // 2`` padding instead of
        TensorFlow's "SAME" (to show that the padding matters).

    Returns:
      ``(N, 1000)`` NumPy logits.
    """
    import torch
    import torch.nn.functional as F
    t = {k: torch.from_numpy(np.asarray(v)) for k, v in sd.items()}

    def conv(x, key, s=1, groups=1):
        w = t[key]
        k = w.shape[-1]
        if symmetric:
            return F.conv2d(x, w, stride=s, padding=k // 2, groups=groups)
        pads = []
        for n in (x.shape[3], x.shape[2]):          # F.pad: last dim first
            total = max((-(-n // s) - 1) * s + k - n, 0)
            pads += [total // 2, total - total // 2]
        return F.conv2d(F.pad(x, pads), w, stride=s, groups=groups)

    def bn(x, p):
        return F.batch_norm(x, t[p + ".running_mean"], t[p + ".running_var"],
                            t[p + ".weight"], t[p + ".bias"], False, 0.0, 1e-3)

    with torch.no_grad():
        x = torch.from_numpy(np.ascontiguousarray(np.asarray(x_nhwc).transpose(0, 3, 1, 2)))
        x = F.relu6(bn(conv(x, "_conv_stem.weight", 2), "_bn0"))
        for i, (k, s, e, cin, cout) in enumerate(blocks()):
            p, y = f"_blocks.{i}", x
            # The checkpoint's depthwise kernel is the table's.
            assert tuple(t[p + "._depthwise_conv.weight"].shape[-2:]) == (k, k), (i, k)
            if e != 1:
                y = F.relu6(bn(conv(y, p + "._expand_conv.weight"), p + "._bn0"))
            y = F.relu6(bn(conv(y, p + "._depthwise_conv.weight", s, y.shape[1]), p + "._bn1"))
            y = bn(conv(y, p + "._project_conv.weight"), p + "._bn2")
            x = y + x if (s == 1 and cin == cout) else y
        x = F.relu6(bn(conv(x, "_conv_head.weight"), "_bn1"))
        return F.linear(x.mean((2, 3)), t["_fc.weight"], t["_fc.bias"]).numpy()
