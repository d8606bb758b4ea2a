"""The image-to-image applications against their baselines. Prints a table per preset.

    python bench/applications.py                          # every preset, seed 0
    python bench/applications.py --preset mnist-sr --seeds 0 1
    python bench/applications.py --png docs/applications    # the figures of docs/applications.md

For each preset (mnist-sr, mnist-thicken, colorize, photo-sr) and seed: trains the preset (the GAN)
and the plain L1 model (the same preset, script and steps with ``app.adv=0
app.feature=0``), one after the other, timing each; evaluates the GAN with the L1 model as
``--baseline`` (``ganforge eval``: held-out data only, the MNIST test set from ``--real``
for the digit tasks when it exists, else the tasks' fallbacks); writes each run's
report.html; prints per direction and method the figures (PSNR, SSIM, classifier accuracy,
FID, ink ratio; colorize: PSNR, SSIM, colourfulness and its ratio to the truth's) and the
wall time of each training. With ``--png DIR`` the before/after figure of each preset is
copied to DIR/PRESET.png. ``--eval-only`` evaluates the runs a former call trained.
"""

from __future__ import annotations

import argparse
import shutil
import time
from pathlib import Path
from typing import Any

from ganforge import config
from ganforge.apps.evaluate import evaluate_app
from ganforge.apps.train import train_app
from ganforge.report.html import write_report
from ganforge.runs import RunFolder

PRESETS = ("mnist-sr", "mnist-thicken", "colorize", "photo-sr")
TEST_SET = Path("/work/shared/data/mnist")
TARGETS = {
    "mnist-sr": "PSNR >= bicubic + 2 dB, accuracy >= 0.95, FID <= 3 x the real floor",
    "mnist-thicken": "A -> B: PSNR >= 18 dB, accuracy >= 0.85, ink ratio within 10 %",
    "colorize": "PSNR above grey's and L1's, colourfulness >= 60 % of the truth's",
    "photo-sr": "none set: PSNR beside bicubic's and the L1 model's",
}


def train_one(preset: str, out: Path, seed: int, extra: list[str]) -> float:
    """Train ``preset`` into ``out`` (a fresh folder); its wall time in seconds."""
    cfg = config.build(preset, overrides=[f"train.seed={seed}", *extra])
    t0 = time.perf_counter()
    train_app(cfg, out, overwrite=True, quiet=True)
    return time.perf_counter() - t0


def table(preset: str, seed: int, result: dict[str, Any], times: dict[str, float]) -> None:
    print(
        f"\n{preset}, seed {seed}: {result['test']} (n = {result['n']}); target: {TARGETS[preset]}"
    )
    print(f"  wall time: GAN {times['gan']:.0f} s, L1 model {times['l1']:.0f} s")
    for d, methods in result["directions"].items():
        keys = list(next(iter(methods.values())))
        print(f"  {d:<4} {'method':<10}" + "".join(f"{k:>20}" for k in keys))
        for m, figs in methods.items():
            print(f"  {'':<4} {m:<10}" + "".join(f"{figs[k]:>20.4g}" for k in keys))
    for name, photo in result.get("per_photo", {}).items():
        print(
            f"  {name}: "
            + ", ".join(
                f"{m} PSNR {f['psnr']:.2f}"
                + (f" colourfulness {f['colourfulness']:.1f}" if "colourfulness" in f else "")
                for m, f in photo.items()
            )
        )


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--preset", nargs="*", default=list(PRESETS), choices=PRESETS)
    p.add_argument("--seeds", nargs="*", type=int, default=[0])
    p.add_argument("--out", type=Path, default=Path("runs/bench-applications"))
    p.add_argument("--real", type=Path, default=TEST_SET, help="MNIST test set (IDX files)")
    p.add_argument("--png", type=Path, help="copy the before/after figures here")
    p.add_argument("--eval-only", action="store_true", help="evaluate runs trained before")
    p.add_argument("overrides", nargs="*", help="key=value for every run (e.g. train.steps=50)")
    args = p.parse_args()
    for preset in args.preset:
        for seed in args.seeds:
            gan, l1 = args.out / f"{preset}-s{seed}", args.out / f"{preset}-l1-s{seed}"
            times = {"gan": float("nan"), "l1": float("nan")}
            if not args.eval_only:
                times["gan"] = train_one(preset, gan, seed, args.overrides)
                times["l1"] = train_one(
                    preset, l1, seed, [*args.overrides, "app.adv=0", "app.feature=0"]
                )
            else:
                for key, run in (("gan", gan), ("l1", l1)):
                    rows = list(RunFolder(run).metrics())
                    times[key] = rows[-1]["elapsed_s"] if rows else float("nan")
            digits = preset in ("mnist-sr", "mnist-thicken")
            real = str(args.real) if digits and args.real.exists() else None
            result = evaluate_app(gan, baseline=l1, real=real)
            write_report([gan], RunFolder(gan).report_file)
            table(preset, seed, result, times)
            if args.png is not None:
                args.png.mkdir(parents=True, exist_ok=True)
                shutil.copy(RunFolder(gan).before_after, args.png / f"{preset}.png")


if __name__ == "__main__":
    main()
