"""Beyond the paper: priors, parameterisations and optimisers on Table 1.

    python benchmarks/priors.py [--limit 6] [--iterations 400] [--reps hog,hogb,dsift]
                                [--options paper,jitter,fourier,adam,dip,best] [--seed 0]
                                [--size 227] [--out DIR]

For each representation and each option, every photo (scikit-image's bundled
data, 227×227 grey, as ``benchmarks/shallow_quality.py``) is encoded and
inverted once from random noise; the photos and keys are the same for every
option. Printed as a Markdown table:

* error: the paper's normalised error (:func:`jinvert.reconstruction_error`,
  Table 1's metric: ||Φ(x*) − Φ(x)|| over the mean distance between the
  photos' codes), mean ± std over the photos, percent; beside it, named, the
  public MATLAB code's squared variant (``squared=True``);
* SSIM: structural similarity of the reconstruction to the original photo
  (:func:`jinvert.metrics.ssim`, grey levels in [0, 1]), mean ± std;
* diverged: reconstructions with NaN pixels (counted with a zero code and a
  mid-grey image).

With ``--out DIR`` it also keeps what the table was computed from:
``priors.json`` (the photos, and per row the per-photo errors, squared
errors and SSIMs) and ``{rep}-{option}.npz`` (``images``, ``codes`` of the
reconstructions, ``originals`` and ``reference_codes``, all ``(N, ...)`` in
the representation's input space), so that tests/test_benchmarks.py can
score them independently. ``--size`` (default the paper's 227) shrinks the
photos for such a test.

The options (all other settings are the paper's: λα = 2.16e8, α = 6, λV = 5,
β = 2, stages 4 × iterations/4 with tenfold learning-rate drops, each stage
a fresh optimiser state):

* ``paper``: pixels, SGD with momentum 0.9 from lr 0.004;
* ``jitter``: + a random cyclic shift of up to ``--jitter`` pixels of the
  image the data term sees, every iteration;
* ``fourier``: the 1/f-scaled Fourier basis, same SGD from ``--fourier-lr``
  (the paper's 0.004 diverges on every photo in this basis);
* ``adam``: pixels, Adam from ``--adam-lr`` (in u = x/σ units) with the
  same tenfold drops (``jinvert.optimizers.staged_adam``, one state: the
  steps of ``optax.adam`` on a piecewise-constant schedule, which made
  docs/priors.md's table; since issue 13 its moments carry over the drops
  instead of restarting);
* ``dip``: the deep-image-prior generator (8 channels, 3 upsamplings, to
  keep the CPU time in bounds), optimised by a user-supplied
  ``optax.adam(--dip-lr)`` at a constant rate for all iterations (a step
  decay starves it: its weights need many steps);
* ``best``: Fourier basis + Adam from ``--best-lr`` with the same tenfold
  drops (Table 1's ``fourier-adam`` variant, ``Config(update_rule="adam")``:
  the steps of ``optax.adam`` on that schedule; see ``docs/priors.md``).

The learning rates were picked on HOG, 3 photos, 200 iterations (see
``docs/priors.md``), i.e. on part of the test set: a mild advantage for the
non-paper options.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
sys.path.insert(0, os.path.dirname(__file__))

import jax  # noqa: E402
import numpy as np  # noqa: E402
import optax  # noqa: E402

from jinvert.metrics import reconstruction_error, ssim  # noqa: E402
from jinvert import Loop, invert  # noqa: E402
from jinvert.parameterizations import deep_image_prior  # noqa: E402
from jinvert.optimizers import staged_adam  # noqa: E402
from jinvert.registry import resolve_representation  # noqa: E402
from jinvert.transforms import jitter  # noqa: E402
from jinvert import images  # noqa: E402
from jinvert.experiments import common, variants  # noqa: E402

OPTION_NAMES = ("paper", "jitter", "fourier", "adam", "dip", "best")


def options(args, config, shape) -> dict:
    """name → keyword arguments of :func:`jinvert.invert` (beyond ``config``,
    the paper's), built once per representation so that each compiles once.
    ``fourier`` and ``best`` are Table 1's variants ``fourier`` and
    ``fourier-adam`` (:mod:`jinvert.experiments.variants`) at this script's
    rates."""
    return {
        "paper": dict(config=config),
        "jitter": dict(config=config, transforms=jitter(args.jitter)),
        "fourier": variants.invert_options("fourier", config, shape,
                                           learning_rate=args.fourier_lr),
        "adam": dict(config=config, optimizer=staged_adam(args.adam_lr, config.stages)),
        "dip": dict(config=config, parameterization=deep_image_prior(channels=8, depth=3),
                    optimizer=optax.adam(args.dip_lr)),
        "best": variants.invert_options("fourier-adam", config, shape,
                                        learning_rate=args.best_lr),
    }


def run_option(rep, photos, kwargs, seed):
    """Invert every photo with ``kwargs``; returns (errors %, squared-variant
    errors %, ssims, diverged, seconds per photo excluding the first call's
    compilation, arrays), ``arrays`` the reconstructions ``images`` and their
    ``codes``, the ``originals`` and their ``reference_codes`` (stacked,
    input space)."""
    x0s = [rep.preprocess(im) for _, im in photos]
    codes0 = [np.asarray(rep(x)) for x in x0s]
    codes, sims, diverged, times, reconstructions = [], [], 0, [], []
    for i, (x0, c0) in enumerate(zip(x0s, codes0)):
        start = time.perf_counter()
        r = invert(rep, c0, shape=x0.shape, key=jax.random.PRNGKey(seed + i),
                   loop=Loop(progress=False), **kwargs)
        image = np.asarray(r.images[0])
        times.append(time.perf_counter() - start)
        if not np.all(np.isfinite(image)):
            diverged += 1
            image = np.zeros_like(image)
        reconstructions.append(image)
        codes.append(np.nan_to_num(np.asarray(r.codes[0])))
        grey = lambda x: np.asarray(rep.deprocess(x)).mean(axis=-1)  # noqa: E731
        sims.append(float(ssim(grey(image), grey(np.asarray(x0)))))
    err = 100 * reconstruction_error(codes, codes0)
    err_sq = 100 * reconstruction_error(codes, codes0, squared=True)
    seconds = np.mean(times[1:]) if len(times) > 1 else times[0]
    arrays = dict(images=np.stack(reconstructions), codes=np.stack(codes),
                  originals=np.stack([np.asarray(x) for x in x0s]),
                  reference_codes=np.stack(codes0))
    return err, err_sq, np.array(sims), diverged, seconds, arrays


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--limit", type=int, default=6, help="use the first N photos (6)")
    parser.add_argument("--iterations", type=int, default=400,
                        help="total iterations (400; the paper's schedule is 800)")
    parser.add_argument("--reps", default="hog,hogb,dsift")
    parser.add_argument("--options", default=",".join(OPTION_NAMES))
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--jitter", type=int, default=1, help="max shift, pixels (1)")
    parser.add_argument("--fourier-lr", type=float, default=variants.FOURIER_LEARNING_RATE)
    parser.add_argument("--adam-lr", type=float, default=0.003)
    parser.add_argument("--dip-lr", type=float, default=0.002)
    parser.add_argument("--best-lr", type=float,
                        default=variants.FOURIER_ADAM_LEARNING_RATE)
    parser.add_argument("--size", type=int, default=common.PAPER_SIZE[0],
                        help="side of the square photos, pixels (227, the paper's)")
    parser.add_argument("--out", metavar="DIR",
                        help="also keep the reconstructions and per-photo numbers here")
    args = parser.parse_args(argv)

    # scikit-image's photos, resized and centre-cropped to the paper's 227 × 227
    # (made grey by HOG's and DSIFT's preprocess), as `jinvert reproduce table1`.
    photos = [(p.name, images.resize_and_crop(p.pixels, (args.size, args.size), name=p.name))
              for p in common.load_image_set(None, args.limit)]
    chosen = args.options.split(",")
    unknown = [o for o in chosen if o not in OPTION_NAMES]
    if unknown:
        raise SystemExit(f"unknown options {unknown}; choose from {list(OPTION_NAMES)}")
    print("command: python benchmarks/priors.py " + " ".join(sys.argv[1:] if argv is None
                                                              else argv))
    print(f"{len(photos)} photos at {args.size}x{args.size} grey: "
          f"{', '.join(n for n, _ in photos)}; "
          f"{platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, "
          f"jax {jax.__version__} on {jax.default_backend()}")
    rows = []
    for name in args.reps.split(","):
        rep = resolve_representation(name)
        table = options(args, rep.defaults.with_iterations(args.iterations),
                        (args.size, args.size, int(rep.channels)))
        for option in chosen:
            err, err_sq, sims, diverged, seconds, arrays = run_option(
                rep, photos, table[option], args.seed)
            rows.append((name, option, err, err_sq, sims, diverged, seconds))
            if args.out:
                os.makedirs(args.out, exist_ok=True)
                np.savez(os.path.join(args.out, f"{name}-{option}.npz"), **arrays)
            print(f"  {name} {option}: error " + " ".join(f"{e:.1f}" for e in err)
                  + "  ssim " + " ".join(f"{s:.3f}" for s in sims), flush=True)

    print("\n| rep | option | error % (paper's metric, mean ± std) "
          "| squared variant % (MATLAB code) | SSIM (mean ± std) | diverged | s / image |")
    print("|---|---|---|---|---|---|---|")
    for name, option, err, err_sq, sims, diverged, seconds in rows:
        # mean ± population std over the photos, as every jinvert report
        print(f"| {name} | {option} | {common.mean_std(err)} | {common.mean_std(err_sq)} "
              f"| {common.mean_std(sims, 3)} | {diverged} | {seconds:.1f} |")
    if args.out:
        with open(os.path.join(args.out, "priors.json"), "w", encoding="utf-8") as f:
            json.dump({"photos": [n for n, _ in photos], "rows": [
                {"rep": r[0], "option": r[1], "error": r[2].tolist(), "squared": r[3].tolist(),
                 "ssim": r[4].tolist(), "diverged": r[5], "seconds": float(r[6])}
                for r in rows]}, f)


if __name__ == "__main__":
    main()
