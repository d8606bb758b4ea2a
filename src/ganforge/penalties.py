"""Penalties on D that need D itself and autograd: gradient penalty, R1 and R2, weight clipping.

Each returns a scalar tensor to add to D's loss (or, for clipping, acts on D's weights in place).
"""

from __future__ import annotations

import torch
from torch import nn

Tensor = torch.Tensor


def safe_norm(x: Tensor) -> Tensor:
    """Per-sample L2 norm of ``x`` ``[N, ...]`` -> ``[N]``, with gradient 0 (not NaN) at 0.

    d||g||/dg = g / ||g|| is 0/0 at g = 0, and autograd's sqrt gives inf * 0 = NaN there; the
    norm is evaluated on a safe input where the squared norm is 0 and then replaced by 0.
    """
    sq = x.flatten(1).square().sum(1)  # [N]
    positive = sq > 0
    safe = torch.where(positive, sq, torch.ones_like(sq))
    return torch.where(positive, safe.sqrt(), torch.zeros_like(sq))


def interpolate(real: Tensor, fake: Tensor, eps: Tensor | None = None) -> Tensor:
    """x_hat = eps x + (1 - eps) G(z), one eps ~ U[0, 1] per sample (not per pixel), broadcast
    over the sample's dimensions: eps ``[N, 1, ...]``."""
    if eps is None:
        shape = (len(real),) + (1,) * (real.ndim - 1)
        eps = torch.rand(shape, device=real.device, dtype=real.dtype)
    return eps * real + (1 - eps) * fake


def gradient_penalty(
    d: nn.Module, real: Tensor, fake: Tensor, weight: float, eps: Tensor | None = None
) -> Tensor:
    """The WGAN-GP penalty (Gulrajani et al. 2017, eq. 3):

        lambda E_{x_hat}[(||grad_{x_hat} D(x_hat)||_2 - 1)^2],  x_hat = eps x + (1 - eps) G(z),

    with one eps ~ U[0, 1] per sample. The graph is kept (create_graph) so that the penalty's
    gradient reaches D's weights. ``real`` and ``fake`` ``[N, ...]`` carry no graph of their own.
    """
    x_hat = interpolate(real.detach(), fake.detach(), eps).requires_grad_(True)
    scores = d(x_hat)  # [N, 1]
    (grad,) = torch.autograd.grad(scores.sum(), x_hat, create_graph=True)  # [N, ...]
    return weight * (safe_norm(grad) - 1).square().mean()


def zero_centred_penalty(x: Tensor, scores: Tensor, gamma: float) -> Tensor:
    """gamma / 2 E[||grad_x D(x)||^2]: D's input gradient pulled towards 0 where ``x`` lies.

    ``x`` ``[N, ...]`` must require grad and ``scores`` be D's output on it (``[N, 1]``, or a
    row per pack for a packing D), so that the D pass of the loss serves the penalty too. The
    graph is kept (create_graph) so that the penalty's gradient reaches D's weights.
    """
    (grad,) = torch.autograd.grad(scores.sum(), x, create_graph=True)  # [N, ...]
    return 0.5 * gamma * grad.flatten(1).square().sum(1).mean()


def r1_penalty(real: Tensor, real_scores: Tensor, gamma: float) -> Tensor:
    """R1 (Mescheder et al. 2018, eq. 9): gamma / 2 E_x[||grad_x D(x)||^2] on real data."""
    return zero_centred_penalty(real, real_scores, gamma)


def r2_penalty(fake: Tensor, fake_scores: Tensor, gamma: float) -> Tensor:
    """R2 (Mescheder et al. 2018, eq. 10): gamma / 2 E_z[||grad_x D(G(z))||^2] on fakes.

    ``fake`` are G's samples as D's inputs (detached from G, requiring grad). With R1 it is the
    regulariser of the R3GAN recipe (Huang et al. 2024): D flat at both distributions.
    """
    return zero_centred_penalty(fake, fake_scores, gamma)


def drift_penalty(real_scores: Tensor, eps: float) -> Tensor:
    """eps E_x[D(x)^2] (Karras et al. 2018, appendix A.1, eps = 0.001): with the WGAN loss only
    differences of D's scores count, so they may drift far from 0; this term holds them near
    it."""
    return eps * real_scores.pow(2).mean()


@torch.no_grad()
def clip_weights(d: nn.Module, c: float) -> None:
    """Clip every parameter of D to [-c, c] in place (Arjovsky et al. 2017, Algorithm 1, c = 0.01),
    a crude way to keep the critic K-Lipschitz."""
    for p in d.parameters():
        p.clamp_(-c, c)
