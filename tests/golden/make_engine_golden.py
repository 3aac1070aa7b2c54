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
"""

import argparse
import dataclasses
import os
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
        return 1 if bad else 0
    np.savez_compressed(OUT, **out)
    print(OUT, os.path.getsize(OUT), "bytes;", {k: v.shape for k, v in out.items()})
    return 0


if __name__ == "__main__":
    sys.exit(main())
