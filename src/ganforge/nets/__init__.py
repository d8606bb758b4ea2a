"""Generator and discriminator families, built from a ``ModelConfig`` and the data's shape."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.nets.mlp import MLPDiscriminator, MLPGenerator

Builder = Callable[[ModelConfig, tuple[int, ...]], tuple[nn.Module, nn.Module]]


def _mlp(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    g = MLPGenerator(
        cfg.latent_dim,
        shape,
        cfg.g_hidden,
        cfg.leak,
        cfg.g_batchnorm,
        cfg.bn_momentum,
        out=cfg.g_out,
    )
    return g, MLPDiscriminator(shape, cfg.d_hidden, cfg.leak)


def _dcgan(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    if len(shape) != 3 or shape[1] != shape[2]:
        raise ConfigError(
            f"the dcgan model needs square images [C, H, W]; the data has samples of shape "
            f"{list(shape)} (use model.arch=mlp for points)"
        )
    c, h, w = shape
    return (
        DCGANGenerator(cfg.latent_dim, (c, h, w), cfg.width, cfg.bn_momentum),
        DCGANDiscriminator((c, h, w), cfg.width, cfg.leak, cfg.d_batchnorm, cfg.bn_momentum),
    )


def _progressive(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    from ganforge.nets import progressive

    return progressive.build(cfg.latent_dim, shape, cfg.width)


# One table of architectures: config validation, --help and the tests read it.
ARCHS: dict[str, Builder] = {"mlp": _mlp, "dcgan": _dcgan, "progressive": _progressive}


def build(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    """(G, D) for samples of ``shape``, with the layers of the model's switches (spectral norm,
    minibatch layers, virtual batch norm, dropout); G has a ``latent_dim`` attribute. With
    ``cfg.cond`` other than "none", class-conditional nets G(z, y), D(x, y) (nets/conditional.py).
    With ``cfg.pack`` m > 1, D is built for m samples joined and judges packs (``PackedD``).
    """
    from ganforge.nets.layers import PackedD, apply_switches, packed_shape

    if cfg.cond != "none":
        from ganforge.nets import conditional

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
