"""``ganforge train``: build the config from preset, file, flags and overrides; train a run."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path
from typing import Any

from ganforge import config as cfglib
from ganforge.apps.train import train_app
from ganforge.data import DATA_SOURCES
from ganforge.errors import ConfigError, GanforgeError
from ganforge.losses import LOSSES
from ganforge.report.html import write_report
from ganforge.runs import RunFolder, default_out
from ganforge.train import distributed
from ganforge.train.loop import RESUMABLE_KEYS, prepare, train

DESCRIPTION = (
    "Train a GAN. With no arguments: the course's MLP GAN on the bundled 5,000 MNIST images."
)
# key=value overrides may sit anywhere among the options (see cli.main)
TAKES_OVERRIDES = True


def epilog() -> str:

    losses = "\n".join(f"  {name:<14} {loss.about}" for name, loss in LOSSES.items())
    sources = "\n".join(f"  {name:<14} {about}" for name, about in DATA_SOURCES.items())
    return (
        f"presets:\n{cfglib.presets_text()}\n\nlosses (train.loss):\n{losses}\n\n"
        f"data sources (--data; or a folder of images / IDX / CIFAR-10 .bin files, or a "
        f".npy/.npz array):\n{sources}\n\n"
        "config keys (key=value; a bare leaf such as lr_d=1e-4 works when unambiguous):\n"
        f"{cfglib.describe_keys()}\n\n"
        "examples:\n"
        "  ganforge train                                   # the course's MNIST GAN, ~3 min\n"
        "  ganforge train --preset mnist-dcgan --steps 500 --out runs/dc\n"
        "  ganforge train train.d_steps=2 optim.lr_d=1e-4 --data path/to/images/\n"
        "  ganforge train --resume runs/dc --steps 1000     # continue a stopped run\n"
        "  ganforge train --nproc 4 --out runs/ddp          # 4 processes (DDP) on this machine\n"
        "  torchrun --nproc_per_node 8 -m ganforge train    # the same with torchrun (or nodes:\n"
        "                                                   #   see docs/distributed.md)"
    )


def add_arguments(t: argparse.ArgumentParser) -> None:
    t.add_argument(
        "--preset",
        choices=list(cfglib.PRESETS),
        metavar="NAME",
        help="named starting config (default: mnist-mlp; listed below)",
    )
    t.add_argument(
        "--config",
        type=Path,
        metavar="FILE",
        help="TOML file with [model] [data] [optim] [train] tables (and preset=...)",
    )
    t.add_argument(
        "--data",
        metavar="PATH",
        help="data source: mnist5k, mnist, fashion-mnist, cifar10, a folder of images "
        "or IDX files, or a .npy/.npz array (sets data.source)",
    )
    t.add_argument(
        "--download",
        action="store_true",
        help="fetch a named data set (mnist, fashion-mnist, cifar10) if missing",
    )
    t.add_argument(
        "--out", type=Path, metavar="DIR", help="run folder (default: runs/<preset>-<timestamp>)"
    )
    t.add_argument(
        "--overwrite", action="store_true", help="replace the run in an existing --out folder"
    )
    t.add_argument("--steps", type=int, metavar="N", help="generator updates (train.steps)")
    t.add_argument("--seed", type=int, metavar="S", help="random seed (train.seed)")
    t.add_argument(
        "--resume",
        type=Path,
        metavar="DIR",
        help="continue the run in DIR from its newest checkpoint",
    )
    t.add_argument(
        "--tensorboard", action="store_true", help="also write TensorBoard events to DIR/tb"
    )
    t.add_argument("--quiet", action="store_true", help="print nothing while training")
    t.add_argument(
        "--nproc",
        type=int,
        metavar="N",
        help="train with N processes on this machine, data-parallel (DDP, started by torchrun's "
        "engine; one GPU each under CUDA); train.batch_size is per process",
    )
    t.add_argument(
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. train.lr_d=1e-4 or d_steps=2",
    )


def _resume_overrides(args: argparse.Namespace) -> dict[str, Any]:
    for flag in ("preset", "config", "data", "seed"):
        if getattr(args, flag) is not None:
            raise ConfigError(f"--{flag} cannot be combined with --resume (the run has its config)")
    probe = cfglib.Config()
    values: dict[str, Any] = {}
    texts = list(args.overrides)
    if args.steps is not None:
        texts.append(f"train.steps={args.steps}")
    if args.tensorboard:
        texts.append("train.tensorboard=true")
    for text in texts:
        key, raw = cfglib.split_override(text)
        full = cfglib.resolve_key(key, probe)
        if full not in RESUMABLE_KEYS:  # before parsing: "preset" is no section.key either
            raise ConfigError(f"{full} cannot change when resuming a run (it changes the maths)")
        cfglib.set_value(probe, full, raw)
        values[full] = cfglib.get_value(probe, full)
    return values


def run(args: argparse.Namespace) -> int:
    if args.nproc is not None:
        return _launch(args)
    rank = int(os.environ.get("RANK", "0"))  # under torchrun: rank 0 alone speaks
    try:
        result = _train(args)
    except GanforgeError as e:
        if rank != 0:
            return e.exit_code  # rank 0 reports the same error
        raise
    if rank != 0:
        return 130 if result.interrupted else 0
    folder = RunFolder(result.run)
    if folder.read_config().diagnose.report:
        write_report([folder.path], folder.report_file)
    if not args.quiet:
        last = result.last
        summary = (
            (
                f"L_D {last['loss_d']:.3f}, L_G {last['loss_g']:.3f}, "
                f"D(x) {last['d_real']:.2f}, D(G(z)) {last['d_fake']:.2f}"
            )
            if last
            else ""
        )
        print(f"run folder: {result.run}  (step {result.step}{'; ' + summary if summary else ''})")
        samples = folder.sample_grids()
        if samples:
            print(f"latest samples: {samples[-1][1]}")
    return 130 if result.interrupted else 0


def _train_config(args: argparse.Namespace) -> cfglib.Config:
    """The config of a new run: preset, file, flags, then ``key=value`` overrides."""
    overrides = list(args.overrides)
    for flag, key in (
        ("data", "data.source"),
        ("steps", "train.steps"),
        ("seed", "train.seed"),
    ):
        if getattr(args, flag) is not None:
            overrides.append(f"{key}={getattr(args, flag)}")
    if args.download:
        overrides.append("data.download=true")
    if args.tensorboard:
        overrides.append("train.tensorboard=true")
    return cfglib.build(args.preset, args.config, overrides)


def _train(args: argparse.Namespace) -> Any:

    if args.resume is not None:
        if RunFolder(args.resume).read_config().app.task != "none":
            return train_app(
                cfglib.Config(),
                resume=args.resume,
                resume_overrides=_resume_overrides(args),
                quiet=args.quiet,
            )
        return train(
            cfglib.Config(),
            resume=args.resume,
            resume_overrides=_resume_overrides(args),
            quiet=args.quiet,
        )
    cfg = _train_config(args)
    if cfg.app.task != "none":  # an image-to-image task (apps/)
        return train_app(cfg, args.out, overwrite=args.overwrite, quiet=args.quiet)
    return train(cfg, args.out, overwrite=args.overwrite, quiet=args.quiet)


def _launch(args: argparse.Namespace) -> int:
    """``--nproc N``: check what can be checked here (one line per mistake, nothing started),
    then run this command in N processes with torchrun's engine and return their exit code."""

    if args.nproc < 1:
        raise ConfigError(f"--nproc must be at least 1, got {args.nproc}")
    if "WORLD_SIZE" in os.environ:
        raise ConfigError("--nproc starts the processes itself: do not combine it with torchrun")
    if args.resume is not None:  # the run folder, its checkpoint and the overrides
        cfg, _ = prepare(cfglib.Config(), None, args.resume, _resume_overrides(args))
    else:
        cfg = _train_config(args)
        if args.out is None:  # one folder for every rank, named here
            args.out = default_out(cfg.preset)
        out = args.out
        if out.is_dir() and any(out.iterdir()) and not args.overwrite:
            RunFolder(out).prepare_new(overwrite=False)  # raises its one-line error
    if cfg.app.task != "none":
        raise ConfigError(
            f"--nproc does not train the image-to-image tasks (app.task={cfg.app.task})"
        )
    worker_args = argparse.Namespace(**{**vars(args), "nproc": None})
    codes = distributed.launch(args.nproc, _worker, worker_args)
    return max(codes, default=0)


def _worker(args: argparse.Namespace) -> int:
    """One process of ``--nproc``: ``run``, its errors turned into exit codes as the CLI does."""
    try:
        return run(args)
    except GanforgeError as e:
        print(f"ganforge train: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        return 130
