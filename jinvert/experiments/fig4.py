"""Fig. 4 of the paper: the effect of the V^β regulariser's weight λV on HOG.

One photo (227 × 227 grey) inverted from its HOG code with λV = 0.5, 5
(the paper's setting for HOG) and 50 (β = 2): too little prior leaves noise
and high-frequency artefacts, too much washes out detail.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jinvert.experiments import common, figures
from jinvert.registry import resolve_representation

#: The λV values shown (the paper's three bands; 5 is its HOG setting).
LAMBDAS = (0.5, 5.0, 50.0)


def run(args, log=print) -> list[str]:
    """Write ``fig4.png`` and ``fig4.md`` under ``args.out``; returns them."""
    name = (args.rep or ["hog"])[0]
    rep = resolve_representation(name)
    photo = common.load_image_set(args.images, 1)[0]
    key = jax.random.PRNGKey(args.seed)
    folder = os.path.join(args.out, "fig4")
    x0 = common.prepare(rep, photo)
    code = np.asarray(rep(x0))
    tiles = [np.asarray(rep.deprocess(x0))]
    labels = [f"original ({x0.shape[1]}x{x0.shape[0]} grey)"]
    if rep.render is not None:  # a picture of the code (HOG's glyphs)
        tiles.append(rep.render(code))
        labels.append(f"{name.upper()} glyphs")
    settings = None
    for lam in LAMBDAS:
        settings = common.config_for(rep, iterations=args.iterations, lambda_tv=lam)
        tiles.append(common.panel(
            os.path.join(folder, f"{photo.name}_lambda{lam:g}.png"),
            lambda s=settings: common.reconstruct(rep, photo, key, config=s)[0]))
        paper = " (paper's)" if lam == 5.0 else ""
        labels.append(figures.error_label(f"λV = {lam:g}{paper}", rep, tiles[-1], code))
        log(f"fig4: λV = {lam:g} done")
    png = os.path.join(args.out, "fig4.png")
    figures.save(png, tiles, labels, height=160,
                 caption=figures.ERROR_CAPTION,
                 title=f"Fig. 4: effect of λV on {name.upper()} inversion of "
                       f"{photo.name} (β = 2, {sum(settings.stages)} iterations)")
    text = common.header(
        f"Fig. 4: effect of λV on {name.upper()} inversion",
        images_label=f"`{photo.name}` of " + common.image_set_label(args.images),
        weights="none", command=getattr(args, "command_line", "jinvert reproduce fig4"),
        settings=f"β = 2, stages {settings.stages}, λV ∈ {LAMBDAS}")
    text += ("![fig4](fig4.png)\n\nLeft to right: the photo (grey), "
             + ("its HOG glyphs, " if rep.render is not None else "")
             + ", ".join(f"reconstruction with λV = {lam:g}" for lam in LAMBDAS)
             + ". Paper (Fig. 4): λV = 5 is the setting used for HOG in Table 1.\n")
    return [png, common.write_markdown(os.path.join(args.out, "fig4.md"), text)]
