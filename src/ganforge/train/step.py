"""One training step of the GAN game: modules and batches in, measurements out, no I/O.

Goodfellow et al. (2014), Algorithm 1: k updates of D, then one update of G. The step draws one
G forward per D update; the last one keeps its graph and is reused by the G update, as in the
PyTorch DCGAN example. The G update thus estimates the same expectation, E_z[-log D(G(z))],
with the batch of z that the last D update used (D scored by its new weights) instead of a
fresh batch: the objective is unchanged, the second G forward of the textbook loop is saved.

One code path, after stylegan2-ada's ``training/loss.py``: each update builds its loss as a
dict of terms, an entry only for what is switched on (the adversarial loss always; the
gradient penalty, R1, R2, historical averaging, feature matching, AC-GAN's classifier when their
switches are), sums them and reports each one. Hooks run after each update (weight clipping,
the historical means, the moving average of G). With every switch off the terms are the
adversarial losses alone and no hook runs: the textbook step.

Class-conditional nets (nets/conditional.py) get each real batch's labels bound before its D
update: fakes are drawn with the labels of the reals they are scored with.
"""

from __future__ import annotations

import functools
import operator
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from ganforge import losses, penalties
from ganforge.config import Config
from ganforge.errors import ConfigError
from ganforge.losses import Loss
from ganforge.nets.conditional import aux_terms, bind, is_conditional
from ganforge.nets.layers import capture_features, feature_site
from ganforge.stabilizers import (
    EMA,
    HistoricalAverage,
    add_noise,
    augment,
    check_ema,
    feature_matching,
    noise_std,
)
from ganforge.train.device import Precision, unwrap
from ganforge.train.distributed import plain

Tensor = torch.Tensor
Terms = dict[str, Tensor]

# What every step reports, whatever is switched on: the adversarial losses and D's mean beliefs
# (the terms of the switches and, on measured steps, the gradient norms come besides).
STATS = ("loss_d", "loss_g", "d_real", "d_fake")
GRADS = ("grad_d", "grad_g")  # with ``measure``: D's and G's gradient norms


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


def total(terms: Mapping[str, Tensor]) -> Tensor:
    """The loss an update minimises: its terms summed, in the order they were built."""
    return functools.reduce(operator.add, terms.values())


@dataclass
class Switches:
    """The penalties and stabilisers that act in the step (``stab.*`` keys, ``train.g_steps``).

    Layers (spectral norm, minibatch discrimination, virtual batch norm, dropout) live in the
    nets and need nothing here.
    """

    smooth_real: float = 1.0  # real target of D's loss; 1 = no smoothing
    gp: float = 0.0  # lambda of the gradient penalty
    r1: float = 0.0  # gamma of R1
    r2: float = 0.0  # gamma of R2
    reg_every: int = 1  # R1 and R2 in every N-th step, N times as heavy (lazy regularisation)
    drift: float = 0.0  # weight of E[D(x)^2] (progressive GAN's drift term)
    clip: float = 0.0  # clip D's weights to [-clip, clip] after each D update; 0 = off
    noise: float = 0.0  # instance noise std at step 0
    noise_steps: int = 0  # ... annealed linearly to 0 over these steps
    feature_matching: float = 0.0  # weight of the feature-matching term in G's loss
    hist_g: HistoricalAverage | None = None  # historical averaging of G and D, with its weight
    hist_d: HistoricalAverage | None = None
    hist_weight: float = 0.0
    ema: EMA | None = None  # moving average of G's weights
    g_steps: int = 1  # G updates per step
    aux_weight: float = 1.0  # AC-GAN: weight of the auxiliary classifier's loss
    split_d: bool = False  # D: one optimiser step on the real batch, then one on the fakes
    augment: tuple[str, ...] = ()  # differentiable augmentations of every input of D

    def modules(self) -> dict[str, nn.Module]:
        """The state the switches carry, by checkpoint prefix: the averaged G and the
        historical means."""
        out: dict[str, nn.Module] = {}
        if self.ema is not None:
            out["G_ema"] = self.ema.module
        if self.hist_g is not None and self.hist_d is not None:
            out["hist_g"], out["hist_d"] = self.hist_g, self.hist_d
        return out


def make_switches(
    cfg: Config, g: nn.Module, d: nn.Module, loss: Loss, shape: tuple[int, ...]
) -> Switches:
    """The ``Switches`` of a config, checked against its loss, nets and the data's sample
    ``shape`` (one line per mistake)."""
    s, name = cfg.stab, cfg.train.loss
    if s.augment and len(shape) != 3:
        raise ConfigError(
            f"stab.augment works on images [C, H, W]; the data has samples of shape {list(shape)}"
        )
    if s.feature_matching:
        if is_conditional(d):
            raise ConfigError(
                "stab.feature_matching does not work with a conditional model (model.cond)"
            )
        feature_site(d)  # D must have features to match: fails here, in one line, if not
    if s.label_smoothing and loss.d_smoothed is None:
        raise ConfigError(
            f"stab.label_smoothing needs a loss with targets (ns, minimax, lsgan), not {name}"
        )
    check_ema(s.ema, s.ema_rampup)
    if s.reg_every > 1 and not (s.r1 or s.r2):
        raise ConfigError(
            f"stab.reg_every={s.reg_every} spaces out R1 and R2: set stab.r1 or stab.r2"
        )
    split = cfg.train.d_update == "split"
    if split:
        others = [
            k
            for k, on in (
                ("stab.gp", s.gp or loss.gp),
                ("stab.historical_averaging", s.historical_averaging),
                ("model.cond=acgan", cfg.model.cond == "acgan"),
            )
            if on
        ]
        if name not in ("ns", "minimax") or others:
            raise ConfigError(
                "train.d_update=split is the seeds' Keras loop: D by cross-entropy (train.loss "
                f"ns or minimax), one batch at a time; not with {', '.join(others) or name}"
            )
    hist = s.historical_averaging > 0
    return Switches(
        smooth_real=s.smooth_real if s.label_smoothing else 1.0,
        gp=s.gp or loss.gp,
        r1=s.r1,
        r2=s.r2,
        reg_every=s.reg_every,
        drift=s.drift,
        clip=s.clip if loss.clip else 0.0,
        noise=s.instance_noise,
        noise_steps=s.noise_steps or cfg.train.steps,
        feature_matching=s.feature_matching,
        hist_g=HistoricalAverage(g) if hist else None,
        hist_d=HistoricalAverage(d) if hist else None,
        hist_weight=s.historical_averaging,
        ema=EMA(g, s.ema, s.ema_rampup) if s.ema > 0 else None,
        g_steps=cfg.train.g_steps,
        aux_weight=cfg.train.aux_weight,
        split_d=split,
        augment=tuple(a for a in s.augment.split(",") if a),
    )


@dataclass
class GANStep:
    """G, D, their optimisers and the objective; ``__call__`` runs k D updates and
    ``g_steps`` G updates."""

    G: nn.Module
    D: nn.Module
    opt_g: torch.optim.Optimizer
    opt_d: torch.optim.Optimizer
    loss: Loss
    latent_dim: int
    switches: Switches = field(default_factory=Switches)
    # D scores real and fake in one forward when no layer of it mixes samples of a batch:
    # the same maths, one pass instead of two.
    joint_d_pass: bool = True
    # (rank, world) under torchrun: z is drawn for the global batch and sliced (distributed.py)
    shard: tuple[int, int] = (0, 1)
    # loss scaling for fp16 (train.precision); otherwise plain backward() and step()
    amp: Precision = field(default_factory=Precision)
    t: int = 0  # steps taken: drives the instance-noise schedule; set on resume

    def __post_init__(self) -> None:
        self.joint_d_pass = self.joint_d_pass and batch_independent(self.D)
        sw = self.switches
        # What runs after each update, in order; empty with every switch off.
        self.after_d: list[Callable[[], None]] = []
        self.after_g: list[Callable[[], None]] = []
        if sw.clip:
            self.after_d.append(lambda: penalties.clip_weights(self.D, sw.clip))
        if sw.hist_d is not None:
            self.after_d.append(lambda: sw.hist_d.update(self.D))  # type: ignore[union-attr]
        if sw.hist_g is not None:
            self.after_g.append(lambda: sw.hist_g.update(self.G))  # type: ignore[union-attr]
        if sw.ema is not None:
            self.after_g.append(lambda: sw.ema.update(self.G, self.t))  # type: ignore[union-attr]

    @property
    def sampler_g(self) -> nn.Module:
        """The G to draw samples from: the moving average of G's weights if ``ema`` is on."""
        return self.switches.ema.module if self.switches.ema is not None else self.G

    def bind(self, y: Tensor | None) -> None:
        """Bind labels ``y`` to a conditional G and D for the next update (None unbinds)."""
        bind(y, unwrap(self.G), unwrap(self.D))

    def noise(self, like: Tensor) -> Tensor:
        """z ~ N(0, I), ``[len(like), latent_dim]`` on ``like``'s device and dtype, from torch's
        global generator (seeded by the run); under torchrun this rank's slice of the global z."""
        rank, world = self.shard
        n = len(like)
        z = torch.randn(n * world, self.latent_dim, device=like.device, dtype=like.dtype)
        return z if world == 1 else z[rank * n : (rank + 1) * n]

    def noise_std(self) -> float:
        """The instance noise's std at this step."""
        sw = self.switches
        return noise_std(self.t, sw.noise, sw.noise_steps) if sw.noise else 0.0

    def d_view(self, x: Tensor, std: float) -> Tensor:
        """What D sees of ``x``: augmented (stab.augment), then with instance noise of ``std``
        (the same for reals and fakes, in D's update and in G's)."""
        if self.switches.augment:
            x = augment(x, self.switches.augment)
        return add_noise(x, std) if std > 0 else x

    def d_logits(self, real: Tensor, fake: Tensor) -> tuple[Tensor, Tensor]:
        """D's logits on real ``[N, 1]`` and on fake ``[M, 1]``."""
        if self.joint_d_pass:
            logits = self.D(torch.cat([real, fake]))
            k = len(logits) * len(real) // (len(real) + len(fake))  # packing D: a row per pack
            return logits[:k], logits[k:]
        return self.D(real), self.D(fake)

    def penalty_weights(self) -> tuple[float, float]:
        """The gammas of R1 and R2 in this step. Lazy regularisation (``stab.reg_every`` = N,
        Karras et al. 2020, section 3.2): only every N-th step (t = 0, N, 2N, ...) carries the
        penalties, N times as heavy, so that their mean weight is unchanged; (0, 0) between."""
        sw = self.switches
        if self.t % sw.reg_every:
            return 0.0, 0.0
        return sw.r1 * sw.reg_every, sw.r2 * sw.reg_every

    def d_terms(self, real: Tensor, fake: Tensor) -> tuple[Terms, Terms]:
        """D's loss terms on a real batch and detached fakes, and the measurements D(x),
        D(G(z)): ``({"loss_d": ..., "gp": ...}, {"d_real": ..., "d_fake": ...})``."""
        # (1) update D: maximise log D(x) + log(1 - D(G(z))), i.e. minimise L_D = -V
        sw = self.switches
        std = self.noise_std()  # instance noise: both of D's inputs, so that supports overlap
        real, fake = self.d_view(real, std), self.d_view(fake, std)
        r1, r2 = self.penalty_weights()
        if r1:  # R1 needs d D(x) / dx: the same D pass serves the loss and the penalty
            real = real.detach().requires_grad_(True)
        if r2:  # R2 needs d D(G(z)) / dx, on the fakes as D's inputs (no graph to G)
            fake = fake.detach().requires_grad_(True)
        real_logits, fake_logits = self.d_logits(real, fake)
        terms: Terms = {}
        if sw.smooth_real < 1 and self.loss.d_smoothed is not None:
            terms["loss_d"] = self.loss.d_smoothed(real_logits, fake_logits, sw.smooth_real)
        else:
            terms["loss_d"] = self.loss.d(real_logits, fake_logits)
        if sw.gp:  # lambda E(||grad D(x_hat)|| - 1)^2 (Gulrajani et al. 2017)
            terms["gp"] = penalties.gradient_penalty(self.D, real, fake, sw.gp)
        if r1:  # gamma/2 E||grad D(x)||^2 on reals (Mescheder et al. 2018)
            terms["r1"] = penalties.r1_penalty(real, real_logits, r1)
        if r2:  # gamma/2 E||grad D(G(z))||^2 on fakes (Mescheder et al. 2018)
            terms["r2"] = penalties.r2_penalty(fake, fake_logits, r2)
        if sw.drift:  # eps E[D(x)^2]: the critic's scores kept from drifting (Karras et al. 2018)
            terms["drift"] = penalties.drift_penalty(real_logits, sw.drift)
        if sw.hist_d is not None:  # w ||theta_D - mean of past theta_D||^2 (Salimans 2016)
            terms["hist_d"] = sw.hist_weight * sw.hist_d.penalty(self.D)
        if (aux := aux_terms(unwrap(self.D), real, fake)) is not None:  # AC-GAN: classify both
            terms["aux_d"] = sw.aux_weight * aux
        seen = {
            "d_real": torch.sigmoid(real_logits.detach()).mean(),  # mean D(x)
            "d_fake": torch.sigmoid(fake_logits.detach()).mean(),  # mean D(G(z))
        }
        return terms, seen

    def g_terms(self, fake: Tensor, real: Tensor) -> Terms:
        """G's loss terms on fakes that carry G's graph; ``real`` serves feature matching and
        a loss that pairs fakes with reals (``Loss.g_needs_real``: D scores it, no graph)."""
        # (2) update G: minimise -log D(G(z)) ("ns") or log(1 - D(G(z))) ("minimax")
        sw = self.switches
        std = self.noise_std()
        fake = self.d_view(fake, std)
        terms: Terms = {}
        d = plain(self.D)  # outside DDP: G's update computes no gradient of D's weights
        self.D.requires_grad_(False)  # only d/dx of D is needed: skip D's weight gradients
        try:
            real_logits = None
            if sw.feature_matching:  # ||E f(x) - E f(G(z))||^2, f: D's last features
                with capture_features(unwrap(self.D)) as features, torch.no_grad():
                    real_logits = d(self.d_view(real, std))
                with capture_features(unwrap(self.D)) as fake_features:
                    terms["loss_g"] = self.loss.g_loss(d(fake), real_logits)
                fm = feature_matching(features[0], fake_features[0])
                terms["fm"] = sw.feature_matching * fm
            else:
                fake_logits = d(fake)
                if self.loss.g_needs_real:  # relativistic: each fake against a real, D(x) fixed
                    with torch.no_grad():
                        real_logits = d(self.d_view(real, std))
                terms["loss_g"] = self.loss.g_loss(fake_logits, real_logits)
            if (aux := aux_terms(unwrap(self.D), fake)) is not None:  # AC-GAN: the class asked
                terms["aux_g"] = sw.aux_weight * aux
        finally:
            self.D.requires_grad_(True)
        if sw.hist_g is not None:
            terms["hist_g"] = sw.hist_weight * sw.hist_g.penalty(self.G)
        return terms

    def d_update(
        self, real: Tensor, keep_graph: bool, measure: bool = False
    ) -> tuple[Tensor, Terms]:
        """One D update on ``real``; returns the fakes it scored (with G's graph when
        ``keep_graph``) and its measurements (each term, D(x), D(G(z)); D's gradient norm
        when ``measure``)."""
        with torch.set_grad_enabled(keep_graph):
            fake = self.G(self.noise(real))
        if self.switches.split_d:
            return fake, self.split_d_update(real, fake.detach(), measure)
        terms, seen = self.d_terms(real, fake.detach())
        self.opt_d.zero_grad(set_to_none=True)
        self.amp.backward(total(terms), self.opt_d)
        if measure:
            self.amp.unscale(self.opt_d)  # fp16: the true gradients, not S times them
            seen["grad_d"] = grad_norm(self.D)
        self.amp.step(self.opt_d)
        for hook in self.after_d:
            hook()
        return fake, {**_detached(terms), **seen}

    def split_d_update(self, real: Tensor, fake: Tensor, measure: bool) -> Terms:
        """The seeds' Keras D update: ``train_on_batch(x, ones)`` then ``train_on_batch(G(z),
        zeros)``, two optimiser steps, the second with D's new weights; each batch alone
        through D (its BatchNorm sees one kind at a time). R1 joins the real step, R2 the
        fake one; the hooks (clipping) run after each. Reports L_D as the sum of the two
        cross-entropies (-V on the two batches) and D's gradient norm of the second step."""
        sw = self.switches
        std = self.noise_std()
        real, fake = self.d_view(real, std), self.d_view(fake, std)
        r1, r2 = self.penalty_weights()
        if r1:
            real = real.detach().requires_grad_(True)
        if r2:
            fake = fake.detach().requires_grad_(True)
        out: Terms = {}
        for kind, x in (("real", real), ("fake", fake)):
            logits = self.D(x)
            if kind == "real":
                terms = {"loss_d": losses.bce_real(logits, sw.smooth_real)}
                if r1:
                    terms["r1"] = penalties.r1_penalty(x, logits, r1)
                if sw.drift:
                    terms["drift"] = penalties.drift_penalty(logits, sw.drift)
            else:
                terms = {"loss_d": losses.bce_fake(logits)}
                if r2:
                    terms["r2"] = penalties.r2_penalty(x, logits, r2)
            self.opt_d.zero_grad(set_to_none=True)
            self.amp.backward(total(terms), self.opt_d)
            if measure and kind == "fake":
                self.amp.unscale(self.opt_d)
                out["grad_d"] = grad_norm(self.D)
            self.amp.step(self.opt_d)
            for hook in self.after_d:
                hook()
            for k, v in _detached(terms).items():
                out[k] = out[k] + v if k in out else v
            out["d_" + kind] = torch.sigmoid(logits.detach()).mean()
        return out

    def g_update(self, fake: Tensor, real: Tensor, measure: bool = False) -> Terms:
        """One G update on ``fake``; returns each term (and G's gradient norm when
        ``measure``)."""
        terms = self.g_terms(fake, real)
        self.opt_g.zero_grad(set_to_none=True)
        self.amp.backward(total(terms), self.opt_g)
        out = _detached(terms)
        if measure:
            self.amp.unscale(self.opt_g)
            out["grad_g"] = grad_norm(self.G)
        self.amp.step(self.opt_g)
        for hook in self.after_g:
            hook()
        return out

    def __call__(
        self, reals: list[Tensor], measure: bool = False, labels: list[Tensor] | None = None
    ) -> dict[str, Tensor]:
        """k = ``len(reals)`` D updates, one per real batch, then ``g_steps`` G updates: the
        first reuses the last D update's fakes, the others draw fresh z (with the labels of
        the last real batch). A conditional G and D get each batch's ``labels`` (``[N]``
        each): fakes carry the labels of the reals.

        Returns detached scalar tensors (no host sync): the last D update's and the last G
        update's terms, D(x), D(G(z)); gradient norms only when ``measure``.
        """
        ys: list[Tensor | None] = list(labels) if labels is not None else [None] * len(reals)
        *early, last = reals
        try:
            for real, y in zip(early, ys, strict=False):
                self.bind(y)
                self.d_update(real, keep_graph=False)
            self.bind(ys[-1])
            fake, stats = self.d_update(last, keep_graph=True, measure=measure)
            for i in range(self.switches.g_steps):
                if i > 0:
                    fake = self.G(self.noise(last))
                stats.update(self.g_update(fake, last, measure=measure and i == 0))
        finally:
            self.bind(None)  # between steps G draws every class in turn (samples, evaluation)
        self.t += 1
        return stats


def _detached(terms: Mapping[str, Tensor]) -> Terms:
    return {k: v.detach() for k, v in terms.items()}
