"""``jinvert maximize`` and ``jinvert caricature`` (the IJCV 2016 natural
pre-images): their options and help; the runs are
:func:`jinvert.experiments.preimages.run_command`'s.
"""

from __future__ import annotations

import argparse

from jinvert.cli.parsing import non_negative_float
from jinvert.reproduce import positive_int
from jinvert.reproduce import wrap_text as _wrap


def add_parsers(sub) -> None:
    """Add the ``maximize`` and ``caricature`` subcommands to the subparsers ``sub``."""
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
    _add_common_options(mx, "images per objective")

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
    _add_common_options(car, "caricatures of the photo")


def _add_common_options(p, samples: str) -> None:
    """The options maximize and caricature share; ``samples``: what --samples counts."""
    p.add_argument("--rep", default="efficientnet:logits", metavar="NAME",
                   help="representation, as for 'jinvert invert' (default: "
                        "efficientnet:logits)")
    p.add_argument("--samples", type=positive_int, default=1, metavar="K",
                   help=f"{samples}, from independent random starts (default: 1)")
    p.add_argument("--iterations", type=positive_int, metavar="N",
                   help="total iterations (default: the representation's schedule, 400 "
                        "for EfficientNet-Lite0)")
    p.add_argument("--data-weight", type=non_negative_float, metavar="C",
                   help="weight C of the data term against the IJCV regularisers "
                        "(default: 1 for maximize, 10 for caricature)")
    p.add_argument("--learning-rate", type=non_negative_float, metavar="LR",
                   help="Adam's first learning rate, in u = x/sigma per step (default 1e-4)")
    p.add_argument("--jitter", type=int, metavar="PIXELS",
                   help="random shift at every step (default: 4 for CNNs, 1 otherwise)")
    p.add_argument("--seed", type=int, default=0, metavar="S", help="random seed (default: 0)")
    p.add_argument("--weights", metavar="PATH",
                   help="weight file for alexnet:LAYER, or 'random'")
    p.add_argument("--out", metavar="FILE", help="output PNG")


def run(args) -> int:
    """Run ``jinvert maximize`` or ``jinvert caricature`` (``args.command``)
    with the parsed ``args``; returns the exit status."""
    from jinvert.experiments import preimages
    return preimages.run_command(args)
