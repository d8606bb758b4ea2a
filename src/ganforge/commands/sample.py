"""``ganforge sample``: draw samples from a run's generator into a .npy or a .png grid."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.plots import write_samples
from ganforge.runs import sample_labelled

DESCRIPTION = (
    "Write N samples of a run's generator: .npy (data space: images [N, C, H, W] in [-1, 1], "
    "points [N, D]) or .png (a grid). For a conditional run: --label L draws class L only; "
    "without it every class in turn, and the .png has one row per class."
)
TAKES_OVERRIDES = False


def epilog() -> str:
    return ""


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("run", type=Path, metavar="RUN", help="a run folder")
    s.add_argument("--n", type=int, default=64, metavar="N", help="number of samples (64)")
    s.add_argument("--out", type=Path, required=True, metavar="FILE", help="a .npy or .png file")
    s.add_argument("--seed", type=int, default=0, metavar="S", help="seed of z (0)")
    s.add_argument(
        "--label",
        type=int,
        metavar="L",
        help="conditional runs: draw class L only (default: every class in turn, a row each)",
    )


def run(args: argparse.Namespace) -> int:

    x, y = sample_labelled(args.run, args.n, seed=args.seed, label=args.label)
    write_samples(x, args.out, y)
    what = "" if args.label is None else f" of class {args.label}"
    print(f"wrote {len(x)} samples{what} to {args.out}")
    return 0
