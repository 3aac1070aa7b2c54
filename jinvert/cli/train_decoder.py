"""``jinvert train-decoder``: its options and help, and the run that trains a
decoder (:mod:`jinvert.decoder_training`) on a folder of photos and writes it.
"""

from __future__ import annotations

import argparse
import os
import sys

from jinvert.cli.parsing import non_negative_float
from jinvert.reproduce import positive_int
from jinvert.reproduce import wrap_text as _wrap


def add_parser(sub) -> None:
    """Add the ``train-decoder`` subcommand (:func:`jinvert.decoder_training.train`)
    to the subparsers ``sub``."""
    from jinvert.decoder_network import NETWORK_FAMILIES, STRIDES
    from jinvert.decoder_training import CROPS, FEATURE_WEIGHTS, TAP_SIDE, TrainSettings

    d = TrainSettings()
    t = sub.add_parser(
        "train-decoder", help="train a feed-forward decoder from codes to images",
        description=_wrap("Beyond the paper: train a small convolutional network that "
                          "maps a representation's code back to an image in one pass "
                          "(a learned inverter, like HOGgle), on random crops, flips and "
                          "rescales of the photos in DIR (for a network tap such as "
                          "efficientnet:block9: on the whole photos and their mirrors, "
                          "their codes computed once). Its weights file gives an "
                          "instant reconstruction and a warm start for 'jinvert invert "
                          "--init decoder:FILE'. A progress bar (in a log, plain lines "
                          "every 10 %); "
                          "a checkpoint every --checkpoint-every steps, from which "
                          "--resume continues to the weights an uninterrupted run gives."),
        formatter_class=argparse.RawDescriptionHelpFormatter)
    families = " or ".join(f"{f}:LAYER" for f in NETWORK_FAMILIES)
    t.add_argument("--rep", default="hog", type=_decodable, metavar="NAME",
                   help=f"representation: {', '.join(STRIDES)} or {families}, "
                        f"e.g. efficientnet:block9 (default: hog)")
    t.add_argument("--images", "--photos", dest="images", required=True, metavar="DIR",
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
                        + f"); for a network tap the side of the whole photos (default "
                          f"{TAP_SIDE}; a vector code's decoder, pool or logits, makes "
                          f"that size only)")
    t.add_argument("--learning-rate", type=non_negative_float, default=d.learning_rate,
                   metavar="LR", help=f"Adam's peak learning rate (default: {d.learning_rate})")
    t.add_argument("--feature-weight", type=non_negative_float, default=d.feature_weight,
                   metavar="X", help="weight of the feature loss ||phi(decoded) - "
                                     "phi0||^2/||phi0||^2 beside the pixel loss "
                                     f"(default: {FEATURE_WEIGHTS['shallow']:g} for "
                                     f"{', '.join(STRIDES)}, "
                                     f"{FEATURE_WEIGHTS['tap']:g} for network taps)")
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


def _decodable(name: str) -> str:
    """``--rep``: a representation a decoder can be trained for (its
    geometry known: :func:`jinvert.decoder_network.stride_of`), or an
    argparse error naming the valid ones."""
    from jinvert.decoder_network import stride_of

    family, colon, layer = name.strip().partition(":")
    name = family.lower() + colon + layer
    try:
        stride_of(name)
    except (ValueError, ImportError) as err:
        raise argparse.ArgumentTypeError(str(err)) from None
    return name


def run(args) -> int:
    """Run ``jinvert train-decoder`` with the parsed ``args``; returns the exit status."""
    from jinvert import decoder_training
    from jinvert import images as im
    from jinvert.experiments import common

    im.check_output(args.out, ".npz")
    settings = decoder_training.TrainSettings(
        steps=args.steps, batch_size=args.batch_size, crop=args.crop,
        learning_rate=args.learning_rate, feature_weight=args.feature_weight,
        width=args.width, blocks=args.blocks, seed=args.seed)
    photos = common.load_image_set(args.images, args.limit)
    checkpoint = args.checkpoint or args.out[:-len(".npz")] + ".ckpt.npz"
    names = f"{photos[0].name} ... {photos[-1].name}" if len(photos) > 1 else photos[0].name
    print(f"jinvert: training a {args.rep} decoder on {len(photos)} photos of "
          f"{os.path.abspath(args.images)} ({names}), {settings.steps} steps; "
          f"checkpoints in {checkpoint}", file=sys.stderr, flush=True)
    decoder, _ = decoder_training.train(
        args.rep, [p.pixels for p in photos], settings, checkpoint=checkpoint,
        checkpoint_every=args.checkpoint_every, resume=args.resume,
        progress=True,  # a bar on a terminal, plain lines in a log (jinvert.progress)
        description=f"{len(photos)} photos of {os.path.basename(os.path.abspath(args.images))}"
                    f" in sorted order: {names}")
    decoder.save(args.out)
    print(f"wrote {args.out}")
    return 0
