"""``jinvert weights fetch NAME``: its options, and the download of pretrained
CNN weights into the cache (:func:`jinvert.weights.fetch`).
"""

from __future__ import annotations

from jinvert.cli.parsing import Parser, UsageError


def add_parser(sub) -> None:
    """Add the ``weights`` subcommand (action ``fetch``) to the subparsers ``sub``."""
    wts = sub.add_parser("weights", help="download pretrained CNN weights",
                         description="Manage pretrained CNN weights.")
    wsub = wts.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
    fetch = wsub.add_parser("fetch", help="download weights into the cache",
                            description="Download the weights called NAME into the cache "
                                        "folder and print their path.")
    fetch.add_argument("name", metavar="NAME", help="weights name, e.g. caffenet")
    fetch.add_argument("--url", help="download from this URL instead of the known one")
    fetch.add_argument("--cache-dir", metavar="DIR", help="cache folder (default: the library's)")


def run(args) -> int:
    """Run ``jinvert weights ACTION`` with the parsed ``args``; returns the exit status."""
    if args.action != "fetch":
        raise UsageError("choose an action: 'jinvert weights fetch NAME'")
    try:
        from jinvert import weights
    except ImportError as err:
        raise ValueError(f"weights support is not available ({err})") from None
    path = weights.fetch(args.name, url=args.url, cache_dir=args.cache_dir)
    print(path)
    return 0
