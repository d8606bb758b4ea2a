"""The sampling filter's ingredients, measured on finished points2d runs (docs/toy.md).

Run (from the repository root), on run folders that bench/toy_modes.py kept:

    python bench/toy_modes.py --jobs 2 --data grid25,ring8 --keep /tmp/toy_runs
    python bench/toy_filter.py /tmp/toy_runs/grid25-* /tmp/toy_runs/ring8-*

What it measures. Each run's G is held fixed and filtered several ways; the same ``--n``
samples are kept each way (z seeded 1, as bench/toy_modes.py) and scored by its ``score``:

- ``none``: the raw G;
- ``recipe``: what ``ganforge sample`` writes by default (rejection by the fitted D, D~_M the
  0.9999 quantile of 100,000 burn-in logits);
- ``quantile 0.999``: the same D, D~_M the 0.999 quantile of 10,000 logits (the former recipe);
- ``quantile 1``: the same D, D~_M the largest of 10,000 logits (plain rejection sampling);
- ``drs``: the same D, Azadi et al.'s gamma at the 95th percentile of F;
- ``fit 1000``: a D fitted for 1,000 steps (the former recipe) instead of the run's 2,000;
- ``run's D``: the run's own (packing) D instead of a fitted one, rejection as the recipe.

The data set is read from each run's config; a run's folder name is printed as given.
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ganforge.data import from_config
from ganforge.nets.filters import POINT_BATCH, drs, rejection
from ganforge.runs import RunFolder, load_filter_nets, load_nets
from ganforge.train import calibrate
from toy_modes import N_SAMPLES, score

Filter = Callable[[torch.nn.Module, torch.nn.Module, int], torch.Tensor]


def variants(run: Path, fit_steps: int) -> dict[str, tuple[str, Filter]]:
    """name -> (which D, how it keeps samples ``(g, d, n) -> [n, dim]``)."""

    def rej(q: float) -> Filter:
        return lambda g, d, n: (
            rejection(g, d, n, seed=1, quantile=q, batch=POINT_BATCH, allow_fewer=True).samples
        )

    return {
        "recipe": ("fitted", rej(0.9999)),
        "quantile 0.999": ("fitted", rej(0.999)),
        "quantile 1": ("fitted", rej(1.0)),
        "drs": ("fitted", lambda g, d, n: drs(g, d, n, seed=1, batch=POINT_BATCH).samples),
        f"fit {fit_steps}": ("refit", rej(0.9999)),
        "run's D": ("run", rej(0.9999)),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("runs", nargs="+", type=Path, help="points2d run folders")
    p.add_argument("--n", type=int, default=N_SAMPLES // 2, help="samples kept per variant")
    p.add_argument("--fit-steps", type=int, default=1000, help="steps of the refitted D")
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    print("| run | filter | modes | high quality | KL | s |")
    print("|---|---|---:|---:|---:|---:|")
    for run in args.runs:
        cfg = RunFolder(run).read_config()
        source = cfg.data.source
        g, fitted, has_fit = load_filter_nets(run)
        _, own, _ = load_nets(run)
        if not has_fit:
            raise SystemExit(f"{run}: no fitted filter D (train.filter_steps=0)")
        real = from_config(cfg.data).x
        nets: dict[str, torch.nn.Module] = {"fitted": fitted, "run": own}
        t0 = time.perf_counter()
        nets["refit"] = calibrate.fit(g, real, args.fit_steps, seed=cfg.train.seed)[0].eval()
        refit_s = time.perf_counter() - t0
        raw = g(torch.randn(args.n, int(g.latent_dim), generator=torch.Generator().manual_seed(1)))
        rows = [("none", score(raw.detach().numpy(), source), 0.0)]
        for name, (which, keep) in variants(run, args.fit_steps).items():
            t0 = time.perf_counter()
            with torch.no_grad():
                x = keep(g, nets[which], args.n)
            seconds = time.perf_counter() - t0 + (refit_s if which == "refit" else 0.0)
            rows.append((name, score(x.numpy(), source), seconds))
        for name, m, seconds in rows:
            print(
                f"| {run.name} | {name} | {m['modes']} / {m['n_modes']} | "
                f"{100 * m['hq_share']:.1f} % | {m['kl']:.3f} | {seconds:.0f} |",
                flush=True,
            )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
