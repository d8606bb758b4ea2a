"""Sample grids (PIL) and the course's loss plot (matplotlib, Agg backend)."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image


def image_grid(x: torch.Tensor, nrow: int | None = None, pad: int = 2) -> np.ndarray:
    """Images ``[N, C, H, W]`` in [-1, 1] -> one uint8 picture ``[rows, cols, C]``.

    ``nrow`` images per row (default: a near-square grid), ``pad`` pixels of mid-grey between.
    """
    n, c, h, w = x.shape
    nrow = nrow or math.ceil(math.sqrt(n))
    rows = math.ceil(n / nrow)
    pix = ((x.detach().float().cpu().clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8)
    grid = np.full((rows * (h + pad) + pad, nrow * (w + pad) + pad, c), 128, dtype=np.uint8)
    for i in range(n):
        r, col = divmod(i, nrow)
        top, left = pad + r * (h + pad), pad + col * (w + pad)
        grid[top : top + h, left : left + w] = pix[i].permute(1, 2, 0).numpy()
    return grid


def _png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def samples_png(x: torch.Tensor, path: Path, scale: int = 2, y: torch.Tensor | None = None) -> None:
    """Write samples as a PNG: a grid of images (one row per class when labels ``y`` of more
    than one class come with them), or a scatter of 2-D / histogram of 1-D points."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if x.ndim == 4:
        if y is not None and len(y.unique()) > 1:
            from ganforge.per_class import class_grid

            cells, per_row = class_grid(x.cpu(), y.cpu(), int(y.max()) + 1)
            grid = image_grid(cells, nrow=per_row)
        else:
            grid = image_grid(x)
        img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
        if scale > 1:
            img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
        img.save(path)
        return
    fig = _figure()
    ax = fig.add_subplot()
    pts = x.detach().float().cpu().numpy()
    if pts.shape[1] == 1:
        ax.hist(pts[:, 0], bins=60, color="tab:green", alpha=0.8)
        ax.set_xlabel("x")
    else:
        ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.6, color="tab:green")
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{len(pts)} samples")
    path.write_bytes(_png_bytes(fig))


def _figure(size: tuple[float, float] = (6, 4)) -> Any:
    from matplotlib.figure import Figure  # no pyplot: no global state, no GUI backend

    return Figure(figsize=size, layout="constrained")


def loss_plot(
    steps: Sequence[int], series: dict[str, Sequence[float]], path: Path, title: str
) -> None:
    """The course's plot: each series (L_D, L_G, ...) against the training step."""
    fig = _figure((7, 4))
    ax = fig.add_subplot()
    for label, ys in series.items():
        ax.plot(steps, ys, label=label, linewidth=1.2)
    ax.set_xlabel("step (generator updates)")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path.write_bytes(_png_bytes(fig))
