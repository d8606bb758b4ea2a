"""``ganforge theory``: look at a 1-D or 2-D run through the GAN theory (D*, JSD, V)."""

from __future__ import annotations

import argparse
import math
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn

from ganforge.errors import ConfigError
from ganforge.report.theory import theory_report

DESCRIPTION = (
    "Look at a run on 1-D or 2-D points (presets toy-1d, ring8, grid25) through its weight "
    "snapshots (train.snapshot_every; without them, its kept checkpoints).\n\n"
    "1-D: RUN/theory/abcd.png, Goodfellow et al. (2014) Figure 1 from the run: (a) start, "
    "(b) after a D update, (c) after a G update, (d) end, each with p_data (black dots), p_g "
    "(green; a Gaussian KDE of 20,000 G samples), D (blue dashes) and D* = p_data / (p_data + "
    "p_g) (orange), and the mapping x = G(z) from evenly spaced quantiles of z below; "
    "RUN/theory/curves.png, JSD(p_data || p_g), V(D, G) with the learned D and "
    "V(D*, G) = -log 4 + 2 JSD over training; RUN/theory/run.gif, the whole run; "
    "RUN/theory/theory.jsonl, the numbers.\n\n"
    "2-D: RUN/theory/heatmaps/step-XXXXXX.png and heatmaps.gif, D's output over the plane "
    "under G's samples and the true mode centres; for mixtures, the mode metrics per step "
    "(modes captured, high-quality share, KL) printed and in RUN/theory/modes.jsonl."
)
TAKES_OVERRIDES = False


def epilog() -> str:
    return (
        "examples:\n"
        "  ganforge train --preset toy-1d --out runs/toy && ganforge theory runs/toy\n"
        "  ganforge theory runs/toy --panels 100,800     # (b) at step 100, (c) at step 800\n"
        "  ganforge train --preset ring8 --out runs/ring && ganforge theory runs/ring"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", type=Path, metavar="RUN", help="a run folder on 1-D or 2-D points")
    p.add_argument(
        "--out", type=Path, metavar="DIR", help="where to write the pictures (RUN/theory)"
    )
    p.add_argument(
        "--panels",
        metavar="B,C",
        help="steps of panels (b) 'after a D update' and (c) 'after a G update' "
        "(default: about 5%% and 25%% into the run; the nearest snapshot is used)",
    )
    p.add_argument("--no-gif", action="store_true", help="skip the animations")
    p.add_argument(
        "--frames", type=int, default=80, metavar="N", help="most frames in the 1-D GIF (80)"
    )
    p.add_argument(
        "--maps", type=int, default=10, metavar="N", help="most 2-D heat maps, evenly spread (10)"
    )
    p.add_argument("--quiet", action="store_true", help="print nothing but errors")


def _panels(text: str | None) -> tuple[int, int] | None:
    if text is None:
        return None
    parts = text.split(",")
    try:
        b, c = (int(s) for s in parts)
    except ValueError:
        raise ConfigError(
            f"--panels: expected two steps B,C such as 100,800, got '{text}'"
        ) from None
    if b < 0 or c < 0:
        raise ConfigError(f"--panels: steps must be >= 0, got '{text}'")
    return b, c


def _fmt(v: float) -> str:
    return "inf" if math.isinf(v) else f"{v:.3f}"


def run(args: argparse.Namespace) -> int:

    panels = _panels(args.panels)
    if args.frames < 2 or args.maps < 1:
        raise ConfigError("--frames must be >= 2 and --maps >= 1")
    out = args.out or args.run / "theory"
    console = Console(stderr=True)
    live = not args.quiet and console.is_terminal
    with Progress(
        TextColumn("[bold]theory"), BarColumn(), TextColumn("{task.completed}/{task.total}"),
        console=console, disable=not live,
    ) as bar:  # fmt: skip
        task = bar.add_task("frames", total=None)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        result = theory_report(
            args.run,
            out,
            panels=panels,
            gif=not args.no_gif,
            max_frames=args.frames,
            max_maps=args.maps,
            progress=tick,
        )
    if args.quiet:
        return 0
    if result.source == "checkpoints":
        print(
            "no snapshots in this run: used its kept checkpoints "
            "(train with train.snapshot_every=N to see the whole run)"
        )
    if result.dim == 1:
        print("panels: " + ", ".join(f"({'abcd'[i]}) step {s} {ph}" for i, (s, ph) in
                                     enumerate(result.panels)))  # fmt: skip
        print(f"{'step':>7} {'JSD':>7} {'V(D,G)':>8} {'V(D*,G)':>8} {'E|D-D*|':>8}")
        for r in _spread(result.rows, 12):
            print(
                f"{r['step']:>7} {r['jsd']:>7.4f} {r['v_learned']:>8.4f} {r['v_optimal']:>8.4f} "
                f"{r['d_gap']:>8.4f}"
            )
        print("V(D*,G) = -log 4 + 2 JSD; V(D,G) <= V(D*,G); -log 4 = -1.3863 when p_g = p_data")
    elif result.rows and "modes" in result.rows[0]:
        print(f"{'step':>7} {'modes':>9} {'HQ share':>9} {'KL':>7}")
        for r in result.rows:
            print(
                f"{r['step']:>7} {r['modes']:>4} / {r['n_modes']:<2} {r['hq_share']:>9.3f} "
                f"{_fmt(r['kl']):>7}"
            )
        print("(20,000 samples; high quality: within 3 std of the nearest mode)")
    print(f"wrote {len(result.files)} files to {out}")
    return 0


def _spread(rows: list[dict], most: int) -> list[dict]:
    if len(rows) <= most:
        return rows
    step = (len(rows) - 1) / (most - 1)
    return [rows[round(i * step)] for i in range(most)]
