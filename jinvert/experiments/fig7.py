"""Fig. 7 of the paper: several reconstructions per deep layer (invariances).

Each deep layer is inverted from ``--samples`` (default 4) independent random
starts at once (vmapped); what differs between the samples is what the layer
does not encode.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jinvert import images as im
from jinvert.experiments import common, figures

DEFAULT_LAYERS = {"efficientnet": ("block11", "block15", "head", "logits"),
                  "alexnet": ("relu5", "relu6", "relu7", "fc8")}


def run(args, log=print) -> list[str]:
    """Write ``fig7.png`` and ``fig7.md`` under ``args.out``; returns them."""
    family = common.deep_family(args)
    layers = common.deep_layers(family, args, DEFAULT_LAYERS[family])
    samples = args.samples or 4
    photo = common.load_image_set(args.images, 1)[0]
    key = jax.random.PRNGKey(args.seed)
    folder = os.path.join(args.out, "fig7")
    rows, labels = [], []
    for layer in layers:
        rep = common.deep_rep(family, layer, args)
        code = np.asarray(rep(common.prepare(rep, photo)))
        s = common.config_for(rep, iterations=args.iterations)
        todo = [os.path.join(folder, f"{photo.name}_{layer}_{k}.png") for k in range(samples)]
        if all(os.path.exists(p) for p in todo):
            row = [im.load_image(p) for p in todo]
        else:
            pics = common.reconstruct(rep, photo, key, config=s, samples=samples)
            row = [common.panel(p, lambda pic=pic: pic) for p, pic in zip(todo, pics)]
        rows.append(row)
        labels += [figures.error_label(f"{layer} #{k + 1}", rep, pic, code)
                   for k, pic in enumerate(row)]
        log(f"fig7: {layer} done")
    png = os.path.join(args.out, "fig7.png")
    figures.save(png, [pic for row in rows for pic in row], labels, height=128,
                 caption=figures.ERROR_CAPTION,
                 columns=samples,
                 title=f"Fig. 7: {samples} reconstructions of {photo.name} from random "
                       f"starts, per layer of {family} (rows)",
                 note=figures.random_note(family, args))
    text = common.header(
        f"Fig. 7: {samples} samples per layer of {family}",
        images_label=f"`{photo.name}` of " + common.image_set_label(args.images),
        weights=common.weights_label(family, args),
        command=getattr(args, "command_line", "jinvert reproduce fig7"),
        settings="each layer's defaults" + (f", {args.iterations} iterations"
                                             if args.iterations else ""))
    text += "![fig7](fig7.png)\n\nRows, top to bottom: " + ", ".join(layers) + ".\n"
    return [png, common.write_markdown(os.path.join(args.out, "fig7.md"), text)]
