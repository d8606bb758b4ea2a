"""Class-conditional runs: which labels to draw, grids with one row per class, and checks of
the training data's labels."""

from __future__ import annotations

import torch
from torch import nn

from ganforge.data import Dataset
from ganforge.errors import ConfigError, GanforgeError
from ganforge.nets.conditional import is_conditional

Tensor = torch.Tensor


def num_classes(g: nn.Module) -> int:
    """K of a conditional G, 0 for an unconditional one."""
    return int(getattr(g, "num_classes", 0)) if is_conditional(g) else 0


def sampling_labels(g: nn.Module, n: int, label: int | None = None) -> Tensor | None:
    """The labels of ``n`` samples: all ``label``, or 0, 1, ..., K - 1, 0, 1, ... (every class
    equally often, one row per class in ``class_grid``); None for an unconditional G."""
    k = num_classes(g)
    if k == 0:
        if label is not None:
            raise GanforgeError("--label needs a conditional run (model.cond), this one is not")
        return None
    if label is None:
        return torch.arange(n) % k
    if not 0 <= label < k:
        raise GanforgeError(f"--label must be a class in 0..{k - 1}, got {label}")
    return torch.full((n,), label, dtype=torch.long)


def class_grid(x: Tensor, y: Tensor, k: int) -> tuple[Tensor, int]:
    """Images ``[N, C, H, W]`` with labels ``y`` arranged one row per class (0 at the top), as
    ``(cells [K * M, C, H, W], M)`` for ``image_grid(cells, nrow=M)``; M = the largest class's
    count, short rows padded with blank (mid-grey) cells."""
    per = [x[y == c] for c in range(k)]
    m = max(1, *(len(p) for p in per))
    blank = torch.zeros(1, *x.shape[1:], dtype=x.dtype)
    rows = [torch.cat([p, blank.expand(m - len(p), *x.shape[1:])]) for p in per]
    return torch.cat(rows), m


def check_labels(data: Dataset, k: int) -> None:
    """A conditional run needs labels 0..k-1 on every training sample."""
    if data.y is None:
        raise ConfigError(
            f"model.cond needs labelled data, and {data.name} has no labels (an image folder "
            "gets them from class sub-folders)"
        )
    lo, hi = int(data.y.min()), int(data.y.max())
    if lo < 0 or hi >= k:
        raise ConfigError(
            f"{data.name} has labels {lo}..{hi}, outside 0..{k - 1}: set model.num_classes={hi + 1}"
        )
