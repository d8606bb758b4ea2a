"""The ``ganforge`` command: parse arguments, build the config, call the library. Nothing else."""

from __future__ import annotations

import argparse
import re
import sys
import warnings
from collections.abc import Sequence
from typing import Any, NoReturn, Protocol

from ganforge import config as cfglib
from ganforge.commands import ablate as ablate_cmd
from ganforge.commands import diagnose as diagnose_cmd
from ganforge.commands import eval as eval_cmd
from ganforge.commands import inpaint as inpaint_cmd
from ganforge.commands import report as report_cmd
from ganforge.commands import sample as sample_cmd
from ganforge.commands import theory as theory_cmd
from ganforge.commands import train as train_cmd
from ganforge.errors import GanforgeError


class _Parser(argparse.ArgumentParser):
    """argparse that reports a usage mistake in one line, exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see {self.prog} --help)\n")


class Command(Protocol):
    """What a module of ``ganforge.commands`` provides (see its docstring)."""

    HELP: str
    DESCRIPTION: str
    TAKES_OVERRIDES: bool

    def epilog(self) -> str: ...

    def add_arguments(self, parser: argparse.ArgumentParser) -> None: ...

    def run(self, args: argparse.Namespace) -> int: ...


# The table of commands: ``ganforge NAME`` runs COMMANDS[NAME].run(args).
COMMANDS: dict[str, Command] = {
    "train": train_cmd,
    "sample": sample_cmd,
    "inpaint": inpaint_cmd,
    "ablate": ablate_cmd,
    "eval": eval_cmd,
    "diagnose": diagnose_cmd,
    "report": report_cmd,
    "theory": theory_cmd,
}


def build_parser() -> argparse.ArgumentParser:
    raw = argparse.RawDescriptionHelpFormatter
    p = _Parser(
        prog="ganforge",
        description="Train, watch and judge Generative Adversarial Networks.",
        formatter_class=raw,
        epilog=f"presets:\n{cfglib.presets_text()}\n\nrun `ganforge COMMAND --help` for a command.",
    )
    sub = p.add_subparsers(dest="command", metavar="COMMAND", parser_class=_Parser)
    for name, command in COMMANDS.items():
        parser = sub.add_parser(
            name,
            help=command.HELP,
            formatter_class=raw,
            description=command.DESCRIPTION,
            epilog=command.epilog() or None,
        )
        command.add_arguments(parser)
    return p


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
    parser = build_parser()
    # key=value overrides may sit between options (`--steps 5 lr_d=1e-3 --out DIR`), which a
    # single positional argument of argparse cannot collect: gather the stragglers here.
    args, extra = parser.parse_known_args(argv)
    if args.command is None:
        parser.print_help()
        return 2
    command = COMMANDS[args.command]
    stray = [e for e in extra if e.startswith("-") or "=" not in e or not command.TAKES_OVERRIDES]
    if stray:
        parser.error(f"unrecognized arguments: {' '.join(stray)}")
    if command.TAKES_OVERRIDES:
        args.overrides = [*args.overrides, *extra]
    try:
        return command.run(args)
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
