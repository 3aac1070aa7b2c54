"""The ``jinvert`` command: the parser assembled from one module per
subcommand, the dispatch to them, and how a run ends.

    jinvert invert [IMAGE] --rep hog [--samples K] [--iterations N] [--out FILE]
    jinvert invert FOLDER --rep hog [--glob PATTERN] [--batch B] [--out DIR] [--distributed]
    jinvert maximize --rep efficientnet:TAP --channel C | --neuron I,J,C | --class K
    jinvert caricature [IMAGE] --rep efficientnet:TAP
    jinvert weights fetch NAME [--url URL]
    jinvert reproduce NAME [--images DIR] [--limit N] [--iterations N] [--out DIR]
    jinvert train-decoder --rep hog --images DIR --out FILE [--steps N] [--resume]

The subcommands' modules: :mod:`jinvert.cli.invert`,
:mod:`jinvert.cli.preimages` (maximize and caricature),
:mod:`jinvert.cli.weights`, :mod:`jinvert.reproduce` and
:mod:`jinvert.cli.train_decoder`; the argparse pieces they share:
:mod:`jinvert.cli.parsing`.

Every error a user can cause (a missing image, an unknown representation, a
blank image, a bad option) ends in one line ``jinvert: error: ...`` on
stderr and exit status 2; Ctrl-C ends with status 130 and writes nothing.
"""

from __future__ import annotations

import argparse
import contextlib
import shlex
import sys
import warnings

from jinvert import reproduce
from jinvert.cli import invert, preimages, train_decoder, weights
from jinvert.cli.parsing import Parser, UsageError

__all__ = ["main", "build_parser"]


def build_parser() -> argparse.ArgumentParser:
    """The argparse parser of ``jinvert``: subcommands ``invert``, ``weights``,
    ``maximize``, ``caricature``, ``reproduce`` and ``train-decoder``, each
    added by its module."""
    parser = Parser(
        prog="jinvert",
        description="Invert image representations (HOG, dense SIFT, CNN layers) by "
                    "gradient descent from random noise: Mahendran & Vedaldi, "
                    "'Understanding Deep Image Representations by Inverting Them' "
                    "(CVPR 2015), in JAX.",
        epilog="Run 'jinvert invert --help' for the inversion options. Compiled programs "
               "are kept in ~/.cache/jinvert/jax (JINVERT_CACHE_DIR=DIR elsewhere, "
               "JINVERT_CACHE_DIR= empty: no cache), so a repeated run starts at once.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=Parser)
    invert.add_parser(sub)
    weights.add_parser(sub)
    preimages.add_parsers(sub)
    reproduce.add_subparser(sub)
    train_decoder.add_parser(sub)
    return parser


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
    except (UsageError, ValueError, ImportError, OSError) as err:
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
    if args.command in ("invert", "reproduce"):
        # The command as typed, options included, recorded with the tables
        # (however jinvert was started: the script, python -m, or main()).
        words = sys.argv[1:] if argv is None else list(argv)
        args.command_line = "jinvert " + " ".join(shlex.quote(str(a)) for a in words)
    if args.command == "invert":
        return invert.run(args)
    if args.command == "reproduce":
        return reproduce.run(args)
    if args.command in ("maximize", "caricature"):
        return preimages.run(args)
    if args.command == "train-decoder":
        return train_decoder.run(args)
    return weights.run(args)
