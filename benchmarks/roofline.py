"""The roofline of a measured step: XLA's own count of its work (FLOPs and
bytes accessed, from the compiled program's cost analysis) over the time it
took, against the device's peak FLOP/s and memory bandwidth.

Pure arithmetic apart from :func:`xla_cost`, which compiles a function to
read its cost. What XLA reports (JAX 0.10, checked on XLA:CPU; the GPU
backend fills the same dict from the same ``HloCostAnalysis``):
``compiled.cost_analysis()`` is a dict with ``"flops"`` (a matmul of
(m, k)·(k, n) counts 2·m·n·k), ``"bytes accessed"`` (every operand and
output of every top-level instruction, after fusion: an estimate of
memory traffic that ignores caches), ``"transcendentals"`` (exp, tanh, ...,
counted apart from the FLOPs) and per-operand entries such as ``"bytes
accessed0{}"``. A ``while`` loop (``lax.fori_loop``, ``lax.scan``) counts its
body once whatever its trip count: the cost of a chunk of K iterations is
not K times a step's, so cost the step itself.

The roofline: a step of F FLOPs and B bytes that takes t seconds achieves
F/t FLOP/s and B/t bytes/s; its arithmetic intensity is I = F/B FLOP per
byte; the device's ridge point is P/W (peak FLOP/s over peak bytes/s). A
step with I below the ridge can at best run at I·W FLOP/s (bandwidth is its
nearer bound, "memory"), above it at P ("compute"). The roofline ratio is
the achieved FLOP/s over that attainable min(P, I·W), which equals the
larger of the two fractions of peak, F/t/P and B/t/W.
"""

from __future__ import annotations

import re
from collections import Counter
from typing import NamedTuple


class Peaks(NamedTuple):
    """A device's peaks, from its maker's datasheet.

    Attributes:
      fp32_tflops: float32 on the CUDA cores (no tensor cores), TFLOP/s.
      tf32_tflops: TF32 on the tensor cores, dense (datasheets print the
        figure "with sparsity", twice this), TFLOP/s.
      gbps: memory bandwidth, GB/s (10⁹ bytes per second).
    """

    fp32_tflops: float
    tf32_tflops: float
    gbps: float


#: Known devices, matched in order by :func:`device_peaks` on the device's
#: name as CUDA gives it (JAX's ``device_kind``, PyTorch's
#: ``get_device_name``), lower-cased: every listed word must appear. Sources:
#: NVIDIA's datasheets. H100 (SXM5 / PCIe / NVL): FP32 67 / 51 / 60 TFLOP/s,
#: TF32 tensor 989 / 756 / 835 TFLOP/s with sparsity (so 494.5 / 378 /
#: 417.5 dense), HBM 3.35 / 2.0 / 3.9 TB/s. H200 (SXM / NVL): FP32 67 / 60,
#: TF32 tensor 989 / 835 with sparsity, HBM3e 4.8 TB/s. A100 (SXM4 and PCIe
#: alike): FP32 19.5, TF32 tensor 156 dense (312 with sparsity); HBM 1555
#: GB/s (40 GB), 2039 (80 GB SXM4), 1935 (80 GB PCIe). An H100 SXM reports
#: itself as "NVIDIA H100 80GB HBM3", an A100 as "NVIDIA A100-SXM4-80GB" or
#: "NVIDIA A100 80GB PCIe". A GH200 (whose GPU comes with 96 GB of HBM3 or
#: 144 GB of HBM3e) is left unknown, as is anything else (a CPU): give
#: ``--peak-tflops`` and ``--peak-gbps``.
KNOWN_PEAKS: tuple[tuple[tuple[str, ...], Peaks | None], ...] = (
    (("gh200",), None),
    (("h100", "pcie"), Peaks(51.0, 378.0, 2000.0)),
    (("h100", "nvl"), Peaks(60.0, 417.5, 3900.0)),
    (("h100",), Peaks(67.0, 494.5, 3350.0)),
    (("h200", "nvl"), Peaks(60.0, 417.5, 4800.0)),
    (("h200",), Peaks(67.0, 494.5, 4800.0)),
    (("a100", "pcie", "80gb"), Peaks(19.5, 156.0, 1935.0)),
    (("a100", "80gb"), Peaks(19.5, 156.0, 2039.0)),
    (("a100",), Peaks(19.5, 156.0, 1555.0)),
)

#: The precisions a step's products run at, as :func:`peak` takes them:
#: full float32 (HOG and DSIFT always; the networks at ``--precision
#: highest``; any CPU) and TF32 (the networks at ``--precision default`` on
#: an NVIDIA GPU).
PRECISIONS = ("fp32", "tf32")


def device_peaks(device_kind: str) -> Peaks | None:
    """The :data:`KNOWN_PEAKS` entry of ``device_kind`` (e.g. ``"NVIDIA H100
    80GB HBM3"``), or None for an unknown device (a CPU)."""
    name = device_kind.lower()
    for words, peaks in KNOWN_PEAKS:
        if all(w in name for w in words):
            return peaks
    return None


class Peak(NamedTuple):
    """The peak a step is judged against: ``flops`` FLOP/s and ``bytes``
    bytes/s (None where unknown) and ``label``, where they come from."""

    flops: float | None
    bytes: float | None
    label: str


def peak(device_kind: str, precision: str, peak_tflops: float | None = None,
         peak_gbps: float | None = None) -> Peak:
    """The peak FLOP/s and bytes/s for a step run at ``precision`` (one of
    :data:`PRECISIONS`) on ``device_kind``: ``peak_tflops`` (TFLOP/s) and
    ``peak_gbps`` (GB/s) where given, else the device's datasheet figure,
    FP32 CUDA-core or TF32 tensor-core as ``precision`` says."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {PRECISIONS}, got {precision!r}")
    known = device_peaks(device_kind)
    flops = bytes_ = None
    parts = []
    if peak_tflops is not None:
        flops = peak_tflops * 1e12
        parts.append(f"{peak_tflops:g} TFLOP/s given")
    elif known is not None:
        tflops = known.tf32_tflops if precision == "tf32" else known.fp32_tflops
        flops = tflops * 1e12
        parts.append(f"{tflops:g} TFLOP/s {precision.upper()}")
    if peak_gbps is not None:
        bytes_ = peak_gbps * 1e9
        parts.append(f"{peak_gbps:g} GB/s given")
    elif known is not None:
        bytes_ = known.gbps * 1e9
        parts.append(f"{known.gbps:g} GB/s")
    return Peak(flops, bytes_, ", ".join(parts) or f"unknown ({device_kind})")


class Roofline(NamedTuple):
    """Where a step of known work and time stands (see the module's text).

    Attributes:
      flops_per_s, bytes_per_s: achieved (work over measured time).
      intensity: FLOPs per byte accessed (None without bytes).
      flops_fraction, bytes_fraction: achieved over peak (None where the
        peak is unknown).
      ridge: the device's ridge point, peak FLOP/s over peak bytes/s.
      bound: "memory" (intensity below the ridge: bandwidth is the nearer
        roof) or "compute", None without both peaks.
      ratio: achieved FLOP/s over the attainable min(peak, intensity·bandwidth),
        i.e. the larger fraction; None where a peak is unknown.
    """

    flops_per_s: float
    bytes_per_s: float
    intensity: float | None
    flops_fraction: float | None
    bytes_fraction: float | None
    ridge: float | None
    bound: str | None
    ratio: float | None


def roofline(flops: float, bytes_accessed: float, seconds: float,
             peak_flops: float | None = None, peak_bytes: float | None = None) -> Roofline:
    """The :class:`Roofline` of a step of ``flops`` FLOPs and
    ``bytes_accessed`` bytes that took ``seconds``, against ``peak_flops``
    FLOP/s and ``peak_bytes`` bytes/s (None: unknown)."""
    if not seconds > 0:
        raise ValueError(f"seconds must be positive, got {seconds!r}")
    if flops < 0 or bytes_accessed < 0:
        raise ValueError(f"flops and bytes must be >= 0, got {flops!r}, {bytes_accessed!r}")
    flops_per_s, bytes_per_s = flops / seconds, bytes_accessed / seconds
    intensity = flops / bytes_accessed if bytes_accessed > 0 else None
    flops_fraction = flops_per_s / peak_flops if peak_flops else None
    bytes_fraction = bytes_per_s / peak_bytes if peak_bytes else None
    ridge = bound = ratio = None
    if peak_flops and peak_bytes:
        ridge = peak_flops / peak_bytes
        if intensity is not None:
            bound = "memory" if intensity < ridge else "compute"
        ratio = max(flops_fraction, bytes_fraction)
    return Roofline(flops_per_s, bytes_per_s, intensity, flops_fraction, bytes_fraction,
                    ridge, bound, ratio)


class Cost(NamedTuple):
    """XLA's count of one compiled program's work: ``flops`` and ``bytes``
    accessed (float; what its cost analysis lacks is None), and
    ``transcendentals``."""

    flops: float | None
    bytes: float | None
    transcendentals: float | None


def cost_from_analysis(analysis) -> Cost:
    """The :class:`Cost` in what ``Compiled.cost_analysis()`` returned: a
    dict (JAX 0.4.30 on, 0.10 included), a one-element list of dicts
    (older JAX), or None (a backend without cost analysis)."""
    if isinstance(analysis, (list, tuple)):
        analysis = analysis[0] if analysis else None
    analysis = analysis or {}

    def get(key):
        value = analysis.get(key)
        return None if value is None else float(value)

    return Cost(get("flops"), get("bytes accessed"), get("transcendentals"))


def xla_cost(fn, *args, **kwargs) -> Cost:
    """XLA's :class:`Cost` of ``jax.jit(fn)(*args, **kwargs)``, compiled for
    the default backend (compiles, runs nothing)."""
    import jax
    return cost_from_analysis(jax.jit(fn).lower(*args, **kwargs).compile().cost_analysis())


#: Instructions of an optimized HLO module that launch no work of their own:
#: the arguments, constants, tuples and their elements, views.
NO_KERNEL = frozenset({"parameter", "constant", "tuple", "get-tuple-element", "bitcast",
                       "after-all", "partition-id", "replica-id"})

_INSTRUCTION = re.compile(r"^\s*(?:ROOT\s+)?%?[\w.\-]+\s*=\s*(.*)$")


def _opcode(rhs: str) -> str | None:
    """The opcode of an instruction's right-hand side ``SHAPE opcode(...)``."""
    rest = rhs.lstrip()
    if rest.startswith("("):                       # a tuple shape: skip its parentheses
        depth = 0
        for i, ch in enumerate(rest):
            depth += ch == "("
            depth -= ch == ")"
            if depth == 0:
                rest = rest[i + 1:]
                break
    else:
        rest = rest.split(None, 1)[1] if " " in rest else ""
    match = re.match(r"\s*([a-z][a-z0-9\-]*)\(", rest)
    return match.group(1) if match else None


def kernels(hlo_text: str) -> Counter:
    """The instructions of the ``ENTRY`` computation of an optimized HLO
    module (``jax.jit(f).lower(...).compile().as_text()``) that do work,
    counted by opcode (``fusion``, ``custom-call``, ``convolution``, ...).

    On a GPU each is at least one kernel launch (a fusion is one kernel; a
    ``custom-call`` a cuBLAS/cuDNN call), so a step of n of them costs at
    least n launches whatever its arithmetic: where the measured time per
    iteration divided by n is a few microseconds, launches, not FLOPs or
    bytes, bound the step. A ``while`` loop counts once (its body is a
    computation of its own, not the entry's).
    """
    counts: Counter = Counter()
    inside = False
    for line in hlo_text.splitlines():
        if line.startswith("ENTRY"):
            inside = True
            continue
        if inside:
            if line.startswith("}"):
                break
            match = _INSTRUCTION.match(line)
            op = _opcode(match.group(1)) if match else None
            if op is not None and op not in NO_KERNEL:
                counts[op] += 1
    return counts
