"""The plan of a folder run: which images, at which size, in which batch, on which process.

``jinvert invert DIR`` (:func:`jinvert.folder.invert_folder`) inverts every
image of a folder. Before anything is computed, every process makes the same
plan from the file names and image headers alone:

* :func:`list_images` — the images under the folder (recursively, a glob),
  as sorted relative paths with ``/``: each one's name, and the source of
  its random key (:func:`jinvert.experiments.common.image_key`).
* :func:`fitted_size` — the size an image is inverted at: the network's own,
  ``--size``, or shrunk to ``--max-size`` (the rule of ``jinvert invert``
  on one image; :func:`fit_image` does it to the pixels).
* :func:`make_plan` — images of one size form a group, inverted by one
  compiled program; each group is cut into batches of one size
  (:func:`jinvert.experiments.common.batch_slots`), fixed by the sorted
  names, so an image's batch and slot, hence its result, do not depend on
  what is done already or on the number of processes.
* :func:`assign_batches` — each batch's process
  (:func:`jinvert.distributed.assign`), counting a group's compilation once
  per process, so a process keeps to few sizes.
"""

from __future__ import annotations

import dataclasses
import glob
import os
import warnings
from typing import Sequence

from PIL import Image, UnidentifiedImageError

from jinvert import distributed
from jinvert import images as im
from jinvert.experiments.common import IMAGE_SUFFIXES, batch_slots

#: Rough costs used only to balance the processes' shares (measured for HOG
#: on a shared 2-core CPU with JAX 0.10): seconds to compile a size's
#: programs, and seconds per pixel, iteration and image inverted.
COMPILE_S = 10.0
PIXEL_ITERATION_S = 2.5e-7


@dataclasses.dataclass(frozen=True)
class Item:
    """One image of the folder: ``name`` (its path relative to the folder,
    with ``/``), ``path`` (on disk), ``size`` ``(H, W)`` it is inverted at."""

    name: str
    path: str
    size: tuple[int, int]


@dataclasses.dataclass(frozen=True)
class Batch:
    """Images inverted together: one compiled program's call. ``items``:
    its ``slots`` images, the last repeated to fill a group's last batch."""

    size: tuple[int, int]
    index: int
    items: tuple[Item, ...]

    @property
    def name(self) -> str:
        """``"H x W #index"``, for messages."""
        return f"{self.size[0]}x{self.size[1]} #{self.index}"

    def names(self) -> list[str]:
        """Its images' names, each once, in slot order."""
        return list(dict.fromkeys(item.name for item in self.items))


def list_images(folder: str, pattern: str = "**/*", *, exclude: str | None = None) -> list[str]:
    """Image files under ``folder`` matching ``pattern`` (a glob relative to
    ``folder``; ``**`` crosses sub-folders), whose names end in an image
    suffix (.jpg, .png, ...): sorted relative paths with ``/``, leaving out
    anything under ``exclude`` (the run's output folder, when inside)."""
    if not os.path.isdir(folder):
        raise ValueError(f"not a folder: {folder}")
    skip = os.path.realpath(exclude) + os.sep if exclude else None
    names = []
    for rel in glob.glob(pattern, root_dir=folder, recursive=True):
        path = os.path.join(folder, rel)
        if not rel.lower().endswith(IMAGE_SUFFIXES) or not os.path.isfile(path):
            continue
        if skip and os.path.realpath(path).startswith(skip):
            continue
        names.append(rel.replace(os.sep, "/"))
    if not names:
        raise ValueError(f"no image files ({', '.join(IMAGE_SUFFIXES)}) in {folder} "
                         f"matching {pattern!r}")
    return sorted(names)


def fitted_size(size: tuple[int, int], *, input_size=None, fixed=None,
                max_size: int | None = None) -> tuple[int, int]:
    """``(H, W)`` that an image of ``size = (H, W)`` is inverted at: a
    network's ``input_size``, else ``fixed`` (``--size``; both are reached by
    scaling and centre-cropping), else ``size`` shrunk (aspect kept) so that
    its longer side is at most ``max_size``; never enlarged."""
    if input_size is not None:
        if fixed is not None and tuple(fixed) != tuple(input_size):
            raise ValueError(f"this representation takes {input_size[0]}x{input_size[1]} "
                             f"images; drop --size")
        return tuple(int(v) for v in input_size)
    if fixed is not None:
        return tuple(int(v) for v in fixed)
    h, w = size
    scale = max_size / max(h, w) if max_size else 1.0
    return (max(1, round(h * scale)), max(1, round(w * scale))) if scale < 1 else (h, w)


def fit_image(image, target: tuple[int, int], *, crop: bool, name: str = "image"):
    """``image`` ``(H, W, 3)`` in [0, 1] brought to ``target`` ``(H, W)``
    (:func:`fitted_size`): scaled and centre-cropped when ``crop`` (a
    network's size or ``--size``), else resized."""
    if crop:
        return im.resize_and_crop(image, tuple(target), name=name)
    return im.resize(image, tuple(target))


def header_size(path: str) -> tuple[int, int]:
    """``(H, W)`` of an image file from its header (pixels not decoded)."""
    try:
        with Image.open(path) as picture:
            w, h = picture.size
    except (UnidentifiedImageError, OSError) as err:
        raise ValueError(f"cannot read {path} as an image ({err})") from None
    return h, w


@dataclasses.dataclass(frozen=True)
class Plan:
    """The images and batches of a folder run; ``skipped``: files that could
    not be read (named in the summary)."""

    items: tuple[Item, ...]
    batches: tuple[Batch, ...]
    skipped: tuple[str, ...] = ()

    def groups(self) -> dict[tuple[int, int], list[Item]]:
        """Size -> its images, sizes in order."""
        out: dict[tuple[int, int], list[Item]] = {}
        for item in sorted(self.items, key=lambda i: (i.size, i.name)):
            out.setdefault(item.size, []).append(item)
        return out


def make_plan(folder: str, rep, *, batch: int, pattern: str = "**/*", size=None,
              max_size: int | None = 256, exclude: str | None = None) -> Plan:
    """The plan of inverting every image of ``folder`` under ``rep``:
    images at :func:`fitted_size`, grouped by size (sizes in order), each
    group in batches of ``min(batch, images in the group)`` slots."""
    items, skipped = [], []
    for name in list_images(folder, pattern, exclude=exclude):
        path = os.path.join(folder, *name.split("/"))
        try:
            source = header_size(path)
        except ValueError as err:
            warnings.warn(f"{err}; skipped", stacklevel=2)
            skipped.append(name)
            continue
        items.append(Item(name, path, fitted_size(source, input_size=rep.input_size,
                                                  fixed=size, max_size=max_size)))
    plan = Plan(tuple(items), (), tuple(skipped))
    batches = []
    for shape, group in plan.groups().items():
        for index, slots in enumerate(batch_slots(len(group), batch)):
            batches.append(Batch(shape, index, tuple(group[i] for i in slots)))
    return dataclasses.replace(plan, batches=tuple(batches))


def assign_batches(batches: Sequence[Batch], count: int, *, iterations: int,
                   samples: int = 1) -> list[int]:
    """The process of each batch (:func:`jinvert.distributed.assign`): a
    batch costs its pixels × slots × samples × iterations, and a size's
    first batch on a process its compilation too (:data:`COMPILE_S`,
    :data:`PIXEL_ITERATION_S`)."""
    costs = [PIXEL_ITERATION_S * b.size[0] * b.size[1] * len(b.items) * samples * iterations
             for b in batches]
    return distributed.assign(costs, [b.size for b in batches], count, setup_cost=COMPILE_S)
