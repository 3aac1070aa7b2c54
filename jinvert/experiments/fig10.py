"""Fig. 10 of the paper: reconstructions from each filter group of CNN-A.

CaffeNet splits conv2, conv4 and conv5 into two filter groups; the paper
inverts each group alone (``jinvert.group_mask``) and finds one group codes
colour-less edges, the other colour blobs. That split is learned, so only
real AlexNet weights (``--weights`` or ``JINVERT_ALEXNET_WEIGHTS``) can show
it; without them this runs with random He-normal parameters and says so in
the figure's caption — the mechanics, not the finding.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jinvert.experiments import common, figures
from jinvert.masks import group_mask

LAYERS = ("relu2", "relu4", "relu5")


def _rep(layer: str, args):
    """AlexNet at ``layer`` with real weights if available, else random ones.
    Returns ``(rep, weights_label)``."""
    from jinvert.representations import alexnet as ax

    try:
        return common.deep_rep("alexnet", layer, args), common.weights_label("alexnet", args)
    except ValueError:
        params = ax.random_params(jax.random.PRNGKey(1234))
        return (ax.alexnet(params, layer=layer),
                "RANDOM AlexNet parameters (He-normal, seed 1234): no trained weights here")


def run(args, log=print) -> list[str]:
    """Write ``fig10.png`` and ``fig10.md`` under ``args.out``; returns them."""
    layers = common.deep_layers("alexnet", args, LAYERS)
    photo = common.load_image_set(args.images, 1)[0]
    key = jax.random.PRNGKey(args.seed)
    folder = os.path.join(args.out, "fig10")
    tiles, labels, label = [], [], ""
    for layer in layers:
        rep, label = _rep(layer, args)
        x0 = common.prepare(rep, photo)
        shape = np.asarray(rep(x0)).shape
        s = common.config_for(rep, iterations=args.iterations)
        code = np.asarray(rep(x0))
        tiles.append(np.asarray(rep.deprocess(x0)))
        labels.append("original")
        for g in (1, 2):
            tiles.append(common.panel(
                os.path.join(folder, f"{photo.name}_{layer}_group{g}"
                             + ("_random" if label.startswith("RANDOM") else "") + ".png"),
                lambda rep=rep, s=s, g=g: common.reconstruct(
                    rep, photo, key, config=s, mask=group_mask(shape, g))[0]))
            labels.append(figures.error_label(f"{layer}, group {g}", rep, tiles[-1], code,
                                              group_mask(shape, g)))
        log(f"fig10: {layer} done")
    png = os.path.join(args.out, "fig10.png")
    figures.save(png, tiles, labels, height=160, columns=3,
                 caption=figures.MASKED_CAPTION,
                 title=f"Fig. 10: {photo.name} reconstructed from each filter group of "
                       f"CNN-A (AlexNet); rows: " + ", ".join(layers),
                 note=figures.random_note("alexnet", args, label))
    text = common.header(
        "Fig. 10: each filter group of CNN-A",
        images_label=f"`{photo.name}` of " + common.image_set_label(args.images),
        weights=label, command=getattr(args, "command_line", "jinvert reproduce fig10"),
        settings="each layer's defaults, data term masked to one group's channels")
    text += ("![fig10](fig10.png)\n\nRows: " + ", ".join(layers)
             + "; columns: the photo, group 1, group 2."
             + (" **Random weights: this shows the mechanics only, not the paper's "
                "finding (edges vs colour).**" if label.startswith("RANDOM") else "") + "\n")
    return [png, common.write_markdown(os.path.join(args.out, "fig10.md"), text)]
