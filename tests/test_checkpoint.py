import json
import random

import numpy as np
import pytest
import torch
from safetensors.torch import save_file
from torch import nn

from ganforge import checkpoint
from ganforge.errors import GanforgeError


def _model_and_adam() -> tuple[nn.Module, torch.optim.Optimizer]:
    m = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 1))
    opt = torch.optim.Adam(m.parameters(), lr=1e-3, betas=(0.5, 0.9))
    m(torch.randn(5, 3)).sum().backward()
    opt.step()
    return m, opt


def test_round_trip_restores_weights_optimiser_and_every_rng(tmp_path):
    torch.manual_seed(0)
    m, opt = _model_and_adam()
    path = tmp_path / "step-000007.safetensors"
    checkpoint.save(
        path,
        step=7,
        modules={"M": m},
        optimizers={"opt": opt},
        extra_tensors={"x.y": torch.arange(3)},
        meta={"note": "hi"},
    )
    expected = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])

    torch.manual_seed(123)
    np.random.seed(123)
    random.seed(123)
    m2, opt2 = _model_and_adam()
    tensors, meta = checkpoint.read(path)
    checkpoint.restore(tensors, meta, modules={"M": m2}, optimizers={"opt": opt2})
    assert meta["step"] == 7 and meta["note"] == "hi"
    assert torch.equal(tensors["x.y"], torch.arange(3))
    for (k, a), b in zip(m.state_dict().items(), m2.state_dict().values(), strict=True):
        assert torch.equal(a, b), k
    assert opt2.param_groups[0]["betas"] == (0.5, 0.9)
    for s1, s2 in zip(opt.state.values(), opt2.state.values(), strict=True):
        assert all(torch.equal(s1[k], s2[k]) for k in s1)
    got = (torch.rand(3), np.random.rand(3), [random.random() for _ in range(3)])
    assert torch.equal(got[0], expected[0])
    assert np.array_equal(got[1], expected[1]) and got[2] == expected[2]


def test_atomic_write_leaves_no_temporary_file(tmp_path):
    target = tmp_path / "f.bin"
    checkpoint.atomic_write(target, b"old")
    checkpoint.atomic_write(target, b"new")
    assert target.read_bytes() == b"new"
    assert [p.name for p in tmp_path.iterdir()] == ["f.bin"]


def test_listing_and_pruning_keep_the_newest(tmp_path):
    for step in (3, 10, 7, 100):
        (tmp_path / f"step-{step:06d}.safetensors").write_bytes(b"")
    (tmp_path / "notes.txt").write_text("kept")
    assert [s for s, _ in checkpoint.list_checkpoints(tmp_path)] == [3, 7, 10, 100]
    checkpoint.prune(tmp_path, keep=2)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "notes.txt",
        "step-000010.safetensors",
        "step-000100.safetensors",
    ]
    assert checkpoint.list_checkpoints(tmp_path / "missing") == []


@pytest.mark.parametrize("content", [b"", b"garbage", b"\x08\x00\x00\x00\x00\x00\x00\x00{}"])
def test_unreadable_files_are_one_line_errors(tmp_path, content):
    path = tmp_path / "step-000001.safetensors"
    path.write_bytes(content)
    with pytest.raises(GanforgeError, match="not a readable ganforge checkpoint"):
        checkpoint.read(path)


def test_foreign_safetensors_file_is_refused(tmp_path):
    path = tmp_path / "other.safetensors"
    save_file({"w": torch.zeros(2)}, path, metadata={"meta": json.dumps({"format": "x"})})
    with pytest.raises(GanforgeError, match="not a ganforge checkpoint"):
        checkpoint.read(path)
