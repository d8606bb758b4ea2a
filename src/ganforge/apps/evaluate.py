"""Evaluating an image-to-image run on held-out data, beside its baselines.

Per task and direction, each method (the run's G, the baselines, and the plain L1 model when
``baseline`` names its run) is measured against the truth:

- sr: PSNR and SSIM on the luminance with ``scale`` pixels of border cropped (the SR
  convention), the shipped MNIST classifier's accuracy on the outputs, and FID (shipped
  network's features) of the outputs against a second, disjoint half of the real test digits,
  beside the floor of the first half's truth against the same. Baselines: bicubic, and the
  identity (the input enlarged, nearest).
- sr on photographs (``data.source`` photos or a folder): each test photograph (as for
  colorize), pooled and enlarged again; PSNR and SSIM on the luminance with ``scale`` pixels
  of border cropped. Baselines: bicubic and the identity.
- thicken: A -> B (truth: the dilation of each test digit) and B -> A (input: the dilation,
  truth: the digit); PSNR, SSIM, accuracy, FID as for sr, and the ink ratio (mean ink of the
  outputs over the truth's). Baseline: the identity.
- colorize: each test photograph (scikit-learn's flower.jpg, scikit-image's coffee when
  installed, or the images of ``real``): PSNR and SSIM on RGB, colourfulness (Hasler and
  Suesstrunk 2003) and its ratio to the truth's. Baseline: the grey image (ab = 0), which is
  also the identity.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from PIL import Image

from ganforge.data import load_dataset, load_mnist5k
from ganforge.data.lab import join_lab, split_lab
from ganforge.data.pairs import (
    average_pool,
    folder_photos,
    holdout_split,
    shipped_photos,
    shuffled,
    thicken,
    thin_thick,
)
from ganforge.errors import GanforgeError
from ganforge.metrics.features import extract, mnist_net
from ganforge.metrics.fid import fid
from ganforge.metrics.image import colourfulness, ink, luma, psnr, ssim, to_unit
from ganforge.runs import BEFORE_AFTER, RunFolder, write_json

from .tasks import is_photo_sr
from .train import write_grid
from .translate import Translator, load_translator, translate

Tensor = torch.Tensor

FIGURE_CROP = 96  # sr on photographs: the side of the centre crop each figure row shows


def _sr_columns(with_l1: bool) -> list[str]:
    """The before/after figure's columns of super-resolution."""
    return ["input (nearest)", "bicubic", *(["L1 model"] if with_l1 else []), "GAN", "truth"]


def _test_photos(real: str | None) -> dict[str, Tensor]:
    """The test photographs: those of the folder ``real``, else the shipped ones."""
    return folder_photos(Path(real)) if real is not None else shipped_photos(test=True)


def _photo_result(
    per_photo: dict[str, dict[str, dict[str, float]]], columns: list[str], rows: list[Tensor]
) -> dict[str, Any]:
    """A photographs task's result: per photograph, and each method's mean over them."""
    first = next(iter(per_photo.values()))
    mean = {
        m: {k: sum(p[m][k] for p in per_photo.values()) / len(per_photo) for k in first[m]}
        for m in first
    }
    return {
        "test": ", ".join(per_photo),
        "n": len(per_photo),
        "directions": {"AB": mean},
        "per_photo": per_photo,
        "columns": columns,
        "_rows": rows,
    }


def _digits(
    cfg_holdout: int, real: str | None, task: str, n: int | None
) -> tuple[Tensor, Tensor, str]:
    """Held-out digits ``[M, 1, 28, 28]`` in [-1, 1], their labels, and what they are."""
    if real is not None:
        ds = load_dataset(real)
        if ds.y is None or ds.sample_shape != (1, 28, 28):
            raise GanforgeError(f"{real}: expected labelled 28 x 28 digits (MNIST IDX files)")
        # in a seeded order: the MNIST test set's two halves come from different writers
        # (its first 5,000 against its last: FID 32.5; two random halves: about 2)
        order = shuffled(len(ds), 0)
        x, y, what = ds.batch(order), ds.y[order], f"{real} ({len(ds)} digits, seeded order)"
    elif task == "sr":
        data = load_mnist5k()
        _, idx = holdout_split(len(data), cfg_holdout)
        assert data.y is not None
        x, y = data.batch(idx), data.y[idx]
        what = f"the {len(idx)} bundled digits held out from training (app.holdout)"
    else:
        a, _, ya, _ = thin_thick(load_mnist5k())
        x, y = a, ya
        what = (
            "the bundled domain-A digits (G_AB saw them as inputs, never their dilations); "
            "pass --real for the MNIST test set"
        )
    if n is not None:
        x, y = x[:n], y[:n]
    if len(x) < 20:
        raise GanforgeError(f"{len(x)} test digits are too few to evaluate (20 at least)")
    return x, y, what


def _digit_figures(
    outputs: dict[str, Tensor], truth: Tensor, labels: Tensor, reference: Tensor, border: int
) -> dict[str, dict[str, float]]:
    """PSNR, SSIM, accuracy, FID, ink ratio of each method's outputs; ``truth`` the row
    itself, whose FID is the real floor."""
    net = mnist_net()
    ref_features, _ = extract(net, reference)
    out: dict[str, dict[str, float]] = {}
    for name, x in {**outputs, "truth": truth}.items():
        feats, probs = extract(net, x)
        assert probs is not None
        a, b = luma(to_unit(x), border), luma(to_unit(truth), border)
        out[name] = {
            "psnr": float(psnr(a, b).mean()),
            "ssim": float(ssim(a, b).mean()),
            "accuracy": float((probs.argmax(1) == labels).float().mean()),
            "fid": fid(ref_features, feats),
            "ink_ratio": float(ink(x).mean() / ink(truth).mean()),
        }
    return out


def evaluate_sr(
    tr: Translator, baseline: Translator | None, real: str | None, n: int | None
) -> dict[str, Any]:
    hr, labels, what = _digits(tr.cfg.app.holdout, real, "sr", n)
    half = len(hr) // 2
    hr, labels, reference = hr[:half], labels[:half], hr[half : 2 * half]
    s = tr.cfg.app.scale
    lr = average_pool(hr, s)
    outputs = {
        "gan": translate(tr, lr, "AB"),
        "bicubic": F.interpolate(lr, scale_factor=s, mode="bicubic", align_corners=False).clamp(
            -1, 1
        ),
        "identity": F.interpolate(lr, scale_factor=s, mode="nearest"),
    }
    if baseline is not None:
        outputs["l1"] = translate(baseline, lr, "AB")
    figures = _digit_figures(outputs, hr, labels, reference, border=s)
    cells = torch.stack(
        [
            outputs["identity"][:8],
            outputs["bicubic"][:8],
            *([outputs["l1"][:8]] if "l1" in outputs else []),
            outputs["gan"][:8],
            hr[:8],
        ],
        1,
    )
    columns = _sr_columns("l1" in outputs)
    return {
        "test": what,
        "n": half,
        "directions": {"AB": figures},
        "columns": columns,
        "_cells": cells.flatten(0, 1),
        "_nrow": len(columns),
    }


def evaluate_photo_sr(
    tr: Translator, baseline: Translator | None, real: str | None
) -> dict[str, Any]:
    """sr on photographs: each test photograph (cropped to a multiple of the scale) pooled and
    enlarged again; PSNR and SSIM on the luminance with ``scale`` pixels of border cropped."""
    s = tr.cfg.app.scale
    photos = _test_photos(real)
    per_photo: dict[str, dict[str, dict[str, float]]] = {}
    rows = []
    for name, rgb in photos.items():
        h, w = (d - d % s for d in rgb.shape[1:])
        hr = rgb[None, :, :h, :w] * 2 - 1
        lr = average_pool(hr, s)
        outputs = {
            "gan": translate(tr, lr, "AB"),
            "bicubic": F.interpolate(lr, scale_factor=s, mode="bicubic").clamp(-1, 1),
            "identity": F.interpolate(lr, scale_factor=s, mode="nearest"),
        }
        if baseline is not None:
            outputs["l1"] = translate(baseline, lr, "AB")
        truth = luma(to_unit(hr), s)
        per_photo[name] = {
            m: {
                "psnr": float(psnr(luma(to_unit(out), s), truth).mean()),
                "ssim": float(ssim(luma(to_unit(out), s), truth).mean()),
            }
            for m, out in {**outputs, "truth": hr}.items()
        }
        order = ["identity", "bicubic", *(["l1"] if baseline is not None else []), "gan"]
        side = min(FIGURE_CROP, h, w)
        top, left = (h - side) // 2, (w - side) // 2  # the centre, unscaled
        crop = [outputs[m] for m in order] + [hr]
        rows.append(torch.cat([c[..., top : top + side, left : left + side] for c in crop]))
    return _photo_result(per_photo, _sr_columns(baseline is not None), rows)


def evaluate_thicken(
    tr: Translator, baseline: Translator | None, real: str | None, n: int | None
) -> dict[str, Any]:
    x, labels, what = _digits(tr.cfg.app.holdout, real, "thicken", n)
    half = len(x) // 2
    thin, labels, ref_thin = x[:half], labels[:half], x[half : 2 * half]
    thick, ref_thick = thicken(thin), thicken(ref_thin)
    directions = {}
    rows = []
    for d, src, truth, ref in (("AB", thin, thick, ref_thick), ("BA", thick, thin, ref_thin)):
        outputs = {"gan": translate(tr, src, d), "identity": src}
        if baseline is not None:
            outputs["l1"] = translate(baseline, src, d)
        directions[d] = _digit_figures(outputs, truth, labels, ref, border=0)
        rows.append(
            torch.stack(
                [
                    src[:6],
                    *([outputs["l1"][:6]] if "l1" in outputs else []),
                    outputs["gan"][:6],
                    truth[:6],
                ],
                1,
            )
        )
    columns = ["input", *(["L1 model"] if baseline is not None else []), "GAN", "truth"]
    cells = torch.cat(rows).flatten(0, 1)
    return {
        "test": what,
        "n": half,
        "directions": directions,
        "columns": columns,
        "_cells": cells,
        "_nrow": len(columns),
    }


def _resize_for_figure(x: Tensor, height: int = 160) -> Tensor:
    h, w = x.shape[-2:]
    return F.interpolate(x, size=(height, round(w * height / h)), mode="area")


def evaluate_colorize(
    tr: Translator, baseline: Translator | None, real: str | None
) -> dict[str, Any]:
    photos = _test_photos(real)
    per_photo: dict[str, dict[str, dict[str, float]]] = {}
    rows = []
    for name, rgb in photos.items():
        rgb = rgb[None]  # [1, 3, H, W] in [0, 1]
        light, _ = split_lab(rgb)
        outputs = {
            "gan": to_unit(translate(tr, rgb * 2 - 1)),
            "grey": join_lab(light, torch.zeros_like(light).repeat(1, 2, 1, 1)),
        }
        if baseline is not None:
            outputs["l1"] = to_unit(translate(baseline, rgb * 2 - 1))
        truth_c = float(colourfulness(rgb))
        figs = {}
        for m, out in {**outputs, "truth": rgb}.items():
            c = float(colourfulness(out))
            figs[m] = {
                "psnr": float(psnr(out, rgb).mean()),
                "ssim": float(ssim(out, rgb).mean()),
                "colourfulness": c,
                "colourfulness_ratio": c / truth_c,
            }
        per_photo[name] = figs
        order = ["grey", *(["l1"] if baseline is not None else []), "gan"]
        rows.append(
            torch.cat(
                [_resize_for_figure(outputs[m] * 2 - 1) for m in order]
                + [_resize_for_figure(rgb * 2 - 1)]
            )
        )
    columns = ["grey (= identity)", *(["L1 model"] if baseline is not None else []), "GAN", "truth"]
    return _photo_result(per_photo, columns, rows)


def _flat(result: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """The figures as ``{"AB/gan/psnr": {"value": v, "n": n}}`` (the report's table)."""
    out = {}
    for d, methods in result["directions"].items():
        for m, figs in methods.items():
            for k, v in figs.items():
                out[f"{d}/{m}/{k}"] = {
                    "value": v,
                    "ci_low": None,
                    "ci_high": None,
                    "floor": None,
                    "n": result["n"],
                }
    return out


def evaluate_app(
    run: str | Path,
    *,
    baseline: str | Path | None = None,
    real: str | None = None,
    n: int | None = None,
) -> dict[str, Any]:
    """Measure the image-to-image run ``run`` (and the plain L1 model ``baseline``, a run of
    the same task with ``app.adv=0``) on held-out data; write RUN/eval.json and
    RUN/before-after.png; return the results."""
    tr = load_translator(run)
    base = load_translator(baseline) if baseline is not None else None
    kind = (tr.task, tr.cfg.app.scale, is_photo_sr(tr.cfg))
    if base is not None and (base.task, base.cfg.app.scale, is_photo_sr(base.cfg)) != kind:
        raise GanforgeError(f"--baseline {baseline} is a run of another task")
    if tr.task == "sr" and is_photo_sr(tr.cfg):
        result = evaluate_photo_sr(tr, base, real)
    elif tr.task == "sr":
        result = evaluate_sr(tr, base, real, n)
    elif tr.task == "thicken":
        result = evaluate_thicken(tr, base, real, n)
    else:
        result = evaluate_colorize(tr, base, real)
    folder = RunFolder(Path(run))
    figure = folder.before_after
    if "_rows" in result:
        photo_rows_png(result.pop("_rows"), figure)
    else:
        write_grid(result.pop("_cells"), figure, nrow=result.pop("_nrow"))
    result = {
        "run": str(run),
        "task": tr.task,
        "checkpoint": "newest",
        "step": tr.step,
        "baseline": None if baseline is None else str(baseline),
        **result,
        "figure": BEFORE_AFTER,
    }
    result["metrics"] = _flat(result)
    write_json(result, folder.eval_file)
    return result


def photo_rows_png(rows: list[Tensor], path: Path, pad: int = 4) -> None:
    """Rows of photographs ``[k, 3, H, W]`` in [-1, 1] (one height per row) side by side."""
    strips = []
    for row in rows:
        cells = [torch.nn.functional.pad(img, (pad, 0, pad, 0), value=0.0) for img in row]
        strips.append(torch.cat(cells, dim=-1))
    width = max(s.shape[-1] for s in strips) + pad
    canvas = torch.cat([F.pad(s, (0, width - s.shape[-1], 0, 0), value=0.0) for s in strips], -2)
    canvas = F.pad(canvas, (0, 0, 0, pad), value=0.0)
    pix = ((canvas.clamp(-1, 1) + 1) * 127.5).round().to(torch.uint8).permute(1, 2, 0).numpy()
    Image.fromarray(pix).save(path)
