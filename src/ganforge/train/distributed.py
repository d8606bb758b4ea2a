"""Data-parallel training with PyTorch's own engine: torchrun starts the processes, DDP
(``torch.nn.parallel.DistributedDataParallel``) averages the gradients.

How a run is split over W processes (ranks), each with ``train.batch_size`` = B samples:

- Every rank seeds torch with the same seed, so G and D start bit-identical (DDP also
  broadcasts rank 0's weights when it wraps them), and every rank draws the same random numbers.
- Data: every rank holds the same ``BatchSampler`` over the whole data set with the global batch
  W * B and takes its own slice ``[rank * B, (rank + 1) * B)`` of each global batch, as
  ``torch.utils.data.DistributedSampler`` gives each rank its part of one shared permutation.
  The sampler's state is the same on every rank, so rank 0's checkpoint resumes them all.
- Noise: every rank draws the global ``[W * B, latent]`` z and keeps its slice, so the fakes of
  all ranks together are those one process with batch W * B would draw.
- Gradients: DDP averages them over ranks during backward: (1/W) sum_r grad(mean_{i in r} l_i)
  = grad of the mean over the global batch. For a model without BatchNorm, W ranks with batch B
  thus take the steps of one process with batch W * B (up to float rounding). With BatchNorm,
  each rank normalises by its own batch's statistics unless SyncBatchNorm is used (GPU only).
- Rank 0 alone writes: config, metrics, samples, plots, checkpoints. The logged means are
  averaged over ranks (one all-reduce every ``train.log_every`` steps, never inside the step).
- Backends: NCCL on GPU, Gloo on CPU.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import TypeVar

import torch
import torch.distributed as dist
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganforge.errors import ConfigError, GanforgeError

T = TypeVar("T")
CPU = torch.device("cpu")
MESSAGE_BYTES = 2048  # room for an error message sent from rank 0 to the others


@dataclass(frozen=True)
class Dist:
    """This process's place in the run (a single process: rank 0 of 1)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0  # rank among the processes on this machine: picks the GPU
    local_world: int = 1
    device: torch.device = CPU  # where collectives' tensors live

    @property
    def enabled(self) -> bool:
        return self.world > 1

    @property
    def is_main(self) -> bool:
        return self.rank == 0


def from_env() -> Dist:
    """The ranks torchrun sets in the environment (RANK, WORLD_SIZE, LOCAL_RANK, ...)."""
    try:
        world = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local_rank = int(os.environ.get("LOCAL_RANK", "0"))
        local_world = int(os.environ.get("LOCAL_WORLD_SIZE", str(world)))
    except ValueError as e:
        raise ConfigError(f"torchrun's environment is not understood: {e}") from None
    return Dist(rank, world, local_rank, local_world)


_CURRENT = Dist()


def current() -> Dist:
    """The ``Dist`` of the open ``session`` (rank 0 of 1 outside one)."""
    return _CURRENT


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[Dist]:
    """Join the process group torchrun describes (NCCL on GPU, Gloo on CPU) and leave it at the
    end; a single process (no WORLD_SIZE, or 1) does nothing."""
    global _CURRENT
    env = from_env()
    if not env.enabled:
        yield env
        return
    owner = not dist.is_initialized()
    if owner:
        if device.type == "cuda":
            dist.init_process_group("nccl", device_id=device)
        else:
            dist.init_process_group("gloo")
    comm = device if device.type == "cuda" else CPU
    _CURRENT = Dist(env.rank, env.world, env.local_rank, env.local_world, comm)
    try:
        yield _CURRENT
    finally:
        _CURRENT = Dist()
        if owner:
            dist.destroy_process_group()


# --- Data and noise --------------------------------------------------------------------------


def shard(global_batch: torch.Tensor, d: Dist) -> torch.Tensor:
    """This rank's slice of a global batch ``[W * B, ...]`` -> ``[B, ...]`` (a view)."""
    if not d.enabled:
        return global_batch
    b = len(global_batch) // d.world
    return global_batch[d.rank * b : (d.rank + 1) * b]


# --- Modules ---------------------------------------------------------------------------------


def sync_batchnorm(m: nn.Module, d: Dist, device: torch.device, wanted: bool) -> str | None:
    """BatchNorm -> SyncBatchNorm in place (batch statistics over all ranks), on GPU under DDP.

    Returns a one-line note when it was wanted but cannot be done: SyncBatchNorm runs on CUDA only
    (its forward raises on CPU), so on CPU each rank keeps normalising by its own batch.
    """
    if not (wanted and d.enabled):
        return None
    has_bn = any(isinstance(x, nn.modules.batchnorm._BatchNorm) for x in m.modules())
    if not has_bn:
        return None
    if device.type != "cuda":
        return (
            "SyncBatchNorm needs CUDA: on CPU each rank's BatchNorm uses its own batch's "
            "statistics (set train.sync_bn=false to silence this)"
        )
    # Replaces the BatchNorm layers below ``m`` in place, reusing their Parameters (the
    # optimisers hold them) and buffers, so checkpoints keep their keys.
    nn.SyncBatchNorm.convert_sync_batchnorm(m)
    return None


def wrap(m: nn.Module, d: Dist, device: torch.device) -> nn.Module:
    """``m`` in DDP under torchrun (gradients averaged over ranks in backward), else ``m``.

    ``forward_sync_buffers=False``: BatchNorm's running statistics are not copied from rank 0 at
    every forward (a collective per call, for numbers only evaluation reads); rank 0's are saved.
    """
    if not d.enabled:
        return m
    ids = [device.index] if device.type == "cuda" else None
    return DistributedDataParallel(m, device_ids=ids, forward_sync_buffers=False)


def plain(m: nn.Module) -> nn.Module:
    """The module inside a DDP wrapper (for a forward that must not take part in DDP's gradient
    reduction, such as D's in the G update, which computes no gradient of D's weights)."""
    return m.module if isinstance(m, DistributedDataParallel) else m


# --- Collectives -----------------------------------------------------------------------------


def mean_across(values: Mapping[str, torch.Tensor], d: Dist) -> dict[str, torch.Tensor]:
    """Each scalar averaged over the ranks, with one all-reduce for all of them."""
    if not d.enabled or not values:
        return dict(values)
    keys = list(values)
    stacked = torch.stack([values[k].detach().float().reshape(()) for k in keys]).to(d.device)
    dist.all_reduce(stacked)  # sum over ranks
    stacked /= d.world
    return {k: stacked[i] for i, k in enumerate(keys)}


def any_across(flag: bool, d: Dist) -> bool:
    """True on every rank when ``flag`` is true on any."""
    if not d.enabled:
        return flag
    t = torch.tensor([int(flag)], device=d.device)
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item())


def barrier(d: Dist) -> None:
    if d.enabled:
        dist.barrier()


def _share_error(err: GanforgeError | None, d: Dist) -> None:
    """Send rank 0's error (or none) to every rank; every rank raises it."""
    header = torch.zeros(2, dtype=torch.int64, device=d.device)  # [exit code, message length]
    text = torch.zeros(MESSAGE_BYTES, dtype=torch.uint8, device=d.device)
    if d.is_main and err is not None:
        raw = str(err).encode()[:MESSAGE_BYTES]
        header[0], header[1] = err.exit_code, len(raw)
        text[: len(raw)] = torch.frombuffer(bytearray(raw), dtype=torch.uint8).to(d.device)
    dist.broadcast(header, 0)
    code, n = (int(v) for v in header.tolist())
    if code == 0:
        return
    dist.broadcast(text, 0)
    if err is not None:
        raise err
    message = bytes(text[:n].cpu().tolist()).decode(errors="replace")
    raise (ConfigError if code == ConfigError.exit_code else GanforgeError)(message)


def main_first(fn: Callable[[], T], d: Dist) -> T:
    """``fn()`` on rank 0, then on the others (a download happens once); a ``GanforgeError`` on
    rank 0 is raised on every rank, so that none waits for it forever."""
    if not d.enabled:
        return fn()
    err: GanforgeError | None = None
    if d.is_main:
        try:
            result = fn()
        except GanforgeError as e:
            err = e
    _share_error(err, d)
    if not d.is_main:
        result = fn()
    return result


def on_main(fn: Callable[[], None], d: Dist) -> None:
    """``fn()`` on rank 0 alone (writing the run folder); its ``GanforgeError`` reaches all."""
    if not d.enabled:
        fn()
        return
    err: GanforgeError | None = None
    if d.is_main:
        try:
            fn()
        except GanforgeError as e:
            err = e
    _share_error(err, d)


# --- Launching -------------------------------------------------------------------------------


def launch(nproc: int, fn: Callable[..., int], *args: object) -> list[int]:
    """Run ``fn(*args)`` in ``nproc`` processes on this machine with torchrun's engine
    (``torch.distributed.launcher``, as ``torchrun --standalone --nproc_per_node nproc``: a
    rendezvous on a free local port, RANK/WORLD_SIZE/... in each process's environment, the
    others stopped when one fails). ``fn`` must be importable (processes are spawned).
    Returns each rank's exit code, rank 0 first.

    Ctrl-C: the terminal sends SIGINT to every process of the foreground group, so each worker
    gets it directly and the ranks stop together at a log step with a checkpoint. This process
    ignores it meanwhile (and its agent does not pass it on), so that it collects the workers'
    exit codes instead of killing them.
    """
    import signal
    import uuid

    from torch.distributed.elastic.multiprocessing.errors import ChildFailedError
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    config = LaunchConfig(
        min_nodes=1,
        max_nodes=1,
        nproc_per_node=nproc,
        run_id=str(uuid.uuid4()),
        rdzv_backend="c10d",
        rdzv_endpoint="localhost:0",
        max_restarts=0,
        start_method="spawn",
        signals_to_handle="SIGTERM,SIGHUP,SIGQUIT",
    )
    previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
    try:
        results = elastic_launch(config, fn)(*args)
    except ChildFailedError as e:
        codes = sorted({f.exitcode for f in e.failures.values()})
        raise GanforgeError(
            f"a training process failed (exit code {', '.join(map(str, codes))}); "
            "its message is above"
        ) from None
    finally:
        signal.signal(signal.SIGINT, previous)
    return [int(results[r]) for r in sorted(results)]
