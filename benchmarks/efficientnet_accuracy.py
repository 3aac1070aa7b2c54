"""EfficientNet-Lite0 in jinvert: ImageNet accuracy and parity with torch.

    python benchmarks/efficientnet_accuracy.py [--images DIR] [--torch-images 8] [--sigma]

Prints, for the photos of ``DIR`` (default ../shared/images/imagenet-sample-100:
100 ImageNet photos named ``<wnid>_<label>.JPEG``, one per tenth class, so the
i-th file in name order has class 10·i):

* top-1 / top-5 accuracy with jinvert's preprocessing (shorter side to 224,
  centre crop, ``(255·x − 127)/128``), and, for comparison, with the
  torchvision ImageNet mean/std normalisation, which these TF-converted
  weights were not trained with;
* the largest |logit difference| between jinvert and the same network
  written with torch ops on the same weights, with TF "SAME" padding and,
  for contrast, PyTorch's symmetric padding (needs torch);
* with ``--sigma``, σ (the mean Euclidean norm of preprocessed photos) over
  these photos and over five scikit-image photos.
"""

from __future__ import annotations

import argparse
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np

from jinvert import images
from jinvert.representations import efficientnet as E
from jinvert.representations.efficientnet_torch import torch_logits

HERE = os.path.dirname(os.path.abspath(__file__))
DEFAULT_DIR = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "images",
                                            "imagenet-sample-100"))
LABELS = os.path.normpath(os.path.join(HERE, "..", "..", "shared", "weights",
                                       "imagenet_labels.txt"))
SKIMAGE_PHOTOS = ("astronaut", "camera", "chelsea", "coffee", "rocket")

IMAGENET_MEAN = np.array([0.485, 0.456, 0.406], np.float32)
IMAGENET_STD = np.array([0.229, 0.224, 0.225], np.float32)




def topk_hits(logits, labels, k):
    top = np.argsort(-logits, axis=1)[:, :k]
    return np.mean([lab in row for lab, row in zip(labels, top)])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--images", default=DEFAULT_DIR)
    ap.add_argument("--torch-images", type=int, default=8)
    ap.add_argument("--sigma", action="store_true")
    args = ap.parse_args(argv)

    files = sorted(f for f in os.listdir(args.images) if f.lower().endswith((".jpeg", ".jpg", ".png")))
    labels = np.arange(len(files)) * 10
    names = open(LABELS).read().splitlines() if os.path.exists(LABELS) else None
    if names is not None and len(names) == 1001:
        names = names[1:]             # drop "background": the network has 1000 classes
    photos = [images.load_image(os.path.join(args.images, f)) for f in files]

    params = E.load_params()
    run = jax.jit(lambda x: E.forward(params, x, "logits"))
    ours = jnp.stack([E.preprocess(p) for p in photos])
    t0 = time.perf_counter()
    logits = np.asarray(jax.block_until_ready(run(ours)))
    dt = time.perf_counter() - t0
    crops = np.stack([images.resize_and_crop(images.to_rgb(p), E.INPUT_SIZE) for p in photos])
    tv = np.asarray(run(jnp.asarray((crops - IMAGENET_MEAN) / IMAGENET_STD)))

    print(f"EfficientNet-Lite0 (jinvert, JAX {jax.__version__}, {jax.devices()[0].platform}) "
          f"on {len(files)} photos of {args.images}")
    print(f"{'normalisation':<34}{'top-1':>8}{'top-5':>8}")
    for name, lg in (("(255x-127)/128 (jinvert, TF-Lite)", logits),
                     ("ImageNet mean/std (torchvision)", tv)):
        print(f"{name:<34}{100 * topk_hits(lg, labels, 1):>7.1f}%{100 * topk_hits(lg, labels, 5):>7.1f}%")
    print(f"forward time, batch of {len(files)} incl. jit: {dt:.1f} s")
    if names is not None:
        wrong = [(files[i], names[int(np.argmax(logits[i]))]) for i in range(len(files))
                 if np.argmax(logits[i]) != labels[i]]
        print(f"top-1 misses ({len(wrong)}): " + "; ".join(f"{f} -> {n}" for f, n in wrong[:10])
              + (" ..." if len(wrong) > 10 else ""))

    if args.torch_images > 0:
        try:
            import torch  # noqa: F401
        except ImportError:
            print("torch not installed: parity check skipped")
        else:
            from jinvert.torch_pickle import load_state_dict
            sd = load_state_dict(E.weights_path())
            n = args.torch_images
            ref = torch_logits(sd, ours[:n])
            sym = torch_logits(sd, ours[:n], symmetric=True)
            print(f"max |logit diff| vs torch ops, {n} photos, TF SAME padding: "
                  f"{np.abs(ref - logits[:n]).max():.2e} (logits up to {np.abs(ref).max():.1f})")
            print(f"  (for contrast, torch with symmetric padding differs by "
                  f"{np.abs(sym - logits[:n]).max():.2f}; top-1 "
                  f"{100 * topk_hits(torch_logits(sd, ours, symmetric=True), labels, 1):.1f}%)")

    if args.sigma:
        import skimage.data
        norms_in = [float(jnp.linalg.norm(x)) for x in ours]
        sk = [getattr(skimage.data, n)() for n in SKIMAGE_PHOTOS]
        norms_sk = [float(jnp.linalg.norm(E.preprocess(np.asarray(im, np.float32) / 255.0)))
                    for im in sk]
        print(f"sigma: {np.mean(norms_in):.1f} over {len(norms_in)} ImageNet photos "
              f"(min {np.min(norms_in):.1f}, max {np.max(norms_in):.1f}); "
              f"{np.mean(norms_sk):.1f} over scikit-image {', '.join(SKIMAGE_PHOTOS)} "
              f"({', '.join(f'{v:.0f}' for v in norms_sk)})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
