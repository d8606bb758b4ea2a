"""What each stabiliser buys on the toy mixtures: the default NS GAN against each switch alone
and against combinations, through ``ganforge ablate``, over several seeds.

    python bench/stabilisers.py --preset grid25 --base first --set alone --seeds 5 --jobs 2
    python bench/stabilisers.py --preset ring8 --set alone --seeds 2 --steps 1500

prints the ablation table (modes captured, high-quality share, KL per cell: mean ± std and 95 %
interval) and leaves the run folders, ablation.csv/.md/.png under --out. Sets of cells:
``alone`` (default + every switch alone), ``combo`` (default + the combinations), ``all``.
``--base first`` measures against the toy presets as first shipped (a plain NS GAN, MLPs
128-128, 5,000 steps) rather than against today's presets, which are the best combination
found (packing, EMA, decaying rates: docs/toy.md).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

from ganforge.cli import main as ganforge

# Each stabiliser alone, at a setting that suits 2-D toy data of unit scale.
ALONE = [
    "stab.label_smoothing=true",
    "stab.instance_noise=0.1",
    "stab.feature_matching=1",
    "stab.historical_averaging=0.001",
    "model.minibatch_discrimination=16",
    "model.minibatch_stddev=true",
    "model.spectral_norm=true",
    "model.d_dropout=0.2",
    "stab.r1=0.1",
    "stab.ema=0.999",
    "train.loss=hinge",
    "train.loss=lsgan",
    "train.loss=wgan-gp",
    "train.d_steps=2",
    "model.pack=4",
]
# Combinations to try against the default.
COMBO = [
    "model.minibatch_stddev=true stab.ema=0.999",
    "model.minibatch_discrimination=16 stab.ema=0.999",
    "model.minibatch_stddev=true stab.r1=0.1 stab.ema=0.999",
    "model.spectral_norm=true train.loss=hinge stab.ema=0.999",
]
SETS = {"alone": ALONE, "combo": COMBO, "all": ALONE + COMBO}
# The toy presets as first shipped: no packing, no EMA, constant rates, D 128-128, the data
# as given, every sample kept.
FIRST = [
    "model.standardize=false",
    "train.filter_steps=0",
    "train.sample_filter=none",
    "model.pack=1",
    "model.d_hidden=128,128",
    "stab.ema=0",
    "optim.decay_from=1",
    "train.steps=5000",
    "train.sample_every=500",
]
BASES = {"preset": [], "first": FIRST}


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    p.add_argument("--preset", default="grid25", help="a toy preset: grid25, ring8 (grid25)")
    p.add_argument("--set", choices=list(SETS), default="all", help="which cells (all)")
    p.add_argument("--base", choices=list(BASES), default="preset", help="the default (preset)")
    p.add_argument("--cell", action="append", default=[], help="extra cells ('K=V K=V')")
    p.add_argument("--seeds", type=int, default=5, help="seeds per cell (5)")
    p.add_argument("--steps", type=int, help="steps per run (the preset's)")
    p.add_argument("--jobs", type=int, default=2, help="runs at once (2)")
    p.add_argument("--samples", type=int, default=20_000, help="samples measured per run")
    p.add_argument("--out", type=Path, help="output folder (runs/bench-stab-<preset>-<time>)")
    args, overrides = p.parse_known_args(argv)
    out = args.out or Path("runs") / f"bench-stab-{args.preset}-{time.strftime('%H%M%S')}"
    cells = ["", *SETS[args.set], *args.cell]
    cmd = ["ablate", "--preset", args.preset, "--seeds", str(args.seeds), "--jobs", str(args.jobs)]
    cmd += ["--samples", str(args.samples), "--out", str(out)]
    if args.steps:
        cmd += ["--steps", str(args.steps)]
    for c in cells:
        cmd += ["--cell", c]
    cmd += BASES[args.base] + overrides  # before each cell's own overrides
    print("ganforge " + " ".join(repr(c) if (" " in c or not c) else c for c in cmd))
    return ganforge(cmd)


if __name__ == "__main__":
    sys.exit(main())
