"""Conditional GAN targets and the inpainting claim, on MNIST. Prints figures.

    python bench/conditional.py                         # train mnist-cgan, then evaluate it
    python bench/conditional.py --run runs/cgan         # evaluate a run trained before
    python bench/conditional.py --preset mnist-dcgan-cond --inpaint 0

1. Trains the preset (its own CPU budget) unless ``--run`` names a finished run.
2. Per class: draws ``--n`` samples of that label, classifies them with the MNIST classifier
   shipped in ganforge.metrics, and compares them with the real digits of that class (the
   MNIST test set from ``--real``, else the bundled 5,000) in the classifier's features:
   accuracy (target >= 0.95 overall), intra-class recall (target > 0.5 for every class),
   precision and FID.
3. Inpainting (``--inpaint N`` digits of the MNIST test set, top-right quarter missing): the
   mean squared error in the hole of the filled image and of the mean training image.
4. With ``--png DIR``: DIR/class-grid.png (10 samples of each class, a row per class) and
   DIR/inpaint.png (for the first 6 digits, a row each: truth, context, G(z*), filled, and
   the hole filled with the mean image).

Training can be split to stay within a time slot: ``--until N`` trains to step N only and
stops there; a later call with the same ``--out`` resumes the run, and the call that reaches
the run's last step evaluates it.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np
import torch

from ganforge import config
from ganforge.data import load_dataset
from ganforge.inpaint import before_after, inpaint, rect_hole
from ganforge.plots import image_grid, write_samples
from ganforge.runs import load_nets, sample_labelled
from ganforge.train.loop import train

TEST_SET = Path("/work/shared/data/mnist")


def real_set(path: Path | None) -> tuple[torch.Tensor, torch.Tensor, str]:
    """Images [N, 1, 28, 28] in [-1, 1], labels [N], and the set's name."""
    if path is not None and path.exists():
        data = load_dataset(str(path))
        name = f"MNIST test set ({path})"
    else:
        data = load_dataset("mnist5k")
        name = "bundled 5k MNIST (the training digits: no test set found)"
    assert data.y is not None
    return data.batch(torch.arange(len(data))), data.y, name


def per_class(run: Path, real_x: torch.Tensor, real_y: torch.Tensor, n: int) -> bool:
    from ganforge.evaluation import evaluate_classes

    t0 = time.perf_counter()
    rows = evaluate_classes(run, real_x, real_y, n_per_class=n, seed=1)
    print(f"per-class evaluation, {n} samples per class ({time.perf_counter() - t0:.0f} s):")
    print("class  accuracy  recall  precision  intra-FID  real-FID-floor")
    for r in rows["classes"]:
        print(
            f"{r['label']:>5}  {r['accuracy']:8.3f}  {r['recall']:6.3f}  {r['precision']:9.3f}"
            f"  {r['fid']:9.2f}  {r['fid_floor']:14.2f}"
        )
    acc, worst = rows["accuracy"], rows["min_recall"]
    print(f"overall accuracy {acc:.3f} (target >= 0.95); lowest intra-class recall {worst:.3f}")
    ok = acc >= 0.95 and worst > 0.5
    print("targets met" if ok else "targets NOT met")
    return ok


def inpaint_claim(
    run: Path, real_x: torch.Tensor, n: int, steps: int, window: int, png: Path | None
) -> None:
    g, d, _ = load_nets(run)
    train_x = load_dataset("mnist5k")
    mean_image = train_x.batch(torch.arange(len(train_x))).mean(0)
    hole = rect_hole("14,0,28,14", (28, 28))
    inside = hole.bool()[0]
    gen = torch.Generator().manual_seed(0)
    idx = torch.randperm(len(real_x), generator=gen)[:n]
    ours, base, rows = [], [], []
    t0 = time.perf_counter()
    for i in idx:
        truth = real_x[i]
        out = inpaint(g, d, truth, hole, steps=steps, window=window)
        ours.append(float(((out.filled[0] - truth[0])[inside] ** 2).mean()))
        base.append(float(((mean_image[0] - truth[0])[inside] ** 2).mean()))
        if len(rows) < 6:
            mean_fill = torch.where(hole.bool(), mean_image, truth)
            rows.append(torch.cat([before_after(out), mean_fill[None]]))
    o, b = np.array(ours), np.array(base)
    print(
        f"inpainting, {n} digits, top-right quarter missing, window {window}, {steps} steps "
        f"({time.perf_counter() - t0:.0f} s): MSE in the hole {o.mean():.4f} "
        f"(mean image {b.mean():.4f}, ratio {o.mean() / b.mean():.2f}); "
        f"better than the mean image on {(o < b).sum()} of {n}"
    )
    if png is not None:
        save_grid(torch.cat(rows), png / "inpaint.png", nrow=5)
        print(f"wrote {png / 'inpaint.png'} (truth, context, G(z*), filled, mean-image fill)")


def save_grid(x: torch.Tensor, path: Path, nrow: int, scale: int = 4) -> None:
    from PIL import Image

    grid = image_grid(x, nrow=nrow)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST).save(path)


def class_grid_png(run: Path, png: Path) -> None:
    x, y = sample_labelled(run, 100, seed=0)
    write_samples(x, png / "class-grid.png", y)
    print(f"wrote {png / 'class-grid.png'} (a row per class, 0 at the top)")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="mnist-cgan")
    p.add_argument("--run", type=Path, help="evaluate this finished run instead of training")
    p.add_argument("--out", type=Path, default=Path("runs/bench-conditional"))
    p.add_argument("--steps", type=int, help="the run's steps (default: the preset's)")
    p.add_argument("--until", type=int, help="this call trains to step N only (resume later)")
    p.add_argument("--n", type=int, default=500, help="samples per class (500)")
    p.add_argument("--real", type=Path, default=TEST_SET, help="folder of the MNIST test set")
    p.add_argument("--inpaint", type=int, default=20, help="digits to inpaint (20; 0 skips)")
    p.add_argument("--inpaint-steps", type=int, default=600)
    p.add_argument("--window", type=int, default=0, help="context window of the inpainting (0)")
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--png", type=Path, help="write the class grid and inpainting figures here")
    p.add_argument("overrides", nargs="*", help="config key=value overrides for training")
    a = p.parse_args()
    torch.set_num_threads(a.threads)
    run = a.run
    if run is None:
        cfg = config.build(a.preset, overrides=list(a.overrides))
        total = a.steps or cfg.train.steps
        stop = min(a.until or total, total)
        t0 = time.perf_counter()
        if (a.out / "checkpoints").is_dir():  # a run begun by an earlier call: continue it
            result = train(cfg, resume=a.out, resume_overrides={"train.steps": stop}, quiet=True)
        else:
            cfg.train.steps = stop
            result = train(cfg, out=a.out, quiet=True)
        print(f"trained {a.preset} to step {result.step} in {time.perf_counter() - t0:.0f} s")
        if result.step < total:
            print(f"{total - result.step} steps to go: run again with the same --out")
            return
        run = result.run
    real_x, real_y, name = real_set(a.real)
    print(f"run {run}; real digits: {name}")
    if a.png is not None:
        a.png.mkdir(parents=True, exist_ok=True)
        class_grid_png(run, a.png)
    if a.n:
        per_class(run, real_x, real_y, a.n)
    if a.inpaint:
        inpaint_claim(run, real_x, a.inpaint, a.inpaint_steps, a.window, a.png)


if __name__ == "__main__":
    main()
