"""Learned decoders for EfficientNet-Lite0's taps against the paper's optimisation.

    python benchmarks/decoder_taps.py --images ../shared/images/imagenet-sample-100 \\
        [--photos 80,20] [--taps stem,block2,block5,block9,block13,head,logits] \\
        [--size 224] [--steps 2000] [--iterations 400] [--out DIR] [--figure PNG]

For each tap: a decoder (``jinvert train-decoder``'s training: the first
``--photos`` TRAIN photos of the sorted folder, whole, ``--size`` × ``--size``,
with their mirrors, pixel loss) is trained, or loaded if ``OUT/TAP.npz``
exists (a killed run resumes from ``OUT/TAP.ckpt.npz``). On the next TEST
photos (held out), made ``--size`` × ``--size`` in the network's input space
(:func:`jinvert.decoder_training.input_images`) and encoded, it scores

* the decoder alone (one forward pass);
* the paper's optimisation from noise at the tap's defaults
  (``rep.defaults.with_iterations(--iterations)``, one batch, Table 1's
  per-photo keys);
* the same optimisation started from the decoder's output
  (``invert(..., start=Start(decoder, noise=--init-noise))``);

in the paper's metric (:func:`jinvert.reconstruction_error`, normalised over
the held-out photos' codes, in %, as ``benchmarks/decoder.py``) and in image
space (:func:`jinvert.metrics.image_errors`: pixel error in % and SSIM), with
seconds. Runs are kept under ``--out`` and reused. Writes ``decoder_taps.md``
and ``decoder_taps.json`` there, and a figure (photo | optimisation |
decoder | warm start, the first four held-out photos at each tap).
"""

from __future__ import annotations

import argparse
import dataclasses
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
from jinvert import decoder_training, decoders  # noqa: E402
from jinvert.experiments import common, figures  # noqa: E402
from jinvert.registry import resolve_representation  # noqa: E402

TAPS = ("stem", "block2", "block5", "block9", "block13", "head", "logits")
#: Row labels, in table order.
DECODER, OPTIMISATION, WARM = "decoder alone", "optimisation from noise", \
    "optimisation from the decoder"


def scores(rep, images, codes, xs, refs) -> dict:
    """Per photo: the paper's error of ``codes`` (%), and the pictures of
    ``images`` against the photos ``xs``: pixel error (%) and SSIM."""
    def shown(batch):
        return [np.clip(np.asarray(rep.deprocess(x), np.float64), 0.0, 1.0) for x in batch]

    picture = jinvert.metrics.image_errors(shown(images), shown(xs))
    return {"error": 100 * jinvert.reconstruction_error(codes, refs),
            "image_error": 100 * picture["pixel"], "ssim": picture["ssim"]}


def trained_decoder(tap, photos, args):
    """The decoder of ``tap``: loaded from ``OUT/TAP.npz``, or trained (resuming
    its checkpoint) and saved; with the training seconds (``None`` if unknown)."""
    path = os.path.join(args.out, f"{tap}.npz")
    record = os.path.join(args.out, f"{tap}.train.json")
    if os.path.exists(path):
        decoder = decoders.load(path)
        if decoder.training.get("crop") != args.size:
            raise ValueError(f"{path} was trained at {decoder.training.get('crop')} pixels, "
                             f"not --size {args.size}: move it away or use another --out")
        seconds = None
        if os.path.exists(record):
            with open(record, encoding="utf-8") as f:
                seconds = json.load(f)["seconds"]
        return decoder, seconds
    settings = decoders.TrainSettings(steps=args.steps, batch_size=args.batch_size,
                                      crop=args.size, width=args.width, seed=args.seed)
    names = f"{photos[0].name} ... {photos[-1].name}"
    t0 = time.perf_counter()
    decoder, _ = decoders.train(f"efficientnet:{tap}", [p.pixels for p in photos], settings,
                                checkpoint=os.path.join(args.out, f"{tap}.ckpt.npz"),
                                resume=True, progress=None,
                                description=f"{len(photos)} photos in sorted order: {names}")
    seconds = time.perf_counter() - t0
    decoder.save(path)
    with open(record, "w", encoding="utf-8") as f:
        json.dump({"seconds": seconds, "steps": args.steps}, f)
    print(f"{tap}: trained {args.steps} steps in {seconds:.0f} s", flush=True)
    return decoder, seconds


def inverted(rep, refs, keys, shape, args, cache, init=None):
    """``(images, codes, seconds)`` of one batched run (kept in ``cache``)."""
    if os.path.exists(cache):
        with np.load(cache) as f:
            return f["images"], f["codes"], float(f["seconds"])
    t0 = time.perf_counter()
    start = None if init is None else jinvert.Start(init, noise=args.init_noise)
    result = jinvert.invert(rep, refs, key=keys, shape=shape,
                            config=rep.defaults.with_iterations(args.iterations), start=start,
                            loop=jinvert.Loop(progress=False))
    images, codes = np.asarray(result.images)[:, 0], np.asarray(result.codes)[:, 0]
    seconds = time.perf_counter() - t0
    np.savez(cache, images=images, codes=codes, seconds=seconds)
    return images, codes, seconds


def at_size(rep, size: int):
    """``rep`` for ``size`` × ``size`` inputs: itself at its own input size,
    else the same network without the fixed size (``jinvert.invert`` holds
    EfficientNet to 224 × 224, which a CPU run cannot afford on 20 photos;
    the network itself runs at any size of at least 32)."""
    if rep.input_size is None or tuple(rep.input_size) == (size, size):
        return rep
    return dataclasses.replace(rep, input_size=None)


def run_tap(tap, train, test, args) -> dict:
    """Train or load ``tap``'s decoder and score the three methods on ``test``."""
    network = resolve_representation(f"efficientnet:{tap}")
    rep = at_size(network, args.size)
    decoder, train_seconds = trained_decoder(tap, train, args)
    xs = decoder_training.input_images(network, [p.pixels for p in test], args.size)
    refs = common.compute_codes(rep, xs)
    shape = xs.shape[1:]
    keys = jnp.stack([common.image_key(jax.random.PRNGKey(args.seed), p.name) for p in test])
    with open(os.path.join(args.out, f"{tap}.npz"), "rb") as f:
        fingerprint = hashlib.sha256(f.read()).hexdigest()[:12]
    tag = f"{tap}-s{args.size}-n{len(test)}-it{args.iterations}-seed{args.seed}"
    t0 = time.perf_counter()
    decoded = np.asarray(decoder(refs, shape))
    decoded_codes = common.compute_codes(rep, decoded)
    runs = {DECODER: (decoded, decoded_codes, time.perf_counter() - t0)}
    runs[OPTIMISATION] = inverted(rep, refs, keys, shape, args,
                                  os.path.join(args.out, f"{tag}-noise.npz"))
    runs[WARM] = inverted(rep, refs, keys, shape, args,
                          os.path.join(args.out, f"{tag}-decoder-{fingerprint}"
                                                 f"-noise{args.init_noise:g}.npz"), decoder)
    rows = []
    for label, (images, codes, seconds) in runs.items():
        if not (np.all(np.isfinite(images)) and np.all(np.isfinite(codes))):
            raise RuntimeError(f"{tap}: {label} diverged")
        rows.append({"method": label, "seconds": seconds,
                     **{k: list(map(float, v))
                        for k, v in scores(rep, images, codes, xs, refs).items()}})
        print(f"{tap}, {label}: {common.mean_std(rows[-1]['error'])} % ({seconds:.0f} s)",
              flush=True)
    return {"tap": tap, "train_seconds": train_seconds, "steps": decoder.training.get("step"),
            "rows": rows, "pictures": {k: v[0] for k, v in runs.items()},
            "photos": [np.asarray(rep.deprocess(x)) for x in xs], "rep": rep}


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--images", default=os.path.join(
        os.path.dirname(__file__), "..", "..", "shared", "images", "imagenet-sample-100"),
        metavar="DIR", help="folder of photos, taken in sorted file-name order "
                            "(default ../shared/images/imagenet-sample-100)")
    parser.add_argument("--photos", default="80,20", metavar="TRAIN,TEST",
                        help="the first TRAIN photos train, the next TEST are held out "
                             "(default 80,20)")
    parser.add_argument("--taps", default=",".join(TAPS),
                        help=f"comma-separated EfficientNet-Lite0 taps (default {','.join(TAPS)})")
    parser.add_argument("--size", type=int, default=224,
                        help="photos are SIZE x SIZE, in training and testing (default 224)")
    parser.add_argument("--steps", type=int, default=2000, help="training steps per tap")
    parser.add_argument("--batch-size", type=int, default=8, help="photos per training step")
    parser.add_argument("--width", type=int, default=64, help="the decoders' width (64)")
    parser.add_argument("--iterations", type=int, default=400,
                        help="iterations of the optimisation: the tap's schedule scaled "
                             "to them (default 400, the defaults' own)")
    parser.add_argument("--init-noise", type=float, default=0.1,
                        help="noise added to the decoder's output at the warm start (0.1)")
    parser.add_argument("--seed", type=int, default=0,
                        help="seed of the decoders' training and the per-photo keys (0)")
    parser.add_argument("--out", default="decoder-taps", metavar="DIR",
                        help="where decoders and runs are kept (and reused) and the table "
                             "is written")
    parser.add_argument("--figure", metavar="PNG",
                        help="the figure (default OUT/decoder_taps.png)")
    args = parser.parse_args(argv)

    n_train, n_test = (int(n) for n in args.photos.split(","))
    photos = common.load_image_set(args.images)
    train, test = photos[:n_train], photos[n_train:n_train + n_test]
    if len(train) != n_train or len(test) != n_test or n_test < 2:
        raise ValueError(f"--photos {args.photos}: the folder has {len(photos)} photos "
                         f"(and the metric needs 2 held out)")
    taps = [t for t in args.taps.split(",") if t]
    os.makedirs(args.out, exist_ok=True)
    results = [run_tap(tap, train, test, args) for tap in taps]

    command = "python benchmarks/decoder_taps.py " + " ".join(
        argv if argv is not None else sys.argv[1:])
    dev = jax.devices()[0]
    text = (f"# Learned decoders for EfficientNet-Lite0's taps against the paper's "
            f"optimisation\n\n"
            f"- training: photos 1–{n_train} of `{args.images}` (sorted), whole, "
            f"{args.size} × {args.size}, and their mirrors; {args.steps} steps of "
            f"{args.batch_size}, width {args.width}, pixel loss\n"
            f"- held out: photos {n_train + 1}–{n_train + n_test}, {args.size} × {args.size}\n"
            f"- optimisation: each tap's defaults, schedule scaled to {args.iterations} "
            f"iterations; warm start: the decoder's output + noise {args.init_noise:g}\n"
            f"- device: {dev.platform} ({dev.device_kind}); command: `{command}`\n")
    for r in results:
        trained = ("loaded" if r["train_seconds"] is None
                   else f"{r['train_seconds']:.0f} s")
        text += (f"\n## {r['tap']} (decoder: {r['steps']} steps, training {trained})\n\n"
                 "| method | feature error % (paper's metric) | image error % | SSIM "
                 "| seconds |\n|---|---|---|---|---|\n")
        for row in r["rows"]:
            text += (f"| {row['method']} | {common.mean_std(row['error'])} "
                     f"| {common.mean_std(row['image_error'])} "
                     f"| {common.mean_std(row['ssim'], decimals=3)} | {row['seconds']:.1f} |\n")
    text += ("\nFeature error: ‖Φ(x*) − Φ(x)‖ over the mean distance between the codes "
             "of two different held-out photos. Image error: the same on the pictures in "
             "[0, 1] (`jinvert.metrics.image_errors`), and SSIM.\n")
    common.write_markdown(os.path.join(args.out, "decoder_taps.md"), text)
    with open(os.path.join(args.out, "decoder_taps.json"), "w", encoding="utf-8") as f:
        json.dump({"photos": [p.name for p in test], "size": args.size,
                   "taps": [{k: r[k] for k in ("tap", "train_seconds", "steps", "rows")}
                            for r in results]}, f)
    print(text)

    tiles, labels = [], []
    for r in results:
        errors = {row["method"]: row["error"] for row in r["rows"]}
        for i in range(min(4, n_test)):
            tiles.append(r["photos"][i])
            labels.append(f"{r['tap']}: {test[i].name}")
            for label, short in ((OPTIMISATION, "optimisation"), (DECODER, "decoder"),
                                 (WARM, "warm start")):
                tiles.append(np.asarray(r["rep"].deprocess(r["pictures"][label][i])))
                labels.append(f"{short}: {errors[label][i]:.1f} %")
    figures.save(args.figure or os.path.join(args.out, "decoder_taps.png"), tiles, labels,
                 columns=4, height=max(96, args.size),
                 title=f"EfficientNet-Lite0 taps: photo | optimisation ({args.iterations} it.) "
                       f"| learned decoder | optimisation from the decoder (held-out photos)",
                 caption=figures.HELD_OUT_CAPTION)
    return 0


if __name__ == "__main__":
    sys.exit(main())
