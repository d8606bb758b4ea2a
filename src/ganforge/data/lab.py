"""sRGB <-> CIE L*a*b* (D65 white), in torch: colourisation predicts a*b* from L*.

sRGB in [0, 1] -> linear light (the sRGB transfer curve undone) -> XYZ (the sRGB primaries'
matrix, IEC 61966-2-1) -> L*a*b* (CIE 1976): L = 116 f(Y/Yn) - 16, a = 500 (f(X/Xn) - f(Y/Yn)),
b = 200 (f(Y/Yn) - f(Z/Zn)), f(t) = t^(1/3) above (6/29)^3, linear below. L is in [0, 100],
a and b within about [-110, 110]; the networks see L / 50 - 1 and ab / 110 (``AB_SCALE``).
"""

from __future__ import annotations

import torch

Tensor = torch.Tensor

AB_SCALE = 110.0  # a*, b* of sRGB colours lie within about +-110: ab / 110 is in [-1, 1]
_WHITE = (0.95047, 1.0, 1.08883)  # D65 reference white, Y = 1
_RGB_TO_XYZ = (
    (0.412453, 0.357580, 0.180423),
    (0.212671, 0.715160, 0.072169),
    (0.019334, 0.119193, 0.950227),
)
_DELTA = 6.0 / 29.0


def _matrix(rows: tuple[tuple[float, ...], ...], like: Tensor) -> Tensor:
    return torch.tensor(rows, dtype=like.dtype, device=like.device)


def rgb_to_lab(rgb: Tensor) -> Tensor:
    """sRGB ``[N, 3, H, W]`` in [0, 1] -> L*a*b* ``[N, 3, H, W]`` (L in [0, 100])."""
    rgb = rgb.clamp(0, 1)
    lin = torch.where(rgb <= 0.04045, rgb / 12.92, ((rgb + 0.055) / 1.055) ** 2.4)
    xyz = torch.einsum("ij,njhw->nihw", _matrix(_RGB_TO_XYZ, rgb), lin)
    xyz = xyz / torch.tensor(_WHITE, dtype=rgb.dtype, device=rgb.device).view(1, 3, 1, 1)
    f = torch.where(
        xyz > _DELTA**3, xyz.clamp_min(1e-12) ** (1 / 3), xyz / (3 * _DELTA**2) + 4 / 29
    )
    fx, fy, fz = f[:, 0], f[:, 1], f[:, 2]
    return torch.stack((116 * fy - 16, 500 * (fx - fy), 200 * (fy - fz)), dim=1)


def lab_to_rgb(lab: Tensor) -> Tensor:
    """L*a*b* ``[N, 3, H, W]`` -> sRGB ``[N, 3, H, W]`` in [0, 1] (out-of-gamut clipped)."""
    fy = (lab[:, 0] + 16) / 116
    f = torch.stack((fy + lab[:, 1] / 500, fy, fy - lab[:, 2] / 200), dim=1)
    xyz = torch.where(f > _DELTA, f**3, 3 * _DELTA**2 * (f - 4 / 29))
    xyz = xyz * torch.tensor(_WHITE, dtype=lab.dtype, device=lab.device).view(1, 3, 1, 1)
    inv = torch.linalg.inv(_matrix(_RGB_TO_XYZ, lab).double()).to(lab.dtype)
    lin = torch.einsum("ij,njhw->nihw", inv, xyz).clamp(0, 1)
    rgb = torch.where(
        lin <= 0.0031308, 12.92 * lin, 1.055 * lin.clamp_min(1e-12) ** (1 / 2.4) - 0.055
    )
    return rgb.clamp(0, 1)


def split_lab(rgb: Tensor) -> tuple[Tensor, Tensor]:
    """sRGB ``[N, 3, H, W]`` in [0, 1] -> (L ``[N, 1, H, W]``, ab ``[N, 2, H, W]``), both scaled
    to about [-1, 1] as the networks see them: L / 50 - 1 and ab / 110."""
    lab = rgb_to_lab(rgb)
    return lab[:, :1] / 50 - 1, lab[:, 1:] / AB_SCALE


def join_lab(light: Tensor, ab: Tensor) -> Tensor:
    """``split_lab``'s inverse: scaled L and ab -> sRGB ``[N, 3, H, W]`` in [0, 1]."""
    lab = torch.cat(((light + 1) * 50, ab * AB_SCALE), dim=1)
    return lab_to_rgb(lab)
