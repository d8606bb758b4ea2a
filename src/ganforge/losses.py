"""Adversarial objectives: pure functions of D's logits.

D outputs a logit ``l``; D(x) = sigmoid(l). Every log-probability is written with softplus, which
stays exact where ``log(sigmoid(l) + 1e-8)`` loses the gradient once D is confident:

    log D(x)       = log sigmoid(l)     = -softplus(-l)
    log(1 - D(x))  = log sigmoid(-l)    = -softplus(l)

Goodfellow et al. (2014), "Generative Adversarial Nets", eq. (1):
    V(D, G) = E_x[log D(x)] + E_z[log(1 - D(G(z)))].

The other rows of ``LOSSES`` read D's output as a score (a critic): Wasserstein (Arjovsky et al.
2017; Gulrajani et al. 2017), hinge (Lim & Ye 2017; Miyato et al. 2018) and least squares
(Mao et al. 2017); or, relativistic, as a logit of a real sample against a fake one (the
relativistic pairing GAN, Sun et al. 2020): G's loss then needs D's logits on reals too.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ganforge.config import LOSS_NAMES

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


def d_bce_smoothed(real_logits: Tensor, fake_logits: Tensor, alpha: float) -> Tensor:
    """D's cross-entropy with one-sided label smoothing (Salimans et al. 2016, sec. 3.4): real
    targets ``alpha`` (0.9 there), fake targets 0.

    L_D = E[alpha softplus(-l_real) + (1 - alpha) softplus(l_real)] + E[softplus(l_fake)];
    alpha = 1 is ``d_bce``. Smoothing the fake targets too would move D* towards p_model.
    """
    real = alpha * F.softplus(-real_logits) + (1 - alpha) * F.softplus(real_logits)
    return real.mean() + F.softplus(fake_logits).mean()


def bce_real(real_logits: Tensor, alpha: float = 1.0) -> Tensor:
    """D's cross-entropy on a real batch alone, targets ``alpha`` (1: E[softplus(-l)]): the
    first of the seeds' two Keras updates, ``train_on_batch(x, ones)`` (train.d_update=split)."""
    if alpha == 1.0:
        return F.softplus(-real_logits).mean()
    return (alpha * F.softplus(-real_logits) + (1 - alpha) * F.softplus(real_logits)).mean()


def bce_fake(fake_logits: Tensor) -> Tensor:
    """D's cross-entropy on a fake batch alone, targets 0: E[softplus(l)], the second update,
    ``train_on_batch(G(z), zeros)``."""
    return F.softplus(fake_logits).mean()


def d_wasserstein(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The critic's loss of WGAN (Arjovsky et al. 2017, eq. 3): E[f(G(z))] - E[f(x)].

    f is 1-Lipschitz through weight clipping (``wgan``) or a gradient penalty (``wgan-gp``);
    -L_D then estimates the Wasserstein-1 distance between the data and the model.
    """
    return fake_scores.mean() - real_scores.mean()


def g_wasserstein(fake_scores: Tensor) -> Tensor:
    """G's WGAN loss: -E[f(G(z))]."""
    return -fake_scores.mean()


def d_hinge(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """The hinge loss of D (Lim & Ye 2017; Miyato et al. 2018, eq. 17):
    E[max(0, 1 - D(x))] + E[max(0, 1 + D(G(z)))]: real scores pushed above 1, fakes below -1."""
    return F.relu(1 - real_scores).mean() + F.relu(1 + fake_scores).mean()


def d_lsgan(real_scores: Tensor, fake_scores: Tensor) -> Tensor:
    """Least-squares D loss (Mao et al. 2017, eq. 2, a = 0, b = 1):
    1/2 E[(D(x) - 1)^2] + 1/2 E[D(G(z))^2]."""
    return 0.5 * (real_scores - 1).square().mean() + 0.5 * fake_scores.square().mean()


def d_lsgan_smoothed(real_scores: Tensor, fake_scores: Tensor, alpha: float) -> Tensor:
    """``d_lsgan`` with one-sided label smoothing: the real target b = ``alpha``."""
    return 0.5 * (real_scores - alpha).square().mean() + 0.5 * fake_scores.square().mean()


def g_lsgan(fake_scores: Tensor) -> Tensor:
    """Least-squares G loss (Mao et al. 2017, eq. 2, c = 1): 1/2 E[(D(G(z)) - 1)^2]."""
    return 0.5 * (fake_scores - 1).square().mean()


def _paired(fake_logits: Tensor, real_logits: Tensor) -> None:
    if fake_logits.shape != real_logits.shape:
        raise ValueError(
            "a relativistic pairing loss pairs the i-th real with the i-th fake: logits of "
            f"shapes {tuple(real_logits.shape)} and {tuple(fake_logits.shape)} do not pair"
        )


def d_rpgan(real_logits: Tensor, fake_logits: Tensor) -> Tensor:
    """D's loss of the relativistic pairing GAN (Sun et al. 2020; the RpGAN of Huang et al.
    2024): E softplus(-(D(x_i) - D(G(z_i)))) = -E log sigmoid(D(x_i) - D(G(z_i))).

    D judges each real ``[N, 1]`` against the fake ``[N, 1]`` of the same row: the probability
    that x_i is more real than G(z_i) is sigmoid of the difference of their logits.
    """
    _paired(fake_logits, real_logits)
    return F.softplus(fake_logits - real_logits).mean()


def g_rpgan(fake_logits: Tensor, real_logits: Tensor) -> Tensor:
    """G's loss of the relativistic pairing GAN: E softplus(-(D(G(z_i)) - D(x_i))), the same
    pairs with the roles swapped. ``real_logits`` carry no graph of G: only the fakes move."""
    _paired(fake_logits, real_logits)
    return F.softplus(real_logits - fake_logits).mean()


@dataclass(frozen=True)
class Loss:
    """One adversarial objective: D's loss on (real, fake) logits and G's loss on fake logits.

    ``g`` takes the fake logits alone, ``g(fake)``, or, for a loss with ``g_needs_real`` (a
    relativistic one), the real logits of the same batch too, ``g(fake, real)``: the step then
    scores the real batch in G's update (``g_loss`` calls either form).
    ``d_smoothed(real, fake, alpha)`` is D's loss with real targets ``alpha`` (None where
    targets mean nothing, as for a critic or a relativistic loss); ``clip`` clips D's weights
    after each of its updates (``train.clip``); ``gp`` is the gradient penalty's weight the loss
    brings with it (used when ``stab.gp`` is 0).
    """

    d: Callable[[Tensor, Tensor], Tensor]
    g: Callable[..., Tensor]  # g(fake_logits), or g(fake_logits, real_logits): g_needs_real
    about: str
    d_smoothed: Callable[[Tensor, Tensor, float], Tensor] | None = None
    clip: bool = False
    gp: float = 0.0
    g_needs_real: bool = False

    def g_loss(self, fake_logits: Tensor, real_logits: Tensor | None = None) -> Tensor:
        """G's loss on ``fake_logits``; ``real_logits`` (D on the reals paired with the fakes)
        are passed on only to a loss that needs them, and must then be given."""
        if not self.g_needs_real:
            return self.g(fake_logits)
        if real_logits is None:
            raise ValueError("this loss scores G's fakes against reals: pass real_logits")
        return self.g(fake_logits, real_logits)


# The one table of objectives: the CLI's choices, config validation and the tests all read it.
LOSSES: dict[str, Loss] = {
    "ns": Loss(
        d_bce, g_ns, "non-saturating GAN: D by BCE, G minimises -log D(G(z))", d_bce_smoothed
    ),
    "minimax": Loss(
        d_bce,
        g_minimax,
        "saturating minimax GAN: G minimises log(1 - D(G(z)))",
        d_bce_smoothed,
    ),
    "wgan": Loss(
        d_wasserstein,
        g_wasserstein,
        "Wasserstein GAN: critic E f(G(z)) - E f(x), weights clipped to [-c, c] (stab.clip)",
        clip=True,
    ),
    "wgan-gp": Loss(
        d_wasserstein,
        g_wasserstein,
        "Wasserstein GAN with gradient penalty, lambda = stab.gp (10 when 0)",
        gp=10.0,
    ),
    "hinge": Loss(
        d_hinge,
        g_wasserstein,
        "hinge: D by E relu(1 - D(x)) + E relu(1 + D(G(z))); G by -E D(G(z))",
    ),
    "lsgan": Loss(
        d_lsgan, g_lsgan, "least squares: D to 1 on real, 0 on fake; G to 1", d_lsgan_smoothed
    ),
    "rpgan": Loss(
        d_rpgan,
        g_rpgan,
        "relativistic pairing GAN: D by E softplus(D(G(z_i)) - D(x_i)), G by "
        "E softplus(D(x_i) - D(G(z_i))), each real paired with a fake",
        g_needs_real=True,
    ),
}
assert tuple(LOSSES) == LOSS_NAMES
