"""Table 1 of the paper for HOG, HOGb and DSIFT on natural photos.

    python benchmarks/shallow_quality.py [--limit 8] [--iterations N] [--images DIR]
                                         [--reps hog,hogb,dsift] [--out DIR]

Each photo (scikit-image's bundled photos by default, or the image files of
DIR) is made a 227×227 grey image, encoded, and inverted once from random
noise with the paper's defaults (4×200 iterations from 0.004, λα = 2.16e8,
α = 6, λV = 5, β = 2). It prints the paper's normalised error
(:func:`jinvert.reconstruction_error`: ||Φ(x*) − Φ(x)|| over the mean
distance between the photos' codes, mean ± std in percent) beside the
paper's Table 1 and the public MATLAB code's squared variant, and the
seconds taken.

This is ``jinvert reproduce table1`` (one code path for the table): the
benchmark runs it in a fresh folder, so nothing is resumed, and prints the
table and the time.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

from jinvert import cli  # noqa: E402


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=8, help="use the first N photos (8)")
    parser.add_argument("--iterations", type=int, help="total iterations (default: 800)")
    parser.add_argument("--images", metavar="DIR", help="a folder of photos instead")
    parser.add_argument("--reps", default="hog,hogb,dsift")
    parser.add_argument("--out", metavar="DIR",
                        help="keep the table, pictures and per-image results here")
    args = parser.parse_args(argv)

    out = args.out or tempfile.mkdtemp(prefix="shallow-quality-")
    command = ["reproduce", "table1", "--limit", str(args.limit), "--out", out]
    if args.iterations:
        command += ["--iterations", str(args.iterations)]
    if args.images:
        command += ["--images", args.images]
    for rep in args.reps.split(","):
        command += ["--rep", rep.strip()]
    start = time.perf_counter()
    status = cli.main(command)
    elapsed = time.perf_counter() - start
    if status != 0:
        return status
    with open(os.path.join(out, "table1.md"), encoding="utf-8") as f:
        print(f.read())
    print(f"{elapsed:.0f} s for {args.limit} photos × {len(args.reps.split(','))} "
          f"representations (compilation included), {os.cpu_count()} CPUs")
    return 0


if __name__ == "__main__":
    sys.exit(main())
