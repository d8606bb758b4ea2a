"""Data-parallel training on CPU: 2 processes, Gloo, tiny models.

One launch of 2 ranks (module fixture) trains several runs; the tests read what they left:
- every rank ends with bit-identical G and D weights (with and without BatchNorm in G, and
  on the clock with the rates decaying over its seconds);
- 2 ranks with batch B/2 each take the steps of 1 process with batch B (no BatchNorm);
- rank 0 alone writes files;
- a run of 2 ranks stopped and resumed with 2 ranks ends as the run that never stopped.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pytest
import torch
import torch.distributed as dist
import torch.multiprocessing as mp
from safetensors.torch import load_file, save_file
from torch.testing import assert_close

from conftest import TINY, read_metrics
from ganforge import config as cfglib
from ganforge.errors import GanforgeError
from ganforge.train.loop import TIMING_KEYS, train

WORLD = 2
B = 16  # the single process's batch; each rank takes B / 2
NO_BN = [*TINY, "model.g_batchnorm=false", "train.d_steps=2"]


def _cfg(overrides: list[str]) -> cfglib.Config:
    return cfglib.build(overrides=overrides)


def _plain_weights(G: torch.nn.Module, D: torch.nn.Module) -> dict[str, torch.Tensor]:
    out = {f"G.{k}": v.detach().clone() for k, v in G.state_dict().items()}
    out |= {f"D.{k}": v.detach().clone() for k, v in D.state_dict().items()}
    return out


def _worker(rank: int, port: int, tmp: str) -> None:
    """One rank: trains the runs the tests read, into ``tmp``."""
    os.environ.update(
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
        RANK=str(rank),
        LOCAL_RANK=str(rank),
        WORLD_SIZE=str(WORLD),
        LOCAL_WORLD_SIZE=str(WORLD),
    )
    dist.init_process_group("gloo")
    root = Path(tmp)
    from ganforge.train import loop

    trainers: list[loop.Trainer] = []
    original_fit = loop.Trainer.fit

    def fit(self: loop.Trainer) -> loop.Result:  # keep each trainer to read its weights
        trainers.append(self)
        return original_fit(self)

    loop.Trainer.fit = fit  # type: ignore[method-assign]
    try:
        half = [f"train.batch_size={B // WORLD}"]
        # Each rank is told its own folder: rank 1's must never appear.
        train(_cfg([*NO_BN, *half, "steps=10"]), root / f"nobn-rank{rank}", quiet=True)
        train(_cfg([*TINY, *half, "steps=10"]), root / "bn-whole", quiet=True)
        train(_cfg([*TINY, *half, "steps=5"]), root / "bn-parts", quiet=True)
        train(
            _cfg([]),
            resume=root / "bn-parts",
            resume_overrides={"train.steps": 10},
            quiet=True,
        )
        # WGAN-GP: the penalty's double backward runs through D's DDP wrapper
        train(_cfg([*NO_BN, *half, "steps=5", "train.loss=wgan-gp"]), root / "gp", quiet=True)
        # on the clock with the rates decaying over its seconds: the ranks agree on the clock
        clock = ["train.seconds=1", "steps=100000", "optim.decay_from=0", "train.log_every=2"]
        train(_cfg([*NO_BN, *half, *clock]), root / "clock", quiet=True)
        names = ("nobn", "bn-whole", "bn-first", "bn-parts", "gp", "clock")
        for name, t in zip(names, trainers, strict=True):
            save_file(_plain_weights(t.modules["G"], t.modules["D"]), root / f"{name}.{rank}.st")
    finally:
        dist.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="module")
def ranks(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tmp = tmp_path_factory.mktemp("ddp")
    mp.spawn(_worker, args=(_free_port(), str(tmp)), nprocs=WORLD, join=True)
    return tmp


@pytest.mark.slow  # 2 processes (Gloo): the module's launch of 2 ranks
@pytest.mark.parametrize("run", ["nobn", "bn-whole", "bn-parts", "gp", "clock"])
def test_every_rank_holds_bit_identical_weights(ranks: Path, run: str) -> None:
    a, b = load_file(ranks / f"{run}.0.st"), load_file(ranks / f"{run}.1.st")
    params = [k for k in a if "running_" not in k and "num_batches" not in k]
    assert len(params) >= 6
    for k in params:
        assert torch.equal(a[k], b[k]), k
    # and they trained: not the initial weights of the shorter run
    first = load_file(ranks / "bn-first.0.st")
    if run.startswith("bn"):
        assert not torch.equal(a["G.net.0.weight"], first["G.net.0.weight"])


@pytest.mark.slow  # 2 processes (Gloo): the module's launch of 2 ranks
def test_gradient_penalty_trains_under_ddp(ranks: Path) -> None:
    """WGAN-GP on 2 ranks: the weights stay identical (above) and finite, and training moved
    them from the initial weights."""
    a = load_file(ranks / "gp.0.st")
    init = load_initial(ranks / "gp")
    assert all(torch.isfinite(v).all() for v in a.values())
    assert not torch.equal(a["D.net.1.weight"], init["D.net.1.weight"])
    rows = read_metrics(ranks / "gp")
    assert [r["step"] for r in rows] == [5]


@pytest.mark.slow  # 2 processes (Gloo): the module's launch of 2 ranks
def test_two_ranks_with_half_batches_match_one_process(ranks: Path, tmp_path: Path) -> None:
    """No BatchNorm: DDP's mean of the two half-batch gradients is the full batch's gradient, and
    the ranks' data and z slices together are the single process's batch. Float32 sums in
    another order differ by ~1e-7 relative; after 10 steps (20 Adam steps of D) the weights agree
    within 1e-5 (the updates are 2e-4 each), the metrics within 1e-5 relative."""
    run = tmp_path / "one"
    result = train(_cfg([*NO_BN, f"train.batch_size={B}", "steps=10"]), run, quiet=True)
    one = _plain_weights(result_modules(run)["G"], result_modules(run)["D"])
    two = load_file(ranks / "nobn.0.st")
    assert one.keys() == two.keys()
    for k in one:
        assert_close(two[k], one[k], rtol=0, atol=1e-5)
    moved = (one["G.net.0.weight"] - load_initial(run)["G.net.0.weight"]).abs().max()
    assert moved > 1e-3  # the tolerance is well below what training moved
    rows_one = read_metrics(run)
    rows_two = read_metrics(ranks / "nobn-rank0")
    assert [r["step"] for r in rows_two] == [r["step"] for r in rows_one] == [5, 10]
    for r1, r2 in zip(rows_one, rows_two, strict=True):
        for k in r1:
            if k not in TIMING_KEYS:
                assert_close(r2[k], r1[k], rtol=1e-5, atol=1e-6)
    assert result.step == 10


def result_modules(run: Path) -> dict[str, torch.nn.Module]:
    from ganforge import checkpoint, nets

    cfg = cfglib.from_json(run / "config.json")
    g, d = nets.build(cfg.model, (1, 28, 28))
    tensors, _ = checkpoint.read(sorted((run / "checkpoints").glob("*.safetensors"))[-1])
    g.load_state_dict(checkpoint.subset(tensors, "G"))
    d.load_state_dict(checkpoint.subset(tensors, "D"))
    return {"G": g, "D": d}


def load_initial(run: Path) -> dict[str, torch.Tensor]:
    from ganforge import nets

    cfg = cfglib.from_json(run / "config.json")
    torch.manual_seed(cfg.train.seed)
    g, d = nets.build(cfg.model, (1, 28, 28))
    return _plain_weights(g, d)


@pytest.mark.slow  # 2 processes (Gloo): the module's launch of 2 ranks
def test_rank_zero_alone_writes(ranks: Path) -> None:
    assert not (ranks / "nobn-rank1").exists()
    run = ranks / "nobn-rank0"
    assert {p.name for p in run.iterdir()} >= {"config.json", "metrics.jsonl", "loss.png"}
    assert [p.name for p in sorted((run / "checkpoints").iterdir())] == [
        "step-000005.safetensors",
        "step-000010.safetensors",
    ]
    assert len(list((run / "samples").iterdir())) == 2  # steps 0 and 10


@pytest.mark.slow  # 2 processes (Gloo): the module's launch of 2 ranks
def test_checkpoint_of_rank_zero_holds_its_weights(ranks: Path) -> None:
    saved = load_file(ranks / "bn-whole" / "checkpoints" / "step-000010.safetensors")
    live = load_file(ranks / "bn-whole.0.st")
    for k, v in live.items():
        assert torch.equal(saved[k], v), k


@pytest.mark.slow  # 2 processes (Gloo): the module's launch of 2 ranks
def test_stopped_and_resumed_with_two_ranks_ends_as_the_whole_run(ranks: Path) -> None:
    a, b = load_file(ranks / "bn-whole.0.st"), load_file(ranks / "bn-parts.0.st")
    assert all(torch.equal(a[k], b[k]) for k in a)
    whole, parts = read_metrics(ranks / "bn-whole"), read_metrics(ranks / "bn-parts")
    untimed = [
        [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]
        for rows in (whole, parts)
    ]
    assert untimed[0] == untimed[1]


@pytest.mark.slow  # 2 processes (Gloo): the module's launch of 2 ranks
def test_resume_with_another_world_size_is_refused(ranks: Path) -> None:
    with pytest.raises(GanforgeError, match="trained by 2 process"):
        train(
            _cfg([]),
            resume=ranks / "bn-whole",
            resume_overrides={"train.steps": 12},
            quiet=True,
        )
    assert np.isfinite([r["loss_d"] for r in read_metrics(ranks / "bn-whole")]).all()


@pytest.mark.slow  # torchrun's 2 ranks in subprocesses, stopped with SIGINT
def test_nproc_launches_ranks_one_speaks_and_ctrl_c_stops_them_together(tmp_path: Path) -> None:
    """`ganforge train --nproc 2`: torchrun's engine starts 2 ranks; a Ctrl-C (SIGINT to the
    whole process group, as a terminal sends it) stops both at the next log step, rank 0 writes
    the checkpoint, exit 130, one summary, no traceback."""
    run = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganforge", "train", "--nproc", "2", "--out", str(run)]
    cmd += ["--steps", "1000000", *TINY, "train.batch_size=8", "ckpt_every=1000000"]
    proc = subprocess.Popen(
        cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True
    )
    deadline = time.time() + 120
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.1)
    os.killpg(proc.pid, signal.SIGINT)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 130, err
    assert out.count("run folder:") == 1
    assert "Traceback" not in err and "continue with `ganforge train --resume" in err
    assert err.count("SyncBatchNorm needs CUDA") == 1  # G has BatchNorm; said by rank 0 alone
    ckpts = list((run / "checkpoints").glob("step-*.safetensors"))
    assert len(ckpts) == 1
    stopped = int(ckpts[0].stem.split("-")[1])
    assert stopped % 5 == 0 and read_metrics(run)[-1]["step"] == stopped  # a log step
    assert cfglib.from_json(run / "config.json").train.batch_size == 8


@pytest.mark.parametrize(
    ("args", "code", "message"),
    [
        (["--nproc", "0"], 2, "--nproc must be at least 1"),
        (["--nproc", "2", "steps=0"], 2, "train.steps: must be > 0"),
        (["--nproc", "2", "--resume", "nowhere"], 1, "is not a ganforge run"),
    ],
)
def test_nproc_mistakes_are_one_line_before_any_process_starts(
    cli, tmp_path: Path, args: list[str], code: int, message: str
) -> None:
    got, _, err = cli("train", "--out", tmp_path / "r", *args)
    assert got == code and message in err
    assert len(err.strip().splitlines()) == 1
    assert not (tmp_path / "r").exists()


def test_nproc_refuses_an_existing_run_folder(cli, tmp_path: Path) -> None:
    (tmp_path / "r").mkdir()
    (tmp_path / "r" / "config.json").write_text("{}")
    got, _, err = cli("train", "--nproc", "2", "--out", tmp_path / "r")
    assert got == 1 and "already exists" in err
