"""Sample quality for equal wall time: ganforge's best MNIST preset against the course's loop.

Run (from the repository root):

    python bench/quality_mnist.py --own-steps              # mnist-best, 300 s a side, ~11 min
    python bench/quality_mnist.py --own-steps --preset mnist-best,mnist-dcgan --seeds 0,1,2
    python bench/quality_mnist.py --seconds 150 stab.ema=0.999  # key=value reach the presets
    python bench/quality_mnist.py --part stacked --preset stacked-best --seconds 600  # ~11 min

What it does (``--part mnist``). For each seed of ``--seeds`` (default 0), each preset of
``--preset`` (comma-separated, default ``mnist-best``) is trained by ``ganforge train
train.seed=S`` in a subprocess that gets Ctrl-C (SIGINT) after ``--seconds``: it stops after
the current step and writes its checkpoint, as a user's run would. With ``--own-steps`` a
preset runs its own ``train.steps`` (its schedules end there) and ``--seconds`` is a cap;
without it, train.steps is set out of reach and the clock alone stops the run. The course's
plain PyTorch loop (``reference_step`` of bench/throughput.py, the same code as the
throughput benchmark, with the course's MLP, seeded with S) then trains in this process for
the same number of seconds. Its G is stored as a ganforge run folder (the course's G and
ganforge's ``mnist-mlp`` G are the same layers, checked by throughput.check_same_maths).
All runs are measured by the function behind ``ganforge eval`` on the same ``--n`` samples
against the same real set (``--real``; default: the 10,000 MNIST test images in
../shared/data/mnist when present, else the bundled 5,000). The runs train one after the
other: nothing else should run on the machine meanwhile.

Targets (issue "Images that win at equal CPU time"), checked per seed for the first preset:
FID at most 3x the real-vs-real floor, precision >= 0.75, recall >= 0.8, class KL <= 0.02,
all 10 classes, and at most a third of the reference loop's FID. A last summary gives each
run's figures per seed and the ratio of the reference's FID to its own.

``--part stacked``: for each seed, the preset trained on ``stacked-mnist`` for ``--seconds``
(``train.seed=S``), evaluated like
the MNIST runs (``--n`` default 5,000 here), then the modes covered (of 1,000) and their KL to
uniform from ``--modes-n`` (26,000) samples and, as the floor, from as many real Stacked MNIST
images (Lin et al. 2018 report 1,000 modes and KL 0.029 with 26,000 samples, on GPUs).
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from torch.utils.data import DataLoader, TensorDataset

from ganforge import checkpoint, nets
from ganforge.config import Config
from ganforge.evaluation import evaluate_run
from ganforge.runs import RunFolder
from throughput import check_same_maths, course_images, reference_models, reference_step

ROOT = Path(__file__).resolve().parents[1]
MNIST_TEST = ROOT.parent / "shared" / "data" / "mnist"
SHOWN = (
    "fid",
    "kid",
    "precision",
    "recall",
    "density",
    "coverage",
    "class_kl",
    "classes_covered",
    "modes",
    "mode_kl",
)


def train_for(seconds: float, out: Path, args: list[str]) -> float:
    """``ganforge train`` in a subprocess, stopped by SIGINT after ``seconds`` of its life."""
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    cmd = [sys.executable, "-m", "ganforge", "train", "--out", str(out), "--quiet", *args]
    start = time.perf_counter()
    proc = subprocess.Popen(cmd, env=env)
    try:
        proc.wait(timeout=seconds)
    except subprocess.TimeoutExpired:
        proc.send_signal(signal.SIGINT)
        proc.wait()
    if proc.returncode not in (0, 130):
        raise SystemExit(f"ganforge train failed (exit {proc.returncode})")
    return time.perf_counter() - start


def reference_for(seconds: float, batch: int = 64, seed: int = 0) -> tuple[torch.nn.Module, int]:
    """The course's loop (throughput.reference_step, MLP) until ``seconds`` have passed;
    returns (G, steps taken)."""
    torch.manual_seed(seed)
    loader = DataLoader(
        TensorDataset(course_images()), batch_size=batch, shuffle=True, drop_last=True
    )
    g, d = reference_models("mlp")
    step_fn = reference_step(g, d, batch)
    start, steps = time.perf_counter(), 0
    while True:
        for (real,) in loader:
            step_fn(real)
            steps += 1
            if time.perf_counter() - start >= seconds:
                return g, steps


def store_reference(g: torch.nn.Module, steps: int, out: Path) -> None:
    """The course's G as a ganforge run folder of the ``mnist-mlp`` model."""
    cfg = Config()
    ours, theirs = nets.build(cfg.model, (1, 28, 28))
    leaves_ours = [m for m in ours.modules() if not list(m.children())]
    leaves_ours = [
        m for m in leaves_ours if not isinstance(m, torch.nn.Flatten | torch.nn.Unflatten)
    ]
    leaves_ref = [m for m in g.modules() if not list(m.children())]
    for a, b in zip(leaves_ours, leaves_ref, strict=True):
        a.load_state_dict(b.state_dict())
    run = RunFolder(out)
    run.prepare_new(overwrite=True)
    run.write_config(cfg)
    run.checkpoints.mkdir()
    checkpoint.save(
        checkpoint.path_for(run.checkpoints, steps),
        step=steps,
        modules={"G": ours, "D": theirs},
        optimizers={},
        meta={"model": cfg.to_dict()["model"], "data_shape": [1, 28, 28]},
    )


def modes_26k(run: Path, n: int) -> dict[str, dict[str, float]]:
    """Modes and KL to uniform from ``n`` samples (26,000 in Lin et al. 2018), and the same
    for ``n`` real Stacked MNIST images (the floor: KL to uniform needs one real set),
    printed and returned by name ("samples", "real floor")."""
    from ganforge.data import load_dataset
    from ganforge.metrics.compare import features_of
    from ganforge.metrics.features import mnist_net
    from ganforge.metrics.score import mode_metrics
    from ganforge.runs import sample

    net = mnist_net()
    real = load_dataset("stacked-mnist")
    if n > len(real):
        raise SystemExit(f"--modes-n {n} exceeds the {len(real)} Stacked MNIST images")
    fake_modes = features_of(net, sample(run, n, seed=1))[2]
    real_modes = features_of(net, real.batch(torch.arange(n)))[2]
    assert fake_modes is not None and real_modes is not None
    out = {}
    for name, modes in (("samples", fake_modes), ("real floor", real_modes)):
        m = mode_metrics(modes, 1000)
        print(f"  {n} {name}: {m['modes']:.0f} modes of 1000, KL to uniform {m['mode_kl']:.4f}")
        out[name] = {"modes": float(m["modes"]), "mode_kl": float(m["mode_kl"]), "n": n}
    return out


def cell(m: dict[str, Any] | None) -> str:
    if m is None:
        return "-"
    if m["ci_low"] is None:
        return f"{m['value']:.4g}"
    return f"{m['value']:.4g} [{m['ci_low']:.3g}, {m['ci_high']:.3g}]"


def print_results(results: dict[str, dict[str, Any]]) -> None:
    from rich.console import Console
    from rich.table import Table

    first = next(iter(results.values()))
    table = Table(
        title=f"n = {first['n']} samples against {first['real']}; 95 % bootstrap intervals",
        caption="floor: a second, disjoint real set of n against the same reference",
    )
    table.add_column("metric")
    for name in results:
        table.add_column(name, justify="right")
    table.add_column("real floor", justify="right")
    for metric in SHOWN:
        if metric not in first["metrics"]:
            continue
        row = [metric] + [cell(r["metrics"].get(metric)) for r in results.values()]
        table.add_row(*row, f"{first['metrics'][metric]['floor']:.4g}")
    Console(width=max(120, Console().width)).print(table)


def targets(ours: dict[str, Any], ref: dict[str, Any]) -> list[tuple[str, bool]]:
    """Issue "Images that win at equal CPU time", for mnist-best."""
    m, r = ours["metrics"], ref["metrics"]
    fid, floor = m["fid"]["value"], m["fid"]["floor"]
    out = [
        (f"FID {fid:.3g} at most 3x the floor {floor:.3g}", fid <= 3 * floor),
        (f"precision {m['precision']['value']:.3f} >= 0.75", m["precision"]["value"] >= 0.75),
        (f"recall {m['recall']['value']:.3f} >= 0.8", m["recall"]["value"] >= 0.8),
        (f"class KL {m['class_kl']['value']:.4f} <= 0.02", m["class_kl"]["value"] <= 0.02),
        (
            f"FID at most 1/3 of the reference's {r['fid']['value']:.3g} "
            f"(ratio {r['fid']['value'] / fid:.2f})",
            fid <= r["fid"]["value"] / 3,
        ),
    ]
    if "classes_covered" in m:
        c = m["classes_covered"]["value"]
        out.append((f"classes {c:.0f} of 10", c >= 10))
    return out


def summary(per_seed: dict[int, dict[str, dict[str, Any]]]) -> None:
    """One line per run and seed: FID, precision, recall, class KL, steps, and FID ratio to
    the reference loop of the same seed."""
    print("\nper seed (FID ratio: the reference loop's FID / this run's, same seed):")
    for seed, results in per_seed.items():
        ref = results["reference loop"]["metrics"]["fid"]["value"]
        for name, r in results.items():
            m = r["metrics"]
            print(
                f"  seed {seed}  {name:28s} step {r['step']:6d}  FID {m['fid']['value']:7.2f} "
                f"({m['fid']['value'] / m['fid']['floor']:5.1f}x floor)  "
                f"P {m['precision']['value']:.3f}  R {m['recall']['value']:.3f}  "
                f"class KL {m['class_kl']['value']:.4f}  ratio {ref / m['fid']['value']:.2f}"
            )


def seed_list(text: str) -> list[int]:
    """``--seeds``: integers, comma-separated."""
    try:
        return [int(x) for x in text.split(",")]
    except ValueError:
        raise argparse.ArgumentTypeError(f"integers, comma-separated, not {text!r}") from None


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--part", choices=("mnist", "stacked"), default="mnist")
    p.add_argument("--seconds", type=float, default=300.0, help="training wall time a side")
    p.add_argument(
        "--preset", default="mnist-best", help="ganforge's presets, comma-separated (mnist-best)"
    )
    p.add_argument(
        "--seeds",
        type=seed_list,
        default=[0],
        help="seeds, comma-separated (0); each: every preset and the reference loop",
    )
    p.add_argument("--n", type=int, default=None, help="samples evaluated (default 5000)")
    p.add_argument("--real", default=None, help="real set (default: the MNIST test set)")
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--modes-n", type=int, default=26_000, help="stacked: samples for modes")
    p.add_argument("--out", type=Path, default=None, help="keep the run folders here")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument(
        "--own-steps",
        action="store_true",
        help="run the preset's own train.steps (its schedules end there), --seconds a cap",
    )
    args, overrides = p.parse_known_args(argv)
    if bad := [o for o in overrides if "=" not in o]:
        p.error(f"unrecognised arguments: {' '.join(bad)}")
    # a preset's schedules (rate decay, fades) are set by train.steps: --own-steps keeps it
    steps = [] if args.own_steps else ["--steps", "1000000"]
    overrides = [*steps, *overrides]

    with tempfile.TemporaryDirectory(prefix="ganforge-quality-") as tmp:
        base = args.out or Path(tmp)
        if args.part == "mnist":
            real = args.real or (str(MNIST_TEST) if MNIST_TEST.is_dir() else "mnist5k")
            n = args.n or (5000 if real != "mnist5k" else 2500)
            check_same_maths()
            per_seed: dict[int, dict[str, dict[str, Any]]] = {}
            for seed in args.seeds:
                results: dict[str, dict[str, Any]] = {}
                for preset in args.preset.split(","):
                    run = base / f"{preset}-seed{seed}"
                    took = train_for(
                        args.seconds,
                        run,
                        ["--preset", preset, *overrides, f"train.seed={seed}"],
                    )
                    print(f"ganforge {preset} seed {seed}: {took:.0f} s", file=sys.stderr)
                    results[f"ganforge {preset}"] = evaluate_run(
                        run, n=n, real=real, bootstrap=args.bootstrap
                    )
                g, steps = reference_for(args.seconds, seed=seed)
                print(f"reference seed {seed}: {steps} steps", file=sys.stderr)
                store_reference(g, steps, base / f"reference-seed{seed}")
                results["reference loop"] = evaluate_run(
                    base / f"reference-seed{seed}", n=n, real=real, bootstrap=args.bootstrap
                )
                print(f"seed {seed}", file=sys.stderr)
                print_results(results)
                ours, ref = next(iter(results.values())), results["reference loop"]
                for text, met in targets(ours, ref):
                    print(f"  {'met' if met else 'NOT met'}: {text}")
                per_seed[seed] = results
            summary(per_seed)
            dump: Any = {str(k): v for k, v in per_seed.items()}
        else:
            n = args.n or 5000
            dump = {}
            stacked_args = ["--preset", args.preset, "--data", "stacked-mnist"]
            for seed in args.seeds:
                run = base / f"stacked-seed{seed}"
                took = train_for(
                    args.seconds,
                    run,
                    [*stacked_args, f"train.seed={seed}", *overrides],
                )
                print(f"{args.preset} on stacked-mnist, seed {seed}: {took:.0f} s", file=sys.stderr)
                name = f"ganforge {args.preset}, stacked"
                result = {name: evaluate_run(run, n=n, bootstrap=args.bootstrap)}
                print_results(result)
                result[name]["modes_26k"] = modes_26k(run, args.modes_n)
                dump[str(seed)] = result
        if args.json:
            args.json.write_text(json.dumps(dump, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
