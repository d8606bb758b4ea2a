"""Adversarial objectives: pure functions of D's logits.

D outputs a logit ``l``; D(x) = sigmoid(l). Every log-probability is written with softplus, which
stays exact where ``log(sigmoid(l) + 1e-8)`` loses the gradient once D is confident:

    log D(x)       = log sigmoid(l)     = -softplus(-l)
    log(1 - D(x))  = log sigmoid(-l)    = -softplus(l)

Goodfellow et al. (2014), "Generative Adversarial Nets", eq. (1):
    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))].
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

Tensor = torch.Tensor


def value(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """Monte-Carlo estimate of V(D, G) from logits on real ``[N, 1]`` and fake ``[M, 1]`` inputs."""
    return -F.softplus(-real_logits).mean() - F.softplus(fake_logits).mean()


def d_bce(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D's binary cross-entropy, targets 1 for real and 0 for fake.

    L_D = -E[log D(x)] - E[log(1 - D(G(z)))] = E[softplus(-l_real)] + E[softplus(l_fake)] = -V.
    Minimising it maximises V; at the game's equilibrium (D = 1/2 everywhere) it is 2 log 2.
    """
    return F.softplus(-real_logits).mean() + F.softplus(fake_logits).mean()


def g_minimax(fake_logits: Tensor) -> Tensor:
    """The saturating generator loss of the minimax game: E[log(1 - D(G(z)))] = -E[softplus(l)].

    Its gradient vanishes when D confidently rejects the fakes (D(G(z)) -> 0), early in training.
    """
    return -F.softplus(fake_logits).mean()


def g_ns(fake_logits: Tensor) -> Tensor:
    """The non-saturating generator loss (Goodfellow et al. 2014, sec. 3): -E[log D(G(z))].

    -log sigmoid(l) = softplus(-l); same fixed point as the minimax loss, strong gradients early.
    """
    return F.softplus(-fake_logits).mean()


@dataclass(frozen=True)
class Loss:
    """One adversarial objective: D's loss on (real, fake) logits and G's loss on fake logits."""

    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[[Tensor], Tensor]
    about: str


# The one table of objectives: the CLI's choices, config validation and the tests all read it.
LOSSES: dict[str, Loss] = {
    "ns": Loss(d_bce, g_ns, "non-saturating GAN: D by BCE, G minimises -log D(G(z))"),
    "minimax": Loss(d_bce, g_minimax, "saturating minimax GAN: G minimises log(1 - D(G(z)))"),
}
