"""Table 1 of the paper: normalised reconstruction error of HOG, HOGb, DSIFT.

For each representation, every test image (227 × 227 grey) is inverted with
the paper's shallow settings (4 × 200 iterations from lr 0.004, λV = 5,
β = 2, λα = 2.16e8, α = 6) and scored with ``jinvert.reconstruction_error``
in the paper's metric (err_i = ||Φ(x*_i) − Φ(x_i)|| / N_Φ, N_Φ the mean
distance between the codes of two different test images), reported as
mean ± std over images, in percent, beside the paper's numbers; the public
MATLAB code's squared variant is given beside it, named.
"""

from __future__ import annotations

import os

import jax
import numpy as np

from jinvert import images as im
from jinvert.experiments import common, figures, variants
from jinvert.registry import resolve_representation

#: The paper's Table 1 (ILSVRC-2012 validation images 1–100), mean ± std in %.
PAPER = {"hog": (28.1, 7.9), "hogb": (10.67, 5.2), "dsift": (10.89, 7.5)}
LABELS = {"hog": "HOG (CNN-HOG)", "hogb": "HOGb (CNN-HOGb)", "dsift": "DSIFT (CNN-DSIFT)"}


def chosen_variants(args) -> list[str]:
    """The variants of ``--variant`` (repeatable, or comma-separated; default
    ``["paper"]``), in the order given, each once. ValueError for an unknown
    one, or for one beyond the paper with a recipe other than cvpr (the ijcv
    recipe has its own optimiser and priors)."""
    chosen = list(dict.fromkeys(v.strip() for given in (getattr(args, "variant", None)
                                                         or ["paper"])
                                for v in given.split(",") if v.strip()))
    unknown = [v for v in chosen if v not in variants.VARIANTS]
    if unknown or not chosen:
        raise ValueError(f"unknown --variant {', '.join(unknown) or '(empty)'}; known: "
                         f"{', '.join(variants.VARIANTS)}")
    recipe = getattr(args, "recipe", None) or "cvpr"
    if recipe != "cvpr" and chosen != ["paper"]:
        raise ValueError(f"--variant {','.join(chosen)} changes the cvpr recipe; "
                         f"--recipe {recipe} has settings of its own")
    return chosen


def run(args, log=print) -> list[str]:
    """Invert ``args.limit`` images under each of ``args.rep`` (default all
    three) with each of ``args.variant`` (default the paper's settings alone;
    :mod:`jinvert.experiments.variants`) and write ``table1.md``,
    ``table1.png`` and ``table1/results.jsonl`` under ``args.out``. Returns
    the paths written."""
    reps = args.rep or list(PAPER)
    chosen = chosen_variants(args)
    photos = common.load_image_set(args.images, args.limit)
    if len(photos) < 2:
        raise ValueError("table1 needs at least 2 images (the error is normalised "
                         "by their mutual distances)")
    store = common.ResultStore(os.path.join(args.out, "table1", "results.jsonl"))
    key = jax.random.PRNGKey(args.seed)
    rows, settings_text = [], ""
    recipe = getattr(args, "recipe", None) or "cvpr"
    for name in reps:
        rep = resolve_representation(name)
        paper_settings = common.config_for(rep, iterations=args.iterations, recipe=recipe)
        shape = tuple(common.input_shape(rep)) + (int(rep.channels),)
        settings_text = f"{recipe} recipe, " + common.settings_text(paper_settings, shape,
                                                                     rep.sigma)
        for variant in chosen:
            options = variants.invert_options(variant, paper_settings, shape)
            tag = name if recipe == "cvpr" else f"{name}-{recipe}"
            tag += "" if variant == "paper" else f"-{variant}"
            save_dir = os.path.join(args.out, "table1", tag)
            timing = common.run_inversions(rep, photos, store, tag=tag, key=key,
                                           batch_size=args.batch_size, save_dir=save_dir,
                                           log=log, **options)
            errors = common.normalised_errors(rep, photos, save_dir)
            squared = common.normalised_errors(rep, photos, save_dir, squared=True)
            pictures = common.image_scores(rep, photos, save_dir)  # beyond the paper
            # Images whose first random start diverged and was restarted.
            restarts = sum(1 for p in photos
                           if store.records[f"{tag}/{p.name}"].get("restarts", 0))
            label = LABELS.get(name, name) + ("" if variant == "paper" else f", {variant}")
            short = LABELS.get(name, name).split(" ")[0] + (
                "" if variant == "paper" else f" {variant}")
            tiles = [im.load_image(os.path.join(save_dir, f"{p.name}.png"))
                     for p in photos[:4]]
            rows.append((label, errors, PAPER.get(name), restarts, squared, timing, pictures,
                         short, tiles))

    command = getattr(args, "command_line", "jinvert reproduce table1")
    text = common.header("Table 1: reconstruction error of shallow representations",
                         images_label=f"{len(photos)} " + common.image_set_label(args.images, photos)
                         + ", resized-and-cropped to 227 × 227 grey",
                         weights="none (HOG, HOGb, DSIFT have no weights)",
                         command=command, settings=settings_text)
    text += ("| representation | ours: error % (paper's metric, mean ± std) "
             "| paper (ILSVRC-12 val 1–100) | ours: MATLAB code's squared variant % "
             "| images | images restarted after divergence "
             "| ours: image error % (pixels, same normalisation) | ours: SSIM to the photo |"
             "\n|---|---|---|---|---|---|---|---|\n")
    for label, errors, paper, restarts, squared, _, pictures, *_ in rows:
        ptxt = f"{paper[0]} ± {paper[1]}" if paper else "—"
        text += (f"| {label} | {common.mean_std(errors)} | {ptxt} "
                 f"| {common.mean_std(squared)} | {len(errors)} | {restarts} "
                 f"| {common.mean_std(pictures['pixel'])} "
                 f"| {common.mean_std(pictures['ssim'], decimals=3)} |\n")
    if chosen != ["paper"]:
        text += ("\nBeyond the paper (`--variant`, `jinvert.experiments.variants`; the same "
                 "photos, random keys and other settings as the paper's rows): "
                 + "; ".join(variants.DESCRIPTIONS[v] for v in chosen if v != "paper")
                 + ". Their rates were tuned on scikit-image's photos (docs/priors.md).\n")
    if any(r[5]["optimise_s"] for r in rows):
        text += ("\nTime on " + common.device_label() + ": "
                 + "; ".join(f"{r[7]} {r[5]['optimise_s']:.1f} s inverting "
                             f"+ {r[5]['compile_s']:.1f} s compiling" for r in rows)
                 + " (a resumed run counts only what it did).\n")
    text += ("\nError (the paper's text, Sect. 4): err_i = ‖Φ(x*_i) − Φ(x_i)‖ / N_Φ, "
             "N_Φ = mean over j ≠ k of ‖Φ(x_j) − Φ(x_k)‖ "
             "(`jinvert.reconstruction_error`), in percent, std over images. Squared "
             "variant (the public MATLAB code, not the paper's tables): "
             "‖Φ(x*_i) − Φ(x_i)‖² / mean_{j,k} ‖Φ(x_j) − Φ(x_k)‖² "
             "(`reconstruction_error(..., squared=True)`). The normaliser depends on the "
             "image set, so numbers on another set are comparable only roughly. Beyond the "
             "paper, in image space (`jinvert.metrics.image_errors`, on the saved pictures "
             "in [0, 1] against the photos as the representation saw them): "
             "‖x*_i − x_i‖ / N_x, N_x = mean over j ≠ k of ‖x_j − x_k‖, in percent, and "
             "SSIM.\n\n"
             "Per image (paper's metric, %):\n\n| image | "
             + " | ".join(r[0] for r in rows) + " |\n|---|" + "---|" * len(rows) + "\n")
    for i, p in enumerate(photos):
        text += f"| {p.name} | " + " | ".join(f"{r[1][i]:.2f}" for r in rows) + " |\n"
    md = os.path.join(args.out, "table1.md")
    with open(md, "w", encoding="utf-8") as f:
        f.write(text)

    # Figure: original (grey) then each representation's reconstruction, one
    # row per image (the first four), each labelled with its error.
    shallow = resolve_representation(reps[0])
    tiles_png, labels = [], []
    for i, p in enumerate(photos[:4]):
        tiles_png.append(np.asarray(shallow.deprocess(common.prepare(shallow, p))))
        labels.append(f"{p.name} (grey, 227x227)")
        for _, errors, *_, short, tiles in rows:
            tiles_png.append(tiles[i])
            labels.append(f"{short}: error {errors[i]:.1f} %")
    png = os.path.join(args.out, "table1.png")
    figures.save(png, tiles_png, labels, columns=1 + len(rows), height=160,
                 title=f"Table 1: reconstructions of the first {min(4, len(photos))} of "
                       f"{len(photos)} images, {settings_text}",
                 caption="error: the paper's normalised error ||Phi(x*) - Phi(x)|| / N_Phi, "
                         "N_Phi the mean distance between the codes of two different "
                         "test images")
    log(text)
    return [md, png, store.path]
