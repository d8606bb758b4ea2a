"""The ``ganforge`` command: parse arguments, build the config, call the library. Nothing else."""

from __future__ import annotations

import argparse
import sys
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from ganforge import config as cfglib
from ganforge.errors import ConfigError, GanforgeError
from ganforge.losses import LOSSES


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


def _presets_text() -> str:
    return "\n".join(f"  {name:<14} {p.about}" for name, p in cfglib.PRESETS.items())


def _train_epilog() -> str:
    from ganforge.data import DATA_SOURCES

    losses = "\n".join(f"  {name:<14} {loss.about}" for name, loss in LOSSES.items())
    sources = "\n".join(f"  {name:<14} {about}" for name, about in DATA_SOURCES.items())
    return (
        f"presets:\n{_presets_text()}\n\nlosses (train.loss):\n{losses}\n\n"
        f"data sources (--data; or a folder of images / IDX / CIFAR-10 .bin files, or a "
        f".npy/.npz array):\n{sources}\n\n"
        "config keys (key=value; a bare leaf such as lr_d=1e-4 works when unambiguous):\n"
        f"{cfglib.describe_keys()}\n\n"
        "examples:\n"
        "  ganforge train                                   # the course's MNIST GAN, ~3 min\n"
        "  ganforge train --preset mnist-dcgan --steps 500 --out runs/dc\n"
        "  ganforge train train.d_steps=2 optim.lr_d=1e-4 --data path/to/images/\n"
        "  ganforge train --resume runs/dc --steps 1000     # continue a stopped run"
    )


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="ganforge",
        description="Train, watch and judge Generative Adversarial Networks.",
        formatter_class=raw,
        epilog=f"presets:\n{_presets_text()}\n\nrun `ganforge COMMAND --help` for a command.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)

    t = sub.add_parser(
        "train",
        help="train a GAN into a run folder",
        formatter_class=raw,
        description="Train a GAN. With no arguments: the course's MLP GAN on the bundled 5,000 "
        "MNIST images.",
        epilog=_train_epilog(),
    )
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
        "overrides",
        nargs="*",
        metavar="key=value",
        help="config overrides, e.g. train.lr_d=1e-4 or d_steps=2",
    )

    s = sub.add_parser(
        "sample",
        help="draw samples from a trained generator",
        formatter_class=raw,
        description="Write N samples of a run's generator: .npy (data space: images "
        "[N, C, H, W] in [-1, 1], points [N, D]) or .png (a grid).",
    )
    s.add_argument("run", type=Path, metavar="RUN", help="a run folder")
    s.add_argument("--n", type=int, default=64, metavar="N", help="number of samples (64)")
    s.add_argument("--out", type=Path, required=True, metavar="FILE", help="a .npy or .png file")
    s.add_argument("--seed", type=int, default=0, metavar="S", help="seed of z (0)")
    return p


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
        cfglib.set_value(probe, full, raw)
        section, name = full.split(".")
        values[full] = getattr(getattr(probe, section), name)
    return values


def cmd_train(args: argparse.Namespace) -> int:
    from ganforge.train.loop import train  # torch is imported only by commands that need it

    if args.resume is not None:
        result = train(
            cfglib.Config(),
            resume=args.resume,
            resume_overrides=_resume_overrides(args),
            quiet=args.quiet,
        )
    else:
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
        cfg = cfglib.build(args.preset, args.config, overrides)
        result = train(cfg, args.out, overwrite=args.overwrite, quiet=args.quiet)
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
        samples = sorted((result.run / "samples").glob("step-*.png"))
        if samples:
            print(f"latest samples: {samples[-1]}")
    return 130 if result.interrupted else 0


def cmd_sample(args: argparse.Namespace) -> int:
    from ganforge.sample import sample, write_samples

    x = sample(args.run, args.n, seed=args.seed)
    write_samples(x, args.out)
    print(f"wrote {len(x)} samples to {args.out}")
    return 0


COMMANDS = {"train": cmd_train, "sample": cmd_sample}


def _one_line_warning(
    message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
) -> str:
    return f"ganforge: warning: {message}\n"


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning
    parser = build_parser()
    # key=value overrides may sit between options (`--steps 5 lr_d=1e-3 --out DIR`), which a
    # single positional argument of argparse cannot collect: gather the stragglers here.
    args, extra = parser.parse_known_args(argv)
    stray = [e for e in extra if e.startswith("-") or "=" not in e or args.command != "train"]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if args.command == "train":
        args.overrides = [*args.overrides, *extra]
    if args.command is None:
        parser.print_help()
        return 2
    try:
        return COMMANDS[args.command](args)
    except GanforgeError as e:
        print(f"ganforge {args.command}: error: {e}", file=sys.stderr)
        return e.exit_code
    except KeyboardInterrupt:
        print(f"ganforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
