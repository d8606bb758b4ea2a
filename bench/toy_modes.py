"""Every mode, sharply: modes captured, high-quality share and KL on 2-D point sets, per seed.

Run (from the repository root):

    python bench/toy_modes.py --jobs 2                       # the table of docs/toy.md
    python bench/toy_modes.py --data grid25 --seeds 0,1      # a part of it
    python bench/toy_modes.py --data ring8 --seeds 0 model.pack=1   # a config change (ablation)
    python bench/toy_modes.py --preset grid25 --data grid25  # another preset

What it measures. Each data set (``--data``: a named toy, or a mixture file such as the two in
bench/mixtures/, which the recipe was never tuned on) is trained once per seed with
``ganforge train --preset points2d data.source=DATA train.seed=S`` (plus any ``key=value``
overrides given after the options) into a temporary folder, timed as a whole: training and the
fitting of the sampling filter's D. Then 20,000 samples are drawn twice with z seeded 1: the
raw G (``ganforge sample --filter none``) and what ``ganforge sample`` writes by default (the
run's ``train.sample_filter``: Discriminator Rejection Sampling for points2d).

Mixtures are scored by ``ganforge.metrics.modes.mode_metrics`` with the definitions of VEEGAN
(Srivastava et al. 2017) and PacGAN (Lin et al. 2018): a sample is high quality within 3 std
of its nearest mode; a mode is captured when it holds at least 1/5 of its expected number of
high-quality samples; KL(q || w) between the high-quality histogram q and the weights w. The
spiral, which has no modes, is scored the same way along its curve: high quality within 3
noise std (0.15) of the curve r = theta / pi, and the curve cut into 20 arcs of equal length
that play the modes' part (weights: equal, as the data spreads evenly along the curve).

Published reference on the 5 x 5 grid (PacGAN, Table 1; their nets, 2,500 samples, ~400k
steps on a GPU): a plain GAN 17.3 of 25 modes; PacGAN4 24.8, 93.6 % high quality, KL 0.04.
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge import config
from ganforge.data import from_config, mixture_of
from ganforge.metrics.modes import mode_metrics
from ganforge.nets.filters import POINT_BATCH, rejection
from ganforge.runs import RunFolder, load_generator, sample, sample_filtered
from ganforge.train import calibrate
from ganforge.train.loop import train

N_SAMPLES = 20_000
DATA = ("grid25", "ring8", "spiral", "bench/mixtures/uneven.toml", "bench/mixtures/rings.toml")
SPIRAL_NOISE, SPIRAL_ARCS = 0.05, 20


def spiral_metrics(x: np.ndarray) -> dict:
    """Mode-style figures for the spiral (data/toy.py): its curve cut into arcs of equal length."""
    theta = np.linspace(0.0, 4 * math.pi, 40_001)
    curve = np.stack([theta / math.pi * np.cos(theta), theta / math.pi * np.sin(theta)], 1)
    seg = np.linalg.norm(np.diff(curve, axis=0), axis=1)
    arc = np.concatenate([[0.0], np.cumsum(seg)])
    which = np.minimum((arc / arc[-1] * SPIRAL_ARCS).astype(int), SPIRAL_ARCS - 1)
    x = np.asarray(x, dtype=np.float64).reshape(len(x), 2)
    nearest = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x))
    for i in range(0, len(x), 2000):
        d = np.linalg.norm(x[i : i + 2000, None, :] - curve[None, ::4], axis=-1)
        nearest[i : i + 2000] = d.argmin(1) * 4
        dist[i : i + 2000] = d.min(1)
    hq = dist <= 3 * SPIRAL_NOISE
    counts = np.bincount(which[nearest[hq]], minlength=SPIRAL_ARCS)
    w = 1.0 / SPIRAL_ARCS
    total = int(counts.sum())
    q = counts / max(total, 1)
    used = q > 0
    kl = float(np.sum(q[used] * np.log(q[used] / w))) if total else math.inf
    return {
        "modes": int((counts >= 0.2 * len(x) * w).sum()),
        "n_modes": SPIRAL_ARCS,
        "hq_share": total / len(x),
        "kl": kl,
    }


def score(x, source: str) -> dict:
    mixture = mixture_of(source)
    if mixture is None:
        if source != "spiral":
            raise SystemExit(f"{source}: no mixture to score against (a named toy or .toml)")
        return spiral_metrics(np.asarray(x))
    m = mode_metrics(x, mixture)
    return {k: m[k] for k in ("modes", "n_modes", "hq_share", "kl")}


def run_one(
    preset: str,
    source: str,
    seed: int,
    threads: int,
    extra: tuple[str, ...] = (),
    keep: Path | None = None,
    n: int = N_SAMPLES,
) -> dict:
    overrides = [f"data.source={source}", *extra, f"train.seed={seed}", "train.snapshot_every=0"]
    if threads:
        overrides.append(f"train.threads={threads}")
    cfg = config.build(preset, overrides=overrides)
    with tempfile.TemporaryDirectory() as tmp:
        run = keep / f"{Path(source).stem}-{seed}" if keep else Path(tmp) / "run"
        t0, c0 = time.perf_counter(), time.process_time()
        train(cfg, out=run, quiet=True)
        seconds, cpu = time.perf_counter() - t0, time.process_time() - c0
        raw = score(sample(run, n, seed=1).numpy(), source)
        name = RunFolder(run).read_config().train.sample_filter
        t1 = time.perf_counter()
        if name == "none":
            kept, rate = raw, 1.0
        else:
            filtered = sample_filtered(run, n, name, seed=1)
            kept, rate = score(filtered.samples.numpy(), source), filtered.rate
        sample_s = time.perf_counter() - t1
    return {
        "data": source,
        "seed": seed,
        "filter": name,
        **{f"raw_{k}": v for k, v in raw.items()},
        **{k: v for k, v in kept.items()},
        "rate": rate,
        "train_s": seconds,
        "train_cpu_s": cpu,
        "sample_s": sample_s,
    }


def refit_one(
    row: dict, keep: Path, n: int = N_SAMPLES, average: float = calibrate.AVERAGE
) -> dict:
    """``row`` of a former bench run again with the current sampling filter: the kept run's G
    (unchanged) and a filter D fitted anew by train/calibrate.py as a run of today's code fits
    it (``train.filter_steps`` steps, seeded by ``train.seed``), then rejection as ``ganforge
    sample`` does it. Training times and the raw columns are the former row's."""
    source, seed = row["data"], row["seed"]
    run = keep / f"{Path(source).stem}-{seed}"
    cfg = RunFolder(run).read_config()
    g = load_generator(run)
    c0 = time.process_time()
    real = from_config(cfg.data).x
    net, _ = calibrate.fit(g, real, cfg.train.filter_steps, seed=seed, average=average)
    fit_cpu = time.process_time() - c0
    t1 = time.perf_counter()
    filtered = rejection(g, net.eval(), n, seed=1, batch=POINT_BATCH)
    kept = score(filtered.samples.numpy(), source)
    return {
        **row,
        **kept,
        "rate": filtered.rate,
        "sample_s": time.perf_counter() - t1,
        "fit_cpu_s": fit_cpu,
    }


def resample_one(row: dict, keep: Path, n: int = N_SAMPLES) -> dict:
    """``row`` of a former bench run sampled again as ``ganforge sample`` does it today (the
    run's G and fitted D unchanged; the filter's settings as the run's config, with today's
    defaults for keys it does not name). Training times and the raw columns are the row's."""
    source, seed = row["data"], row["seed"]
    run = keep / f"{Path(source).stem}-{seed}"
    name = RunFolder(run).read_config().train.sample_filter
    t1 = time.perf_counter()
    filtered = sample_filtered(run, n, name, seed=1)
    kept = score(filtered.samples.numpy(), source)
    return {**row, **kept, "rate": filtered.rate, "sample_s": time.perf_counter() - t1}


def _resample_job(row: dict, keep: Path, n: int) -> dict:
    r = resample_one(row, keep, n)
    print(
        f"{Path(r['data']).stem} seed {r['seed']} sampled again: {r['modes']} modes, "
        f"HQ {100 * r['hq_share']:.1f} %, KL {r['kl']:.3f} (acceptance {100 * r['rate']:.3f} %, "
        f"{r['sample_s']:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return r


def _refit_job(row: dict, keep: Path, n: int, average: float) -> dict:
    r = refit_one(row, keep, n, average)
    print(
        f"{Path(r['data']).stem} seed {r['seed']} refitted: {r['modes']} modes, "
        f"HQ {100 * r['hq_share']:.1f} %, KL {r['kl']:.3f} (fit CPU {r['fit_cpu_s']:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return r


def _job(
    job: tuple[str, int],
    preset: str,
    threads: int,
    extra: tuple[str, ...],
    keep: Path | None,
    n: int,
) -> dict:
    source, seed = job
    r = run_one(preset, source, seed, threads, extra, keep, n)
    print(
        f"{Path(source).stem} seed {seed}: raw {r['raw_modes']}/{r['n_modes']} modes, "
        f"HQ {100 * r['raw_hq_share']:.1f} %, KL {r['raw_kl']:.3f}; {r['filter']} "
        f"{r['modes']} modes, HQ {100 * r['hq_share']:.1f} %, KL {r['kl']:.3f} "
        f"({r['train_s']:.0f} s, CPU {r['train_cpu_s']:.0f} s; sampling {r['sample_s']:.0f} s)",
        file=sys.stderr,
        flush=True,
    )
    return r


def _mean_sd(values: list[float], fmt: str = ".2f") -> str:
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{mean:{fmt}} ± {sd:{fmt}}"


def table(rows: list[dict]) -> str:
    lines = [
        "| data | seed | raw modes | raw high quality | raw KL | modes | high quality | KL "
        "| acceptance | train s | train CPU s | sample s |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for source in dict.fromkeys(r["data"] for r in rows):
        mine = [r for r in rows if r["data"] == source]
        name = Path(source).stem
        for r in mine:
            lines.append(
                f"| {name} | {r['seed']} | {r['raw_modes']} / {r['n_modes']} | "
                f"{100 * r['raw_hq_share']:.1f} % | {r['raw_kl']:.3f} | {r['modes']} / "
                f"{r['n_modes']} | {100 * r['hq_share']:.1f} % | {r['kl']:.3f} | "
                f"{100 * r['rate']:.1f} % | {r['train_s']:.0f} | {r['train_cpu_s']:.0f} | "
                f"{r['sample_s']:.0f} |"
            )
        cols = [
            _mean_sd([float(r[k]) * (100 if "hq" in k else 1) for r in mine], f)
            for k, f in (
                ("raw_modes", ".1f"),
                ("raw_hq_share", ".1f"),
                ("raw_kl", ".3f"),
                ("modes", ".1f"),
                ("hq_share", ".1f"),
                ("kl", ".3f"),
            )
        ]
        lines.append(
            f"| **{name}** | {len(mine)} seeds | {cols[0]} | {cols[1]} % | {cols[2]} | "
            f"{cols[3]} | {cols[4]} % | {cols[5]} | "
            f"{100 * statistics.fmean(r['rate'] for r in mine):.1f} % | "
            f"{statistics.fmean(r['train_s'] for r in mine):.0f} | "
            f"{statistics.fmean(r['train_cpu_s'] for r in mine):.0f} | "
            f"{statistics.fmean(r['sample_s'] for r in mine):.0f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--preset", default="points2d", help="the recipe (points2d)")
    p.add_argument("--data", default=",".join(DATA), help="comma list of data sets")
    p.add_argument("--seeds", default="0,1,2,3,4", help="comma list of seeds (0,1,2,3,4)")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0: 1 with --jobs)")
    p.add_argument("--jobs", type=int, default=1, help="runs at once, in processes (1)")
    p.add_argument("--json", type=Path, help="also write the rows as JSON here")
    p.add_argument("--keep", type=Path, help="keep the run folders here (DATA-SEED)")
    p.add_argument("--n", type=int, default=N_SAMPLES, help="samples scored, raw and kept")
    p.add_argument(
        "--refit",
        type=Path,
        help="a former --json: its runs (in --keep) filtered again by a D fitted anew",
    )
    p.add_argument(
        "--resample",
        type=Path,
        help="a former --json: its runs (in --keep) sampled again with today's filter settings",
    )
    p.add_argument(
        "--average",
        type=float,
        default=calibrate.AVERAGE,
        help="with --refit: the decay of the fitted D's weight average (0: the last iterate)",
    )
    args, overrides = p.parse_known_args(argv)
    if bad := [o for o in overrides if "=" not in o]:
        p.error(f"unrecognised arguments: {' '.join(bad)}")
    threads = args.threads or (1 if args.jobs > 1 else 0)  # no oversubscribed cores
    jobs = [(d, int(s)) for d in args.data.split(",") for s in args.seeds.split(",")]
    one: Callable[[Any], dict] = partial(
        _job, preset=args.preset, threads=threads, extra=tuple(overrides), keep=args.keep, n=args.n
    )
    if args.refit:
        if not args.keep:
            p.error("--refit needs --keep, the folder of the former runs")
        torch.set_num_threads(threads or 1)
        jobs = json.loads(args.refit.read_text())
        one = partial(_refit_job, keep=args.keep, n=args.n, average=args.average)
    if args.resample:
        if not args.keep:
            p.error("--resample needs --keep, the folder of the former runs")
        torch.set_num_threads(threads or 1)
        jobs = json.loads(args.resample.read_text())
        one = partial(_resample_job, keep=args.keep, n=args.n)
    if args.jobs > 1:  # spawn: a fresh interpreter per worker, no forked torch state
        with multiprocessing.get_context("spawn").Pool(args.jobs) as pool:
            rows = list(pool.imap(one, jobs))
    else:
        rows = [one(j) for j in jobs]
    print(table(rows))
    if args.json:
        args.json.write_text(json.dumps(rows, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
