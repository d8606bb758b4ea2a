"""Device choice, mixed precision and batches on the device; on CPU, the default path must be
the plain one (no wrapper, same numbers)."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from conftest import TINY, read_metrics
from ganforge import nets
from ganforge.config import Config, ModelConfig, TrainConfig
from ganforge.data import Dataset
from ganforge.errors import ConfigError
from ganforge.train import device as devices
from ganforge.train.distributed import Dist
from ganforge.train.loop import build_step

CPU = torch.device("cpu")


def test_auto_is_cpu_without_cuda_and_cuda_without_it_is_refused():
    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert devices.resolve("auto") == torch.device("cpu")
    assert devices.resolve("cpu") == torch.device("cpu")
    with pytest.raises(ConfigError, match="CUDA is not available"):
        devices.resolve("cuda")


@pytest.mark.parametrize(
    ("threads", "local_world", "cores", "expected"),
    [(0, 1, 8, 0), (3, 4, 8, 3), (0, 2, 8, 4), (0, 4, 2, 1)],
)
def test_threads_are_shared_among_the_processes_of_a_machine(
    monkeypatch, threads, local_world, cores, expected
):
    monkeypatch.setattr(devices.os, "cpu_count", lambda: cores)
    assert devices.threads_per_process(threads, local_world) == expected


def test_default_cpu_path_runs_the_plain_modules():
    cfg = Config(model=ModelConfig(latent_dim=4, g_hidden=(8,), d_hidden=(8,)))
    g, d = nets.build(cfg.model, (1, 4, 4))
    rt = devices.runtime(g, d, cfg.train, torch.device("cpu"), Dist())
    assert rt.note is None
    assert rt.G is g and rt.D is d and rt.shard == (0, 1)
    assert not rt.amp.enabled


def test_autocast_wrapper_returns_fp32_and_unwraps():
    m = nn.Linear(3, 2)
    run = devices.runtime_module(m, torch.device("cpu"), "bf16", True, False)
    assert isinstance(run, devices.Autocast) and devices.unwrap(run) is m
    x = torch.randn(4, 3)
    y = run(x)
    assert y.dtype == torch.float32
    # bf16 keeps 8 bits of mantissa: the product agrees with fp32 to ~1 %
    assert_close(y, m(x), rtol=3e-2, atol=3e-2)
    assert not torch.equal(y, m(x))  # it did run in bf16


def test_fp16_loss_scaling_changes_no_number():
    """Scaling the loss by S = 2^16 and the gradients back by 1/S is exact in float32, so the
    step with fp16's GradScaler (no autocast here) takes the same steps as the plain one."""
    cfg = Config(model=ModelConfig(latent_dim=4, g_hidden=(8,), d_hidden=(8,)))
    torch.manual_seed(0)
    plain = build_step(cfg, (1, 4, 4), torch.device("cpu"))
    scaled = copy.deepcopy(plain)
    scaled.amp = devices.Precision("fp16", torch.device("cpu"))
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        real = torch.rand(6, 1, 4, 4, generator=gen) * 2 - 1
        state = torch.get_rng_state()
        a = plain([real], measure=True)
        torch.set_rng_state(state)
        b = scaled([real], measure=True)
        assert_close(b["grad_d"], a["grad_d"], rtol=0, atol=0)  # measured after unscaling
    assert all(s.get_scale() == 2.0**16 for s in scaled.amp.scalers.values())
    for p, q in zip(plain.G.parameters(), scaled.G.parameters(), strict=True):
        assert torch.equal(p, q)
    for p, q in zip(plain.D.parameters(), scaled.D.parameters(), strict=True):
        assert torch.equal(p, q)


@pytest.mark.parametrize("precision", ["bf16", "fp16"])
def test_mixed_precision_runs_train_on_cpu(cli, tmp_path, precision):
    run = tmp_path / precision
    code, _, err = cli(
        "train", "--out", run, "--steps", "5", "--quiet", *TINY, f"precision={precision}"
    )
    assert code == 0, err
    rows = read_metrics(run)
    assert rows[-1]["step"] == 5 and 0 < rows[-1]["d_real"] < 1


def test_precision_and_device_are_checked():
    from ganforge import config as cfglib

    with pytest.raises(ConfigError, match=r"train\.precision: must be fp32, tf32, bf16 or fp16"):
        cfglib.build(overrides=["precision=fp8"])
    with pytest.raises(ConfigError, match=r"train\.device: must be auto, cpu, cuda or cuda:N"):
        cfglib.build(overrides=["device=cuda:x"])


def test_batches_on_cpu_are_the_data_sets_own():
    x = torch.randint(0, 256, (10, 1, 2, 2), dtype=torch.uint8)
    data = Dataset(x)
    idx = torch.tensor([3, 1, 4])
    got = devices.DeviceBatches(data, torch.device("cpu")).get(idx)
    assert torch.equal(got, data.batch(idx))
    assert_close(got, x[idx].float() / 127.5 - 1)


def test_convolutional_nets_train_in_nhwc_on_cpu_with_the_numbers_of_nchw():
    """train.channels_last on the CPU: a convolutional G and D are put in NHWC layout in place
    (the MLPs untouched), batches of images come in NHWC, and one step gives the losses of the
    NCHW step to float32 rounding (the layout changes the kernels, not the maths)."""
    model = ModelConfig(arch="dcgan", latent_dim=8, width=4)
    torch.manual_seed(0)
    plain = build_step(
        Config(model=model, train=TrainConfig(channels_last=False)), (1, 28, 28), CPU
    )
    torch.manual_seed(0)
    nhwc = build_step(Config(model=model), (1, 28, 28), CPU)  # the default: channels_last
    for step, layout in ((nhwc, torch.channels_last), (plain, torch.contiguous_format)):
        convs = [m for m in step.G.modules() if isinstance(m, nn.modules.conv._ConvNd)]
        assert convs and all(c.weight.is_contiguous(memory_format=layout) for c in convs)
    # the layout did change: NHWC weights with more than one input channel are not NCHW's
    assert not any(p.is_contiguous() for p in nhwc.D.parameters() if p.ndim == 4 and p.shape[1] > 1)
    mlp = nn.Sequential(nn.Linear(3, 2))
    assert devices.runtime_module(mlp, CPU, "fp32", True, False) is mlp
    assert mlp[0].weight.is_contiguous()
    data = Dataset(torch.randint(0, 256, (8, 1, 28, 28), dtype=torch.uint8))
    idx = torch.arange(8)
    x = devices.DeviceBatches(data, CPU, channels_last=True).get(idx)
    assert x.is_contiguous(memory_format=torch.channels_last) and torch.equal(x, data.batch(idx))
    state = torch.get_rng_state()
    a = plain([data.batch(idx)], measure=True)
    torch.set_rng_state(state)
    b = nhwc([x], measure=True)
    for key in ("loss_d", "loss_g", "d_real", "d_fake"):
        assert_close(b[key], a[key], rtol=1e-4, atol=1e-5)
