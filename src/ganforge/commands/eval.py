"""``ganforge eval``: measure a run's generator against real data, with intervals and floors."""

from __future__ import annotations

import argparse
import math
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from ganforge import runs
from ganforge.apps.evaluate import evaluate_app
from ganforge.config import CHOICES
from ganforge.errors import GanforgeError
from ganforge.evaluation import evaluate_run
from ganforge.metrics.compare import METRICS
from ganforge.runs import RunFolder

DESCRIPTION = (
    "Evaluate the generator of a run folder against real data, offline: FID and KID on the "
    "features of a feature network (the MNIST classifier shipped with ganforge by default), "
    "precision/recall (k=3), density/coverage (k=5), the classifier score, the class "
    "histogram's KL and the classes covered (Stacked MNIST: modes of 1000). Each figure comes "
    "with its bootstrap 95 % interval, the score of real data at the same sample size (two "
    "disjoint real sets: the floor) and n. A conditional run (model.cond) also gets a table "
    "per class: the classifier's accuracy on samples asked for that label, intra-class "
    "recall and precision (k=3), intra-class FID and its real floor (n/K samples per class). "
    "Prints the tables and writes RUN/eval.json."
)
TAKES_OVERRIDES = False


def epilog() -> str:
    return (
        "examples:\n"
        "  ganforge eval runs/mnist-mlp-20260101-120000\n"
        "  ganforge eval runs/dc --n 5000 --real path/to/mnist-test/   # IDX files, 10k images\n"
        "  ganforge eval runs/dc --best                 # the checkpoint kept by train.eval_every\n"
        "  ganforge eval runs/faces --features inception.pt   # any TorchScript feature network\n"
        "\nSee docs/evaluation.md for the protocol and eval.json's fields."
    )


def add_arguments(e: argparse.ArgumentParser) -> None:
    e.add_argument("run", type=Path, metavar="RUN", help="a run folder")
    e.add_argument(
        "--n",
        type=int,
        metavar="N",
        help="samples to evaluate (default: 5000, at most half the real set)",
    )
    e.add_argument(
        "--real",
        metavar="PATH",
        help="real data, as --data takes it (default: the run's training data)",
    )
    e.add_argument(
        "--features",
        type=Path,
        metavar="FILE",
        help="feature network: TorchScript (torch.jit.save) or torch.export .pt2 file mapping "
        "images [N, C, H, W] in [-1, 1] to features [N, D] or (features, logits); runs the "
        "file's code, so use files you trust (default: the shipped MNIST classifier)",
    )
    e.add_argument("--json", type=Path, metavar="FILE", help="also write the results here")
    e.add_argument(
        "--bootstrap", type=int, default=100, metavar="B", help="bootstrap resamples (100)"
    )
    e.add_argument("--seed", type=int, default=0, metavar="S", help="seed of samples and resamples")
    e.add_argument(
        "--filter",
        choices=CHOICES["train.sample_filter"],
        help="judge the samples this filter keeps, as `ganforge sample --filter` writes them "
        "(default: the run's train.sample_filter)",
    )
    e.add_argument(
        "--baseline",
        type=Path,
        metavar="RUN",
        help="image-to-image runs: the plain L1 model (a run of the same preset with "
        "app.adv=0), measured beside the run",
    )
    e.add_argument(
        "--best",
        action="store_true",
        help="evaluate checkpoints/best.safetensors (kept by train.eval_every), not the newest",
    )


def _num(v: float | None) -> str:
    if v is None:
        return "-"
    if not math.isfinite(v):
        return str(v)  # inf: a KL with a class the reference lacks
    if v == int(v) and abs(v) >= 1:
        return f"{v:.0f}"
    return f"{v:.4g}" if abs(v) < 1e4 else f"{v:.3e}"


def _filtered(result: dict[str, Any]) -> str:
    name = result.get("filter", "none")
    return "" if name == "none" else f" (kept by {name})"


def print_table(result: dict[str, Any]) -> None:

    table = Table(
        title=f"{result['run']} ({result['checkpoint']}, step {result['step']})",
        caption=f"n = {result['n']} samples{_filtered(result)} against n real "
        f"({result['real']}); floor: a second, disjoint real set of n; 95 % interval from "
        f"{result['bootstrap']} bootstrap resamples; "
        f"features: {result['feature_net']}",
    )
    for col in ("metric", "value", "95 % interval", "real floor", "n", "better"):
        table.add_column(col, justify="left" if col == "metric" else "right")
    for name, m in result["metrics"].items():
        info = METRICS[name]
        interval = "-" if m["ci_low"] is None else f"[{_num(m['ci_low'])}, {_num(m['ci_high'])}]"
        table.add_row(
            name,
            _num(m["value"]),
            interval,
            _num(m["floor"]),
            str(m["n"]),
            "higher" if info.higher_is_better else "lower",
        )
    Console(width=max(100, Console().width)).print(table)
    if "per_class" in result:
        print_class_table(result["per_class"])


def print_class_table(per_class: dict[str, Any]) -> None:
    """The per-class figures of a conditional run (``per_class.evaluate_classes``)."""

    table = Table(
        title="per class: samples asked for each label",
        caption=f"{per_class['n_per_class']} samples and up to as many real images per class; "
        "accuracy: share the classifier gives the requested label; recall, precision: within "
        "the class (k=3); FID floor: two halves of the class's real images",
    )
    cols = ("label", "accuracy", "recall", "precision", "FID", "FID floor")
    for col in cols:
        table.add_column(col, justify="right")
    for r in per_class["classes"]:
        table.add_row(
            str(r["label"]),
            *(_num(r[k]) for k in ("accuracy", "recall", "precision", "fid", "fid_floor")),
        )
    table.add_row(
        "all", _num(per_class["accuracy"]), f"min {_num(per_class['min_recall'])}", "", "", ""
    )
    Console(width=max(100, Console().width)).print(table)


def write_json(result: dict[str, Any], path: Path) -> None:
    try:
        runs.write_json(result, path)
    except OSError as e:
        raise GanforgeError(f"cannot write {path}: {e.strerror}") from None


def print_app_table(result: dict[str, Any]) -> None:
    """The figures of an image-to-image run: a row per direction and method."""
    table = Table(
        title=f"{result['run']} ({result['task']}, step {result['step']})",
        caption=f"test data: {result['test']}; n = {result['n']}; figure: "
        f"{result['figure']} (columns: {', '.join(result['columns'])})",
    )
    rows = [
        (d, m, figs) for d, methods in result["directions"].items() for m, figs in methods.items()
    ]
    keys = list(rows[0][2])
    for col in ("direction", "method", *keys):
        table.add_column(col, justify="left" if col in ("direction", "method") else "right")
    for d, m, figs in rows:
        table.add_row(d, m, *(_num(figs[k]) for k in keys))
    Console(width=max(100, Console().width)).print(table)


def _run_app(args: argparse.Namespace) -> int:
    if args.best or args.features is not None:
        raise GanforgeError(
            "--best and --features are for GANs from noise, not image-to-image runs"
        )
    result = evaluate_app(args.run, baseline=args.baseline, real=args.real, n=args.n)
    print_app_table(result)
    if args.json is not None:
        write_json(result, args.json)
    print(f"wrote {RunFolder(args.run).eval_file}" + (f" and {args.json}" if args.json else ""))
    return 0


def run(args: argparse.Namespace) -> int:
    if RunFolder(args.run).read_config().app.task != "none":
        return _run_app(args)
    if args.baseline is not None:
        raise GanforgeError("--baseline is for image-to-image runs (presets mnist-sr, ...)")
    console = Console(stderr=True)
    kwargs: dict[str, Any] = {
        "n": args.n,
        "real": args.real,
        "features": args.features,
        "bootstrap": args.bootstrap,
        "seed": args.seed,
        "best": args.best,
        "sample_filter": args.filter,
    }
    if console.is_terminal:
        with console.status("evaluating") as status:
            result = evaluate_run(args.run, on_stage=status.update, **kwargs)
    else:
        result = evaluate_run(args.run, **kwargs)
    print_table(result)
    written = RunFolder(args.run).eval_file
    write_json(result, written)
    if args.json is not None:
        write_json(result, args.json)
    print(f"wrote {written}" + (f" and {args.json}" if args.json else ""))
    return 0
