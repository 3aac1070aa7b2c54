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

Times exclude compilation (jinvert is run once beforehand with the same
settings and the compile time is reported separately), jinvert's fixed cost
per call (reported separately too) and PyTorch's first iteration. Default
run: a few minutes on a 2-core CPU.
"""

from __future__ import annotations

import argparse
import os
import time

import jax
import jax.numpy as jnp
import numpy as np

from jinvert.representations import alexnet as A


def jinvert_seconds(rep, code, samples: int, iterations: int) -> tuple[float, float, float]:
    """(seconds per iteration, fixed seconds per call, compile seconds) of
    ``jinvert.invert``.

    Per iteration: the difference between calls of 2n and n iterations,
    divided by n (what the PyTorch loop is timed on). Fixed: what a call
    costs beyond its iterations (drawing the start, the codes of the
    results, the transfers). Compile: the first call's excess.
    """
    from jinvert import invert

    def run(n: int) -> float:
        t0 = time.perf_counter()
        jax.block_until_ready(invert(rep, code, key=jax.random.PRNGKey(0), samples=samples,
                                     config=rep.defaults.replace(stages=(n,)),
                                     progress=False).images)
        return time.perf_counter() - t0

    first = run(iterations)
    short = min(run(iterations) for _ in range(2))
    long = min(run(2 * iterations) for _ in range(2))
    per_iteration = max(1e-9, (long - short) / iterations)
    fixed = max(0.0, short - iterations * per_iteration)
    return per_iteration, fixed, max(0.0, first - short)


def torch_seconds(params, layer: str, x0: np.ndarray, samples: int, iterations: int,
                  config, sigma: float) -> float:
    """Seconds per iteration of the same loop in eager PyTorch."""
    import torch
    F = torch.nn.functional
    convs = A._CONVS["caffe-ref"]
    weights = {n: (torch.from_numpy(np.array(p["kernel"]).transpose(3, 2, 0, 1).copy()),
                   torch.from_numpy(np.array(p["bias"]))) for n, p in params.items()}
    stop = A.canonical_layer(layer)

    def phi(x):  # (N, 3, H, W) -> code
        for name in A.LAYERS:
            if name in convs:
                k, s, pd, _, _, g = convs[name]
                x = F.conv2d(x, *weights[name], stride=s, padding=pd, groups=g)
            elif name.startswith("relu"):
                x = F.relu(x)
            elif name.startswith("mpool"):
                x = F.max_pool2d(x, 3, 2, ceil_mode=True)
            else:
                x = F.local_response_norm(x, 5, alpha=1e-4, beta=0.75, k=1.0)
            if name == stop:
                return x
        raise AssertionError

    with torch.no_grad():
        ref = phi(torch.from_numpy(np.array(x0)).permute(2, 0, 1)[None].contiguous())
        ref_norm2 = (ref ** 2).sum()
    la, a, lv, b = config.lambda_alpha, config.alpha, config.lambda_tv, config.beta
    lr, mu = config.learning_rate, config.momentum
    gen = torch.Generator().manual_seed(0)
    u = torch.randn(samples, 3, 227, 227, generator=gen)
    u = u / u.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
    u.requires_grad_(True)
    v = torch.zeros_like(u)

    def step():
        nonlocal v
        code = phi(sigma * u)
        data = ((code - ref) ** 2).flatten(1).sum(1) / ref_norm2
        dx = torch.cat([u[..., :, 1:], u[..., :, -1:]], dim=-1) - u
        dy = torch.cat([u[..., 1:, :], u[..., -1:, :]], dim=-2) - u
        tv = ((dx * dx + dy * dy) ** (b / 2)).flatten(1).sum(1)
        energy = (data + la * (u.abs() ** a).flatten(1).sum(1) + lv * tv).sum()
        (g,) = torch.autograd.grad(energy, u)
        with torch.no_grad():
            v = mu * v - lr * g
            u.add_(v)

    step()  # warm-up (allocator, oneDNN primitive caches)
    t0 = time.perf_counter()
    for _ in range(iterations):
        step()
    return (time.perf_counter() - t0) / iterations


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
                               rep.defaults, rep.sigma)
            print(f"{layer:8s} {samples:7d} {js:13.4f} {ts:11.4f} {ts / js:14.2f} "
                  f"{fixed_s:12.2f} {compile_s:14.1f}", flush=True)


if __name__ == "__main__":
    main()
