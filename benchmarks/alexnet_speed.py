"""Seconds per inversion iteration of AlexNet (CNN-A) layers: jinvert vs PyTorch.

For fc8, pool5 and conv3 at 227×227, with 1 and 8 reconstructions at once,
times one iteration of the paper's loop (value and gradient of
||Φ(σu) − Φ0||²/||Φ0||² + λα·Σ|u|^α + λV·V^β(u), then the momentum update)
in jinvert (``jinvert.invert``: vmap, one jitted step per iteration) and in plain PyTorch
(eager, same random weights of the real shapes, same objective and update),
in the same run, and prints a table with the ratio torch/jinvert (> 1: jinvert
is faster).

    python benchmarks/alexnet_speed.py [--iterations 10] [--layers fc8,pool5,conv3]
                                       [--samples 1,8] [--threads N]

Both loops are timed alike (``benchmarks/timing.py``): seconds per
iteration from the difference of runs of 2n and n iterations, after one run
of each, so compilation (reported apart for jinvert), jinvert's fixed cost
per call (reported too) and PyTorch's warm-up are left out. Default run: a
few minutes on a 2-core CPU. ``benchmarks/gpu.py`` runs this comparison and
more (torch.compile, HOG, DSIFT, EfficientNet, memory) on a GPU.
"""

from __future__ import annotations

import argparse
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402

from jinvert.representations import alexnet as A  # noqa: E402
from timing import jinvert_run, per_iteration  # noqa: E402


def jinvert_seconds(rep, code, samples: int, iterations: int) -> tuple[float, float, float]:
    """(seconds per iteration, fixed seconds per call, compile seconds) of
    ``jinvert.invert`` (see :func:`timing.per_iteration`)."""
    t = per_iteration(jinvert_run(rep, code, samples=samples), iterations)
    return t.iteration, t.fixed, t.first


def torch_seconds(params, layer: str, x0: np.ndarray, samples: int, iterations: int,
                  config) -> float:
    """Seconds per iteration of the same loop in eager PyTorch
    (``torch_inversion.TorchInversion`` over ``torch_features.alexnet``)."""
    import torch

    import torch_features
    from torch_inversion import TorchInversion

    loop = TorchInversion(torch_features.alexnet(params, layer),
                          torch.from_numpy(np.array(x0)).permute(2, 0, 1).contiguous(),
                          config, samples)
    return per_iteration(loop.seconds, iterations).iteration


def main(argv=None) -> None:
    """Run the benchmark and print the table (seconds per iteration)."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--iterations", type=int, default=10)
    parser.add_argument("--layers", default="fc8,pool5,conv3")
    parser.add_argument("--samples", default="1,8")
    parser.add_argument("--threads", type=int, default=None,
                        help="torch threads (default: torch's own choice)")
    args = parser.parse_args(argv)

    import torch
    if args.threads:
        torch.set_num_threads(args.threads)
    params = A.random_params(jax.random.PRNGKey(0), "caffe-ref", bias=0.1)
    img = np.random.default_rng(0).random((227, 227, 3)).astype(np.float32)
    print(f"jax {jax.__version__} ({jax.default_backend()}), torch {torch.__version__} "
          f"({torch.get_num_threads()} threads), {os.cpu_count()} CPUs; "
          f"{args.iterations} iterations per measurement; random CaffeNet weights")
    print(f"{'layer':8s} {'samples':>7s} {'jinvert s/it':>13s} {'torch s/it':>11s} "
          f"{'torch/jinvert':>14s} {'jax fixed s':>12s} {'jax compile s':>14s}")
    for layer in args.layers.split(","):
        rep = A.alexnet(params, layer)
        x0 = np.asarray(rep.preprocess(img))
        code = np.asarray(rep.apply(jnp.asarray(x0)))
        for samples in (int(s) for s in args.samples.split(",")):
            js, fixed_s, compile_s = jinvert_seconds(rep, code, samples, args.iterations)
            ts = torch_seconds(params, layer, x0, samples, args.iterations,
                               rep.defaults.sized(x0.shape, rep.sigma))
            print(f"{layer:8s} {samples:7d} {js:13.4f} {ts:11.4f} {ts / js:14.2f} "
                  f"{fixed_s:12.2f} {compile_s:14.1f}", flush=True)


if __name__ == "__main__":
    main()
