"""The unconditional network families and their table, ``ARCHS`` (``model.arch``).

``base_nets`` builds G for a latent of any width and D for inputs of any shape, so that the
conditional nets (nets/conditional.py) reuse the same bodies with the label's entries added.
"""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from ganforge.config import ARCH_NAMES, ModelConfig
from ganforge.errors import ConfigError
from ganforge.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.nets.mlp import MLPDiscriminator, MLPGenerator
from ganforge.nets.progressive import build as build_progressive

Builder = Callable[[ModelConfig, tuple[int, ...]], tuple[nn.Module, nn.Module]]


def base_nets(
    cfg: ModelConfig, g_latent: int, d_shape: tuple[int, ...], shape: tuple[int, ...]
) -> tuple[nn.Module, nn.Module]:
    """The MLP or DCGAN pair: G from ``g_latent`` inputs to samples of ``shape``, D for inputs
    of ``d_shape`` (``shape`` itself, or with a label embedding joined)."""
    if cfg.arch == "mlp":
        g: nn.Module = MLPGenerator(
            g_latent,
            shape,
            cfg.g_hidden,
            cfg.leak,
            cfg.g_batchnorm,
            cfg.bn_momentum,
            out=cfg.g_out,
            standardize=cfg.standardize,
        )
        return g, MLPDiscriminator(d_shape, cfg.d_hidden, cfg.leak, cfg.standardize)
    if cfg.arch == "dcgan":
        if len(shape) != 3 or shape[1] != shape[2]:
            raise ConfigError(
                f"the dcgan model needs square images [C, H, W]; the data has samples of shape "
                f"{list(shape)} (use model.arch=mlp for points)"
            )
        c, h, w = shape
        dc, dh, dw = d_shape
        return (
            DCGANGenerator(g_latent, (c, h, w), cfg.width, cfg.bn_momentum, fc=cfg.g_fc),
            DCGANDiscriminator(
                (dc, dh, dw), cfg.width, cfg.leak, cfg.d_batchnorm, cfg.bn_momentum, cfg.d_fc
            ),
        )
    raise ConfigError(f"model.cond={cfg.cond} works with model.arch mlp or dcgan, not {cfg.arch}")


def _plain(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    return base_nets(cfg, cfg.latent_dim, shape, shape)


def _progressive(cfg: ModelConfig, shape: tuple[int, ...]) -> tuple[nn.Module, nn.Module]:
    return build_progressive(cfg.latent_dim, shape, cfg.width, cfg.d_batchnorm)


# One table of architectures (names: config.ARCH_NAMES): --help and the tests read it.
ARCHS: dict[str, Builder] = {"mlp": _plain, "dcgan": _plain, "progressive": _progressive}
assert tuple(ARCHS) == ARCH_NAMES
