"""End-to-end runs of `ganforge train` and `ganforge sample` on tiny models."""

import json
import os
import signal
import subprocess
import sys
import time

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

from conftest import TINY, read_metrics
from ganforge import config as cfglib
from ganforge.train.loop import TIMING_KEYS

METRIC_KEYS = {
    "step",
    "loss_d",
    "loss_g",
    "d_real",
    "d_fake",
    "grad_d",
    "grad_g",
    "img_per_s",
    "elapsed_s",
}


def _weights(run):
    ckpts = sorted((run / "checkpoints").glob("step-*.safetensors"))
    t = load_file(ckpts[-1])
    return {k: v for k, v in t.items() if k.startswith(("G.", "D."))}


def _untimed(rows):
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]


def test_train_writes_the_run_folder(cli, tmp_path):
    run = tmp_path / "run"
    code, out, _ = cli("train", "--out", run, "--steps", "20", "--seed", "3", *TINY)
    assert code == 0, out
    assert f"run folder: {run}" in out
    saved = cfglib.from_json(run / "config.json")
    assert saved == cfglib.build(overrides=[*TINY, "steps=20", "seed=3"])
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [5, 10, 15, 20]
    # where a grid is drawn (every 10 steps): the diversity of the fixed-z samples and the
    # classes the shipped MNIST classifier finds among them and among as many real images; a
    # 20-step G covers few classes, which the mode-collapse rule reports
    drawn = {"diversity", "modes", "modes_real"}
    assert [set(r) - METRIC_KEYS for r in rows] == [set(), drawn, set(), drawn | {"warnings"}]
    assert [r["modes_real"] for r in rows[1::2]] == [8, 8]
    assert all(set(r) >= METRIC_KEYS for r in rows)
    assert all(0 < r["d_real"] < 1 and 0 < r["d_fake"] < 1 and r["img_per_s"] > 0 for r in rows)
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-000000.png",
        "step-000010.png",
        "step-000020.png",
    ]
    # 16 samples of 28 x 28 in a 4 x 4 grid with 2 px gaps, drawn at 2x
    assert Image.open(run / "samples" / "step-000020.png").size == (2 * 122, 2 * 122)
    assert Image.open(run / "loss.png").format == "PNG"
    # a checkpoint every 5 steps, the newest 2 kept
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == [
        "step-000015.safetensors",
        "step-000020.safetensors",
    ]
    keys = load_file(run / "checkpoints" / "step-000020.safetensors").keys()
    assert {
        "G.net.0.weight",
        "D.net.1.weight",
        "opt_g.0.exp_avg",
        "opt_d.0.exp_avg_sq",
        "rng.torch",
        "sampler.perm",
    } <= set(keys)


def test_a_run_on_the_clock_ends_with_the_step_that_spends_it(cli, tmp_path):
    """train.seconds: the step begun past the budget is the last, with its log line, grid and
    checkpoint, and the run counts as finished (exit 0, no resume hint); a budget never reached
    changes nothing; a resumed run's past training counts against the budget."""
    run = tmp_path / "run"
    code, out, err = cli(
        "train", "--out", run, "--steps", "1000000", *TINY, "train.seconds=1e-9"
    )  # fmt: skip
    assert code == 0 and "stopped" not in err and "(step 1;" in out
    assert [r["step"] for r in read_metrics(run)] == [1]
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["step-000001.safetensors"]
    assert sorted(p.name for p in (run / "samples").iterdir()) == [
        "step-000000.png",
        "step-000001.png",
    ]
    assert cli("train", "--resume", run, "--quiet")[0] == 0  # past its budget: one step more
    assert [r["step"] for r in read_metrics(run)] == [1, 2]
    timed, plain = tmp_path / "timed", tmp_path / "plain"
    assert cli("train", "--out", timed, "--steps", "12", "--quiet", *TINY, "seconds=3600")[0] == 0
    assert cli("train", "--out", plain, "--steps", "12", "--quiet", *TINY)[0] == 0
    a, b = _weights(timed), _weights(plain)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert _untimed(read_metrics(timed)) == _untimed(read_metrics(plain))
    # on the clock, the rates decay over the seconds, not over train.steps: 12 steps in far less
    # than half of an hour run at the full rates, as the plain run does
    decayed = tmp_path / "decayed"
    args = ["--steps", "12", "--quiet", *TINY, "seconds=3600", "decay_from=0.5"]
    assert cli("train", "--out", decayed, *args)[0] == 0
    c = _weights(decayed)
    assert all(np.array_equal(c[k].numpy(), b[k].numpy()) for k in b)


def test_same_seed_same_metrics_other_seed_other_metrics(cli, tmp_path):
    runs = []
    for name, seed in (("a", 1), ("b", 1), ("c", 2)):
        cli("train", "--out", tmp_path / name, "--steps", "15", "--seed", seed, "--quiet", *TINY)
        runs.append(_untimed(read_metrics(tmp_path / name)))
    assert runs[0] == runs[1]
    assert runs[0] != runs[2]


def test_resume_continues_exactly(cli, tmp_path):
    """10 steps, stop, resume to 20: the same weights and metrics as 20 steps in one go."""
    whole, parts = tmp_path / "whole", tmp_path / "parts"
    assert cli("train", "--out", whole, "--steps", "20", "--quiet", "d_steps=2", *TINY)[0] == 0
    assert cli("train", "--out", parts, "--steps", "10", "--quiet", "d_steps=2", *TINY)[0] == 0
    assert cli("train", "--resume", parts, "--steps", "20", "--quiet")[0] == 0
    a, b = _weights(whole), _weights(parts)
    assert a.keys() == b.keys()
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert _untimed(read_metrics(whole)) == _untimed(read_metrics(parts))
    assert json.loads((parts / "config.json").read_text())["train"]["steps"] == 20


def test_resume_drops_metrics_written_after_the_checkpoint(cli, tmp_path):
    run = tmp_path / "run"
    cli("train", "--out", run, "--steps", "10", "--quiet", *TINY)
    with open(run / "metrics.jsonl", "a") as f:  # as if a crash came after step 12's log line
        f.write(json.dumps({"step": 12, "loss_d": 0}) + "\n" + '{"step": 13, "los')
    cli("train", "--resume", run, "--steps", "15", "--quiet")
    assert [r["step"] for r in read_metrics(run)] == [5, 10, 15]


@pytest.mark.slow  # a subprocess stopped with SIGINT, then two runs to compare
def test_ctrl_c_stops_cleanly_and_resumes_exactly(cli, tmp_path):
    """SIGINT mid-interval: a checkpoint at that step, exit 130; resuming to T gives the weights
    and metrics (interval means included) of a run of T steps that never stopped.

    The first part runs in a subprocess, the rest in this process: bit-for-bit equality needs
    the same torch thread count in both (float sums over 1 or 2 threads round differently)."""
    run = tmp_path / "run"
    args = [
        sys.executable,
        "-m",
        "ganforge",
        "train",
        "--out",
        str(run),
        "--steps",
        "1000000",
        *TINY,
        "ckpt_every=1000000",
    ]
    env = {**os.environ, "OMP_NUM_THREADS": str(torch.get_num_threads())}
    proc = subprocess.Popen(
        args, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env
    )
    deadline = time.time() + 60
    while not (run / "metrics.jsonl").exists() and time.time() < deadline:
        time.sleep(0.05)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    assert "Traceback" not in err and "continue with `ganforge train --resume" in err
    ckpts = list((run / "checkpoints").glob("step-*.safetensors"))
    assert len(ckpts) == 1
    stopped = int(ckpts[0].stem.split("-")[1])
    assert stopped >= 5 and read_metrics(run)[-1]["step"] <= stopped

    total = stopped - stopped % 5 + 7  # ends mid-interval, 2 steps past a log line
    assert cli("train", "--resume", run, "--steps", total, "--quiet")[0] == 0
    whole = tmp_path / "whole"
    assert (
        cli("train", "--out", whole, "--steps", total, "--quiet", *TINY, "ckpt_every=1000000")[0]
        == 0
    )
    a, b = _weights(whole), _weights(run)
    assert all(np.array_equal(a[k].numpy(), b[k].numpy()) for k in a)
    assert _untimed(read_metrics(whole)) == _untimed(read_metrics(run))


def test_sample_writes_npy_and_png(cli, tmp_path, shared_run):
    run = shared_run
    code, out, _ = cli("sample", run, "--n", "10", "--out", tmp_path / "s.npy", "--seed", "4")
    assert code == 0 and "wrote 10 samples" in out
    x = np.load(tmp_path / "s.npy")
    assert x.shape == (10, 1, 28, 28) and x.dtype == np.float32
    assert x.min() >= -1 and x.max() <= 1
    cli("sample", run, "--n", "10", "--out", tmp_path / "t.npy", "--seed", "4")
    cli("sample", run, "--n", "10", "--out", tmp_path / "u.npy", "--seed", "5")
    assert np.array_equal(x, np.load(tmp_path / "t.npy"))
    assert not np.array_equal(x, np.load(tmp_path / "u.npy"))
    assert cli("sample", run, "--n", "9", "--out", tmp_path / "s.png")[0] == 0
    assert Image.open(tmp_path / "s.png").size == (2 * 92, 2 * 92)  # 3 x 3 grid of 28 px


def test_points_data_and_sampling(cli, tmp_path):
    rng = np.random.default_rng(0)
    pts = rng.normal(size=(200, 2)).astype(np.float32) * 3
    np.save(tmp_path / "pts.npy", pts)
    run = tmp_path / "run"
    code, _, err = cli(
        "train",
        "--out",
        run,
        "--data",
        tmp_path / "pts.npy",
        "--steps",
        "10",
        "--quiet",
        *TINY,
        "g_out=linear",
        "data.limit=0",
    )
    assert code == 0, err
    assert cli("sample", run, "--n", "7", "--out", tmp_path / "p.npy")[0] == 0
    assert np.load(tmp_path / "p.npy").shape == (7, 2)
    assert Image.open(run / "samples" / "step-000010.png").format == "PNG"


def test_points_outside_tanh_range_need_a_linear_output(cli, tmp_path):
    np.save(tmp_path / "pts.npy", np.full((100, 2), 3.0, dtype=np.float32))
    code, _, err = cli(
        "train",
        "--out",
        tmp_path / "r",
        "--data",
        tmp_path / "pts.npy",
        "--quiet",
        *TINY,
        "data.limit=0",
    )
    assert code == 2 and "set model.g_out=linear" in err


def test_dcgan_preset_one_step(cli, tmp_path):
    code, _, err = cli(
        "train",
        "--preset",
        "mnist-dcgan",
        "--out",
        tmp_path / "r",
        "--steps",
        "2",
        "--quiet",
        "width=4",
        "latent_dim=8",
        "data.limit=64",
        "batch_size=8",
        "n_samples=4",
    )
    assert code == 0, err
    assert (tmp_path / "r" / "samples" / "step-000002.png").exists()


def test_tensorboard_events(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--out", run, "--steps", "5", "--quiet", "--tensorboard", *TINY)[0] == 0
    assert list((run / "tb").glob("events.out.tfevents.*"))


def test_torch_threads_setting_is_applied(cli, tmp_path):
    import torch

    before = torch.get_num_threads()
    torch.set_num_threads(2)  # the tests run with 1 thread (conftest): the setting must change it
    try:
        cli("train", "--out", tmp_path / "r", "--steps", "1", "--quiet", "threads=1", *TINY)
        assert torch.get_num_threads() == 1
    finally:
        torch.set_num_threads(before)


@pytest.mark.parametrize("env_var", ["GANFORGE_DATA"])
def test_named_source_missing_says_where_it_looked(cli, tmp_path, monkeypatch, env_var):
    monkeypatch.setenv(env_var, str(tmp_path))
    code, _, err = cli("train", "--data", "fashion-mnist", "--out", tmp_path / "r", "--quiet")
    assert code == 1 and "--download" in err and str(tmp_path) in err
    assert not (tmp_path / "r").exists()
    assert os.environ[env_var] == str(tmp_path)
