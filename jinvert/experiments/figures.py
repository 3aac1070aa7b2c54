"""Labelled figures for ``jinvert reproduce``: every panel says what it is.

The figure modules (fig2, fig4, fig6, fig7, fig9, fig10) lay their panels out
with :func:`jinvert.images.labelled_montage` through :func:`save`, label each
reconstruction with :func:`error_label` and mark random weights with
:func:`random_note`.
"""

from __future__ import annotations

import numpy as np

from jinvert import images as im

#: The caption of figures whose panels carry an error.
ERROR_CAPTION = ("error: relative code error ||phi(x*)-phi(x0)|| / ||phi(x0)|| of the "
                 "picture shown; not the paper's Table-1 metric (see 'jinvert "
                 "reproduce table1')")
#: The same, for figures whose data term is masked (fig9, fig10).
MASKED_CAPTION = ("error: relative code error ||m*(phi(x*)-phi(x0))|| / ||m*phi(x0)|| of "
                  "the picture shown, on the masked part m of the code; not the "
                  "paper's Table-1 metric (see 'jinvert reproduce table1')")
#: For figures whose labels are the paper's metric over a set of held-out
#: photos (benchmarks/decoder.py, benchmarks/decoder_taps.py).
HELD_OUT_CAPTION = ("error: the paper's metric, ||Phi(x*) - Phi(x)|| / N_Phi, N_Phi the mean "
                    "distance between the codes of two different held-out photos")


def code_error(rep, picture, code, mask=None) -> float:
    """The relative code error, in percent, of a reconstruction as shown.

    Args:
      rep: the representation; picture: the reconstruction ``(H, W, 3)`` in
        [0, 1] (rounded to 8 bits, as in the PNG); code: Φ0 of the original.
      mask: optional 0/1 array of the code's shape: only those entries count.

    Returns:
      ``100 · ||m·(Φ(x*) − Φ0)|| / ||m·Φ0||`` (norms, not squares).
    """
    from jinvert.metrics import relative_error

    picture = np.round(np.clip(np.asarray(picture, np.float32), 0, 1) * 255) / 255
    x = np.asarray(rep.preprocess(picture), np.float32)
    got = np.asarray(rep(x), np.float64)
    ref = np.asarray(code, np.float64)
    m = np.ones_like(ref) if mask is None else np.broadcast_to(np.asarray(mask, np.float64),
                                                                ref.shape)
    try:
        return 100 * relative_error(m * got, m * ref)
    except ValueError:  # nothing of the code selected
        return float("nan")


def error_label(name: str, rep, picture, code, mask=None) -> str:
    """``"NAME: error E %"`` for a reconstruction panel."""
    return f"{name}: error {code_error(rep, picture, code, mask):.1f} %"


def random_note(family: str, args, weights_label: str = "") -> str | None:
    """The red note of a figure made with random AlexNet parameters, else None."""
    if family == "alexnet" and (getattr(args, "weights", None) == "random"
                                or weights_label.startswith("RANDOM")):
        return ("random weights: not a trained network (this shows the mechanics, "
                "not what a trained network keeps)")
    return None


def save(path: str, tiles, labels, *, title: str, caption: str | None,
         note: str | None = None, height: int = 160, columns: int | None = None) -> list[str]:
    """Lay ``tiles`` out with their ``labels`` (see
    :func:`jinvert.images.labelled_montage`), write the PNG at ``path`` and
    return the texts drawn. ``caption`` has no default: a figure says which
    error its labels carry (:data:`ERROR_CAPTION` for :func:`error_label`'s
    relative error, :data:`MASKED_CAPTION`, or the paper's metric)."""
    picture, drawn = im.labelled_montage(list(tiles), list(labels), title=title, note=note,
                                         caption=caption, height=height, columns=columns)
    im.save_image(path, picture)
    return drawn
