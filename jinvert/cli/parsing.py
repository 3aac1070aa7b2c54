"""The argparse pieces every ``jinvert`` subcommand shares: the parser class
(errors as one line, epilogs built only when help is shown), the usage
error it raises, and the option type :func:`non_negative_float`.

(:func:`jinvert.reproduce.positive_int` and :func:`jinvert.reproduce.wrap_text`,
shared too, live with the ``reproduce`` subcommand, which is outside this
package.)
"""

from __future__ import annotations

import argparse


class UsageError(Exception):
    """A bad command line; reported as one line and exit status 2."""


class Parser(argparse.ArgumentParser):
    """An ``ArgumentParser`` whose errors raise :class:`UsageError` (one line,
    no usage text) and whose epilog may be a function called at help time."""

    #: A function returning the epilog, called when help is shown (so that
    #: building the parser does not import the networks to list layers).
    epilog_fn = None

    def error(self, message):  # one line instead of usage + message
        raise UsageError(f"{message} (see '{self.prog} --help')")

    def format_help(self):
        if self.epilog_fn is not None:
            self.epilog, self.epilog_fn = self.epilog_fn(), None
        return super().format_help()


def non_negative_float(text: str) -> float:
    """argparse type: a finite number >= 0 (NaN and inf refused)."""
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a number, got {text!r}") from None
    if not value >= 0 or value == float("inf"):
        raise argparse.ArgumentTypeError(f"expected a finite number >= 0, got {text!r}")
    return value
