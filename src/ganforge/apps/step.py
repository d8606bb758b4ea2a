"""One training step of an image-to-image GAN: its losses, the pool of past fakes, the paired
step (pix2pix, SRGAN) and the unpaired one (CycleGAN). Measurements out, no I/O.

The adversarial objective is one of ``ganforge.losses.LOSSES`` (``train.loss``), applied to
each logit of a PatchGAN D. As in pix2pix and CycleGAN, D's objective is halved (it learns
at half G's pace).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.losses import Loss

Tensor = torch.Tensor
Terms = dict[str, Tensor]


def content_l1(fake: Tensor, real: Tensor) -> Tensor:
    """The content loss of paired tasks: mean |G(x) - y| over every pixel."""
    return (fake - real).abs().mean()


def cycle_l1(a: Tensor, rec_a: Tensor, b: Tensor, rec_b: Tensor) -> Tensor:
    """CycleGAN's cycle-consistency loss (Zhu et al. 2017, eq. 2):
    E|G_BA(G_AB(a)) - a| + E|G_AB(G_BA(b)) - b|."""
    return (rec_a - a).abs().mean() + (rec_b - b).abs().mean()


def identity_l1(a: Tensor, same_a: Tensor, b: Tensor, same_b: Tensor) -> Tensor:
    """CycleGAN's identity loss (Zhu et al. 2017, section 5.2; Taigman et al. 2017):
    E|G_BA(a) - a| + E|G_AB(b) - b|: a generator given an image of its target domain keeps it."""
    return (same_a - a).abs().mean() + (same_b - b).abs().mean()


def total(terms: Mapping[str, Tensor]) -> Tensor:
    return torch.stack(list(terms.values())).sum()


class ImagePool:
    """The history of generated images D is shown (Shrivastava et al. 2017; CycleGAN).

    Until ``size`` images are stored, each new fake is stored and returned. Then each new fake,
    with probability 1/2, replaces a stored one chosen uniformly, and the stored one is
    returned in its place; otherwise the new one is returned. ``size`` 0: the fakes as they
    are. Its own seeded generator and the stored images are its state (``state_dict``), so a
    resumed run draws what the uninterrupted one would.
    """

    def __init__(self, size: int, seed: int = 0) -> None:
        self.size = size
        self.images: Tensor | None = None  # [k, C, H, W], k <= size
        self.generator = torch.Generator().manual_seed(seed)

    def __len__(self) -> int:
        return 0 if self.images is None else len(self.images)

    def query(self, fakes: Tensor) -> Tensor:
        """The batch D sees in place of ``fakes`` ``[N, C, H, W]`` (detached)."""
        fakes = fakes.detach()
        if self.size == 0:
            return fakes
        out = []
        for img in fakes:
            if len(self) < self.size:
                stored = img.unsqueeze(0).cpu().clone()
                self.images = stored if self.images is None else torch.cat((self.images, stored))
                out.append(img)
                continue
            assert self.images is not None
            if float(torch.rand(1, generator=self.generator)) < 0.5:
                k = int(torch.randint(self.size, (1,), generator=self.generator))
                old = self.images[k].clone()
                self.images[k] = img.cpu()
                out.append(old.to(img.device))
            else:
                out.append(img)
        return torch.stack(out)

    def state_dict(self) -> dict[str, Any]:
        state: dict[str, Any] = {"generator": self.generator.get_state(), "count": len(self)}
        if self.images is not None:
            state["images"] = self.images.clone()
        return state

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.generator.set_state(state["generator"])
        self.images = state["images"].clone() if int(state["count"]) else None


def _prob(loss_name: str, logits: Tensor) -> Tensor:
    """D's mean belief that its input is real: sigmoid of logits for a BCE loss, the raw
    score for the others (LSGAN's targets 0 and 1 read the same way)."""
    return torch.sigmoid(logits).mean() if loss_name in ("ns", "minimax") else logits.mean()


def _g_loss(loss: Loss, d: nn.Module, fake: Tensor, real: Tensor) -> Tensor:
    """G's adversarial loss on D's logits of ``fake``; D's of ``real`` only where the loss
    pairs them (a relativistic one)."""
    return loss.g_loss(d(fake), d(real).detach() if loss.g_needs_real else None)


def _step(opt: torch.optim.Optimizer, loss: Tensor) -> None:
    opt.zero_grad(set_to_none=True)
    loss.backward()
    opt.step()


class PairedStep:
    """pix2pix / SRGAN: G maps x to y; D judges (x, y) pairs patch by patch.

    (1) D: minimise 1/2 [L_D(D(x, y), D(x, G(x)))] (skipped with ``adv`` 0: the plain L1 model)
    (2) G: minimise content |G(x) - y| + adv L_G(D(x, G(x))) + feature |f(G(x)) - f(y)|
    D sees x resized to y's size (nearest) beside the image: the pair, not the image alone.
    """

    def __init__(
        self,
        g: nn.Module,
        d: nn.Module | None,
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer | None,
        loss: Loss,
        loss_name: str,
        content: float,
        adv: float,
        feature: float = 0.0,
        feature_net: Callable[[Tensor], Tensor] | None = None,
    ) -> None:
        self.g, self.d, self.opt_g, self.opt_d = g, d, opt_g, opt_d
        self.loss, self.loss_name = loss, loss_name
        self.content, self.adv, self.feature = content, adv, feature
        self.feature_net = feature_net

    def pair(self, x: Tensor, y: Tensor) -> Tensor:
        """D's input ``[N, Cx + Cy, H, W]``: x (nearest-resized to y's size) joined to y."""
        if x.shape[-2:] != y.shape[-2:]:
            x = F.interpolate(x, size=y.shape[-2:], mode="nearest")
        return torch.cat((x, y), dim=1)

    def __call__(self, x: Tensor, y: Tensor) -> dict[str, Tensor]:
        fake = self.g(x)
        stats: dict[str, Tensor] = {}
        adversarial = self.d is not None and self.opt_d is not None and self.adv > 0
        if adversarial:
            assert self.d is not None and self.opt_d is not None
            # (1) D: real pairs towards "real", G's pairs towards "fake"
            real_logits = self.d(self.pair(x, y))
            fake_logits = self.d(self.pair(x, fake.detach()))
            loss_d = 0.5 * self.loss.d(real_logits, fake_logits)
            _step(self.opt_d, loss_d)
            stats |= {
                "loss_d": loss_d.detach(),
                "d_real": _prob(self.loss_name, real_logits.detach()),
                "d_fake": _prob(self.loss_name, fake_logits.detach()),
            }
        # (2) G: close to y, and real to D
        terms: Terms = {"content": self.content * content_l1(fake, y)}
        if adversarial:
            assert self.d is not None
            adv = _g_loss(self.loss, self.d, self.pair(x, fake), self.pair(x, y))
            terms["adv"] = self.adv * adv
        if self.feature > 0 and self.feature_net is not None:
            terms["feature"] = self.feature * content_l1(
                self.feature_net(fake), self.feature_net(y)
            )
        loss_g = total(terms)
        _step(self.opt_g, loss_g)
        stats["loss_g"] = loss_g.detach()
        stats |= {f"g_{k}": v.detach() for k, v in terms.items()}
        stats["l1"] = content_l1(fake.detach(), y)
        return stats


class CycleStep:
    """CycleGAN (Zhu et al. 2017): G_AB, G_BA and their judges D_B, D_A, from unpaired a, b.

    (1) both G: minimise L_G(D_B(G_AB(a))) + L_G(D_A(G_BA(b))) + cycle (|G_BA(G_AB(a)) - a| +
        |G_AB(G_BA(b)) - b|) + identity x cycle (|G_BA(a) - a| + |G_AB(b) - b|)
    (2) both D: minimise 1/2 L_D(D_B(b), D_B(pool_B(G_AB(a)))) and the same for D_A.

    With ``adv`` 0 it trains the plain L1 model instead: given pairs (a, b) it minimises
    |G_AB(a) - b| + |G_BA(b) - a| (``__call__``'s ``pairs``), no D.
    """

    def __init__(
        self,
        nets: Mapping[str, nn.Module],
        opt_g: torch.optim.Optimizer,
        opt_d: torch.optim.Optimizer | None,
        loss: Loss,
        loss_name: str,
        cycle: float,
        identity: float,
        adv: float,
        pools: tuple[ImagePool, ImagePool],
    ) -> None:
        self.nets = nets
        self.opt_g, self.opt_d = opt_g, opt_d
        self.loss, self.loss_name = loss, loss_name
        self.cycle, self.identity, self.adv = cycle, identity, adv
        self.pool_a, self.pool_b = pools

    def __call__(self, a: Tensor, b: Tensor) -> dict[str, Tensor]:
        g_ab, g_ba = self.nets["G_AB"], self.nets["G_BA"]
        if self.adv == 0 or self.opt_d is None:  # the plain L1 model: a and b are pairs
            terms: Terms = {"content": content_l1(g_ab(a), b) + content_l1(g_ba(b), a)}
            loss_g = total(terms)
            _step(self.opt_g, loss_g)
            return {"loss_g": loss_g.detach(), "g_content": terms["content"].detach()}
        d_a, d_b = self.nets["D_A"], self.nets["D_B"]
        # (1) G: fool both D, come back, keep images already in the target domain. Each G
        # runs once on its two inputs joined (instance norm is per image: the same maths).
        n = len(a)
        fake_b, same_b = g_ab(torch.cat((a, b))).split((n, len(b)))
        fake_a, same_a = g_ba(torch.cat((b, a))).split((len(b), n))
        rec_a, rec_b = g_ba(fake_b), g_ab(fake_a)
        d_b.requires_grad_(False)
        d_a.requires_grad_(False)
        terms = {
            "adv": self.adv
            * (_g_loss(self.loss, d_b, fake_b, b) + _g_loss(self.loss, d_a, fake_a, a)),
            "cycle": self.cycle * cycle_l1(a, rec_a, b, rec_b),
        }
        if self.identity > 0:
            terms["identity"] = self.identity * self.cycle * identity_l1(a, same_a, b, same_b)
        loss_g = total(terms)
        _step(self.opt_g, loss_g)
        d_b.requires_grad_(True)
        d_a.requires_grad_(True)
        # (2) D: real images towards "real", fakes from the pool towards "fake"
        pooled_b, pooled_a = self.pool_b.query(fake_b), self.pool_a.query(fake_a)
        real_b, fake_b_logits = d_b(b), d_b(pooled_b)
        real_a, fake_a_logits = d_a(a), d_a(pooled_a)
        loss_d = 0.5 * (self.loss.d(real_b, fake_b_logits) + self.loss.d(real_a, fake_a_logits))
        assert self.opt_d is not None
        _step(self.opt_d, loss_d)
        out = {
            "loss_g": loss_g.detach(),
            "loss_d": loss_d.detach(),
            "d_real": _prob(self.loss_name, torch.cat((real_a, real_b)).detach()),
            "d_fake": _prob(self.loss_name, torch.cat((fake_a_logits, fake_b_logits)).detach()),
        }
        return out | {f"g_{k}": v.detach() for k, v in terms.items()}
