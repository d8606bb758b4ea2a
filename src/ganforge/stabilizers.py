"""Stabilisers that act on D's inputs, on features or on weights: instance noise,
differentiable augmentation, feature matching, historical averaging, and the moving average of
G's weights.

One-sided label smoothing is a variant of D's loss: ``Loss.d_smoothed`` in ``ganforge.losses``.
The layers (minibatch discrimination, virtual batch norm, spectral norm) are in
``ganforge.nets.layers``.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ganforge.config import AUGMENT_NAMES
from ganforge.errors import ConfigError

Tensor = torch.Tensor


def noise_std(step: int, std0: float, steps: int) -> float:
    """Instance noise (Sønderby et al. 2017; Arjovsky & Bottou 2017): the std of the Gaussian
    noise added to D's real and fake inputs at ``step`` (0-based), annealed linearly from
    ``std0`` to 0 over ``steps`` steps: sigma_t = std0 max(0, 1 - t / steps)."""
    if steps <= 0:
        return 0.0
    return std0 * max(0.0, 1.0 - step / steps)


def add_noise(x: Tensor, std: float) -> Tensor:
    """x + std * n, n ~ N(0, I) of x's shape (drawn from torch's global generator)."""
    return x + std * torch.randn_like(x)


def translate(x: Tensor, shift: int) -> Tensor:
    """Each image of ``x`` ``[N, C, H, W]`` moved by its own whole number of pixels, dy and dx
    uniform in [-shift, shift], the edge pixels repeated into the space it leaves (DiffAugment's
    translation, Zhao et al. 2020). Differentiable in ``x``: a gather."""
    n, _, h, w = x.shape
    dy = torch.randint(-shift, shift + 1, (n, 1, 1), device=x.device)
    dx = torch.randint(-shift, shift + 1, (n, 1, 1), device=x.device)
    rows = (torch.arange(h, device=x.device).view(1, h, 1) - dy).clamp(0, h - 1)  # [N, H, 1]
    cols = (torch.arange(w, device=x.device).view(1, 1, w) - dx).clamp(0, w - 1)  # [N, 1, W]
    batch = torch.arange(n, device=x.device).view(n, 1, 1)
    return x.permute(0, 2, 3, 1)[batch, rows, cols].permute(0, 3, 1, 2)  # [N, H, W, C] -> back


def cutout(x: Tensor, size: int) -> Tensor:
    """Each image of ``x`` with a ``size`` x ``size`` square (its centre uniform over the
    image, clipped at the edges) set to 0, the middle of [-1, 1] (DiffAugment's cutout)."""
    n, _, h, w = x.shape
    cy = torch.randint(0, h, (n, 1, 1), device=x.device)
    cx = torch.randint(0, w, (n, 1, 1), device=x.device)
    rows = torch.arange(h, device=x.device).view(1, h, 1)
    cols = torch.arange(w, device=x.device).view(1, 1, w)
    y0, x0 = cy - size // 2, cx - size // 2  # the square's corner, maybe off the image
    inside = (rows >= y0) & (rows < y0 + size) & (cols >= x0) & (cols < x0 + size)
    return x * (~inside).unsqueeze(1).to(x.dtype)


def augment(x: Tensor, kinds: tuple[str, ...]) -> Tensor:
    """Differentiable augmentation (Zhao et al. 2020, DiffAugment) of images ``[N, C, H, W]``:
    the same random transformations for reals and fakes, in D's update and in G's, so that D
    cannot memorise a small training set and G still learns the data unaugmented. ``kinds``:
    names in ``config.AUGMENT_NAMES``: translation by up to 1/8 of the size, cutout of a
    square of half the size."""
    if x.dim() != 4:
        raise ConfigError(f"stab.augment works on images [N, C, H, W], not a batch {list(x.shape)}")
    for kind in kinds:
        if kind == "translation":
            x = translate(x, max(1, round(x.shape[-1] / 8)))
        elif kind == "cutout":
            x = cutout(x, x.shape[-1] // 2)
        else:
            names = ", ".join(AUGMENT_NAMES)
            raise ConfigError(f"stab.augment: unknown {kind!r}; choose from {names}")
    return x


def feature_matching(real_features: Tensor, fake_features: Tensor) -> Tensor:
    """Feature matching (Salimans et al. 2016, sec. 3.1): ||E f(x) - E f(G(z))||_2^2, with f an
    intermediate layer of D; features ``[N, F]`` and ``[M, F]``, the means over the batch."""
    return (real_features.mean(0) - fake_features.mean(0)).square().sum()


class HistoricalAverage(nn.Module):
    """Historical averaging (Salimans et al. 2016, sec. 3.3): the penalty
    ||theta - (1/t) sum_{i<t} theta_i||^2 on a module's parameters, the mean of every value they
    have held. The mean starts at the initial weights, so the penalty is 0 at the first step.

    A module so that its state (the mean and the count, as buffers) goes into checkpoints.
    """

    def __init__(self, module: nn.Module) -> None:
        super().__init__()
        params = [p.detach().clone() for p in module.parameters()]
        self.names = [f"mean_{i}" for i in range(len(params))]
        for name, p in zip(self.names, params, strict=True):
            self.register_buffer(name, p)
        self.count: Tensor
        self.register_buffer("count", torch.ones((), dtype=torch.float64))

    def means(self) -> list[Tensor]:
        return [getattr(self, n) for n in self.names]

    def penalty(self, module: nn.Module) -> Tensor:
        """sum over parameters of ||theta - mean||^2 (a scalar with theta's graph)."""
        terms = [
            (p - m).square().sum() for p, m in zip(module.parameters(), self.means(), strict=True)
        ]
        return torch.stack(terms).sum()

    @torch.no_grad()
    def update(self, module: nn.Module) -> None:
        """Add the module's current weights to the mean: m <- m + (theta - m) / (n + 1)."""
        n = self.count.item() + 1.0
        for p, m in zip(module.parameters(), self.means(), strict=True):
            m.add_((p.detach() - m) / n)
        self.count.add_(1.0)


def check_ema(beta: float, rampup: float) -> None:
    """Refuse, in one line, a ramp-up (``stab.ema_rampup``) without the average it shapes."""
    if rampup and not beta:
        raise ConfigError("stab.ema_rampup shapes G's moving average: set stab.ema too (0.999)")


class EMA(nn.Module):
    """An exponential moving average of G's weights (Yazıcı et al. 2019; Karras et al. 2018):
    theta_ema <- beta theta_ema + (1 - beta) theta after each G update; buffers (BatchNorm's
    running statistics) are copied. ``self.module`` is the averaged G, used for sampling.

    With ``rampup`` r > 0 the average's half-life, in steps, is at most r times the steps
    taken so far (Karras et al. 2020, StyleGAN2-ADA's ``ema_rampup``): early in a run, when G
    moves fast, the average follows it; beta reaches its own value once r t exceeds its
    half-life ln 0.5 / ln beta."""

    def __init__(self, module: nn.Module, beta: float, rampup: float = 0.0) -> None:
        super().__init__()
        self.beta = beta
        self.rampup = rampup
        self.module = copy.deepcopy(module).eval().requires_grad_(False)

    def beta_at(self, t: int) -> float:
        """beta for the update after ``t`` steps taken: min(beta, 0.5 ** (1 / (r t)))."""
        if self.rampup <= 0:
            return self.beta
        half_life = self.rampup * t
        return 0.0 if half_life <= 0 else min(self.beta, 0.5 ** (1.0 / half_life))

    @torch.no_grad()
    def update(self, module: nn.Module, t: int = 0) -> None:
        """Average in ``module``'s weights; ``t``: the steps taken before this update."""
        ema: list[Tensor] = list(self.module.parameters())
        torch._foreach_lerp_(ema, [p.detach() for p in module.parameters()], 1.0 - self.beta_at(t))
        for b_ema, b in zip(self.module.buffers(), module.buffers(), strict=True):
            b_ema.copy_(b)

    def forward(self, z: Tensor) -> Tensor:
        return self.module(z)
