"""``ganforge eval`` end to end on a tiny run, with a feature network written by the test."""

from __future__ import annotations

import json
import shutil
import warnings

import pytest
import torch
from torch import nn


class _Small(nn.Module):
    """A feature network for the tests: pooled pixels as features, two classes by brightness."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        f = torch.nn.functional.avg_pool2d(x, 7).flatten(1)  # [N, 16]
        m = x.mean((1, 2, 3))[:, None]
        return f, torch.cat([-10 * m, 10 * m], dim=1)


@pytest.fixture(scope="module")
def net_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("net") / "small.pt"
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        torch.jit.save(torch.jit.script(_Small()), str(path))
    return path


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory, shared_run):
    """The session's TINY run of 10 steps, copied: ``ganforge eval`` writes eval.json into it."""
    out = tmp_path_factory.mktemp("runs") / "tiny"
    shutil.copytree(shared_run, out)
    return out


def test_eval_prints_a_table_and_writes_eval_json(cli, tiny_run, net_file, tmp_path):
    extra = tmp_path / "copy.json"
    code, out, err = cli(
        "eval", tiny_run, "--n", "50", "--features", net_file, "--bootstrap", "5", "--json", extra
    )
    assert code == 0, err
    assert "95 % interval" in out and "real floor" in out and "fid" in out
    result = json.loads((tiny_run / "eval.json").read_text())
    assert json.loads(extra.read_text()) == result
    assert result["n"] == 50 and result["step"] == 10 and result["real"] == "mnist5k"
    for name in ("fid", "kid", "precision", "recall", "density", "coverage", "class_kl"):
        entry = result["metrics"][name]
        assert set(entry) >= {"value", "ci_low", "ci_high", "floor", "n"}
        assert entry["n"] == 50
        assert entry["ci_low"] <= entry["value"] <= entry["ci_high"]
    assert len(result["class_histogram"]["samples"]) == 2


def test_eval_is_reproducible(cli, tiny_run, net_file):
    args = ("eval", tiny_run, "--n", "40", "--features", net_file, "--bootstrap", "3")
    assert cli(*args)[0] == 0
    first = (tiny_run / "eval.json").read_text()
    assert cli(*args)[0] == 0
    assert (tiny_run / "eval.json").read_text() == first


def test_eval_against_a_real_set_given_as_an_array(cli, tiny_run, net_file, tmp_path):
    import numpy as np

    real = tmp_path / "real.npy"
    np.save(real, np.random.default_rng(0).integers(0, 256, (100, 28, 28), dtype=np.uint8))
    code, _out, err = cli(
        "eval", tiny_run, "--real", real, "--features", net_file, "--bootstrap", "2"
    )
    assert code == 0, err
    result = json.loads((tiny_run / "eval.json").read_text())
    assert result["n"] == 50  # half of the 100 real images by default


@pytest.mark.parametrize(
    ("args", "message", "exit_code"),
    [
        (("--n", "200"), "--n 200 needs 400 real samples", 2),
        (("--n", "3"), "--n must be at least 10", 2),
        (("--bootstrap", "0"), "--bootstrap must be at least 1", 2),
        (("--best",), "no best.safetensors", 1),
        (("--real", "nowhere/"), "nowhere/: no such file or folder", 1),
        (("--features", "missing.pt"), "no such feature network file", 1),
    ],
)
def test_eval_mistakes_get_one_line(cli, tiny_run, net_file, args, message, exit_code):
    full = ["eval", tiny_run, *args]
    if "--features" not in args:
        full += ["--features", net_file]
    code, _out, err = cli(*full)
    assert code == exit_code
    assert message in err and len(err.strip().splitlines()) == 1


def test_eval_of_a_folder_that_is_not_a_run(cli, tmp_path):
    code, _, err = cli("eval", tmp_path)
    assert code == 1 and "is not a ganforge run" in err


def test_eval_with_the_shipped_network_on_points_uses_the_points(cli, tmp_path):
    import numpy as np

    from ganforge.cli import main

    pts = tmp_path / "pts.npy"
    pts_array = np.random.default_rng(0).uniform(-1, 1, size=(200, 2)).astype(np.float32)
    np.save(pts, pts_array)
    run = tmp_path / "toy"
    toy = ["model.g_hidden=8", "model.d_hidden=8", "model.latent_dim=2", "train.batch_size=20"]
    assert (
        main(["train", "--out", str(run), "--data", str(pts), "--steps", "5", "--quiet", *toy]) == 0
    )
    code, _out, err = cli("eval", run, "--bootstrap", "2")
    assert code == 0, err
    result = json.loads((run / "eval.json").read_text())
    assert result["feature_net"].startswith("none") and "class_kl" not in result["metrics"]


def test_eval_of_a_toy_mixture_reports_its_modes(cli, tmp_path):
    pytest.importorskip("ganforge.metrics.modes")
    from ganforge.cli import main

    run = tmp_path / "ring"
    toy = ["model.g_hidden=8", "model.d_hidden=8", "model.latent_dim=2", "train.batch_size=20"]
    toy.append("model.g_out=linear")  # ring8 reaches radius 2, beyond tanh
    args = ["train", "--out", str(run), "--data", "ring8", "--steps", "5", "--quiet", *toy]
    assert main(args) == 0
    code, out, err = cli("eval", run, "--bootstrap", "2", "--n", "200")
    assert code == 0, err
    metrics = json.loads((run / "eval.json").read_text())["metrics"]
    assert metrics["modes_captured"]["floor"] == 8.0  # real ring8 points hold all 8 modes
    assert 0 <= metrics["high_quality"]["value"] <= 1 and "mixture_kl" in metrics
    assert "modes_captured" in out
