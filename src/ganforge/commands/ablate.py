"""``ganforge ablate``: train a grid of configs over seeds in parallel and tabulate the results."""

from __future__ import annotations

import argparse
import os
import time
from pathlib import Path

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from ganforge import ablate
from ganforge import config as cfglib
from ganforge.errors import ConfigError
from ganforge.runs import default_out

DESCRIPTION = (
    "Train every cell of a grid with N seeds each, as normal run folders, measure each run and "
    "write OUT/ablation.csv (one row per run), OUT/ablation.md (mean ± std and a 95 % interval "
    "per cell) and OUT/ablation.png. Toy mixtures are measured by their mode metrics, images by "
    "FID where the evaluation module provides it; the last training measurements always. Runs "
    "that fail or diverge are reported as such."
)
# stray key=value words are overrides applied to every run of the grid
TAKES_OVERRIDES = True


def epilog() -> str:
    return (
        "the grid: the product of the --cell sets (or one default cell) and of the values of "
        "each --vary key.\n\n"
        "examples:\n"
        "  ganforge ablate --preset ring8 --vary train.loss=ns,hinge --seeds 3 --steps 2000\n"
        "  ganforge ablate --preset grid25 --cell '' --cell 'stab.ema=0.999' \\\n"
        "      --cell 'model.spectral_norm=true stab.r1=0.1' --seeds 5 --jobs 2\n"
        "  ganforge ablate --preset grid25 --vary lr_d=1e-4,2e-4 --vary d_steps=1,2 --seeds 2"
    )


def add_arguments(a: argparse.ArgumentParser) -> None:
    a.add_argument(
        "--preset", default=cfglib.Config.preset, metavar="NAME", help="the base config (mnist-mlp)"
    )
    a.add_argument(
        "--vary",
        action="append",
        default=[],
        metavar="KEY=V1,V2",
        help="a config key and its values, one cell per value (repeatable: a product); "
        "tuple-valued keys separate values by '/'",
    )
    a.add_argument(
        "--cell",
        action="append",
        default=[],
        metavar="'K=V K=V'",
        help="one cell: space-separated overrides ('' is the preset itself); repeatable",
    )
    a.add_argument("--seeds", type=int, default=3, metavar="N", help="seeds 0..N-1 per cell (3)")
    a.add_argument("--steps", type=int, metavar="S", help="generator updates per run")
    a.add_argument(
        "--jobs",
        type=int,
        default=os.cpu_count() or 1,
        metavar="J",
        help="runs at once, in separate processes (the core count); torch threads = cores / J",
    )
    a.add_argument(
        "--samples",
        type=int,
        default=10_000,
        metavar="N",
        help="samples drawn from each run to measure it (10000)",
    )
    a.add_argument(
        "--out", type=Path, metavar="DIR", help="output folder (runs/ablate-<preset>-<time>)"
    )
    a.add_argument("--quiet", action="store_true", help="print nothing but errors")
    a.add_argument(
        "overrides", nargs="*", metavar="key=value", help="overrides applied to every run"
    )


def run(args: argparse.Namespace) -> int:

    if args.preset not in cfglib.PRESETS:
        raise ConfigError(
            f"unknown preset '{args.preset}'; choose one of {', '.join(cfglib.PRESETS)}"
        )
    for flag in ("seeds", "jobs", "samples"):
        if getattr(args, flag) < 1:
            raise ConfigError(f"--{flag} must be at least 1, got {getattr(args, flag)}")
    if args.steps is not None and args.steps < 1:
        raise ConfigError(f"--steps must be at least 1, got {args.steps}")
    fixed = ablate.parse_cell(" ".join(args.overrides))
    cells = ablate.grid(
        [ablate.parse_cell(c) for c in args.cell], [ablate.parse_vary(v) for v in args.vary]
    )
    out: Path = args.out or default_out(f"ablate-{args.preset}")
    jobs = [
        ablate.Job(args.preset, cell, seed, args.steps, fixed, out, args.samples)
        for cell in cells
        for seed in range(args.seeds)
    ]
    for job in jobs[:: args.seeds]:
        ablate.job_config(job)  # every cell's config is valid before any run starts
    out.mkdir(parents=True, exist_ok=True)
    console = Console(stderr=True)
    workers = min(args.jobs, len(jobs))
    if not args.quiet:
        console.print(
            f"ablate {args.preset}: {len(cells)} cells x {args.seeds} seeds = {len(jobs)} runs, "
            f"{workers} at a time, into {out}",
            highlight=False,
        )
    t0 = time.perf_counter()
    live = not args.quiet and console.is_terminal
    progress = Progress(
        TextColumn("[bold]ablate"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=console,
        disable=not live,
    )
    with progress:
        task = progress.add_task("runs", total=len(jobs))

        finished: list[ablate.Record] = []
        title = f"ablation on {args.preset}" + (f", {args.steps} steps" if args.steps else "")

        def done(r: ablate.Record) -> None:
            finished.append(r)
            # the tables so far: a grid cut short (a time limit, a crash) still leaves them
            ablate.write_csv(finished, out / "ablation.csv")
            ablate.write_markdown(finished, out / "ablation.md", title + " (in progress)")
            progress.advance(task)
            if not args.quiet and not live:
                console.print(f"  {r.cell.label} seed {r.seed}: {r.status}", highlight=False)

        records = ablate.run_grid(jobs, workers, done)
    ablate.write_outputs(records, out, title)
    if not args.quiet:
        bad = sum(r.status != "ok" for r in records)
        console.print(
            f"{len(records)} runs in {time.perf_counter() - t0:.0f} s ({bad} did not finish); "
            f"wrote {out / 'ablation.md'}, ablation.csv, ablation.png",
            highlight=False,
        )
        print((out / "ablation.md").read_text(encoding="utf-8"))
    interrupted = len(records) < len(jobs) or any(r.status == "interrupted" for r in records)
    return 130 if interrupted else 0
