"""Images at the edges of the library: load, save, grey, resize, montage.

Images outside the library are NumPy/JAX arrays ``(H, W)`` or ``(H, W, 3)``
with values in [0, 1]. Inside, each representation works in its own input
space (see :class:`jinvert.Representation`).
"""

from __future__ import annotations

import os
import warnings
from importlib import resources

import numpy as np
from PIL import Image, UnidentifiedImageError

#: ITU-R BT.601 luma weights, as MATLAB's ``rgb2gray`` (the reference code).
GREY_WEIGHTS = np.array([0.2989, 0.5870, 0.1140], dtype=np.float32)

DEFAULT_IMAGE = "astronaut.png"


def default_image_path() -> str:
    """Path of the bundled default photo (NASA, public domain, 256×256)."""
    return str(resources.files("jinvert") / "data" / DEFAULT_IMAGE)


def load_image(path: str | os.PathLike | None = None) -> np.ndarray:
    """Read an image file as a float32 ``(H, W, 3)`` array in [0, 1].

    ``None`` loads the bundled default photo. Raises ``ValueError`` for a
    missing or unreadable file.
    """
    path = default_image_path() if path is None else os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"image file not found: {path}")
    try:
        with Image.open(path) as im:
            im = im.convert("RGB")
            return np.asarray(im, dtype=np.float32) / 255.0
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read {path} as an image ({err})") from None


def to_grey(image) -> np.ndarray:
    """``(H, W, 3)`` or ``(H, W)`` -> ``(H, W)`` luma, same units."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        return image
    if image.ndim == 3 and image.shape[-1] == 1:
        return image[..., 0]
    if image.ndim == 3 and image.shape[-1] == 3:
        return image @ GREY_WEIGHTS
    raise ValueError(
        f"expected an image (H, W), (H, W, 1) or (H, W, 3); got shape {image.shape}")


def to_rgb(image) -> np.ndarray:
    """``(H, W)``, ``(H, W, 1)`` or ``(H, W, 3)`` -> ``(H, W, 3)``."""
    image = np.asarray(image, dtype=np.float32)
    if image.ndim == 2:
        image = image[..., None]
    if image.ndim != 3 or image.shape[-1] not in (1, 3):
        raise ValueError(
            f"expected an image (H, W), (H, W, 1) or (H, W, 3); got shape {image.shape}")
    return np.repeat(image, 3, axis=-1) if image.shape[-1] == 1 else image


def resize(image, size: tuple[int, int]) -> np.ndarray:
    """Resize ``(H, W[, C])`` in [0, 1] to ``size = (H', W')`` (bicubic)."""
    image = np.asarray(image, dtype=np.float32)
    if image.shape[:2] == tuple(size):
        return image
    channels = [image] if image.ndim == 2 else [image[..., c] for c in range(image.shape[-1])]
    out = [np.asarray(Image.fromarray(c).resize((size[1], size[0]), Image.BICUBIC))
           for c in channels]
    out = out[0] if image.ndim == 2 else np.stack(out, axis=-1)
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def resize_and_crop(image, size: tuple[int, int], *, name: str = "image") -> np.ndarray:
    """Scale the shorter side to fit ``size`` then centre-crop to ``size``.

    Warns when the image is smaller than ``size`` (it is enlarged).
    """
    image = np.asarray(image, dtype=np.float32)
    h, w = image.shape[:2]
    th, tw = size
    if h < th or w < tw:
        warnings.warn(
            f"{name}: image of {h}×{w} is smaller than {th}×{tw}; it is enlarged",
            stacklevel=2)
    scale = max(th / h, tw / w)
    nh, nw = max(th, round(h * scale)), max(tw, round(w * scale))
    image = resize(image, (nh, nw))
    top, left = (nh - th) // 2, (nw - tw) // 2
    return image[top:top + th, left:left + tw]


def check_output(path: str | os.PathLike, suffix: str = ".png", option: str = "--out") -> str:
    """Check, before any work, that a result can be written at ``path``:
    its name ends in ``suffix``, its folder exists, and a file can be
    created there (a probe file, removed at once). Returns ``path``.

    Raises:
      ValueError: naming the problem in one line (a wrong suffix, a missing
        folder, a folder that refuses writes, with the system's reason).
    """
    path = os.fspath(path)
    if not path.lower().endswith(suffix):
        kind = {".png": "a PNG file", ".npz": "a .npz file"}.get(suffix, f"a {suffix} file")
        raise ValueError(f"the output is {kind}; give {option} a name ending in {suffix}, "
                         f"got {path}")
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise ValueError(f"output folder does not exist: {folder}")
    probe = os.path.join(folder, f".{os.path.basename(path)}.probe-{os.getpid()}")
    try:
        with open(probe, "wb"):
            pass
        os.remove(probe)
    except OSError as err:
        raise ValueError(f"cannot write {path}: {err.strerror or err} (checked before "
                         f"starting, so that no work is lost)") from None
    return path


def save_image(path: str | os.PathLike, image) -> None:
    """Write ``(H, W)`` or ``(H, W, 3)`` in [0, 1] as PNG, atomically.

    The file is written beside its target and renamed, so an interrupted run
    leaves no half-written image.
    """
    path = os.fspath(path)
    image = np.clip(np.asarray(image, dtype=np.float32), 0.0, 1.0)
    array = (image * 255.0 + 0.5).astype(np.uint8)
    if array.ndim == 3 and array.shape[-1] == 1:
        array = array[..., 0]
    tmp = f"{path}.partial-{os.getpid()}"
    try:
        Image.fromarray(array).save(tmp, format="PNG")
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def montage(images, *, pad: int = 4, height: int | None = None) -> np.ndarray:
    """Lay images side by side on white: list of ``(H, W[, 3])`` in [0, 1]
    -> ``(H, sum W + pad, 3)``. With ``height``, each is resized to it."""
    tiles = []
    for im in images:
        im = to_rgb(np.clip(np.asarray(im, dtype=np.float32), 0, 1))
        if height is not None and im.shape[0] != height:
            w = max(1, round(im.shape[1] * height / im.shape[0]))
            im = resize(im, (height, w))
        tiles.append(im)
    h = max(t.shape[0] for t in tiles)
    w = sum(t.shape[1] for t in tiles) + pad * (len(tiles) + 1)
    out = np.ones((h + 2 * pad, w, 3), dtype=np.float32)
    x = pad
    for t in tiles:
        out[pad:pad + t.shape[0], x:x + t.shape[1]] = t
        x += t.shape[1] + pad
    return out


# ----------------------------------------------------------------------------
# Labelled montages: every panel says what it is.
# ----------------------------------------------------------------------------

#: Characters PIL's default font lacks, spelled out so nothing draws as a box.
_ASCII = str.maketrans({"λ": "lambda", "β": "beta", "α": "alpha", "σ": "sigma",
                        "φ": "phi", "Φ": "Phi", "‖": "||", "×": "x", "—": "-",
                        "–": "-", "±": "+/-", "≈": "~", "…": "...", "²": "^2",
                        "·": "*", "→": "->", "≥": ">=", "≤": "<="})

#: Text colours: labels and title black, the warning note red, captions grey.
_INK = {"title": (0, 0, 0), "label": (0, 0, 0), "note": (200, 0, 0),
        "caption": (90, 90, 90)}


def _font(size: int = 12):
    """PIL's built-in font (no font file needed): the scalable one where PIL
    has FreeType (Pillow >= 10.1), else the fixed bitmap one."""
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except (TypeError, OSError, ImportError):  # old Pillow or no FreeType
        return ImageFont.load_default()


def _plain(text: str) -> str:
    """``text`` with the characters the default font lacks spelled in ASCII."""
    text = str(text).replace("λV", "lambda_V").replace("λα", "lambda_alpha")
    return " ".join(text.translate(_ASCII).split())


def _wrap(text: str, font, width: int) -> list[str]:
    """Greedy word wrap of ``text`` to lines at most ``width`` pixels wide
    (a single word longer than that keeps its own line)."""
    lines: list[str] = []
    for word in text.replace(" %", "\x01%").split():  # "12.3 %" stays on one line
        word = word.replace("\x01", " ")
        if lines and font.getlength(lines[-1] + " " + word) <= width:
            lines[-1] += " " + word
        else:
            lines.append(word)
    return lines


def labelled_montage(tiles, labels=None, *, title: str | None = None,
                     note: str | None = None, caption: str | None = None,
                     height: int | None = None, columns: int | None = None,
                     pad: int = 4, font_size: int = 12) -> tuple[np.ndarray, list[str]]:
    """Lay pictures out in a grid with a label above each, on white.

    Args:
      tiles: list of ``(H, W[, 3])`` pictures in [0, 1].
      labels: one string (or None) per tile, drawn above it, wrapped to its
        column's width.
      title: a line (wrapped) across the top, e.g. the representation and
        layer.
      note: a line drawn in red under the title, for what must not be missed
        (e.g. "random weights: not a trained network").
      caption: a grey line across the bottom (e.g. what an error means).
      height: resize every tile to this height (pixels), keeping its aspect.
      columns: tiles per row (default: all in one row); rows are filled in
        order.
      pad: white pixels between and around the tiles.
      font_size: text height in pixels (PIL's built-in font; where PIL has no
        FreeType its fixed bitmap font is used whatever the size).

    Returns:
      ``(image, drawn)``: float32 ``(H', W', 3)`` in [0, 1], and the texts
      drawn, in order (title, note, the labels row by row, caption), as
      drawn: characters the built-in font lacks (λ, β, φ, ×, ...) are spelled
      out in ASCII.
    """
    from PIL import ImageDraw

    tiles = list(tiles)
    if not tiles:
        raise ValueError("labelled_montage: no tiles")
    labels = [None] * len(tiles) if labels is None else list(labels)
    if len(labels) != len(tiles):
        raise ValueError(f"labelled_montage: {len(tiles)} tiles but {len(labels)} labels")
    pics = []
    for t in tiles:
        t = to_rgb(np.clip(np.asarray(t, dtype=np.float32), 0, 1))
        if height is not None and t.shape[0] != height:
            t = resize(t, (height, max(1, round(t.shape[1] * height / t.shape[0]))))
        pics.append(t)
    labels = [None if lab is None else _plain(lab) for lab in labels]
    columns = len(pics) if columns is None else max(1, min(int(columns), len(pics)))
    grid_rows = [list(range(i, min(i + columns, len(pics))))
                 for i in range(0, len(pics), columns)]
    font = _font(font_size)
    line_h = int(font.getbbox("Ag|")[3]) + 3
    has_labels = any(lab for lab in labels)
    # A column is as wide as its widest tile, and wide enough for a few words.
    col_w = []
    for c in range(columns):
        members = [i for i in range(c, len(pics), columns)]
        w = max(pics[i].shape[1] for i in members)
        col_w.append(max(w, 9 * line_h) if has_labels else w)
    total_w = sum(col_w) + pad * (columns + 1)
    wrapped = [_wrap(lab, font, col_w[i % columns]) if lab else []
               for i, lab in enumerate(labels)]

    blocks = []  # (kind, lines) across the whole width
    for kind, text in (("title", title), ("note", note)):
        if text:
            blocks.append((kind, _wrap(_plain(text), font, total_w - 2 * pad)))
    foot = _wrap(_plain(caption), font, total_w - 2 * pad) if caption else []

    top = pad + sum(len(lines) * line_h for _, lines in blocks)
    row_geom = []  # (label_y, tile_y, row height)
    y = top
    for members in grid_rows:
        band = max(len(wrapped[i]) for i in members) * line_h
        tile_h = max(pics[i].shape[0] for i in members)
        row_geom.append((y + pad, y + pad + band))
        y += pad + band + tile_h
    total_h = y + pad + len(foot) * line_h + (pad if foot else 0)

    canvas = np.ones((total_h, total_w, 3), dtype=np.float32)
    for members, (_, tile_y) in zip(grid_rows, row_geom):
        x = pad
        for i in members:
            c = i % columns
            t = pics[i]
            left = x + (col_w[c] - t.shape[1]) // 2
            canvas[tile_y:tile_y + t.shape[0], left:left + t.shape[1]] = t
            x += col_w[c] + pad
    image = Image.fromarray((canvas * 255 + 0.5).astype(np.uint8))
    draw = ImageDraw.Draw(image)
    drawn: list[str] = []
    y = pad
    for kind, lines in blocks:
        for line in lines:
            draw.text((pad, y), line, fill=_INK[kind], font=font)
            y += line_h
        drawn.append(" ".join(lines))
    for members, (label_y, _) in zip(grid_rows, row_geom):
        x = pad
        for i in members:
            c = i % columns
            for k, line in enumerate(wrapped[i]):  # centred over the tile
                left = x + max(0, (col_w[c] - int(font.getlength(line))) // 2)
                draw.text((left, label_y + k * line_h), line, fill=_INK["label"], font=font)
            if labels[i]:
                drawn.append(labels[i])
            x += col_w[c] + pad
    y = total_h - pad - len(foot) * line_h
    for line in foot:
        draw.text((pad, y), line, fill=_INK["caption"], font=font)
        y += line_h
    if foot:
        drawn.append(" ".join(foot))
    return np.asarray(image, dtype=np.float32) / 255.0, drawn
