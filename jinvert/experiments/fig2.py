"""Fig. 2 of the paper: TV (β = 1) makes "spikes", the V² regulariser (β = 2) does not.

The paper inverts CNN-A's norm1 with TV (β = 1) and gets isolated spikes
where the representation subsamples; V^β with β = 2 removes them. Here: one
photo, one early layer (default ``efficientnet:block2``, the tap in CNN-A
norm1's place; ``--rep alexnet`` for norm1 with weights), inverted with β = 1
and β = 2. The β = 1 weight is set so that both regularisers have the same
value on the original photo (λ1 = λ2 · R_V²(x0/σ) / R_V¹(x0/σ)), so the only
change is the shape of the penalty, not its strength.
"""

from __future__ import annotations

import os

import jax
import jax.numpy as jnp
import numpy as np

from jinvert.experiments import common, figures
from jinvert.objective import total_variation

DEFAULT_LAYER = {"efficientnet": "block2", "alexnet": "norm1"}


def run(args, log=print) -> list[str]:
    """Write ``fig2.png`` and ``fig2.md`` under ``args.out``; returns them."""
    family = common.deep_family(args)
    layer = common.deep_layers(family, args, [DEFAULT_LAYER[family]])[0]
    rep = common.deep_rep(family, layer, args)
    photo = common.load_image_set(args.images, 1)[0]
    key = jax.random.PRNGKey(args.seed)
    s2 = common.config_for(rep, iterations=args.iterations, beta=2.0)
    u0 = jnp.asarray(common.prepare(rep, photo)) / rep.sigma
    ratio = float(total_variation(u0, 2.0) / total_variation(u0, 1.0))
    s1 = s2.replace(beta=1.0, lambda_tv=s2.lambda_tv * ratio)
    folder = os.path.join(args.out, "fig2")
    x0 = common.prepare(rep, photo)
    code = np.asarray(rep(x0))
    tiles = [np.asarray(rep.deprocess(x0))]
    labels = ["original"]
    for tag, s, words in (("tv_beta1", s1, "TV (β = 1)"), ("v2_beta2", s2, "V² (β = 2)")):
        tiles.append(common.panel(os.path.join(folder, f"{photo.name}_{layer}_{tag}.png"),
                                  lambda s=s: common.reconstruct(rep, photo, key, config=s)[0]))
        labels.append(figures.error_label(words, rep, tiles[-1], code))
        log(f"fig2: {tag} done")
    # A 4× zoom of the centre shows the spikes.
    h, w = tiles[1].shape[:2]
    crops = [t[h // 2 - h // 8:h // 2 + h // 8, w // 2 - w // 8:w // 2 + w // 8] for t in tiles[1:]]
    png = os.path.join(args.out, "fig2.png")
    figures.save(png, tiles + crops, labels + ["β = 1, centre x4", "β = 2, centre x4"],
                 caption=figures.ERROR_CAPTION,
                 title=f"Fig. 2: TV (β = 1) vs V² (β = 2) on {family}:{layer}, {photo.name}, "
                       f"{sum(s2.stages)} iterations",
                 note=figures.random_note(family, args))
    text = common.header(
        f"Fig. 2: TV (β = 1) vs V² (β = 2), {family}:{layer}",
        images_label=f"`{photo.name}` of " + common.image_set_label(args.images),
        weights=common.weights_label(family, args),
        command=getattr(args, "command_line", "jinvert reproduce fig2"),
        settings=f"stages {s2.stages}, λV(β=2) = {s2.lambda_tv:.3g}, "
                 f"λV(β=1) = {s1.lambda_tv:.3g} (equal penalty on the photo)")
    text += ("![fig2](fig2.png)\n\nLeft to right: the photo, the reconstruction with "
             "TV (β = 1), with V² (β = 2), then the centres of both enlarged. Paper "
             "(Fig. 2, CNN-A norm1): β = 1 leaves spikes, β = 2 removes them.\n")
    return [png, common.write_markdown(os.path.join(args.out, "fig2.md"), text)]
