"""The course's fully connected GAN (Goodfellow et al. 2014, as taught for MNIST).

G: z[100] -> Linear 128 -> LeakyReLU(0.2) -> BatchNorm1d -> Linear 256 -> ... -> 512 ->
   Linear prod(shape) -> tanh, reshaped to the sample shape.
D: x -> flatten -> Linear 512 -> LeakyReLU(0.2) -> Linear 256 -> LeakyReLU(0.2) -> Linear 1 (logit).

BatchNorm momentum: PyTorch updates ``running = (1 - m) * running + m * batch``, Keras
``running = m * running + (1 - m) * batch``. The course's Keras code uses momentum 0.8, so the
same averaging in PyTorch is m = 0.2 (the default here, ``bn_momentum``). Passing 0.8 as
BatchNorm1d's second positional argument would set eps = 0.8 instead, a bug famous GAN code
shipped; we pass both by keyword.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from ganforge.nets.layers import Standardise


class MLPGenerator(nn.Module):
    """z ``[N, latent]`` -> sample ``[N, *shape]`` through Linear-LeakyReLU-BatchNorm blocks."""

    def __init__(
        self,
        latent_dim: int,
        shape: tuple[int, ...],
        hidden: tuple[int, ...] = (128, 256, 512),
        leak: float = 0.2,
        batchnorm: bool = True,
        bn_momentum: float = 0.2,
        bn_eps: float = 1e-5,
        out: str = "tanh",
        standardize: bool = False,
    ) -> None:
        super().__init__()
        self.latent_dim = latent_dim
        self.shape = shape
        layers: list[nn.Module] = []
        width = latent_dim
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(leak)]
            if batchnorm:
                layers.append(nn.BatchNorm1d(h, eps=bn_eps, momentum=bn_momentum))
            width = h
        layers.append(nn.Linear(width, math.prod(shape)))
        if out == "tanh":
            layers.append(nn.Tanh())  # images live in [-1, 1]
        if standardize:  # G works in standard units; its samples come out in the data's
            layers.append(Standardise(math.prod(shape), inverse=True))
        self.net = nn.Sequential(*layers)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.net(z).view(len(z), *self.shape)


class MLPDiscriminator(nn.Module):
    """sample ``[N, *shape]`` -> logit ``[N, 1]``; no normalisation, so samples are independent."""

    def __init__(
        self,
        shape: tuple[int, ...],
        hidden: tuple[int, ...] = (512, 256),
        leak: float = 0.2,
        standardize: bool = False,
    ) -> None:
        super().__init__()
        layers: list[nn.Module] = [nn.Flatten()]
        if standardize:  # the data's units in, standard units on
            layers.append(Standardise(math.prod(shape), inverse=False))
        width = math.prod(shape)
        for h in hidden:
            layers += [nn.Linear(width, h), nn.LeakyReLU(leak)]
            width = h
        layers.append(nn.Linear(width, 1))
        self.net = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)
