"""``jinvert invert``: its options and help, the run (the photo prepared,
the code inverted, the errors printed) and the labelled picture it writes;
given a folder, every image of it (:func:`run_folder`, :mod:`jinvert.folder`),
on one process or several (:mod:`jinvert.distributed`).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

from jinvert import distributed, registry
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

a folder (IMAGE is a folder):
  Every image under it (--glob, default '**/*': all sub-folders; files ending
  in an image suffix) is inverted with the same settings, in batches of
  --batch images of one size (each size compiled once), and stored in the
  folder --out (default FOLDER-REP): OUT/images/NAME.png (each
  reconstruction), OUT/store/ (each image's arrays as .npz and one line per
  finished image; a re-run continues where a run stopped and never redoes a
  finished image; other settings are refused), and OUT/summary.md and
  summary.json (the relative code error and the paper's normalised error,
  normalised over the folder, by size and per image). Keys come from each
  image's name. Several processes (--distributed or --coordinator,
  --num-processes, --process-id; one command per process, --out on a
  filesystem all see) share the images and give the same results as one.

examples:
  jinvert invert photo.jpg --rep hog --samples 4 --out hog.png
  jinvert invert photos/ --rep hog --iterations 200 --max-size 128 --out recon
  srun --ntasks 8 jinvert invert photos/ --rep hog --out recon --distributed
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
                     help="image file (PNG, JPEG, ...), or a folder of them (every image "
                          "inverted, see below); default: the bundled astronaut photo "
                          "(NASA, public domain)")
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
                          "e.g. astronaut-hog.png); for a folder, the output folder "
                          "(default: FOLDERNAME-REP)")
    inv.add_argument("--init", default="noise", metavar="START",
                     help="where the optimisation starts: 'noise' (the paper), "
                          "'decoder' (the decoder shipped for --rep: hog), or "
                          "'decoder:FILE', the output of a decoder trained by 'jinvert "
                          "train-decoder' (beyond the paper: fewer iterations needed)")
    inv.add_argument("--init-noise", type=non_negative_float, default=0.1, metavar="X",
                     help="with --init decoder[:FILE], the norm of the noise added to the "
                          "decoder's output (in units of sigma; the paper's noise start has "
                          "norm 1), so that samples differ (default: 0.1)")
    group = inv.add_argument_group("a folder (IMAGE is a folder)")
    group.add_argument("--glob", default="**/*", metavar="PATTERN",
                       help="which files under the folder ('**' crosses sub-folders; "
                            "default '**/*': every image file)")
    group.add_argument("--batch", type=positive_int, metavar="B",
                       help="images of one size inverted together, over the local devices "
                            "(default: 4 per device; part of the settings)")
    distributed.add_arguments(inv)


def _prepare_image(rep, image, args):
    """``(H, W, 3)`` in [0, 1] -> the input-space image rep works on (the
    size rule of :func:`jinvert.folder_plan.fitted_size`)."""
    from jinvert import folder_plan
    from jinvert import images as im

    name = os.path.basename(args.image) if args.image else im.DEFAULT_IMAGE
    target = folder_plan.fitted_size(image.shape[:2], input_size=rep.input_size,
                                     fixed=args.size, max_size=args.max_size)
    crop = rep.input_size is not None or args.size is not None
    return rep.preprocess(folder_plan.fit_image(image, target, crop=crop, name=name))


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

    from jinvert import divergence
    from jinvert import images as im
    from jinvert.engine import Loop, Start
    from jinvert.inversion import invert
    from jinvert.metrics import ssim

    if args.weights not in (None, "random") and not os.path.exists(args.weights):
        raise ValueError(f"weights file not found: {args.weights}")
    if args.image and os.path.isdir(args.image):
        return run_folder(args)
    if distributed.requested(args) or args.batch is not None or args.glob != "**/*":
        raise ValueError("--glob, --batch and the options of several processes need a "
                         "folder of images, not one image")
    out = im.check_output(args.out or _default_out(args))

    rep = registry.resolve_representation(args.rep, weights=args.weights)
    original = im.load_image(args.image)
    x0 = _prepare_image(rep, original, args)
    code = np.asarray(rep(x0))

    config = _config(rep, args)
    total = config.iterations

    decoder, init, decoded = _initial(args, rep), None, None
    if decoder is not None:  # decoded once: the start, shown with its error
        init = np.asarray(decoder(code, x0.shape))
        decoded = (init, np.asarray(rep(init)))
    start = time.perf_counter()
    # progress=True: a bar on a terminal, plain lines in a log (jinvert.progress).
    with divergence.ignored():  # a divergence is this command's error below
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
    photo = np.clip(np.asarray(rep.deprocess(x0)), 0.0, 1.0)
    reconstructions = np.asarray(result.images)
    for k in range(args.samples):
        # Image space too (beyond the paper): SSIM of the picture to the photo
        # as the representation saw it.
        picture = np.clip(np.asarray(rep.deprocess(reconstructions[k])), 0.0, 1.0)
        print(f"sample {k + 1}: {ERROR_NAME} = {100 * code_error(codes[k], code):.2f} %; "
              f"SSIM to the photo = {float(ssim(picture, photo)):.3f}")
    print("  (not the paper's Table-1 metric, which normalises by the distances between\n"
          "   the codes of a set of test images: see 'jinvert reproduce table1')")
    wall = seconds_since_start()
    print(f"{args.rep}: {args.samples} reconstruction(s) of {x0.shape[0]}x{x0.shape[1]}, "
          f"{total} iterations, {elapsed:.1f} s inverting (compilation included)"
          + (f"; {wall:.1f} s since the command started (imports, the photo's code, "
             f"the picture)" if wall is not None else ""))
    print(f"wrote {out}")
    return 0


def _config(rep, args):
    """rep's settings with the command line's changes."""
    config = rep.defaults.replace(lambda_tv=args.lambda_tv, beta=args.beta,
                                  lambda_alpha=args.lambda_alpha,
                                  learning_rate=args.learning_rate)
    return config.with_iterations(args.iterations) if args.iterations is not None else config


def run_folder(args) -> int:
    """``jinvert invert FOLDER``: every image of the folder
    (:func:`jinvert.folder.invert_folder`), on this process's share when
    several run; process 0 prints the table by size. Returns the exit status."""
    from jinvert import folder

    for option, value, default in (("--init", args.init, "noise"),
                                   ("--parameterization", args.parameterization, "pixels"),
                                   ("--jitter", args.jitter, 0),
                                   ("--optimizer", args.optimizer, "sgd")):
        if value != default:
            raise ValueError(f"{option} {value} works on one image only, not on a folder")
    # Before any JAX computation: the runtime must start first.
    index, count = distributed.initialize_from_args(args)
    rep = registry.resolve_representation(args.rep, weights=args.weights)
    name = os.path.basename(os.path.normpath(args.image))
    out = args.out or f"{name}-{args.rep.replace(':', '-')}"
    if out.lower().endswith(".png"):
        raise ValueError(f"with a folder, --out is a folder, got {out}")
    start = time.perf_counter()
    try:
        summary = folder.invert_folder(
            rep, args.image, out, config=_config(rep, args), seed=args.seed,
            samples=args.samples, batch=args.batch, size=args.size,
            max_size=args.max_size, pattern=args.glob, label=args.rep, weights=args.weights,
            command=getattr(args, "command_line", None),
            log=lambda m: print(m, flush=True))
    except KeyboardInterrupt:
        print(f"jinvert: interrupted; the finished images are kept in {out}: run the same "
              f"command to go on", file=sys.stderr)
        return 130
    if summary is None:
        print(f"process {index} of {count}: share done; process 0 writes the summary")
        return 0
    print(summary.table, end="")
    print(f"{len(summary.rows)} images in {time.perf_counter() - start:.1f} s; "
          f"per image: {summary.path}")
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
