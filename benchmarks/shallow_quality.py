"""Table 1 of the paper for HOG, HOGb and DSIFT on natural photos.

    python benchmarks/shallow_quality.py [--limit N] [--iterations N] [--images DIR]
                                         [--reps hog,hogb,dsift] [--out DIR]

Each photo (scikit-image's bundled data by default, or every image file in
DIR) is made a 227×227 grey image, encoded, and inverted once from random
noise with the paper's defaults (4×200 iterations from 0.004, λα = 2.16e8,
α = 6, λV = 5, β = 2). The table gives the paper's normalised error
(:func:`jinvert.reconstruction_error`, mean ± std in percent, normalised by
the mean squared distance between the codes of the photos used) beside the
paper's Table 1 (which used ILSVRC-2012 validation images 1–100), and the
mean single-image relative error ||Φ(x*)−Φ0||²/||Φ0||².
"""

from __future__ import annotations

import argparse
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import numpy as np  # noqa: E402

from jinvert import images  # noqa: E402
from jinvert.metrics import reconstruction_error, relative_error  # noqa: E402
from jinvert.optimize import invert, rescale_stages, resolve_settings  # noqa: E402
from jinvert.registry import resolve_representation  # noqa: E402

#: Natural photos shipped with scikit-image (no download needed).
SKIMAGE_PHOTOS = ("camera", "astronaut", "coffee", "chelsea", "rocket", "coins", "clock",
                  "moon", "grass", "brick", "gravel", "page", "text")
#: Paper, Table 1: mean ± std of the normalised error, percent.
PAPER = {"hog": (28.1, 7.9), "hogb": (10.67, 5.2), "dsift": (10.89, 7.5)}


def load_photos(folder=None, limit=None):
    """[(name, (227, 227) grey image in [0, 1])]."""
    out = []
    if folder is None:
        from skimage import data as skdata
        for name in SKIMAGE_PHOTOS:
            out.append((name, np.asarray(getattr(skdata, name)(), np.float32) / 255.0))
    else:
        for name in sorted(os.listdir(folder)):
            path = os.path.join(folder, name)
            if os.path.isfile(path) and not name.startswith("."):
                try:
                    out.append((name, images.load_image(path)))
                except ValueError as err:
                    print(f"skipping {name}: {err}", file=sys.stderr)
    out = out[:limit] if limit else out
    if len(out) < 2:
        raise SystemExit("need at least 2 images for the normalised error")
    return [(n, images.resize_and_crop(images.to_grey(im), (227, 227), name=n)) for n, im in out]


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, help="use the first N photos")
    parser.add_argument("--iterations", type=int, help="total iterations (default: 800)")
    parser.add_argument("--images", metavar="DIR", help="a folder of photos instead")
    parser.add_argument("--reps", default="hog,hogb,dsift")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--learning-rate", type=float,
                        help="override the paper's 0.004")
    parser.add_argument("--out", metavar="DIR", help="save each reconstruction here")
    args = parser.parse_args(argv)

    photos = load_photos(args.images, args.limit)
    print(f"{len(photos)} photos at 227x227 grey: {', '.join(n for n, _ in photos)}")
    rows = []
    for name in args.reps.split(","):
        rep = resolve_representation(name)
        stages = resolve_settings(rep)["stages"]
        if args.iterations:
            stages = rescale_stages(stages, args.iterations)
        start = time.perf_counter()
        x0s = [rep.preprocess(im) for _, im in photos]
        codes0 = [np.asarray(rep(x)) for x in x0s]
        codes, rel = [], []
        # One call per photo (the compiled program is reused): with the
        # current HOG, vmapping several images costs more than a loop.
        for i, (x0, c0) in enumerate(zip(x0s, codes0)):
            r = invert(rep, c0, shape=x0.shape, key=jax.random.PRNGKey(args.seed + i),
                       stages=stages, learning_rate=args.learning_rate)
            if not np.all(np.isfinite(np.asarray(r.images))):
                print(f"  {name} {photos[i][0]}: diverged (NaN pixels)", file=sys.stderr)
            codes.append(np.nan_to_num(np.asarray(r.codes[0])))
            rel.append(relative_error(codes[-1], c0))
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                images.save_image(os.path.join(args.out, f"{name}-{photos[i][0]}.png"),
                                  np.concatenate([np.asarray(rep.deprocess(x0)),
                                                  np.asarray(rep.deprocess(r.images[0]))], 1))
        err = 100 * reconstruction_error(codes, codes0)
        seconds = (time.perf_counter() - start) / len(photos)
        rows.append((name, err, 100 * np.mean(rel), seconds, sum(stages)))
        # A diverged run (NaN image) is counted with a zeroed code.
        print(f"  {name}: " + " ".join(f"{e:.1f}" for e in err), flush=True)

    print(f"| {'rep':6s} | {'ours: error % (mean ± std)':27s} | {'paper Table 1':14s} "
          f"| {'relative error %':16s} | {'iterations':10s} | {'s / image':9s} |")
    print(f"|{'-' * 8}|{'-' * 29}|{'-' * 16}|{'-' * 18}|{'-' * 12}|{'-' * 11}|")
    for name, err, rel, seconds, its in rows:
        paper = PAPER.get(name)
        paper_text = f"{paper[0]:.2f} ± {paper[1]:.1f}" if paper else "-"
        print(f"| {name:6s} | {err.mean():12.2f} ± {err.std(ddof=1):<12.2f} | {paper_text:14s} "
              f"| {rel:16.2f} | {its:10d} | {seconds:9.1f} |")


if __name__ == "__main__":
    main()
