"""One training step of the GAN game: modules and batches in, measurements out, no I/O.

Goodfellow et al. (2014), Algorithm 1: k updates of D, then one update of G. The step draws one
G forward per D update; the last one keeps its graph and is reused by the G update, as in the
PyTorch DCGAN example. The G update thus estimates the same expectation, E_z[-log D(G(z))],
with the batch of z that the last D update used (D scored by its new weights) instead of a
fresh batch: the objective is unchanged, the second G forward of the textbook loop is saved.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ganforge.losses import Loss
from ganforge.nets.conditional import aux_terms, bind
from ganforge.train.distributed import plain

Tensor = torch.Tensor


def grad_norm(module: nn.Module) -> Tensor:
    """L2 norm of all of ``module``'s parameter gradients together (0 if none), as a tensor."""
    grads = [p.grad for p in module.parameters() if p.grad is not None]
    if not grads:
        return torch.zeros(())
    return torch.linalg.vector_norm(torch.stack(torch._foreach_norm(grads)))


def batch_independent(d: nn.Module) -> bool:
    """True when D scores each sample alone (no BatchNorm, no minibatch layers)."""
    batch_layers = (nn.modules.batchnorm._BatchNorm, nn.GroupNorm)
    return not any(isinstance(m, batch_layers) for m in d.modules()) and not getattr(
        d, "mixes_batch", False
    )


@dataclass
class GANStep:
    """G, D, their optimisers and the objective; ``__call__`` runs k D updates and one G update."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: Loss
    latent_dim: int
    # D scores real and fake in one forward when no layer of it mixes samples of a batch:
    # the same maths, one pass instead of two.
    joint_d_pass: bool = field(default=True)
    # (rank, world) under torchrun: z is drawn for the global batch and sliced (distributed.py)
    shard: tuple[int, int] = (0, 1)
    aux_weight: float = 1.0  # AC-GAN: weight of the auxiliary classifier's loss

    def __post_init__(self) -> None:
        self.joint_d_pass = self.joint_d_pass and batch_independent(self.D)

    def noise(self, like: Tensor) -> Tensor:
        """z ~ N(0, I), ``[len(like), latent_dim]`` on ``like``'s device and dtype, from torch's
        global generator (seeded by the run); under torchrun this rank's slice of the global z."""
        rank, world = self.shard
        n = len(like)
        z = torch.randn(n * world, self.latent_dim, device=like.device, dtype=like.dtype)
        return z if world == 1 else z[rank * n : (rank + 1) * n]

    def d_logits(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """D's logits on real ``[N, 1]`` and on fake ``[M, 1]``."""
        if self.joint_d_pass:
            logits = self.D(torch.cat([real, fake]))
            return logits[: len(real)], logits[len(real) :]
        return self.D(real), self.D(fake)

    def d_update(self, real: Tensor, keep_graph: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """One D update; returns the fakes it scored (with G's graph when ``keep_graph``)."""
        # (1) update D: maximise log D(x) + log(1 - D(G(z))), i.e. minimise L_D = -V
        z = self.noise(real)
        with torch.set_grad_enabled(keep_graph):
            fake = self.G(z)
        real_logits, fake_logits = self.d_logits(real, fake.detach())
        loss_d = total = self.loss.d(real_logits, fake_logits)
        aux = aux_terms(plain(self.D), real, fake.detach())  # AC-GAN's classifier, on both
        if aux is not None:
            total = total + self.aux_weight * aux
        self.opt_d.zero_grad(set_to_none=True)
        total.backward()
        stats = {
            "loss_d": loss_d.detach(),
            "d_real": torch.sigmoid(real_logits.detach()).mean(),  # mean D(x)
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),  # mean D(G(z))
        }
        return fake, stats

    def g_update(self, fake: Tensor) -> dict[str, Tensor]:
        """One G update on fakes that carry G's graph."""
        # (2) update G: minimise -log D(G(z)) ("ns") or log(1 - D(G(z))) ("minimax")
        self.D.requires_grad_(False)  # only d/dx of D is needed: skip D's weight gradients
        try:
            loss_g = total = self.loss.g(plain(self.D)(fake))  # outside DDP: no D gradient
            aux = aux_terms(plain(self.D), fake)  # AC-GAN: fakes of the class asked for
            if aux is not None:
                total = total + self.aux_weight * aux
        finally:
            self.D.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        total.backward()
        return {"loss_g": loss_g.detach()}

    def __call__(
        self, reals: list[Tensor], measure: bool = False, labels: list[Tensor] | None = None
    ) -> dict[str, Tensor]:
        """k = ``len(reals)`` D updates, one per real batch, then one G update. A conditional
        G and D get each batch's ``labels``: fakes are drawn with the labels of the reals.

        Returns detached scalar tensors (no host sync); gradient norms only when ``measure``.
        """
        ys: list[Tensor | None] = list(labels) if labels is not None else [None] * len(reals)
        *early, last = reals
        for real, y in zip(early, ys, strict=False):
            bind(y, plain(self.G), plain(self.D))
            self.d_update(real, keep_graph=False)
            self.opt_d.step()
        bind(ys[-1], plain(self.G), plain(self.D))
        fake, stats = self.d_update(last, keep_graph=True)  # its fakes serve G's update
        if measure:
            stats["grad_d"] = grad_norm(self.D)
        self.opt_d.step()
        stats.update(self.g_update(fake))
        if measure:
            stats["grad_g"] = grad_norm(self.G)
        self.opt_g.step()
        return stats
