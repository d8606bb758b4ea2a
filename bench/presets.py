"""Every preset earns its place: what each preset reaches, in its wall time, per seed.

Run (from the repository root):

    python bench/presets.py --pack --write-docs docs/presets.md --json docs/presets.json  # the page
    python bench/presets.py --presets mnist-mlp,ring8 --seeds 0       # a part of it
    python bench/presets.py --check docs/presets.json                 # exit 1 on a regression
    python bench/presets.py --presets ring8 model.pack=1              # a change, every run
    python bench/presets.py --presets mnist-mlp,ring8 --seeds 0 --steps 30 --n 200  # smoke test

What it does. Every preset of ``ganforge.config.PRESETS`` (or those of ``--presets``) is
trained once per seed (``--seeds``, default 0,1,2; the toys: ``--toy-seeds``, default 0) by
``ganforge train --preset NAME --out RUN --quiet train.seed=S`` in a subprocess, with any
``key=value`` overrides given after the options, timed as a whole: wall time, and the child's
CPU time (user + system, from ``os.wait4``). Then ``ganforge eval RUN --bootstrap 1 --json``
measures it (a separate subprocess, timed apart), and the figures are read from the JSON:

- images (GANs from noise on MNIST data): FID and its real floor, precision, recall, the
  classes covered and the class histogram's KL, against ``--n`` (5,000) samples and as many
  images of ``--real`` (default: the 10,000 MNIST test images in ../shared/data/mnist when
  present, else the run's training data); Stacked MNIST also its modes and their KL;
  conditional runs also the per-class table: label accuracy (mean and lowest class), the
  lowest class's recall, per-class FID (mean and highest);
- toys (points): the mode figures of ``ganforge eval`` on what ``ganforge sample`` writes
  (the run's ``train.sample_filter``): modes captured, high-quality share and KL to the
  mixture weights (VEEGAN, Srivastava et al. 2017; PacGAN, Lin et al. 2018); a 1-D mixture
  also the JSD between the data's density and a KDE of 20,000 samples (ganforge.theory);
- applications (``app.task``): the GAN's PSNR beside its baseline's (sr: bicubic; thicken:
  the identity; colorize: grey), SSIM, and for digits the classifier's accuracy on the
  outputs, FID and its floor (thicken also the ink ratio and B -> A's PSNR; colorize the
  colourfulness ratio), on the MNIST test set when present, else the tasks' fallbacks.

A preset whose data the bench cannot score (no feature network for it) is trained and timed,
and its row says so. Per preset, each figure is given as the mean ± sd over seeds.

``--check FILE`` compares the means with those of a JSON this bench wrote before (the
documented values): a figure more than 20 % worse in its own direction (FID, KL, CPU time:
higher is worse; precision, recall, accuracy, modes, PSNR: lower is worse) is a regression,
listed, and the exit status is 1. Wall time is shown against the preset's stated budget but
not checked: it follows the machine's load, where CPU time does not. ``--from-json FILE``
trains nothing and takes the figures of a former ``--json`` (to check them, or to write the
page again). ``--steps N`` sets train.steps for smoke tests only: the page then says that
its figures are not representative. ``--jobs J`` trains J runs at once, each with
``train.threads`` = ``--threads`` (0: the preset's own with one job, else 1); ``--pack`` in
its place keeps every preset's own threads and starts a run whenever the cores it takes are
free (on 2 cores: one-thread presets side by side, the others alone), in the order asked.
A failed run gets its row with the reason, and the exit status is 1.

A preset whose resolved config is an earlier one's (``mnist-best`` is ``mnist-dcgan``,
``points2d`` is ``ring8``) is not trained again: its row takes that preset's runs and says
so. ``--json`` is written after every run (``made.partial`` says how many), so a bench that
is stopped keeps what it finished. The report names what the runs were trained from: the
commit and git's tree of src/ (``git rev-parse HEAD:src``), and the page says whether every
row comes from one tree.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import re
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from dataclasses import asdict, dataclass, field
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ganforge import config, theory
from ganforge.data import from_config, load_dataset, mixture_of
from ganforge.data.sources import MNIST5K
from ganforge.data.stacked import STACKED_MNIST
from ganforge.data.toy import Mixture, is_toy_spec
from ganforge.errors import GanforgeError
from ganforge.metrics.compare import METRICS
from ganforge.report.theory import grid_1d, mode_grids
from ganforge.runs import sample
from quality_mnist import MNIST_TEST, ROOT

MNIST_DATA = (MNIST5K, "mnist")  # digits that the MNIST test set can stand in for
SCORED_IMAGES = (*MNIST_DATA, STACKED_MNIST)  # what the shipped MNIST network can judge
APP_BASELINE = {"sr": "bicubic", "thicken": "identity", "colorize": "grey"}
JSD_SAMPLES = 20_000
TOLERANCE = 0.2  # a figure more than 20 % worse than documented is a regression
SHOWN = (
    "fid",
    "precision",
    "recall",
    "label_acc",
    "modes_captured",
    "high_quality",
    "mixture_kl",
    "jsd",
    "psnr",
    "accuracy",
)  # in each run's line of progress
GROUPS = {
    "image": "Images (GANs from noise)",
    "toy": "Toys (points)",
    "app": "Applications (image to image)",
    "other": "Not scored",
}


@dataclass(frozen=True)
class Figure:
    header: str
    higher: bool | None  # higher is better; None: context only, never a regression
    fmt: str = ".3g"


def _metric(header: str, name: str, fmt: str = ".3g") -> Figure:
    return Figure(header, METRICS[name].higher_is_better, fmt)


# Every figure the bench reports: its column header, direction and format.
FIGURES: dict[str, Figure] = {
    # wall time follows the machine's load (two runs of one command on 2 busy cores: 35 and
    # 39 % apart, their CPU time 3 and 14 %): shown beside the budget, checked as CPU time
    "wall_s": Figure("wall s", None, ".0f"),
    "cpu_s": Figure("CPU s", False, ".0f"),
    "eval_s": Figure("eval s", None, ".0f"),
    "fid": _metric("FID", "fid", ".1f"),
    "fid_floor": Figure("FID floor", None, ".1f"),
    "fid_ratio": Figure("FID / floor", False),
    "precision": _metric("precision", "precision"),
    "recall": _metric("recall", "recall"),
    "classes_covered": _metric("classes", "classes_covered", ".1f"),
    "class_kl": _metric("class KL", "class_kl"),
    "modes": _metric("modes (of 1000)", "modes", ".0f"),
    "mode_kl": _metric("mode KL", "mode_kl"),
    "label_acc": Figure("label acc", True),
    "label_acc_min": Figure("label acc min", True),
    "class_recall_min": Figure("class recall min", True),
    "class_fid_mean": Figure("class FID mean", False, ".1f"),
    "class_fid_max": Figure("class FID max", False, ".1f"),
    "modes_captured": _metric("modes", "modes_captured", ".1f"),
    "n_modes": Figure("modes in data", None, ".0f"),
    "high_quality": _metric("high quality", "high_quality"),
    "mixture_kl": _metric("KL", "mixture_kl"),
    "jsd": Figure("JSD", False),
    "psnr": Figure("PSNR dB", True, ".2f"),
    "psnr_base": Figure("baseline PSNR dB", None, ".2f"),
    "psnr_ba": Figure("B -> A PSNR dB", True, ".2f"),
    "ssim": Figure("SSIM", True),
    "accuracy": Figure("accuracy", True),
    "ink_ratio": Figure("ink ratio", None),
    "colourfulness_ratio": Figure("colourfulness ratio", True),
}
# The columns of each group's table (those no run of the group has are left out).
COLUMNS = {
    "image": (
        "fid", "fid_ratio", "precision", "recall", "classes_covered", "class_kl", "modes",
        "mode_kl", "label_acc", "label_acc_min", "class_recall_min", "class_fid_mean",
        "class_fid_max",
    ),
    "toy": ("modes_captured", "n_modes", "high_quality", "mixture_kl", "jsd"),
    "app": (
        "psnr", "psnr_base", "ssim", "accuracy", "fid", "fid_floor", "ink_ratio", "psnr_ba",
        "colourfulness_ratio",
    ),
    "other": (),
}  # fmt: skip


@dataclass(frozen=True)
class Job:
    preset: str
    group: str
    seed: int
    overrides: tuple[str, ...]  # key=value for ganforge train, after --preset
    real: str | None  # --real of ganforge eval; None: the run's own data (or the task's)
    n: int | None  # --n of ganforge eval; None: its default
    data: str  # data.source of the run
    mixture_1d: Mixture | None = None  # a 1-D toy's mixture, for the JSD
    threads: int = 0  # train.threads of the run; 0: every core (what --pack reserves)


@dataclass
class Result:
    preset: str
    seed: int
    step: int | None = None
    figures: dict[str, float] = field(default_factory=dict)  # only those measured
    error: str | None = None  # the run failed: why
    note: str | None = None  # the run worked, but the bench cannot score it: why


# --- running the children


def ganforge(args: list[str], log: Path, threads: int) -> tuple[float, float, int]:
    """``python -m ganforge ARGS`` with its output in ``log``: (wall s, CPU s, exit code).

    The CPU time is the child's own (``os.wait4``), so runs at once do not count each other's.
    """
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    if threads:
        env["OMP_NUM_THREADS"] = str(threads)
    start = time.perf_counter()
    with log.open("w", encoding="utf-8") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "ganforge", *args], stdout=out, stderr=subprocess.STDOUT, env=env
        )
        _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)  # reaped here, not by Popen
    return time.perf_counter() - start, usage.ru_utime + usage.ru_stime, proc.returncode


def _failure(what: str, code: int, log: Path) -> str:
    lines = [s for s in log.read_text(encoding="utf-8", errors="replace").splitlines() if s]
    return f"{what} failed (exit {code}): {lines[-1] if lines else 'no output'} (see {log})"


def run_job(job: Job, base: Path) -> Result:
    """Train and evaluate one preset and seed in ``base/PRESET/sSEED``."""
    threads = job.threads
    folder = base / job.preset
    folder.mkdir(parents=True, exist_ok=True)
    run, result = folder / f"s{job.seed}", Result(job.preset, job.seed)
    train_args = ["train", "--preset", job.preset, "--out", str(run), "--quiet", *job.overrides]
    wall, cpu, code = ganforge(train_args, folder / f"s{job.seed}-train.log", threads)
    if code != 0:
        what = f"ganforge train, after {wall:.0f} s,"
        result.error = _failure(what, code, folder / f"s{job.seed}-train.log")
        return result
    result.figures |= {"wall_s": wall, "cpu_s": cpu}
    log = (folder / f"s{job.seed}-train.log").read_text(encoding="utf-8", errors="replace")
    if "scikit-image is not installed" in log:  # colorize and photo-sr: one photograph
        result.note = "trained without scikit-image's photographs: not the preset's data"
    if job.group == "other":
        result.note = f"not scored: no feature network for data {job.data!r}"
        return result
    eval_json = folder / f"s{job.seed}-eval.json"
    eval_args = ["eval", str(run), "--bootstrap", "1", "--json", str(eval_json)]
    eval_args += [] if job.n is None else ["--n", str(job.n)]
    eval_args += [] if job.real is None else ["--real", job.real]
    eval_s, _, code = ganforge(eval_args, folder / f"s{job.seed}-eval.log", threads)
    if code != 0:
        result.error = _failure("ganforge eval", code, folder / f"s{job.seed}-eval.log")
        return result
    ev = json.loads(eval_json.read_text(encoding="utf-8"))
    result.step = ev.get("step")
    result.figures["eval_s"] = eval_s
    read = {"image": image_figures, "toy": toy_figures, "app": app_figures}[job.group]
    result.figures |= read(ev)
    if job.mixture_1d is not None:
        result.figures["jsd"] = jsd_1d(run, job.mixture_1d)
    if job.group == "toy" and "modes_captured" not in result.figures:
        result.note = "not scored: no known mixture behind its data (no mode figures)"
    return result


# --- the figures of an eval.json


def image_figures(ev: dict[str, Any]) -> dict[str, float]:
    """A GAN from noise: eval.json's headline metrics, FID over its floor, per-class figures."""
    m = ev["metrics"]
    out = {k: float(m[k]["value"]) for k in COLUMNS["image"] if k in m}
    out["fid_floor"] = float(m["fid"]["floor"])
    if out["fid_floor"] > 0:
        out["fid_ratio"] = out["fid"] / out["fid_floor"]
    if (pc := ev.get("per_class")) is not None:
        rows = pc["classes"]
        if pc["accuracy"] is not None:
            out["label_acc"] = float(pc["accuracy"])
            out["label_acc_min"] = min(float(r["accuracy"]) for r in rows)
        out["class_recall_min"] = float(pc["min_recall"])
        fids = [float(r["fid"]) for r in rows]
        out["class_fid_mean"], out["class_fid_max"] = statistics.fmean(fids), max(fids)
    return out


def toy_figures(ev: dict[str, Any]) -> dict[str, float]:
    """Points: the mixture figures (the floor of modes_captured, R_b's, is the modes there are)."""
    m = ev["metrics"]
    out = {
        k: float(m[k]["value"]) for k in ("modes_captured", "high_quality", "mixture_kl") if k in m
    }
    if "modes_captured" in m:
        out["n_modes"] = float(m["modes_captured"]["floor"])
    return out


def app_figures(ev: dict[str, Any]) -> dict[str, float]:
    """Image to image: A -> B's figures of the GAN, its baseline's PSNR, the real FID floor."""
    ab = ev["directions"]["AB"]
    gan, base = ab["gan"], ab[APP_BASELINE[ev["task"]]]
    out = {"psnr": gan["psnr"], "psnr_base": base["psnr"], "ssim": gan["ssim"]}
    for k in ("accuracy", "fid", "ink_ratio", "colourfulness_ratio"):
        if k in gan:
            out[k] = gan[k]
    if "fid" in ab.get("truth", {}):
        out["fid_floor"] = ab["truth"]["fid"]
    if "BA" in ev["directions"]:
        out["psnr_ba"] = ev["directions"]["BA"]["gan"]["psnr"]
    return {k: float(v) for k, v in out.items()}


def jsd_1d(run: Path, mixture: Mixture, n: int = JSD_SAMPLES) -> float:
    """JSD(p_data || p_g) of a 1-D run's G, p_g a KDE of ``n`` samples (seed 0), on the grid
    of ``ganforge theory`` widened to the samples (each density normalised on it)."""
    s = sample(run, n, seed=0).numpy()[:, 0].astype(np.float64)
    h = theory.silverman_bandwidth(s)
    fine = mode_grids(mixture)  # around each narrow mode; None only without a mixture
    assert fine is not None
    x = np.union1d(grid_1d(mixture, None), fine)
    x = np.union1d(x, theory.grid_for((float(s.min()) - 6 * h, float(s.max()) + 6 * h)))
    p, q = mixture.pdf(x), theory.kde_1d(s, x, h)
    return theory.jsd(p / theory.integrate(p, x), q / theory.integrate(q, x), x)


# --- planning


def group_of(cfg: config.Config) -> str:
    if cfg.app.task != "none":
        return "app"
    if is_toy_spec(cfg.data.source):
        return "toy"
    return "image" if cfg.data.source in SCORED_IMAGES else "other"


@cache
def real_size(spec: str | None, preset: str, overrides: tuple[str, ...]) -> int:
    """Samples in the real set that ``ganforge eval`` would use (``spec``, or the run's data)."""
    if spec is not None:
        return len(load_dataset(spec))
    return len(from_config(config.build(preset, overrides=overrides).data))


def budget_s(about: str) -> float | None:
    """The wall time a preset's description states ("~3.5 min"), in seconds."""
    m = re.search(r"~\s*(\d+(?:\.\d+)?)\s*min", about)
    return 60 * float(m.group(1)) if m else None


def mnist_real(args: argparse.Namespace) -> str | None:
    """The real set of the MNIST presets: --real, else the MNIST test set when present."""
    return args.real or (str(MNIST_TEST) if MNIST_TEST.is_dir() else None)


def threads_of(args: argparse.Namespace) -> int:
    """train.threads of every run; 0 leaves the preset's."""
    return args.threads or (1 if args.jobs > 1 else 0)  # no oversubscribed cores


def recipe_key(cfg: config.Config) -> str:
    """The resolved config without its preset's name: two presets with one key train alike."""
    d = cfg.to_dict()
    d.pop("preset")
    return json.dumps(d, sort_keys=True, default=str)


def plan(args: argparse.Namespace, extra: list[str]) -> tuple[list[Job], dict[str, str]]:
    """The runs: every preset asked for, per seed, with the real set and n of its eval; and
    the presets not trained because an earlier one asked for has the same recipe (name ->
    that preset's), whose runs they share."""
    digits, threads = mnist_real(args), threads_of(args)
    base = (*extra, *([f"train.steps={args.steps}"] if args.steps else []))
    jobs: list[Job] = []
    trained: dict[str, str] = {}  # recipe_key -> the first preset with it
    same: dict[str, str] = {}
    for name in args.presets:
        cfg = config.build(name, overrides=base)
        if (first := trained.setdefault(recipe_key(cfg), name)) != name:
            same[name] = first
            continue
        group = group_of(cfg)
        overrides = (*base, *([f"train.threads={threads}"] if threads else []))
        real: str | None = None
        n: int | None = args.n
        mixture = None
        if group == "image":
            real = digits if cfg.data.source in MNIST_DATA else None
            n = min(args.n, real_size(real, name, base) // 2)
        elif group == "app":  # ganforge eval halves its digits: n a side
            on_digits = cfg.app.task == "thicken" or cfg.data.source == "mnist5k"
            real = digits if on_digits else None  # else: the test photographs
            n = 2 * args.n if on_digits else None
        elif group == "toy" and (m := mixture_of(cfg.data.source)) is not None and m.dim == 1:
            mixture = m
        own = threads or cfg.train.threads
        for seed in args.toy_seeds if group == "toy" else args.seeds:
            seeded = (*overrides, f"train.seed={seed}")
            jobs.append(
                Job(name, group, seed, seeded, real, n, cfg.data.source, mixture, threads=own)
            )
    return jobs, same


# --- aggregation and tables


def summarise(results: list[Result]) -> dict[str, dict[str, float | int | None]]:
    """Per figure, mean and sd over the runs that have it (sd None for one run or inf)."""
    names = dict.fromkeys(k for r in results for k in r.figures)
    out: dict[str, dict[str, float | int | None]] = {}
    for k in names:
        values = [r.figures[k] for r in results if k in r.figures]
        mean = statistics.fmean(values)
        sd = statistics.stdev(values) if len(values) > 1 else None
        out[k] = {
            "mean": mean,
            "sd": sd if sd is None or math.isfinite(sd) else None,
            "n": len(values),
        }
    return out


def _num(v: float | None, fmt: str) -> str:
    if v is None:
        return "-"
    return f"{v:{fmt}}" if math.isfinite(v) else str(v)


def cell(s: dict[str, Any] | None, fmt: str) -> str:
    if s is None:
        return "-"
    return _num(s["mean"], fmt) + ("" if s["sd"] is None else f" ± {_num(s['sd'], fmt)}")


def note_of(entry: dict[str, Any]) -> str:
    runs = entry["runs"]
    notes = list(dict.fromkeys(r["note"] for r in runs if r["note"]))
    if entry.get("same_as"):
        notes.insert(0, f"the recipe of `{entry['same_as']}`: its runs")
    if failed := [r["error"] for r in runs if r["error"]]:
        notes.insert(0, f"{len(failed)} of {len(runs)} failed: {failed[0]}")
    wall = entry["summary"].get("wall_s")
    if entry["budget_s"] and wall and wall["mean"] > entry["budget_s"]:
        notes.append(f"over its stated {entry['budget_s'] / 60:g} min")
    return "; ".join(notes)


def group_table(group: str, presets: dict[str, dict[str, Any]]) -> str:
    rows = {k: v for k, v in presets.items() if v["group"] == group}
    cols = [c for c in COLUMNS[group] if any(c in v["summary"] for v in rows.values())]
    head = ["preset", "seeds", "wall s", "budget s", "CPU s", *(FIGURES[c].header for c in cols)]
    lines = [
        "| " + " | ".join([*head, "note"]) + " |",
        "|---" + "|---:" * (len(head) - 1) + "|---|",
    ]
    for name, v in rows.items():
        s = v["summary"]
        budget = "-" if v["budget_s"] is None else f"{v['budget_s']:.0f}"
        cells = [
            f"`{name}`",
            str(len(v["runs"])),
            cell(s.get("wall_s"), ".0f"),
            budget,
            cell(s.get("cpu_s"), ".0f"),
            *(cell(s.get(c), FIGURES[c].fmt) for c in cols),
        ]
        lines.append("| " + " | ".join([*cells, note_of(v)]) + " |")
    return "\n".join(lines)


def tables(presets: dict[str, dict[str, Any]]) -> str:
    parts = []
    for group, title in GROUPS.items():
        if any(v["group"] == group for v in presets.values()):
            parts.append(f"### {title}\n\n{group_table(group, presets)}")
    return "\n\n".join(parts)


def seed_table(presets: dict[str, dict[str, Any]]) -> str:
    lines = [
        "| preset | seed | step | wall s | CPU s | eval s | figures |",
        "|---|---:|---:|---:|---:|---:|---|",
    ]
    for name, v in presets.items():
        for r in v["runs"]:
            f = r["figures"]
            figs = ", ".join(
                f"{FIGURES[k].header} {_num(x, FIGURES[k].fmt)}"
                for k, x in f.items()
                if k not in ("wall_s", "cpu_s", "eval_s")
            )
            lines.append(
                f"| `{name}` | {r['seed']} | {r['step'] if r['step'] is not None else '-'} | "
                f"{_num(f.get('wall_s'), '.0f')} | {_num(f.get('cpu_s'), '.0f')} | "
                f"{_num(f.get('eval_s'), '.0f')} | {r['error'] or r['note'] or figs} |"
            )
    return "\n".join(lines)


# --- the documented values


def regressions(now: dict[str, Any], documented: dict[str, Any]) -> list[str]:
    """Each headline figure whose mean is more than TOLERANCE worse than the documented one
    (in the figure's own direction), and each documented preset that now has no figures."""
    found = []
    for name, doc in documented["presets"].items():
        if name not in now["presets"]:
            continue
        mine = now["presets"][name]["summary"]
        for k, d in doc["summary"].items():
            better = FIGURES[k].higher if k in FIGURES else None
            if better is None or d["mean"] is None:
                continue
            if k not in mine:
                found.append(f"{name}: {FIGURES[k].header} missing (documented {d['mean']:.4g})")
                continue
            old, new = float(d["mean"]), float(mine[k]["mean"])
            if math.isnan(old) or math.isnan(new) or old == new:
                continue
            loss = (old - new if better else new - old) / abs(old) if old else math.inf
            if loss > TOLERANCE:
                found.append(
                    f"{name}: {FIGURES[k].header} {new:.4g} against documented {old:.4g} "
                    f"({100 * loss:.0f} % worse; {'higher' if better else 'lower'} is better)"
                )
    return found


def check(now: dict[str, Any], path: Path) -> list[str]:
    documented = json.loads(path.read_text(encoding="utf-8"))
    if documented["made"].get("steps") != now["made"].get("steps"):
        print(
            f"warning: {path} was made with train.steps override "
            f"{documented['made'].get('steps')}, this run with {now['made'].get('steps')}: "
            "the figures are not comparable",
            file=sys.stderr,
        )
    found = regressions(now, documented)
    compared = [n for n in now["presets"] if n in documented["presets"]]
    print(f"\nAgainst {path} ({len(compared)} presets compared, tolerance {TOLERANCE:.0%}):")
    print("\n".join(f"  REGRESSION {line}" for line in found) or "  no regression")
    return found


# --- the page


def page(report: dict[str, Any], found: list[str] | None) -> str:
    made = report["made"]
    head = [
        "# What each preset reaches",
        "",
        (
            f"Made by {made['parts']} runs of the bench, merged by `--from-json`: "
            + ", ".join(f"`{c}`" for c in made["command"].split(" ; "))
            + f", from {made['date']}"
            if made.get("parts")
            else f"Made by `{made['command']}` on {made['date']}"
        )
        + f": {made['cpus']} CPU cores "
        f"({made['machine']}), torch {made['torch']}, Python {made['python']}, "
        + (
            "the runs sharing the cores by each preset's own train.threads (one-thread "
            "presets two at once, the others alone)"
            if made.get("pack")
            else f"{made['jobs']} run(s) at once"
        )
        + f"; load average {made['load_start']:.2f} at the start, "
        f"{made['load_end']:.2f} at the end. Each run: `ganforge train --preset NAME "
        "train.seed=S` (wall and CPU time of the whole training), then `ganforge eval RUN "
        f"--n N --bootstrap 1` with n = {made['n']} samples against {made['real']} (toys: "
        "their own data; colorize: its test photographs). Figures are the mean ± sd over "
        "seeds; a figure more than 20 % worse than in docs/presets.json is a regression "
        "(`python bench/presets.py --check docs/presets.json`).",
    ]
    if made.get("partial"):
        head += ["", f"**Partial**: the bench stopped after {made['partial']}."]
    if made.get("note"):
        head += ["", made["note"]]
    head += ["", provenance(report["presets"])]
    if made["steps"]:
        head += [
            "",
            f"**Not representative**: train.steps was set to {made['steps']} for all "
            "runs (a smoke test), not the presets' own.",
        ]
    if found is not None:
        head += ["", f"Regressions against {made['checked']}:" + ("" if found else " none.")]
        head += [f"- {line}" for line in found]
    return "\n".join(
        [
            *head,
            "",
            "## Per preset",
            "",
            tables(report["presets"]),
            "",
            "## Per seed",
            "",
            seed_table(report["presets"]),
            "",
        ]
    )


def _source_name(src: dict[str, Any] | None) -> str:
    if not src or src.get("src_tree") is None:
        return "an unrecorded tree"
    where = "changes not committed" if src["dirty"] else f"commit {src['commit'][:9]}"
    return f"src/ tree `{src['src_tree'][:12]}` ({where})"


def provenance(presets: dict[str, dict[str, Any]]) -> str:
    """Which source trees the rows were trained from (``made.source`` of their bench run)."""
    trees: dict[str, list[str]] = {}
    for name, v in presets.items():
        trees.setdefault(_source_name(v.get("source")), []).append(name)
    if len(trees) == 1:
        return f"Every row was trained from one source: {next(iter(trees))}."
    parts = [f"{k}: {', '.join(f'`{n}`' for n in names)}" for k, names in trees.items()]
    return f"The rows come from {len(trees)} sources: " + "; ".join(parts) + "."


# --- main


def _ints(text: str) -> list[int]:
    try:
        return [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a comma list of integers: {text!r}") from None


def _paths(text: str) -> list[Path]:
    return [Path(s.strip()) for s in text.split(",") if s.strip()]


def merge(reports: list[dict[str, Any]]) -> dict[str, Any]:
    """Several --json reports as one: their presets in order (a later one replaces an earlier
    one of the same name), and what made each, so that the page says it took several runs."""
    if len(reports) == 1:
        return reports[0]
    presets: dict[str, Any] = {}
    for r in reports:
        for entry in r["presets"].values():  # a merged report's entries keep their own
            entry.setdefault("source", r["made"].get("source"))
        presets |= r["presets"]
    parts = [r["made"] for r in reports]
    dates = [d for p in parts for d in p["date"].split(" to ")]  # a merged report: "A to B"
    made = dict(parts[0])
    made |= {
        "command": " ; ".join(dict.fromkeys(p["command"] for p in parts)),
        "date": f"{min(dates)} to {max(dates)}",
        "jobs": max(p["jobs"] for p in parts),
        "load_start": min(p["load_start"] for p in parts),
        "load_end": max(p["load_end"] for p in parts),
        "parts": sum(p.get("parts", 1) for p in parts),  # a merged report counts its own
    }
    return {"made": made, "presets": presets}


def _one_line(r: Result, done: int, total: int) -> str:
    f = r.figures
    shown = ", ".join(f"{FIGURES[k].header} {_num(f[k], FIGURES[k].fmt)}" for k in SHOWN if k in f)
    return (
        f"[{done}/{total}] {r.preset} seed {r.seed}"
        + (f": {f['wall_s']:.0f} s (CPU {f['cpu_s']:.0f} s)" if "wall_s" in f else "")
        + (f", eval {f['eval_s']:.0f} s" if "eval_s" in f else "")
        + f"; {r.error or r.note or shown}"
    )


def execute(
    jobs: list[Job], base: Path, capacity: int, pack: bool, on_result: Any = None
) -> list[Result]:
    """Run the jobs in order, ``capacity`` at once, or with ``pack`` as many as the cores hold
    by each run's own threads (a one-thread preset beside another, the others alone); call
    ``on_result(results)`` after each."""
    cores = os.cpu_count() or 1
    capacity = cores if pack else capacity

    def need(j: Job) -> int:
        return min(cores, j.threads or cores) if pack else 1

    results: list[Result] = []
    pending, running = list(jobs), dict[Future[Result], Job]()
    with ThreadPoolExecutor(max_workers=max(1, cores if pack else capacity)) as pool:
        while pending or running:  # each run is its own process
            free = capacity - sum(need(j) for j in running.values())
            for j in list(pending):  # first fit, in the order asked
                if need(j) <= free:
                    running[pool.submit(run_job, j, base)] = j
                    pending.remove(j)
                    free -= need(j)
            done, _ = wait(running, return_when=FIRST_COMPLETED)
            for fut in done:
                job = running.pop(fut)
                try:
                    results.append(fut.result())
                except Exception as e:  # a bug of the bench's own scoring: a row, not a stop
                    results.append(Result(job.preset, job.seed, error=f"{type(e).__name__}: {e}"))
                print(_one_line(results[-1], len(results), len(jobs)), file=sys.stderr, flush=True)
                if on_result is not None:
                    on_result(results)
    order = {(j.preset, j.seed): i for i, j in enumerate(jobs)}
    return sorted(results, key=lambda r: order[(r.preset, r.seed)])


def collect(
    names: list[str], jobs: list[Job], results: list[Result], same: dict[str, str]
) -> dict[str, dict[str, Any]]:
    """Per preset (in the order asked for) that has runs: what it is, its runs and their
    summary; a preset with another's recipe gets that one's runs and says so."""
    presets: dict[str, dict[str, Any]] = {}
    for name in names:
        trained = same.get(name, name)
        runs = [r for r in results if r.preset == trained]
        if not runs:
            continue
        about = config.PRESETS[name].about
        presets[name] = {
            "group": next(j.group for j in jobs if j.preset == trained),
            "about": about,
            "data": next(j.data for j in jobs if j.preset == trained),
            "budget_s": budget_s(about),
            "runs": [asdict(r) for r in runs],
            "summary": summarise(runs),
            **({"same_as": trained} if trained != name else {}),
        }
    return presets


def _git(*args: str) -> str | None:
    try:
        out = subprocess.run(
            ["git", "-C", str(ROOT), *args], capture_output=True, text=True, check=True
        )
    except (OSError, subprocess.CalledProcessError):
        return None
    return out.stdout.strip()


def source() -> dict[str, Any]:
    """What the runs were trained from: the commit, git's tree of src/ (``git rev-parse
    HEAD:src`` prints it) and whether src/ had changes not committed; {} outside git."""
    commit = _git("rev-parse", "HEAD")
    if commit is None:
        return {}
    changed = _git("status", "--porcelain", "--", "src")
    return {"commit": commit, "src_tree": _git("rev-parse", "HEAD:src"), "dirty": bool(changed)}


def measure(
    args: argparse.Namespace,
    extra: list[str],
    jobs: list[Job],
    same: dict[str, str],
    argv: list[str],
) -> dict[str, Any]:
    """Train and evaluate every job; the report that --json writes (after every run, with
    ``made.partial`` until the last: an interrupted bench keeps the runs it finished)."""
    made = {
        "command": shlex.join(["python", "bench/presets.py", *argv]),
        "date": time.strftime("%Y-%m-%d %H:%M %Z"),
        "cpus": os.cpu_count(),
        "machine": f"{platform.machine()}, {platform.system()}",
        "torch": torch.__version__,
        "python": platform.python_version(),
        "jobs": args.jobs,
        "pack": args.pack,
        "load_start": os.getloadavg()[0],
        "load_end": None,
        "n": args.n,
        "real": mnist_real(args) or "the runs' training data",
        "steps": args.steps or None,
        "overrides": extra,
        "source": source(),
    }

    def report(results: list[Result]) -> dict[str, Any]:
        presets = collect(args.presets, jobs, results, same)
        for entry in presets.values():
            entry["source"] = made["source"]
        return {"made": made, "presets": presets}

    def save(results: list[Result]) -> None:
        if args.json:
            partial = {"partial": f"{len(results)} of {len(jobs)} runs"}
            text = json.dumps(report(results) | {"made": made | partial}, indent=2)
            args.json.write_text(text + "\n", encoding="utf-8")

    with tempfile.TemporaryDirectory(prefix="ganforge-presets-") as tmp:
        results = execute(jobs, args.out or Path(tmp), args.jobs, args.pack, save)
    made["load_end"] = os.getloadavg()[0]
    return report(results)


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        description=__doc__.split("\n")[0],
        usage="%(prog)s [options] [key=value ...]  (key=value: overrides of every run)",
    )
    p.add_argument("--presets", metavar="A,B", default=",".join(config.PRESETS), help="(all)")
    p.add_argument(
        "--seeds", type=_ints, metavar="S,S", default="0,1,2", help="image, app presets (0,1,2)"
    )
    p.add_argument("--toy-seeds", type=_ints, metavar="S,S", default="0", help="toy presets (0)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, each a process (1)")
    p.add_argument(
        "--pack",
        action="store_true",
        help="share the cores by each preset's own train.threads: one-thread presets run "
        "side by side, the others alone (in place of --jobs)",
    )
    p.add_argument(
        "--threads", type=int, default=0, help="train.threads; 0: the preset's, 1 with --jobs"
    )
    p.add_argument(
        "--n", type=int, default=5000, help="samples evaluated (5000; at most half the real set)"
    )
    p.add_argument(
        "--real", metavar="PATH", help="real set of the MNIST presets (the MNIST test set)"
    )
    p.add_argument("--out", type=Path, metavar="DIR", help="keep the run folders here")
    p.add_argument(
        "--json", type=Path, metavar="FILE", help="write the figures here (--check reads it)"
    )
    p.add_argument("--write-docs", type=Path, metavar="PATH", help="write the markdown page here")
    p.add_argument(
        "--note", metavar="TEXT", help="a paragraph for the page: how the runs shared the machine"
    )
    p.add_argument(
        "--check", type=Path, metavar="FILE", help="a former --json: list regressions, exit 1"
    )
    p.add_argument(
        "--steps",
        type=int,
        default=0,
        metavar="N",
        help="train.steps of every run: smoke tests only",
    )
    p.add_argument(
        "--from-json",
        type=_paths,
        metavar="FILE[,FILE]",
        help="train nothing: take the figures of former --json files, merged in their order "
        "(to --check them, or to re-write the page); --presets, seeds and overrides then do "
        "nothing",
    )
    return p


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    p = parser()
    args, extra = p.parse_known_args(argv)
    if bad := [o for o in extra if "=" not in o]:
        p.error(f"unrecognised arguments: {' '.join(bad)}")
    args.presets = [s.strip() for s in args.presets.split(",") if s.strip()]
    if unknown := [s for s in args.presets if s not in config.PRESETS]:
        print(
            f"error: unknown preset {unknown[0]!r}; choose from {', '.join(config.PRESETS)}",
            file=sys.stderr,
        )
        return 2
    files = [args.check, *(args.from_json or [])]
    if missing := [f for f in files if f is not None and not f.is_file()]:
        print(f"error: {missing[0]}: no such file", file=sys.stderr)
        return 2
    if args.from_json is not None:
        report = merge([json.loads(f.read_text(encoding="utf-8")) for f in args.from_json])
        for name, entry in report["presets"].items():  # the descriptions as they are now
            if name in config.PRESETS:
                entry["about"] = config.PRESETS[name].about
                entry["budget_s"] = budget_s(entry["about"])
    else:
        if args.pack and args.jobs != 1:
            print("error: --pack chooses the runs at once itself; drop --jobs", file=sys.stderr)
            return 2
        try:
            jobs, same = plan(args, extra)
        except GanforgeError as e:
            print(f"error: {e}", file=sys.stderr)
            return 2
        report = measure(args, extra, jobs, same, argv)
    print(tables(report["presets"]))
    found = check(report, args.check) if args.check is not None else None
    report["made"]["checked"] = None if args.check is None else str(args.check)
    if args.note:
        report["made"]["note"] = args.note
    report["regressions"] = found
    if args.json:
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    if args.write_docs:
        args.write_docs.write_text(page(report, found), encoding="utf-8")
    failed = any(r["error"] for v in report["presets"].values() for r in v["runs"])
    return 1 if found or failed else 0


if __name__ == "__main__":
    raise SystemExit(main())
