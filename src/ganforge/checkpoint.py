"""Checkpoints: one safetensors file per save, tensors plus JSON metadata, written atomically.

Keys: ``G.*`` and ``D.*`` (state dicts), ``opt_g.<i>.<name>`` and ``opt_d.<i>.<name>`` (Adam's
per-parameter state), ``rng.*`` and ``sampler.*`` (random states); the metadata entry ``meta``
holds JSON: step, architecture, optimiser hyper-parameters, numpy/python RNG states. Nothing is
unpickled on load.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save as st_save
from torch import nn

from ganforge.errors import GanforgeError

FORMAT = "ganforge-checkpoint-1"
_NAME = re.compile(r"step-(\d+)\.safetensors$")


def atomic_write(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` so that a crash leaves the old file or the new one, never half.

    temp file in the same folder -> flush -> fsync -> rename over the target -> fsync the folder.
    """
    tmp = path.with_name(f".{path.name}.tmp")
    with open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())
    os.replace(tmp, path)
    try:
        fd = os.open(path.parent, os.O_RDONLY)
    except OSError:  # pragma: no cover - folders cannot be opened on some systems
        return
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _optimizer_tensors(prefix: str, opt: torch.optim.Optimizer) -> tuple[dict, list]:
    state = opt.state_dict()
    tensors = {}
    for idx, per_param in state["state"].items():
        for name, value in per_param.items():
            t = value if torch.is_tensor(value) else torch.tensor(value)
            tensors[f"{prefix}.{idx}.{name}"] = t.detach().cpu().contiguous()
    return tensors, state["param_groups"]


def _load_optimizer(
    prefix: str, opt: torch.optim.Optimizer, tensors: Mapping[str, torch.Tensor], groups: list
) -> None:
    per: dict[int, dict[str, torch.Tensor]] = {}
    for key, t in tensors.items():
        if key.startswith(prefix + "."):
            _, idx, name = key.split(".", 2)
            per.setdefault(int(idx), {})[name] = t
    # JSON turned tuples such as Adam's betas into lists; "params" is a list of indices.
    groups = [
        {k: tuple(v) if isinstance(v, list) and k != "params" else v for k, v in g.items()}
        for g in groups
    ]
    opt.load_state_dict({"state": per, "param_groups": groups})


def _module_tensors(prefix: str, m: nn.Module) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v.detach().cpu().contiguous() for k, v in m.state_dict().items()}


def subset(tensors: Mapping[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The tensors under ``prefix.``, with the prefix taken off their keys."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def save(
    path: Path,
    *,
    step: int,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    extra_tensors: Mapping[str, torch.Tensor] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Save modules, optimisers, every RNG state and ``meta`` to ``path`` atomically."""
    tensors: dict[str, torch.Tensor] = {}
    for name, m in modules.items():
        tensors.update(_module_tensors(name, m))
    groups = {}
    for name, opt in optimizers.items():
        t, groups[name] = _optimizer_tensors(name, opt)
        tensors.update(t)
    tensors["rng.torch"] = torch.get_rng_state()
    if torch.cuda.is_available() and torch.cuda.is_initialized():
        for i, s in enumerate(torch.cuda.get_rng_state_all()):
            tensors[f"rng.cuda.{i}"] = s
    for k, v in (extra_tensors or {}).items():
        tensors[k] = v.detach().cpu().contiguous()
    np_state = np.random.get_state(legacy=False)
    assert isinstance(np_state, dict)
    np_state["state"] = {"key": np_state["state"]["key"].tolist(), "pos": np_state["state"]["pos"]}
    py_state = random.getstate()
    info = {
        "format": FORMAT,
        "step": step,
        "optimizer_groups": groups,
        "rng_numpy": np_state,
        "rng_python": [py_state[0], list(py_state[1]), py_state[2]],
        **(meta or {}),
    }
    atomic_write(path, st_save(tensors, metadata={"meta": json.dumps(info)}))


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a checkpoint; a damaged file raises ``GanforgeError``."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["meta"])
            tensors = {k: f.get_tensor(k) for k in f.keys()}  # noqa: SIM118 - not a dict
    except (SafetensorError, OSError, KeyError, ValueError) as e:
        raise GanforgeError(f"{path}: not a readable ganforge checkpoint ({e})") from None
    if meta.get("format") != FORMAT:
        raise GanforgeError(f"{path}: not a ganforge checkpoint (format {meta.get('format')!r})")
    return tensors, meta


def restore(
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    rng: bool = True,
) -> None:
    """Load what ``save`` wrote into live modules and optimisers, and the RNG states."""
    for name, m in modules.items():
        m.load_state_dict(subset(tensors, name))
    for name, opt in optimizers.items():
        _load_optimizer(name, opt, tensors, meta["optimizer_groups"][name])
    if not rng:
        return
    torch.set_rng_state(tensors["rng.torch"])
    cuda = [tensors[k] for k in sorted(tensors) if k.startswith("rng.cuda.")]
    if cuda and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(cuda)
    np_state = dict(meta["rng_numpy"])
    key = np.asarray(np_state["state"]["key"], dtype=np.uint32)
    np_state["state"] = {"key": key, "pos": int(np_state["state"]["pos"])}
    np.random.set_state(np_state)
    v, internal, gauss = meta["rng_python"]
    random.setstate((v, tuple(internal), gauss))


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.search(p.name))]
    return sorted(found)


def path_for(folder: Path, step: int) -> Path:
    return folder / f"step-{step:06d}.safetensors"


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for _, p in list_checkpoints(folder)[:-keep]:
        p.unlink(missing_ok=True)
