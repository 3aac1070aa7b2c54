"""The paper's settings as one value (:class:`Config`).

A :class:`Config` holds the weights of eq. 3 (λα, α, λV, β, and σ once it
is fixed for an image size) and the optimiser's schedule (learning rate,
iterations per stage, momentum). It is frozen and hashable. Its defaults
are the paper's for the shallow representations (HOG, HOGb, DSIFT); each
:class:`jinvert.Representation` carries its own paper settings as a
``Config`` in ``rep.defaults``, and the paper's numbers are written here
once (CNN-A's λV bands and schedule in :mod:`jinvert.representations.alexnet`).
The optimisers a Config names live in :mod:`jinvert.optimizers`.

    config = rep.defaults.replace(lambda_tv=50.0).with_iterations(200)
    result = jinvert.invert(rep, code, key=key, config=config)
"""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import optax

from jinvert.optimizers import (PAPER_LEARNING_RATE, PAPER_MOMENTUM, PAPER_STAGES,
                                check_stages, non_negative, paper_sgd, staged_adam)

#: The update rules a :class:`Config` names (:meth:`Config.optimizer`).
UPDATE_RULES = ("sgd", "adam")

#: The number of input values the paper's σ and λ were set for: 227 × 227
#: pixels × 3 colours (CNN-A's input; σ = 27 100 is the norm of such images).
PAPER_VALUES = 227 * 227 * 3


@dataclasses.dataclass(frozen=True)
class Config:
    """The settings of one inversion: eq. 3's weights and the optimiser's schedule.

    The defaults are the paper's for HOG, HOGb and DSIFT. λV = 5 with
    β = 2 is the paper's text (Sect. 4); λα (the reference code's
    ``lambdaL2 = 8e-10``), α = 6 and the 4 × 200 schedule from 0.004 are also
    what deep-goggle's ``experiment_shallow_quantitative.m`` runs, but that
    file uses ``lambdaTV = 1`` (λV = 0.5), not the text's 5.

    Attributes:
      lambda_alpha: λα, weight of the α-norm prior Σ|u|^α (dimensionless;
        the paper's 2.16e8 is the reference code's ``lambdaL2 = 8e-10``:
        λα = lambdaL2/2 · σ^(α−2)).
      alpha: α ≥ 1 (6).
      lambda_tv: λV, weight of the V^β prior (5 for HOG/DSIFT; 0.5 / 5 / 50
        for CNN-A's layers 1–6 / 7–12 / 13–20). With β = 2, λV = lambdaTV/2.
      beta: β > 0 (2; 1 is total variation).
      learning_rate: of the first stage; divided by 10 at each next stage.
      stages: iterations per stage (4 × 200); their sum is the run's length.
      momentum: μ of SGD with momentum (0.9), reset at each stage.
      sigma: σ used for the image size at hand, in input-space units, or
        ``None`` (the default): the representation's σ (given for the
        paper's 227 × 227 × 3 values) converted to the image's size by
        :meth:`sized`, the λ with it. A number here is used as is, with the
        λ as given (no conversion).
      lambda_range: weight of the IJCV 2016 bounded-range regulariser
        Σ_pixels ||u_pixel||^α (the colour norm of each pixel, exponent
        ``alpha``); 0 (the CVPR paper) leaves it out. See :func:`jinvert.recipe`.
      jitter: shift the image the data term sees by a random (dy, dx) in
        [−jitter, jitter]² pixels at every step (IJCV 2016; 0 = the CVPR
        paper). :func:`jinvert.invert` uses it unless given ``transforms``.
      update_rule: ``"sgd"`` (the CVPR paper's :func:`paper_sgd`) or
        ``"adam"`` (an adaptive step, as the IJCV paper's: Adam with the same
        stages, the learning rate divided by 10 at each, one state).

    Raises:
      ValueError: a bad value (negative, non-finite, empty schedule…).
    """

    lambda_alpha: float = 2.16e8
    alpha: float = 6.0
    lambda_tv: float = 5.0
    beta: float = 2.0
    learning_rate: float = PAPER_LEARNING_RATE
    stages: tuple[int, ...] = PAPER_STAGES
    momentum: float = PAPER_MOMENTUM
    sigma: float | None = None
    lambda_range: float = 0.0
    jitter: int = 0
    update_rule: str = "sgd"

    def __post_init__(self):
        stages = check_stages(self.stages)
        object.__setattr__(self, "stages", stages)
        for name in ("lambda_alpha", "alpha", "lambda_tv", "beta", "learning_rate", "momentum",
                     "lambda_range"):
            object.__setattr__(self, name, non_negative(name, getattr(self, name)))
        if self.alpha < 1 or self.beta <= 0:
            raise ValueError(f"need alpha >= 1 and beta > 0, got alpha={self.alpha}, "
                             f"beta={self.beta}")
        if isinstance(self.jitter, bool) or not float(self.jitter).is_integer() \
                or self.jitter < 0:
            raise ValueError(f"jitter must be a non-negative number of pixels, got "
                             f"{self.jitter!r}")
        object.__setattr__(self, "jitter", int(self.jitter))
        if self.update_rule not in UPDATE_RULES:
            raise ValueError(f"update_rule must be one of {', '.join(UPDATE_RULES)}, got "
                             f"{self.update_rule!r}")
        if self.sigma is not None:
            try:
                sigma = float(self.sigma)
            except (TypeError, ValueError):
                sigma = float("nan")
            if not (math.isfinite(sigma) and sigma > 0):
                raise ValueError(f"sigma must be a positive number, got {self.sigma!r}")
            object.__setattr__(self, "sigma", sigma)

    @property
    def iterations(self) -> int:
        """The run's length: ``sum(stages)``."""
        return sum(self.stages)

    def replace(self, **changes) -> "Config":
        """A copy with some settings changed; a value ``None`` keeps the
        setting (so optional command-line values pass straight through).

        Raises:
          ValueError: an unknown setting (the message lists the known ones),
            or a bad value.
        """
        names = [f.name for f in dataclasses.fields(self)]
        unknown = sorted(set(changes) - set(names))
        if unknown:
            raise ValueError(f"unknown setting(s) {', '.join(unknown)}; a Config has "
                             f"{', '.join(names)}")
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def with_iterations(self, iterations: int) -> "Config":
        """The schedule scaled to ``iterations`` in total, keeping the
        proportions: ``(200, 200, 200, 200)`` at 100 gives ``(25, 25, 25, 25)``.
        The rounding remainder goes to the stages with the largest fractional
        parts (ties to the earlier), empty stages are dropped.

        Raises:
          ValueError: ``iterations < 1``.
        """
        iterations = int(iterations)
        if iterations < 1:
            raise ValueError(f"the number of iterations must be positive, got {iterations}")
        total = sum(self.stages)
        exact = [s * iterations / total for s in self.stages]
        out = [int(np.floor(e)) for e in exact]
        order = sorted(range(len(out)), key=lambda i: (-(exact[i] - out[i]), i))
        for i in order[: iterations - sum(out)]:
            out[i] += 1
        return dataclasses.replace(self, stages=tuple(s for s in out if s > 0))

    def first_stage_only(self, iterations: int) -> "Config":
        """``iterations`` at the first learning rate, as ``(n, 0, …, 0)``:
        as many stages as before, the later ones empty and never reached, so
        that a run compiles and runs the very programs a run of the full
        schedule does (paper_sgd's state holds one rate per stage). For
        timing steps and for warming up the compiler.

        Raises:
          ValueError: ``iterations < 1``.
        """
        if int(iterations) < 1:
            raise ValueError(f"the number of iterations must be positive, got {iterations}")
        return dataclasses.replace(
            self, stages=(int(iterations),) + (0,) * (len(self.stages) - 1))

    def sized(self, shape, sigma: float) -> "Config":
        """σ and the λ for an image of ``shape = (H, W, C)``, from the paper's.

        ``sigma`` is the representation's σ (``rep.sigma``), the average
        norm of natural images of 227 × 227 × 3 values (:data:`PAPER_VALUES`);
        the λ balance sums over that many values. For n = H·W·C values and
        r = n / PAPER_VALUES this returns σ' = σ·√r, λα' = λα·r^(α/2 − 1)
        (λ_range likewise), λV' = λV·r^(β/2 − 1) and, for
        ``update_rule="adam"`` only, the learning rate divided by √r (Adam
        steps u by about its learning rate per value, whatever the
        gradient's scale: this keeps its step in input units), so that the starting noise has the paper's
        amplitude per value (σ'/√n = σ/√PAPER_VALUES) and each prior the
        total weight it has on a paper-size image with the same pixel
        statistics. At 227 × 227 × 3 nothing changes. Without it a 227 × 227
        grey image would start from noise whose tails pass ±530 grey levels,
        where the α = 6 prior makes the paper's step unstable.

        A Config whose ``sigma`` is already set is returned unchanged.

        Returns:
          a Config with ``sigma`` set (input-space units).
        """
        if self.sigma is not None:
            return self
        h, w, c = (int(s) for s in shape)
        ratio = h * w * c / PAPER_VALUES
        # Adam's step is about its learning rate per value of u whatever the
        # gradient's scale: keep the step in input units the paper-size one.
        rate = self.learning_rate / ratio ** 0.5 if self.update_rule == "adam" \
            else self.learning_rate
        return dataclasses.replace(
            self, sigma=float(sigma) * ratio ** 0.5, learning_rate=rate,
            lambda_alpha=self.lambda_alpha * ratio ** (self.alpha / 2 - 1),
            lambda_tv=self.lambda_tv * ratio ** (self.beta / 2 - 1),
            lambda_range=self.lambda_range * ratio ** (self.alpha / 2 - 1))

    def optimizer(self) -> optax.GradientTransformation:
        """The optimiser of this schedule: the paper's :func:`paper_sgd`
        ``(learning_rate, stages, momentum)``, or for ``update_rule="adam"``
        :func:`staged_adam` ``(learning_rate, stages, momentum)``."""
        if self.update_rule == "adam":
            return staged_adam(self.learning_rate, self.stages, self.momentum)
        return paper_sgd(self.learning_rate, self.stages, self.momentum)
