"""``jinvert invert``: its options and help, the run (the photo prepared,
the code inverted, the errors printed) and the labelled picture it writes.
"""

from __future__ import annotations

import argparse
import os
import time

from jinvert import registry
from jinvert.cli.parsing import non_negative_float
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


def add_parser(sub) -> None:
    """Add the ``invert`` subcommand to the subparsers ``sub`` (whose
    ``parser_class`` is :class:`jinvert.cli.parsing.Parser`)."""
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
    inv.add_argument("--lambda-tv", type=non_negative_float, metavar="X",
                     help="weight lambda_V of the V^beta prior (paper: 5 for HOG/DSIFT; "
                          "0.5/5/50 for CNN layers 1-6/7-12/13-20)")
    inv.add_argument("--beta", type=non_negative_float, metavar="B",
                     help="exponent beta of the V^beta prior (1 = total variation, "
                          "2 = the paper's choice for HOG/DSIFT)")
    inv.add_argument("--lambda-alpha", type=non_negative_float, metavar="X",
                     help="weight lambda_alpha of the alpha-norm prior (paper: 2.16e8)")
    inv.add_argument("--learning-rate", type=non_negative_float, metavar="LR",
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
    inv.add_argument("--init-noise", type=non_negative_float, default=0.1, metavar="X",
                     help="with --init decoder[:FILE], the norm of the noise added to the "
                          "decoder's output (in units of sigma; the paper's noise start has "
                          "norm 1), so that samples differ (default: 0.1)")


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


def code_error(code_k, code) -> float:
    """||code_k - code|| / ||code|| (a fraction): the relative code error
    ``jinvert invert`` prints and draws (norms, not squares; NaN where the
    reference ``code`` is all zeros). ``code_k`` and ``code``: the same shape."""
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
        labels.append(f"decoder alone: error {100 * code_error(decoded[1], code):.1f} %")
    for k, (x, c) in enumerate(zip(images, codes)):
        tiles.append(np.asarray(rep.deprocess(x)))
        labels.append(f"reconstruction {k + 1}: error {100 * code_error(c, code):.1f} %")
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


def run(args) -> int:
    """Run ``jinvert invert`` with the parsed ``args``; returns the exit status."""
    import jax
    import numpy as np

    from jinvert import images as im
    from jinvert.engine import Loop, Start
    from jinvert.inversion import invert

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
                    samples=args.samples, config=config, loop=Loop(progress=True),
                    start=None if init is None else Start(init, noise=args.init_noise),
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
              f"{100 * code_error(decoded[1], code):.2f} %")
    for k in range(args.samples):
        print(f"sample {k + 1}: {ERROR_NAME} = {100 * code_error(codes[k], code):.2f} %")
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
    """The start from ``--init``: None (noise) or a decoder."""
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
