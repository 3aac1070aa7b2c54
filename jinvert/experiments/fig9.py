"""Fig. 9 of the paper: reconstructions from the central 5×5 neurons of each layer.

The data term is restricted to the central 5 × 5 spatial positions of the
layer's code (``jinvert.central_mask``), and the part of the image those
neurons see is boxed. For AlexNet the box is the analytic receptive field
(``alexnet.receptive_field``); for EfficientNet (padding and depthwise
convolutions make the analytic field loose) it is the empirical footprint:
the bounding box of the pixels where the gradient of the masked code's sum,
at the photo, is above 1e-6 of its maximum.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jinvert import images as im
from jinvert.experiments import common, figures
from jinvert.masks import central_mask

DEFAULT_LAYERS = {"efficientnet": ("stem", "block2", "block5", "block8", "block11", "block15"),
                  "alexnet": ("conv1", "relu2", "relu3", "relu4", "relu5")}
N = 5

#: EfficientNet: the learning rate of the masked runs, relative to the tap's
#: default. The masked data term is normalised by the 25 positions' own
#: norm (0.2 % of the stem code's squared norm on the astronaut), so its
#: gradient is hundreds of times the whole code's, and at the default rate
#: every tap tried (stem, block0, block2) diverged within 8 iterations; a
#: tenth converges (as the logits' band, which starts at a tenth too).
MASKED_RATE = 0.1


def draw_box(picture: np.ndarray, box, colour=(1.0, 0.0, 0.0), width: int = 2) -> np.ndarray:
    """Draw ``box = (top, left, bottom, right)`` (pixels, inclusive, clipped
    to the picture) on a copy of ``(H, W, 3)`` ``picture``."""
    out = im.to_rgb(picture).copy()
    h, w = out.shape[:2]
    t, l, b, r = (int(round(v)) for v in box)
    t, l, b, r = max(t, 0), max(l, 0), min(b, h - 1), min(r, w - 1)
    out[t:t + width, l:r + 1] = colour
    out[b - width + 1:b + 1, l:r + 1] = colour
    out[t:b + 1, l:l + width] = colour
    out[t:b + 1, r - width + 1:r + 1] = colour
    return out


def analytic_box(layer: str, mask: np.ndarray):
    """AlexNet: the union of the receptive fields of the masked positions."""
    from jinvert.representations.alexnet import receptive_field

    size, stride, offset = receptive_field(layer)
    ys, xs = np.nonzero(mask.any(axis=-1))
    half = (size - 1) / 2
    return (offset + ys.min() * stride - half, offset + xs.min() * stride - half,
            offset + ys.max() * stride + half, offset + xs.max() * stride + half)


def footprint_box(rep, x0: np.ndarray, mask: np.ndarray):
    """The empirical field: bounding box of |∂ Σ(mask·Φ(x)) / ∂x| > 1e-6·max."""
    g = jax.grad(lambda x: jnp.sum(jnp.asarray(mask, jnp.float32) * rep.apply(x)))(
        jnp.asarray(x0))
    a = np.abs(np.asarray(g)).max(axis=-1)
    ys, xs = np.nonzero(a > 1e-6 * a.max())
    return ys.min(), xs.min(), ys.max(), xs.max()


def run(args, log=print) -> list[str]:
    """Write ``fig9.png`` and ``fig9.md`` under ``args.out``; returns them."""
    family = common.deep_family(args)
    layers = common.deep_layers(family, args, DEFAULT_LAYERS[family])
    photo = common.load_image_set(args.images, 1)[0]
    key = jax.random.PRNGKey(args.seed)
    folder = os.path.join(args.out, "fig9")
    tiles, labels, notes = [], [], []
    for layer in layers:
        rep = common.deep_rep(family, layer, args)
        x0 = common.prepare(rep, photo)
        code_shape = np.asarray(rep(x0)).shape
        if len(code_shape) != 3:
            notes.append(f"{layer}: not spatial, skipped")
            continue
        mask = central_mask(code_shape, N)
        box = analytic_box(layer, mask) if family == "alexnet" else footprint_box(rep, x0, mask)
        s = common.config_for(rep, iterations=args.iterations)
        if family == "efficientnet":
            s = s.replace(learning_rate=s.learning_rate * MASKED_RATE)
        pic = common.panel(os.path.join(folder, f"{photo.name}_{layer}.png"),
                           lambda rep=rep, s=s, m=mask: common.reconstruct(
                               rep, photo, key, config=s, mask=m)[0])
        labels.append(figures.error_label(f"{layer}, central {N}x{N}", rep, pic,
                                          np.asarray(rep(x0)), mask))
        tiles.append(draw_box(pic, box))
        notes.append(f"{layer}: code {code_shape}, box rows {int(box[0])}–{int(box[2])}, "
                     f"cols {int(box[1])}–{int(box[3])}")
        log(f"fig9: {layer} done")
    png = os.path.join(args.out, "fig9.png")
    how = ("analytic receptive field" if family == "alexnet"
           else "empirical gradient footprint")
    if tiles:
        figures.save(png, tiles, labels, height=160,
                     caption=figures.MASKED_CAPTION,
                     title=f"Fig. 9: {photo.name} reconstructed from the central {N}x{N} "
                           f"neurons of each layer of {family}; red box: their {how}",
                     note=figures.random_note(family, args))
    else:
        raise ValueError("fig9: none of the layers has a spatial code")
    text = common.header(
        f"Fig. 9: central {N}×{N} neurons of each layer of {family}",
        images_label=f"`{photo.name}` of " + common.image_set_label(args.images),
        weights=common.weights_label(family, args),
        command=getattr(args, "command_line", "jinvert reproduce fig9"),
        settings="each layer's defaults, data term masked to the central 5×5 positions"
                 + (f", learning rate × {MASKED_RATE:g} (a masked run diverges at the "
                    f"default)" if family == "efficientnet" else ""))
    text += (f"![fig9](fig9.png)\n\nRed box: {how} of the masked neurons.\n\n"
             + "".join(f"- {n}\n" for n in notes))
    return [png, common.write_markdown(os.path.join(args.out, "fig9.md"), text)]
