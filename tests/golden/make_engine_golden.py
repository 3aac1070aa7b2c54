"""Write tests/golden/engine_golden.npz: short runs of the inversion engine
as it was before issue 13 (main at 1d44ae4, the ``optimize._run`` engine),
which tests/test_engine_golden.py pins the current engine against.

Run once, from the repository root, at that commit:

    PYTHONPATH=. JAX_PLATFORMS=cpu python tests/golden/make_engine_golden.py

(It calls the old API: ``invert(..., stages=..., learning_rate=...)`` and
``experiments.common.invert_batch(rep, codes, keys, settings=...)``; it
does not run against the new engine, and need not: its output is the pin.)
"""

import os
import sys

import jax
import jax.numpy as jnp
import numpy as np

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
import jinvert  # noqa: E402
from jinvert import images  # noqa: E402
from jinvert.experiments import common  # noqa: E402
from _toy import toy_image, toy_rep  # noqa: E402

OUT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "engine_golden.npz")


def main():
    photo = np.asarray(images.load_image(), np.float32)            # 512×512×3 in [0, 1]
    rep = jinvert.hog(texture=False)
    crop_a = photo[40:72, 100:140]                                # 32×40
    crop_b = photo[200:232, 60:100]
    xa, xb = np.asarray(rep.preprocess(crop_a)), np.asarray(rep.preprocess(crop_b))
    ca, cb = np.asarray(rep(xa)), np.asarray(rep(xb))
    # The codes are stored too: the pinned runs start from them.
    out = {"hog_code_a": ca, "hog_code_b": cb}

    # 1. HOG at the paper's settings but a short schedule: 2 samples, 3 stages.
    r = jinvert.invert(rep, ca, shape=xa.shape, key=jax.random.PRNGKey(0), samples=2,
                       stages=(4, 3, 3))
    out["hog_images"] = np.asarray(r.images)
    out["hog_total"] = np.asarray(r.history["total"])

    # 2. A batch of two codes with one key per code (experiments.common).
    settings = common.settings_for(rep, iterations=6)                # (2, 2, 1, 1)... rescaled
    keys = jnp.stack([common.image_key(jax.random.PRNGKey(3), n) for n in ("a", "b")])
    imgs, codes, energy = common.invert_batch(rep, np.stack([ca, cb]), keys,
                                              settings=settings, samples=1, shape=xa.shape)
    out["batch_stages"] = np.asarray(settings["stages"])
    out["batch_images"] = imgs
    out["batch_energy"] = energy

    # 3. The toy representation with its own defaults, a mask and an empty stage.
    trep = toy_rep()
    x0 = toy_image((16, 16, 1))
    code = np.asarray(trep.apply(jnp.asarray(x0)))
    mask = np.zeros(code.shape, bool)
    mask[1:5, 1:6] = True
    r = jinvert.invert(trep, code, shape=(16, 16), key=jax.random.PRNGKey(5), samples=2,
                       stages=(5, 0, 4, 3), mask=mask)
    out["toy_images"] = np.asarray(r.images)
    out["toy_total"] = np.asarray(r.history["total"])
    np.savez_compressed(OUT, **out)
    print(OUT, os.path.getsize(OUT), "bytes;", {k: v.shape for k, v in out.items()})


if __name__ == "__main__":
    main()
