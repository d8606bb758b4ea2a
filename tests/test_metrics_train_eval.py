"""``train.eval_every``: FID logged during training, the best checkpoint kept, exact resume."""

from __future__ import annotations

import json

import numpy as np
import pytest

from conftest import TINY, read_metrics
from ganforge.checkpoint import read
from ganforge.train.loop import TIMING_KEYS

TOY = [
    "model.g_hidden=8",
    "model.d_hidden=8",
    "model.latent_dim=2",
    "train.batch_size=20",
    "train.log_every=5",
    "train.ckpt_every=5",
    "train.eval_n=50",
]


@pytest.fixture
def points(tmp_path):
    path = tmp_path / "pts.npy"
    np.save(path, np.random.default_rng(0).uniform(-1, 1, size=(200, 2)).astype(np.float32))
    return path


def _train(cli, out, data, *extra):
    code, _, err = cli("train", "--out", out, "--data", data, "--quiet", *TOY, *extra)
    return code, err


def test_fid_rows_and_the_best_checkpoint(cli, tmp_path, points):
    run = tmp_path / "run"
    code, err = _train(cli, run, points, "--steps", "12", "train.eval_every=4")
    assert code == 0, err
    rows = read_metrics(run)
    fids = {r["step"]: r["fid"] for r in rows if "fid" in r}
    assert sorted(fids) == [4, 8, 12]  # step 4 is logged although log_every is 5
    assert [r["step"] for r in rows] == [4, 5, 8, 10, 12]
    best_step = min(fids, key=fids.__getitem__)
    _, meta = read(run / "checkpoints" / "best.safetensors")
    assert meta["step"] == best_step and meta["best_fid"] == fids[best_step]
    code, _out, err = cli("eval", run, "--best", "--bootstrap", "2", "--n", "50")
    assert code == 0, err
    assert json.loads((run / "eval.json").read_text())["step"] == best_step


@pytest.mark.slow  # two runs and a resume with FID (about 6 s)
def test_a_resumed_run_logs_the_same_fids_and_keeps_the_best(cli, tmp_path, points):
    whole, part = tmp_path / "whole", tmp_path / "part"
    assert _train(cli, whole, points, "--steps", "20", "train.eval_every=5")[0] == 0
    assert _train(cli, part, points, "--steps", "10", "train.eval_every=5")[0] == 0
    assert cli("train", "--resume", part, "--steps", "20", "--quiet")[0] == 0

    def strip(rows):
        return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]

    assert strip(read_metrics(part)) == strip(read_metrics(whole))
    _, meta_whole = read(whole / "checkpoints" / "best.safetensors")
    _, meta_part = read(part / "checkpoints" / "best.safetensors")
    assert meta_whole["step"] == meta_part["step"]
    assert meta_whole["best_fid"] == meta_part["best_fid"]


def test_eval_every_off_by_default_leaves_no_fid(cli, tmp_path, points):
    run = tmp_path / "run"
    assert _train(cli, run, points, "--steps", "5")[0] == 0
    assert all("fid" not in r for r in read_metrics(run))
    assert not (run / "checkpoints" / "best.safetensors").exists()


@pytest.mark.parametrize(
    ("override", "message"),
    [
        ("train.eval_n=5", "train.eval_n: must be >= 10, got 5"),
        ("train.eval_every=-1", "must be >= 0"),
        ("train.eval_n=5000", "train.eval_n=5000 exceeds the 200 training samples"),
    ],
)
def test_eval_every_mistakes(cli, tmp_path, points, override, message):
    code, _, err = cli(
        "train",
        "--out",
        tmp_path / "r",
        "--data",
        points,
        "--quiet",
        *TOY,
        "train.eval_every=2",
        override,
    )
    assert code == 2 and message in err, err


def test_eval_every_refuses_images_the_mnist_network_cannot_read(cli, tmp_path):
    images = tmp_path / "img.npy"
    np.save(images, np.zeros((40, 3, 16, 16), dtype=np.uint8))
    code, _, err = cli(
        "train",
        "--out",
        tmp_path / "r",
        "--data",
        images,
        "--quiet",
        *TINY,
        "data.limit=0",
        "train.eval_every=2",
    )
    assert code == 2 and "takes 1 x 28 x 28 gray images" in err, err
