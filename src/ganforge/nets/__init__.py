"""Generator and discriminator families, built from a ``ModelConfig`` and the data's shape.

The tables: ``ARCHS`` (model.arch, nets/archs.py) and ``conditional.CONDITIONING`` (model.cond).
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.nets import conditional
from ganforge.nets.archs import ARCHS
from ganforge.nets.layers import PackedD, apply_switches, packed_shape

__all__ = ["ARCHS", "build", "generate", "recompute_batchnorm"]


def build(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """(G, D) for samples of ``shape``, with the layers of the model's switches (spectral norm,
    minibatch layers, virtual batch norm, dropout); G has a ``latent_dim`` attribute. With
    ``cfg.cond`` other than "none", class-conditional nets G(z, y), D(x, y) (nets/conditional.py).
    With ``cfg.pack`` m > 1, D is built for m samples joined and judges packs (``PackedD``).
    """
    if cfg.standardize and (cfg.arch != "mlp" or cfg.cond != "none" or len(shape) != 1):
        raise ConfigError(
            "model.standardize works with points (1-D or 2-D data) and the unconditional mlp "
            f"model; got model.arch={cfg.arch}, model.cond={cfg.cond}, samples of shape "
            f"{list(shape)}"
        )
    if cfg.cond != "none":
        if cfg.pack > 1:
            raise ConfigError("model.pack works with unconditional models only (model.cond=none)")
        return apply_switches(*conditional.build(cfg, shape), cfg, shape)
    if cfg.pack == 1:
        return apply_switches(*ARCHS[cfg.arch](cfg, shape), cfg, shape)
    if cfg.arch == "progressive":
        raise ConfigError("model.pack works with the mlp and dcgan models, not progressive")
    g, _ = ARCHS[cfg.arch](cfg, shape)  # the builders make both nets: G here, D below
    d_shape = packed_shape(shape, cfg.pack)
    _, d = ARCHS[cfg.arch](cfg, d_shape)
    g, d = apply_switches(g, d, cfg, d_shape)
    return g, PackedD(d, cfg.pack)


@torch.no_grad()
def generate(
    g: nn.Module, z: torch.Tensor, batch: int = 1024, y: torch.Tensor | None = None
) -> torch.Tensor:
    """G(z) (or G(z, y) for a conditional G and labels ``y`` ``[N]``) in chunks of ``batch``,
    in eval mode (BatchNorm uses its running statistics); G's mode is restored afterwards."""
    was_training = g.training
    g.eval()
    try:
        return torch.cat(
            [
                g(z[i : i + batch]) if y is None else g(z[i : i + batch], y[i : i + batch])
                for i in range(0, len(z), batch)
            ]
        )
    finally:
        g.train(was_training)


BN_BATCHES = 16  # batches of z that re-estimate an averaged G's BatchNorm statistics
BN_BATCH = 256


@torch.no_grad()
def recompute_batchnorm(
    g: nn.Module, seed: int, batches: int = BN_BATCHES, batch: int = BN_BATCH
) -> bool:
    """Re-estimate the running statistics of every BatchNorm in ``g`` (an averaged G) for its
    own weights: the average over ``batches`` batches of G's own activations of each batch's
    mean and unbiased variance (BatchNorm's cumulative average, momentum None), z ~ N(0, I)
    from ``torch.Generator().manual_seed(seed)`` (a conditional G draws each class in turn).
    An exponential moving average of G's weights with the live G's statistics copied would
    normalise by statistics of other weights (Yazici et al. 2019 recompute them). Returns
    False, changing nothing, when ``g`` has no BatchNorm; G's mode, the layers' momenta and
    the global RNG are restored."""
    norms = [m for m in g.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm)]
    if not norms:
        return False
    param = next(g.parameters())
    gen = torch.Generator().manual_seed(seed)
    was_training, momenta = g.training, [m.momentum for m in norms]
    try:
        for m in norms:
            m.reset_running_stats()
            m.momentum = None  # a cumulative average: every batch counts equally
        g.train()
        for _ in range(batches):
            z = torch.randn(batch, int(g.latent_dim), generator=gen)  # type: ignore[arg-type]
            g(z.to(param))
    finally:
        for m, momentum in zip(norms, momenta, strict=True):
            m.momentum = momentum
        g.train(was_training)
    return True
