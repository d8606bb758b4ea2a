"""Checkpoints: one safetensors file per save, tensors plus JSON metadata, written atomically
and checked by a SHA-256 on load.

Layout of ``step-XXXXXX.safetensors``:

    tensors   G.*, D.* (state dicts of ``modules``); opt_g.<i>.<name>, opt_d.<i>.<name> (Adam's
              per-parameter state); rng.torch (and rng.cuda.<i>); <state>.<key> for every tensor
              of a named state (``states`` below)
    metadata  "meta":   JSON: format, step, optimiser param groups, numpy and python RNG states,
                        the non-tensor values of every named state under "states", and the
                        caller's ``meta``
              "sha256": hex SHA-256 of the "meta" text followed by the file's tensor payload
                        (every byte after the header), checked by ``read``: a file cut short or
                        damaged on disk is refused with one line, and ``load_latest`` falls back
                        to the previous checkpoint.

Adding state to checkpoints takes one line. Anything with ``state_dict() -> dict`` and
``load_state_dict(dict)`` (a schedule, an EMA, a meter) goes in the ``states`` mapping that the
training loop hands to ``save`` and ``restore`` (``Trainer.states``)::

    trainer.states["ema"] = ema  # saved as tensors "ema.*" and JSON meta["states"]["ema"]

Values of its state dict that are tensors become tensors ``<name>.<key>``; the others must be
JSON-serialisable (numbers, strings, lists, dicts) and are stored in the metadata. ``restore``
hands each object back the merged dict (tensors come back on the CPU). A ``nn.Module`` (an EMA
copy of G) can equally go in ``modules``. Nothing is ever unpickled: tensors come from
safetensors, everything else from JSON.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Protocol

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import load as st_load
from safetensors.torch import save as st_save
from torch import nn

from ganforge.errors import GanforgeError

FORMAT = "ganforge-checkpoint-2"
_NAME = re.compile(r"^step-(\d+)\.safetensors$")
CORRUPT_SUFFIX = ".corrupt"  # a damaged checkpoint set aside on resume, kept for inspection


class CheckpointError(GanforgeError):
    """A checkpoint file that cannot be used: unreadable, truncated, corrupted, or foreign."""


class Stateful(Protocol):
    """What a named state of a checkpoint provides (see the module docstring)."""

    def state_dict(self) -> dict[str, Any]: ...

    def load_state_dict(self, state: dict[str, Any]) -> None: ...


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


def _split_state(name: str, state: Mapping[str, Any]) -> tuple[dict[str, torch.Tensor], dict]:
    """A named state dict as (tensors ``name.key``, JSON-able rest)."""
    tensors, rest = {}, {}
    for key, value in state.items():
        if torch.is_tensor(value):
            tensors[f"{name}.{key}"] = value.detach().cpu().contiguous()
        else:
            rest[key] = value
    return tensors, rest


def _digest(meta_text: str, data: bytes, header_end: int) -> str:
    """SHA-256 of the metadata text and the tensor payload (every byte after the header)."""
    h = hashlib.sha256(meta_text.encode())
    h.update(memoryview(data)[header_end:])
    return h.hexdigest()


def _header_end(data: bytes) -> int:
    """Offset of the first payload byte: 8 (header length, little-endian u64) + header."""
    return 8 + int.from_bytes(data[:8], "little")


def save(
    path: Path,
    *,
    step: int,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    states: Mapping[str, Stateful] | None = None,
    extra_tensors: Mapping[str, torch.Tensor] | None = None,
    meta: Mapping[str, Any] | None = None,
) -> None:
    """Save modules, optimisers, named states, every RNG state and ``meta`` to ``path``
    atomically, with a SHA-256 of the contents in the metadata."""
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
    plain: dict[str, Any] = {}
    for name, obj in (states or {}).items():
        t, plain[name] = _split_state(name, obj.state_dict())
        tensors.update(t)
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
        "states": plain,
        **(meta or {}),
    }
    text = json.dumps(info)
    # The payload's layout does not depend on the metadata, so the digest of a first
    # serialisation holds for the second, which carries it.
    first = st_save(tensors, metadata={"meta": text})
    digest = _digest(text, first, _header_end(first))
    data = st_save(tensors, metadata={"meta": text, "sha256": digest})
    if _digest(text, data, _header_end(data)) != digest:  # pragma: no cover - a layout change
        raise RuntimeError("safetensors laid out the same tensors differently twice")
    atomic_write(path, data)


def read(path: Path) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """(tensors, metadata) of a checkpoint; a damaged or foreign file raises ``CheckpointError``.

    The header is parsed as JSON and the payload checked against its SHA-256 before any tensor
    is built; nothing is unpickled.
    """
    try:
        data = path.read_bytes()
    except OSError as e:
        raise CheckpointError(f"{path}: cannot read the checkpoint ({e.strerror})") from None
    end = _header_end(data) if len(data) >= 8 else 0
    try:
        if end == 0 or end > len(data):
            raise ValueError(f"{len(data)} bytes, too short for its header")
        header = json.loads(data[8:end])
        if not isinstance(header, dict):
            raise ValueError("the header is not a JSON object")
        fields = header.get("__metadata__") or {}
        text = fields["meta"]
        meta = json.loads(text)
    except (ValueError, KeyError, TypeError, UnicodeDecodeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise CheckpointError(f"{path}: not a readable ganforge checkpoint ({reason})") from None
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        found = meta.get("format") if isinstance(meta, dict) else None
        raise CheckpointError(f"{path}: not a ganforge checkpoint (format {found!r})")
    if fields.get("sha256") != _digest(text, data, end):
        raise CheckpointError(
            f"{path}: corrupted checkpoint (SHA-256 mismatch: the file was cut short or "
            "damaged on disk)"
        )
    try:
        tensors = dict(sorted(st_load(data).items()))  # in key order, as written
    except (SafetensorError, ValueError) as e:  # pragma: no cover - the digest matched
        raise CheckpointError(f"{path}: not a readable ganforge checkpoint ({e})") from None
    return tensors, meta


def load_latest(
    folder: Path, *, set_aside: bool = False
) -> tuple[Path, dict[str, torch.Tensor], dict[str, Any]]:
    """(path, tensors, metadata) of the newest checkpoint in ``folder`` that reads back intact.

    Newer checkpoints that fail (``CheckpointError``) are skipped with one warning line; with
    ``set_aside`` they are renamed ``*.corrupt``, so that pruning can never keep a damaged
    file in place of a good one. Raises ``CheckpointError`` when none is usable (the error of
    the newest) and ``GanforgeError`` when there are none.
    """
    found = list_checkpoints(folder)
    if not found:
        raise GanforgeError(f"{folder.parent} has no checkpoint to load")
    bad: list[tuple[Path, CheckpointError]] = []
    for _, path in reversed(found):
        try:
            tensors, meta = read(path)
        except CheckpointError as e:
            bad.append((path, e))
            continue
        if bad:
            more = f" (and {len(bad) - 1} newer ones)" if len(bad) > 1 else ""
            aside = f", set aside as *{CORRUPT_SUFFIX}" if set_aside else ""
            warnings.warn(f"{bad[0][1]}{more}{aside}; using {path.name} instead", stacklevel=2)
            if set_aside:
                for p, _ in bad:
                    p.replace(p.with_name(p.name + CORRUPT_SUFFIX))
        return path, tensors, meta
    raise bad[0][1]


def clean_temporary(folder: Path) -> None:
    """Delete the temporary files of writes that a crash interrupted (``.step-*.tmp``)."""
    if folder.is_dir():
        for p in folder.glob(".step-*.safetensors.tmp"):
            p.unlink(missing_ok=True)


def restore(
    tensors: Mapping[str, torch.Tensor],
    meta: Mapping[str, Any],
    *,
    modules: Mapping[str, nn.Module],
    optimizers: Mapping[str, torch.optim.Optimizer],
    states: Mapping[str, Stateful] | None = None,
    rng: bool = True,
) -> None:
    """Load what ``save`` wrote into live modules, optimisers and named states, and the RNGs."""
    for name, m in modules.items():
        m.load_state_dict(subset(tensors, name))
    for name, opt in optimizers.items():
        _load_optimizer(name, opt, tensors, meta["optimizer_groups"][name])
    saved = meta.get("states", {})
    for name, obj in (states or {}).items():
        if name not in saved:
            raise CheckpointError(f"the checkpoint holds no state '{name}' (made by another setup)")
        obj.load_state_dict(subset(tensors, name) | saved[name])
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


def meta_of(path: Path) -> dict[str, Any] | None:
    """A checkpoint file's metadata, read without loading its tensors (nor checking them), or
    None when there is no such file or it cannot tell."""
    try:
        with safe_open(str(path), framework="pt") as f:
            meta = json.loads((f.metadata() or {})["meta"])
    except (SafetensorError, OSError, KeyError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def step_of(path: Path) -> int | None:
    """The step a checkpoint file records, or None when it cannot tell."""
    try:
        return int((meta_of(path) or {})["step"])
    except (KeyError, TypeError, ValueError):
        return None


def list_checkpoints(folder: Path) -> list[tuple[int, Path]]:
    """(step, path) of every checkpoint in ``folder``, oldest first."""
    if not folder.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in folder.iterdir() if (m := _NAME.match(p.name))]
    return sorted(found)


def path_for(folder: Path, step: int) -> Path:
    return folder / f"step-{step:06d}.safetensors"


def prune(folder: Path, keep: int) -> None:
    """Delete all but the newest ``keep`` checkpoints."""
    for _, p in list_checkpoints(folder)[:-keep]:
        p.unlink(missing_ok=True)
