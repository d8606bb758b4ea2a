"""The run folder: every path of a run, every reader and writer of its files, in one place.

RUN/config.json            the resolved config
RUN/metrics.jsonl          one JSON object per log interval
RUN/samples/step-XXXXXX.png  grids from a fixed z (stage-S-RxR.png: a progressive stage's end)
RUN/loss.png               L_D and L_G against the step
RUN/report.html            the run report (ganforge report), written at the end of training
RUN/checkpoints/step-XXXXXX.safetensors
RUN/checkpoints/best.safetensors  the lowest FID so far, with train.eval_every
RUN/events.jsonl           one JSON object per event (a rollback after a NaN), when any
RUN/eval.json              what ``ganforge eval`` measured
RUN/before-after.png       image-to-image runs: inputs, baselines, outputs, truth (the eval's)
RUN/tb/                    TensorBoard events, when enabled
RUN/snapshots/step-XXXXXX.safetensors  G and D weights, when train.snapshot_every > 0
RUN/theory/                what ``ganforge theory`` draws

A trained generator is loaded from here too (``load_generator``, ``sample``), and with its D
for a sampling filter (``sample_filtered``).
"""

from __future__ import annotations

import json
import math
import shutil
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ganforge import checkpoint, nets
from ganforge.config import Config, from_json
from ganforge.errors import GanforgeError
from ganforge.nets.conditional import sampling_labels
from ganforge.nets.filters import BATCH, FILTERS, POINT_BATCH, Filtered, RatioMean, RatioNet

BEST_CHECKPOINT = "best.safetensors"  # lowest FID so far, with train.eval_every
EVAL_FILE = "eval.json"
BEFORE_AFTER = "before-after.png"  # image-to-image runs: the eval's figure

# What a run writes: --overwrite deletes these and nothing else.
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "events.jsonl",
    "loss.png",
    "report.html",
    EVAL_FILE,
    BEFORE_AFTER,
    "samples",
    "checkpoints",
    "tb",
    "snapshots",
    "theory",
)


def default_out(preset: str) -> Path:
    return Path("runs") / f"{preset}-{time.strftime('%Y%m%d-%H%M%S')}"


@dataclass(frozen=True)
class RunFolder:
    path: Path

    def __post_init__(self) -> None:  # a str is taken too: RunFolder("runs/x")
        object.__setattr__(self, "path", Path(self.path))

    @property
    def config_file(self) -> Path:
        return self.path / "config.json"

    @property
    def metrics_file(self) -> Path:
        return self.path / "metrics.jsonl"

    @property
    def samples(self) -> Path:
        return self.path / "samples"

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    @property
    def best_checkpoint(self) -> Path:
        return self.checkpoints / BEST_CHECKPOINT

    @property
    def eval_file(self) -> Path:
        return self.path / EVAL_FILE

    @property
    def before_after(self) -> Path:
        return self.path / BEFORE_AFTER

    @property
    def report_file(self) -> Path:
        return self.path / "report.html"

    @property
    def loss_plot(self) -> Path:
        return self.path / "loss.png"

    @property
    def theory(self) -> Path:
        return self.path / "theory"

    def sample_path(self, step: int) -> Path:
        return self.samples / f"step-{step:06d}.png"

    def stage_sample_path(self, stage: int, resolution: int) -> Path:
        """The last grid of progressive stage ``stage`` (``resolution`` pixels square)."""
        return self.samples / f"stage-{stage}-{resolution}x{resolution}.png"

    def sample_grids(self) -> list[tuple[int, Path]]:
        """(step, path) of every ``samples/step-*.png``, by step."""
        out = []
        for p in sorted(self.samples.glob("step-*.png")):
            try:
                out.append((int(p.stem.removeprefix("step-")), p))
            except ValueError:
                continue
        return out

    def stage_grids(self) -> list[Path]:
        """The ``samples/stage-S-RxR.png`` grids, by stage."""
        return sorted(self.samples.glob("stage-*.png"), key=_stage_number)

    def prepare_new(self, overwrite: bool) -> None:
        """Check the folder can hold a new run (refusing to clobber one), then create it."""
        p = self.path
        if p.exists() and not p.is_dir():
            raise GanforgeError(f"output path {p} exists and is not a folder")
        if p.is_dir() and any(p.iterdir()):
            if not overwrite:
                raise GanforgeError(
                    f"output folder {p} already exists and is not empty "
                    "(pass --overwrite to replace the run in it, or --resume to continue it)"
                )
            for name in RUN_FILES:
                target = p / name
                if target.is_dir():
                    shutil.rmtree(target)
                elif target.exists():
                    target.unlink()
        try:
            p.mkdir(parents=True, exist_ok=True)
            probe = p / ".write-test"
            probe.write_bytes(b"")
            probe.unlink()
        except OSError as e:
            raise GanforgeError(f"cannot write to output folder {p}: {e.strerror}") from None

    def write_config(self, cfg: Config) -> None:
        checkpoint.atomic_write(
            self.config_file, (json.dumps(cfg.to_dict(), indent=2) + "\n").encode()
        )

    def read_config(self) -> Config:
        if not self.config_file.is_file():
            raise GanforgeError(f"{self.path} is not a ganforge run (no config.json)")
        return from_json(self.config_file)

    def latest_checkpoint(self) -> Path:
        found = checkpoint.list_checkpoints(self.checkpoints)
        if not found:
            raise GanforgeError(f"{self.path} has no checkpoint to load")
        return found[-1][1]

    def latest_checkpoint_step(self) -> int | None:
        """The step of the newest checkpoint, or None when there is none."""
        found = checkpoint.list_checkpoints(self.checkpoints)
        return found[-1][0] if found else None

    @property
    def events_file(self) -> Path:
        return self.path / "events.jsonl"

    def append_event(self, event: dict[str, Any]) -> None:
        with open(self.events_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(event) + "\n")

    def events(self) -> list[dict[str, Any]]:
        """The lines of ``events.jsonl`` (what the loop's NaN/Inf guard did), skipping any it
        cannot read; none when the file is absent."""
        if not self.events_file.is_file():
            return []
        out = []
        for line in self.events_file.read_text(encoding="utf-8", errors="replace").splitlines():
            try:
                event = json.loads(line)
            except ValueError:
                continue
            if isinstance(event, dict):
                out.append(event)
        return out

    def read_eval(self) -> dict[str, Any] | None:
        """``eval.json`` (metric -> value, ci_low, ci_high, floor, n), or None when absent;
        ``{"_error": ...}`` when unreadable: a report shows what it can and says what it could
        not."""
        p = self.eval_file
        if not p.is_file():
            return None
        try:
            data = json.loads(p.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {"_error": f"{p.name} could not be read as JSON"}
        return data if isinstance(data, dict) else {"_error": f"{p.name} is not a JSON object"}

    def append_metrics(self, row: dict[str, Any]) -> None:
        with open(self.metrics_file, "a", encoding="utf-8") as f:
            f.write(json.dumps(row) + "\n")

    def metrics(self) -> Iterator[dict[str, Any]]:
        if not self.metrics_file.is_file():
            return
        with open(self.metrics_file, encoding="utf-8") as f:
            for line in f:
                try:
                    yield json.loads(line)
                except json.JSONDecodeError:
                    continue  # a line cut short by a crash; the resume rewrites it

    def truncate_metrics(self, step: int) -> None:
        """Drop metric lines after ``step`` (written after the checkpoint a resume starts from)."""
        if not self.metrics_file.is_file():
            return
        kept = [json.dumps(r) + "\n" for r in self.metrics() if r["step"] <= step]
        checkpoint.atomic_write(self.metrics_file, "".join(kept).encode())


def _stage_number(p: Path) -> int:
    """S of ``stage-S-RxR.png`` (-1 for a name that does not parse: listed first)."""
    try:
        return int(p.stem.split("-")[1])
    except (IndexError, ValueError):
        return -1


def write_json(data: Any, path: Path) -> None:
    """``data`` as indented JSON, written atomically (a reader never sees half a file)."""
    checkpoint.atomic_write(path, (json.dumps(data, indent=2) + "\n").encode())


def load_nets(
    run: str | Path, device: str = "cpu", checkpoint_file: Path | None = None
) -> tuple[nn.Module, nn.Module, tuple[int, ...]]:
    """G and D of the newest intact checkpoint of ``run`` (or of ``checkpoint_file``), in eval
    mode (BatchNorm uses running statistics), and the sample shape. G is the moving average of
    G's weights when the run kept one (``stab.ema``)."""
    g, d, shape, _ = _load(run, device, checkpoint_file)
    return g, d, shape


def _load(
    run: str | Path, device: str, checkpoint_file: Path | None
) -> tuple[nn.Module, nn.Module, tuple[int, ...], dict[str, torch.Tensor]]:
    """``load_nets`` and every tensor of the checkpoint it read."""
    folder = RunFolder(Path(run))
    cfg = folder.read_config()
    if checkpoint_file is not None:
        tensors, meta = checkpoint.read(checkpoint_file)
    else:
        _, tensors, meta = checkpoint.load_latest(folder.checkpoints)
    shape = tuple(int(s) for s in meta["data_shape"])
    g, d = nets.build(cfg.model, shape)
    try:
        g.load_state_dict(checkpoint.subset(tensors, "G_ema") or checkpoint.subset(tensors, "G"))
        d.load_state_dict(checkpoint.subset(tensors, "D"))
    except RuntimeError as e:
        raise GanforgeError(f"{run}: the checkpoint does not fit the run's model ({e})") from None
    return g.to(device).eval(), d.to(device).eval(), shape, tensors


def load_filter_nets(
    run: str | Path, device: str = "cpu", checkpoint_file: Path | None = None
) -> tuple[nn.Module, nn.Module, bool]:
    """G of ``load_nets`` and the D its sampling filter scores with: the D fitted on the final
    G (``D_filter``, train.filter_steps) when the checkpoint holds one, else the run's D; and
    whether it was the fitted one."""
    g, d, shape, tensors = _load(run, device, checkpoint_file)
    fitted = checkpoint.subset(tensors, "D_filter")
    if not fitted:
        return g, d, False
    dim, members = math.prod(shape), RatioMean.members_in(fitted)
    net = RatioMean([RatioNet(dim) for _ in range(members)]) if members else RatioNet(dim)
    try:
        net.load_state_dict(fitted)
    except RuntimeError:
        raise GanforgeError(
            f"{run}: the checkpoint's filter D (D_filter) is not a RatioNet of this version: "
            "sample with --filter none"
        ) from None
    return g, net.to(device).eval(), True


def load_generator(
    run: str | Path, device: str = "cpu", checkpoint_file: Path | None = None
) -> nn.Module:
    """G of ``load_nets``: what samples, evaluation and inpainting draw from."""
    return load_nets(run, device, checkpoint_file)[0]


@torch.no_grad()
def sample(
    run: str | Path,
    n: int,
    seed: int = 0,
    device: str = "cpu",
    checkpoint_file: Path | None = None,
) -> torch.Tensor:
    """``n`` samples of the run's G in data space: images ``[n, C, H, W]`` in [-1, 1] or points
    ``[n, D]``, from z ~ N(0, I) drawn by a generator seeded with ``seed`` (for a conditional
    run, classes 0, 1, ..., K - 1, 0, ... in turn)."""
    return sample_labelled(run, n, seed, device, checkpoint_file=checkpoint_file)[0]


@torch.no_grad()
def sample_labelled(
    run: str | Path,
    n: int,
    seed: int = 0,
    device: str = "cpu",
    label: int | None = None,
    checkpoint_file: Path | None = None,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """``sample``, and the labels drawn (None for an unconditional run): all ``label``, or every
    class in turn."""
    if n <= 0:
        raise GanforgeError(f"--n must be a positive number of samples, got {n}")
    g = load_generator(run, device, checkpoint_file)
    y = sampling_labels(g, n, label)
    gen = torch.Generator().manual_seed(seed)
    latent = int(g.latent_dim)  # type: ignore[arg-type]
    z = torch.randn(n, latent, generator=gen).to(device)
    return nets.generate(g, z, y=None if y is None else y.to(device)).cpu(), y


def sample_filtered(
    run: str | Path,
    n: int,
    name: str,
    seed: int = 0,
    device: str = "cpu",
    checkpoint_file: Path | None = None,
    progress: Callable[[int, int], None] | None = None,
    quantile: float | None = None,
) -> Filtered:
    """``n`` samples of the run's G kept by the filter ``name`` (``nets.filters.FILTERS``),
    drawn from a generator seeded with ``seed``, scored by the D of ``load_filter_nets``: the D
    fitted on the final G when the run has one. Without it, the run's D was trained against the
    live G (and G may be its moving average), so its density ratio holds only approximately.
    ``progress(kept, n)`` is called after each batch of candidates. ``quantile``: rejection's
    D~_M quantile (default: the run's ``train.filter_quantile``)."""
    if n <= 0:
        raise GanforgeError(f"--n must be a positive number of samples, got {n}")
    options: dict[str, Any] = {}
    if name == "rejection":
        q = (
            RunFolder(Path(run)).read_config().train.filter_quantile
            if quantile is None
            else quantile
        )
        if not 0.0 < q <= 1.0:
            raise GanforgeError(f"--quantile must be in (0, 1], got {q}")
        options["quantile"] = q
    elif quantile is not None:
        raise GanforgeError(f"--quantile sets the rejection filter's D~_M, not {name}'s")
    g, d, _ = load_filter_nets(run, device, checkpoint_file)
    # points: small nets, and larger batches of candidates run faster
    points = isinstance(d, RatioNet | RatioMean)
    batch = POINT_BATCH if points else BATCH
    return FILTERS[name](
        g, d, n, seed=seed, device=device, batch=batch, progress=progress, **options
    )
