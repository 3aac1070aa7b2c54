"""The store of a folder run: one folder that a re-run continues from.

``OUT`` of ``jinvert invert DIR --out OUT`` holds::

    OUT/store/manifest.json      the settings (a re-run with others is refused)
    OUT/store/results.jsonl      one line per finished image (one process), or
    OUT/store/results.shard-00001-of-00004.jsonl   one file per process
    OUT/store/arrays/NAME.npz    each image's arrays (below)
    OUT/images/NAME.png          each reconstruction (NAME's suffix replaced)
    OUT/summary.md, summary.json the tables, written by process 0 at the end

An image is finished when its line is in the store: its ``.npz`` and
``.png`` are written first, each to a temporary file renamed into place, so
that a run killed at any moment leaves only whole files, and its line last
(:class:`jinvert.result_store.ResultStore`); a re-run skips the finished
images and never rewrites their files.

Each ``.npz`` holds: ``reconstruction`` ``(S, H, W, C)`` (input space),
``code`` ``(S, *code)`` (Φ of each reconstruction), ``reference`` (Φ0 of
the photo), ``original`` ``(H, W, C)`` (the photo as inverted, input space),
``relative_error`` and ``relative_error_squared`` ``(S,)`` (‖Φ(x*) − Φ0‖ /
‖Φ0‖ and its square), ``energy`` ``(S,)`` (the objective at the end),
``key`` (the image's ``jax.random`` key data), ``restarts`` (fresh starts
after a divergence) and ``settings`` (the manifest's settings, JSON). The
paper's normalised error needs every image of the folder: it is in
``summary.json``.
"""

from __future__ import annotations

import json
import os
import time

import numpy as np

from jinvert import images as im
from jinvert.result_store import ResultStore

#: The version of the store's layout, in its manifest.
FORMAT = 1


def _write_atomically(path: str, write) -> None:
    """``write(file)`` into a temporary file beside ``path``, synced, then
    renamed to ``path``: a kill leaves the old file or the new, never half."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        with open(tmp, "wb") as f:
            write(f)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def _canonical(settings: dict) -> dict:
    """``settings`` as JSON reads them back (tuples as lists)."""
    return json.loads(json.dumps(settings, sort_keys=True))


class FolderStore:
    """The store under ``out`` (see the module's text) for ``settings``.

    Args:
      out: the output folder (made if missing).
      settings: what the results depend on (representation, its settings,
        seed, samples, batch, sizes, glob), JSON-serialisable. A store made
        with other settings is refused with ``ValueError``.
      folder: the input folder, recorded in the manifest (not compared: the
        photos may move).
    """

    def __init__(self, out: str, settings: dict, *, folder: str | None = None):
        self.out = out
        self.dir = os.path.join(out, "store")
        os.makedirs(self.dir, exist_ok=True)
        self.settings = _canonical(settings)
        self._check_manifest(folder)
        self.results = ResultStore(os.path.join(self.dir, "results.jsonl"))

    def _check_manifest(self, folder) -> None:
        path = os.path.join(self.dir, "manifest.json")
        if os.path.exists(path):
            with open(path, encoding="utf-8") as f:
                old = json.load(f)
            if old.get("format") != FORMAT:
                raise ValueError(f"{self.out}: a store of format {old.get('format')}, this "
                                 f"jinvert writes format {FORMAT}; use another --out")
            before = old.get("settings", {})
            changed = sorted(k for k in set(before) | set(self.settings)
                             if before.get(k) != self.settings.get(k))
            if changed:
                diffs = "; ".join(f"{k}: {json.dumps(before.get(k))} then, "
                                  f"{json.dumps(self.settings.get(k))} now" for k in changed)
                raise ValueError(f"{self.out} holds a run with other settings ({diffs}); "
                                 f"re-run with the same settings to resume it, or give "
                                 f"another --out")
            return
        manifest = {"format": FORMAT, "settings": self.settings,
                    "folder": os.path.abspath(folder) if folder else None,
                    "created": time.strftime("%Y-%m-%d %H:%M:%S %z")}
        text = json.dumps(manifest, indent=2, sort_keys=True) + "\n"
        # Every process may write it at once: the same settings, renamed whole.
        _write_atomically(path, lambda f: f.write(text.encode("utf-8")))

    def done(self) -> set[str]:
        """Names of the finished images (in any process's shard)."""
        return self.results.done()

    def reload(self) -> None:
        """Read every shard again (after the other processes finished)."""
        self.results.reload()

    def record(self, name: str) -> dict:
        """The store's line of image ``name``."""
        return self.results.records[name]

    def arrays_path(self, name: str) -> str:
        """``OUT/store/arrays/NAME.npz``."""
        return os.path.join(self.dir, "arrays", *f"{name}.npz".split("/"))

    def picture_path(self, name: str, *, keep_suffix: bool = False) -> str:
        """``OUT/images/NAME.png``, NAME's own suffix replaced (``a/b.jpg`` ->
        ``images/a/b.png``), or kept (``images/a/b.jpg.png``: for ``b.jpg``
        beside ``b.png``, which would write one file)."""
        stem = name if keep_suffix else os.path.splitext(name)[0]
        return os.path.join(self.out, "images", *f"{stem}.png".split("/"))

    def write(self, name: str, arrays: dict, picture: np.ndarray, *,
              keep_suffix: bool = False) -> dict:
        """Write image ``name``'s arrays (``.npz``) and ``picture`` ((H, W[, 3])
        in [0, 1], a PNG), each atomically; returns the part of its record
        that says where (relative to ``out``). Call :meth:`add` after."""
        npz = self.arrays_path(name)
        png = self.picture_path(name, keep_suffix=keep_suffix)
        arrays = dict(arrays, settings=np.asarray(json.dumps(self.settings, sort_keys=True)))
        _write_atomically(npz, lambda f: np.savez(f, **arrays))
        os.makedirs(os.path.dirname(png), exist_ok=True)
        im.save_image(png, picture)
        return {"arrays": os.path.relpath(npz, self.out), "picture": os.path.relpath(png, self.out)}

    def add(self, records) -> None:
        """Record finished images (each ``{"id": name, ...}``), synced."""
        self.results.add(records)

    def load(self, name: str) -> dict:
        """Image ``name``'s arrays, as written."""
        with np.load(self.arrays_path(name)) as data:
            return {k: data[k] for k in data.files}
