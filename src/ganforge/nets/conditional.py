"""Class-conditional G and D: the label y steers what G draws and what D judges.

Three ways to give D the label, one table (``CONDITIONING``) maps their names to builders:

- ``concat`` (Mirza & Osindero 2014): a learned label embedding e(y) is concatenated to z for
  G and to D's input: flattened pixels for the MLP, ``E`` constant feature maps
  ``e(y)[:, :, None, None]`` broadcast over H x W for the convolutional D.
- ``projection`` (Miyato & Koyama 2018): D(x, y) = psi(phi(x)) + <embed(y), phi(x)>, with phi the
  unconditional trunk of D (its features ``[N, F]``), psi a linear head and embed(y) ``[N, F]``;
  the inner product is the log density ratio of the class term in their derivation, eq. (3).
- ``acgan`` (Odena, Olah & Shlens 2017): D keeps an unconditional real/fake logit psi(phi(x)) and
  adds an auxiliary classifier c(phi(x)) ``[N, K]`` trained with cross-entropy on the true labels
  of real images and the requested labels of fakes; G minimises the same cross-entropy on its
  fakes (``acgan_loss``), i.e. L_C = E[log P(C = c | X_real)] + E[log P(C = c | X_fake)].

G is conditioned the same way in all three: G(z, y) = G_base([z, e(y)]).

Labels reach the nets explicitly, ``G(z, y)`` and ``D(x, y)``, or bound for a training step with
``bind(y, G, D)``: then ``G(z)`` and ``D(x)`` use the bound labels, so code written for
unconditional nets (the step, gradient penalties, R1) runs unchanged. Fakes are drawn with the
labels of the real batch they are scored with, so one label vector serves both; a D input of
k times the bound batch (real and fake scored in one pass) uses the labels repeated k times.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import torch
import torch.nn.functional as F
from torch import nn

from ganforge.config import COND_NAMES, ModelConfig
from ganforge.errors import ConfigError, GanforgeError
from ganforge.nets.archs import base_nets
from ganforge.nets.dcgan import DCGANDiscriminator
from ganforge.nets.mlp import MLPDiscriminator

Tensor = torch.Tensor


class Labelled(nn.Module):
    """A net that takes labels, explicitly or bound with ``bind`` (not saved with the weights)."""

    num_classes: int
    bound: Tensor | None = None

    def labels(self, y: Tensor | None, n: int) -> Tensor:
        """``y``, or the bound labels ``[M]`` repeated to ``n`` (a multiple of M)."""
        if y is not None:
            return y
        b = self.bound
        if b is None:
            raise ValueError(f"{type(self).__name__} needs labels: call it with y, or bind them")
        if n % len(b):
            raise ValueError(f"{n} samples for {len(b)} bound labels")
        return b.repeat(n // len(b))


def bind(y: Tensor | None, *modules: nn.Module) -> None:
    """Bind labels ``y`` ``[N]`` to the conditional nets among ``modules`` (None unbinds)."""
    for m in modules:
        if isinstance(m, Labelled):
            m.bound = y


class ConditionalGenerator(Labelled):
    """G(z, y) = base([z, e(y)]): z ``[N, latent]``, y ``[N]`` int64 -> samples of ``base``.

    With no labels given or bound, G(z) draws the classes in turn (0, 1, ..., K - 1, 0, ...),
    so code written for unconditional generators (evaluation, sample grids) gets every class
    equally often."""

    def __init__(self, base: nn.Module, latent_dim: int, num_classes: int, embed_dim: int) -> None:
        super().__init__()
        self.base = base
        self.latent_dim = latent_dim
        self.num_classes = num_classes
        self.embed = nn.Embedding(num_classes, embed_dim)  # e(y) [N, E]

    def forward(self, z: Tensor, y: Tensor | None = None) -> Tensor:
        if y is None and self.bound is None:
            y = torch.arange(len(z), device=z.device) % self.num_classes
        e = self.embed(self.labels(y, len(z)))
        return self.base(torch.cat([z, e], dim=1))  # base sees [N, latent + E]


def join_label(x: Tensor, e: Tensor, flat: bool = False) -> Tensor:
    """D's input with the label embedding ``e`` ``[N, E]`` joined: points, or pixels flattened
    when ``flat``, ``[N, D + E]``; images ``[N, C + E, H, W]`` (each entry a constant map)."""
    if x.ndim == 4 and not flat:
        n, _, h, w = x.shape
        return torch.cat([x, e[:, :, None, None].expand(n, e.shape[1], h, w)], dim=1)
    return torch.cat([x.flatten(1), e], dim=1)


class ConcatDiscriminator(Labelled):
    """D(x, y) = base(join_label(x, e(y))) (Mirza & Osindero 2014) -> logit ``[N, 1]``."""

    def __init__(self, base: nn.Module, num_classes: int, embed_dim: int, flat: bool) -> None:
        super().__init__()
        self.base = base
        self.num_classes = num_classes
        self.flat = flat  # True for a fully connected base: join to the flattened pixels
        self.embed = nn.Embedding(num_classes, embed_dim)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.base(join_label(x, self.embed(self.labels(y, len(x))), self.flat))


class ProjectionDiscriminator(Labelled):
    """D(x, y) = psi(phi(x)) + <embed(y), phi(x)> (Miyato & Koyama 2018) -> logit ``[N, 1]``.

    ``trunk`` maps x to features phi(x) ``[N, F]``.
    """

    def __init__(self, trunk: nn.Module, features: int, num_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.num_classes = num_classes
        self.head = nn.Linear(features, 1)  # psi
        self.embed = nn.Embedding(num_classes, features)  # the class vectors V, [K, F]
        nn.init.normal_(self.embed.weight, 0.0, 1.0 / math.sqrt(features))

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        h = self.trunk(x)  # [N, F]
        v = self.embed(self.labels(y, len(x)))  # [N, F]
        return self.head(h) + (v * h).sum(dim=1, keepdim=True)


class ACGANDiscriminator(Labelled):
    """An unconditional real/fake logit and an auxiliary classifier on shared features
    (Odena et al. 2017). ``forward(x, y)`` ignores y and returns the logit ``[N, 1]``;
    ``scores(x)`` returns (logit ``[N, 1]``, class logits ``[N, K]``) from one trunk pass."""

    def __init__(self, trunk: nn.Module, features: int, num_classes: int) -> None:
        super().__init__()
        self.trunk = trunk
        self.num_classes = num_classes
        self.head = nn.Linear(features, 1)
        self.classifier = nn.Linear(features, num_classes)

    def scores(self, x: Tensor) -> tuple[Tensor, Tensor]:
        h = self.trunk(x)
        return self.head(h), self.classifier(h)

    def forward(self, x: Tensor, y: Tensor | None = None) -> Tensor:
        return self.head(self.trunk(x))


def d_scores(d: nn.Module, x: Tensor, y: Tensor) -> tuple[Tensor, Tensor | None]:
    """(real/fake logit ``[N, 1]``, auxiliary class logits ``[N, K]`` or None) of any
    conditional D, from one forward pass."""
    if isinstance(d, ACGANDiscriminator):
        return d.scores(x)
    return d(x, y), None


def acgan_loss(class_logits: Tensor, y: Tensor) -> Tensor:
    """Cross-entropy -mean log P(C = y | x) of the auxiliary classifier (Odena et al. 2017)."""
    return F.cross_entropy(class_logits, y)


def aux_terms(d: nn.Module, *xs: Tensor) -> Tensor | None:
    """AC-GAN's classifier loss on the bound labels, summed over the batches ``xs``: for D's
    update CE(c(real), y) + CE(c(fake), y), for G's CE(c(fake), y); None for other
    discriminators. It costs one more D pass per batch than the adversarial term: kept apart
    from the step's maths for clarity."""
    if not isinstance(d, ACGANDiscriminator):
        return None
    y = d.labels(None, len(xs[0]))
    return sum((acgan_loss(d.scores(x)[1], y) for x in xs), torch.zeros((), device=y.device))


def is_conditional(module: nn.Module) -> bool:
    """True for a G or D that takes labels (it has ``num_classes``)."""
    return int(getattr(module, "num_classes", 0)) > 0


def num_classes(g: nn.Module) -> int:
    """K of a conditional G, 0 for an unconditional one."""
    return int(getattr(g, "num_classes", 0)) if is_conditional(g) else 0


def sampling_labels(g: nn.Module, n: int, label: int | None = None) -> Tensor | None:
    """The labels of ``n`` samples: all ``label``, or 0, 1, ..., K - 1, 0, 1, ... (every class
    equally often, one row per class in a sample grid); None for an unconditional G."""
    k = num_classes(g)
    if k == 0:
        if label is not None:
            raise GanforgeError("--label needs a conditional run (model.cond), this one is not")
        return None
    if label is None:
        return torch.arange(n) % k
    if not 0 <= label < k:
        raise GanforgeError(f"--label must be a class in 0..{k - 1}, got {label}")
    return torch.full((n,), label, dtype=torch.long)


# --- building -----------------------------------------------------------------------------


def _trunk(d: nn.Module, shape: tuple[int, ...]) -> tuple[nn.Module, int]:
    """The unconditional D without its last linear map: (phi, F), phi(x) ``[N, F]``."""
    layers = list(d.net)  # type: ignore[arg-type]
    if isinstance(d, MLPDiscriminator):
        trunk = nn.Sequential(*layers[:-1])  # drop Linear(F, 1)
    elif isinstance(d, DCGANDiscriminator):
        trunk = nn.Sequential(*layers[:-2], nn.Flatten())  # drop Conv2d(ch, 1, s0), Flatten
    else:  # pragma: no cover - the table below only builds these two
        raise ConfigError(f"no trunk for {type(d).__name__}")
    with torch.no_grad():
        trunk.eval()
        features = int(trunk(torch.zeros(2, *shape)).shape[1])
        trunk.train()
    return trunk, features


def _concat(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    k, e = cfg.num_classes, cfg.embed_dim
    # D's input: pixels flattened with E more entries (MLP), or E more channels (convolutional)
    d_shape = (math.prod(shape) + e,) if cfg.arch == "mlp" else (shape[0] + e, *shape[1:])
    g, d = base_nets(cfg, cfg.latent_dim + e, d_shape, shape)
    return ConditionalGenerator(g, cfg.latent_dim, k, e), ConcatDiscriminator(
        d, k, e, flat=cfg.arch == "mlp"
    )


def _projection(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    k, e = cfg.num_classes, cfg.embed_dim
    g, d = base_nets(cfg, cfg.latent_dim + e, shape, shape)
    trunk, features = _trunk(d, shape)
    return ConditionalGenerator(g, cfg.latent_dim, k, e), ProjectionDiscriminator(
        trunk, features, k
    )


def _acgan(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    k, e = cfg.num_classes, cfg.embed_dim
    g, d = base_nets(cfg, cfg.latent_dim + e, shape, shape)
    trunk, features = _trunk(d, shape)
    return ConditionalGenerator(g, cfg.latent_dim, k, e), ACGANDiscriminator(trunk, features, k)


# One table: model.cond's choices, --help and the tests read it ("none": unconditional).
CONDITIONING: dict[str, Callable[[ModelConfig, tuple[int, ...]], tuple[nn.Module, nn.Module]]] = {
    "concat": _concat,
    "projection": _projection,
    "acgan": _acgan,
}
assert tuple(CONDITIONING) == COND_NAMES


def build(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """Conditional (G, D) for ``cfg.cond`` in ``CONDITIONING``; G has ``latent_dim`` and
    ``num_classes`` attributes, D has ``num_classes``."""
    if cfg.num_classes < 2:
        raise ConfigError(f"model.num_classes must be at least 2, got {cfg.num_classes}")
    # These switches rebuild D (or G) from the unconditional body and would drop the label.
    unsupported = {
        "model.minibatch_discrimination": cfg.minibatch_discrimination,
        "model.minibatch_stddev": cfg.minibatch_stddev,
        "model.virtual_batch_norm": cfg.virtual_batch_norm,
    }
    for key, on in unsupported.items():
        if on:
            raise ConfigError(
                f"{key} does not work with a conditional model (model.cond={cfg.cond})"
            )
    return CONDITIONING[cfg.cond](cfg, shape)
