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
