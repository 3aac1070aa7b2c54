"""``jinvert maximize`` and ``jinvert caricature`` (IJCV 2016's natural
pre-images), and the figures of docs/preimages.md.

    python -m jinvert.experiments.preimages maxima --out docs/figures/preimages_maxima.png
    python -m jinvert.experiments.preimages caricatures --out docs/figures/preimages_caricatures.png

Both figures use EfficientNet-Lite0 (ImageNet weights) and write labelled
montages; each tile says what was maximised, the value reached and the
largest value on natural photos (Z); class maxima also carry the network's
top-1 class of the image.
"""

from __future__ import annotations

import argparse
import functools
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jinvert import divergence, terms
from jinvert import images as im
from jinvert.engine import Loop

#: Names of the ImageNet classes used in the figures (ILSVRC-2012 order).
CLASS_NAMES = {1: "goldfish", 9: "ostrich", 130: "flamingo", 145: "king penguin",
               323: "monarch butterfly", 417: "balloon", 945: "bell pepper",
               980: "volcano"}


def _indices(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise ValueError(f"expected comma-separated integers, got {text!r}") from None


def objectives_for(rep, shape, *, channels=None, neuron=None, classes=None):
    """``(descriptions, weights)`` of the objectives the command line names.

    Raises:
      ValueError: a channel of a code without channels, an index out of range,
        classes of a representation whose code is not a vector.
    """
    code_shape = tuple(jax.eval_shape(rep.apply, jax.ShapeDtypeStruct(shape, jnp.float32)).shape)
    if channels is not None:
        cs = _indices(channels)
        return [f"channel {c}" for c in cs], [terms.channel(code_shape, c) for c in cs]
    if neuron is not None:
        index = tuple(_indices(neuron))
        return [f"neuron {index}"], [terms.neuron(code_shape, index)]
    ks = _indices(classes)
    if len(code_shape) != 1:
        raise ValueError(f"--class needs a classifier's output (a vector code, e.g. "
                         f"efficientnet:logits); {rep.name} gives codes of shape {code_shape}")
    wrong = [k for k in ks if not 0 <= k < code_shape[0]]
    if wrong:
        raise ValueError(f"no class {', '.join(map(str, wrong))}: {rep.name} has "
                         f"{code_shape[0]} classes, numbered 0 to {code_shape[0] - 1}")
    return ([f"class {k}" + (f" ({CLASS_NAMES[k]})" if k in CLASS_NAMES else "") for k in ks],
            [terms.neuron(code_shape, (k,)) for k in ks])


def _data_weight(args) -> float:
    """C: ``--data-weight``, else 1 for maxima and 10 for caricatures."""
    from jinvert.preimages import CARICATURE_DATA_WEIGHT

    if args.data_weight is not None:  # 0 too: recipe() refuses it, rather than C = 1 silently
        return args.data_weight
    return CARICATURE_DATA_WEIGHT if args.command == "caricature" else 1.0


def _config(rep, args):
    from jinvert.preimages import maximize_config

    config = maximize_config(rep, data_weight=_data_weight(args)).replace(
        learning_rate=args.learning_rate, jitter=args.jitter)
    return config.with_iterations(args.iterations) if args.iterations else config


def _shape(rep) -> tuple[int, int, int]:
    size = tuple(rep.input_size) if rep.input_size is not None else (227, 227)
    return size + (int(rep.channels),)


@functools.lru_cache(maxsize=1)
def classifier():
    """EfficientNet-Lite0's logits ``(N, 1000)`` of input-space images
    ``(N, 224, 224, 3)``, one compiled program kept for every call (run op
    by op, the whole network's first call took 20 s on a 2-core CPU, compiled
    4 s)."""
    from jinvert.representations.efficientnet import efficientnet_lite0

    return jax.jit(efficientnet_lite0(layer="logits").batch_apply)


def top_classes(rep, images) -> np.ndarray:
    """EfficientNet-Lite0's top-5 classes of input-space images ``(N, 224, 224, 3)``
    (the full network, whatever tap ``rep`` is): ``(N, 5)``."""
    logits = classifier()(jnp.asarray(images, jnp.float32))
    return np.argsort(-np.asarray(logits), axis=1)[:, :5]


def maxima(rep, labels, weights, *, key, config, samples=1, progress=None, say=None):
    """Activation maxima of each weight: ``(tiles, tile_labels, rows)``,
    rows ``(label, value reached per sample, Z, top-5 classes or None)``.
    ``say``: called with a line before each stretch of work outside the
    optimisation (which ``progress`` reports), so that nothing is silent."""
    from jinvert.preimages import activation_scale, maximize

    say = say or (lambda line: None)
    shape = _shape(rep)
    say(f"computing Z of {len(weights)} objective(s): the largest value on five natural photos")
    scales = [activation_scale(rep, w, size=shape[:2]) for w in weights]
    result = maximize(rep, [terms.activation(w, z) for w, z in zip(weights, scales)],
                      key=key, shape=shape, samples=samples, config=config,
                      loop=Loop(progress=progress))
    xs, codes = np.asarray(result.images), np.asarray(result.codes)
    classify = rep.name.startswith("efficientnet")
    if classify:
        say("classifying the maxima with EfficientNet-Lite0 (top-5 classes)")
    tiles, tile_labels, rows = [], [], []
    for b, (label, w, z) in enumerate(zip(labels, weights, scales)):
        values = [float(np.sum(codes[b, s] * w)) for s in range(samples)]
        top = top_classes(rep, xs[b]) if classify else None
        rows.append((label, values, z, top))
        for s in range(samples):
            tiles.append(np.asarray(rep.deprocess(xs[b, s])))
            text = f"{label}: {values[s]:.3g} (photos <= {z:.3g})"
            if top is not None:
                text += f"; top-1 class {top[s, 0]}"
            tile_labels.append(text)
    return tiles, tile_labels, rows


def _prepare(rep, image):
    if rep.input_size is not None:
        image = im.resize_and_crop(image, tuple(rep.input_size))
    else:
        h, w = image.shape[:2]
        scale = 256 / max(h, w)
        if scale < 1:
            image = im.resize(image, (max(1, round(h * scale)), max(1, round(w * scale))))
    return rep.preprocess(image)


def caricatures(rep, x0, *, key, config, samples=1, progress=None):
    """Caricatures of one input-space photo: ``(tiles, labels, projections)``,
    the projection ⟨Φ(x), Φ0⟩/||Φ0||² of each (1 at the photo)."""
    from jinvert.preimages import caricature

    result = caricature(rep, x0, key=key, samples=samples, config=config,
                        loop=Loop(progress=progress))
    code0 = np.asarray(rep(x0))
    norm2 = float(np.sum(code0 * code0))
    projections = [float(np.sum(np.asarray(c) * code0)) / norm2 for c in result.codes]
    tiles = [np.asarray(rep.deprocess(x)) for x in result.images]
    labels = [f"caricature, {rep.name.split(':')[-1]}: projection {p:.2f}" for p in projections]
    return tiles, labels, projections


def run_command(args) -> int:
    """``jinvert maximize`` / ``jinvert caricature``: write the PNG, print the
    values; progress as ``jinvert invert`` (a bar on a terminal, plain lines
    in a log, :mod:`jinvert.progress`)."""
    from jinvert import registry

    out = im.check_output(args.out or f"{args.command}-{args.rep.replace(':', '-')}.png")
    if args.jitter is not None and args.jitter < 0:
        raise ValueError(f"--jitter must be 0 or more pixels, got {args.jitter}")
    rep = registry.resolve_representation(args.rep, weights=args.weights)
    config = _config(rep, args)
    progress = True  # a bar on a terminal, plain lines in a log
    key = jax.random.PRNGKey(args.seed)
    start = time.perf_counter()
    # A divergence is this command's error below, not also a note.
    with divergence.ignored():
        if args.command == "maximize":
            labels, weights = objectives_for(rep, _shape(rep), channels=args.channel,
                                             neuron=args.neuron, classes=args.classes)
            tiles, tile_labels, rows = maxima(
                rep, labels, weights, key=key, config=config, samples=args.samples,
                progress=progress, say=lambda line: print(f"jinvert: {line}", file=sys.stderr,
                                                          flush=True))
            what = f"activation maxima of {args.rep}"
        else:
            original = im.load_image(args.image)
            x0 = _prepare(rep, original)
            tiles, tile_labels, projections = caricatures(rep, x0, key=key, config=config,
                                                          samples=args.samples,
                                                          progress=progress)
            tiles = [np.asarray(rep.deprocess(x0))] + tiles
            tile_labels = ["photo: projection 1"] + tile_labels
            photo_name = (os.path.basename(args.image) if args.image
                          else "the bundled astronaut photo")
            what = f"caricature of {photo_name} under {args.rep}"
    elapsed = time.perf_counter() - start
    if not all(np.all(np.isfinite(t)) for t in tiles):
        raise ValueError("the optimisation diverged (NaN pixels); try a smaller --learning-rate")
    title = (f"{what} ({rep.description}); IJCV recipe, C = {_data_weight(args):g}, "
             f"{config.iterations} iterations, seed {args.seed}")
    caption = ("value: <phi(x), W>, W the neuron, the channel's mean or the class; "
               "photos <= Z: the largest value on five natural photos"
               if args.command == "maximize" else
               "projection: <phi(x), phi0> / ||phi0||^2, phi0 the photo's code")
    picture, _ = im.labelled_montage(tiles, tile_labels, title=title, caption=caption,
                                     height=tiles[0].shape[0],
                                     columns=min(len(tiles), 4))
    im.save_image(out, picture)
    if args.command == "maximize":
        for label, values, z, top in rows:
            line = f"{label}: reached {', '.join(f'{v:.4g}' for v in values)} (natural photos " \
                   f"at most {z:.4g})"
            if top is not None:
                line += "; top-5 classes " + "; ".join(
                    " ".join(str(c) for c in t) for t in top)
            print(line)
    else:
        print("projection <phi(x), phi0> / ||phi0||^2: "
              + ", ".join(f"{p:.3f}" for p in projections) + " (1 at the photo)")
    print(f"{args.rep}: {config.iterations} iterations, {elapsed:.1f} s (compilation included)")
    print(f"wrote {out}")
    return 0


# ----------------------------------------------------------------------------
# The figures of docs/preimages.md
# ----------------------------------------------------------------------------

#: Activation-maximum figure: taps and their channels, and the classes.
FIGURE_TAPS = {"block4": (0, 1, 2), "block9": (0, 1, 2), "block13": (0, 1, 2)}
FIGURE_CLASSES = (1, 9, 130, 323, 417, 945)
#: Caricature figure: two photos of scikit-image, three taps.
CARICATURE_PHOTOS = ("astronaut", "chelsea")
CARICATURE_TAPS = ("block4", "block9", "block13")


_COUNTS = ("no", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")


def _channels_text(taps: dict) -> str:
    """``"channels 0-2 of block4, block9"`` (the channels of every tap), or
    each tap with its own."""
    def listed(cs):
        cs = tuple(cs)
        contiguous = len(cs) > 2 and cs == tuple(range(cs[0], cs[0] + len(cs)))
        return f"{cs[0]}-{cs[-1]}" if contiguous else ", ".join(map(str, cs))

    channel_sets = {tuple(cs) for cs in taps.values()}
    if len(channel_sets) == 1:
        (cs,) = channel_sets
        return f"channel{'s' * (len(cs) > 1)} {listed(cs)} of {', '.join(taps)}"
    return "; ".join(f"{tap} channel{'s' * (len(cs) > 1)} {listed(cs)}"
                     for tap, cs in taps.items())


def figure(which: str, out: str, iterations: int, seed: int = 0, log=print, *,
           classes=FIGURE_CLASSES, taps=None, photos=CARICATURE_PHOTOS) -> list:
    """Write the ``maxima`` or ``caricatures`` figure to ``out``; return its
    rows of numbers (also logged).

    Args:
      which: ``"maxima"`` or ``"caricatures"``.
      out: the PNG file to write.
      iterations: iterations of every maximisation or caricature.
      seed: the ``jax.random`` seed.
      log: called with each line of progress and numbers.
      classes: ``maxima``: the class logits maximised (``()``: none), by
        default :data:`FIGURE_CLASSES`.
      taps: ``maxima``: ``{tap: channels}`` (default :data:`FIGURE_TAPS`);
        ``caricatures``: the taps (default :data:`CARICATURE_TAPS`).
      photos: ``caricatures``: names of scikit-image photos (default
        :data:`CARICATURE_PHOTOS`).

    Returns:
      ``maxima``: the rows of :func:`maxima` ``(label, values, Z, top-5)``
      in figure order; ``caricatures``: ``(photo, tap, projection)``.
    """
    from jinvert.preimages import CARICATURE_DATA_WEIGHT, maximize_config
    from jinvert.representations.efficientnet import efficientnet_lite0

    key = jax.random.PRNGKey(seed)
    tiles, labels, rows = [], [], []
    if which == "maxima":
        taps = dict(FIGURE_TAPS if taps is None else taps)
        runs = ([("logits", tuple(classes))] if classes else []) + list(taps.items())
        for tap, channels in runs:
            rep = efficientnet_lite0(layer=tap)
            shape = _shape(rep)
            if tap == "logits":
                names, weights = objectives_for(rep, shape, classes=",".join(map(str, channels)))
            else:
                names, weights = objectives_for(rep, shape,
                                                channels=",".join(map(str, channels)))
            names = [f"{tap} {n}" for n in names]
            config = maximize_config(rep).with_iterations(iterations)
            t0 = time.perf_counter()
            t, lab, r = maxima(rep, names, weights, key=key, config=config)
            log(f"{tap}: {time.perf_counter() - t0:.0f} s")
            for row in r:
                log(f"  {row[0]}: reached {row[1][0]:.4g}, natural photos at most "
                    f"{row[2]:.4g}" + ("" if row[3] is None else
                                       f", top-5 {' '.join(map(str, row[3][0]))}"))
            tiles += t
            labels += lab
            rows += r
        parts = ([f"{_COUNTS[len(classes)] if len(classes) < 10 else len(classes)} class "
                  f"logit{'s' * (len(classes) > 1)}"] if classes else []) \
            + ([f"{_channels_text(taps)} (channel mean)"] if taps else [])
        title = (f"Activation maxima of EfficientNet-Lite0 (ImageNet): {', then '.join(parts)}; "
                 f"IJCV recipe, C = 1, {iterations} iterations, seed {seed}")
        caption = ("value reached (photos <= Z: the largest value on five natural photos); "
                   "top-1 class: EfficientNet-Lite0's class of the image")
        columns = 3
    elif which == "caricatures":
        import skimage.data

        taps = tuple(CARICATURE_TAPS if taps is None else taps)
        for name in photos:
            photo = im.to_rgb(np.asarray(getattr(skimage.data, name)(), np.float32) / 255.0)
            for i, tap in enumerate(taps):
                rep = efficientnet_lite0(layer=tap)
                x0 = _prepare(rep, photo)
                if i == 0:
                    tiles.append(np.asarray(rep.deprocess(x0)))
                    labels.append(f"{name} (224x224)")
                config = maximize_config(rep, data_weight=CARICATURE_DATA_WEIGHT
                                         ).with_iterations(iterations)
                t0 = time.perf_counter()
                t, lab, p = caricatures(rep, x0, key=key, config=config)
                log(f"{name} {tap}: projection {p[0]:.3f}, {time.perf_counter() - t0:.0f} s")
                tiles += t
                labels += [f"{tap}: projection {p[0]:.2f}"]
                rows.append((name, tap, p[0]))
        title = (f"Caricatures under EfficientNet-Lite0 (ImageNet) taps "
                 f"{', '.join(taps)}, started from the photo; IJCV recipe, "
                 f"C = {CARICATURE_DATA_WEIGHT:g}, "
                 f"{iterations} iterations, seed {seed}")
        caption = "projection: <phi(x), phi0> / ||phi0||^2, 1 at the photo"
        columns = 1 + len(taps)
    else:
        raise ValueError(f"which must be 'maxima' or 'caricatures', got {which!r}")
    picture, _ = im.labelled_montage(tiles, labels, title=title, caption=caption, height=160,
                                     columns=columns)
    im.save_image(out, picture)
    log(f"wrote {out}")
    return rows


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(prog="python -m jinvert.experiments.preimages",
                                     description="the figures of docs/preimages.md")
    parser.add_argument("which", choices=("maxima", "caricatures"))
    parser.add_argument("--out", required=True, metavar="FILE")
    parser.add_argument("--iterations", type=int, default=200)
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    figure(args.which, args.out, args.iterations, args.seed,
           log=lambda m: print(m, flush=True))
    return 0


if __name__ == "__main__":
    sys.exit(main())
