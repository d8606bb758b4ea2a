"""Tests for ganforge.data.toy: the named toy worlds, mixture specs and files, CSV points."""

from __future__ import annotations

import itertools
import json
import math
from pathlib import Path

import numpy as np
import pytest
import torch
from scipy import stats
from torch.testing import assert_close

from ganforge import config
from ganforge.data import DATA_SOURCES, from_config, load_dataset, mixture_of
from ganforge.data.toy import TOYS, Mixture, grid, parse_gmm1d, ring
from ganforge.errors import DataError


def test_ring8_has_eight_distinct_centres_at_2pi_k_over_8():
    m = ring()
    assert m.k == 8 and m.dim == 2
    angles = np.arange(8) * 2 * math.pi / 8  # k = 0..7, not linspace(0, 2 pi, 8)
    expected = 2.0 * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    assert_close(torch.from_numpy(m.means), torch.from_numpy(expected))
    # all pairwise distances equal at least the chord between neighbours, 2 * 2 sin(pi / 8)
    d = np.linalg.norm(m.means[:, None] - m.means[None], axis=-1) + np.eye(8) * 99
    assert d.min() == pytest.approx(4 * math.sin(math.pi / 8))
    assert_close(torch.from_numpy(m.stds), torch.full((8,), 0.02, dtype=torch.float64))
    assert_close(torch.from_numpy(m.weights), torch.full((8,), 1 / 8, dtype=torch.float64))


def test_grid25_centres_are_the_product_of_minus4_to_4_step_2():
    m = grid()
    assert m.k == 25
    expected = {(float(a), float(b)) for a in (-4, -2, 0, 2, 4) for b in (-4, -2, 0, 2, 4)}
    assert {tuple(p) for p in m.means.tolist()} == expected
    assert set(m.stds.tolist()) == {0.05}


def test_toy_specs_load_as_points_with_component_labels():
    ds = load_dataset("ring8")
    assert ds.kind == "points" and ds.x.shape == (100_000, 2) and ds.x.dtype == torch.float32
    assert ds.y is not None and set(ds.y.unique().tolist()) == set(range(8))
    # each point lies near its own component's centre: |x - mu_y| is chi(2) * 0.02
    mu = torch.from_numpy(TOYS["ring8"].mixture.means).float()  # type: ignore[union-attr]
    r = (ds.x - mu[ds.y]).norm(dim=1)
    assert float(r.max()) < 0.02 * 6
    # same data every time: seed 0, independent of the run
    assert torch.equal(load_dataset("ring8").x, ds.x)
    assert load_dataset("spiral").x.shape == (100_000, 2)
    assert load_dataset("grid25").x.abs().max() < 4.5


def test_sampled_mixture_matches_its_weights_and_moments():
    m = parse_gmm1d("gmm1d:-2,2:0.5:1,3")
    x, labels = m.sample(200_000, seed=1)
    share = np.bincount(labels, minlength=2) / len(labels)
    assert_close(share, np.array([0.25, 0.75]), atol=5e-3, rtol=0)
    # mean = sum w mu = 1; variance = sum w (s^2 + mu^2) - mean^2 = 0.25 + 4 - 1 = 3.25
    assert float(x.mean()) == pytest.approx(1.0, abs=0.01)
    assert float(x.var()) == pytest.approx(3.25, abs=0.02)


def test_pdf_matches_scipy():
    m = Mixture.of([1, 3], [[-1.0, 0.5], [2.0, -2.0]], [0.5, 1.5])
    x = np.array([[0.0, 0.0], [2.0, -1.0], [-1.0, 0.5]])
    expected = 0.25 * stats.multivariate_normal([-1, 0.5], 0.25).pdf(
        x
    ) + 0.75 * stats.multivariate_normal([2, -2], 2.25).pdf(x)
    assert_close(m.pdf(x), expected)
    m1 = parse_gmm1d("gmm1d:-2,2:0.5,1:0.3,0.7")
    t = np.linspace(-4, 4, 9)
    expected1 = 0.3 * stats.norm.pdf(t, -2, 0.5) + 0.7 * stats.norm.pdf(t, 2, 1)
    assert_close(m1.pdf(t), expected1)


@pytest.mark.parametrize(
    ("spec", "weights", "means", "stds"),
    [
        ("gmm1d:0", [1.0], [0.0], [1.0]),
        ("gmm1d:-1,1", [0.5, 0.5], [-1.0, 1.0], [1.0, 1.0]),
        ("gmm1d:-1,1:0.2", [0.5, 0.5], [-1.0, 1.0], [0.2, 0.2]),
        ("gmm1d:-1,1,3:0.2,0.3,0.4:2,1,1", [0.5, 0.25, 0.25], [-1.0, 1.0, 3.0], [0.2, 0.3, 0.4]),
    ],
)
def test_gmm1d_spec(spec, weights, means, stds):
    m = mixture_of(spec)
    assert m is not None and m.dim == 1
    assert m.weights.tolist() == weights
    assert m.means[:, 0].tolist() == means
    assert m.stds.tolist() == stds


@pytest.mark.parametrize(
    ("spec", "message"),
    [
        ("gmm1d:", "expected gmm1d:MEANS"),
        ("gmm1d:a,b", "means must be comma-separated numbers"),
        ("gmm1d:0,1:0.5,0.5,0.5", "2 means but 3 stds"),
        ("gmm1d:0:-1", "every std must be > 0"),
        ("gmm1d:0,1:1:-1,2", "weights must be >= 0"),
        ("gmm1d:0:1:1:1", "expected gmm1d:MEANS"),
        ("gmm1d:inf", "must be finite"),
    ],
)
def test_bad_gmm1d_specs_are_one_line_errors(spec, message):
    with pytest.raises(DataError, match=message):
        load_dataset(spec)


def test_mixture_files_toml_and_json(tmp_path: Path):
    toml = tmp_path / "m.toml"
    toml.write_text("weights = [1, 1]\nmeans = [[0, 0], [3, 4]]\nstds = [0.1, 0.2]\n")
    m = mixture_of(str(toml))
    assert m is not None and m.dim == 2 and m.k == 2
    assert m.means.tolist() == [[0.0, 0.0], [3.0, 4.0]]
    ds = load_dataset(str(toml))
    assert ds.x.shape == (100_000, 2)
    js = tmp_path / "m.json"
    js.write_text(json.dumps({"means": [1, 2, 3], "stds": 0.5}))
    m1 = mixture_of(str(js))
    assert m1 is not None and m1.dim == 1 and m1.stds.tolist() == [0.5] * 3
    assert load_dataset(str(js)).x.shape == (100_000, 1)


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("a.toml", "means = [1, 2\n", "not valid TOML"),
        ("a.json", "{", "not valid JSON"),
        ("a.json", json.dumps({"means": [1]}), "missing stds"),
        ("a.json", json.dumps({"means": [1], "stds": [1], "sigma": 2}), "unknown keys"),
        ("a.json", json.dumps({"means": [[1, 2, 3]], "stds": [1]}), "K numbers .1-D. or K pairs"),
        ("a.json", json.dumps([1, 2]), "expected a table"),
    ],
)
def test_bad_mixture_files(tmp_path: Path, name, text, message):
    p = tmp_path / name
    p.write_text(text)
    with pytest.raises(DataError, match=message):
        load_dataset(str(p))


def test_missing_mixture_file_is_one_line(tmp_path: Path):
    with pytest.raises(DataError, match="no such mixture file"):
        load_dataset(str(tmp_path / "none.toml"))
    with pytest.raises(DataError, match="no such file"):
        load_dataset(str(tmp_path / "none.csv"))


def test_csv_points_with_and_without_header(tmp_path: Path):
    p = tmp_path / "pts.csv"
    p.write_text("x,y\n1,2\n3.5,-4\n\n")
    ds = load_dataset(str(p))
    assert_close(ds.x, torch.tensor([[1.0, 2.0], [3.5, -4.0]]))
    assert mixture_of(str(p)) is None
    p.write_text("0.5\n-1\n")
    assert_close(load_dataset(str(p)).x, torch.tensor([[0.5], [-1.0]]))
    p.write_text("1,2\n3\n")
    with pytest.raises(DataError, match="row 2 has 1 values"):
        load_dataset(str(p))
    p.write_text("1,2\n3,x\n")
    with pytest.raises(DataError, match="row 2 holds a value that is not a number"):
        load_dataset(str(p))
    p.write_text("a,b\n")
    with pytest.raises(DataError, match="no points"):
        load_dataset(str(p))


def test_npy_points_still_load(tmp_path: Path):
    p = tmp_path / "pts.npy"
    np.save(p, np.array([[1.0, 2.0], [3.0, 4.0]], np.float32))
    assert load_dataset(str(p)).x.shape == (2, 2)
    assert mixture_of(str(p)) is None


def test_non_mixtures_have_no_mixture():
    assert mixture_of("spiral") is None
    assert mixture_of("mnist5k") is None
    assert mixture_of("RING8") is not None


def test_toy_sources_are_listed_for_help():
    for name in ("ring8", "grid25", "spiral"):
        assert name in DATA_SOURCES
    assert any(k.startswith("gmm1d") for k in DATA_SOURCES)


@pytest.mark.parametrize("name", ["toy-1d", "ring8", "grid25"])
def test_toy_presets_load_their_data_and_use_a_linear_output(name):
    cfg = config.preset(name)
    assert cfg.model.g_out == "linear" and not cfg.model.g_batchnorm
    ds = from_config(cfg.data)
    assert ds.kind == "points"
    assert mixture_of(cfg.data.source) is not None


def test_toy_1d_preset_runs_end_to_end(cli, tmp_path: Path):
    out = tmp_path / "run"
    code, _, err = cli(
        "train", "--preset", "toy-1d", "--steps", "6", "--out", out, "--quiet",
        "train.snapshot_every=3", "train.batch_size=32", "data.limit=512",
    )  # fmt: skip
    assert code == 0, err
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == [
        "step-000000.safetensors",
        "step-000003.safetensors",
        "step-000006.safetensors",
    ]
    # the last snapshot: G and D equal the final checkpoint's; G_pre is G before the G update
    from ganforge import checkpoint, snapshots

    snap = snapshots.read(out / "snapshots" / "step-000006.safetensors")
    tensors, _ = checkpoint.read(out / "checkpoints" / "step-000006.safetensors")
    assert snap.step == 6
    for k, v in checkpoint.subset(tensors, "G").items():
        assert torch.equal(snap.g[k], v)
    for k, v in checkpoint.subset(tensors, "D").items():
        assert torch.equal(snap.d[k], v)
    assert not torch.equal(snap.g_pre["net.0.weight"], snap.g["net.0.weight"])
    first = snapshots.read(out / "snapshots" / "step-000000.safetensors")
    assert all(torch.equal(first.g[k], first.g_pre[k]) for k in first.g)


def test_snapshot_g_pre_is_the_previous_steps_g(cli, tmp_path: Path):
    from ganforge import snapshots

    out = tmp_path / "run"
    code, _, err = cli(
        "train", "--preset", "toy-1d", "--steps", "3", "--out", out, "--quiet",
        "train.snapshot_every=1", "train.batch_size=32", "data.limit=512",
    )  # fmt: skip
    assert code == 0, err
    snaps = [snapshots.read(p) for _, p in snapshots.list_snapshots(out)]
    assert [s.step for s in snaps] == [0, 1, 2, 3]
    for before, after in itertools.pairwise(snaps):
        assert all(torch.equal(after.g_pre[k], before.g[k]) for k in before.g)
        assert not torch.equal(after.d["net.1.weight"], before.d["net.1.weight"])
