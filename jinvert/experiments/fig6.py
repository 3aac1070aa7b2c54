"""Fig. 6 of the paper: one photo reconstructed from every layer of a CNN.

Each layer (``--layers`` or all of the family's) is inverted with its own
paper defaults (λV band, schedule); the panels are laid out in layer order
so the loss of detail with depth shows.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jinvert.experiments import common, figures


def run(args, log=print) -> list[str]:
    """Write ``fig6.png`` and ``fig6.md`` under ``args.out``; returns them."""
    family = common.deep_family(args)
    layers = common.deep_layers(family, args)
    photo = common.load_image_set(args.images, 1)[0]
    key = jax.random.PRNGKey(args.seed)
    folder = os.path.join(args.out, "fig6")
    tiles, labels, original = [], [], None
    for layer in layers:
        rep = common.deep_rep(family, layer, args)
        x0 = common.prepare(rep, photo)
        if original is None:
            original = np.asarray(rep.deprocess(x0))
        s = common.config_for(rep, iterations=args.iterations)
        tiles.append(common.panel(os.path.join(folder, f"{photo.name}_{layer}.png"),
                                  lambda rep=rep, s=s: common.reconstruct(
                                      rep, photo, key, config=s)[0]))
        labels.append(figures.error_label(layer, rep, tiles[-1], np.asarray(rep(x0))))
        log(f"fig6: {layer} done")
    grid, grid_labels = [], []
    for i in range(0, len(tiles), 7):  # rows of the photo and seven layers
        grid += [original] + tiles[i:i + 7]
        grid_labels += ["original"] + labels[i:i + 7]
    png = os.path.join(args.out, "fig6.png")
    figures.save(png, grid, grid_labels, height=128, columns=8,
                 caption=figures.ERROR_CAPTION,
                 title=f"Fig. 6: {photo.name} reconstructed from every layer of {family}, "
                       f"each with its defaults"
                       + (f", {args.iterations} iterations" if args.iterations else ""),
                 note=figures.random_note(family, args))
    text = common.header(
        f"Fig. 6: `{photo.name}` reconstructed from every layer of {family}",
        images_label=f"`{photo.name}` of " + common.image_set_label(args.images),
        weights=common.weights_label(family, args),
        command=getattr(args, "command_line", "jinvert reproduce fig6"),
        settings="each layer's defaults" + (f", {args.iterations} iterations"
                                             if args.iterations else ""))
    text += ("![fig6](fig6.png)\n\nEach row starts with the photo; then, in order: "
             + ", ".join(layers) + ".\n")
    return [png, common.write_markdown(os.path.join(args.out, "fig6.md"), text)]
