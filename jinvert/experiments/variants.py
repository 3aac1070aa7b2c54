"""Table 1's variants: the paper's method and the best options beyond it.

``docs/priors.md`` (``benchmarks/priors.py``, 6 photos, 400 iterations)
found two options beyond the paper that lower Table 1's error in the paper's
own metric (docs/results.md: by reaching a lower energy of eq. 3, with
fainter pictures): optimising in a 1/f-scaled Fourier basis
(:func:`jinvert.parameterizations.fourier`), and that basis with Adam in
place of the paper's SGD. ``jinvert reproduce table1 --variant`` runs them
beside the paper's settings, on the same photos and random keys, with
every other setting the paper's (λα, α, λV, β, the four stages with tenfold
learning-rate drops):

* ``paper``: pixels, SGD with momentum 0.9 from 0.004 (the paper);
* ``fourier``: the Fourier basis, the same SGD from
  :data:`FOURIER_LEARNING_RATE` (the paper's 0.004 diverges in this basis);
* ``fourier-adam``: the Fourier basis, Adam (β1 = 0.9, one state for all
  stages, the rate ÷ 10 at each stage: ``Config(update_rule="adam")``) from
  :data:`FOURIER_ADAM_LEARNING_RATE` per step.

The two rates were tuned on HOG, 3 photos, 200 iterations (docs/priors.md),
i.e. on scikit-image's photos, not on the ILSVRC images Table 1 reports.
"""

from __future__ import annotations

from jinvert.config import PAPER_VALUES, Config
from jinvert.parameterizations import fourier

#: The variants :func:`invert_options` knows, the paper's first.
VARIANTS = ("paper", "fourier", "fourier-adam")

#: SGD's first learning rate in the Fourier basis (the paper's 0.004 diverges).
FOURIER_LEARNING_RATE = 4e-4

#: Adam's first step in the Fourier basis, per parameter per step, at the
#: image's own size (what ``optax.adam`` was given in docs/priors.md).
FOURIER_ADAM_LEARNING_RATE = 1e-3

#: One phrase per variant beyond the paper, for reports.
DESCRIPTIONS = {
    "paper": "the paper's pixels and SGD",
    "fourier": f"fourier = the 1/f-scaled Fourier basis, the paper's SGD from "
               f"{FOURIER_LEARNING_RATE:g}",
    "fourier-adam": f"fourier-adam = the Fourier basis with Adam from "
                    f"{FOURIER_ADAM_LEARNING_RATE:g} per step, ÷ 10 at each of the paper's "
                    f"stages",
}


def invert_options(name: str, config: Config, shape, *,
                   learning_rate: float | None = None) -> dict:
    """The keyword arguments of :func:`jinvert.invert` for variant ``name``.

    Args:
      name: one of :data:`VARIANTS`.
      config: the paper's settings for the representation (schedule already
        rescaled with ``with_iterations`` if wanted; ``sigma`` unset).
      shape: ``(H, W, C)`` of the reconstructions.
      learning_rate: the variant's first rate (default its constant above);
        ignored for ``paper``.

    Returns:
      ``{"config": Config, "parameterization": None | Fourier}``.

    Raises:
      ValueError: an unknown name.
    """
    if name not in VARIANTS:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    if name == "paper":
        return {"config": config, "parameterization": None}
    if name == "fourier":
        rate = FOURIER_LEARNING_RATE if learning_rate is None else float(learning_rate)
        return {"config": config.replace(learning_rate=rate), "parameterization": fourier()}
    rate = FOURIER_ADAM_LEARNING_RATE if learning_rate is None else float(learning_rate)
    # Config.sized divides an Adam rate by sqrt(n / PAPER_VALUES) to keep its
    # step in input units across sizes; this rate is a step per Fourier
    # coefficient at the image's own size, so it is set before that division.
    h, w, c = (int(s) for s in shape)
    scale = (h * w * c / PAPER_VALUES) ** 0.5
    return {"config": config.replace(update_rule="adam", learning_rate=rate * scale),
            "parameterization": fourier()}
