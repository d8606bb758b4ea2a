"""Where and how the step runs: the device, mixed precision, memory layout, compilation, and
getting batches onto the device.

The CPU path stays plain: fp32, eager modules, batches indexed from the tensor in memory; of
the options below only the memory layout applies there. On CUDA:

- ``train.precision``: ``bf16`` or ``fp16`` run G's and D's forwards under ``torch.autocast``
  (Micikevicius et al. 2018, "Mixed Precision Training"); fp16's narrow range (max 65,504,
  smallest normal 6e-5) needs loss scaling, ``L -> S * L`` before backward and ``g -> g / S``
  before the step, with S lowered when a gradient overflows: ``torch.amp.GradScaler``, one per
  optimiser. bf16 keeps fp32's exponent range and needs none. ``tf32`` keeps fp32 storage and
  lets matmuls and convolutions use TF32 tensor cores (10-bit mantissa).
- ``train.channels_last``: convolutional G and D in NHWC layout, which tensor-core convolutions
  read directly (NCHW costs a transpose per layer). On the CPU too: oneDNN's convolutions work
  in a blocked NHWC-like layout, and fed NCHW they reorder every input, weight and gradient
  (mnist-best on both cores: a step 0.75x as long in NHWC, docs/benchmarks.md).
- ``train.cudnn_benchmark``: cuDNN times its convolution algorithms once per input shape and
  keeps the fastest (the shapes of a GAN step never change).
- ``train.compile``: ``torch.compile`` on G and D. Off by default: measured slower than eager on
  the CPU for these small models (compile time, and graph breaks around BatchNorm in train mode).
- Batches: a data set that fits in ``GPU_DATA_BYTES`` is copied to the GPU once and indexed
  there; a larger one goes through pinned host buffers and non-blocking copies.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.parallel import DistributedDataParallel

from ganforge.config import TrainConfig
from ganforge.data import Dataset
from ganforge.errors import ConfigError
from ganforge.train import distributed
from ganforge.train.distributed import CPU, Dist

# train.precision -> the autocast dtype (None: no autocast)
PRECISIONS: dict[str, torch.dtype | None] = {
    "fp32": None,
    "tf32": None,
    "bf16": torch.bfloat16,
    "fp16": torch.float16,
}
# Data sets up to this size live on the GPU (MNIST 5k: 4 MB, CIFAR-10: 150 MB as uint8).
GPU_DATA_BYTES = 2 << 30


def resolve(name: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> cuda when available, else cpu; ``cuda`` -> this process's GPU (its local rank
    under torchrun); ``cuda:N`` -> GPU N. A CUDA device is made the current one."""
    if name == "auto":
        name = "cuda" if torch.cuda.is_available() else "cpu"
    if name == "cpu":
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise ConfigError(f"train.device={name}, but CUDA is not available here; use cpu or auto")
    device = torch.device(name if ":" in name else f"cuda:{local_rank}")
    assert device.index is not None
    if device.index >= torch.cuda.device_count():
        raise ConfigError(
            f"train.device: {device} does not exist ({torch.cuda.device_count()} GPUs here)"
        )
    torch.cuda.set_device(device)
    return device


def configure(device: torch.device, precision: str, cudnn_benchmark: bool) -> None:
    """Process-wide backend switches for ``device`` (none on CPU)."""
    if device.type != "cuda":
        return
    torch.backends.cudnn.benchmark = cudnn_benchmark
    tf32 = precision == "tf32"
    torch.backends.cuda.matmul.allow_tf32 = tf32
    torch.backends.cudnn.allow_tf32 = tf32


def threads_per_process(threads: int, local_world: int) -> int:
    """torch's CPU threads for one of ``local_world`` processes on this machine: ``threads`` when
    set, else the cores shared out (N processes of N threads each would fight over the cores)."""
    if threads:
        return threads
    if local_world <= 1:
        return 0  # keep torch's default
    return max(1, (os.cpu_count() or 1) // local_world)


def is_convolutional(m: nn.Module) -> bool:
    return any(isinstance(x, nn.modules.conv._ConvNd) for x in m.modules())


class Autocast(nn.Module):
    """Runs ``inner`` under ``torch.autocast``; the output goes back to fp32, so losses, sigmoids
    and the other network's input see fp32 (autocast recasts them to ``dtype`` where it pays)."""

    def __init__(self, inner: nn.Module, device_type: str, dtype: torch.dtype) -> None:
        super().__init__()
        self.inner = inner
        self.device_type = device_type
        self.dtype = dtype

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        with torch.autocast(self.device_type, dtype=self.dtype):
            out = self.inner(x)
        return out.float()


def unwrap(m: nn.Module) -> nn.Module:
    """The module the user built, inside any DDP, autocast or ``torch.compile`` wrapper (for
    code that calls its own methods, such as D's features for feature matching)."""
    while True:
        if isinstance(m, Autocast):
            m = m.inner
        elif isinstance(m, DistributedDataParallel):
            m = m.module
        elif isinstance(getattr(m, "_orig_mod", None), nn.Module):  # torch.compile's wrapper
            m = m._orig_mod  # type: ignore[assignment]
        else:
            return m


def runtime_module(
    m: nn.Module, device: torch.device, precision: str, channels_last: bool, compile: bool
) -> nn.Module:
    """The module the step calls: ``m`` itself, in NHWC layout (in place) when convolutional and
    ``channels_last``, compiled and/or under autocast when asked for. Checkpoints keep using
    ``m`` (saved contiguous, loaded into its layout)."""
    if channels_last and is_convolutional(m):
        m.to(memory_format=torch.channels_last)  # type: ignore[call-overload]
    out: nn.Module = m
    if compile:
        out = torch.compile(out)  # type: ignore[assignment]
    dtype = PRECISIONS[precision]
    if dtype is not None:
        out = Autocast(out, device.type, dtype)
    return out


class Precision:
    """Loss scaling for fp16 (``torch.amp.GradScaler``, one per optimiser); for every other
    precision each method is the plain call (``backward``, ``step``) or nothing."""

    def __init__(self, precision: str = "fp32", device: torch.device = CPU) -> None:
        self.enabled = precision == "fp16"
        self.device_type = device.type
        self.scalers: dict[int, torch.amp.GradScaler] = {}

    def _scaler(self, opt: torch.optim.Optimizer) -> torch.amp.GradScaler:
        key = id(opt)
        if key not in self.scalers:
            self.scalers[key] = torch.amp.GradScaler(self.device_type)
        return self.scalers[key]

    def backward(self, loss: torch.Tensor, opt: torch.optim.Optimizer) -> None:
        """``loss.backward()``; with fp16 ``(S * loss).backward()``, S the scale of ``opt``."""
        if self.enabled:
            self._scaler(opt).scale(loss).backward()
        else:
            loss.backward()

    def unscale(self, opt: torch.optim.Optimizer) -> None:
        """Divide ``opt``'s gradients by S now (before measuring or clipping them)."""
        if self.enabled:
            self._scaler(opt).unscale_(opt)

    def step(self, opt: torch.optim.Optimizer) -> None:
        """``opt.step()``; with fp16 skipped when a gradient is inf/NaN, and S updated."""
        if self.enabled:
            scaler = self._scaler(opt)
            scaler.step(opt)
            scaler.update()
        else:
            opt.step()


class DeviceBatches:
    """Batches of ``data`` on ``device``: ``get(idx)`` -> float32 ``[B, ...]`` in data space.

    CPU: ``data.batch(idx)``, as without this class. CUDA: the data set copied once to the GPU
    when it fits in ``GPU_DATA_BYTES`` (a step then copies only the 8-byte indices); otherwise
    each batch is gathered into one of two pinned host buffers and copied without blocking, a
    CUDA event telling when a buffer may be written again.
    """

    def __init__(self, data: Dataset, device: torch.device, channels_last: bool = False) -> None:
        self.data, self.device = data, device
        self.channels_last = channels_last and data.kind == "image"
        self.on_device: Dataset | None = None
        self.pinned: list[torch.Tensor] = []
        self.events: list[Any] = []
        self.turn = 0
        if device.type != "cuda":
            return
        if data.x.numel() * data.x.element_size() <= GPU_DATA_BYTES:
            self.on_device = Dataset(data.x.to(device), name=data.name)
        else:
            self.events = [None, None]

    def _pinned(self, n: int) -> torch.Tensor:
        """Pinned buffer number ``turn`` of ``n`` samples, free to be written."""
        slot = self.turn
        self.turn ^= 1
        if len(self.pinned) <= slot or len(self.pinned[slot]) != n:
            buf = torch.empty((n, *self.data.x.shape[1:]), dtype=self.data.x.dtype)
            if slot < len(self.pinned):
                self.pinned[slot] = buf.pin_memory()
            else:
                self.pinned.append(buf.pin_memory())
        event = self.events[slot]
        if event is not None:
            event.synchronize()  # the copy that last read this buffer has finished
        return self.pinned[slot]

    def get(self, idx: torch.Tensor) -> torch.Tensor:
        if self.device.type != "cuda":
            x = self.data.batch(idx)
        elif self.on_device is not None:
            x = self.on_device.batch(idx.to(self.device, non_blocking=True))
        else:
            slot = self.turn
            buf = self._pinned(len(idx))
            torch.index_select(self.data.x, 0, idx, out=buf)
            raw = buf.to(self.device, non_blocking=True)
            event = torch.cuda.Event()
            event.record()
            self.events[slot] = event
            x = to_data_space(raw)
        if self.channels_last:
            x = x.contiguous(memory_format=torch.channels_last)
        return x


def to_data_space(raw: torch.Tensor) -> torch.Tensor:
    """Stored samples as float32 in data space, as ``Dataset.batch`` converts them."""
    if raw.dtype == torch.uint8:
        return raw.float().div_(127.5).sub_(1.0)  # 0..255 -> [-1, 1]
    return raw.float()


@dataclass
class Runtime:
    """What the step runs: G and D as it calls them, the loss scaling, its shard of the noise,
    and a one-line note for the user (or None)."""

    G: nn.Module
    D: nn.Module
    amp: Precision
    shard: tuple[int, int]
    note: str | None = None


def runtime(
    g: nn.Module, d: nn.Module, t: TrainConfig, device: torch.device, dist: Dist
) -> Runtime:
    """The modules the step runs for the user's G and D: SyncBatchNorm (GPU, torchrun), NHWC
    layout, ``torch.compile`` and autocast when asked for, then DDP under torchrun. On one CPU
    process with the defaults these are ``g`` and ``d`` themselves. Checkpoints keep using
    ``g`` and ``d`` (``unwrap`` finds them inside the wrappers)."""
    notes = [distributed.sync_batchnorm(m, dist, device, t.sync_bn) for m in (g, d)]
    run = [runtime_module(m, device, t.precision, t.channels_last, t.compile) for m in (g, d)]
    g_run, d_run = (distributed.wrap(m, dist, device) for m in run)
    return Runtime(
        g_run,
        d_run,
        Precision(t.precision, device),
        (dist.rank, dist.world),
        next((n for n in notes if n), None),
    )


def restore_cuda_rng(
    tensors: Mapping[str, torch.Tensor], meta: Mapping[str, Any], device: torch.device
) -> None:
    """Under torchrun every rank draws the same numbers, so each GPU takes the generator state
    rank 0's GPU saved (``checkpoint.restore`` sets GPU i from the state saved for GPU i)."""
    saved = meta.get("rng_cuda_device")
    if device.type == "cuda" and saved is not None and f"rng.cuda.{saved}" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng.cuda.{saved}"], device)
