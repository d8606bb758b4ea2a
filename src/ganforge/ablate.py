"""Ablation: train a grid of configs over several seeds, in parallel processes, and compare.

A grid is the product of the cells given one by one (``--cell``: a set of overrides) and of
the values of each varied key (``--vary key=v1,v2``). Every (cell, seed) is a normal run folder
``OUT/<cell>/seed-<s>``; after training, the run is measured (mode metrics for toy mixtures,
the evaluation's FID for images when ``ganforge.metrics.evaluate`` provides it, and the last
training measurements always). Runs that fail or diverge are kept in the tables with their
status. Outputs in OUT: ``ablation.csv`` (one row per run), ``ablation.md`` (mean ± std and a
95 % t interval per cell and metric) and ``ablation.png`` (bars with those intervals).
"""

from __future__ import annotations

import csv
import itertools
import math
import os
import re
import time
import traceback
from collections.abc import Callable, Iterable, Sequence
from concurrent.futures import Future, ProcessPoolExecutor, as_completed
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path

import torch
from matplotlib.figure import Figure
from scipy import stats

from ganforge import config as cfglib
from ganforge.data import from_config
from ganforge.errors import ConfigError, DivergedError, GanforgeError
from ganforge.evaluation import known_mixture
from ganforge.metrics.compare import evaluate_images
from ganforge.metrics.features import load_feature_net
from ganforge.metrics.modes import mode_metrics
from ganforge.runs import sample
from ganforge.train.loop import train

# Metrics to show first, in this order, and whether higher is better (None: neither, as for
# the training measurements); the rest follow.
KNOWN_METRICS: dict[str, bool | None] = {
    "modes": True,
    "hq_share": True,
    "kl": False,
    "fid": False,
    "kid": False,
    "precision": True,
    "recall": True,
    "loss_d": None,
    "loss_g": None,
    "d_real": None,
    "d_fake": None,
    "train_s": False,
}
TRAIN_KEYS = ("loss_d", "loss_g", "d_real", "d_fake")


@dataclass(frozen=True)
class Cell:
    """One configuration of the grid: its overrides, and a label for tables."""

    overrides: tuple[str, ...]

    @property
    def label(self) -> str:
        return " ".join(self.overrides) or "default"

    @property
    def slug(self) -> str:
        """A folder name: ``stab.ema=0.999 train.loss=hinge`` -> ``ema-0.999_loss-hinge``."""
        if not self.overrides:
            return "default"
        parts = []
        for o in self.overrides:
            key, _, value = o.partition("=")
            parts.append(f"{key.split('.')[-1]}-{value}")
        return re.sub(r"[^A-Za-z0-9._-]+", "-", "_".join(parts))[:120]


@dataclass
class Record:
    """One run of the grid and what it measured."""

    cell: Cell
    seed: int
    status: str  # "ok", "diverged", "failed" or "interrupted"
    run: Path
    seconds: float
    metrics: dict[str, float] = field(default_factory=dict)
    message: str = ""


def parse_vary(text: str) -> list[str]:
    """``"key=v1,v2"`` -> ``["key=v1", "key=v2"]``, each checked as an override of the config.

    Values of tuple-valued keys (such as ``model.d_hidden``) are separated by ``/`` instead:
    ``d_hidden=64,64/128,128``.
    """
    key, sep, raw = text.partition("=")
    if not sep or not key.strip() or not raw.strip():
        raise ConfigError(f"--vary expects key=v1,v2,..., got '{text}'")
    full = cfglib.resolve_key(key.strip())
    tp = cfglib.fields_of(cfglib.Config())[full]
    sep_char = "/" if getattr(tp, "__origin__", None) is tuple else ","
    values = [v.strip() for v in raw.split(sep_char) if v.strip()]
    if not values:
        raise ConfigError(f"--vary {key}: no values given")
    probe = cfglib.Config()
    for v in values:
        cfglib.set_value(probe, full, v)  # one line naming the key if a value is bad
    return [f"{full}={v}" for v in values]


def parse_cell(text: str) -> tuple[str, ...]:
    """``"stab.ema=0.999 model.spectral_norm=true"`` -> its overrides, checked ("" = none)."""
    items = tuple(text.split())
    probe = cfglib.Config()
    for item in items:
        key, raw = cfglib.split_override(item)
        cfglib.set_value(probe, key, raw)
    return items


def grid(cells: Sequence[tuple[str, ...]], varies: Sequence[list[str]]) -> list[Cell]:
    """The product of the cells (one default cell if none) and of every varied key's values."""
    base = list(cells) or [()]
    out = []
    for cell in base:
        for combo in itertools.product(*varies):
            out.append(Cell(tuple(cell) + tuple(combo)))
    return list(dict.fromkeys(out))  # in order, each cell once


@dataclass(frozen=True)
class Job:
    preset: str
    cell: Cell
    seed: int
    steps: int | None
    fixed: tuple[str, ...]
    out: Path
    samples: int


def job_config(job: Job) -> cfglib.Config:
    overrides = [*job.fixed, *job.cell.overrides, f"train.seed={job.seed}"]
    if job.steps is not None:
        overrides.append(f"train.steps={job.steps}")
    return cfglib.build(job.preset, overrides=overrides)


def run_job(job: Job) -> Record:
    """Train one run of the grid and measure it; any failure becomes the record's status."""
    run = job.out / job.cell.slug / f"seed-{job.seed}"
    t0 = time.perf_counter()

    def record(status: str, metrics: dict[str, float], message: str = "") -> Record:
        return Record(job.cell, job.seed, status, run, time.perf_counter() - t0, metrics, message)

    try:
        cfg = job_config(job)
        result = train(cfg, run, overwrite=True, quiet=True)
    except DivergedError as e:
        return record("diverged", {}, str(e))
    except GanforgeError as e:
        return record("failed", {}, str(e))
    except KeyboardInterrupt:
        return record("interrupted", {}, "interrupted")
    except Exception as e:  # a crash in one run must not lose the others
        last = traceback.format_exception_only(type(e), e)[-1].strip()
        return record("failed", {}, last)
    if result.interrupted:
        return record("interrupted", {}, "stopped by Ctrl-C")
    train_s = time.perf_counter() - t0
    metrics = {k: float(result.last[k]) for k in TRAIN_KEYS if k in result.last}
    try:
        metrics |= measure(cfg, run, job.samples)
    except DivergedError as e:
        return record("diverged", metrics, str(e))
    except GanforgeError as e:
        return record("failed", metrics, str(e))
    metrics["train_s"] = train_s
    return record("ok", metrics)


def measure(cfg: cfglib.Config, run: Path, n: int) -> dict[str, float]:
    """What the preset allows measuring on a finished run: mode metrics for a toy mixture,
    FID, KID, precision and recall for images; {} otherwise (points of no known mixture)."""
    x = sample(run, n, seed=0)
    if not torch.isfinite(x).all():
        raise DivergedError("the generator's samples are not finite")
    if x.ndim == 2:
        mixture = known_mixture(cfg.data.source)
        if mixture is None:
            return {}
        m = mode_metrics(x, mixture)
        # modes captured, share of high-quality samples, KL of their histogram to the weights
        return {k: float(m[k]) for k in ("modes", "hq_share", "kl")}
    return _image_metrics(cfg, run, n)


def _image_metrics(cfg: cfglib.Config, run: Path, n: int) -> dict[str, float]:
    """FID, KID, precision and recall of ``n`` samples (at most half the real set) against the
    run's real data, with the shipped MNIST feature network; {} (training measurements only)
    where that network's weights are missing."""
    try:
        net = load_feature_net()
    except GanforgeError:
        return {}
    real = from_config(cfg.data).x
    n = min(n, len(real) // 2)
    real = real[torch.randperm(len(real), generator=torch.Generator().manual_seed(0))[: 2 * n]]
    res = evaluate_images(net, real, sample(run, n, seed=0), bootstrap=20)
    return {k: float(res[k]["value"]) for k in ("fid", "kid", "precision", "recall") if k in res}


def _worker_init(threads: int) -> None:
    torch.set_num_threads(threads)


def run_grid(
    jobs: Sequence[Job],
    workers: int,
    on_done: Callable[[Record], None] | None = None,
) -> list[Record]:
    """Every job in ``workers`` processes (spawned, each with cores // workers torch threads),
    records in the order of ``jobs``. Ctrl-C cancels the runs not started and keeps the rest."""
    threads = max(1, (os.cpu_count() or 1) // workers)
    records: dict[int, Record] = {}
    if workers <= 1:
        _worker_init(threads)
        for i, job in enumerate(jobs):
            records[i] = run_job(job)
            if on_done:
                on_done(records[i])
        return [records[i] for i in sorted(records)]
    ctx = get_context("spawn")
    with ProcessPoolExecutor(workers, ctx, initializer=_worker_init, initargs=(threads,)) as pool:
        futures: dict[Future[Record], int] = {
            pool.submit(run_job, j): i for i, j in enumerate(jobs)
        }
        try:
            for fut in _as_completed(futures):
                records[futures[fut]] = fut.result()
                if on_done:
                    on_done(records[futures[fut]])
        except KeyboardInterrupt:
            pool.shutdown(wait=True, cancel_futures=True)
            for fut, i in futures.items():
                if fut.done() and not fut.cancelled() and i not in records:
                    records[i] = fut.result()
    return [records[i] for i in sorted(records)]


def _as_completed(futures: Iterable[Future[Record]]) -> Iterable[Future[Record]]:
    return as_completed(list(futures))


# --- summaries ---------------------------------------------------------------------------


@dataclass
class Summary:
    """One metric of one cell over the seeds whose runs finished."""

    n: int
    mean: float
    std: float  # sample standard deviation (n - 1)
    lo: float  # 95 % t interval of the mean
    hi: float


def summarise(values: Sequence[float]) -> Summary:
    """mean ± std and the 95 % interval mean ± t_{0.975, n-1} std / sqrt(n) (none for n < 2)."""
    n = len(values)
    if n == 0:
        nan = float("nan")
        return Summary(0, nan, nan, nan, nan)
    mean = sum(values) / n
    if n == 1:
        return Summary(1, mean, float("nan"), float("nan"), float("nan"))
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    half = float(stats.t.ppf(0.975, n - 1)) * std / math.sqrt(n)
    return Summary(n, mean, std, mean - half, mean + half)


def metric_names(records: Sequence[Record]) -> list[str]:
    found = {k for r in records for k in r.metrics}
    first = [k for k in KNOWN_METRICS if k in found]
    return first + sorted(found - set(first))


def by_cell(records: Sequence[Record]) -> dict[Cell, list[Record]]:
    out: dict[Cell, list[Record]] = {}
    for r in records:
        out.setdefault(r.cell, []).append(r)
    return out


def write_csv(records: Sequence[Record], path: Path) -> None:
    names = metric_names(records)
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["cell", "seed", "status", "seconds", *names, "run", "message"])
        for r in records:
            w.writerow(
                [
                    r.cell.label,
                    r.seed,
                    r.status,
                    f"{r.seconds:.1f}",
                    *(_fmt(r.metrics[k], 6) if k in r.metrics else "" for k in names),
                    str(r.run),
                    r.message,
                ]
            )


def _fmt(v: float, digits: int = 3) -> str:
    if math.isnan(v):
        return "-"
    return f"{v:.{digits}g}" if abs(v) >= 1e4 or (v != 0 and abs(v) < 1e-3) else f"{v:.{digits}f}"


def write_markdown(records: Sequence[Record], path: Path, title: str) -> None:
    names = metric_names(records)
    cells = by_cell(records)
    lines = [
        f"# {title}",
        "",
        "Per cell: mean ± std over the runs that finished, and the 95 % t interval of the mean "
        "in brackets. `ok/n`: runs that finished out of those started; failed or diverged runs "
        "are listed below the table and left out of the means.",
        "",
        "| cell | ok/n | " + " | ".join(names) + " |",
        "|---|---|" + "---|" * len(names),
    ]
    for cell, rs in cells.items():
        ok = [r for r in rs if r.status == "ok"]
        row = [f"`{cell.label}`", f"{len(ok)}/{len(rs)}"]
        for k in names:
            s = summarise([r.metrics[k] for r in ok if k in r.metrics])
            if s.n == 0:
                row.append("-")
            elif s.n == 1:
                row.append(_fmt(s.mean))
            else:
                row.append(f"{_fmt(s.mean)} ± {_fmt(s.std)} [{_fmt(s.lo)}, {_fmt(s.hi)}]")
        lines.append("| " + " | ".join(row) + " |")
    bad = [r for r in records if r.status != "ok"]
    if bad:
        lines += ["", "Runs that did not finish:", ""]
        lines += [f"- `{r.cell.label}` seed {r.seed}: {r.status}: {r.message}" for r in bad]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")


def write_chart(records: Sequence[Record], path: Path, title: str) -> None:
    """One panel per metric: a bar per cell at the mean, the 95 % interval as an error bar,
    each seed as a dot; a cell's label says how many of its runs finished."""
    names = [k for k in metric_names(records) if k not in ("train_s",)] or ["train_s"]
    names = names[:6]
    cells = by_cell(records)
    labels = []
    for cell, rs in cells.items():
        ok = sum(r.status == "ok" for r in rs)
        labels.append(f"{cell.label}\n({ok}/{len(rs)} ok)" if ok < len(rs) else cell.label)
    cols = min(3, len(names))
    rows = math.ceil(len(names) / cols)
    width = max(4.0, 0.6 * len(cells) + 1.5)
    fig = Figure(figsize=(width * cols, 4.2 * rows))  # no pyplot: no global state
    axes = fig.subplots(rows, cols, squeeze=False)
    for ax, k in zip(axes.flat, names, strict=False):
        for i, (_cell, rs) in enumerate(cells.items()):
            vals = [r.metrics[k] for r in rs if r.status == "ok" and k in r.metrics]
            s = summarise(vals)
            if s.n == 0:
                ax.text(i, 0, "no run", ha="center", va="bottom", fontsize=7, color="red")
                continue
            err = None if s.n < 2 else [[s.mean - s.lo], [s.hi - s.mean]]
            ax.bar(i, s.mean, color="C0", alpha=0.6, yerr=err, capsize=3)
            ax.plot([i] * len(vals), vals, "k.", markersize=4)
        better = KNOWN_METRICS.get(k)
        ax.set_title(
            k
            + ("" if better is None else " (higher is better)" if better else " (lower is better)")
        )
        ax.set_xticks(range(len(labels)))
        ax.set_xticklabels(labels, rotation=35, ha="right", fontsize=7)
    for ax in list(axes.flat)[len(names) :]:
        ax.set_visible(False)
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def write_outputs(records: Sequence[Record], out: Path, title: str) -> None:
    write_csv(records, out / "ablation.csv")
    write_markdown(records, out / "ablation.md", title)
    write_chart(records, out / "ablation.png", title)
