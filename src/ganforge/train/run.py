"""The run folder: where a run keeps its config, metrics, samples and checkpoints.

RUN/config.json            the resolved config
RUN/metrics.jsonl          one JSON object per log interval
RUN/samples/step-XXXXXX.png  grids from a fixed z
RUN/loss.png               L_D and L_G against the step
RUN/report.html            the run report (ganforge report), written at the end of training
RUN/checkpoints/step-XXXXXX.safetensors
RUN/events.jsonl           one JSON object per event (a rollback after a NaN), when any
RUN/tb/                    TensorBoard events, when enabled
RUN/snapshots/step-XXXXXX.safetensors  G and D weights, when train.snapshot_every > 0
"""

from __future__ import annotations

import json
import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ganforge import checkpoint
from ganforge.config import Config, from_json
from ganforge.errors import GanforgeError

# What a run writes: --overwrite deletes these and nothing else.
RUN_FILES = (
    "config.json",
    "metrics.jsonl",
    "events.jsonl",
    "loss.png",
    "report.html",
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

    def sample_path(self, step: int) -> Path:
        return self.samples / f"step-{step:06d}.png"

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
