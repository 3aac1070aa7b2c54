"""The learned decoder's network and its file: code → image in one pass.

Owns :class:`ConvDecoder` (the flax network), :class:`Decoder` (the network
with its weights and scales, for one representation), the geometry of each
representation's grid (:data:`STRIDES`) and the ``.npz`` file format
(:meth:`Decoder.save`, :func:`load`, and the readers and writers that
training's checkpoints share). What decoders are for and the one shipped:
:mod:`jinvert.decoders`; how they are trained: :mod:`jinvert.decoder_training`.

The network (:class:`ConvDecoder`): the code, divided by a fixed scale,
goes through a 3 × 3 convolution to ``width`` channels and ``blocks``
residual blocks at the code's resolution, then one stage per prime factor f
of the stride (HOG's 8: 2, 2, 2; DSIFT's 15: 3, 5; EfficientNet's block9, 16: 2, 2, 2, 2) of ×f bilinear
upsampling + 3 × 3 convolution + ReLU (channels halving down to 16), and a
3 × 3 convolution to the input space's channels, multiplied by a fixed pixel
scale. The output, ``stride·h × stride·w``, is cropped or edge-padded at the
bottom and right to the requested ``(H, W)``: HOG's cell j covers pixels
[8j, 8j + 8) and a border of up to 7 pixels is left over; DSIFT's
descriptor j (every 15 pixels, 16 wide) covers [15j, 15j + 16); an
EfficientNet tap of stride s ('same' padding, ``ceil(H/s)`` cells) has its
cell j over about [s·j, s·j + s).

Network taps (``efficientnet:LAYER``, :func:`tap_geometry`): a spatial tap's
stride is measured from the network's output shape on a 224 × 224 input
(stem 2 … head 32). A vector code (``pool``, ``logits``: ``(1280,)``,
``(1000,)``) first goes through a Dense layer to a ``grid`` of
``width`` channels (7 × 7 for a 224 output: stride :data:`VECTOR_STRIDE`),
then the same residual blocks and upsampling; such a decoder makes images of
one size only (``architecture["size"]``).

File format (:meth:`Decoder.save`, :func:`load`): one ``.npz`` with one
array per parameter, named by its path (``params/Conv_0/kernel``), and
``header``, a JSON string: the representation's registry name, the
architecture, the two scales and how it was trained. Readable with NumPy and
``json`` alone. A training checkpoint is the same file with Adam's state
added (arrays ``opt/0``, ``opt/1``...).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import os
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import numpy as np

Array = jax.Array

#: The format written by :meth:`Decoder.save`; :func:`load` reads this one.
#: (Vector-code decoders add ``grid`` and ``size`` to the architecture; a
#: file without them is a convolutional decoder, as every older file is.)
FORMAT = "jinvert-decoder-1"

#: Input-space pixels of the representations' grids: HOG's cell, 8 pixels;
#: DSIFT's step between descriptors, 15 (the registry's ``dsift``).
STRIDES = {"hog": 8, "hogb": 8, "dsift": 15}


#: Families of networks with named taps whose decoders are trained on whole
#: photos with precomputed codes (:mod:`jinvert.decoder_training`).
NETWORK_FAMILIES = ("efficientnet",)

#: Input-space pixels per cell of the grid a vector code's Dense layer makes:
#: EfficientNet's last spatial stride (7 × 7 cells for a 224 × 224 output).
VECTOR_STRIDE = 32


def is_network_tap(rep_name: str) -> bool:
    """Whether ``rep_name`` is a tap of a network family
    (:data:`NETWORK_FAMILIES`, e.g. ``"efficientnet:block9"``)."""
    family, _, layer = str(rep_name).partition(":")
    return family in NETWORK_FAMILIES and bool(layer)


@functools.lru_cache(maxsize=32)
def tap_geometry(rep_name: str) -> tuple[int, tuple[int, ...]]:
    """``(stride, code_shape)`` of a network tap at its input size (224 × 224).

    The code's shape comes from ``jax.eval_shape`` of the network (no
    arithmetic): ``(h, w, K)`` for a spatial tap, whose stride is
    ``224 // h`` (stem 2, block2 4, block5 16, head 32); ``(K,)`` for a
    vector code, whose stride is :data:`VECTOR_STRIDE` (the Dense layer's
    grid). ValueError for a name that is not a network tap.
    """
    if not is_network_tap(rep_name):
        raise ValueError(f"{rep_name!r} is not a network tap ({', '.join(NETWORK_FAMILIES)}"
                         f":LAYER)")
    from jinvert.registry import resolve_representation

    rep = resolve_representation(rep_name)
    side = int(rep.input_size[0]) if rep.input_size is not None else 224
    probe = jax.ShapeDtypeStruct((1, side, side, int(rep.channels)), jnp.float32)
    shape = tuple(int(n) for n in jax.eval_shape(rep.batch_apply, probe).shape[1:])
    if len(shape) == 1:
        return VECTOR_STRIDE, shape
    if len(shape) != 3 or side % shape[0]:
        raise ValueError(f"{rep_name}: no decoder geometry for codes of shape {shape} "
                         f"at {side} × {side}")
    return side // shape[0], shape


def stride_of(rep_name: str) -> int:
    """Input-space pixels per code cell of ``rep_name`` (:data:`STRIDES`, or a
    network tap's :func:`tap_geometry`); ValueError for a representation
    without a decoder geometry."""
    if rep_name in STRIDES:
        return STRIDES[rep_name]
    if is_network_tap(rep_name):
        return tap_geometry(rep_name)[0]
    raise ValueError(f"no decoder geometry for {rep_name!r}; decoders exist for "
                     f"{', '.join(STRIDES)} and {', '.join(NETWORK_FAMILIES)}:LAYER")


def upsampling_factors(stride: int) -> tuple[int, ...]:
    """The prime factors of ``stride``, smallest first: one ×f upsampling
    stage of :class:`ConvDecoder` each (8 → (2, 2, 2), 15 → (3, 5))."""
    stride, factors, f = int(stride), [], 2
    if stride < 1:
        raise ValueError(f"stride must be a positive integer, got {stride}")
    while stride > 1:
        while stride % f == 0:
            factors.append(f)
            stride //= f
        f += 1
    return tuple(factors)


class ConvDecoder(nn.Module):
    """Code ``(N, h, w, K)`` → image ``(N, stride·h, stride·w, C)``, both
    in units scaled to about 1 (see :class:`Decoder` for the scales); with
    ``grid = (gh, gw)``, a vector code ``(N, K)`` → ``(N, stride·gh,
    stride·gw, C)``.

    Attributes:
      channels: C, the channels of the representation's input space.
      stride: pixels per code cell (HOG: 8, DSIFT: 15); one upsampling
        stage per prime factor (:func:`upsampling_factors`).
      width: channels at the code's resolution.
      blocks: residual blocks (two 3 × 3 convolutions each) at that resolution.
      grid: ``None`` for a code with a grid (the convolutional decoder of
        every older file, parameters and arithmetic unchanged); ``(gh, gw)``
        for a vector code: a Dense layer to ``gh·gw·width`` values, reshaped
        to that grid, comes first.
    """

    channels: int = 1
    stride: int = 8
    width: int = 64
    blocks: int = 2
    grid: tuple[int, int] | None = None

    @nn.compact
    def __call__(self, code: Array) -> Array:
        if self.grid is not None:
            gh, gw = self.grid
            code = nn.relu(nn.Dense(gh * gw * self.width)(code))
            code = code.reshape(code.shape[0], gh, gw, self.width)
        x = nn.relu(nn.Conv(self.width, (3, 3))(code))
        for _ in range(self.blocks):
            y = nn.relu(nn.Conv(self.width, (3, 3))(x))
            x = x + nn.Conv(self.width, (3, 3))(y)
            x = nn.relu(x)
        features = self.width
        for f in upsampling_factors(self.stride):
            n, h, w, c = x.shape
            x = jax.image.resize(x, (n, f * h, f * w, c), "bilinear")
            features = max(16, features // 2)
            x = nn.relu(nn.Conv(features, (3, 3))(x))
        return nn.Conv(self.channels, (3, 3))(x)


def _fit(images: Array, shape) -> Array:
    """Crop or edge-pad ``(N, H', W', C)`` at the bottom/right to ``shape[:2]``."""
    h, w = int(shape[0]), int(shape[1])
    images = images[:, :h, :w]
    pad_h, pad_w = h - images.shape[1], w - images.shape[2]
    if pad_h or pad_w:
        images = jnp.pad(images, ((0, 0), (0, pad_h), (0, pad_w), (0, 0)), mode="edge")
    return images


@dataclasses.dataclass(frozen=True, eq=False)
class Decoder:
    """A trained (or freshly initialised) decoder for one representation.

    Attributes:
      rep: the representation's registry name (``"hog"``, ``"hogb"``,
        ``"dsift"``: :func:`jinvert.registry.resolve_representation`).
      architecture: the :class:`ConvDecoder` fields (``channels``,
        ``stride``, ``width``, ``blocks``, and for a vector code ``grid``)
        and ``code_channels`` K (a vector code's length); for a vector code
        also ``size`` ``[H, W]``, the only output size.
      code_scale: the code is divided by it before the network (the RMS of
        the training codes).
      pixel_scale: the network's output is multiplied by it to give
        input-space values (the RMS of the training pixels, e.g. grey levels).
      params: the flax parameters (a pytree of float32 arrays).
      training: how it was trained (steps, images, seed, …), for the record.
    """

    rep: str
    architecture: dict
    code_scale: float
    pixel_scale: float
    params: Any = dataclasses.field(repr=False)
    training: dict = dataclasses.field(default_factory=dict)

    def __post_init__(self):
        arch = dict(self.architecture)
        grid = arch.get("grid")
        module = ConvDecoder(**{k: arch[k] for k in ("channels", "stride", "width", "blocks")},
                             grid=None if grid is None else tuple(int(g) for g in grid))
        object.__setattr__(self, "module", module)

    @property
    def vector(self) -> bool:
        """Whether this decoder takes vector codes ``(K,)`` (and makes images
        of one size, ``architecture["size"]``)."""
        return self.architecture.get("grid") is not None

    def __call__(self, codes, shape=None) -> Array:
        """Decode codes into input-space images, in one pass.

        Args:
          codes: one code ``(h, w, K)`` or a batch ``(B, h, w, K)``; for a
            vector-code decoder (:attr:`vector`) ``(K,)`` or ``(B, K)``.
          shape: ``(H, W)`` or ``(H, W, C)`` of the images; default
            ``(stride·h, stride·w)``, or a vector-code decoder's one size.

        Returns:
          float32 ``(H, W, C)`` or ``(B, H, W, C)`` in the representation's
          input space (HOG: grey levels 255·g − 128).

        Raises:
          ValueError: codes of another shape; for a vector-code decoder, a
            ``shape`` other than the size it was trained for.
        """
        codes = jnp.asarray(codes, jnp.float32)
        given = tuple(codes.shape)
        rank = 1 if self.vector else 3
        single = codes.ndim == rank
        if single:
            codes = codes[None]
        k = int(self.architecture["code_channels"])
        if codes.ndim != rank + 1 or codes.shape[-1] != k:
            want = f"({k},) or (B, {k})" if self.vector else f"(h, w, {k}) or (B, h, w, {k})"
            raise ValueError(f"this decoder takes codes {want} of "
                             f"{self.rep!r} as jinvert.registry.resolve_representation"
                             f"({self.rep!r}) computes them; got shape {given}")
        stride = int(self.architecture["stride"])
        if self.vector:
            size = tuple(int(s) for s in self.architecture["size"])
            if shape is not None and tuple(int(s) for s in shape)[:2] != size:
                raise ValueError(f"this {self.rep} decoder takes vector codes and makes "
                                 f"{size[0]} × {size[1]} images only (the size it was "
                                 f"trained at); asked for {tuple(shape)[:2]}")
            shape = size
        if shape is None:
            shape = (stride * codes.shape[1], stride * codes.shape[2])
        shape = tuple(int(s) for s in shape)[:2]
        images = _decode(self.module, self.params, codes, jnp.float32(self.code_scale),
                              shape)
        images = images * jnp.float32(self.pixel_scale)
        return images[0] if single else images

    def save(self, path: str | os.PathLike) -> None:
        """Write the decoder as one ``.npz`` (see the module's docstring),
        atomically (beside the target, then renamed)."""
        write_npz(path, param_arrays(self.params), self.header())

    def header(self) -> dict:
        """The JSON header: everything but the parameters."""
        return {"format": FORMAT, "rep": self.rep, "architecture": dict(self.architecture),
                "code_scale": float(self.code_scale), "pixel_scale": float(self.pixel_scale),
                "training": dict(self.training)}

    def check(self, rep) -> None:
        """Raise ``ValueError`` unless this decoder is for ``rep`` (a
        :class:`jinvert.Representation`): same name and input channels."""
        if rep.name != self.rep or int(rep.channels) != int(self.architecture["channels"]):
            raise ValueError(f"this decoder was trained for {self.rep!r} "
                             f"({self.architecture['channels']}-channel input), not for "
                             f"{rep.name!r}")


def _apply(module, params, codes: Array) -> Array:
    """The network in full float32 on every backend (convolutions and the
    bilinear upsampling's products), as HOG and DSIFT themselves are.

    Why: a HOG decoder trained on an H100 at JAX's default precision (TF32
    convolutions there) lost most of its quality on the CPU, its feature
    loss on training crops rising from about 0.13 to 0.39, while HOGb and
    DSIFT decoders trained alike moved by under 10 %. HOG's hard orientation
    bins make its code jump with small changes of the image; the decoder had
    learnt images for TF32's arithmetic. Pinned, training and decoding do
    the same arithmetic on every backend up to rounding order (not yet
    re-measured on a GPU)."""
    with jax.default_matmul_precision("highest"):
        return module.apply({"params": params}, codes)


def network_output(module, params, codes: Array, code_scale, shape) -> Array:
    """The network's output for ``codes / code_scale``, in full float32 on
    every backend, cropped or edge-padded to ``shape[:2]``: what a
    :class:`Decoder` computes and training differentiates.

    Args:
      module: a :class:`ConvDecoder`; params: its flax parameters.
      codes: ``(N, h, w, K)``; code_scale: they are divided by it first.
      shape: ``(H, W)`` or ``(H, W, C)`` of the images.

    Returns:
      float32 ``(N, H, W, C)`` in units of the pixel scale (multiply by
      :attr:`Decoder.pixel_scale` for input-space values).
    """
    return _fit(_apply(module, params, codes / code_scale), shape)


#: :func:`network_output` compiled, the shape static (what a Decoder calls).
_decode = functools.partial(jax.jit, static_argnums=(0, 4))(network_output)


def _flatten(tree) -> dict[str, np.ndarray]:
    """``{"a/b/c": array}`` of a nested dict of arrays."""
    out = {}
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        out["/".join(str(getattr(p, "key", getattr(p, "idx", p))) for p in path)] = \
            np.asarray(leaf)
    return out


def _unflatten(flat: dict[str, np.ndarray]) -> dict:
    tree: dict = {}
    for name, value in flat.items():
        node = tree
        *parents, leaf = name.split("/")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = jnp.asarray(value)
    return tree


def write_npz(path, arrays: dict, header: dict) -> None:
    """Write ``arrays`` and the JSON ``header`` as one ``.npz`` at ``path``,
    atomically (beside the target, then renamed): a decoder or checkpoint file."""
    path = os.fspath(path)
    tmp = f"{path}.partial-{os.getpid()}.npz"
    try:
        np.savez(tmp, header=np.asarray(json.dumps(header)), **arrays)
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def read_npz(path) -> tuple[dict, dict]:
    """``(header, arrays)`` of a decoder or checkpoint file, or ValueError."""
    path = os.fspath(path)
    if not os.path.exists(path):
        raise ValueError(f"decoder file not found: {path}")
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
        header = json.loads(str(arrays.pop("header")))
    except (OSError, ValueError, KeyError):
        # (NumPy's own message would suggest allow_pickle=True: never for
        # a file one did not write.)
        raise ValueError(f"{path} is not a jinvert decoder file (not a NumPy .npz archive "
                         f"with a JSON header)") from None
    if header.get("format") != FORMAT:
        raise ValueError(f"{path} is not a jinvert decoder file (format "
                         f"{header.get('format')!r}, expected {FORMAT!r})")
    return header, arrays


def param_arrays(params) -> dict[str, np.ndarray]:
    """The arrays a decoder or checkpoint file stores its flax parameters
    as, ``params/Conv_0/kernel``... (read back by :func:`saved_params`)."""
    return {f"params/{k}": v for k, v in _flatten(params).items()}


def saved_params(arrays: dict) -> dict:
    """The flax parameters of a decoder or checkpoint file's arrays (those
    named ``params/...``; a checkpoint's ``opt/...`` are Adam's state)."""
    return _unflatten({k[len("params/"):]: v for k, v in arrays.items()
                       if k.startswith("params/")})


def load(path: str | os.PathLike) -> Decoder:
    """Read a decoder written by :meth:`Decoder.save` (or a training
    checkpoint, whose optimiser state is ignored).

    Raises:
      ValueError: a missing file, or one that is not a decoder file.
    """
    header, arrays = read_npz(path)
    params = saved_params(arrays)
    return Decoder(rep=header["rep"], architecture=header["architecture"],
                   code_scale=header["code_scale"], pixel_scale=header["pixel_scale"],
                   params=params, training=header.get("training", {}))
