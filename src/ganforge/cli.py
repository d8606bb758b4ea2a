"""The ``ganforge`` command: parse arguments, build the config, call the library. Nothing else."""

from __future__ import annotations

import argparse
import importlib
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol, cast

from ganforge import config as cfglib
from ganforge.errors import GanforgeError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Command(Protocol):
    """What a module of ``ganforge.commands`` provides (see its docstring)."""

    DESCRIPTION: str
    TAKES_OVERRIDES: bool

    def epilog(self) -> str: ...

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# The table of commands: ``ganforge NAME`` runs the ``run(args)`` of ganforge.commands.NAME,
# the only command module imported (``ganforge --help`` imports none: no torch).
COMMANDS: dict[str, str] = {
    "train": "train a GAN into a run folder",
    "sample": "draw samples from a trained generator",
    "inpaint": "fill the missing pixels of an image with a trained generator",
    "translate": "apply an image-to-image generator (super-resolution, colour, style) to a file",
    "ablate": "compare configs: a grid of runs over seeds, in parallel, with tables and a chart",
    "eval": "evaluate a trained generator: FID, KID, precision/recall, classes, with intervals",
    "diagnose": "say in words what went wrong in a run, and what to try",
    "report": "write report.html: curves, samples over time, diagnostics, metrics, config",
    "theory": "see D approach D*: Goodfellow's figure, JSD and V curves, 2-D heat maps",
    "lab": "train a toy GAN live in a local web page: D, D*, the JSD and V as they move",
}


def command(name: str) -> Command:
    """The module of command ``name`` (imported now)."""
    return cast(Command, importlib.import_module(f"ganforge.commands.{name}"))


def build_parser(chosen: str | None = None) -> argparse.ArgumentParser:
    """The parser; only the ``chosen`` command's sub-parser gets its options and texts."""
    raw = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="ganforge",
        description="Train, watch and judge Generative Adversarial Networks.",
        formatter_class=raw,
        epilog=f"presets:\n{cfglib.presets_text()}\n\nrun `ganforge COMMAND --help` for a command.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, help_line in COMMANDS.items():
        if name != chosen:
            sub.add_parser(name, help=help_line)
            continue
        module = command(name)
        parser = sub.add_parser(
            name,
            help=help_line,
            formatter_class=raw,
            description=module.DESCRIPTION,
            epilog=module.epilog() or None,
        )
        module.add_arguments(parser)
    return p


def _chosen(argv: Sequence[str]) -> str | None:
    """The command named in ``argv`` (its first word that is not an option), if any."""
    first = next((a for a in argv if not a.startswith("-")), None)
    return first if first in COMMANDS else None


def _one_line_warning(
    message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any
) -> str:
    return f"ganforge: warning: {' '.join(str(message).split())}\n"


def _out_of_memory(e: BaseException) -> str | None:
    """What an allocation failure tried to allocate, or None when ``e`` is not one. torch
    reports a failed allocation as a RuntimeError (CPU) or torch.OutOfMemoryError (GPU)."""
    text = str(e)
    if not (isinstance(e, MemoryError) or "allocate" in text or "out of memory" in text):
        return None
    size = re.search(r"[Tt]ried to allocate ([\d.]+ ?[A-Za-z]+)", text)
    if size is None:
        return "an allocation failed"
    amount = size.group(1)
    if amount.endswith("bytes") and amount[:-5].strip().isdigit():
        amount = f"{int(amount[:-5]) / 2**30:,.1f} GiB"
    return f"tried to allocate {amount}"


def main(argv: Sequence[str] | None = None) -> int:
    warnings.formatwarning = _one_line_warning
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(_chosen(argv))
    # key=value overrides may sit between options (`--steps 5 lr_d=1e-3 --out DIR`), which a
    # single positional argument of argparse cannot collect: gather the stragglers here.
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    module = command(args.command)
    stray = [e for e in extra if e.startswith("-") or "=" not in e or not module.TAKES_OVERRIDES]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if module.TAKES_OVERRIDES:
        args.overrides = [*args.overrides, *extra]
    try:
        return module.run(args)
    except GanforgeError as e:
        one_line = " ".join(str(e).split())  # a path or value may hold a newline
        print(f"ganforge {args.command}: error: {one_line}", file=sys.stderr)
        return e.exit_code
    except (MemoryError, RuntimeError) as e:
        reason = _out_of_memory(e)
        if reason is None:
            raise  # a bug: keep its traceback
        print(
            f"ganforge {args.command}: error: out of memory ({reason}); lower the sizes "
            "(train.batch_size, data.image_size, model widths, train.n_samples, --n)",
            file=sys.stderr,
        )
        return 1
    except KeyboardInterrupt:
        print(f"ganforge {args.command}: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    raise SystemExit(main())
