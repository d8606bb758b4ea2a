"""The seeds' Keras loop against ganforge's parity config: steps/s and sample quality at equal
wall time.

Run (from the repository root):

    pip install -e ".[bench]"                     # tensorflow-cpu, for the Keras side only
    python bench/seed_parity.py                   # 120 s a side, ~10 min on 2 cores
    python bench/seed_parity.py --threads 1 --json parity.json
    python bench/seed_parity.py --as-written --sides keras --seconds 60   # the code as written

Three sides, one after the other, each trained for ``--seconds`` of wall time on the bundled
5,000 MNIST digits in [-1, 1], batch 64, then judged alike:

- keras: the seeds' Keras code, written out below (``keras_seed_loop``): ``Sequential`` G and
  D of the course's MLP in Keras layers, ``discriminator.compile(loss='binary_crossentropy',
  optimizer=Adam(2e-4, 0.5))``, a combined model z -> G -> D with D frozen, and the loop: a
  random real batch, ``generator.predict`` on noise, ``train_on_batch`` of D on the real batch
  (targets 1) and then on the fakes (targets 0), then ``combined.train_on_batch`` on fresh noise
  (targets 1). It runs in a child process (TensorFlow never enters this one); its clock starts
  before the models are built, so the compilation of the first ``train_on_batch`` is counted.
- ganforge: ``ganforge train --preset mnist-mlp train.d_update=split``, the same nets and the
  same two-step D update, stopped by Ctrl-C (SIGINT) after ``--seconds`` of the process's life
  (its start-up, imports, sample grids and final checkpoint are inside those seconds).
- reference: the course's plain PyTorch loop (bench/throughput.py's ``reference_step``: one D
  step on the summed real and fake losses), the second baseline.

Keras 3 (today's TensorFlow) reads ``trainable`` when a model trains, not when it is compiled.
The seeds set ``discriminator.trainable = False`` once, after compiling D and before compiling
the combined model, so on Keras 3 D's own ``train_on_batch`` updates nothing (Keras warns "The
model does not have any trainable weights") and G learns against a D frozen at its random
initialisation. ``--as-written`` runs the code so; by default the bench runs the fix: D is made
trainable before its two updates and frozen again before the combined update (and, since Keras
3 binds an optimiser to the variables it first updates, D and the combined model get one
``Adam(2e-4, 0.5)`` each instead of the seeds' shared instance). The Keras row reports how far
D's weights moved from their initial values: 0 as written.

Judging. The Keras G's weights are converted to the ``mnist-mlp`` G (Dense kernels [in, out]
transposed to PyTorch's [out, in]; BatchNormalization's gamma, beta, moving mean and variance to
weight, bias, running mean and variance, the variance raised by Keras' epsilon 1e-3 less
PyTorch's 1e-5 so that eval mode computes the same numbers), checked on 256 z against the Keras
G's own output in inference mode (max |difference| <= 1e-5) and stored as a run folder, as the
reference loop's G is. Every run folder is then measured by ``evaluate_run`` (``ganforge eval``'s
function) on ``--n`` samples against ``--real`` (default: the MNIST test set in
../shared/data/mnist when present) with the same seed. Without TensorFlow the Keras side is
skipped with a message, and ganforge is compared with the reference loop alone.
"""

from __future__ import annotations

import argparse
import importlib.util
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

sys.path.insert(0, str(Path(__file__).resolve().parent))
from ganforge.evaluation import evaluate_run
from ganforge.runs import RunFolder, load_generator
from quality_mnist import MNIST_TEST, ROOT, cell, reference_for, store_reference, train_for
from throughput import LATENT, check_same_maths, course_generator, course_images

SIDES = ("keras", "ganforge", "reference")
BATCH = 64
KERAS_BN_EPS = 1e-3  # keras.layers.BatchNormalization's default epsilon (PyTorch's is 1e-5)
PROBE = 256  # z on which the converted G must give the Keras G's output
TOLERANCE = 1e-5
WARM = 10  # Keras: the loop's steps/s is counted after this many steps (tracing, compilation)
NO_TENSORFLOW = (
    "TensorFlow is not installed (pip install -e '.[bench]'): the Keras side is skipped, "
    "ganforge is compared with the course's PyTorch loop only"
)

AS_WRITTEN = (
    "as written: `discriminator.trainable = False` set once before compiling the combined model; "
    "Keras 3 reads `trainable` at train time, so D's own train_on_batch updates nothing"
)
FIXED = (
    "D fixed: `discriminator.trainable = True` before D's two train_on_batch calls, `False` "
    "before the combined one (the code as written freezes D for good on Keras 3: --as-written)"
)
CLOCKS = (
    "seconds: ganforge's whole command (start-up, imports, sample grids, final checkpoint "
    "included); Keras: from building the models to the last step (TensorFlow's import excluded); "
    "the PyTorch loop: its loop. loop steps/s: ganforge's own training clock (elapsed_s at its "
    f"last log line), Keras after its first {WARM} steps (tracing), the PyTorch loop's loop"
)


# --- The seeds' Keras code, written out ------------------------------------------------------


def keras_seed_loop(
    seconds: float, as_written: bool = False, seed: int = 0, threads: int | None = None
) -> dict[str, Any]:
    """The seeds' Keras MNIST MLP GAN, trained until ``seconds`` have passed (the clock starts
    before the models are built). Returns G's weights in Keras' order, the probe z and G's output
    on it in inference mode, and what the run did."""
    # Imported here: TensorFlow is an optional extra, needed by this child process alone.
    import keras
    import tensorflow as tf
    from keras import layers
    from keras.optimizers import Adam

    if threads:
        tf.config.threading.set_intra_op_parallelism_threads(threads)
        tf.config.threading.set_inter_op_parallelism_threads(threads)
    keras.utils.set_random_seed(seed)  # Python, NumPy and TensorFlow
    img_shape = (28, 28, 1)
    x_train = course_images().numpy().reshape(-1, *img_shape)  # [5000, 28, 28, 1] in [-1, 1]

    start = time.perf_counter()

    def build_generator() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input((LATENT,)),
                layers.Dense(128),
                layers.LeakyReLU(0.2),
                layers.BatchNormalization(momentum=0.8),
                layers.Dense(256),
                layers.LeakyReLU(0.2),
                layers.BatchNormalization(momentum=0.8),
                layers.Dense(512),
                layers.LeakyReLU(0.2),
                layers.BatchNormalization(momentum=0.8),
                layers.Dense(int(np.prod(img_shape)), activation="tanh"),
                layers.Reshape(img_shape),
            ]
        )

    def build_discriminator() -> keras.Model:
        return keras.Sequential(
            [
                keras.Input(img_shape),
                layers.Flatten(),
                layers.Dense(512),
                layers.LeakyReLU(0.2),
                layers.Dense(256),
                layers.LeakyReLU(0.2),
                layers.Dense(1, activation="sigmoid"),
            ]
        )

    optimizer = Adam(2e-4, 0.5)
    discriminator = build_discriminator()
    discriminator.compile(loss="binary_crossentropy", optimizer=optimizer, metrics=["accuracy"])
    generator = build_generator()
    z = keras.Input((LATENT,))
    img = generator(z)
    discriminator.trainable = False  # the seeds: "for the combined model we will only train G"
    validity = discriminator(img)
    combined = keras.Model(z, validity)
    # Keras 3 binds an optimiser to the variables it first updates: sharing the seeds' one Adam
    # works only while D never trains (as written); the fix gives the combined model its own.
    combined.compile(
        loss="binary_crossentropy", optimizer=optimizer if as_written else Adam(2e-4, 0.5)
    )
    d_initial = [w.copy() for w in discriminator.get_weights()]

    valid = np.ones((BATCH, 1))
    fake = np.zeros((BATCH, 1))
    steps = 0
    acc_real: list[float] = []
    acc_fake: list[float] = []
    warm = 0.0  # the clock at step WARM: the first calls trace and compile the models
    while time.perf_counter() - start < seconds:
        # (1) train D: a random real batch with targets 1, then G's fakes with targets 0
        idx = np.random.randint(0, x_train.shape[0], BATCH)
        imgs = x_train[idx]
        noise = np.random.normal(0, 1, (BATCH, LATENT))
        # verbose=0: the seeds leave Keras' default, a progress bar printed per call
        gen_imgs = generator.predict(noise, verbose=0)
        if not as_written:
            discriminator.trainable = True
        d_loss_real = discriminator.train_on_batch(imgs, valid)
        d_loss_fake = discriminator.train_on_batch(gen_imgs, fake)
        if not as_written:
            discriminator.trainable = False
        # (2) train G through the frozen D, on fresh noise, with targets 1
        noise = np.random.normal(0, 1, (BATCH, LATENT))
        combined.train_on_batch(noise, valid)
        steps += 1
        if steps == WARM:
            warm = time.perf_counter() - start
        acc_real = [*acc_real[-99:], float(d_loss_real[1])]
        acc_fake = [*acc_fake[-99:], float(d_loss_fake[1])]
    took = time.perf_counter() - start

    d_moved = max(
        float(np.abs(a - b).max())
        for a, b in zip(d_initial, discriminator.get_weights(), strict=True)
    )
    probe = np.random.default_rng(seed + 1).standard_normal((PROBE, LATENT)).astype(np.float32)
    bn = [layer for layer in generator.layers if isinstance(layer, layers.BatchNormalization)]
    return {
        "steps": steps,
        "seconds": took,
        "loop_rate": (steps - WARM) / (took - warm) if steps > WARM else None,
        "as_written": as_written,
        "d_moved": d_moved,
        "d_acc_real": float(np.mean(acc_real)),
        "d_acc_fake": float(np.mean(acc_fake)),
        "bn_eps": [float(layer.epsilon) for layer in bn],
        "versions": f"TensorFlow {tf.__version__}, Keras {keras.__version__}",
        "weights": generator.get_weights(),
        "probe": probe,
        "probe_out": np.asarray(generator(probe, training=False)).reshape(PROBE, -1),
    }


def keras_child(
    out: Path, seconds: float, as_written: bool, seed: int, threads: int | None
) -> None:
    """Run ``keras_seed_loop`` (in the child) and leave its results in ``out`` (.npz + .json)."""
    r = keras_seed_loop(seconds, as_written, seed, threads)
    arrays = {f"w{i:03d}": w for i, w in enumerate(r.pop("weights"))}
    np.savez(out.with_suffix(".npz"), probe=r.pop("probe"), probe_out=r.pop("probe_out"), **arrays)
    out.with_suffix(".json").write_text(json.dumps(r), encoding="utf-8")


def keras_side(
    seconds: float, out: Path, as_written: bool, seed: int, threads: int | None
) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """The Keras loop in a child process; its figures and arrays."""
    env = dict(
        os.environ,
        PYTHONPATH=str(ROOT / "src"),
        KERAS_BACKEND="tensorflow",
        TF_CPP_MIN_LOG_LEVEL="2",  # no start-up banners on stderr
    )
    cmd = [sys.executable, __file__, "--keras-child", str(out), "--seconds", str(seconds)]
    cmd += ["--seed", str(seed)] + (["--as-written"] if as_written else [])
    cmd += ["--threads", str(threads)] if threads else []
    subprocess.run(cmd, env=env, check=True)
    info = json.loads(out.with_suffix(".json").read_text(encoding="utf-8"))
    with np.load(out.with_suffix(".npz")) as f:
        arrays = {k: f[k] for k in f.files}
    return info, arrays


# --- Keras G -> ganforge's mnist-mlp G --------------------------------------------------------


@torch.no_grad()
def keras_to_torch(weights: list[np.ndarray], keras_eps: float = KERAS_BN_EPS) -> nn.Sequential:
    """The course's G (``throughput.course_generator``, the layers of ganforge's ``mnist-mlp``)
    holding the Keras G's weights, in Keras' order: per Dense kernel [in, out] and bias, per
    BatchNormalization gamma, beta, moving_mean, moving_variance.

    Eval mode computes ``(x - mean) / sqrt(var + eps)``; Keras' eps is 1e-3, PyTorch's 1e-5, so
    the variance is stored raised by the difference: the same numbers, without a new config key.
    """
    g = course_generator()
    it = iter(weights)

    def take() -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(next(it))).float()

    for m in g:
        if isinstance(m, nn.Linear):
            m.weight.copy_(take().T)  # [in, out] -> [out, in]
            m.bias.copy_(take())
        elif isinstance(m, nn.BatchNorm1d):
            assert m.running_mean is not None and m.running_var is not None
            m.weight.copy_(take())
            m.bias.copy_(take())
            m.running_mean.copy_(take())
            m.running_var.copy_(take() + (keras_eps - m.eps))
    if next(it, None) is not None:
        raise AssertionError("the Keras G has more weights than the course's G")
    return g.eval()


@torch.no_grad()
def check_conversion(g: nn.Module, probe: np.ndarray, probe_out: np.ndarray) -> float:
    """Max |G(z) - Keras G(z)| on the probe z, eval mode; raises above ``TOLERANCE``."""
    ours = g.eval()(torch.from_numpy(probe)).reshape(len(probe), -1)
    diff = float((ours - torch.from_numpy(probe_out)).abs().max())
    if diff > TOLERANCE:
        raise AssertionError(f"converted G differs from the Keras G by {diff:.2e}")
    return diff


# --- The table --------------------------------------------------------------------------------


def markdown_table(rows: dict[str, dict[str, Any]]) -> str:
    head = "| side | steps | seconds | steps/s | loop steps/s | FID [95 %] | real floor "
    head += "| precision | recall | class KL |\n|---|---:|---:|---:|---:|---|---:|---:|---:|---:|"
    lines = [head]
    for name, r in rows.items():
        m = r["eval"]["metrics"]
        lines.append(
            f"| {name} | {r['steps']:,} | {r['seconds']:.0f} | {r['steps'] / r['seconds']:.1f} "
            f"| {'-' if r.get('loop_rate') is None else format(r['loop_rate'], '.1f')} "
            f"| {cell(m['fid'])} | {m['fid']['floor']:.3g} | {m['precision']['value']:.3f} "
            f"| {m['recall']['value']:.3f} | {m['class_kl']['value']:.4f} |"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--seconds", type=float, default=120.0, help="training wall time a side")
    p.add_argument("--sides", default=",".join(SIDES), help=f"comma-separated: {', '.join(SIDES)}")
    p.add_argument("--as-written", action="store_true", help="Keras: D frozen once, as written")
    p.add_argument("--threads", type=int, default=None, help="threads of every side")
    p.add_argument("--seed", type=int, default=0, help="seed of every side's training")
    p.add_argument("--n", type=int, default=None, help="samples evaluated (default 5000)")
    p.add_argument("--real", default=None, help="real set (default: the MNIST test set)")
    p.add_argument("--bootstrap", type=int, default=100)
    p.add_argument("--out", type=Path, default=None, help="keep the run folders here")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument("--keras-child", type=Path, default=None, help=argparse.SUPPRESS)
    args = p.parse_args(argv)
    if args.keras_child:
        keras_child(args.keras_child, args.seconds, args.as_written, args.seed, args.threads)
        return 0
    sides = [s.strip() for s in args.sides.split(",") if s.strip()]
    if not sides or any(s not in SIDES for s in sides):
        p.error(f"--sides: choose from {', '.join(SIDES)}")
    if args.threads:
        torch.set_num_threads(args.threads)
    notes: list[str] = []
    if "keras" in sides and importlib.util.find_spec("tensorflow") is None:
        sides = [s for s in SIDES if s != "keras"]  # ganforge against the written-out loop
        notes.append(NO_TENSORFLOW)
        print(NO_TENSORFLOW, file=sys.stderr)
    real = args.real or (str(MNIST_TEST) if MNIST_TEST.is_dir() else "mnist5k")
    n = args.n or (5000 if real != "mnist5k" else 2500)

    check_same_maths(args.seed)  # the course's G, into which Keras' is converted, is mnist-mlp's
    with tempfile.TemporaryDirectory(prefix="ganforge-parity-") as tmp:
        base = args.out or Path(tmp)
        base.mkdir(parents=True, exist_ok=True)
        rows: dict[str, dict[str, Any]] = {}
        for side in sides:
            print(f"{side}: training for {args.seconds:.0f} s", file=sys.stderr)
            if side == "keras":
                info, arrays = keras_side(
                    args.seconds, base / "keras-out", args.as_written, args.seed, args.threads
                )
                weights = [arrays[k] for k in sorted(arrays) if k.startswith("w")]
                if set(info["bn_eps"]) != {KERAS_BN_EPS}:
                    raise AssertionError(f"Keras BatchNormalization epsilon {info['bn_eps']}")
                g = keras_to_torch(weights)
                diff = check_conversion(g, arrays["probe"], arrays["probe_out"])
                store_reference(g, info["steps"], base / side)
                # the run folder's G, as evaluate_run loads it, must still be the Keras G
                stored = check_conversion(
                    load_generator(base / side), arrays["probe"], arrays["probe_out"]
                )
                name = "Keras seeds, as written" if args.as_written else "Keras seeds, D fixed"
                rows[name] = {**info, "side": side}
                notes.append(AS_WRITTEN if args.as_written else FIXED)
                notes.append(
                    f"{name} ({info['versions']}): D's weights moved by at most "
                    f"{info['d_moved']:.3g} from their initial values; D's accuracy over the last "
                    f"100 steps {info['d_acc_real']:.2f} on real, {info['d_acc_fake']:.2f} on "
                    f"fake; converted G within {max(diff, stored):.1e} of the Keras G on "
                    f"{PROBE} z (eval mode)"
                )
            elif side == "ganforge":
                extra = [f"train.threads={args.threads}"] if args.threads else []
                cmd = ["--preset", "mnist-mlp", "--steps", "1000000", "train.d_update=split"]
                cmd += ["train.seed=" + str(args.seed), *extra]
                took = train_for(args.seconds, base / side, cmd)
                logged = list(RunFolder(base / side).metrics())  # a line every 100 steps
                rows["ganforge mnist-mlp, d_update=split"] = {
                    "seconds": took,
                    "loop_rate": logged[-1]["step"] / logged[-1]["elapsed_s"] if logged else None,
                    "side": side,
                }
            else:
                # its clock: the loop alone, stopped at the first step past --seconds
                g, steps = reference_for(args.seconds, seed=args.seed)
                store_reference(g, steps, base / side)
                rows["course's PyTorch loop"] = {
                    "steps": steps,
                    "seconds": args.seconds,
                    "loop_rate": steps / args.seconds,
                    "side": side,
                }
        for name, row in rows.items():
            print(f"evaluating {name}", file=sys.stderr)
            row["eval"] = evaluate_run(
                base / row["side"], n=n, real=real, bootstrap=args.bootstrap, seed=0
            )
            row.setdefault("steps", row["eval"]["step"])

        print(f"n = {n} samples against {real}; 95 % bootstrap intervals; batch {BATCH}\n")
        print(markdown_table(rows))
        print()
        notes.append(CLOCKS)
        for note in notes:
            print(f"- {note}")
        rate = {r["side"]: r["steps"] / r["seconds"] for r in rows.values()}
        fid = {r["side"]: r["eval"]["metrics"]["fid"]["value"] for r in rows.values()}
        for other in ("keras", "reference"):
            if "ganforge" in rate and other in rate:
                print(
                    f"- ganforge / {other}: {rate['ganforge'] / rate[other]:.2f}x the steps/s, "
                    f"FID ratio {fid['ganforge'] / fid[other]:.2f}"
                )
        print(f"\ncommand: python bench/seed_parity.py {' '.join(argv or sys.argv[1:])}".rstrip())
        if args.json:
            args.json.write_text(json.dumps({"rows": rows, "notes": notes}, indent=2) + "\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
