"""Named settings: the CVPR 2015 recipe and the IJCV 2016 one.

``recipe(rep, "cvpr")`` is ``rep.defaults``, the settings of the CVPR paper
(eq. 3: α-norm and V^β priors, SGD with momentum and tenfold drops).

``recipe(rep, "ijcv")`` is our reading of Mahendran & Vedaldi, "Visualizing
deep convolutional neural networks using natural pre-images" (IJCV 2016),
which poses inversion, activation maximisation and caricatures as

    C · ℓ(Φ(x), Φ0) + R_B(x) / (HW·B^α) + R_TV(x) / (HW·V^β)

with

* R_B the *bounded-range* regulariser Σ_pixels ||x_pixel||^α (the norm of
  each pixel's colour vector, α = 6), which keeps pixels within about ±B.
  The IJCV paper uses B ≈ 160 for Caffe's mean-subtracted input (values in
  about ±128): 1.25 times the pixel range. We take B = 1.25 ·
  ``rep.pixel_range``: 160 grey levels for HOG/DSIFT (input 255·g − 128),
  1.25 for EfficientNet-Lite0 (input (255·x − 127)/128);
* R_TV = V^β with β = 2, normalised by V = B / 6.5 (the IJCV paper's typical
  gradient magnitude of a natural image);
* jitter: the image the data term sees is shifted at random at every step
  (``Config.jitter``): 1 pixel for the shallow representations, 4 for CNNs
  (our choice; see below);
* an adaptive step: Adam with the representation's stages (the learning rate
  ÷ 10 at each) from 1e-3 in u = x/σ per step (:func:`jinvert.maximize`
  uses 1e-4) (``update_rule="adam"``).

In the normalised space u = x/σ of this library (x = σu, σ for the paper's
227 × 227 × 3 values, converted to the image size by
:meth:`jinvert.Config.sized`), dividing the energy by C gives the weights

    λ_range = (σ/B)^α / (HW·C),   λV = (σ/V)^β / (HW·C),   HW = 227².

C, the data term's weight, is not fixed by what we could establish of the
paper's text for our networks; by default we choose it so that λV equals the
representation's CVPR λV (``rep.defaults.lambda_tv``): C = (σ/V)²/(HW·λV).
The IJCV recipe then differs from the CVPR one by the bounded range in place
of the α-norm (with the IJCV ratio between the two priors), the jitter and
the adaptive step. Where we approximated: the value of C per layer, the
jitter amounts, the Adam step as the "adaptive step", and no hard clipping
of pixels beyond B. Measured against the CVPR recipe in docs/results.md.
"""

from __future__ import annotations

from jinvert.config import PAPER_VALUES, Config

#: The recipes :func:`recipe` knows.
RECIPES = ("cvpr", "ijcv")

#: IJCV: B is this many times the input's pixel range (160 for ±128 inputs).
IJCV_RANGE_FACTOR = 1.25
#: IJCV: V = B / 6.5, the typical gradient of a natural image.
IJCV_GRADIENT_FACTOR = 6.5
#: Adam's first learning rate in units of u = x/σ per step.
IJCV_LEARNING_RATE = 1e-3
#: Jitter in pixels: shallow representations (any input size) and CNNs.
IJCV_JITTER_SHALLOW, IJCV_JITTER_CNN = 1, 4


def recipe(rep, name: str = "cvpr", *, data_weight: float | None = None,
           lambda_tv: float | None = None, jitter: int | None = None) -> Config:
    """The settings of a named recipe for ``rep`` (a :class:`jinvert.Config`).

    Args:
      rep: a :class:`jinvert.Representation` (its ``defaults``, ``sigma``,
        ``pixel_range``, ``input_size``).
      name: ``"cvpr"`` (``rep.defaults``) or ``"ijcv"`` (see the module notes).
      data_weight: C of the IJCV energy (default: the value that gives
        λV = ``lambda_tv``); larger trusts the data term more.
      lambda_tv: the λV to keep (default ``rep.defaults.lambda_tv``, the
        CVPR value): for "ijcv" it fixes C when ``data_weight`` is not
        given (the bounded range's weight follows), for "cvpr" it replaces
        λV.
      jitter: pixels of random shift (default 1 for HOG/DSIFT-like
        representations of any size, 4 for fixed-size CNNs).

    Returns:
      a Config with the schedule of ``rep.defaults`` (rescale it with
      ``.with_iterations``).

    Raises:
      ValueError: an unknown name, or a data weight ≤ 0.
    """
    if name not in RECIPES:
        raise ValueError(f"unknown recipe {name!r}; known: {', '.join(RECIPES)}")
    base = rep.defaults
    if name == "cvpr":
        if data_weight is not None:
            raise ValueError("data_weight belongs to the ijcv recipe")
        return base.replace(jitter=jitter, lambda_tv=lambda_tv)
    hw = PAPER_VALUES // 3
    bound = IJCV_RANGE_FACTOR * float(rep.pixel_range)
    gradient = bound / IJCV_GRADIENT_FACTOR
    alpha, beta = 6.0, 2.0
    tv_unit = (rep.sigma / gradient) ** beta / hw
    if data_weight is None:
        keep = base.lambda_tv if lambda_tv is None else float(lambda_tv)
        data_weight = tv_unit / keep if keep > 0 else 1.0
    elif lambda_tv is not None:
        raise ValueError("give data_weight or lambda_tv, not both")
    if not float(data_weight) > 0:
        raise ValueError(f"data_weight must be positive, got {data_weight!r}")
    if jitter is None:
        jitter = IJCV_JITTER_SHALLOW if rep.input_size is None else IJCV_JITTER_CNN
    return base.replace(
        lambda_alpha=0.0, alpha=alpha, beta=beta,
        lambda_range=(rep.sigma / bound) ** alpha / (hw * data_weight),
        lambda_tv=tv_unit / data_weight, jitter=int(jitter),
        update_rule="adam", learning_rate=IJCV_LEARNING_RATE, momentum=0.9)
