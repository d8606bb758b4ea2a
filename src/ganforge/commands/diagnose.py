"""``ganforge diagnose``: run the diagnostic rules over a finished (or running) run's metrics."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge import config as cfglib
from ganforge.diagnose import RULES, run_episodes
from ganforge.errors import ConfigError
from ganforge.runs import RunFolder

DESCRIPTION = (
    "Read RUN/metrics.jsonl and report, once per episode, each symptom the rules see: D too "
    "strong, G too strong / D fooled, mode collapse, oscillation, divergence; with advice. "
    "The thresholds are the run's diagnose.* keys; key=value overrides change them here."
)
# diagnose.* overrides (e.g. diagnose.window=10) re-read the run with other thresholds
TAKES_OVERRIDES = True


def epilog() -> str:

    rules = "\n".join(
        f"  {name:<14} {rule.title}; thresholds: {', '.join(rule.keys) or 'none'}"
        for name, rule in RULES.items()
    )
    return (
        f"rules:\n{rules}\n\n"
        "exit code: 0 when no rule fired, 3 when at least one did.\n\n"
        "examples:\n"
        "  ganforge diagnose runs/mnist-mlp-20260101-120000\n"
        "  ganforge diagnose runs/dc diagnose.window=10 diagnose.d_strong_loss=0.05"
    )


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("run", type=Path, metavar="RUN", help="a run folder")
    s.add_argument(
        "overrides", nargs="*", metavar="key=value", help="diagnose.* thresholds to use instead"
    )


def run(args: argparse.Namespace) -> int:

    folder = RunFolder(args.run)
    cfg = folder.read_config()
    for text in args.overrides:
        key, raw = cfglib.split_override(text)
        full = cfglib.resolve_key(key, cfg)
        if not full.startswith("diagnose."):
            raise ConfigError(f"{full}: only diagnose.* keys can change when diagnosing a run")
        cfglib.set_value(cfg, full, raw)
    rows = list(folder.metrics())
    found = [e.finding for e in run_episodes(args.run, rows, cfg.diagnose)]
    if not rows and not found:
        print(f"{args.run}: no measurements yet (metrics.jsonl is empty or missing)")
        return 0
    last = rows[-1]["step"] if rows else 0
    if not found:
        print(f"{args.run}: no warnings over {len(rows)} log lines (to step {last})")
        return 0
    print(f"{args.run}: {len(found)} warning(s) over {len(rows)} log lines (to step {last})")
    for f in found:
        print(f"- step {f.step}: {f.title}: {f.seen}.\n  Try: {f.advice}.")
    return 3
