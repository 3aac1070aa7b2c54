"""The ``jinvert`` command.

    jinvert invert [IMAGE] --rep hog [--samples K] [--iterations N] [--out FILE]
    jinvert maximize --rep efficientnet:TAP --channel C | --neuron I,J,C | --class K
    jinvert caricature [IMAGE] --rep efficientnet:TAP
    jinvert weights fetch NAME [--url URL]
    jinvert reproduce NAME [--images DIR] [--limit N] [--iterations N] [--out DIR]
    jinvert train-decoder --rep hog --images DIR --out FILE [--steps N] [--resume]

Every error a user can cause (a missing image, an unknown representation, a
blank image, a bad option) ends in one line ``jinvert: error: ...`` on
stderr and exit status 2; Ctrl-C ends with status 130 and writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import shlex
import sys
import time
import warnings

from jinvert import registry, reproduce
from jinvert.reproduce import positive_int
from jinvert.reproduce import wrap_text as _wrap

#: What ``jinvert invert`` prints and labels as the error of a reconstruction.
ERROR_NAME = "relative code error ||phi(x*)-phi(x0)|| / ||phi(x0)||"

EPILOG_INVERT = """\
representations:
  hog                 CNN-HOG (27 channels, hard orientation binning, 8x8 cells)
  hogb                CNN-HOGb (bilinear orientation binning)
  dsift               CNN-DSIFT (dense SIFT, bin size 5)
  alexnet:LAYER       a layer of AlexNet (CNN-A), e.g. alexnet:relu5 (needs
                      --weights FILE, or --weights random)
  efficientnet:LAYER  a layer of EfficientNet-Lite0 (ImageNet weights, installed
                      with jinvert), e.g. efficientnet:block9

layers:
{layers}

The paper's settings are the defaults for each representation (HOG/DSIFT:
4 x 200 iterations of SGD with momentum 0.9 from a learning rate of 0.004,
divided by 10 every 200 iterations, lambda_alpha = 2.16e8 with alpha = 6,
lambda_V = 5 with beta = 2). HOG and DSIFT accept any image size; to keep the
CPU time low the image is shrunk so that its longer side is at most
--max-size pixels (default 256) unless --size is given. The paper's sigma
and lambdas are for 227x227x3 input values: for other sizes sigma is scaled
by sqrt(HWC/(227*227*3)) and the lambdas so that each prior weighs as on a
paper-size image (jinvert.Config.sized). CNNs take their own fixed
size (the image is scaled and centre-cropped to it).

output:
  One PNG (default: IMAGESTEM-REP.png in the current folder), labelled: a
  title with the representation and layer, the original as the
  representation sees it, the HOG glyphs (hog and hogb), then the K
  reconstructions, each with its error, and a red mark where the network's
  weights are random. The error printed and drawn is the relative code
  error ||phi(x*)-phi(x0)|| / ||phi(x0)|| in percent (norms, not squares).
  It is not the paper's Table-1 metric, which normalises by the distances
  between the codes of a set of test images: see 'jinvert reproduce table1'.

messages:
  On a terminal a progress bar, whose time estimate starts after the first
  step (which includes compilation); in a log or a pipe, a line on stderr
  every 10 % of the iterations (iteration, losses, elapsed time). Notes
  (random weights, an image enlarged to a network's size) are one line each,
  'jinvert: note: ...', on stderr.

example:
  jinvert invert photo.jpg --rep hog --samples 4 --out hog.png
"""


def _invert_epilog() -> str:
    return EPILOG_INVERT.format(layers=registry.layers_text())


class _UsageError(Exception):
    """A bad command line; reported as one line and exit status 2."""


class _Parser(argparse.ArgumentParser):
    #: A function returning the epilog, called when help is shown (so that
    #: building the parser does not import the networks to list layers).
    epilog_fn = None

    def error(self, message):  # one line instead of usage + message
        raise _UsageError(f"{message} (see '{self.prog} --help')")

    def format_help(self):
        if self.epilog_fn is not None:
            self.epilog, self.epilog_fn = self.epilog_fn(), None
        return super().format_help()


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
        epilog="Run 'jinvert invert --help' for the inversion options. Compiled programs "
               "are kept in ~/.cache/jinvert/jax (JINVERT_CACHE_DIR=DIR elsewhere, "
               "JINVERT_CACHE_DIR= empty: no cache), so a repeated run starts at once.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    inv = sub.add_parser(
        "invert", help="reconstruct images from the code of an image",
        description=_wrap("Compute the code of IMAGE under a representation, "
                          "reconstruct K images from random noise (or, with --init "
                          "decoder, from a learned decoder's output) that have the same "
                          "code, and write them side by side, labelled, in one PNG."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    inv.epilog_fn = _invert_epilog
    inv.add_argument("image", nargs="?", metavar="IMAGE",
                     help="image file (PNG, JPEG, ...); default: the bundled astronaut "
                          "photo (NASA, public domain)")
    inv.add_argument("--rep", default="hog", metavar="NAME",
                     help="representation: hog, hogb, dsift, alexnet:LAYER, "
                          "efficientnet:LAYER (default: hog; layers listed below)")
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
                          "Fourier basis (beyond the paper; see docs/priors.md in the "
                          "jinvert repository)")
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
                     help="output PNG (default: IMAGESTEM-REP.png in the current folder, "
                          "e.g. astronaut-hog.png)")
    inv.add_argument("--init", default="noise", metavar="START",
                     help="where the optimisation starts: 'noise' (the paper), "
                          "'decoder' (the decoder shipped for --rep: hog), or "
                          "'decoder:FILE', the output of a decoder trained by 'jinvert "
                          "train-decoder' (beyond the paper: fewer iterations needed)")
    inv.add_argument("--init-noise", type=_non_negative_float, default=0.1, metavar="X",
                     help="with --init decoder[:FILE], the norm of the noise added to the "
                          "decoder's output (in units of sigma; the paper's noise start has "
                          "norm 1), so that samples differ (default: 0.1)")

    wts = sub.add_parser("weights", help="download pretrained CNN weights",
                         description="Manage pretrained CNN weights.")
    wsub = wts.add_subparsers(dest="action", metavar="ACTION", parser_class=_Parser)
    fetch = wsub.add_parser("fetch", help="download weights into the cache",
                            description="Download the weights called NAME into the cache "
                                        "folder and print their path.")
    fetch.add_argument("name", metavar="NAME", help="weights name, e.g. caffenet")
    fetch.add_argument("--url", help="download from this URL instead of the known one")
    fetch.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: the library's)")
    _add_preimage_parsers(sub)
    reproduce.add_subparser(sub)
    _add_train_decoder(sub)
    return parser


def _add_common_preimage_options(p) -> None:
    p.add_argument("--rep", default="efficientnet:logits", metavar="NAME",
                   help="representation, as for 'jinvert invert' (default: "
                        "efficientnet:logits)")
    p.add_argument("--samples", type=positive_int, default=1, metavar="K",
                   help="images from independent random starts: per objective for "
                        "maximize, of the photo for caricature (default: 1)")
    p.add_argument("--iterations", type=positive_int, metavar="N",
                   help="total iterations (default: the representation's schedule, 400 "
                        "for EfficientNet-Lite0)")
    p.add_argument("--data-weight", type=_non_negative_float, metavar="C",
                   help="weight C of the data term against the IJCV regularisers "
                        "(default: 1 for maximize, 10 for caricature)")
    p.add_argument("--learning-rate", type=_non_negative_float, metavar="LR",
                   help="Adam's first learning rate, in u = x/sigma per step (default 1e-4)")
    p.add_argument("--jitter", type=int, metavar="PIXELS",
                   help="random shift at every step (default: 4 for CNNs, 1 otherwise)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    p.add_argument("--weights", metavar="PATH",
                   help="weight file for alexnet:LAYER, or 'random'")
    p.add_argument("--out", metavar="FILE", help="output PNG")


def _add_preimage_parsers(sub) -> None:
    mx = sub.add_parser(
        "maximize", help="images that most excite a neuron, a channel or a class",
        description=_wrap(
            "Activation maximisation (Mahendran & Vedaldi, IJCV 2016): from faint noise, "
            "find images x that maximise <phi(x), W> for weights W selecting a neuron, "
            "the mean of a channel, or a class logit, under the IJCV recipe's "
            "regularisers (bounded range, V^2, jitter; Adam). The data term is "
            "-<phi(x), W> / Z with Z the largest value the component reaches on five "
            "natural photos, so it is -1 at their level. Writes one labelled PNG: one "
            "tile per objective and sample, each with the value reached and Z; for class "
            "logits also the network's top-1 class of the image."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="examples:\n  jinvert maximize --rep efficientnet:logits --class 130,945\n"
               "  jinvert maximize --rep efficientnet:block9 --channel 0,1,2,3 "
               "--iterations 200")
    what = mx.add_mutually_exclusive_group(required=True)
    what.add_argument("--channel", metavar="C[,C...]",
                      help="channel(s) of an (h, w, C) code: maximise the channel's mean")
    what.add_argument("--neuron", metavar="I,J,C",
                      help="one entry of the code (comma-separated index)")
    what.add_argument("--class", dest="classes", metavar="K[,K...]",
                      help="class logit(s) of a classifier's output (efficientnet:logits)")
    _add_common_preimage_options(mx)

    car = sub.add_parser(
        "caricature", help="exaggerate what a representation detects in a photo",
        description=_wrap(
            "Caricature (Mahendran & Vedaldi, IJCV 2016): starting from IMAGE, find x "
            "that maximises <phi(x), phi0> / ||phi0||^2, phi0 the code of IMAGE, under "
            "the IJCV recipe's regularisers: the patterns the representation detects in "
            "the photo, exaggerated. Writes one labelled PNG: the photo, then the "
            "caricature(s), each with its projection <phi(x), phi0> / ||phi0||^2 "
            "(1 at the photo)."),
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="example:\n  jinvert caricature photo.jpg --rep efficientnet:block9 "
               "--iterations 200")
    car.add_argument("image", nargs="?", metavar="IMAGE",
                     help="image file; default: the bundled astronaut photo")
    _add_common_preimage_options(car)


def _add_train_decoder(sub) -> None:
    """The ``train-decoder`` subcommand (:func:`jinvert.decoders.train`)."""
    from jinvert.decoders import CROPS, STRIDES, TrainSettings

    d = TrainSettings()
    t = sub.add_parser(
        "train-decoder", help="train a feed-forward decoder from codes to images",
        description=_wrap("Beyond the paper: train a small convolutional network that "
                          "maps a representation's code back to an image in one pass "
                          "(a learned inverter, like HOGgle), on random crops, flips and "
                          "rescales of the photos in DIR. Its weights file gives an "
                          "instant reconstruction and a warm start for 'jinvert invert "
                          "--init decoder:FILE'. A progress bar (in a log, plain lines "
                          "every 10 %); "
                          "a checkpoint every --checkpoint-every steps, from which "
                          "--resume continues to the weights an uninterrupted run gives."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    t.add_argument("--rep", default="hog", choices=tuple(STRIDES),
                   help="representation (default: hog)")
    t.add_argument("--images", required=True, metavar="DIR",
                   help="folder of training photos, taken in sorted file-name order")
    t.add_argument("--limit", type=positive_int, metavar="N",
                   help="train on the first N photos only (e.g. 80, holding out the rest)")
    t.add_argument("--out", required=True, metavar="FILE",
                   help="the trained decoder, a .npz file")
    t.add_argument("--steps", type=positive_int, default=d.steps, metavar="N",
                   help=f"optimiser steps (default: {d.steps})")
    t.add_argument("--batch-size", type=positive_int, default=d.batch_size, metavar="N",
                   help=f"crops per step (default: {d.batch_size})")
    t.add_argument("--crop", type=positive_int, default=d.crop, metavar="PIXELS",
                   help="side of the square training crops (default: the "
                        "representation's, " + ", ".join(f"{k} {v}" for k, v in CROPS.items())
                        + ")")
    t.add_argument("--learning-rate", type=_non_negative_float, default=d.learning_rate,
                   metavar="LR", help=f"Adam's peak learning rate (default: {d.learning_rate})")
    t.add_argument("--feature-weight", type=_non_negative_float, default=d.feature_weight,
                   metavar="X", help="weight of the feature loss ||phi(decoded) - "
                                     "phi0||^2/||phi0||^2 beside the pixel loss "
                                     f"(default: {d.feature_weight})")
    t.add_argument("--width", type=positive_int, default=d.width, metavar="C",
                   help=f"channels at the code's resolution (default: {d.width})")
    t.add_argument("--blocks", type=int, default=d.blocks, metavar="N",
                   help=f"residual blocks at the code's resolution (default: {d.blocks})")
    t.add_argument("--seed", type=int, default=d.seed, metavar="S",
                   help=f"seed of the initial weights and of the batches (default: {d.seed})")
    t.add_argument("--checkpoint", metavar="FILE",
                   help="checkpoint file (default: OUT with .ckpt.npz); it holds Adam's state "
                        "too (about 3 times the decoder) and stays after the run: delete "
                        "it when done; without --resume it is overwritten")
    t.add_argument("--checkpoint-every", type=positive_int, default=200, metavar="N",
                   help="steps between checkpoints (default: 200)")
    t.add_argument("--resume", action="store_true",
                   help="continue from the checkpoint, if there is one")


def _prepare_image(rep, image, args):
    """``(H, W, 3)`` in [0, 1] -> the input-space image rep works on."""
    from jinvert import images as im

    name = os.path.basename(args.image) if args.image else im.DEFAULT_IMAGE
    if rep.input_size is not None:
        if args.size is not None and tuple(args.size) != tuple(rep.input_size):
            raise ValueError(f"{rep.name} takes {rep.input_size[0]}x{rep.input_size[1]} "
                             f"images; drop --size")
        image = im.resize_and_crop(image, tuple(rep.input_size), name=name)
    elif args.size is not None:
        image = im.resize_and_crop(image, tuple(args.size), name=name)
    else:
        h, w = image.shape[:2]
        scale = args.max_size / max(h, w)
        if scale < 1:
            image = im.resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))
    return rep.preprocess(image)


def _default_out(args) -> str:
    stem = os.path.splitext(os.path.basename(args.image))[0] if args.image else "astronaut"
    return f"{stem}-{args.rep.replace(':', '-')}.png"


def _code_error(code_k, code) -> float:
    """||code_k - code|| / ||code||: the relative code error jinvert invert
    prints and draws (norms, not squares; NaN for an all-zero code)."""
    from jinvert.metrics import relative_error

    try:
        return relative_error(code_k, code)
    except ValueError:  # an all-zero reference code
        return float("nan")


def invert_montage(rep, args, x0, code, images, codes, *, iterations, glyphs=None,
                   decoded=None):
    """The labelled picture ``jinvert invert`` writes, and the texts drawn.

    Args:
      rep: the representation; args: the parsed command line.
      x0: the original in rep's input space; code: its code.
      images: the reconstructions ``(K, H, W, C)`` in the input space;
        codes: their codes ``(K, *code_shape)``.
      iterations: the number of iterations run.
      glyphs: the HOG glyph picture, if any.
      decoded: with ``--init decoder``, ``(image, code)``: the decoder's
        output (input space), the start of the optimisation, and its code;
        shown after the glyphs.

    Returns:
      ``(picture, drawn)`` from :func:`jinvert.images.labelled_montage`.
    """
    import numpy as np

    from jinvert import images as im

    h, w = x0.shape[:2]
    tiles = [np.asarray(rep.deprocess(x0))]
    labels = [f"original ({w}x{h})"]
    if glyphs is not None:
        tiles.append(np.asarray(glyphs))
        labels.append("HOG glyphs")
    if decoded is not None:
        tiles.append(np.asarray(rep.deprocess(decoded[0])))
        labels.append(f"decoder alone: error {100 * _code_error(decoded[1], code):.1f} %")
    for k, (x, c) in enumerate(zip(images, codes)):
        tiles.append(np.asarray(rep.deprocess(x)))
        labels.append(f"reconstruction {k + 1}: error {100 * _code_error(c, code):.1f} %")
    name = os.path.basename(args.image) if args.image else "the bundled astronaut photo"
    start = ("noise" if args.init == "noise" else "the bundled decoder's output"
             if args.init == "decoder" else "the output of decoder " +
             os.path.basename(args.init.partition(":")[2]))
    title = (f"{args.rep} ({rep.description}): {name} reconstructed from its code; "
             f"{iterations} iterations from {start}, seed {args.seed}")
    note = ("random weights: not a trained network (reconstructions show no "
            "natural-image structure)" if args.weights == "random" else None)
    caption = (f"error: {ERROR_NAME} (not the paper's Table-1 metric; see "
               f"'jinvert reproduce table1')")
    return im.labelled_montage(tiles, labels, title=title, note=note, caption=caption,
                               height=tiles[0].shape[0], columns=min(len(tiles), 6))


def _run_invert(args) -> int:
    import jax
    import numpy as np

    from jinvert import images as im
    from jinvert.optimize import invert

    if args.weights not in (None, "random") and not os.path.exists(args.weights):
        raise ValueError(f"weights file not found: {args.weights}")
    out = im.check_output(args.out or _default_out(args))

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

    decoder, init, decoded = _initial(args, rep), None, None
    if decoder is not None:  # decoded once: the start, shown with its error
        init = np.asarray(decoder(code, x0.shape))
        decoded = (init, np.asarray(rep(init)))
    start = time.perf_counter()
    # progress=True: a bar on a terminal, plain lines in a log (jinvert.progress).
    result = invert(rep, code, shape=tuple(x0.shape), key=jax.random.PRNGKey(args.seed),
                    samples=args.samples, config=config, progress=True,
                    init=init, init_noise=args.init_noise,
                    **_beyond_the_paper(args, config))
    elapsed = time.perf_counter() - start
    if not np.all(np.isfinite(np.asarray(result.images))):
        raise ValueError("the optimisation diverged (NaN/inf pixels); try a smaller "
                         "--learning-rate or --lambda-alpha")

    glyphs = None
    if rep.render is not None:  # a picture of the code (HOG's glyphs)
        glyphs = rep.render(code)
    codes = np.asarray(result.codes)
    picture, _ = invert_montage(rep, args, x0, code, np.asarray(result.images), codes,
                                iterations=total, glyphs=glyphs, decoded=decoded)
    im.save_image(out, picture)

    if decoded is not None:
        print(f"decoder alone (the start): {ERROR_NAME} = "
              f"{100 * _code_error(decoded[1], code):.2f} %")
    for k in range(args.samples):
        print(f"sample {k + 1}: {ERROR_NAME} = {100 * _code_error(codes[k], code):.2f} %")
    print("  (not the paper's Table-1 metric, which normalises by the distances between\n"
          "   the codes of a set of test images: see 'jinvert reproduce table1')")
    wall = seconds_since_start()
    print(f"{args.rep}: {args.samples} reconstruction(s) of {x0.shape[0]}x{x0.shape[1]}, "
          f"{total} iterations, {elapsed:.1f} s inverting (compilation included)"
          + (f"; {wall:.1f} s since the command started (imports, the photo's code, "
             f"the picture)" if wall is not None else ""))
    print(f"wrote {out}")
    return 0


def seconds_since_start() -> float | None:
    """Wall-clock seconds since this process started (Linux's /proc), so
    that the time printed includes start-up; None where /proc is absent."""
    try:
        with open("/proc/self/stat", encoding="ascii") as f:
            # Field 22 is the start time in clock ticks after boot; the
            # fields after the command name (in parentheses) start at 3.
            started = int(f.read().rsplit(")", 1)[1].split()[19])
        with open("/proc/uptime", encoding="ascii") as f:
            uptime = float(f.read().split()[0])
        return max(uptime - started / os.sysconf("SC_CLK_TCK"), 0.0)
    except (OSError, ValueError, IndexError):
        return None


def _initial(args, rep):
    """``invert``'s ``init`` from ``--init``: None (noise) or a decoder."""
    if args.init == "noise":
        return None
    kind, colon, path = args.init.partition(":")
    if kind != "decoder" or (colon and not path):
        raise ValueError(f"--init must be 'noise', 'decoder' or 'decoder:FILE', got "
                         f"{args.init!r}")
    if args.parameterization != "pixels":
        raise ValueError("--init decoder works with --parameterization pixels only")
    from jinvert import decoders

    decoder = decoders.load(path) if path else decoders.bundled(rep.name)
    decoder.check(rep)
    return decoder


def _run_train_decoder(args) -> int:
    from jinvert import decoders
    from jinvert.experiments import common

    from jinvert import images as im

    im.check_output(args.out, ".npz")
    settings = decoders.TrainSettings(
        steps=args.steps, batch_size=args.batch_size, crop=args.crop,
        learning_rate=args.learning_rate, feature_weight=args.feature_weight,
        width=args.width, blocks=args.blocks, seed=args.seed)
    photos = common.load_image_set(args.images, args.limit)
    checkpoint = args.checkpoint or args.out[:-len(".npz")] + ".ckpt.npz"
    names = f"{photos[0].name} ... {photos[-1].name}" if len(photos) > 1 else photos[0].name
    print(f"jinvert: training a {args.rep} decoder on {len(photos)} photos of "
          f"{os.path.abspath(args.images)} ({names}), {settings.steps} steps; "
          f"checkpoints in {checkpoint}", file=sys.stderr, flush=True)
    decoder, _ = decoders.train(
        args.rep, [p.pixels for p in photos], settings, checkpoint=checkpoint,
        checkpoint_every=args.checkpoint_every, resume=args.resume,
        progress=True,  # a bar on a terminal, plain lines in a log (jinvert.progress)
        description=f"{len(photos)} photos of {os.path.basename(os.path.abspath(args.images))}"
                    f" in sorted order: {names}")
    decoder.save(args.out)
    print(f"wrote {args.out}")
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
        with _notes_as_lines():
            return _dispatch(parser, argv)
    except KeyboardInterrupt:
        print("jinvert: interrupted; no output written", file=sys.stderr)
        return 130
    except (_UsageError, ValueError, ImportError, OSError) as err:
        message = " ".join(str(err).split()) or type(err).__name__
        print(f"jinvert: error: {message}", file=sys.stderr)
        return 2


@contextlib.contextmanager
def _notes_as_lines():
    """Within: every warning shown (random weights, an enlarged image, ...)
    is printed as one line ``jinvert: note: ...`` on stderr, without the
    file, line and source that Python's format adds; library callers keep
    ordinary warnings."""
    def show(message, category, filename, lineno, file=None, line=None):
        text = " ".join(str(message).split())
        if category is not UserWarning:
            text = f"{category.__name__}: {text}"
        print(f"jinvert: note: {text}", file=sys.stderr, flush=True)

    with warnings.catch_warnings():
        warnings.showwarning = show
        yield


def _dispatch(parser, argv) -> int:
    """Parse ``argv`` and run the command."""
    args = parser.parse_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    if args.command != "weights":
        # Compiled programs on disk: a repeated run starts without compiling.
        from jinvert import compilation_cache
        compilation_cache.enable()
    if args.command == "invert":
        return _run_invert(args)
    if args.command == "reproduce":
        # The command as typed, options included, recorded with the tables
        # (however jinvert was started: the script, python -m, or main()).
        words = sys.argv[1:] if argv is None else list(argv)
        args.command_line = "jinvert " + " ".join(shlex.quote(str(a)) for a in words)
        return reproduce.run(args)
    if args.command in ("maximize", "caricature"):
        from jinvert.experiments import preimages
        return preimages.run_command(args)
    if args.command == "train-decoder":
        return _run_train_decoder(args)
    return _run_weights(args)


if __name__ == "__main__":
    sys.exit(main())
