"""Regenerate tests/golden/vlfeat.npz: VLFeat's HOG and dense SIFT of the
test crops, so the parity tests run on machines without VLFeat.

    python tests/golden/make_golden.py          # needs cyvlfeat and scikit-image

The file holds the input crops themselves (uint8, exact; the grey versions
given to ``vl_dsift`` as float32), so it depends on neither scikit-image's
bundled photos nor our grey conversion. Keys:

* ``input_<name>``: uint8 crop, ``(H, W)`` or ``(H, W, 3)``; the test image is
  ``float32(input) * scale`` with ``scale`` from the metadata (1 or 1/255).
* ``grey_<name>``: float32 ``(H, W)``, the grey image given to ``vl_dsift``.
* ``hog_<name>_c<cell>_<hard|bilinear>``: float32 ``(h, w, 31)`` from
  ``cyvlfeat.hog.hog(image, cell, bilinear_interpolation=...)``.
* ``render_camera_c8``: uint8, ``cyvlfeat.hog.hog(camera, 8, visualize=True)[1]``.
* ``dsift_<name>_b<bin>_s<step>``: float32 ``(n, 128)`` descriptors and
  ``dsift_<name>_b<bin>_s<step>_frames`` float32 ``(n, 2)`` (y, x) from
  ``cyvlfeat.sift.dsift(grey, step=step, size=bin, fast=True,
  float_descriptors=True)`` (cyvlfeat's scale: min(512·d, 255)).
* ``meta``: a JSON string with the versions and the exact calls.

``tests/test_hog.py`` and ``tests/test_dsift.py`` check the library against
this file always and, where cyvlfeat imports, check that the file still
equals what the installed VLFeat computes.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import datetime
import json
import os
import platform
import sys
from importlib import metadata

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
PATH = os.path.join(HERE, "vlfeat.npz")

#: name -> (scikit-image photo, crop, scale to the test image's units). Odd,
#: unequal sizes on purpose (not multiples of the cell size); each crop is the
#: centre of the larger crop of the same name in tests/conftest.py, small
#: enough to keep the file a few hundred KB.
CROPS = {
    "camera": ("camera", np.s_[39:108, 33:86], 1.0),              # 69×53 grey, [0, 255]
    "coins": ("coins", np.s_[40:117, 51:152], 1.0),               # 77×101 grey, [0, 255]
    "astronaut": ("astronaut", np.s_[130:191, 178:235], 1.0),     # 61×57 RGB, [0, 255]
    "coffee": ("coffee", np.s_[79:138, 345:434], 1.0 / 255.0),    # 59×89 RGB, [0, 1]
}
HOG_CELLS = (8, 5)
DSIFT_SETTINGS = ((5, 15), (4, 7))   # (bin size, step)

HOG_CALL = "cyvlfeat.hog.hog(image, cell_size, bilinear_interpolation=bilinear)"
DSIFT_CALL = ("cyvlfeat.sift.dsift(grey, step=step, size=bin_size, fast=True, "
              "float_descriptors=True)")
RENDER_CALL = "cyvlfeat.hog.hog(image_camera, 8, visualize=True)[1]"


def vlfeat_version() -> str:
    """VLFeat's own version string (``vl_get_version_string``), or "unknown"."""
    try:
        lib = ctypes.CDLL(ctypes.util.find_library("vl") or "libvl.so")
        lib.vl_get_version_string.restype = ctypes.c_char_p
        return lib.vl_get_version_string().decode()
    except (OSError, AttributeError):
        return "unknown"


def photo_crops() -> dict[str, np.ndarray]:
    """The uint8 crops, from scikit-image's bundled photos."""
    from skimage import data
    return {name: np.ascontiguousarray(getattr(data, photo)()[crop])
            for name, (photo, crop, _) in CROPS.items()}


def load(path: str = PATH):
    """``(arrays, meta)``: the stored arrays (a dict) and the metadata."""
    with np.load(path) as f:
        arrays = {k: f[k] for k in f.files if k != "meta"}
        meta = json.loads(str(f["meta"]))
    return arrays, meta


def golden_images(arrays, meta) -> dict[str, np.ndarray]:
    """The test photos, float32 in their units (as tests/conftest.py)."""
    return {name: arrays[f"input_{name}"].astype(np.float32) * np.float32(meta["scale"][name])
            for name in meta["images"]}


def compute(crops: dict[str, np.ndarray]) -> tuple[dict, dict]:
    """Run VLFeat on the crops: ``(arrays, meta)`` as stored in the file."""
    from cyvlfeat.hog import hog
    from cyvlfeat.sift import dsift

    sys.path.insert(0, os.path.dirname(os.path.dirname(HERE)))
    from jinvert.images import to_grey

    scale = {name: CROPS[name][2] for name in crops}
    arrays = {f"input_{name}": im for name, im in crops.items()}
    photos = golden_images(arrays, {"images": list(crops), "scale": scale})
    for name, image in photos.items():
        for cell in HOG_CELLS:
            for kind, bilinear in (("hard", False), ("bilinear", True)):
                arrays[f"hog_{name}_c{cell}_{kind}"] = np.asarray(
                    hog(image, cell, bilinear_interpolation=bilinear), np.float32)
        grey = np.asarray(to_grey(image), np.float32)
        if image.ndim == 3:
            arrays[f"grey_{name}"] = grey
        for bin_size, step in DSIFT_SETTINGS:
            frames, desc = dsift(grey, step=step, size=bin_size, fast=True,
                                 float_descriptors=True)
            key = f"dsift_{name}_b{bin_size}_s{step}"
            arrays[key] = np.asarray(desc, np.float32)
            arrays[key + "_frames"] = np.asarray(frames, np.float32)
    arrays["render_camera_c8"] = np.asarray(hog(photos["camera"], 8, visualize=True)[1])
    meta = {
        "vlfeat": vlfeat_version(),
        "cyvlfeat": metadata.version("cyvlfeat"),
        "numpy": np.__version__,
        "python": platform.python_version(),
        "created": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d"),
        "images": list(crops),
        "scale": scale,
        "crops": {name: f"skimage.data.{photo}(){_slice_text(crop)}"
                  for name, (photo, crop, _) in CROPS.items() if name in crops},
        "image": "float32(input_<name>) * scale[<name>]",
        "grey": "jinvert.images.to_grey(image) for RGB images (stored), the image itself for grey",
        "hog": {"cells": list(HOG_CELLS), "call": HOG_CALL,
                "hard": "bilinear=False", "bilinear": "bilinear=True"},
        "dsift": {"settings": [list(s) for s in DSIFT_SETTINGS], "call": DSIFT_CALL,
                  "scale": "cyvlfeat returns min(512 * d, 255) for float descriptors"},
        "render": RENDER_CALL,
    }
    return arrays, meta


def _slice_text(crop) -> str:
    return "[" + ", ".join(f"{s.start or ''}:{s.stop}" for s in crop) + "]"


def main() -> None:
    arrays, meta = compute(photo_crops())
    np.savez_compressed(PATH, meta=np.array(json.dumps(meta, indent=1)), **arrays)
    total = sum(a.nbytes for a in arrays.values())
    print(f"wrote {PATH}: {len(arrays)} arrays, {total / 1024:.0f} KiB raw, "
          f"{os.path.getsize(PATH) / 1024:.0f} KiB compressed")
    print(f"VLFeat {meta['vlfeat']}, cyvlfeat {meta['cyvlfeat']}")


if __name__ == "__main__":
    main()
