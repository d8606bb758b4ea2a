"""The sampling filter's discriminator: a D trained on the final G, held fixed.

Discriminator Rejection Sampling (nets/filters.py) keeps G's sample x with a probability set
by D's logit, which for the optimal D is log p_data(x) / p_g(x). The run's own D only
approximates that ratio: it was trained against a G that kept moving, while samples come from
the final G (or its moving average), and a packing D scores packs. Azadi et al. (2019) train D
further with G held fixed before they filter; ``fit`` does that, for a fresh ``RatioNet`` on
points data, with the discriminator's binary cross-entropy of the course (``losses.d_bce``).

One fixed schedule, measured on the 2-D mixtures (docs/toy.md): Adam(1e-3, betas 0.5,
0.999), batches of ``BATCH`` real and ``BATCH`` fake points, the rate cut to a fifth for the
last 30 % of the steps, and the net returned is the moving average of its weights over the
updates (Polyak averaging; decay ``AVERAGE``, ramped up from 0.1 as (1 + t) / (10 + t) so that
a short fit is not held back by its initial weights): each update's noise
moves the ratio a mode gets, and the average halves the mixtures' KL where the last iterate
alone leaves it. Every draw (data indices, z) comes from one seeded generator: the same G, data
and seed give the same net.
"""

from __future__ import annotations

import copy

import torch
from torch import nn

from ganforge.losses import d_bce
from ganforge.nets import generate
from ganforge.nets.filters import RATIO_HIDDEN, RatioMean, RatioNet

Tensor = torch.Tensor

BATCH = 512  # real and fake points per update
SEED_STRIDE = 1000  # member k of an average is fitted with seed + k * SEED_STRIDE
LR = 1e-3
LATE_LR = 2e-4  # from LATE of the steps on
LATE = 0.7
AVERAGE = 0.995  # the returned weights: their moving average, about the last 200 updates


def fit(
    g: nn.Module,
    real: Tensor,
    steps: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
    batch: int = BATCH,
    hidden: tuple[int, ...] = RATIO_HIDDEN,
    average: float = AVERAGE,
) -> tuple[RatioNet, float]:
    """A ``RatioNet`` trained ``steps`` updates to tell ``real`` points ``[N, dim]`` from G's
    samples (z ~ N(0, I), G in eval mode and left unchanged), returned as the moving average
    of its weights: after update t (0, 1, ...) w_avg <- b w_avg + (1 - b) w with b = min(
    ``average``, (1 + t) / (10 + t)), from the initial weights (``average`` 0: the last
    iterate); and the trained net's mean loss
    over the last tenth of the updates (2 log 2 = 1.386 when it cannot tell them apart).
    ``batch`` and ``hidden`` are for tests: a run's checkpoint holds a net of the defaults."""
    if steps <= 0:
        raise ValueError(f"steps must be positive, got {steps}")
    if not 0.0 <= average < 1.0:
        raise ValueError(f"average must be in [0, 1), got {average}")
    real = real.flatten(1).float()
    net = RatioNet(real.shape[1], seed=seed, hidden=hidden).to(device)
    net.standardise(real)
    mean = copy.deepcopy(net)
    opt = torch.optim.Adam(net.parameters(), lr=LR, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(seed)
    latent = int(g.latent_dim)  # type: ignore[arg-type]
    tail: list[float] = []
    for i in range(steps):
        if i == int(LATE * steps):
            for group in opt.param_groups:
                group["lr"] = LATE_LR
        idx = torch.randint(0, len(real), (batch,), generator=gen)
        z = torch.randn(batch, latent, generator=gen)
        fake = generate(g, z.to(device))
        loss = d_bce(net(real[idx].to(device)), net(fake))
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        decay = min(average, (1.0 + i) / (10.0 + i))
        with torch.no_grad():
            for avg, w in zip(mean.parameters(), net.parameters(), strict=True):
                avg.lerp_(w, 1.0 - decay)
        if i >= steps - max(1, steps // 10):
            tail.append(loss.item())
    mean.eval()
    return mean, sum(tail) / len(tail)


def fit_mean(
    g: nn.Module,
    real: Tensor,
    steps: int,
    nets: int,
    seed: int = 0,
    device: str | torch.device = "cpu",
) -> tuple[RatioNet | RatioMean, list[float]]:
    """``nets`` RatioNets fitted by ``fit`` apart, member k seeded ``seed + k * SEED_STRIDE``
    (so member 0 is ``fit``'s own net), as one ``RatioMean``; one net alone when ``nets`` is
    1. Also each member's final loss."""
    fitted = [fit(g, real, steps, seed=seed + k * SEED_STRIDE, device=device) for k in range(nets)]
    losses = [loss for _, loss in fitted]
    if nets == 1:
        return fitted[0][0], losses
    return RatioMean([net for net, _ in fitted]).eval(), losses
