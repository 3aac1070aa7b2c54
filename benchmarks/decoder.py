"""A learned decoder against the paper's optimisation, and as its warm start.

    python benchmarks/decoder.py --decoder hog-decoder.npz \\
        --images ../shared/images/imagenet-sample-100 --first 81 --last 100 \\
        [--iterations 10,20,40,80,160,800] [--out DIR] [--figure PNG] [--size 227]

Held-out photos ``--first`` … ``--last`` (1-based, sorted file names) are made
227 × 227 grey images and encoded, exactly as ``jinvert reproduce table1``
does (:func:`jinvert.experiments.common.prepare`; ``--size S``: S × S
instead, for a quick check such as tests/test_benchmarks.py's). For each it
measures, in the paper's metric (:func:`jinvert.reconstruction_error`,
normalised over these photos' codes; mean ± std in %, the squared variant
beside):

* the decoder alone (one forward pass);
* the paper's optimisation from noise (its defaults; the schedule of
  4 × 200 iterations scaled to each count of ``--iterations`` by
  ``Config.with_iterations``);
* the same optimisation started from the decoder's output
  (``invert(..., start=Start(decoder))``, noise 0.1 or ``--init-noise``),
  at each count (``--single-stage``: all at the first learning rate).

Every run's images and codes are kept under ``--out`` and reused by a later
call (the runs from noise also for another decoder). Keys: one per photo
(``common.image_key`` of seed 0), as Table 1's. Writes
``decoder.md`` (and ``decoder.json``) under ``--out`` and, with
``--figure``, a labelled montage of the first four photos: original, decoder,
from noise, from the decoder (at 80 and at the last count).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

import jinvert  # noqa: E402
from jinvert import decoders  # noqa: E402
from jinvert.experiments import common, figures  # noqa: E402
from jinvert.registry import resolve_representation  # noqa: E402


NOISE = "the paper's optimisation from noise"
WARM = "the optimisation from the decoder's output"


def errors(codes, refs) -> tuple[np.ndarray, np.ndarray]:
    """The paper's error and the squared variant, per photo, in %."""
    return (100 * jinvert.reconstruction_error(codes, refs),
            100 * jinvert.reconstruction_error(codes, refs, squared=True))


def picture_errors(rep, images, xs) -> tuple[np.ndarray, np.ndarray]:
    """Beyond the paper, image space (``jinvert.metrics.image_errors``): the
    pictures of ``images`` (input space, deprocessed and clipped to [0, 1])
    against the photos ``xs``, the pixel error in % and SSIM, per photo."""
    def shown(batch):
        return [np.clip(np.asarray(rep.deprocess(x), np.float64), 0.0, 1.0) for x in batch]

    scores = jinvert.metrics.image_errors(shown(images), shown(xs))
    return 100 * scores["pixel"], scores["ssim"]


def invert_all(rep, refs, keys, shape, iterations, init=None, single_stage=False,
               init_noise=0.1, skip_stages=0):
    """Images and codes of one run over all photos (one batch): the paper's
    schedule scaled to ``iterations``, or with ``single_stage`` all of them
    at its first learning rate; ``skip_stages``: the paper's schedule
    without its first stages (starting at a tenth of the rate for each)."""
    config = rep.defaults
    if skip_stages:
        config = config.replace(learning_rate=config.learning_rate / 10 ** skip_stages,
                                stages=config.stages[skip_stages:])
    config = (config.replace(stages=(iterations,)) if single_stage
              else config.with_iterations(iterations))
    start = None if init is None else jinvert.Start(init, noise=init_noise)
    result = jinvert.invert(rep, refs, key=keys, shape=shape, config=config, start=start,
                            loop=jinvert.Loop(progress=False))
    images, codes = np.asarray(result.images)[:, 0], np.asarray(result.codes)[:, 0]
    if not (np.all(np.isfinite(images)) and np.all(np.isfinite(codes))):
        raise RuntimeError(f"a run of {iterations} iterations diverged (init {init!r})")
    return images, codes


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--decoder", required=True, metavar="FILE",
                        help="a decoder file (jinvert train-decoder; jinvert/data/hog-decoder.npz "
                             "is the bundled one)")
    parser.add_argument("--images", required=True, metavar="DIR",
                        help="folder of photos, taken in sorted file-name order")
    parser.add_argument("--first", type=int, default=81,
                        help="first held-out photo, 1-based (default 81)")
    parser.add_argument("--last", type=int, default=100,
                        help="last held-out photo, included (default 100)")
    parser.add_argument("--iterations", default="10,20,40,80,160,800",
                        help="comma-separated iteration counts (default 10,20,40,80,160,800)")
    parser.add_argument("--noise-iterations", default=None,
                        help="counts for the runs from noise (default: --iterations)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the per-photo keys, as Table 1's (default 0)")
    parser.add_argument("--init-noise", type=float, default=0.1,
                        help="the norm of the noise added to the decoder's output, jinvert.Start(decoder, noise=...) (0.1)")
    parser.add_argument("--skip-stages", type=int, default=0,
                        help="runs from the decoder: leave out the first K stages of the "
                             "paper's schedule (start at lr 0.004/10^K; default 0)")
    parser.add_argument("--single-stage", action="store_true",
                        help="run every count at the paper's first learning rate (one "
                             "stage, no decay) instead of its schedule scaled to the count")
    parser.add_argument("--out", default="decoder-benchmark", metavar="DIR",
                        help="where runs are kept (and reused) and decoder.md is written")
    parser.add_argument("--figure", metavar="PNG",
                        help="also write a labelled montage of the first four photos")
    parser.add_argument("--size", type=int, default=None,
                        help="make the photos SIZE x SIZE (default: the paper's 227 x 227)")
    args = parser.parse_args(argv)

    decoder = decoders.load(args.decoder)
    rep = resolve_representation(decoder.rep)
    photos = common.load_image_set(args.images)[args.first - 1:args.last]
    counts = [int(n) for n in args.iterations.split(",") if n]
    noise_counts = ([int(n) for n in args.noise_iterations.split(",") if n]
                    if args.noise_iterations is not None else counts)
    size = None if args.size is None else (args.size, args.size)
    xs = np.stack([common.prepare(rep, p, size) for p in photos])
    refs = common.compute_codes(rep, xs)
    shape = xs.shape[1:]
    keys = jnp.stack([common.image_key(jax.random.PRNGKey(args.seed), p.name)
                      for p in photos])
    rows, pictures = [], {}

    t0 = time.perf_counter()
    decoded = np.asarray(decoder(refs, shape))
    decoded_codes = common.compute_codes(rep, decoded)
    seconds = time.perf_counter() - t0
    rows.append(("decoder alone (one pass)", 0, *errors(decoded_codes, refs), seconds,
                 *picture_errors(rep, decoded, xs)))
    pictures["decoder"] = decoded
    os.makedirs(args.out, exist_ok=True)
    with open(args.decoder, "rb") as f:
        fingerprint = hashlib.sha256(f.read()).hexdigest()[:12]
    for start, runs in (("noise", noise_counts), ("decoder", counts)):
        for n in runs:
            # Every run is kept under --out and reused by a later call (the
            # runs from noise by the benchmark of another decoder too).
            tag = ("noise" if start == "noise" else f"decoder-{fingerprint}") + \
                ("-single" if args.single_stage else "") + \
                (f"-noise{args.init_noise:g}" if start != "noise" and args.init_noise != 0.1
                 else "") + \
                (f"-skip{args.skip_stages}" if start != "noise" and args.skip_stages else "")
            cache = os.path.join(args.out, f"{tag}-{n}-seed{args.seed}.npz")
            t0 = time.perf_counter()
            if os.path.exists(cache):
                with np.load(cache) as f:
                    assert list(f["names"]) == [p.name for p in photos], cache
                    images, codes, seconds = f["images"], f["codes"], float(f["seconds"])
            else:
                images, codes = invert_all(rep, refs, keys, shape, n,
                                           init=None if start == "noise" else decoder,
                                           single_stage=args.single_stage,
                                           init_noise=args.init_noise,
                                           skip_stages=0 if start == "noise"
                                           else args.skip_stages)
                seconds = time.perf_counter() - t0
                np.savez(cache, images=images, codes=codes, seconds=seconds,
                         names=np.asarray([p.name for p in photos]))
            label = NOISE if start == "noise" else WARM
            rows.append((label, n, *errors(codes, refs), seconds,
                         *picture_errors(rep, images, xs)))
            pictures[f"{start}/{n}"] = images
            print(f"{label}, {n} iterations: {common.mean_std(rows[-1][2])} % "
                  f"({seconds:.0f} s)", flush=True)

    names = [p.name for p in photos]
    command = "python benchmarks/decoder.py " + " ".join(argv if argv is not None
                                                          else sys.argv[1:])
    dev = jax.devices()[0]
    text = (f"# A learned {decoder.rep} decoder against the paper's optimisation\n\n"
            f"- decoder: `{args.decoder}` (trained on {decoder.training.get('description')}, "
            f"{decoder.training.get('step')} steps)\n"
            f"- held-out photos: {args.first}–{args.last} of `{args.images}` (sorted), "
            f"{len(photos)} photos, {shape[0]} × {shape[1]} grey\n"
            f"- init_noise of the runs from the decoder: {args.init_noise:g}; stages of "
            f"the paper's schedule they skip: {args.skip_stages}\n"
            f"- schedule: " + ("one stage at lr 0.004 (no decay)" if args.single_stage
                               else "the paper's 4 stages scaled to the count") + "\n"
            f"- device: {dev.platform} ({dev.device_kind})\n- command: `{command}`\n\n"
            "| start | iterations | error % (paper's metric) | squared variant % | seconds "
            "| image error % (pixels) | SSIM |\n"
            "|---|---|---|---|---|---|---|\n")
    for label, n, err, sq, seconds, pixel, similarity in rows:
        text += (f"| {label} | {n} | {common.mean_std(err)} | {common.mean_std(sq)} "
                 f"| {seconds:.1f} | {common.mean_std(pixel)} "
                 f"| {common.mean_std(similarity, decimals=3)} |\n")
    text += ("\nImage space, beyond the paper (`jinvert.metrics.image_errors`): the "
             "pictures in [0, 1] against the photos, ‖x* − x‖ over the mean distance "
             "between two different photos, and SSIM.\n")
    common.write_markdown(os.path.join(args.out, "decoder.md"), text)
    with open(os.path.join(args.out, "decoder.json"), "w", encoding="utf-8") as f:
        json.dump({"photos": names, "rows": [
            {"start": r[0], "iterations": r[1], "error": list(map(float, r[2])),
             "squared": list(map(float, r[3])), "seconds": r[4],
             "image_error": list(map(float, r[5])), "ssim": list(map(float, r[6]))}
            for r in rows]}, f)
    print(text)

    if args.figure:
        warm = [n for n in (80, counts[-1]) if n in counts]
        by = {(r[0], r[1]): r[2] for r in rows}
        tiles, labels = [], []
        for i in range(min(4, len(photos))):
            tiles.append(np.asarray(rep.deprocess(xs[i])))
            labels.append(f"{names[i]} (held out, grey {shape[0]}x{shape[1]})")
            tiles.append(np.asarray(rep.deprocess(decoded[i])))
            labels.append(f"decoder alone: {by[(rows[0][0], 0)][i]:.1f} %")
            n = noise_counts[-1]
            tiles.append(np.asarray(rep.deprocess(pictures[f"noise/{n}"][i])))
            labels.append(f"from noise, {n} it.: {by[(NOISE, n)][i]:.1f} %")
            for m in warm:
                tiles.append(np.asarray(rep.deprocess(pictures[f"decoder/{m}"][i])))
                labels.append(f"from decoder, {m} it.: {by[(WARM, m)][i]:.1f} %")
        figures.save(args.figure, tiles, labels, columns=3 + len(warm),
                     title=f"{decoder.rep}: a learned decoder, the paper's optimisation from "
                           f"noise, and the optimisation started from the decoder "
                           f"(held-out photos)",
                     caption=figures.HELD_OUT_CAPTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
