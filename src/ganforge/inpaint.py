"""Semantic inpainting with a trained GAN (Yeh, Chen, Lim, Schwing, Hasegawa-Johnson & Do 2017).

Find the z whose G(z) agrees with the known pixels of an image and that D finds real, then put
G(z)'s pixels into the hole:

    z* = argmin_z  L_c(z) + lambda * L_p(z)
    L_c(z) = || W * (G(z) - x) ||_1         context loss on the known pixels, weighted by
    W_i = (holes among the window around i) / (window size) for known i, 0 in the hole
                                            (or 1 for every known pixel: ``window`` = 0)
    L_p(z) = -log D(G(z)) = softplus(-l)    prior loss (Yeh et al. write log(1 - D(G(z))); its
                                            non-saturating form keeps a gradient where D is sure)

Several z are optimised at once (restarts) with Adam and the best is kept. Blending: "poisson"
(Perez et al. 2003) keeps G(z*)'s gradients in the hole and the image's own values on its border:
for every hole pixel p,  |N_p| f_p - sum_{q in N_p} f_q = |N_p| g_p - sum_{q in N_p} g_q,  with f
fixed to x outside the hole (solved by Jacobi iteration); "paste" copies G(z*) into the hole.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from PIL import Image, UnidentifiedImageError
from torch import nn

from ganforge.errors import GanforgeError
from ganforge.nets.conditional import d_scores, is_conditional
from ganforge.plots import image_grid

Tensor = torch.Tensor
BLENDS = ("poisson", "paste")


@dataclass
class Inpainted:
    """The result for one image ``[C, H, W]`` in [-1, 1]; ``hole`` ``[1, H, W]`` is 1 where
    pixels were missing."""

    image: Tensor  # the input, hole included (what the user gave)
    hole: Tensor
    generated: Tensor  # G(z*)
    filled: Tensor  # known pixels kept, hole filled and blended
    context_loss: float
    prior_loss: float
    label: int | None


def importance_weights(hole: Tensor, window: int = 7) -> Tensor:
    """W ``[1, H, W]``: for a known pixel, the fraction of hole pixels in the ``window`` x
    ``window`` square around it (zero padding outside the image); 0 inside the hole (Yeh et al.
    2017, eq. 4). Known pixels next to the hole count most. ``window`` = 0: every known pixel
    counts 1 (the plain context loss)."""
    if window == 0:
        return 1 - hole.float()
    near = F.avg_pool2d(
        hole[None].float(), window, stride=1, padding=window // 2, count_include_pad=True
    )[0]
    return near * (1 - hole.float())


def _neighbour_sum(f: Tensor) -> Tensor:
    """Sum of the 4-neighbours of every pixel of ``f`` ``[C, H, W]``, 0 beyond the border."""
    p = F.pad(f, (1, 1, 1, 1))
    return p[:, :-2, 1:-1] + p[:, 2:, 1:-1] + p[:, 1:-1, :-2] + p[:, 1:-1, 2:]


def poisson_blend(source: Tensor, target: Tensor, hole: Tensor, iters: int = 2000) -> Tensor:
    """``target`` with its hole filled by the values whose discrete Laplacian matches
    ``source``'s there (Perez, Gangnet & Blake 2003); Jacobi iteration from ``source``."""
    inside = hole.bool().expand_as(target)
    count = _neighbour_sum(torch.ones_like(target[:1])).expand_as(target)  # |N_p|: 2, 3 or 4
    rhs = count * source - _neighbour_sum(source)  # the guidance field's divergence
    f = torch.where(inside, source, target)
    for _ in range(iters):
        f = torch.where(inside, (rhs + _neighbour_sum(f)) / count, target)
    return f.clamp(-1, 1)


def _labels_for(g: nn.Module, restarts: int, label: int | None, device: torch.device) -> Tensor:
    k = int(g.num_classes)  # type: ignore[arg-type]
    if label is not None:
        if not 0 <= label < k:
            raise GanforgeError(f"--label must be in 0..{k - 1}, got {label}")
        return torch.full((restarts,), label, dtype=torch.long, device=device)
    return torch.arange(restarts, device=device) % k  # spread the restarts over the classes


def inpaint(
    g: nn.Module,
    d: nn.Module,
    image: Tensor,
    hole: Tensor,
    *,
    steps: int = 600,
    restarts: int = 32,
    lam: float = 0.01,
    lr: float = 0.05,
    blend: str = "poisson",
    label: int | None = None,
    seed: int = 0,
    window: int = 0,
) -> Inpainted:
    """Fill ``hole`` ``[1, H, W]`` (1 = missing) of ``image`` ``[C, H, W]`` in [-1, 1]."""
    if blend not in BLENDS:
        raise GanforgeError(f"unknown blend '{blend}'; choose one of {', '.join(BLENDS)}")
    if image.ndim != 3 or hole.shape != (1, *image.shape[1:]):
        raise GanforgeError(
            f"expected an image [C, H, W] and a hole [1, H, W], got {list(image.shape)} and "
            f"{list(hole.shape)}"
        )
    if not bool(hole.any()):
        raise GanforgeError("the mask marks no pixel as missing: nothing to fill")
    if bool(hole.all()):
        raise GanforgeError("the mask marks every pixel as missing: no context to match")
    device = next(g.parameters()).device
    image, hole = image.to(device), hole.to(device).float()
    g.eval()
    d.eval()
    gen = torch.Generator().manual_seed(seed)
    latent = int(g.latent_dim)  # type: ignore[arg-type]
    z = torch.randn(restarts, latent, generator=gen).to(device).requires_grad_(True)
    y = _labels_for(g, restarts, label, device) if is_conditional(g) else None
    w = importance_weights(hole, window)  # [1, H, W]
    opt = torch.optim.Adam([z], lr=lr)
    params = [*g.parameters(), *d.parameters()]
    for p in params:
        p.requires_grad_(False)  # only z moves
    try:

        def losses() -> tuple[Tensor, Tensor, Tensor]:
            x = g(z) if y is None else g(z, y)  # [R, C, H, W]
            context = (w * (x - image)).abs().flatten(1).sum(1)  # [R]
            logit = d(x) if y is None else d_scores(d, x, y)[0]
            prior = F.softplus(-logit.flatten())  # -log D(G(z)), [R]
            return x, context, prior

        for _ in range(steps):
            _, context, prior = losses()
            opt.zero_grad(set_to_none=True)
            (context + lam * prior).sum().backward()  # the restarts are independent
            opt.step()
        with torch.no_grad():
            x, context, prior = losses()
    finally:
        for p in params:
            p.requires_grad_(True)
    best = int(torch.argmin(context + lam * prior))
    generated = x[best].detach()
    if blend == "poisson":
        filled = poisson_blend(generated, image, hole)
    else:
        filled = torch.where(hole.bool(), generated, image)
    return Inpainted(
        image=image.cpu(),
        hole=hole.cpu(),
        generated=generated.cpu(),
        filled=filled.cpu(),
        context_loss=float(context[best]),
        prior_loss=float(prior[best]),
        label=None if y is None else int(y[best]),
    )


# --- files --------------------------------------------------------------------------------


def read_image(path: Path, shape: tuple[int, ...]) -> Tensor:
    """A PNG/JPEG as ``[C, H, W]`` in [-1, 1], converted to ``shape``'s channels and size."""
    c, h, w = shape
    try:
        with Image.open(path) as im:
            im = im.convert("L" if c == 1 else "RGB")
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.BILINEAR)
            a = np.asarray(im, dtype=np.float32)
    except FileNotFoundError:
        raise GanforgeError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise GanforgeError(f"{path}: not a readable image ({e})") from None
    t = torch.from_numpy(a.copy()).div_(127.5).sub_(1.0)
    return t[None] if c == 1 else t.permute(2, 0, 1)


def read_mask(path: Path, size: tuple[int, int]) -> Tensor:
    """A mask image as a hole ``[1, H, W]``: white (> 127) marks the missing pixels."""
    h, w = size
    try:
        with Image.open(path) as im:
            im = im.convert("L")
            if im.size != (w, h):
                im = im.resize((w, h), Image.Resampling.NEAREST)
            a = np.asarray(im) > 127
    except FileNotFoundError:
        raise GanforgeError(f"{path}: no such file") from None
    except (UnidentifiedImageError, OSError) as e:
        raise GanforgeError(f"{path}: not a readable image ({e})") from None
    return torch.from_numpy(a.copy()).float()[None]


def rect_hole(text: str, size: tuple[int, int]) -> Tensor:
    """``"x0,y0,x1,y1"`` (pixels, x1 and y1 excluded) as a hole ``[1, H, W]``."""
    h, w = size
    try:
        x0, y0, x1, y1 = (int(v) for v in text.split(","))
    except ValueError:
        raise GanforgeError(f"--rect expects x0,y0,x1,y1 (four integers), got '{text}'") from None
    if not (0 <= x0 < x1 <= w and 0 <= y0 < y1 <= h):
        raise GanforgeError(
            f"--rect {text} is not a non-empty rectangle inside the {w} x {h} image "
            "(0 <= x0 < x1 <= width, 0 <= y0 < y1 <= height)"
        )
    hole = torch.zeros(1, h, w)
    hole[:, y0:y1, x0:x1] = 1
    return hole


def before_after(result: Inpainted) -> Tensor:
    """Four panels ``[4, C, H, W]``: the image as given, the context G saw (the hole in
    mid-grey), G(z*), and the filled image."""
    context = torch.where(result.hole.bool(), torch.zeros_like(result.image), result.image)
    return torch.stack([result.image, context, result.generated, result.filled])


def write_pngs(result: Inpainted, out: Path, scale: int = 4) -> Path:
    """The filled image at ``out`` and the before/after strip beside it; returns the latter."""

    def save(x: Tensor, path: Path, pad: int) -> None:
        grid = image_grid(x, nrow=len(x), pad=pad)
        img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
        img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST).save(path)

    save(result.filled[None], out, pad=0)
    pair = out.with_name(f"{out.stem}-before-after.png")
    save(before_after(result), pair, pad=2)
    return pair
