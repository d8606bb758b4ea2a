"""Weight snapshots for looking back at a run: G and D every ``train.snapshot_every`` steps.

RUN/snapshots/step-XXXXXX.safetensors holds, for step s of Algorithm 1 (Goodfellow et al.
2014: k D updates, then one G update):

    G_pre.*   G before step s's G update (G_{s-1}); with D, the state right after the D updates
    G.*       G after step s (G_s)
    D.*       D after step s (D_s)

so one file gives both phases of a step, "after a D update" (G_pre, D) and "after a G update"
(G, D). Step 0 holds the initial weights (G_pre = G). Unlike checkpoints they are never
pruned, and hold no optimiser state: a small MLP's snapshot is a few tens of KB.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass
from pathlib import Path

import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save
from torch import nn

from ganforge.checkpoint import atomic_write, subset
from ganforge.errors import GanforgeError

FORMAT = "ganforge-snapshot-1"
FOLDER = "snapshots"
_NAME = re.compile(r"step-(\d+)\.safetensors$")

State = dict[str, torch.Tensor]


def due(step: int, every: int, last: int) -> bool:
    """Whether step ``step`` (of ``last``) takes a snapshot: every ``every`` steps and the last
    one; never when ``every`` is 0."""
    return every > 0 and (step % every == 0 or step == last)


def copy_state(m: nn.Module) -> State:
    """A detached CPU copy of ``m``'s state dict (taken before the step changes it)."""
    return {k: v.detach().cpu().clone() for k, v in m.state_dict().items()}


def save(run: Path, step: int, g_pre: State | None, g: nn.Module, d: nn.Module) -> Path:
    """Write the snapshot of ``step`` into ``run/snapshots/`` (``g_pre`` None: G unchanged)."""
    folder = run / FOLDER
    folder.mkdir(exist_ok=True)
    g_now = copy_state(g)
    tensors = {f"G.{k}": v for k, v in g_now.items()}
    tensors |= {f"G_pre.{k}": v.clone() for k, v in (g_pre if g_pre is not None else g_now).items()}
    tensors |= {f"D.{k}": v.contiguous() for k, v in copy_state(d).items()}
    path = folder / f"step-{step:06d}.safetensors"
    meta = {"format": FORMAT, "step": step}
    atomic_write(path, st_save(tensors, metadata={"meta": json.dumps(meta)}))
    return path


@dataclass(frozen=True)
class Snapshot:
    """The weights of one snapshot: state dicts of G before/after the step's G update, and D."""

    step: int
    g_pre: State
    g: State
    d: State


def list_snapshots(run: Path) -> list[tuple[int, Path]]:
    """(step, path) of every snapshot of ``run``, oldest first."""
    folder = run / FOLDER
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return sorted(found)


def read(path: Path) -> Snapshot:
    """The snapshot in ``path``; a damaged file raises ``GanforgeError``."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["meta"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise GanforgeError(f"{path}: not a readable ganforge snapshot ({e})") from None
    if meta.get("format") != FORMAT:
        raise GanforgeError(f"{path}: not a ganforge snapshot (format {meta.get('format')!r})")
    return Snapshot(
        int(meta["step"]), subset(tensors, "G_pre"), subset(tensors, "G"), subset(tensors, "D")
    )
