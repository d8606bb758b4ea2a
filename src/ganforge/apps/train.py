"""Training an image-to-image run: the schedule, logging, sample grids, checkpoints and exact
resume. The maths is in step.py, the tasks' nets and data in tasks.py.

The run folder is a ganforge run folder (``runs.RunFolder``): config.json, metrics.jsonl,
samples/step-XXXXXX.png (before/after grids), checkpoints/ (safetensors + JSON, with every
optimiser, the data order, the pools of past fakes, the schedule's horizon and the RNGs),
loss.png and report.html.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import numpy as np
import torch
from PIL import Image

from ganforge import checkpoint
from ganforge.config import Config
from ganforge.errors import ConfigError, GanforgeError
from ganforge.plots import image_grid, loss_plot
from ganforge.runs import RunFolder
from ganforge.stabilizers import EMA
from ganforge.train import device as devices
from ganforge.train import distributed
from ganforge.train.loop import (
    Result,
    _Display,
    _sigint_stops,
    _StopFlag,
    prepare,
    seed_everything,
)
from ganforge.train.schedule import Horizon, lr_factor, resume_note

from . import tasks
from .step import ImagePool

Tensor = torch.Tensor


def write_grid(cells: Tensor, path: Path, scale: int = 3, nrow: int = 3) -> None:
    """A before/after grid, ``nrow`` cells a row, as a PNG ``scale`` times enlarged."""
    path.parent.mkdir(parents=True, exist_ok=True)
    grid = image_grid(cells, nrow=nrow)
    img = Image.fromarray(grid[..., 0] if grid.shape[-1] == 1 else grid)
    img = img.resize((img.width * scale, img.height * scale), Image.Resampling.NEAREST)
    img.save(path)


class _Meter:
    """Means of the step's measurements over a log interval (read at log steps only)."""

    def __init__(self) -> None:
        self.sums: dict[str, Tensor] = {}
        self.count = 0

    def add(self, stats: dict[str, Tensor]) -> None:
        for k, v in stats.items():
            self.sums[k] = self.sums[k] + v if k in self.sums else v
        self.count += 1

    def row(self, step: int) -> dict[str, Any]:
        row: dict[str, Any] = {"step": step}
        row |= {k: v.item() / self.count for k, v in self.sums.items()}
        self.sums, self.count = {}, 0
        return row

    def state_dict(self) -> dict[str, Any]:
        return {**{f"sums.{k}": v for k, v in self.sums.items()}, "count": self.count}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.sums = {k[5:]: v for k, v in state.items() if k.startswith("sums.")}
        self.count = int(state["count"])


class AppTrainer:
    """One image-to-image run: the task's nets, optimisers, data, pools and run folder."""

    def __init__(self, cfg: Config, run: RunFolder, quiet: bool = False) -> None:
        tasks.check(cfg)
        t = cfg.train
        self.cfg, self.run, self.quiet = cfg, run, quiet
        self.device = devices.resolve(t.device, 0)
        if t.threads:
            torch.set_num_threads(t.threads)
        seed_everything(t.seed)
        self.data = tasks.build_data(cfg)
        self.nets = {k: m.to(self.device) for k, m in tasks.build_nets(cfg).items()}
        self.opts = tasks.optimizers(cfg, self.nets)
        s = cfg.stab  # the moving average of each generator: what samples, eval and translate use
        gens = tasks.TASKS[cfg.app.task].generators
        self.emas = {k: EMA(self.nets[k], s.ema, s.ema_rampup) for k in gens if s.ema > 0}
        self.pools = (ImagePool(cfg.app.pool, t.seed + 2), ImagePool(cfg.app.pool, t.seed + 3))
        self.step_fn = tasks.build_step(cfg, self.nets, self.opts, self.pools, self.device)
        self.horizon = Horizon(t.steps)
        self.meter = _Meter()
        self.states: dict[str, checkpoint.Stateful] = {
            **self.data.states(),
            "meter": self.meter,
            "horizon": self.horizon,
        }
        if cfg.app.task == "thicken":
            self.states |= {"pool_a": self.pools[0], "pool_b": self.pools[1]}
        self.fixed = self.data.fixed(t.n_samples)
        self.step = 0
        self.elapsed = 0.0

    def restore(self) -> None:
        """Continue from the newest intact checkpoint: weights, optimisers, data order, pools,
        the schedule's horizon and every RNG."""
        checkpoint.clean_temporary(self.run.checkpoints)
        _, tensors, meta = checkpoint.load_latest(self.run.checkpoints, set_aside=True)
        if meta.get("app") != self.cfg.to_dict()["app"]:
            raise GanforgeError(f"{self.run.path}: the checkpoint was made by another task")
        checkpoint.restore(
            tensors, meta, modules=self.modules(), optimizers=self.opts, states=self.states
        )
        self.step = int(meta["step"])
        self.elapsed = float(meta.get("elapsed_s", 0.0))
        if self.cfg.train.steps < self.step:
            raise GanforgeError(
                f"train.steps={self.cfg.train.steps} is below the step {self.step} the run has "
                f"reached; pass --steps {self.step} or more"
            )
        self.run.truncate_metrics(self.step)

    def modules(self) -> dict[str, torch.nn.Module]:
        """What a checkpoint holds: the nets, and the generators' averages (``G_ema``...)."""
        return self.nets | {tasks.ema_name(k): e.module for k, e in self.emas.items()}

    def generators(self) -> dict[str, torch.nn.Module]:
        """The nets, each generator replaced by its average where there is one."""
        return self.nets | {k: e.module for k, e in self.emas.items()}

    def save_checkpoint(self, elapsed: float) -> None:
        self.run.checkpoints.mkdir(exist_ok=True)
        checkpoint.save(
            checkpoint.path_for(self.run.checkpoints, self.step),
            step=self.step,
            modules=self.modules(),
            optimizers=self.opts,
            states=self.states,
            meta={
                "app": self.cfg.to_dict()["app"],
                "model": self.cfg.to_dict()["model"],
                "data_shape": list(self.fixed[1].shape[1:]),
                "elapsed_s": elapsed,
            },
        )
        checkpoint.prune(self.run.checkpoints, self.cfg.train.keep_ckpts)

    def save_samples(self) -> None:
        for m in self.nets.values():
            m.eval()  # BatchNorm on running statistics, as at test time
        x, y = (v.to(self.device) for v in self.fixed)
        cells = tasks.show(self.cfg, self.generators(), x, y)
        write_grid(cells, self.run.sample_path(self.step))
        for m in self.nets.values():
            m.train()

    def fit(self) -> Result:
        """Train to ``train.steps``; Ctrl-C stops after the current step with a checkpoint."""
        t, o = self.cfg.train, self.cfg.optim
        for m in self.nets.values():
            m.train()
        if self.step == 0:
            self.save_samples()
        display = _Display(t.steps, self.step, self.quiet, t.sample_every)
        flag = _StopFlag()
        start, last = time.perf_counter() - self.elapsed, {}
        try:
            with _sigint_stops(flag):
                while self.step < t.steps:
                    self.step += 1
                    step = self.step
                    factor = lr_factor(step, self.horizon.steps, o.decay_from)
                    for name, opt in self.opts.items():
                        base = o.lr_g if name == "opt_g" else o.lr_d
                        for group in opt.param_groups:
                            group["lr"] = base * factor
                    x, y = self.data.next(self.device)
                    stats = self.step_fn(x, y)
                    for k, e in self.emas.items():
                        e.update(self.nets[k], step - 1)
                    self.meter.add(stats)
                    stop = flag.requested
                    row = None
                    if step % t.log_every == 0 or step == t.steps or stop:
                        row = last = self.meter.row(step)
                        row["elapsed_s"] = time.perf_counter() - start
                        if not all(np.isfinite(v) for v in row.values()):
                            raise GanforgeError(f"a loss became NaN or infinite at step {step}")
                        self.run.append_metrics(row)
                    if step % t.sample_every == 0 or step == t.steps:
                        self.save_samples()
                    if step % t.ckpt_every == 0 or step == t.steps or stop:
                        self.save_checkpoint(time.perf_counter() - start)
                    display.update(step, _with_d(row))
                    if stop:
                        break
        finally:
            display.close()
        write_losses(self.run, self.cfg)
        stopped = self.step < t.steps
        if stopped:
            display.print(
                f"stopped at step {self.step}: checkpoint written; continue with "
                f"`ganforge train --resume {self.run.path}`"
            )
        return Result(self.run.path, self.step, stopped, last)


def write_losses(run: RunFolder, cfg: Config) -> None:
    """loss.png: L_D, L_G and G's terms against the step."""
    rows = list(run.metrics())
    if not rows:
        return
    keys = [k for k in ("loss_d", "loss_g", "g_content", "g_adv", "g_cycle", "g_identity")]
    keys = [k for k in keys if all(k in r for r in rows)]
    steps = [int(r["step"]) for r in rows]
    loss_plot(
        steps,
        {k: [float(r[k]) for r in rows] for k in keys},
        run.loss_plot,
        f"{cfg.preset}: {cfg.app.task}, {cfg.train.loss} loss x {cfg.app.adv}",
    )


def _with_d(row: dict[str, Any] | None) -> dict[str, Any] | None:
    """A log row the progress bar can show (the plain L1 model has no D)."""
    if row is None:
        return None
    return {"loss_d": 0.0, "d_real": 0.0, "d_fake": 0.0, **row}


def train_app(
    cfg: Config,
    out: Path | None = None,
    *,
    resume: Path | None = None,
    resume_overrides: dict[str, Any] | None = None,
    overwrite: bool = False,
    quiet: bool = False,
) -> Result:
    """Train the image-to-image ``cfg`` into a new run folder ``out``, or continue ``resume``."""
    cfg, run = prepare(cfg, out, resume, resume_overrides)
    if distributed.from_env().world > 1:  # each rank would train its own copy into one folder
        raise ConfigError("the image-to-image tasks train in one process: not under torchrun")
    fresh = resume is None or run.latest_checkpoint_step() is None
    trainer = AppTrainer(cfg, run, quiet)
    if fresh:
        run.prepare_new(overwrite or resume is not None)
    else:
        trainer.restore()
        note = resume_note(trainer.horizon.steps, cfg.train.steps, cfg.optim.decay_from < 1, False)
        if note and not quiet:
            print(f"ganforge: warning: {note}")
    run.write_config(cfg)
    return trainer.fit()
