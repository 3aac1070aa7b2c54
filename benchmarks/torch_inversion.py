"""The paper's inversion loop in PyTorch: eq. 3 and ``paper_sgd``, for speed
comparisons with ``jinvert.invert``.

What runs is what ``jinvert.invert`` runs with the paper's settings: on
u = x/σ (``samples`` of them, shape ``(S, C, H, W)``, each starting from
Gaussian noise of unit norm),

    E(u) = ||Φ(σu) − Φ0||²/||Φ0||² + λα·Σ|u|^α + λV·Σ((∂x u)² + (∂y u)²)^(β/2)

(:mod:`jinvert.objective`: forward differences with the last row/column
replicated, |u|^α as an integer power when α is an integer), its gradient
by autograd, then the momentum step of :func:`jinvert.paper_sgd`
(m ← g + μm, u ← u − lr·m; lr divided by 10 and m zeroed at each stage).
Σ and λ come from a :class:`jinvert.Config` already sized to the image
(``config.sized(shape, rep.sigma)``), as ``invert`` uses it.

``compile_mode`` other than ``None`` wraps E in ``torch.compile`` (its
backward is compiled with it, by AOTAutograd) and the momentum step in a
second compiled function.
"""

from __future__ import annotations

import time

import torch


def energy_terms(phi, u, reference, reference_norm2, *, sigma, lambda_alpha, alpha,
                 lambda_tv, beta):
    """The terms of eq. 3 per image: ``{"data", "alpha", "tv", "total"}`` of
    ``(S,)`` tensors, the priors with their λ.

    Args:
      phi: Φ of a batch, ``(S, C, H, W) -> (S, *code)``.
      u: ``(S, C, H, W)`` normalised images x/σ.
      reference: Φ0, ``(1, *code)``; reference_norm2: ||Φ0||², a scalar tensor.
      sigma, lambda_alpha, lambda_tv: floats; alpha, beta: the exponents.
    """
    code = phi(sigma * u)
    data = ((code - reference) ** 2).flatten(1).sum(1) / reference_norm2
    a = u.abs()
    if float(alpha).is_integer() and alpha >= 2:
        powered = a ** int(alpha)
    else:
        nonzero = a > 0
        powered = torch.where(nonzero, torch.where(nonzero, a, torch.ones_like(a)) ** alpha,
                              torch.zeros_like(a))
    dx = torch.cat([u[..., :, 1:], u[..., :, -1:]], dim=-1) - u
    dy = torch.cat([u[..., 1:, :], u[..., -1:, :]], dim=-2) - u
    s = dx * dx + dy * dy
    if beta == 2:
        tv = s
    else:
        positive = s > 0
        tv = torch.where(positive, torch.where(positive, s, torch.ones_like(s)) ** (beta / 2),
                         torch.zeros_like(s))
    terms = {"data": data, "alpha": lambda_alpha * powered.flatten(1).sum(1),
             "tv": lambda_tv * tv.flatten(1).sum(1)}
    terms["total"] = terms["data"] + terms["alpha"] + terms["tv"]
    return terms


def _momentum_step(u, m, g, lr: float, mu: float):
    m.mul_(mu).add_(g)
    u.sub_(lr * m)


class TorchInversion:
    """The paper's loop for one code in PyTorch (mutable: the iterate lives here).

    Args:
      phi: Φ of a batch in torch, ``(N, C, H, W) -> (N, *code)``.
      x0: the image whose code is inverted, ``(C, H, W)`` tensor in the
        input space, on the device.
      config: a :class:`jinvert.Config` sized to the image (``sigma`` set).
      samples: reconstructions at once.
      compile_mode: ``None`` (eager) or a ``torch.compile`` mode
        (``"default"``, ``"reduce-overhead"``, ``"max-autotune"``…).
      start: optional ``(samples, C, H, W)`` starting u (default: unit-norm
        Gaussian noise from torch's generator seeded with ``seed``).
    """

    def __init__(self, phi, x0, config, samples: int, *, compile_mode=None, start=None,
                 seed: int = 0):
        if config.sigma is None:
            raise ValueError("config must be sized to the image (config.sized(shape, sigma))")
        self.config = config
        self.device = x0.device
        with torch.no_grad():
            self.reference = phi(x0[None])
            self.reference_norm2 = (self.reference ** 2).sum()
        if start is None:
            generator = torch.Generator(device=self.device).manual_seed(seed)
            start = torch.randn((samples,) + tuple(x0.shape), generator=generator,
                                device=self.device)
            start = start / start.flatten(1).norm(dim=1).view(-1, 1, 1, 1)
        self.u = start.detach().clone().to(self.device).requires_grad_(True)
        self.m = torch.zeros_like(self.u)
        settings = dict(sigma=config.sigma, lambda_alpha=config.lambda_alpha,
                        alpha=config.alpha, lambda_tv=config.lambda_tv, beta=config.beta)

        def energy(u):
            return energy_terms(phi, u, self.reference, self.reference_norm2,
                                **settings)["total"].sum()

        self.terms = lambda u: energy_terms(phi, u, self.reference,  # noqa: E731
                                            self.reference_norm2, **settings)
        self._energy, self._step = energy, _momentum_step
        if compile_mode is not None:
            self._energy = torch.compile(energy, mode=compile_mode)
            self._step = torch.compile(_momentum_step, mode=compile_mode)

    def iterate(self, iterations: int, learning_rate: float) -> None:
        """``iterations`` steps at one learning rate, from zero momentum (one stage)."""
        mu = float(self.config.momentum)
        self.m.zero_()
        for _ in range(iterations):
            (g,) = torch.autograd.grad(self._energy(self.u), self.u)
            with torch.no_grad():
                self._step(self.u, self.m, g, learning_rate, mu)

    def run(self, stages=None) -> torch.Tensor:
        """The whole schedule (default ``config.stages``): stage k at
        ``learning_rate·0.1**k``, momentum restarted. Returns the images
        x = σu, ``(samples, C, H, W)``."""
        for k, n in enumerate(self.config.stages if stages is None else stages):
            self.iterate(n, self.config.learning_rate * 0.1 ** k)
        return self.config.sigma * self.u.detach()

    def synchronize(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.synchronize(self.device)

    def seconds(self, iterations: int) -> float:
        """Wall seconds of ``iterations`` steps of the first stage, device
        work finished (a ``run`` for :func:`timing.per_iteration`)."""
        self.synchronize()
        t0 = time.perf_counter()
        self.iterate(iterations, self.config.learning_rate)
        self.synchronize()
        return time.perf_counter() - t0
