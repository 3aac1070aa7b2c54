"""Seconds per HOG inversion of a 227×227 grey image on this machine.

    python benchmarks/speed.py [--iterations 800] [--rep hog] [--samples 8]

Prints a table: first call (compile + run), later calls (run only), the
cost of one value-and-gradient of the objective, and samples = K against
samples = 1. The paper took about 60 s per HOG inversion on a CPU and HOGgle
2–3 s.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))

import jax  # noqa: E402
import jax.numpy as jnp  # noqa: E402
import numpy as np  # noqa: E402
from skimage import data as skdata  # noqa: E402

from jinvert import images  # noqa: E402
from jinvert import Loop, invert  # noqa: E402
from jinvert.energy import image_energy  # noqa: E402
from jinvert.registry import resolve_representation  # noqa: E402


def _timed(fn):
    start = time.perf_counter()
    out = fn()
    jax.block_until_ready(out)
    return time.perf_counter() - start, out


def main(argv=None):
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rep", default="hog")
    parser.add_argument("--iterations", type=int, default=800)
    parser.add_argument("--samples", type=int, default=8)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args(argv)

    rep = resolve_representation(args.rep)
    photo = images.resize_and_crop(images.to_grey(skdata.camera() / 255.0), (227, 227))
    x0 = rep.preprocess(photo)
    code = np.asarray(rep(x0))
    config = rep.defaults.with_iterations(args.iterations)
    stages = config.stages
    key = jax.random.PRNGKey(0)
    run = lambda k, s: invert(rep, code, shape=x0.shape, key=k, samples=s,  # noqa: E731
                              config=config, loop=Loop(progress=False)).images

    first, _ = _timed(lambda: run(key, 1))
    later = min(_timed(lambda: run(jax.random.PRNGKey(i + 1), 1))[0]
                for i in range(args.repeats))
    first_k, _ = _timed(lambda: run(key, args.samples))
    later_k = min(_timed(lambda: run(jax.random.PRNGKey(i + 1), args.samples))[0]
                  for i in range(args.repeats))

    # E of eq. 3 as invert minimises it (objective), differentiated in x.
    step = jax.jit(jax.value_and_grad(lambda x: image_energy(rep, x, jnp.asarray(code))["total"]))
    _timed(lambda: step(x0))
    grad_ms = 1e3 * min(_timed(lambda: step(x0))[0] for _ in range(5))

    total = sum(stages)
    print(f"{args.rep} inversion of a 227x227 grey image, {total} iterations {stages}, "
          f"jax {jax.__version__} on {platform.processor() or platform.machine()}, "
          f"{os.cpu_count()} CPUs ({jax.devices()[0].platform})")
    print(f"| {'measure':44s} | {'seconds':>9s} |")
    print(f"|{'-' * 46}|{'-' * 11}|")
    rows = [
        ("first call, samples=1 (compile + run)", first),
        ("compile (first call − later call)", first - later),
        ("later call, samples=1", later),
        (f"first call, samples={args.samples} (compile + run)", first_k),
        (f"later call, samples={args.samples}", later_k),
        (f"later call per sample, samples={args.samples}", later_k / args.samples),
        ("one value-and-grad of E (ms → s)", grad_ms / 1e3),
        ("per iteration inside invert, samples=1", later / total),
        ("paper (MATLAB, CPU)", 60.0),
    ]
    for name, value in rows:
        print(f"| {name:44s} | {value:9.3f} |")
    print(f"samples={args.samples} costs {later_k / later:.2f}x samples=1 "
          f"({later_k / later / args.samples:.2f}x per reconstruction)")


if __name__ == "__main__":
    main()
