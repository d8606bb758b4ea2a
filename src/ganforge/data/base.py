"""The in-memory dataset every loader returns, and the seeded batch order over it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from ganforge.errors import DataError


@dataclass
class Dataset:
    """Training data held in memory.

    ``x`` is either images ``[N, C, H, W]`` stored as uint8 (0..255, converted per batch, which
    keeps a 50k-image RGB set at 150 MB instead of 600 MB) or float32 already in data space
    [-1, 1]; or points ``[N, D]`` float32, used as they are.
    """

    x: torch.Tensor
    y: torch.Tensor | None = None  # [N] int64 class labels, when the source has them
    name: str = "data"

    def __post_init__(self) -> None:
        if self.x.ndim not in (2, 4):
            raise DataError(
                f"{self.name}: expected [N, C, H, W] images or [N, D] points, "
                f"got shape {list(self.x.shape)}"
            )
        if len(self.x) == 0:
            raise DataError(f"{self.name}: the data set is empty")
        if self.x.dtype != torch.uint8 and not self.x.is_floating_point():
            raise DataError(f"{self.name}: expected uint8 or float data, got {self.x.dtype}")
        if self.x.is_floating_point() and not bool(torch.isfinite(self.x).all()):
            raise DataError(f"{self.name}: the data contains NaN or infinite values")
        if self.y is not None and len(self.y) != len(self.x):
            raise DataError(f"{self.name}: {len(self.y)} labels for {len(self.x)} samples")

    def __len__(self) -> int:
        return len(self.x)

    @property
    def kind(self) -> str:
        """``"image"`` or ``"points"``."""
        return "image" if self.x.ndim == 4 else "points"

    @property
    def sample_shape(self) -> tuple[int, ...]:
        """Shape of one sample: ``(C, H, W)`` or ``(D,)``."""
        return tuple(self.x.shape[1:])

    def batch(self, idx: torch.Tensor) -> torch.Tensor:
        """Samples ``idx`` as float32 in data space (images in [-1, 1])."""
        b = self.x[idx]
        if b.dtype == torch.uint8:
            return b.float().div_(127.5).sub_(1.0)  # 0..255 -> [-1, 1]
        return b.float()


class BatchSampler:
    """Seeded shuffled batches, epoch after epoch, dropping the last incomplete batch.

    Its whole future is in ``state_dict()`` (generator state, current permutation, position),
    so a resumed run draws exactly the batches the uninterrupted run would have drawn.
    """

    def __init__(self, n: int, batch_size: int, seed: int) -> None:
        if batch_size < 1:
            # 0 would hand out empty batches forever; a negative size slices perm backwards.
            raise DataError(f"batch size must be at least 1, got {batch_size}")
        if batch_size > n:
            raise DataError(f"batch size {batch_size} is larger than the data set ({n} samples)")
        self.n = n
        self.batch_size = batch_size
        self.generator = torch.Generator().manual_seed(seed)
        self.perm = torch.randperm(n, generator=self.generator)
        self.pos = 0
        self.epoch = 0

    def next(self) -> torch.Tensor:
        """Indices of the next batch, ``[batch_size]`` int64."""
        if self.pos + self.batch_size > self.n:
            self.perm = torch.randperm(self.n, generator=self.generator)
            self.pos = 0
            self.epoch += 1
        idx = self.perm[self.pos : self.pos + self.batch_size]
        self.pos += self.batch_size
        return idx

    def state_dict(self) -> dict[str, Any]:
        return {
            "generator": self.generator.get_state(),
            "perm": self.perm.clone(),
            "pos": self.pos,
            "epoch": self.epoch,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        if len(state["perm"]) != self.n:
            # Resuming on a data set of another size would index past its end or skip samples.
            raise DataError(
                f"the saved batch order covers {len(state['perm'])} samples, "
                f"but the data set has {self.n}"
            )
        self.generator.set_state(state["generator"])
        self.perm = state["perm"].clone()
        self.pos = int(state["pos"])
        self.epoch = int(state["epoch"])
