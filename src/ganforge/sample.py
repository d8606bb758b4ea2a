"""Using a trained generator: load it from a run folder and draw samples."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from torch import nn

from ganforge import checkpoint, nets
from ganforge.errors import GanforgeError
from ganforge.report.plots import samples_png
from ganforge.train.run import RunFolder


def load_generator(
    run: str | Path, device: str = "cpu", checkpoint_file: Path | None = None
) -> nn.Module:
    """G of the newest checkpoint of ``run`` (or of ``checkpoint_file``), in eval mode
    (BatchNorm uses running statistics): the moving average of G's weights when the run kept
    one (``stab.ema``)."""
    folder = RunFolder(Path(run))
    cfg = folder.read_config()
    if checkpoint_file is not None:
        tensors, meta = checkpoint.read(checkpoint_file)
    else:
        _, tensors, meta = checkpoint.load_latest(folder.checkpoints)
    shape = tuple(int(s) for s in meta["data_shape"])
    g, _ = nets.build(cfg.model, shape)
    g_state = checkpoint.subset(tensors, "G_ema") or checkpoint.subset(tensors, "G")
    try:
        g.load_state_dict(g_state)
    except RuntimeError as e:
        raise GanforgeError(f"{run}: the checkpoint does not fit the run's model ({e})") from None
    return g.to(device).eval()


@torch.no_grad()
def generate(
    g: nn.Module, z: torch.Tensor, batch: int = 1024, y: torch.Tensor | None = None
) -> torch.Tensor:
    """G(z) (or G(z, y) for a conditional G and labels ``y`` ``[N]``) in chunks of ``batch``,
    in eval mode (BatchNorm uses its running statistics); G's mode is restored afterwards."""
    was_training = g.training
    g.eval()
    try:
        return torch.cat(
            [
                g(z[i : i + batch]) if y is None else g(z[i : i + batch], y[i : i + batch])
                for i in range(0, len(z), batch)
            ]
        )
    finally:
        g.train(was_training)


@torch.no_grad()
def sample(
    run: str | Path,
    n: int,
    seed: int = 0,
    device: str = "cpu",
    checkpoint_file: Path | None = None,
) -> torch.Tensor:
    """``n`` samples of the run's G in data space: images ``[n, C, H, W]`` in [-1, 1] or points
    ``[n, D]``, from z ~ N(0, I) drawn by a generator seeded with ``seed`` (for a conditional
    run, classes 0, 1, ..., K - 1, 0, ... in turn)."""
    return sample_labelled(run, n, seed, device, checkpoint_file=checkpoint_file)[0]


@torch.no_grad()
def sample_labelled(
    run: str | Path,
    n: int,
    seed: int = 0,
    device: str = "cpu",
    label: int | None = None,
    checkpoint_file: Path | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``sample``, and the labels drawn (None for an unconditional run): all ``label``, or every
    class in turn."""
    from ganforge.per_class import sampling_labels

    if n <= 0:
        raise GanforgeError(f"--n must be a positive number of samples, got {n}")
    g = load_generator(run, device, checkpoint_file)
    y = sampling_labels(g, n, label)
    gen = torch.Generator().manual_seed(seed)
    latent = int(g.latent_dim)  # type: ignore[arg-type]
    z = torch.randn(n, latent, generator=gen).to(device)
    return generate(g, z, y=None if y is None else y.to(device)).cpu(), y


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
