"""images.labelled_montage: every panel carries its label, and the labels are
really drawn (taller than the bare montage, ink where the text goes)."""

import numpy as np
import pytest

from jinvert import images as im


def _tiles():
    rng = np.random.default_rng(0)
    return [rng.uniform(0.3, 0.7, (40, 50, 3)), rng.uniform(0.3, 0.7, (40, 50)),
            rng.uniform(0.3, 0.7, (40, 50, 3))]


def test_labels_drawn_and_returned():
    tiles = _tiles()
    labels = ["original", "HOG glyphs", "reconstruction 1, error 31.2 %"]
    out, drawn = im.labelled_montage(tiles, labels, title="hog: CNN-HOG",
                                     note="random weights: not a trained network",
                                     caption="error: ||φ(x*)-φ(x0)|| / ||φ(x0)||")
    assert drawn == ["hog: CNN-HOG", "random weights: not a trained network", *labels,
                     "error: ||phi(x*)-phi(x0)|| / ||phi(x0)||"]  # φ spelled out
    bare = im.montage(tiles)
    assert out.dtype == np.float32 and out.shape[2] == 3
    assert out.min() >= 0 and out.max() <= 1
    assert out.shape[0] > bare.shape[0] + 3 * 10      # title, note, labels, caption
    # The band above the tiles (title, note, labels) has dark ink, not only white.
    tile_rows = ((np.abs(out - 0.5) < 0.21).all(axis=2).sum(axis=1) >= 3 * 50)
    first_tile_row = int(np.argmax(tile_rows))
    assert tile_rows.sum() == 40                      # the tiles, whole
    band = out[:first_tile_row]
    assert first_tile_row > 30 and (band.min(axis=2) < 0.3).sum() > 50
    # The note is red: some pixels with much more red than green.
    assert ((band[..., 0] - band[..., 1]) > 0.4).sum() > 10
    # And the caption at the bottom is drawn too.
    assert (out[-12:].min(axis=2) < 0.7).sum() > 20


def test_grid_columns_and_unlabelled_tiles():
    tiles = _tiles() + _tiles()
    out, drawn = im.labelled_montage(tiles, ["a", None, "c", "d", None, None],
                                     columns=3, height=30)
    assert drawn == ["a", "c", "d"]
    one_row, _ = im.labelled_montage(tiles[:3], ["a", None, "c"], height=30)
    assert out.shape[1] == one_row.shape[1] and out.shape[0] > 2 * 30


def test_label_count_must_match():
    with pytest.raises(ValueError, match="3 tiles but 2 labels"):
        im.labelled_montage(_tiles(), ["a", "b"])
