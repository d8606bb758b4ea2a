"""DCGAN-style convolutional G and D (Radford, Metz & Chintala 2015).

G: z -> ConvTranspose(k=s0) to an s0 x s0 map, then stride-2 ConvTranspose(4, 2, 1) blocks with
BatchNorm and ReLU, doubling the size each time, and tanh at the end. D mirrors it with stride-2
convolutions and LeakyReLU(0.2), then a convolution over the whole s0 x s0 map to one logit.
Each feature of that map sees a patch of the image (10 x 10 at 28 x 28), so the logit is a sum
of patch scores; with ``fc`` > 0 a hidden Linear layer of that width and LeakyReLU come before
the logit, and D can judge how the patches fit together.
s0 = 7 for 28 x 28 images (7 -> 14 -> 28); s0 = 4 for 32 and 64 (4 -> 8 -> 16 -> 32 [-> 64]).
By default D has no BatchNorm: each sample's logit depends on that sample alone, which gradient
penalties need and lets one D pass score real and fake together. With ``d_batchnorm`` (as the
paper, and the mnist-dcgan presets) D normalises by the batch, so the step scores reals and
fakes in two passes. Weights ~ N(0, 0.02), as in the paper.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.errors import ConfigError

SIZES = (28, 32, 64)


def _plan(size: int) -> tuple[int, int]:
    """(s0, number of stride-2 stages) for an output of ``size`` x ``size``."""
    if size not in SIZES:
        raise ConfigError(f"the dcgan model makes images of size {SIZES}, not {size}")
    s0 = 7 if size == 28 else 4
    return s0, (size // s0).bit_length() - 1


def dcgan_init(m: nn.Module) -> None:
    """N(0, 0.02) for convolutions, N(1, 0.02) for BatchNorm scales (Radford et al. 2015)."""
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
        nn.init.normal_(m.weight, 0.0, 0.02)
        if m.bias is not None:
            nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
        nn.init.normal_(m.weight, 1.0, 0.02)
        nn.init.zeros_(m.bias)


class DCGANGenerator(nn.Module):
    """z ``[N, latent]`` -> images ``[N, C, size, size]`` in [-1, 1]."""

    def __init__(
        self,
        latent_dim: int,
        shape: tuple[int, int, int],
        width: int = 64,
        bn_momentum: float = 0.1,
        bn_eps: float = 1e-5,
        fc: int = 0,
    ) -> None:
        super().__init__()
        channels, size, _ = shape
        s0, stages = _plan(size)
        self.latent_dim = latent_dim
        ch = width * 2 ** (stages - 1)
        layers: list[nn.Module] = []
        if fc:  # a hidden layer on z (a Linear on the 1 x 1 map), BatchNorm and ReLU
            layers += [
                nn.ConvTranspose2d(latent_dim, fc, 1, 1, 0, bias=False),
                nn.BatchNorm2d(fc, eps=bn_eps, momentum=bn_momentum),
                nn.ReLU(True),
            ]
        layers += [
            nn.ConvTranspose2d(fc or latent_dim, ch, s0, 1, 0, bias=False),  # [N, ch, s0, s0]
            nn.BatchNorm2d(ch, eps=bn_eps, momentum=bn_momentum),
            nn.ReLU(True),
        ]
        for _ in range(stages - 1):
            layers += [
                nn.ConvTranspose2d(ch, ch // 2, 4, 2, 1, bias=False),  # doubles H and W
                nn.BatchNorm2d(ch // 2, eps=bn_eps, momentum=bn_momentum),
                nn.ReLU(True),
            ]
            ch //= 2
        layers += [nn.ConvTranspose2d(ch, channels, 4, 2, 1), nn.Tanh()]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z.view(len(z), -1, 1, 1))


class DCGANDiscriminator(nn.Module):
    """images ``[N, C, size, size]`` -> logit ``[N, 1]``."""

    def __init__(
        self,
        shape: tuple[int, int, int],
        width: int = 64,
        leak: float = 0.2,
        batchnorm: bool = False,
        bn_momentum: float = 0.1,
        fc: int = 0,
    ) -> None:
        super().__init__()
        channels, size, _ = shape
        s0, stages = _plan(size)
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 4, 2, 1), nn.LeakyReLU(leak, True)]
        ch = width
        for _ in range(stages - 1):
            layers.append(nn.Conv2d(ch, ch * 2, 4, 2, 1, bias=not batchnorm))  # halves H, W
            if batchnorm:  # as in the paper: on every layer of D but the first
                layers.append(nn.BatchNorm2d(ch * 2, momentum=bn_momentum))
            layers.append(nn.LeakyReLU(leak, True))
            ch *= 2
        if fc:  # a hidden layer over the whole map: D's verdict no longer linear in its patches
            layers += [
                nn.Flatten(),
                nn.Linear(ch * s0 * s0, fc),
                nn.LeakyReLU(leak, True),
                nn.Linear(fc, 1),
            ]
        else:
            layers += [nn.Conv2d(ch, 1, s0, 1, 0), nn.Flatten()]  # [N, 1]
        self.net = nn.Sequential(*layers)
        self.apply(dcgan_init)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
