"""Write tests/golden/engine_golden.npz: short runs of the inversion engine at
the paper's defaults, which tests/test_engine_golden.py pins the engine to.

The pins were first written on main at 1d44ae4 (the ``optimize._run``
engine, per-stage ``optax.sgd`` states); every engine since reproduced them
bit for bit on the CPU until issue 28 compiled HOG's ``rep(x)`` (the
photo's code), which moved the stored codes by up to 1.5e-7 of their
largest value and the images by float rounding (up to 1.7e-7 relative);
they were rewritten then by this script. It makes the same runs through
today's public API, so the file can be regenerated (and checked) at any
commit:

    JAX_PLATFORMS=cpu python tests/golden/make_engine_golden.py           # rewrite the file
    JAX_PLATFORMS=cpu python tests/golden/make_engine_golden.py --check   # compare, write nothing

``--check`` exits 1 unless every array equals the stored one bit for bit
(tests/test_engine_golden.py runs :func:`compute` the same way).

Bits are a property of the machine as well as of the code: XLA:CPU compiles
for the host's vector instructions (AVX2, AVX-512, ...), and a different
instruction set sums in another order. So the file is written with the
fingerprint of the machine that wrote it (:func:`machine`, stored beside it in
engine_golden.json); the tests compare bit for bit on a machine with the same
fingerprint and to float32 rounding elsewhere. The pins were rewritten on
2026-12-02 on an AVX-512 host by the code of aec869d (which reproduced the
earlier engines' bits on that host), after CI machines with other
instruction sets had disagreed with them in the last bits.
"""

import argparse
import dataclasses
import json
import os
import platform
import re
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))
import jinvert  # noqa: E402
from jinvert import images  # noqa: E402
from jinvert.experiments import common  # noqa: E402
from _toy import toy_image, toy_rep  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine_golden.npz")
MACHINE = OUT.replace(".npz", ".json")

# The CPU features that change what XLA:CPU (through LLVM) emits.
_VECTOR_FLAGS = re.compile(r"^(sse|ssse|avx|fma|f16c|amx|bmi)")


def machine() -> dict:
    """What decides the engine's bits on a CPU: the jaxlib version, the
    host's vector instruction set (from /proc/cpuinfo) and its core count
    (XLA splits some work by threads)."""
    import jaxlib
    flags = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = sorted(x for x in line.split(":", 1)[1].split()
                                   if _VECTOR_FLAGS.match(x))
                    break
    except OSError:                      # not Linux: the architecture only
        flags = [platform.machine()]
    return {"jaxlib": jaxlib.__version__, "cpu_flags": flags, "cpus": os.cpu_count()}


def written_here(path: str = MACHINE) -> bool:
    """Whether the stored pins were written on a machine like this one (the
    same :func:`machine`), where they must hold bit for bit."""
    try:
        with open(path) as f:
            return json.load(f) == machine()
    except OSError:
        return False


def vmapped_hog():
    """CNN-HOG (27 channels) with its samples vmapped, as the pins were
    written (on the CPU HOG now runs them one after another by default)."""
    return dataclasses.replace(jinvert.hog(texture=False), cpu_batching="vmap")


def compute() -> dict:
    """The pinned runs: name -> array (see the comments for each run)."""
    photo = np.asarray(images.load_image(), np.float32)            # 512×512×3 in [0, 1]
    rep = vmapped_hog()
    crop_a = photo[40:72, 100:140]                                # 32×40
    crop_b = photo[200:232, 60:100]
    xa, xb = np.asarray(rep.preprocess(crop_a)), np.asarray(rep.preprocess(crop_b))
    ca, cb = np.asarray(rep(xa)), np.asarray(rep(xb))
    # The codes are stored too: the pinned runs start from them.
    out = {"hog_code_a": ca, "hog_code_b": cb}

    # 1. HOG at the paper's settings but a short schedule: 2 samples, 3 stages.
    r = jinvert.invert(rep, ca, shape=xa.shape[:2], key=jax.random.PRNGKey(0), samples=2,
                       config=rep.defaults.replace(stages=(4, 3, 3)))
    out["hog_images"] = np.asarray(r.images)
    out["hog_total"] = np.asarray(r.history["total"])

    # 2. A batch of two codes with one key per code (experiments.common).
    config = common.config_for(rep, iterations=6)                 # the schedule rescaled
    keys = jnp.stack([common.image_key(jax.random.PRNGKey(3), n) for n in ("a", "b")])
    imgs, _, energy = common.invert_batch(rep, np.stack([ca, cb]), keys, config=config,
                                          samples=1, shape=xa.shape)
    out["batch_stages"] = np.asarray(config.stages)
    out["batch_images"] = imgs
    out["batch_energy"] = energy

    # 3. The toy representation with its own defaults, a mask and an empty stage.
    trep = toy_rep()
    x0 = toy_image((16, 16, 1))
    code = np.asarray(trep.apply(jnp.asarray(x0)))
    mask = np.zeros(code.shape, bool)
    mask[1:5, 1:6] = True
    r = jinvert.invert(trep, code, shape=(16, 16), key=jax.random.PRNGKey(5), samples=2,
                       mask=mask, config=trep.defaults.replace(stages=(5, 0, 4, 3)))
    out["toy_images"] = np.asarray(r.images)
    out["toy_total"] = np.asarray(r.history["total"])
    return out


def differences(new: dict, path: str = OUT) -> list[str]:
    """Names whose arrays in ``new`` differ from the file at ``path`` in any
    bit (shape, dtype or value), or are missing on either side."""
    stored = np.load(path)
    names = sorted(set(new) | set(stored.files))
    return [n for n in names
            if n not in new or n not in stored.files
            or np.asarray(new[n]).dtype != stored[n].dtype
            or np.asarray(new[n]).shape != stored[n].shape
            or np.asarray(new[n]).tobytes() != stored[n].tobytes()]


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--check", action="store_true",
                        help="compare with the stored file bit for bit; write nothing")
    args = parser.parse_args(argv)
    out = compute()
    if args.check:
        bad = differences(out)
        print("engine goldens: " + ("identical" if not bad else "differ in " + ", ".join(bad)))
        if bad and not written_here():
            print("(the pins were written on another machine, see engine_golden.json: "
                  "there they hold only to float32 rounding)")
        return 1 if bad else 0
    np.savez_compressed(OUT, **out)
    with open(MACHINE, "w") as f:
        json.dump(machine(), f, indent=1)
        f.write("\n")
    print(OUT, os.path.getsize(OUT), "bytes;", {k: v.shape for k, v in out.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
