"""The training loop: schedule, logging, samples, checkpoints, resume. The maths is in step.py.

Helpers decide, the loop acts: the guard says stop or roll back (guard.py), the schedules say
which stage, which rate (schedule.py); the loop carries it out. The report is the command's.
"""

from __future__ import annotations

import dataclasses
import json
import math
import random
import signal
import sys
import time
import warnings
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from types import FrameType
from typing import Any

import numpy as np
import torch
from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, Progress, TextColumn, TimeRemainingColumn

from ganforge import checkpoint, nets, snapshots
from ganforge.config import Config, DiagnoseConfig, OptimConfig, set_value
from ganforge.data import BatchSampler, Dataset, check_labels, from_config
from ganforge.diagnose import Watch, mode_counter
from ganforge.errors import ConfigError, DivergedError, GanforgeError
from ganforge.evaluation import FidProbe
from ganforge.losses import LOSSES
from ganforge.nets.conditional import sampling_labels
from ganforge.nets.layers import standardise
from ganforge.nets.progressive import START, fade_reals, n_stages
from ganforge.plots import loss_plot, samples_png
from ganforge.runs import RunFolder, default_out
from ganforge.train import calibrate, distributed
from ganforge.train import device as devices
from ganforge.train.guard import NonFiniteGuard, Rollback, Stop, reseed
from ganforge.train.schedule import (
    Growth,
    GrowthState,
    Horizon,
    growing,
    growth_at,
    lr_factor,
    lr_factor_on_clock,
    resume_note,
    stage_at,
)
from ganforge.train.step import GRADS, STATS, GANStep, make_switches

# Keys a resumed run may change: they do not alter the maths of the steps already taken.
RESUMABLE_KEYS = frozenset(
    {
        "train.steps",
        "train.seconds",
        "train.log_every",
        "train.sample_every",
        "train.ckpt_every",
        "train.ckpt_seconds",
        "train.keep_ckpts",
        "train.snapshot_every",
        "train.tensorboard",
        "train.threads",
        "train.device",
        "train.channels_last",
        "train.cudnn_benchmark",
        "train.compile",
        *(f"diagnose.{f.name}" for f in dataclasses.fields(DiagnoseConfig)),
        "train.on_nonfinite",
        "train.max_rollbacks",
    }
)
# Fields of metrics.jsonl that measure the clock, not the maths (excluded from determinism).
TIMING_KEYS = ("img_per_s", "elapsed_s")


@dataclass
class Result:
    run: Path
    step: int
    interrupted: bool
    last: dict[str, Any]


def assemble(
    cfg: Config, shape: tuple[int, ...], device: torch.device, dist: distributed.Dist | None = None
) -> tuple[GANStep, str | None]:
    """The step for ``cfg``: G, D (weights drawn from torch's RNG), both Adams, the objective,
    the switches, and the modules it runs on ``device`` (``devices.runtime``); and a one-line
    note for the user, or None."""
    g, d = nets.build(cfg.model, shape)
    g, d = g.to(device), d.to(device)
    o = cfg.optim
    # fused: the whole Adam update in one kernel per parameter, on CPU as on GPU (torch >= 2.4);
    # measured 4x faster than the default for-loop Adam for the course's model on CPU.
    opt_g = torch.optim.Adam(g.parameters(), lr=o.lr_g, betas=o.betas_g, fused=True)
    opt_d = torch.optim.Adam(d.parameters(), lr=o.lr_d, betas=o.betas_d, fused=True)
    loss = LOSSES[cfg.train.loss]
    switches = make_switches(cfg, g, d, loss, shape)
    rt = devices.runtime(g, d, cfg.train, device, dist or distributed.Dist())
    step = GANStep(
        rt.G, rt.D, opt_g, opt_d, loss, cfg.model.latent_dim, switches, shard=rt.shard, amp=rt.amp
    )
    return step, rt.note


def build_step(cfg: Config, shape: tuple[int, ...], device: torch.device) -> GANStep:
    """``assemble``'s step, in one process."""
    return assemble(cfg, shape, device)[0]


def set_lr(gan: GANStep, optim: OptimConfig, factor: float) -> None:
    """Both Adams' rates at ``factor`` times the configured ones (every parameter group)."""
    for opt, base in ((gan.opt_g, optim.lr_g), (gan.opt_d, optim.lr_d)):
        for group in opt.param_groups:
            group["lr"] = base * factor


def real_reference(data: Dataset, n: int, seed: int) -> torch.Tensor:
    """``n`` real samples, the same for the whole run, drawn without touching torch's RNG: the
    diversity of the fixed-z samples is measured against theirs."""
    idx = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))[:n]
    return data.batch(idx)


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

    def __init__(
        self, total: int, start: int, quiet: bool, every: int, seconds: float = 0.0
    ) -> None:
        """A bar over the steps, or over the seconds of a run on the clock (``seconds``)."""
        self.console = Console(stderr=True)
        self.quiet = quiet
        self.every = every
        self.seconds = seconds
        self.live = not quiet and self.console.is_terminal
        self.progress: Progress | None = None
        if self.live:
            count = (
                "{task.fields[step]} steps" if seconds else "step {task.fields[step]}/{task.total}"
            )
            self.progress = Progress(
                TextColumn("[bold]train"),
                BarColumn(),
                TextColumn(count),
                TextColumn("{task.fields[stats]}"),
                TimeRemainingColumn(),
                console=self.console,
            )
            self.task = self.progress.add_task(
                "train", total=seconds or total, completed=0 if seconds else start, step=start,
                stats="",
            )  # fmt: skip
            self.progress.start()

    def update(self, step: int, row: dict[str, Any] | None, elapsed: float = 0.0) -> None:
        """After ``step``, ``elapsed`` seconds of training into the run."""
        text = _stats_text(row) if row else None
        if self.progress is not None:
            done = min(elapsed, self.seconds) if self.seconds else step
            fields: dict[str, Any] = {"stats": text} if text else {}
            self.progress.update(self.task, completed=done, step=step, **fields)
        elif text and not self.quiet and step % self.every == 0:
            self.console.print(f"step {step}: {text}", highlight=False)

    def print(self, text: str) -> None:
        if not self.quiet:
            self.console.print(text, highlight=False)

    def close(self) -> None:
        if self.progress is not None:
            self.progress.stop()


def _stats_text(row: dict[str, Any]) -> str:
    fid = f"  FID {row['fid']:.2f}" if "fid" in row else ""
    return (
        f"L_D {row['loss_d']:.3f}  L_G {row['loss_g']:.3f}  "
        f"D(x) {row['d_real']:.2f}  D(G(z)) {row['d_fake']:.2f}{fid}"
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
        set_value(saved, key, value)
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
        self.data = distributed.main_first(lambda: from_config(cfg.data), d)
        check_stage_batch(cfg, self.data.sample_shape)
        sizes = t.stage_batch or (t.batch_size,)  # per rank: each rank takes its slice
        key = "train.stage_batch" if t.stage_batch else "train.batch_size"
        if max(sizes) * d.world > len(self.data):
            ranks = f" x {d.world} ranks" if d.enabled else ""
            raise ConfigError(f"{key}={max(sizes)}{ranks} exceeds the {len(self.data)} samples")
        if self.data.kind == "points" and cfg.model.g_out == "tanh" and self.data.x.abs().max() > 1:
            raise ConfigError(
                "the points lie outside [-1, 1], which tanh cannot reach: set model.g_out=linear"
            )
        if cfg.model.cond != "none":
            check_labels(self.data, cfg.model.num_classes)
        if t.filter_steps and self.data.kind != "points":
            raise ConfigError(
                "train.filter_steps fits the sampling filter's D for points data (1-D or 2-D); "
                f"{self.data.name} is images: set train.filter_steps=0"
            )
        if t.filter_nets > 1 and not t.filter_steps:
            raise ConfigError(
                f"train.filter_nets={t.filter_nets} averages fitted filter D's: it needs "
                "train.filter_steps > 0"
            )
        if bad := [b for b in sizes if b % cfg.model.pack]:  # each process packs its own slice
            raise ConfigError(
                f"model.pack={cfg.model.pack} needs {key} divisible by it, got {bad[0]}"
            )
        seed_everything(t.seed)
        self.gan, note = assemble(cfg, self.data.sample_shape, self.device, d)
        if note and not self.quiet:
            print(f"ganforge: {note}", file=sys.stderr)
        g, dis = devices.unwrap(self.gan.G), devices.unwrap(self.gan.D)
        _check_batchnorm(min(sizes), key, {"G": g, "D": dis})  # per process
        # plain modules: checkpoints and samples (G_ema, historical means: when switched on)
        self.modules = {"G": g, "D": dis, **self.gan.switches.modules()}
        if cfg.model.standardize:  # weights saved by a resumed run's checkpoint replace these
            standardise(self.modules.values(), self.data.x)
        self.optimizers = {"opt_g": self.gan.opt_g, "opt_d": self.gan.opt_d}
        self.sampler = BatchSampler(len(self.data), self.batch_at(1), t.seed)
        nhwc = t.channels_last and devices.is_convolutional(dis)  # the layout D reads
        self.batches = devices.DeviceBatches(self.data, self.device, nhwc)
        self.z_fixed = fixed_noise(cfg, self.device)
        self.y_fixed = sampling_labels(self.modules["G"], t.n_samples)  # a row per class
        self.meter = _Meter()
        self.watch = Watch(
            cfg.diagnose,
            real_reference(self.data, t.n_samples, t.seed),
            mode_counter(cfg.data.source, self.data.sample_shape),
        )
        self.guard = NonFiniteGuard(t.on_nonfinite, t.max_rollbacks, self.dist)
        self.horizon = Horizon(t.steps)  # of the schedules: train.steps when the run started
        # Everything else a checkpoint holds: one line per object with state_dict() and
        # load_state_dict() (see ganforge.checkpoint).
        self.states: dict[str, checkpoint.Stateful] = {
            "sampler": self.sampler,
            "meter": self.meter,
            "guard": self.guard,
        }
        self.growing = growing(self.modules)  # progressive nets (G, D, G's average)
        if self.growing:  # stage and fade-in alpha of a growing net
            self.states["growth"] = GrowthState(self.growing)
        if cfg.optim.decay_from < 1 or cfg.stab.instance_noise > 0:
            self.states["schedule"] = self.horizon
        self.step = 0
        self.settled_at: int | None = None  # the step G's average last got its statistics
        self.writer: Any = None
        self.last_ckpt_time = time.monotonic()
        # FID during training (train.eval_every), best checkpoint kept: the main process alone
        self.probe: FidProbe | None = None
        self.best_fid = math.inf
        if t.eval_every and self.dist.is_main:
            self.probe = FidProbe(self.data, t.eval_n, cfg.model.latent_dim, t.seed, self.device)

    def restore(self) -> None:
        """Continue from the run's newest intact checkpoint: weights, optimisers, RNGs, data
        order, and every named state (``self.states``)."""
        main = self.dist.is_main
        if main:
            checkpoint.clean_temporary(self.run.checkpoints)
        _, tensors, meta = checkpoint.load_latest(self.run.checkpoints, set_aside=main)
        if meta.get("model") != _jsonable(self.cfg.to_dict()["model"]):
            raise GanforgeError(f"{self.run.path}: the checkpoint was made by another architecture")
        if (world := meta.get("world_size", 1)) != self.dist.world:
            raise GanforgeError(
                f"{self.run.path} was trained by {world} process(es); resume it with as many "
                f"(this is {self.dist.world})"
            )
        checkpoint.restore(
            tensors, meta, modules=self.modules, optimizers=self.optimizers, states=self.states
        )
        devices.restore_cuda_rng(tensors, meta, self.device)
        self.step = self.gan.t = int(meta["step"])
        self.settled_at = None  # the checkpoint's average: settled again before it is used
        self.best_fid = self._best_fid()
        self.gan.switches.noise_steps = self.cfg.stab.noise_steps or self.horizon.steps
        if self.cfg.train.steps < self.step:
            raise ConfigError(
                f"train.steps={self.cfg.train.steps} is below the step {self.step} the run has "
                f"reached; pass --steps {self.step} or more"
            )
        distributed.on_main(lambda: self.run.truncate_metrics(self.step), self.dist)
        for row in self.run.metrics():  # the rules' memory: episodes already reported stay so
            self.watch.update(row)

    def _best_fid(self) -> float:
        """The FID of the run's best checkpoint (inf when there is none): a rollback or a
        resume to an older step checkpoint must not let a worse FID replace it."""
        meta = checkpoint.meta_of(self.run.best_checkpoint)
        return float(meta.get("best_fid", math.inf)) if meta else math.inf

    def settle_average(self) -> None:
        """Give G's moving average (``stab.ema``) BatchNorm statistics of its own weights before
        it is saved or draws samples; seeded by the run's seed and step, so that a resumed run
        saves what an uninterrupted one does. Once a step: a step's grid, FID and checkpoint
        share the statistics (no G update comes between them)."""
        g = self.modules.get("G_ema")
        if g is not None and self.settled_at != self.step:
            nets.recompute_batchnorm(g, seed=self.cfg.train.seed * 1_000_003 + self.step)
            self.settled_at = self.step

    def save_checkpoint(self, name: str | None = None) -> None:
        """The step's checkpoint, or one called ``name`` in the same folder (never pruned)."""
        if not self.dist.is_main:
            return
        self.settle_average()
        run = self.run
        run.checkpoints.mkdir(exist_ok=True)
        checkpoint.save(
            run.checkpoints / name if name else checkpoint.path_for(run.checkpoints, self.step),
            step=self.step,
            modules=self.modules,
            optimizers=self.optimizers,
            states=self.states,
            meta={
                "model": self.cfg.to_dict()["model"],
                "data_shape": list(self.data.sample_shape),
                "world_size": self.dist.world,
                "rng_cuda_device": self.device.index,  # None on CPU
                "best_fid": self.best_fid,
            },
        )
        if name is None:
            checkpoint.prune(run.checkpoints, self.cfg.train.keep_ckpts)
            self.last_ckpt_time = time.monotonic()

    def evaluate(self, row: dict[str, float]) -> None:
        """Add the FID of G's fixed-z samples to ``row``; keep the best checkpoint by it."""
        if self.probe is None:
            return
        self.settle_average()
        row["fid"] = self.probe(self.modules.get("G_ema", self.modules["G"]))  # as the samples
        if row["fid"] < self.best_fid:
            self.best_fid = row["fid"]
            self.save_checkpoint(self.run.best_checkpoint.name)

    def save_samples(self, path: Path | None = None) -> torch.Tensor | None:
        if not self.dist.is_main:
            return None
        y = None if self.y_fixed is None else self.y_fixed.to(self.device)
        self.settle_average()
        x = nets.generate(self.modules.get("G_ema", self.modules["G"]), self.z_fixed, y=y)
        samples_png(x, path or self.run.sample_path(self.step), y=self.y_fixed)
        if self.writer is not None and x.ndim == 4:
            self.writer.add_images("samples", (x + 1) / 2, self.step)
        return x

    def diagnose(self, row: dict[str, Any], fakes: torch.Tensor | None, display: _Display) -> None:
        """Add to a log line the diversity of this step's grid (when one was drawn) and the
        warnings whose episode starts here; say each one once, above the progress bar."""
        if not self.dist.is_main:  # one voice: the main process logs and warns
            return
        if fakes is not None:
            row |= self.watch.measure(fakes)
        found = self.watch.update(row)
        if found:
            row["warnings"] = [f.to_dict() for f in found]
        for f in found:
            display.print(f"[bold yellow]warning[/] {escape(f.text())}")
            if self.writer is not None:
                self.writer.add_text("warnings", f.text(), self.step)

    def log(self, row: dict[str, Any]) -> None:
        if not self.dist.is_main:
            return
        self.run.append_metrics(row)
        if self.writer is not None:
            for k, v in row.items():
                if k != "step" and isinstance(v, (int, float)):
                    self.writer.add_scalar(k, v, self.step)

    def rollback(self, r: Rollback) -> None:
        """Carry out the guard's ``Rollback``: the last good checkpoint, the failed steps'
        batches skipped, new noise."""
        self.restore()  # sets self.step to the checkpoint's, the guard's count to its own
        self.guard.rollbacks = r.count
        t = self.cfg.train
        for step in range(r.to_step + 1, r.problem.step + 1):  # the batches of steps to+1..bad
            self.sampler.batch_size = self.batch_at(step)
            for _ in range(t.d_steps):
                self.sampler.next()
        torch.manual_seed(reseed(t.seed, r.count, r.problem.step))
        self.meter.start()
        if self.dist.is_main:
            self.run.append_event(r.problem.event("rollback", to_step=r.to_step))
            warnings.warn(r.warning(self.guard.max_rollbacks), stacklevel=2)

    def fit(self) -> Result:
        """Train to ``train.steps``; Ctrl-C stops after the current step with a checkpoint."""
        t = self.cfg.train
        if t.tensorboard:
            self.writer = _tensorboard(self.run)
        if self.step == 0:
            self.save_samples()
            if t.snapshot_every and self.dist.is_main:
                snapshots.save(self.run.path, 0, None, self.modules["G"], self.modules["D"])
        display = _Display(t.steps, self.step, self.quiet, t.sample_every, t.seconds)
        flag = _StopFlag(patient=self.dist.enabled)
        meter = self.meter
        if t.on_nonfinite == "rollback" and self.run.latest_checkpoint_step() is None:
            self.save_checkpoint()  # somewhere to go back to
        meter.start()
        last: dict[str, Any] = {}
        began = time.perf_counter() - meter.elapsed  # train.seconds: a resumed run's past counts
        spent = False  # the clock ran out: this step is the run's last
        clock_share: float | None = None  # on the clock: the rates' share, read at log steps
        try:
            with _sigint_stops(flag):
                while self.step < t.steps and not spent:
                    self.step += 1
                    step = self.step
                    if t.seconds:  # decided before the step: its log, grid and checkpoint follow
                        spent = time.perf_counter() - began >= t.seconds
                        if self.dist.enabled:  # all ranks end at one step (a log step)
                            at_log = step % t.log_every == 0
                            spent = at_log and distributed.any_across(spent, self.dist)
                    final = step == t.steps or spent
                    eval_now = t.eval_every > 0 and step % t.eval_every == 0
                    log_now = step % t.log_every == 0 or final or eval_now
                    self.sampler.batch_size = self.batch_at(step)  # train.stage_batch
                    idx = [
                        distributed.shard(self.sampler.next(), self.dist) for _ in range(t.d_steps)
                    ]
                    reals = [self.batches.get(i) for i in idx]
                    labels = None  # a conditional run: the labels of the same samples
                    if self.y_fixed is not None and self.data.y is not None:
                        labels = [self.data.y[i].to(self.device) for i in idx]
                    if self.growing:  # stage and fade-in alpha of a growing net
                        growth = self.grow(step)  # the reals fade in as G's images do
                        reals = [fade_reals(x, growth.stage, growth.alpha) for x in reals]
                    snap = self.dist.is_main and snapshots.due(step, t.snapshot_every, t.steps)
                    g_pre = snapshots.copy_state(self.modules["G"]) if snap else None
                    if (o := self.cfg.optim).decay_from < 1:  # learning rates of this step
                        if not t.seconds:
                            share = lr_factor(step, self.horizon.steps, o.decay_from)
                        else:  # the horizon: the seconds, read at the first step and at log
                            # steps, where the ranks agree on them (their mean): every rank
                            # steps with the same rates
                            if log_now or clock_share is None:
                                took = torch.tensor(time.perf_counter() - began)
                                took = distributed.mean_across({"s": took}, self.dist)["s"]
                                clock_share = lr_factor_on_clock(
                                    float(took), t.seconds, o.decay_from
                                )
                            share = clock_share
                        set_lr(self.gan, o, share)
                    stats = self.gan(reals, measure=log_now, labels=labels)
                    self.guard.watch(step, stats)
                    # Read the flag once: a Ctrl-C arriving after this line stops the run one
                    # step later, never between the check and the checkpoint it asks for.
                    stop = flag.requested
                    timed = log_now and 0 < t.ckpt_seconds <= time.monotonic() - self.last_ckpt_time
                    if self.dist.enabled:  # all ranks stop at one step: they agree at log steps
                        stop = log_now and distributed.any_across(stop, self.dist)
                        timed = log_now and distributed.any_across(timed, self.dist)
                    sample_now = step % t.sample_every == 0 or final
                    ckpt_now = step % t.ckpt_every == 0 or final or stop or timed
                    verdict = None
                    if log_now or sample_now or ckpt_now:
                        verdict = self.guard.decide(
                            step,
                            stats,
                            self.modules,
                            weights=ckpt_now,
                            last_checkpoint=self.run.latest_checkpoint_step,
                        )
                    if isinstance(verdict, Rollback):
                        self.rollback(verdict)
                        spent = False  # the step it ended on is undone: one more to end on
                        continue  # self.step is the last good checkpoint's
                    if snap and verdict is None:
                        snapshots.save(
                            self.run.path, step, g_pre, self.modules["G"], self.modules["D"]
                        )
                    meter.add(stats, self.sampler.batch_size * t.d_steps)
                    row = None
                    fakes = self.save_samples() if sample_now and verdict is None else None
                    if log_now or verdict is not None:  # a stop logs what it saw, then stops
                        row = last = meter.row(step, stats)
                        if eval_now and verdict is None:
                            self.evaluate(row)
                        # measured on the schedule's grids only, not the extra one at the end of
                        # a budget: a run stopped and resumed logs what the whole run logs
                        self.diagnose(row, fakes if step % t.sample_every == 0 else None, display)
                        self.log(row)
                    if isinstance(verdict, Stop):
                        if self.dist.is_main:
                            self.run.append_event(verdict.problem.event("stop"))
                        raise DivergedError(verdict.message)
                    if ckpt_now:
                        self.save_checkpoint()
                    display.update(step, row, time.perf_counter() - began)
                    if stop:
                        break
        finally:
            display.close()
            if self.writer is not None:
                self.writer.close()
        stopped = self.step < t.steps and not spent
        if spent and self.growing and int(self.growing[0].stage) < self.growing[0].stages - 1:
            warnings.warn(
                f"train.seconds={t.seconds:g} ran out at step {self.step}, before the last "
                "resolution: the samples are at a lower one (raise train.seconds)",
                stacklevel=2,
            )
        if self.growing and not stopped:
            self.save_last_stage()
        if self.dist.is_main:
            if t.filter_steps and not stopped:
                self.fit_filter(display)
            write_loss_plot(self.run, self.cfg)
        if stopped:
            display.print(
                f"stopped at step {self.step}: checkpoint written; continue with "
                f"`ganforge train --resume {self.run.path}`"
            )
        return Result(self.run.path, self.step, stopped, last)

    def fit_filter(self, display: _Display) -> None:
        """Fit the sampling filter's D on the final G, held fixed (train/calibrate.py), and
        write it into the last checkpoint as ``D_filter``."""
        t = self.cfg.train
        self.settle_average()
        g = self.modules.get("G_ema", self.modules["G"])  # the G that samples
        k = t.filter_nets
        what = "its D" if k == 1 else f"{k} D's (their logits averaged)"
        display.print(f"sampling filter: fitting {what} on the final G, {t.filter_steps} steps")
        t0 = time.perf_counter()
        net, losses = calibrate.fit_mean(
            g, self.data.x, t.filter_steps, k, seed=t.seed, device=self.device
        )
        self.modules["D_filter"] = net
        self.save_checkpoint()
        bce = ", ".join(f"{loss:.3f}" for loss in losses)
        display.print(
            f"sampling filter: fitted in {time.perf_counter() - t0:.0f} s (BCE {bce}; "
            "2 log 2 = 1.386 would be a D that cannot tell G's samples from the data)"
        )

    def save_last_stage(self) -> None:
        """At the end of a run that reached its last stage, fully faded in: that stage's last
        samples as ``samples/stage-S-RxR.png``, beside the earlier stages' (no schedule step
        ends the last stage; the run's end does)."""
        net = self.growing[0]
        stage = int(net.stage)
        if stage == net.stages - 1 and float(net.alpha) >= 1:
            self.save_samples(self.run.stage_sample_path(stage, START * 2**stage))

    def batch_at(self, step: int) -> int:
        """The batch of ``step`` over all ranks: ``train.batch_size``, or with
        ``train.stage_batch`` the size of the step's stage."""
        t = self.cfg.train
        if not t.stage_batch:
            return t.batch_size * self.dist.world
        stage, _ = stage_at(step - 1, len(t.stage_batch), t.stage_steps, t.fade_steps)
        return t.stage_batch[stage] * self.dist.world

    def grow(self, step: int) -> Growth:
        """Before ``step``: every progressive net's stage and alpha; when the step before it
        ended a stage, that stage's last samples are kept as ``samples/stage-S-RxR.png``.
        Returns the step's growth (the step's reals are blended by it: ``fade_reals``)."""
        t = self.cfg.train
        growth = growth_at(step, self.growing[0].stages, t.stage_steps, t.fade_steps)
        if growth.ended is not None:
            res = START * 2**growth.ended
            self.save_samples(self.run.stage_sample_path(growth.ended, res))
        for m in self.growing:
            m.set_stage(growth.stage, growth.alpha)
        return growth


class _Meter:
    """Sums the step's scalars between log lines without reading them (no host sync)."""

    MEANS = STATS

    def __init__(self) -> None:
        self.sums: dict[str, torch.Tensor] = {}
        self.count = 0
        self.elapsed = 0.0  # training seconds before this process (a resumed run's past)
        self.start()

    def start(self) -> None:
        self.t0 = self.clock = time.perf_counter()
        self.timed = 0  # samples since ``clock``

    def state_dict(self) -> dict[str, Any]:
        """The interval's sums and count (a resumed interval averages like the uninterrupted
        one) and the training time so far (``elapsed_s`` goes on counting)."""
        return {
            **{f"sums.{k}": v for k, v in self.sums.items()},
            "count": self.count,
            "elapsed": self.elapsed + time.perf_counter() - self.t0,
        }

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = {k[5:]: v for k, v in state.items() if k.startswith("sums.")}
        self.count, self.elapsed = int(state["count"]), float(state["elapsed"])

    def add(self, stats: dict[str, torch.Tensor], samples: int) -> None:
        """Add every term and measurement of a step but the gradient norms (measured on log
        steps only): the four of the course first, then the terms switched on; and the
        step's ``samples`` (real ones, over all ranks and D steps) to the throughput."""
        keys = [*self.MEANS, *(k for k in stats if k not in self.MEANS and k not in GRADS)]
        for k in keys:
            self.sums[k] = self.sums[k] + stats[k] if k in self.sums else stats[k]
        self.count += 1
        self.timed += samples

    def row(self, step: int, stats: dict[str, torch.Tensor]) -> dict[str, Any]:
        """The metrics.jsonl line: interval means, this step's gradient norms, throughput."""
        now = time.perf_counter()
        row: dict[str, Any] = {"step": step}
        sums = distributed.mean_across(self.sums, distributed.current())  # over ranks
        row |= {k: v.item() / self.count for k, v in sums.items()}
        row |= {k: stats[k].item() for k in GRADS if k in stats}
        row["img_per_s"] = self.timed / (now - self.clock)
        row["elapsed_s"] = self.elapsed + now - self.t0
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
    """Train ``cfg`` into a new run folder ``out``, or continue the run at ``resume``.

    A run stopped before its first checkpoint resumes from step 0: the same run, from the
    start (its config kept, its other files written anew)."""
    cfg, run = prepare(cfg, out, resume, resume_overrides)
    fresh = resume is None or run.latest_checkpoint_step() is None
    # Under torchrun: join the process group; rank 0 alone writes the run folder.
    device = devices.resolve(cfg.train.device, distributed.from_env().local_rank)
    with distributed.session(device) as d:
        trainer = Trainer(cfg, run, quiet)
        if fresh:
            distributed.on_main(lambda: run.prepare_new(overwrite or resume is not None), d)
        else:
            trainer.restore()
            note = resume_note(
                trainer.horizon.steps,
                cfg.train.steps,
                cfg.optim.decay_from < 1,
                cfg.stab.instance_noise > 0 and not cfg.stab.noise_steps,
            )
            if note and d.is_main:
                warnings.warn(note, stacklevel=2)
        distributed.on_main(lambda: run.write_config(cfg), d)  # on resume: a new step budget
        result = trainer.fit()
        distributed.barrier(d)  # no rank leaves while rank 0 writes the last files
    return result


def _jsonable(value: Any) -> Any:
    """``value`` as it reads back from JSON (tuples become lists)."""
    return json.loads(json.dumps(value))


def _check_batchnorm(batch_size: int, key: str, modules: dict[str, torch.nn.Module]) -> None:
    """BatchNorm in training mode normalises by the batch's variance: one sample has none."""
    for name, m in modules.items():
        bn = torch.nn.modules.batchnorm._BatchNorm
        if batch_size < 2 and any(isinstance(layer, bn) for layer in m.modules()):
            raise ConfigError(
                f"{key}={batch_size} cannot train the BatchNorm layers of {name}, "
                "which need 2 samples or more per batch"
            )


def check_stage_batch(cfg: Config, shape: tuple[int, ...]) -> None:
    """``train.stage_batch``: a batch size per stage of a progressive net on images of
    ``shape``, one per stage."""
    sizes = cfg.train.stage_batch
    if not sizes:
        return
    if cfg.model.arch != "progressive":
        raise ConfigError(
            "train.stage_batch sets the batch of each stage of model.arch=progressive; "
            f"model.arch={cfg.model.arch} has one: set train.batch_size"
        )
    stages = n_stages(shape[-1])  # a size progressive growing cannot make: its own error
    if len(sizes) != stages:
        res = ", ".join(str(START * 2**s) for s in range(stages))
        raise ConfigError(
            f"train.stage_batch gives {len(sizes)} batch size(s); model.arch=progressive at "
            f"{shape[-1]} x {shape[-1]} has {stages} stages ({res}): give one per stage"
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
        f"{cfg.preset}: {cfg.train.loss} loss, batch "
        + ("/".join(map(str, cfg.train.stage_batch)) or str(cfg.train.batch_size)),
    )


def _tensorboard(run: RunFolder) -> Any:
    try:
        from torch.utils.tensorboard import SummaryWriter
    except ImportError:
        raise GanforgeError(
            "--tensorboard needs the tensorboard package: pip install 'ganforge[tensorboard]'"
        ) from None
    return SummaryWriter(str(run.path / "tb"))
