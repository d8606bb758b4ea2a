"""Figures of image-to-image results against the truth: PSNR, SSIM, colourfulness, ink.

Pure functions of tensors. PSNR and SSIM follow the super-resolution convention (Ledig et al.
2017; Wang et al. 2018): on the luminance Y (BT.601) of images in [0, 1], with ``border``
pixels cropped off each side, per image, then averaged over the images.
"""

from __future__ import annotations

import torch
from torchmetrics.functional.image import structural_similarity_index_measure

from ganforge.data.transforms import luminance

Tensor = torch.Tensor


def to_unit(x: Tensor) -> Tensor:
    """Images in [-1, 1] -> [0, 1]."""
    return ((x + 1) / 2).clamp(0, 1)


def luma(x: Tensor, border: int = 0) -> Tensor:
    """Y of images ``[N, C, H, W]`` (C = 1 is already Y), with ``border`` pixels cropped."""
    y = luminance(x) if x.shape[1] == 3 else x
    if border:
        y = y[..., border:-border, border:-border]
    return y


def psnr(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Peak signal-to-noise ratio per image ``[N]``: 10 log10(R^2 / mean((x - y)^2)), in dB;
    capped at 100 dB where the images are equal."""
    mse = (x.double() - y.double()).square().flatten(1).mean(1)
    return (10 * torch.log10(data_range**2 / mse.clamp_min(1e-10))).float()


def ssim(x: Tensor, y: Tensor, data_range: float = 1.0) -> Tensor:
    """Structural similarity (Wang et al. 2004; Gaussian window 11, sigma 1.5) per image
    ``[N]``, by torchmetrics."""
    out = structural_similarity_index_measure(
        x.float(), y.float(), data_range=data_range, reduction="none"
    )
    assert isinstance(out, Tensor)
    return out


def colourfulness(rgb: Tensor) -> Tensor:
    """Hasler and Suesstrunk's colourfulness (2003, eq. 3) per image ``[N]`` of sRGB
    ``[N, 3, H, W]`` in [0, 1], on their 0..255 scale: rg = R - G, yb = (R + G) / 2 - B,
    M = sqrt(std(rg)^2 + std(yb)^2) + 0.3 sqrt(mean(rg)^2 + mean(yb)^2). Grey images score 0."""
    r, g, b = (rgb.double() * 255).unbind(1)
    rg = (r - g).flatten(1)
    yb = ((r + g) / 2 - b).flatten(1)
    spread = (rg.var(1, unbiased=False) + yb.var(1, unbiased=False)).sqrt()
    centre = (rg.mean(1).square() + yb.mean(1).square()).sqrt()
    return (spread + 0.3 * centre).float()


def ink(x: Tensor) -> Tensor:
    """Ink per image ``[N]``: the mean brightness of digits ``[N, 1, H, W]`` in [-1, 1] mapped
    to [0, 1] (white strokes on black): a thicker stroke holds more."""
    return to_unit(x).flatten(1).mean(1)
