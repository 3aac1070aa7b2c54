"""Write the public-domain and CC0 photos that ship with scikit-image as
256 × 256 tiles: training photos for a decoder that jinvert can ship.

    python benchmarks/cc0_photos.py DIR

It also writes DIR/LICENCES.txt: each photo and its licence.

The decoder bundled with jinvert (``jinvert.decoders.bundled("hog")``) was
trained on these tiles (``jinvert train-decoder --images DIR``), not on
ImageNet photos, whose terms (non-commercial research) would not sit clearly
beside jinvert's BSD-2 licence. Each photo's licence, as scikit-image's
``skimage.data`` docstrings state it, is in :data:`PHOTOS`; photos whose
docstring says only "no known copyright restrictions" (coins,
immunohistochemistry) are left out. A photo gives
its tiles on a regular grid (no overlap, at most ``MAX_TILES``, spread over
the grid), so that the large ones (Hubble, retina) do not dominate.
"""

from __future__ import annotations

import os
import sys

import numpy as np

#: skimage.data names and their licences (from the skimage.data docstrings).
PHOTOS = {
    "astronaut": "public domain (NASA)",
    "camera": "CC0 (Lav Varshney)",
    "chelsea": "CC0 (Stefan van der Walt)",
    "coffee": "CC0 (Rachel Michetti)",
    "rocket": "public domain (SpaceX)",
    "brick": "CC0 (CC0Textures)",
    "grass": "CC0 (CC0Textures)",
    "gravel": "CC0 (CC0Textures)",
    "clock": "public domain (Stefan van der Walt)",
    "hubble_deep_field": "public domain (NASA)",
    "retina": "CC0 1.0",
    "cell": "CC0",
}

TILE = 256
MAX_TILES = 6


def tiles(image: np.ndarray, side: int = TILE, most: int = MAX_TILES) -> list[np.ndarray]:
    """Non-overlapping ``side`` squares on a centred grid, at most ``most``
    of them, evenly spread; the centre square alone for a smaller image."""
    h, w = image.shape[:2]
    rows, cols = max(1, h // side), max(1, w // side)
    if rows * cols == 1 or min(h, w) < side:
        s = min(h, w, side)
        top, left = (h - s) // 2, (w - s) // 2
        return [image[top:top + s, left:left + s]]
    top0, left0 = (h - rows * side) // 2, (w - cols * side) // 2
    cells = [(r, c) for r in range(rows) for c in range(cols)]
    keep = np.linspace(0, len(cells) - 1, min(most, len(cells))).round().astype(int)
    return [image[top0 + r * side:top0 + (r + 1) * side, left0 + c * side:left0 + (c + 1) * side]
            for r, c in (cells[i] for i in keep)]


def main(argv=None) -> int:
    import argparse

    from PIL import Image
    from skimage import data

    parser = argparse.ArgumentParser(description=__doc__.strip().splitlines()[0] + " "
                                     + __doc__.strip().splitlines()[1])
    parser.add_argument("out", metavar="DIR", help="folder to write the tiles and LICENCES.txt to")
    out = parser.parse_args(argv).out
    os.makedirs(out, exist_ok=True)
    count, lines = 0, []
    for name, licence in PHOTOS.items():
        image = np.asarray(getattr(data, name)())
        pieces = tiles(image)
        for i, tile in enumerate(pieces):
            Image.fromarray(tile).save(os.path.join(out, f"{name}-{i}.png"))
        count += len(pieces)
        lines.append(f"{name}-*.png ({len(pieces)} tiles): skimage.data.{name}(), {licence}")
    with open(os.path.join(out, "LICENCES.txt"), "w", encoding="utf-8") as f:
        f.write("\n".join(lines) + "\n")
    print(f"wrote {count} tiles of {len(PHOTOS)} photos and LICENCES.txt to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
