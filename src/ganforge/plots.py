"""Pictures of tensors: sample grids (PIL), one row per class for labelled samples, scatters
of points and the course's loss plot (matplotlib's Figure: no pyplot, no global state, no GUI
backend). Nothing here knows about runs."""

from __future__ import annotations

import io
import math
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from matplotlib.figure import Figure
from PIL import Image

from ganforge.errors import GanforgeError


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


def class_grid(x: torch.Tensor, y: torch.Tensor, k: int) -> tuple[torch.Tensor, int]:
    """Images ``[N, C, H, W]`` with labels ``y`` arranged one row per class (0 at the top), as
    ``(cells [K * M, C, H, W], M)`` for ``image_grid(cells, nrow=M)``; M = the largest class's
    count, short rows padded with blank (mid-grey) cells."""
    per = [x[y == c] for c in range(k)]
    m = max(1, *(len(p) for p in per))
    blank = torch.zeros(1, *x.shape[1:], dtype=x.dtype)
    rows = [torch.cat([p, blank.expand(m - len(p), *x.shape[1:])]) for p in per]
    return torch.cat(rows), m


def png_bytes(fig: Any) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=100)
    return buf.getvalue()


def samples_png(x: torch.Tensor, path: Path, scale: int = 2, y: torch.Tensor | None = None) -> None:
    """Write samples as a PNG: a grid of images (one row per class when labels ``y`` of more
    than one class come with them), or a scatter of 2-D / histogram of 1-D points."""
    path.parent.mkdir(parents=True, exist_ok=True)
    if x.ndim == 4:
        if y is not None and len(y.unique()) > 1:
            cells, per_row = class_grid(x.cpu(), y.cpu(), int(y.max()) + 1)
            grid = image_grid(cells, nrow=per_row)
        else:
            grid = image_grid(x)
        img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
        if scale > 1:
            img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
        img.save(path)
        return
    fig = figure()
    ax = fig.add_subplot()
    pts = x.detach().float().cpu().numpy()
    if pts.shape[1] == 1:
        ax.hist(pts[:, 0], bins=60, color="tab:green", alpha=0.8)
        ax.set_xlabel("x")
    else:
        ax.scatter(pts[:, 0], pts[:, 1], s=4, alpha=0.6, color="tab:green")
        ax.set_aspect("equal", adjustable="datalim")
    ax.set_title(f"{len(pts)} samples")
    path.write_bytes(png_bytes(fig))


def figure(size: tuple[float, float] = (6, 4)) -> Any:
    return Figure(figsize=size, layout="constrained")


def loss_plot(
    steps: Sequence[int], series: dict[str, Sequence[float]], path: Path, title: str
) -> None:
    """The course's plot: each series (L_D, L_G, ...) against the training step."""
    fig = figure((7, 4))
    ax = fig.add_subplot()
    for label, ys in series.items():
        # a short run logs few points: a marker on each, or a lone one would not show
        ax.plot(steps, ys, label=label, linewidth=1.2, marker="o" if len(steps) < 20 else None)
    ax.set_xlabel("step (generator updates)")
    ax.set_ylabel("loss")
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend()
    path.write_bytes(png_bytes(fig))


def write_samples(x: torch.Tensor, out: Path, y: torch.Tensor | None = None) -> None:
    """``.npy`` (float32 data-space array) or ``.png`` (a grid, or a scatter of points; with
    labels ``y`` of several classes, one row per class)."""
    suffix = out.suffix.lower()
    if suffix not in (".npy", ".png"):
        raise GanforgeError(f"--out must end in .npy or .png, not '{out.suffix or out.name}'")
    if not out.parent.is_dir():
        raise GanforgeError(f"folder {out.parent} does not exist")
    if suffix == ".npy":
        tmp = out.with_name(f".{out.name}.tmp.npy")
        np.save(tmp, x.numpy().astype(np.float32))
        tmp.replace(out)
    else:
        samples_png(x, out, y=y)
