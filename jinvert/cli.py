"""The ``jinvert`` command.

    jinvert invert [IMAGE] --rep hog [--samples K] [--iterations N] [--out FILE]
    jinvert weights fetch NAME [--url URL]
    jinvert reproduce NAME [--images DIR] [--limit N] [--iterations N] [--out DIR]

Every error a user can cause (a missing image, an unknown representation, a
blank image, a bad option) ends in one line ``jinvert: error: ...`` on
stderr and exit status 2; Ctrl-C ends with status 130 and writes nothing.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from jinvert import registry, reproduce
from jinvert.reproduce import positive_int

EPILOG_INVERT = """\
representations:
  hog                 CNN-HOG (27 channels, hard orientation binning, 8x8 cells)
  hogb                CNN-HOGb (bilinear orientation binning)
  dsift               CNN-DSIFT (dense SIFT, bin size 5)
  alexnet:LAYER       a layer of AlexNet, e.g. alexnet:relu5 (see --weights)
  efficientnet:LAYER  a layer of EfficientNet-Lite0

The paper's settings are the defaults for each representation (HOG/DSIFT:
4 x 200 iterations of SGD with momentum 0.9 from a learning rate of 0.004,
divided by 10 every 200 iterations, lambda_alpha = 2.16e8 with alpha = 6,
lambda_V = 5 with beta = 2). HOG and DSIFT accept any image size; to keep the
CPU time low the image is shrunk so that its longer side is at most
--max-size pixels (default 256) unless --size is given. The paper's sigma
and lambdas are for 227x227x3 input values: for other sizes sigma is scaled
by sqrt(HWC/(227*227*3)) and the lambdas so that each prior weighs as on a
paper-size image (jinvert.Config.sized). CNNs take their own fixed size (the image is
scaled and centre-cropped to it).

The output is one PNG: the original as the representation sees it, the HOG
glyphs (for hog and hogb), then the K reconstructions. The command prints,
for each reconstruction, its relative error ||phi(x*) - phi(x0)||^2 /
||phi(x0)||^2 in percent (not the paper's Table-1 metric, which needs a set
of images: see benchmarks/shallow_quality.py), and the time taken.

example:
  jinvert invert photo.jpg --rep hog --samples 4 --out hog.png
"""


class _UsageError(Exception):
    """A bad command line; reported as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    def error(self, message):  # one line instead of usage + message
        raise _UsageError(f"{message} (see '{self.prog} --help')")


def _non_negative_float(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``jinvert`` (subcommands ``invert``, ``weights``,
    ``reproduce``)."""
    parser = _Parser(
        prog="jinvert",
        description="Invert image representations (HOG, dense SIFT, CNN layers) by "
                    "gradient descent from random noise: Mahendran & Vedaldi, "
                    "'Understanding Deep Image Representations by Inverting Them' "
                    "(CVPR 2015), in JAX.",
        epilog="Run 'jinvert invert --help' for the inversion options.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    inv = sub.add_parser(
        "invert", help="reconstruct images from the code of an image",
        description="Compute the code of IMAGE under a representation, reconstruct K "
                    "images from random noise that have the same code, and write them "
                    "side by side in one PNG.",
        epilog=EPILOG_INVERT, formatter_class=argparse.RawDescriptionHelpFormatter)
    inv.add_argument("image", nargs="?", metavar="IMAGE",
                     help="image file (PNG, JPEG, ...); default: the bundled astronaut "
                          "photo (NASA, public domain)")
    inv.add_argument("--rep", default="hog", metavar="NAME",
                     help="representation: hog, hogb, dsift, alexnet:LAYER, "
                          "efficientnet:LAYER (default: hog)")
    inv.add_argument("--samples", type=positive_int, default=1, metavar="K",
                     help="number of reconstructions from independent random starts, "
                          "computed together (default: 1)")
    inv.add_argument("--iterations", type=positive_int, metavar="N",
                     help="total iterations; the representation's schedule is rescaled "
                          "to N keeping its proportions (default: the paper's, 800 for "
                          "HOG/DSIFT)")
    inv.add_argument("--lambda-tv", type=_non_negative_float, metavar="X",
                     help="weight lambda_V of the V^beta prior (paper: 5 for HOG/DSIFT; "
                          "0.5/5/50 for CNN layers 1-6/7-12/13-20)")
    inv.add_argument("--beta", type=_non_negative_float, metavar="B",
                     help="exponent beta of the V^beta prior (1 = total variation, "
                          "2 = the paper's choice for HOG/DSIFT)")
    inv.add_argument("--lambda-alpha", type=_non_negative_float, metavar="X",
                     help="weight lambda_alpha of the alpha-norm prior (paper: 2.16e8)")
    inv.add_argument("--learning-rate", type=_non_negative_float, metavar="LR",
                     help="learning rate of the first stage (paper: 0.004 for HOG/DSIFT)")
    inv.add_argument("--parameterization", choices=("pixels", "fourier"), default="pixels",
                     help="what is optimised: the pixels (the paper) or a decorrelated "
                          "Fourier basis (beyond the paper; see docs/priors.md)")
    inv.add_argument("--jitter", type=int, default=0, metavar="PIXELS",
                     help="shift the image randomly by up to PIXELS at each step "
                          "(beyond the paper; default 0)")
    inv.add_argument("--optimizer", choices=("sgd", "adam"), default="sgd",
                     help="SGD with momentum and step decay (the paper) or Adam at a "
                          "constant --learning-rate (give it a smaller one, e.g. 0.001)")
    inv.add_argument("--seed", type=int, default=0, metavar="S",
                     help="random seed of the starting noise (default: 0)")
    size = inv.add_mutually_exclusive_group()
    size.add_argument("--size", type=positive_int, nargs=2, metavar=("H", "W"),
                      help="scale and centre-crop the image to H x W pixels first "
                           "(HOG/DSIFT only; CNNs use their own size)")
    size.add_argument("--max-size", type=positive_int, default=256, metavar="N",
                      help="shrink the image so that its longer side is at most N pixels "
                           "(HOG/DSIFT; default: 256, to keep CPU time low)")
    inv.add_argument("--weights", metavar="PATH",
                     help="weight file for alexnet:LAYER (see 'jinvert weights fetch'), or "
                          "'random' for random parameters of the real shapes; default: "
                          "$JINVERT_ALEXNET_WEIGHTS")
    inv.add_argument("--out", metavar="FILE",
                     help="output PNG (default: IMAGESTEM-REP.png in the current folder)")

    wts = sub.add_parser("weights", help="download pretrained CNN weights",
                         description="Manage pretrained CNN weights.")
    wsub = wts.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    fetch = wsub.add_parser("fetch", help="download weights into the cache",
                            description="Download the weights called NAME into the cache "
                                        "folder and print their path.")
    fetch.add_argument("name", metavar="NAME", help="weights name, e.g. caffenet")
    fetch.add_argument("--url", help="download from this URL instead of the known one")
    fetch.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: the library's)")
    reproduce.add_subparser(sub)
    return parser


def _prepare_image(rep, image, args):
    """``(H, W, 3)`` in [0, 1] -> the input-space image rep works on."""
    from jinvert import images as im

    if rep.input_size is not None:
        if args.size is not None and tuple(args.size) != tuple(rep.input_size):
            raise ValueError(f"{rep.name} takes {rep.input_size[0]}x{rep.input_size[1]} "
                             f"images; drop --size")
        image = im.resize_and_crop(image, tuple(rep.input_size))
    elif args.size is not None:
        image = im.resize_and_crop(image, tuple(args.size))
    else:
        h, w = image.shape[:2]
        scale = args.max_size / max(h, w)
        if scale < 1:
            image = im.resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))
    return rep.preprocess(image)


def _default_out(args) -> str:
    stem = os.path.splitext(os.path.basename(args.image))[0] if args.image else "astronaut"
    return f"{stem}-{args.rep.replace(':', '-')}.png"


def _progress_bar(total: int):
    try:
        from tqdm import tqdm
    except ImportError:  # the bar is a nicety
        return None
    return tqdm(total=total, unit="it", desc="inverting", file=sys.stderr,
                dynamic_ncols=True, leave=False, disable=None)  # None: off when not a terminal


def _run_invert(args) -> int:
    import jax
    import numpy as np

    from jinvert import images as im
    from jinvert.metrics import relative_error
    from jinvert.optimize import invert

    if args.weights not in (None, "random") and not os.path.exists(args.weights):
        raise ValueError(f"weights file not found: {args.weights}")
    out = args.out or _default_out(args)
    out_dir = os.path.dirname(os.path.abspath(out))
    if not os.path.isdir(out_dir):
        raise ValueError(f"output folder does not exist: {out_dir}")
    if not out.lower().endswith(".png"):
        raise ValueError(f"the output is a PNG file; give --out a name ending in .png, got {out}")

    rep = registry.resolve_representation(args.rep, weights=args.weights)
    original = im.load_image(args.image)
    x0 = _prepare_image(rep, original, args)
    code = np.asarray(rep(x0))

    config = rep.defaults.replace(lambda_tv=args.lambda_tv, beta=args.beta,
                                  lambda_alpha=args.lambda_alpha,
                                  learning_rate=args.learning_rate)
    if args.iterations is not None:
        config = config.with_iterations(args.iterations)
    total = config.iterations

    bar = _progress_bar(total)

    def progress(iteration, total_, terms):
        if bar is not None:
            bar.update(iteration - bar.n)
            bar.set_postfix(loss=f"{terms['total']:.4g}", data=f"{terms['data']:.3g}")

    start = time.perf_counter()
    try:
        result = invert(rep, code, shape=tuple(x0.shape), key=jax.random.PRNGKey(args.seed),
                        samples=args.samples, config=config, progress=progress,
                        **_beyond_the_paper(args, config))
    finally:
        if bar is not None:
            bar.close()
    elapsed = time.perf_counter() - start
    if not np.all(np.isfinite(np.asarray(result.images))):
        raise ValueError("the optimisation diverged (NaN/inf pixels); try a smaller "
                         "--learning-rate or --lambda-alpha")

    tiles = [np.asarray(rep.deprocess(x0))]
    if rep.render is not None:  # a picture of the code (HOG's glyphs)
        tiles.append(np.asarray(rep.render(code)))
    tiles += [np.asarray(rep.deprocess(x)) for x in result.images]
    im.save_image(out, im.montage(tiles, height=tiles[0].shape[0]))

    codes = np.asarray(result.codes)
    for k in range(args.samples):
        print(f"sample {k + 1}: relative error ||phi(x*)-phi(x0)||^2/||phi(x0)||^2 = "
              f"{100 * relative_error(codes[k], code):.2f} %")
    print(f"{args.rep}: {args.samples} reconstruction(s) of {x0.shape[0]}x{x0.shape[1]}, "
          f"{total} iterations, {elapsed:.1f} s (compilation included)")
    print(f"wrote {out}")
    return 0


def _run_weights(args) -> int:
    if args.action != "fetch":
        raise _UsageError("choose an action: 'jinvert weights fetch NAME'")
    try:
        from jinvert import weights
    except ImportError as err:
        raise ValueError(f"weights support is not available ({err})") from None
    path = weights.fetch(args.name, url=args.url, cache_dir=args.cache_dir)
    print(path)
    return 0


def _beyond_the_paper(args, config) -> dict:
    """invert()'s optional parameterisation, transforms and optimiser."""
    import optax

    from jinvert.parameterizations import fourier
    from jinvert.transforms import jitter
    if args.jitter < 0:
        raise ValueError(f"--jitter must be 0 or more pixels, got {args.jitter}")
    return dict(parameterization=fourier() if args.parameterization == "fourier" else None,
                transforms=jitter(args.jitter) if args.jitter else None,
                optimizer=optax.adam(config.learning_rate) if args.optimizer == "adam"
                else None)


def main(argv=None) -> int:
    """Run ``jinvert`` with ``argv`` (default ``sys.argv[1:]``); returns the
    exit status: 0 success, 2 bad input, 130 interrupted."""
    parser = build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        if args.command == "invert":
            return _run_invert(args)
        if args.command == "reproduce":
            return reproduce.run(args)
        return _run_weights(args)
    except KeyboardInterrupt:
        print("jinvert: interrupted; no output written", file=sys.stderr)
        return 130
    except (_UsageError, ValueError, ImportError, OSError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"jinvert: error: {message}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
