"""Tensor conversions shared by every loader: option checks, subsets, channels and image size.

Images arrive here as ``[N, C, H, W]``, either uint8 (0..255) or float32 in [-1, 1]; each
function keeps that storage type, so a uint8 data set stays four times smaller than float.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

import torch
import torch.nn.functional as F

from ganforge.data.base import Dataset
from ganforge.errors import DataError

# ITU-R BT.601 luma, the weights PIL's convert("L") uses: Y = 0.299 R + 0.587 G + 0.114 B.
LUMA = (0.299, 0.587, 0.114)

# Images converted per chunk, so a float copy of a 50k-image set never sits in memory at once.
CHUNK = 1024


def check_options(image_size: int | None, channels: int | None, limit: int | None) -> None:
    """Raise DataError for an image size or limit below 1, or a channel count other than 1 or 3."""
    if image_size is not None and image_size <= 0:
        raise DataError(f"image size must be a positive number of pixels, got {image_size}")
    if channels is not None and channels not in (1, 3):
        raise DataError(f"channels must be 1 (grayscale) or 3 (RGB), got {channels}")
    if limit is not None and limit <= 0:
        raise DataError(f"limit must be a positive number of samples, got {limit}")


def subset_indices(n: int, limit: int, seed: int | None = None) -> torch.Tensor:
    """Indices of ``min(limit, n)`` samples out of ``n``, ``[k]`` int64, in increasing order.

    Without a seed: the first ``limit``. With one: a random subset drawn with that seed, for
    sources stored sorted by label, where the first ``limit`` would hold only the first classes.
    """
    k = min(limit, n)
    if seed is None:
        return torch.arange(k)
    g = torch.Generator().manual_seed(seed)
    return torch.randperm(n, generator=g)[:k].sort().values


def limit_dataset(ds: Dataset, limit: int | None, seed: int | None = None) -> Dataset:
    """``ds`` cut to ``limit`` samples (see ``subset_indices``); unchanged when it is no larger."""
    if limit is None or limit >= len(ds):
        return ds
    idx = subset_indices(len(ds), limit, seed)
    y = None if ds.y is None else ds.y[idx]
    return dataclasses.replace(ds, x=ds.x[idx], y=y)


def _map_chunks(
    x: torch.Tensor, fn: Callable[[torch.Tensor], torch.Tensor], shape: tuple[int, ...]
) -> torch.Tensor:
    """``fn`` applied to ``x`` chunk by chunk along dim 0, into a tensor of ``shape``, x's dtype.

    ``fn`` works in float32; uint8 results are rounded and clamped back to 0..255, float ones
    clamped to [-1, 1].
    """
    lo, hi = (0.0, 255.0) if x.dtype == torch.uint8 else (-1.0, 1.0)
    out = torch.empty(shape, dtype=x.dtype)
    for i in range(0, len(x), CHUNK):
        part = fn(x[i : i + CHUNK].float()).clamp_(lo, hi)
        if x.dtype == torch.uint8:
            part = part.round_()  # to the nearest level, not truncated
        out[i : i + CHUNK] = part.to(x.dtype)
    return out


def luminance(x: torch.Tensor) -> torch.Tensor:
    """RGB ``[N, 3, H, W]`` float to gray ``[N, 1, H, W]``: Y = 0.299 R + 0.587 G + 0.114 B."""
    w = torch.tensor(LUMA, dtype=x.dtype).view(1, 3, 1, 1)
    return (x * w).sum(dim=1, keepdim=True)


def to_channels(x: torch.Tensor, channels: int) -> torch.Tensor:
    """Images ``[N, C, H, W]`` with C in (1, 3) converted to ``channels``.

    1 -> 3 repeats the gray plane (an exact copy); 3 -> 1 takes the BT.601 luminance.
    """
    c = x.shape[1]
    if c == channels:
        return x
    if c == 1 and channels == 3:
        return x.repeat(1, 3, 1, 1)
    if c == 3 and channels == 1:
        n, _, h, w = x.shape
        return _map_chunks(x, luminance, (n, 1, h, w))
    raise DataError(f"cannot convert {c}-channel images to {channels} channels")


def center_crop_square(x: torch.Tensor) -> torch.Tensor:
    """The central ``s x s`` square of images ``[N, C, H, W]``, s = min(H, W)."""
    h, w = x.shape[-2:]
    s = min(h, w)
    top, left = (h - s) // 2, (w - s) // 2
    return x[..., top : top + s, left : left + s]


def resize_images(x: torch.Tensor, size: int) -> torch.Tensor:
    """Images ``[N, C, H, W]`` to ``[N, C, size, size]``.

    28 x 28 -> 32 x 32 pads 2 background pixels on each side (uint8 0, float -1), the standard
    way to feed MNIST to a 32 x 32 network: the digit keeps its exact pixels, at [2:30, 2:30].
    Anything else: center-crop to a square, then bilinear interpolation with antialiasing (a
    triangle filter as wide as the scale factor when shrinking, so no aliasing).
    """
    n, c, h, w = x.shape
    if (h, w) == (size, size):
        return x
    if (h, w) == (28, 28) and size == 32:
        background = 0 if x.dtype == torch.uint8 else -1.0
        return F.pad(x, (2, 2, 2, 2), value=background)
    x = center_crop_square(x)

    def interpolate(part: torch.Tensor) -> torch.Tensor:
        return F.interpolate(
            part, size=(size, size), mode="bilinear", antialias=True, align_corners=False
        )

    return _map_chunks(x, interpolate, (n, c, size, size))


def conform(ds: Dataset, image_size: int | None, channels: int | None) -> Dataset:
    """``ds`` with its images converted to ``channels`` and resized to ``image_size``.

    ``None`` keeps what the source has. Point data ``[N, D]`` takes neither option.
    """
    if ds.kind == "points":
        if image_size is not None or channels is not None:
            raise DataError(
                f"{ds.name}: holds [N, D] points, not images; leave image size and channels unset"
            )
        return ds
    x = ds.x
    if channels is not None:
        x = to_channels(x, channels)
    if image_size is not None:
        x = resize_images(x, image_size)
    if x is ds.x:
        return ds
    return dataclasses.replace(ds, x=x)
