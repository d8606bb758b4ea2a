"""One training step of the GAN game: modules and batches in, measurements out, no I/O.

Goodfellow et al. (2014), Algorithm 1: k updates of D, then one update of G. The step draws one
G forward per D update; the last one keeps its graph and is reused by the G update, as in the
PyTorch DCGAN example. The G update thus estimates the same expectation, E_z[-log D(G(z))],
with the batch of z that the last D update used (D scored by its new weights) instead of a
fresh batch: the objective is unchanged, the second G forward of the textbook loop is saved.

Penalties and stabilisers (``Tricks``) hook into the two updates; with all of them off (the
default) the step runs exactly the plain code above, with the same random draws.

Class-conditional nets (nets/conditional.py) get each real batch's labels bound before its D
update: fakes are drawn with the labels of the reals they are scored with, and AC-GAN's
auxiliary classifier loss joins L_D and L_G (weighted by ``aux_weight``).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from ganforge import penalties
from ganforge.config import Config
from ganforge.errors import ConfigError
from ganforge.losses import Loss
from ganforge.nets.conditional import aux_terms, bind, is_conditional
from ganforge.nets.layers import features_and_scores
from ganforge.stabilizers import EMA, HistoricalAverage, add_noise, feature_matching, noise_std
from ganforge.train.device import Precision, unwrap
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
class Tricks:
    """The switches of penalties and stabilisers that act in the step (``stab.*`` keys).

    Layers (spectral norm, minibatch discrimination, virtual batch norm, dropout) live in the
    nets and need nothing here.
    """

    smooth_real: float = 1.0  # real target of D's loss; 1 = no smoothing
    gp: float = 0.0  # lambda of the gradient penalty
    r1: float = 0.0  # gamma of R1
    clip: float = 0.0  # clip D's weights to [-clip, clip] after each D update; 0 = off
    noise: float = 0.0  # instance noise std at step 0
    noise_steps: int = 0  # ... annealed linearly to 0 over these steps
    feature_matching: float = 0.0  # weight of the feature-matching term in G's loss
    hist_g: HistoricalAverage | None = None  # historical averaging of G and D, with its weight
    hist_d: HistoricalAverage | None = None
    hist_weight: float = 0.0
    ema: EMA | None = None  # moving average of G's weights
    g_steps: int = 1  # G updates per step

    @property
    def active(self) -> bool:
        """Whether any switch is on (if not, the step takes the plain path)."""
        return self != Tricks(noise_steps=self.noise_steps)

    def modules(self) -> dict[str, nn.Module]:
        """The state the tricks carry, by checkpoint prefix: the averaged G and the historical
        means."""
        out: dict[str, nn.Module] = {}
        if self.ema is not None:
            out["G_ema"] = self.ema.module
        if self.hist_g is not None and self.hist_d is not None:
            out["hist_g"], out["hist_d"] = self.hist_g, self.hist_d
        return out


def make_tricks(cfg: Config, g: nn.Module, d: nn.Module, loss: Loss) -> Tricks:
    """The ``Tricks`` of a config, checked against its loss (one line per mistake)."""
    s, name = cfg.stab, cfg.train.loss
    if s.feature_matching and is_conditional(d):
        raise ConfigError(
            "stab.feature_matching does not work with a conditional model (model.cond)"
        )
    if s.label_smoothing and loss.d_smoothed is None:
        raise ConfigError(
            f"stab.label_smoothing needs a loss with targets (ns, minimax, lsgan), not {name}"
        )
    hist = s.historical_averaging > 0
    return Tricks(
        smooth_real=s.smooth_real if s.label_smoothing else 1.0,
        gp=s.gp or loss.gp,
        r1=s.r1,
        clip=s.clip if loss.clip else 0.0,
        noise=s.instance_noise,
        noise_steps=s.noise_steps or cfg.train.steps,
        feature_matching=s.feature_matching,
        hist_g=HistoricalAverage(g) if hist else None,
        hist_d=HistoricalAverage(d) if hist else None,
        hist_weight=s.historical_averaging,
        ema=EMA(g, s.ema) if s.ema > 0 else None,
        g_steps=cfg.train.g_steps,
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
    tricks: Tricks = field(default_factory=Tricks)
    # loss scaling for fp16 (train.precision); otherwise plain backward() and step()
    amp: Precision = field(default_factory=Precision)
    t: int = 0  # steps taken: drives the instance-noise schedule; set on resume
    aux_weight: float = 1.0  # AC-GAN: weight of the auxiliary classifier's loss

    def aux(self, *xs: Tensor) -> Tensor | None:
        """AC-GAN's classifier loss on the bound labels (None for any other D)."""
        return aux_terms(unwrap(self.D), *xs)

    def bind(self, y: Tensor | None) -> None:
        """Bind labels ``y`` to a conditional G and D for the next update (None unbinds)."""
        bind(y, unwrap(self.G), unwrap(self.D))

    def __post_init__(self) -> None:
        self.joint_d_pass = self.joint_d_pass and batch_independent(self.D)
        self.plain = not self.tricks.active

    @property
    def sampler_g(self) -> nn.Module:
        """The G to draw samples from: the moving average of G's weights if ``ema`` is on."""
        return self.tricks.ema.module if self.tricks.ema is not None else self.G

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
            k = len(logits) * len(real) // (len(real) + len(fake))  # packing D: a row per pack
            return logits[:k], logits[k:]
        return self.D(real), self.D(fake)

    def d_update(self, real: Tensor, keep_graph: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """One D update; returns the fakes it scored (with G's graph when ``keep_graph``)."""
        if not self.plain:
            return self._d_update_tricks(real, keep_graph)
        # (1) update D: maximise log D(x) + log(1 - D(G(z))), i.e. minimise L_D = -V
        z = self.noise(real)
        with torch.set_grad_enabled(keep_graph):
            fake = self.G(z)
        real_logits, fake_logits = self.d_logits(real, fake.detach())
        loss_d = total = self.loss.d(real_logits, fake_logits)
        if (aux := self.aux(real, fake.detach())) is not None:  # AC-GAN: classify both
            total = total + self.aux_weight * aux
        self.opt_d.zero_grad(set_to_none=True)
        self.amp.backward(total, self.opt_d)
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
            if (aux := self.aux(fake)) is not None:  # AC-GAN: fakes of the class asked for
                total = total + self.aux_weight * aux
        finally:
            self.D.requires_grad_(True)
        self.opt_g.zero_grad(set_to_none=True)
        self.amp.backward(total, self.opt_g)
        return {"loss_g": loss_g.detach()}

    def noise_std(self) -> float:
        """The instance noise's std at this step."""
        tr = self.tricks
        return noise_std(self.t, tr.noise, tr.noise_steps) if tr.noise else 0.0

    def _d_update_tricks(self, real: Tensor, keep_graph: bool) -> tuple[Tensor, dict[str, Tensor]]:
        """``d_update`` with the penalties and stabilisers that are switched on."""
        tr = self.tricks
        z = self.noise(real)
        with torch.set_grad_enabled(keep_graph):
            fake = self.G(z)
        real_in, fake_in = real, fake.detach()
        std = self.noise_std()
        if std > 0:  # instance noise: both of D's inputs, so that their supports overlap
            real_in, fake_in = add_noise(real_in, std), add_noise(fake_in, std)
        if tr.r1:  # R1 needs d D(x) / dx: the same D pass serves the loss and the penalty
            real_in = real_in.detach().requires_grad_(True)
        real_logits, fake_logits = self.d_logits(real_in, fake_in)
        if tr.smooth_real < 1 and self.loss.d_smoothed is not None:
            loss_d = self.loss.d_smoothed(real_logits, fake_logits, tr.smooth_real)
        else:
            loss_d = self.loss.d(real_logits, fake_logits)
        total = loss_d
        stats = {
            "loss_d": loss_d.detach(),
            "d_real": torch.sigmoid(real_logits.detach()).mean(),  # mean D(x)
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),  # mean D(G(z))
        }
        if tr.gp:
            gp = penalties.gradient_penalty(self.D, real_in, fake_in, tr.gp)
            total = total + gp
            stats["gp"] = gp.detach()
        if tr.r1:
            r1 = penalties.r1_penalty(real_in, real_logits, tr.r1)
            total = total + r1
            stats["r1"] = r1.detach()
        if tr.hist_d is not None:
            total = total + tr.hist_weight * tr.hist_d.penalty(self.D)
        if (aux := self.aux(real_in, fake_in)) is not None:  # AC-GAN: classify both
            total = total + self.aux_weight * aux
        self.opt_d.zero_grad(set_to_none=True)
        self.amp.backward(total, self.opt_d)
        return fake, stats

    def _after_d_step(self) -> None:
        tr = self.tricks
        if tr.clip:
            penalties.clip_weights(self.D, tr.clip)
        if tr.hist_d is not None:
            tr.hist_d.update(self.D)

    def _g_update_tricks(self, fake: Tensor, real: Tensor) -> dict[str, Tensor]:
        """``g_update`` with the stabilisers that are switched on; ``real`` serves feature
        matching."""
        tr = self.tricks
        std = self.noise_std()
        fake_in = add_noise(fake, std) if std > 0 else fake
        self.D.requires_grad_(False)
        try:
            stats: dict[str, Tensor] = {}
            if tr.feature_matching:
                with torch.no_grad():
                    real_in = add_noise(real, std) if std > 0 else real
                    f_real, _ = features_and_scores(unwrap(self.D), real_in)
                f_fake, scores = features_and_scores(unwrap(self.D), fake_in)
                fm = feature_matching(f_real, f_fake)
                loss_g = self.loss.g(scores)
                total = loss_g + tr.feature_matching * fm
                stats["fm"] = fm.detach()
            else:
                loss_g = total = self.loss.g(plain(self.D)(fake_in))
            if (aux := self.aux(fake_in)) is not None:  # AC-GAN: fakes of the class asked for
                total = total + self.aux_weight * aux
        finally:
            self.D.requires_grad_(True)
        if tr.hist_g is not None:
            total = total + tr.hist_weight * tr.hist_g.penalty(self.G)
        self.opt_g.zero_grad(set_to_none=True)
        self.amp.backward(total, self.opt_g)
        stats["loss_g"] = loss_g.detach()
        return stats

    def _after_g_step(self) -> None:
        tr = self.tricks
        if tr.hist_g is not None:
            tr.hist_g.update(self.G)
        if tr.ema is not None:
            tr.ema.update(self.G)

    def __call__(
        self, reals: list[Tensor], measure: bool = False, labels: list[Tensor] | None = None
    ) -> dict[str, Tensor]:
        """k = ``len(reals)`` D updates, one per real batch, then one G update. A conditional
        G and D get each batch's ``labels`` (``[N]`` each): fakes carry the labels of the reals.

        Returns detached scalar tensors (no host sync); gradient norms only when ``measure``.
        """
        ys: list[Tensor | None] = list(labels) if labels is not None else [None] * len(reals)
        try:
            if not self.plain:
                return self._call_tricks(reals, measure, ys)
            return self._call_plain(reals, measure, ys)
        finally:
            self.bind(None)  # between steps G draws every class in turn (samples, evaluation)

    def _call_plain(
        self, reals: list[Tensor], measure: bool, ys: list[Tensor | None]
    ) -> dict[str, Tensor]:
        *early, last = reals
        for real, y in zip(early, ys, strict=False):
            self.bind(y)
            self.d_update(real, keep_graph=False)
            self.amp.step(self.opt_d)
        self.bind(ys[-1])
        fake, stats = self.d_update(last, keep_graph=True)  # its fakes serve G's update
        if measure:
            self.amp.unscale(self.opt_d)  # fp16: the true gradients, not S times them
            stats["grad_d"] = grad_norm(self.D)
        self.amp.step(self.opt_d)
        stats.update(self.g_update(fake))
        if measure:
            self.amp.unscale(self.opt_g)
            stats["grad_g"] = grad_norm(self.G)
        self.amp.step(self.opt_g)
        self.t += 1
        return stats

    def _call_tricks(
        self, reals: list[Tensor], measure: bool, ys: list[Tensor | None]
    ) -> dict[str, Tensor]:
        """``__call__`` with penalties and stabilisers: k D updates, then ``g_steps`` G updates
        (the first reuses the last D update's fakes, the others draw fresh z, with the labels
        of the last real batch)."""
        *early, last = reals
        for real, y in zip(early, ys, strict=False):
            self.bind(y)
            self._d_update_tricks(real, keep_graph=False)
            self.amp.step(self.opt_d)
            self._after_d_step()
        self.bind(ys[-1])
        fake, stats = self._d_update_tricks(last, keep_graph=True)
        if measure:
            self.amp.unscale(self.opt_d)  # fp16: the true gradients, not S times them
            stats["grad_d"] = grad_norm(self.D)
        self.amp.step(self.opt_d)
        self._after_d_step()
        for i in range(self.tricks.g_steps):
            if i > 0:
                fake = self.G(self.noise(last))
            stats.update(self._g_update_tricks(fake, last))
            if measure and i == 0:
                self.amp.unscale(self.opt_g)
                stats["grad_g"] = grad_norm(self.G)
            self.amp.step(self.opt_g)
            self._after_g_step()
        self.t += 1
        return stats
