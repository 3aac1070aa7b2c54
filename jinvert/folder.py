"""A folder of photos in, reconstructions out: :func:`invert_folder`, behind ``jinvert invert DIR``.

Every image of a folder is inverted under one representation with one set
of settings, on every local device, and by every process of JAX's
distributed runtime when there are several (:mod:`jinvert.distributed`):

1. every process makes the same plan from the file names and headers
   (:mod:`jinvert.folder_plan`): images grouped by the size they are
   inverted at, each group cut into batches fixed by the sorted names, and
   each batch given to a process;
2. each process inverts its batches not yet done (each batch sharded over
   its local devices, :func:`jinvert.experiments.common.invert_slots`),
   each image with the key of its name
   (:func:`jinvert.experiments.common.image_key`), and writes each image's
   arrays, its picture and its line to its own shard of the store
   (:class:`jinvert.folder_store.FolderStore`);
3. each process waits until every share is done; process 0 then reads the
   whole store and writes ``summary.md`` and ``summary.json``
   (:func:`summarize`).

An image's result depends on its pixels, its name, the settings and its
batch (the names sorted), not on the number of processes nor on where a
killed run stopped: on the CPU, one process, two, or a run killed and
resumed give the same bits.
"""

from __future__ import annotations

import collections
import dataclasses
import json
import os
import time
from typing import Callable

import jax
import jax.numpy as jnp
import numpy as np

from jinvert import distributed, folder_plan
from jinvert import images as im
from jinvert.config import Config
from jinvert.experiments import common
from jinvert.folder_store import FolderStore
from jinvert.metrics import reconstruction_error

#: What the summary calls the two errors.
RELATIVE = "relative code error ‖Φ(x*) − Φ(x0)‖ / ‖Φ(x0)‖"
NORMALISED = ("the paper's normalised error ‖Φ(x*) − Φ(x0)‖ / N_Φ, N_Φ the mean distance "
              "between the codes of two different images of the folder")


@dataclasses.dataclass(frozen=True)
class Summary:
    """What process 0 writes at the end: ``text`` (``summary.md``),
    ``table`` (its table by size, as printed), ``rows`` (one dict per image,
    as ``summary.json``'s ``"images"``), ``path`` (of ``summary.md``)."""

    text: str
    table: str
    rows: list
    path: str


def settings_of(label: str, config: Config, *, seed: int, samples: int, batch: int,
                size, max_size, pattern: str, weights: str | None = None) -> dict:
    """The settings a folder run's results depend on (its store's manifest)."""
    return {"representation": label, "weights": weights, "config": dataclasses.asdict(config),
            "seed": seed, "samples": samples, "batch": batch,
            "size": list(size) if size else None, "max_size": None if size else max_size,
            "glob": pattern}


def invert_folder(rep, folder: str, out: str, *, config: Config, seed: int = 0,
                  samples: int = 1, batch: int | None = None, size=None,
                  max_size: int | None = 256, pattern: str = "**/*", label: str | None = None,
                  weights: str | None = None, command: str | None = None,
                  log: Callable[[str], None] = print) -> Summary | None:
    """Invert every image under ``folder`` into the store ``out``, resuming it.

    Args:
      rep: the representation; ``label``: its name in the store and reports
        (default ``rep.name``); ``weights``: its weight file, if any.
      folder: the photos (``pattern``: a glob under it, ``**`` recursive).
      out: the output folder (:mod:`jinvert.folder_store`); a re-run with
        the same settings continues it, with others is refused.
      config: the settings (:class:`jinvert.Config`), sized to each image.
      seed: the base key ``jax.random.PRNGKey(seed)``, folded with each
        image's name. ``samples``: reconstructions per image.
      batch: images per compiled call (default
        :func:`jinvert.experiments.common.default_batch_size`).
      size: ``(H, W)`` for every image (scaled and centre-cropped), else
        each shrunk to ``max_size`` on its longer side; a network's own
        size always.
      command: the command line, for the summary.

    Returns:
      the :class:`Summary` on process 0; None on the others.
    """
    index, count = distributed.process()
    label = label or rep.name
    batch = batch or common.default_batch_size()
    plan = folder_plan.make_plan(folder, rep, batch=batch, pattern=pattern, size=size,
                                 max_size=max_size, exclude=out)
    settings = settings_of(label, config, seed=seed, samples=samples, batch=batch,
                           size=size, max_size=max_size, pattern=pattern, weights=weights)
    store = FolderStore(out, settings, folder=folder)
    owners = folder_plan.assign_batches(plan.batches, count, iterations=config.iterations,
                                        samples=samples)
    # b.jpg beside b.png: both pictures keep their suffix (b.jpg.png, b.png.png).
    stems = collections.Counter(os.path.splitext(i.name)[0] for i in plan.items)
    keep = {i.name for i in plan.items if stems[os.path.splitext(i.name)[0]] > 1}
    done = store.done()
    pending = [b for b, o in zip(plan.batches, owners)
               if o == index and any(n not in done for n in b.names())]
    who = f"process {index} of {count}: " if count > 1 else ""
    log(f"{who}{len(plan.items)} images in {len(plan.groups())} sizes, {len(done)} done "
        f"already; {len(pending)} batch(es) of up to {batch} to invert here")
    start, inverted = time.perf_counter(), 0
    job = dict(rep=rep, store=store, config=config, samples=samples, keep=keep,
               key=jax.random.PRNGKey(seed), crop=rep.input_size is not None or size is not None,
               process=index)
    for number, b in enumerate(pending):
        began = time.perf_counter()
        inverted += _invert_batch(b, done, **job)
        log(f"{who}batch {number + 1}/{len(pending)} ({b.name}): "
            f"{time.perf_counter() - began:.1f} s")
    own_s = time.perf_counter() - start
    if count > 1:
        shares = [distributed.digest([b.name + ":" + ",".join(b.names())
                                      for b, o in zip(plan.batches, owners) if o == p])
                  for p in range(count)]
        distributed.finish_share(store.dir, shares, log=log)
    if index != 0:
        return None
    store.reload()
    timing = dict(before=len(done), inverted_here=inverted, own_s=own_s,
                  wall_s=time.perf_counter() - start, processes=count)
    return summarize(plan, store, label=label, description=rep.description,
                     folder=folder, timing=timing, command=command)


def _invert_batch(b, done, *, rep, store, config, samples, keep, key, crop, process) -> int:
    """Invert the images of batch ``b`` not in ``done`` and store them;
    returns how many were inverted (blank images are recorded, not inverted)."""
    names = [item.name for item in b.items]
    todo = [n not in done and n not in names[:j] for j, n in enumerate(names)]
    cache: dict[str, np.ndarray] = {}

    def prepared(item):
        if item.name not in cache:
            pixels = folder_plan.fit_image(im.load_image(item.path), item.size, crop=crop,
                                           name=item.name)
            cache[item.name] = np.asarray(rep.preprocess(pixels), np.float32)
        return cache[item.name]

    fill = prepared(b.items[todo.index(True)])
    xs = np.stack([prepared(item) if t else fill for item, t in zip(b.items, todo)])
    refs = common.compute_codes(rep, xs)
    blank = [t and not (np.all(np.isfinite(r)) and np.any(r != 0)) for t, r in zip(todo, refs)]
    if any(blank):
        store.add([{"id": names[j], "skipped": "its code is all zeros or not finite (a blank "
                    "image?): nothing to invert", "size": list(b.size)}
                   for j in range(len(names)) if blank[j]])
    todo = [t and not k for t, k in zip(todo, blank)]
    if not any(todo):
        return 0
    refs = np.stack([r if t else refs[todo.index(True)] for r, t in zip(refs, todo)])
    keys = jnp.stack([common.image_key(key, n) for n in names])
    began = time.perf_counter()
    recon, codes, energy, restarts = common.invert_slots(rep, refs, keys, todo, config=config,
                                                         samples=samples, shape=xs.shape[1:])
    seconds = time.perf_counter() - began
    records = []
    for j in (j for j in range(len(names)) if todo[j]):
        ref = refs[j].astype(np.float64)
        sq = np.array([np.sum((c.astype(np.float64) - ref) ** 2) for c in codes[j]])
        relative_sq = sq / np.sum(ref ** 2)
        pictures = [np.asarray(rep.deprocess(x)) for x in recon[j]]
        picture = pictures[0] if samples == 1 else im.montage([im.to_rgb(p) for p in pictures])
        arrays = dict(reconstruction=recon[j], code=codes[j], reference=refs[j],
                      original=xs[j], relative_error=np.sqrt(relative_sq),
                      relative_error_squared=relative_sq, energy=energy[j],
                      key=np.asarray(keys[j]), restarts=np.asarray(restarts[j]))
        where = store.write(names[j], arrays, picture, keep_suffix=names[j] in keep)
        records.append({"id": names[j], "size": list(b.size), "batch": b.name, "slot": j,
                        "relative": [float(v) for v in np.sqrt(relative_sq)],
                        "restarts": int(restarts[j]), **where,
                        "process": process, "batch_seconds": round(seconds, 3)})
    store.add(records)
    return len(records)


def _mean_std(values) -> str:
    return common.mean_std(values) if len(values) else "—"


def summarize(plan, store: FolderStore, *, label: str, description: str = "",
              folder: str = "", timing: dict | None = None,
              command: str | None = None) -> Summary:
    """Read every image's arrays from ``store`` and write ``summary.md``
    and ``summary.json`` under its folder: the errors by size and overall
    (mean ± std over images, the first sample of each) and per image.

    The relative code error is recomputed from the stored codes; the
    paper's normalised error (:func:`jinvert.reconstruction_error`) over the
    folder's images (codes of different sizes compared zero-padded to the
    longest, as that function does), with the MATLAB code's squared variant
    beside it. Raises ``ValueError`` if an image of ``plan`` is missing.
    """
    missing = [i.name for i in plan.items if i.name not in store.done()]
    if missing:
        raise ValueError(f"the store {store.out} lacks {len(missing)} image(s), e.g. "
                         f"{missing[0]}: a process stopped early? Re-run to finish them")
    rows, codes, refs, skipped = [], [], [], list(plan.skipped)
    for item in sorted(plan.items, key=lambda i: i.name):
        rec = store.record(item.name)
        if rec.get("skipped"):
            skipped.append(f"{item.name} ({rec['skipped']})")
            continue
        arrays = store.load(item.name)
        code, ref = arrays["code"][0].astype(np.float64), arrays["reference"].astype(np.float64)
        codes.append(code)
        refs.append(ref)
        rows.append({"image": item.name, "size": list(item.size),
                     "relative_percent": 100 * float(np.linalg.norm(code - ref)
                                                     / np.linalg.norm(ref)),
                     "restarts": int(arrays["restarts"]), "picture": rec["picture"]})
    if len(rows) >= 2:
        for name, squared in (("normalised_percent", False), ("squared_percent", True)):
            for row, value in zip(rows, reconstruction_error(codes, refs, squared=squared)):
                row[name] = 100 * float(value)
    table = _size_table(rows)
    text = _report(rows, table, skipped, store, label=label, description=description,
                   folder=folder, timing=timing, command=command)
    path = os.path.join(store.out, "summary.md")
    common.write_markdown(path, text)
    data = {"settings": store.settings, "images": rows, "skipped": skipped, "timing": timing}
    common.write_markdown(os.path.join(store.out, "summary.json"),
                          json.dumps(data, indent=1, ensure_ascii=False) + "\n")
    return Summary(text, table, rows, path)


def _size_table(rows) -> str:
    """The errors by size, then over all images, as a Markdown table."""
    text = ("| size (H × W) | images | relative code error % | normalised error % "
            "(paper's metric) |\n|---|---|---|---|\n")
    sizes = sorted({tuple(r["size"]) for r in rows})
    for label, group in ([(f"{h} × {w}", [r for r in rows if tuple(r["size"]) == (h, w)])
                          for h, w in sizes] + [("all", rows)]):
        relative = [r["relative_percent"] for r in group]
        normalised = [r["normalised_percent"] for r in group if "normalised_percent" in r]
        text += (f"| {label} | {len(group)} | {_mean_std(relative)} | "
                 f"{_mean_std(normalised)} |\n")
    return text


def _report(rows, table, skipped, store, *, label, description, folder, timing,
            command) -> str:
    """``summary.md``."""
    s = store.settings
    c = s["config"]
    sizes = (f"{s['size'][0]} × {s['size'][1]}, scaled and centre-cropped" if s["size"]
             else f"each shrunk to at most {s['max_size']} pixels on its longer side"
             if s["max_size"] else "as they are")
    text = (f"# jinvert invert: {len(rows)} images of `{folder}`\n\n"
            f"- representation: {label}" + (f" ({description})" if description else "")
            + (f", weights {s['weights']}" if s["weights"] else "") + "\n"
            f"- settings: stages {tuple(c['stages'])} from lr {c['learning_rate']:g} "
            f"({c['update_rule']}), λV {c['lambda_tv']:g} (β {c['beta']:g}), "
            f"λα {c['lambda_alpha']:.4g} (α {c['alpha']:g}), the paper's σ and λ sized to "
            f"each image (`Config.sized`); seed {s['seed']}, {s['samples']} sample(s), "
            f"batches of {s['batch']}\n"
            f"- images: files matching `{s['glob']}`, {sizes}\n")
    if command:
        text += f"- command: `{command}`\n"
    if timing:
        device = jax.local_devices()[0]
        text += (f"- this run: {timing['processes']} process(es), each on "
                 f"{len(jax.local_devices())} × {device.platform} ({device.device_kind}); "
                 f"{timing['before']} images were done before; process 0 inverted "
                 f"{timing['inverted_here']} in {timing['own_s']:.1f} s, all shares were "
                 f"done after {timing['wall_s']:.1f} s\n")
    text += (f"\nErrors in percent, mean ± std over images (the first sample of each): "
             f"the {RELATIVE}, and {NORMALISED} (`jinvert.reconstruction_error`; codes of "
             f"different sizes compared zero-padded).\n\n{table}\n## Per image\n\n"
             "| image | size | relative % | normalised % | squared variant % | restarts | "
             "picture |\n|---|---|---|---|---|---|---|\n")
    for r in rows:
        norm = f"{r['normalised_percent']:.2f}" if "normalised_percent" in r else "—"
        sq = f"{r['squared_percent']:.2f}" if "squared_percent" in r else "—"
        text += (f"| {r['image']} | {r['size'][0]} × {r['size'][1]} | "
                 f"{r['relative_percent']:.2f} | {norm} | {sq} | {r['restarts']} | "
                 f"{r['picture']} |\n")
    if skipped:
        text += "\nSkipped: " + "; ".join(skipped) + "\n"
    return text
