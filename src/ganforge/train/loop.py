"""The training loop: schedule, logging, samples, checkpoints, resume. The maths is in step.py."""

from __future__ import annotations

import json
import math
import random
import signal
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ganforge import checkpoint, nets
from ganforge.config import Config
from ganforge.data import BatchSampler, Dataset, load_dataset
from ganforge.errors import ConfigError, GanforgeError
from ganforge.losses import LOSSES
from ganforge.report.plots import loss_plot, samples_png
from ganforge.sample import generate
from ganforge.train import device as devices
from ganforge.train import distributed, snapshots
from ganforge.train.run import RunFolder, default_out
from ganforge.train.step import GANStep

# Keys a resumed run may change: they do not alter the maths of the steps already taken.
RESUMABLE_KEYS = frozenset(
    {
        "train.steps",
        "train.log_every",
        "train.sample_every",
        "train.ckpt_every",
        "train.keep_ckpts",
        "train.snapshot_every",
        "train.tensorboard",
        "train.threads",
        "train.device",
        "train.channels_last",
        "train.cudnn_benchmark",
        "train.compile",
    }
)
# Fields of metrics.jsonl that measure the clock, not the maths (excluded from determinism).
TIMING_KEYS = ("img_per_s", "elapsed_s")


@dataclass
class Result:
    run: Path
    step: int
    interrupted: bool
    last: dict[str, float]


def load_data(cfg: Config) -> Dataset:
    d = cfg.data
    return load_dataset(
        d.source,
        image_size=d.image_size or None,
        channels=d.channels or None,
        download=d.download,
        root=d.root or None,
        limit=d.limit or None,
        skip_bad=d.skip_bad,
    )


def build_step(cfg: Config, shape: tuple[int, ...], device: torch.device) -> GANStep:
    """G, D, both Adams and the objective, on ``device``; weights drawn from torch's RNG."""
    g, d = nets.build(cfg.model, shape)
    g, d = g.to(device), d.to(device)
    o = cfg.optim
    # fused: the whole Adam update in one kernel per parameter, on CPU as on GPU (torch >= 2.4);
    # measured 4x faster than the default for-loop Adam for the course's model on CPU.
    opt_g = torch.optim.Adam(g.parameters(), lr=o.lr_g, betas=o.betas_g, fused=True)
    opt_d = torch.optim.Adam(d.parameters(), lr=o.lr_d, betas=o.betas_d, fused=True)
    return GANStep(g, d, opt_g, opt_d, LOSSES[cfg.train.loss], cfg.model.latent_dim)


def seed_everything(seed: int) -> None:
    torch.manual_seed(seed)
    np.random.seed(seed)
    random.seed(seed)


def fixed_noise(cfg: Config, device: torch.device) -> torch.Tensor:
    """The z of every sample grid, from its own generator: the same for the whole run."""
    gen = torch.Generator().manual_seed(cfg.train.seed)
    return torch.randn(cfg.train.n_samples, cfg.model.latent_dim, generator=gen).to(device)


class _StopFlag:
    """Turns SIGINT into a request to stop at the end of the current step."""

    def __init__(self, patient: bool = False) -> None:
        self.requested = False
        self.patient = patient  # under torchrun, whose agent passes the terminal's SIGINT on

    def __call__(self, signum: int, frame: FrameType | None) -> None:
        if self.requested and not self.patient:  # a second Ctrl-C: the user means it
            raise KeyboardInterrupt
        self.requested = True


@contextmanager
def _sigint_stops(flag: _StopFlag) -> Iterator[None]:
    try:
        previous = signal.signal(signal.SIGINT, flag)
    except ValueError:  # not the main thread: leave signals alone
        yield
        return
    try:
        yield
    finally:
        signal.signal(signal.SIGINT, previous)


class _Display:
    """A rich progress bar on a terminal; one plain line per sample interval otherwise."""

    def __init__(self, total: int, start: int, quiet: bool, every: int) -> None:
        self.console = Console(stderr=True)
        self.quiet = quiet
        self.every = every
        self.live = not quiet and self.console.is_terminal
        self.progress: Progress | None = None
        if self.live:
            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                TextColumn("step {task.completed}/{task.total}"),
                TextColumn("{task.fields[stats]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.progress.add_task("train", total=total, completed=start, stats="")
            self.progress.start()

    def update(self, step: int, row: dict[str, float] | None) -> None:
        text = _stats_text(row) if row else None
        if self.progress is not None:
            if text:
                self.progress.update(self.task, completed=step, stats=text)
            else:
                self.progress.update(self.task, completed=step)
        elif text and not self.quiet and step % self.every == 0:
            self.console.print(f"step {step}: {text}", highlight=False)

    def print(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _stats_text(row: dict[str, float]) -> str:
    return (
        f"L_D {row['loss_d']:.3f}  L_G {row['loss_g']:.3f}  "
        f"D(x) {row['d_real']:.2f}  D(G(z)) {row['d_fake']:.2f}"
    )


def prepare(
    cfg: Config, out: Path | None, resume: Path | None, overrides: dict[str, Any] | None
) -> tuple[Config, RunFolder]:
    """The config and run folder of a new or resumed run, checked before any work is done."""
    if resume is None:
        return cfg, RunFolder(out or default_out(cfg.preset))
    run = RunFolder(resume)
    saved = run.read_config()
    for key, value in (overrides or {}).items():
        if key not in RESUMABLE_KEYS:
            raise ConfigError(f"{key} cannot change when resuming a run (it changes the maths)")
        section, name = key.split(".")
        setattr(getattr(saved, section), name, value)
    run.latest_checkpoint()  # fails early, with one line, if there is nothing to resume
    return saved, run


class Trainer:
    """One run: data, G and D, their optimisers, the sampler and the run folder."""

    def __init__(self, cfg: Config, run: RunFolder, quiet: bool = False) -> None:
        t = cfg.train
        self.dist = d = distributed.current()  # rank 0 of 1 unless under torchrun
        self.cfg, self.run, self.quiet = cfg, run, quiet or not d.is_main
        self.device = devices.resolve(t.device, d.local_rank)
        devices.configure(self.device, t.precision, t.cudnn_benchmark)
        if threads := devices.threads_per_process(t.threads, d.local_world):
            torch.set_num_threads(threads)
        # before the folder exists: bad data leaves nothing behind (rank 0 first: one download)
        self.data = distributed.main_first(lambda: load_data(cfg), d)
        global_batch = t.batch_size * d.world  # each rank takes its slice of every batch
        if global_batch > len(self.data):
            ranks = f" x {d.world} ranks" if d.enabled else ""
            raise ConfigError(
                f"train.batch_size={t.batch_size}{ranks} exceeds the {len(self.data)} samples"
            )
        if self.data.kind == "points" and cfg.model.g_out == "tanh" and self.data.x.abs().max() > 1:
            raise ConfigError(
                "the points lie outside [-1, 1], which tanh cannot reach: set model.g_out=linear"
            )
        seed_everything(t.seed)
        self.gan = build_step(cfg, self.data.sample_shape, self.device)
        self.modules = {"G": self.gan.G, "D": self.gan.D}  # plain: checkpoints and samples
        self.optimizers = {"opt_g": self.gan.opt_g, "opt_d": self.gan.opt_d}
        note = devices.accelerate(self.gan, t, self.device, d)  # DDP, autocast, ... when asked
        if note and not self.quiet:
            print(f"ganforge: {note}", file=sys.stderr)
        self.sampler = BatchSampler(len(self.data), global_batch, t.seed)
        self.batches = devices.DeviceBatches(self.data, self.device, t.channels_last)
        self.z_fixed = fixed_noise(cfg, self.device)
        self.meter = _Meter(global_batch * t.d_steps)
        self.step = 0
        self.writer: Any = None

    def restore(self) -> None:
        """Continue from the run's newest checkpoint: weights, optimisers, RNGs, data order."""
        tensors, meta = checkpoint.read(self.run.latest_checkpoint())
        if meta.get("model") != _jsonable(self.cfg.to_dict()["model"]):
            raise GanforgeError(f"{self.run.path}: the checkpoint was made by another architecture")
        if (world := meta.get("world_size", 1)) != self.dist.world:
            raise GanforgeError(
                f"{self.run.path} was trained by {world} process(es); resume it with as many "
                f"(this is {self.dist.world})"
            )
        checkpoint.restore(tensors, meta, modules=self.modules, optimizers=self.optimizers)
        self.sampler.load_state_dict(checkpoint.subset(tensors, "sampler") | meta["sampler"])
        self.meter.load_state_dict(checkpoint.subset(tensors, "meter"), meta["meter"])
        devices.restore_cuda_rng(tensors, meta, self.device)
        self.step = int(meta["step"])
        distributed.on_main(lambda: self.run.truncate_metrics(self.step), self.dist)

    def save_checkpoint(self) -> None:
        if not self.dist.is_main:
            return
        run, s = self.run, self.sampler
        run.checkpoints.mkdir(exist_ok=True)
        checkpoint.save(
            checkpoint.path_for(run.checkpoints, self.step),
            step=self.step,
            modules=self.modules,
            optimizers=self.optimizers,
            extra_tensors={
                "sampler.generator": s.generator.get_state(),
                "sampler.perm": s.perm,
                **{f"meter.{k}": v for k, v in self.meter.sums.items()},
            },
            meta={
                "meter": self.meter.counters(),
                "model": self.cfg.to_dict()["model"],
                "data_shape": list(self.data.sample_shape),
                "sampler": {"pos": s.pos, "epoch": s.epoch},
                "world_size": self.dist.world,
                "rng_cuda_device": self.device.index,  # None on CPU
            },
        )
        checkpoint.prune(run.checkpoints, self.cfg.train.keep_ckpts)

    def save_samples(self) -> None:
        if not self.dist.is_main:
            return
        x = generate(self.modules["G"], self.z_fixed)
        samples_png(x, self.run.sample_path(self.step))
        if self.writer is not None and x.ndim == 4:
            self.writer.add_images("samples", (x + 1) / 2, self.step)

    def log(self, row: dict[str, float]) -> None:
        if not self.dist.is_main:
            return
        self.run.append_metrics(row)
        if self.writer is not None:
            for k, v in row.items():
                if k != "step":
                    self.writer.add_scalar(k, v, self.step)

    def fit(self) -> Result:
        """Train to ``train.steps``; Ctrl-C stops after the current step with a checkpoint."""
        t = self.cfg.train
        if t.tensorboard:
            self.writer = _tensorboard(self.run)
        if self.step == 0:
            self.save_samples()
            if t.snapshot_every and self.dist.is_main:
                snapshots.save(self.run.path, 0, None, self.modules["G"], self.modules["D"])
        display = _Display(t.steps, self.step, self.quiet, t.sample_every)
        flag = _StopFlag(patient=self.dist.enabled)
        meter = self.meter
        meter.start()
        last: dict[str, float] = {}
        try:
            with _sigint_stops(flag):
                while self.step < t.steps:
                    self.step += 1
                    step = self.step
                    log_now = step % t.log_every == 0 or step == t.steps
                    reals = [
                        self.batches.get(distributed.shard(self.sampler.next(), self.dist))
                        for _ in range(t.d_steps)
                    ]
                    snap = self.dist.is_main and snapshots.due(step, t.snapshot_every, t.steps)
                    g_pre = snapshots.copy_state(self.modules["G"]) if snap else None
                    stats = self.gan(reals, measure=log_now)
                    if snap:
                        snapshots.save(
                            self.run.path, step, g_pre, self.modules["G"], self.modules["D"]
                        )
                    meter.add(stats)
                    row = None
                    if log_now:
                        row = last = meter.row(step, stats)
                        self.log(row)
                    if step % t.sample_every == 0 or step == t.steps:
                        self.save_samples()
                    # Read the flag once: a Ctrl-C arriving after this line stops the run one
                    # step later, never between the check and the checkpoint it asks for.
                    stop = flag.requested
                    if self.dist.enabled:  # all ranks stop at one step: they agree at log steps
                        stop = log_now and distributed.any_across(stop, self.dist)
                    if step % t.ckpt_every == 0 or step == t.steps or stop:
                        self.save_checkpoint()
                    display.update(step, row)
                    if stop:
                        break
        finally:
            display.close()
            if self.writer is not None:
                self.writer.close()
        if self.dist.is_main:
            write_loss_plot(self.run, self.cfg)
        stopped = self.step < t.steps
        if stopped:
            display.print(
                f"stopped at step {self.step}: checkpoint written; continue with "
                f"`ganforge train --resume {self.run.path}`"
            )
        return Result(self.run.path, self.step, stopped, last)


class _Meter:
    """Sums the step's scalars between log lines without reading them (no host sync)."""

    MEANS = ("loss_d", "loss_g", "d_real", "d_fake")

    def __init__(self, samples_per_step: int) -> None:
        self.samples_per_step = samples_per_step
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.elapsed = 0.0  # training seconds before this process (a resumed run's past)
        self.start()

    def start(self) -> None:
        self.t0 = self.clock = time.perf_counter()
        self.timed = 0  # steps since ``clock``

    def counters(self) -> dict[str, float]:
        """What a checkpoint keeps besides the sums: a resumed interval averages like the
        uninterrupted one, and ``elapsed_s`` goes on counting."""
        return {"count": self.count, "elapsed": self.elapsed + time.perf_counter() - self.t0}

    def load_state_dict(self, sums: dict[str, torch.Tensor], counters: dict[str, float]) -> None:
        self.sums, self.count, self.elapsed = (
            dict(sums),
            int(counters["count"]),
            counters["elapsed"],
        )

    def add(self, stats: dict[str, torch.Tensor]) -> None:
        for k in self.MEANS:
            self.sums[k] = self.sums[k] + stats[k] if k in self.sums else stats[k]
        self.count += 1
        self.timed += 1

    def row(self, step: int, stats: dict[str, torch.Tensor]) -> dict[str, float]:
        """The metrics.jsonl line: interval means, this step's gradient norms, throughput."""
        now = time.perf_counter()
        row: dict[str, float] = {"step": step}
        sums = distributed.mean_across(self.sums, distributed.current())  # over ranks
        row |= {k: v.item() / self.count for k, v in sums.items()}
        row |= {"grad_d": stats["grad_d"].item(), "grad_g": stats["grad_g"].item()}
        row["img_per_s"] = self.timed * self.samples_per_step / (now - self.clock)
        row["elapsed_s"] = self.elapsed + now - self.t0
        _check_finite(row, step)
        self.sums, self.count, self.timed, self.clock = {}, 0, 0, now
        return row


def train(
    cfg: Config,
    out: Path | None = None,
    *,
    resume: Path | None = None,
    resume_overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> Result:
    """Train ``cfg`` into a new run folder ``out``, or continue the run at ``resume``."""
    cfg, run = prepare(cfg, out, resume, resume_overrides)
    # Under torchrun: join the process group; rank 0 alone writes the run folder.
    device = devices.resolve(cfg.train.device, distributed.from_env().local_rank)
    with distributed.session(device) as d:
        trainer = Trainer(cfg, run, quiet)
        if resume is None:
            distributed.on_main(lambda: run.prepare_new(overwrite), d)
        else:
            trainer.restore()
        distributed.on_main(lambda: run.write_config(cfg), d)  # on resume: a new step budget
        result = trainer.fit()
        distributed.barrier(d)  # no rank leaves while rank 0 writes the last files
    return result


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _check_finite(row: dict[str, float], step: int) -> None:
    bad = [k for k, v in row.items() if not math.isfinite(v)]
    if bad:
        raise GanforgeError(
            f"training diverged at step {step}: {', '.join(bad)} is not finite "
            "(the last checkpoint is kept; try a lower learning rate)"
        )


def write_loss_plot(run: RunFolder, cfg: Config) -> None:
    rows = list(run.metrics())
    if not rows:
        return
    steps = [int(r["step"]) for r in rows]
    series: dict[str, Sequence[float]] = {
        "L_D": [r["loss_d"] for r in rows],
        "L_G": [r["loss_g"] for r in rows],
    }
    loss_plot(
        steps,
        series,
        run.path / "loss.png",
        f"{cfg.preset}: {cfg.train.loss} loss, batch {cfg.train.batch_size}",
    )


def _tensorboard(run: RunFolder) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GanforgeError(
            "--tensorboard needs the tensorboard package: pip install 'ganforge[tensorboard]'"
        ) from None
    return SummaryWriter(str(run.path / "tb"))
