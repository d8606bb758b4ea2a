"""``ganforge sample``: draw samples from a run's generator into a .npy or a .png grid."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ganforge.config import CHOICES
from ganforge.errors import GanforgeError
from ganforge.plots import write_samples
from ganforge.runs import RunFolder, sample_filtered, sample_labelled

DESCRIPTION = (
    "Write N samples of a run's generator: .npy (data space: images [N, C, H, W] in [-1, 1], "
    "points [N, D]) or .png (a grid). For a conditional run: --label L draws class L only; "
    "without it every class in turn, and the .png has one row per class. --filter drs or "
    "rejection keeps the samples the run's D accepts (Discriminator Rejection Sampling, Azadi "
    "et al. 2019, or plain rejection by D's density ratio)."
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
    s.add_argument(
        "--filter",
        choices=CHOICES["train.sample_filter"],
        help="none: every sample drawn; drs, rejection: those the run's D accepts, the "
        "acceptance rate on stderr (default: the run's train.sample_filter)",
    )
    s.add_argument(
        "--quantile",
        type=float,
        metavar="Q",
        help="--filter rejection: D~_M is this quantile of the burn-in's logits; higher keeps "
        "the modes G barely reaches at their weight, at a lower acceptance (default: the run's "
        "train.filter_quantile)",
    )


def run(args: argparse.Namespace) -> int:
    name = args.filter or RunFolder(args.run).read_config().train.sample_filter
    if name == "none":
        if args.quantile is not None:
            raise GanforgeError("--quantile needs --filter rejection")
        x, y = sample_labelled(args.run, args.n, seed=args.seed, label=args.label)
        write_samples(x, args.out, y)
        what = "" if args.label is None else f" of class {args.label}"
        print(f"wrote {len(x)} samples{what} to {args.out}")
        return 0
    if args.label is not None:
        raise GanforgeError("--label needs --filter none: drs draws unconditional samples only")
    console = Console(stderr=True)
    with Progress(
        TextColumn(f"[bold]{name}"), BarColumn(), TextColumn("{task.completed}/{task.total} kept"),
        TimeRemainingColumn(), console=console, disable=not console.is_terminal, transient=True,
    ) as bar:  # fmt: skip
        task = bar.add_task("kept", total=args.n)

        def tick(done: int, total: int) -> None:
            bar.update(task, completed=done, total=total)

        kept = sample_filtered(
            args.run, args.n, name, seed=args.seed, progress=tick, quantile=args.quantile
        )
    write_samples(kept.samples, args.out, None)
    knob = f"gamma {kept.gamma:.3f}" if name == "drs" else f"D~_M {kept.d_max:.3f}"
    print(
        f"{name}: accepted {kept.accepted} of {kept.candidates} candidates "
        f"(acceptance rate {100 * kept.rate:.3g} %, {knob})",
        file=sys.stderr,
    )
    print(f"wrote {len(kept.samples)} samples ({name}) to {args.out}")
    return 0
