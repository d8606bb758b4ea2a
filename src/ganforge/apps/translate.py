"""Applying a trained image-to-image G: to tensors (any size: fully convolutional nets, big
images by overlapping tiles) and to files (``ganforge translate``).

Files: a ``.npy`` in the layout ``ganforge sample`` writes (``[N, C, H, W]`` float, pixels in
[-1, 1]) or an image (``.png``, ``.jpg``); the output has the input's layout. Anything else is
refused in one line (``GanforgeError``).
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image
from torch import nn

from ganforge import checkpoint
from ganforge.config import Config
from ganforge.data.lab import join_lab, split_lab
from ganforge.data.transforms import luminance
from ganforge.errors import DataError, GanforgeError
from ganforge.nets.translate import ResnetG, UNet
from ganforge.runs import RunFolder

from .tasks import TASKS, build_nets, ema_name, is_photo_sr

Tensor = torch.Tensor

TILE = 1024  # images with more pixels than TILE^2 go through G in tiles of TILE x TILE ...
OVERLAP = 32  # ... overlapping by this much on each side, only the tiles' centres kept
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg")


@dataclass
class Translator:
    """A run's generators in eval mode (BatchNorm on running statistics), and its config."""

    cfg: Config
    nets: dict[str, nn.Module]
    step: int

    @property
    def task(self) -> str:
        return self.cfg.app.task

    @property
    def directions(self) -> tuple[str, ...]:
        return TASKS[self.task].directions


def load_translator(run: str | Path, checkpoint_file: Path | None = None) -> Translator:
    """The generators of the newest intact checkpoint of ``run`` (or ``checkpoint_file``):
    their moving averages where the run kept them (``stab.ema``)."""
    folder = RunFolder(Path(run))
    cfg = folder.read_config()
    if cfg.app.task == "none":
        raise GanforgeError(f"{run} is not an image-to-image run (app.task is none)")
    if checkpoint_file is not None:
        tensors, meta = checkpoint.read(checkpoint_file)
    else:
        _, tensors, meta = checkpoint.load_latest(folder.checkpoints)
    nets = {k: m for k, m in build_nets(cfg).items() if k in TASKS[cfg.app.task].generators}
    try:
        for name, m in nets.items():
            averaged = checkpoint.subset(tensors, ema_name(name))
            m.load_state_dict(averaged or checkpoint.subset(tensors, name))
    except RuntimeError as e:
        raise GanforgeError(f"{run}: the checkpoint does not fit the run's model ({e})") from None
    return Translator(cfg, {k: m.eval() for k, m in nets.items()}, int(meta["step"]))


def _padded(fn: nn.Module, x: Tensor, multiple: int) -> Tensor:
    """``fn(x)`` on ``x`` reflect-padded to a multiple of ``multiple``, cropped back."""
    h, w = x.shape[-2:]
    ph, pw = -h % multiple, -w % multiple
    if ph or pw:
        mode = "reflect" if min(h, w) > max(ph, pw) else "replicate"
        x = F.pad(x, (0, pw, 0, ph), mode=mode)
    out = fn(x)
    s = out.shape[-1] // x.shape[-1]
    return out[..., : h * s, : w * s]


def tiled(
    fn: nn.Module, x: Tensor, multiple: int, tile: int = TILE, overlap: int = OVERLAP
) -> Tensor:
    """``fn`` over ``x`` ``[N, C, H, W]`` tile by tile (TILE x TILE, each with ``overlap``
    pixels of context a side, only its centre kept), or whole when small enough."""
    h, w = x.shape[-2:]
    if h * w <= tile * tile:
        return _padded(fn, x, multiple)
    rows = []
    for top in range(0, h, tile):
        row = []
        for left in range(0, w, tile):
            t0, l0 = max(top - overlap, 0), max(left - overlap, 0)
            b1, r1 = min(top + tile + overlap, h), min(left + tile + overlap, w)
            out = _padded(fn, x[..., t0:b1, l0:r1], multiple)
            s = out.shape[-1] // (r1 - l0)
            th, tw = min(tile, h - top), min(tile, w - left)
            row.append(
                out[
                    ...,
                    (top - t0) * s : (top - t0 + th) * s,
                    (left - l0) * s : (left - l0 + tw) * s,
                ]
            )
        rows.append(torch.cat(row, dim=-1))
    return torch.cat(rows, dim=-2)


def _gray(x: Tensor) -> Tensor:
    return luminance(x) if x.shape[1] == 3 else x


@torch.no_grad()
def translate(tr: Translator, x: Tensor, direction: str = "AB") -> Tensor:
    """Images ``[N, C, H, W]`` in [-1, 1] through the run's G: sr on digits and thicken take
    gray images (colour ones by their luminance), sr on photographs and colorize take any and
    give RGB ``[N, 3, H, W]``."""
    if direction not in tr.directions:
        raise GanforgeError(
            f"--direction {direction}: a {tr.task} run translates {' or '.join(tr.directions)}"
        )
    if tr.task == "sr":  # digits: gray; photographs: RGB (a gray input's channel repeated)
        x = (x if x.shape[1] == 3 else x.repeat(1, 3, 1, 1)) if is_photo_sr(tr.cfg) else _gray(x)
        return tiled(tr.nets["G"], x, 1).clamp(-1, 1)
    if tr.task == "thicken":
        g = tr.nets["G_AB" if direction == "AB" else "G_BA"]
        assert isinstance(g, ResnetG)
        return tiled(g, _gray(x), 2**g.downs).clamp(-1, 1)
    rgb = ((x if x.shape[1] == 3 else x.repeat(1, 3, 1, 1)) + 1) / 2
    light, _ = split_lab(rgb)
    g = tr.nets["G"]
    assert isinstance(g, UNet)
    ab = tiled(g, light, 2**g.depth)
    return join_lab(light, ab) * 2 - 1


def read_input(path: Path) -> Tensor:
    """A ``.npy`` ``[N, C, H, W]`` in [-1, 1] or an image as ``[1, C, H, W]`` in [-1, 1]."""
    if not path.is_file():
        raise DataError(f"{path}: no such file")
    suffix = path.suffix.lower()
    if suffix == ".npy":
        try:
            arr = np.load(path, allow_pickle=False)
        except (OSError, ValueError) as e:
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"{path}: not a readable .npy array ({reason})") from None
        if arr.ndim != 4 or arr.shape[1] not in (1, 3) or 0 in arr.shape:
            raise DataError(
                f"{path}: expected images [N, C, H, W] with C 1 or 3, got shape {list(arr.shape)}"
            )
        if not np.issubdtype(arr.dtype, np.floating):
            raise DataError(f"{path}: expected float pixels in [-1, 1], got {arr.dtype}")
        if not np.isfinite(arr).all():
            raise DataError(f"{path}: the array holds NaN or infinite values")
        if arr.min() < -1.001 or arr.max() > 1.001:
            raise DataError(
                f"{path}: pixels must lie in [-1, 1] (as `ganforge sample` writes), found "
                f"{arr.min():.3g}..{arr.max():.3g}"
            )
        return torch.from_numpy(arr.astype(np.float32)).clamp(-1, 1)
    if suffix in IMAGE_SUFFIXES:
        try:
            with Image.open(path) as img:
                img.load()
                gray = img.mode in ("L", "1", "I", "I;16", "F")
                arr = np.asarray(img.convert("L" if gray else "RGB"), dtype=np.float32)
        except Exception as e:  # PIL raises many kinds for a bad file
            reason = str(e).splitlines()[0] if str(e) else type(e).__name__
            raise DataError(f"{path}: not a readable image ({reason})") from None
        t = torch.from_numpy(arr / 127.5 - 1)
        return (t[None, None] if t.ndim == 2 else t.permute(2, 0, 1)[None]).contiguous()
    raise DataError(f"{path}: unsupported input '{suffix or path.name}'; give a .npy, .png or .jpg")


def check_output(src: Path, out: Path) -> None:
    """The output must keep the input's layout: .npy for .npy, an image for an image."""
    is_array = src.suffix.lower() == ".npy"
    ok = out.suffix.lower() == ".npy" if is_array else out.suffix.lower() in IMAGE_SUFFIXES
    if not ok:
        want = ".npy" if is_array else ".png or .jpg"
        raise GanforgeError(f"--out must end in {want} for input {src.name}, not {out.name}")
    if not out.parent.is_dir():
        raise GanforgeError(f"folder {out.parent} does not exist")


def write_output(x: Tensor, out: Path) -> None:
    """``x`` ``[N, C, H, W]`` in [-1, 1] as a .npy, or its first image as a PNG/JPEG."""
    if out.suffix.lower() == ".npy":
        np.save(out, x.float().numpy())
        return
    pix = ((x[0].clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(pix[..., 0] if pix.shape[-1] == 1 else pix).save(out)
