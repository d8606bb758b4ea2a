"""The ablation harness: grid, statistics, failure handling and the command end to end."""

import csv
import math

import pytest

from conftest import TINY
from ganforge import ablate
from ganforge.ablate import Cell, Job, Record, grid, parse_cell, parse_vary, summarise
from ganforge.errors import ConfigError, DivergedError, GanforgeError


def test_parse_vary_resolves_the_key_and_checks_each_value():
    assert parse_vary("lr_d=1e-4,2e-4") == ["optim.lr_d=1e-4", "optim.lr_d=2e-4"]
    assert parse_vary("model.d_hidden=64,64/128") == ["model.d_hidden=64,64", "model.d_hidden=128"]
    with pytest.raises(ConfigError, match=r"train\.loss: unknown value 'bogus'"):
        parse_vary("loss=ns,bogus")
    with pytest.raises(ConfigError, match="unknown config key 'nope'"):
        parse_vary("nope=1,2")
    with pytest.raises(ConfigError, match="--vary expects"):
        parse_vary("lr_d")


def test_grid_is_the_product_of_cells_and_varied_values_without_repeats():
    cells = [(), ("stab.ema=0.9",)]
    varies = [["train.loss=ns", "train.loss=hinge"], ["train.d_steps=1", "train.d_steps=2"]]
    g = grid(cells, varies)
    assert len(g) == 8
    assert g[0] == Cell(("train.loss=ns", "train.d_steps=1"))
    assert g[-1] == Cell(("stab.ema=0.9", "train.loss=hinge", "train.d_steps=2"))
    assert grid([(), ()], []) == [Cell(())]
    assert parse_cell("") == () and parse_cell("ema=0.9  r1=1") == ("ema=0.9", "r1=1")


def test_cell_labels_and_folder_names():
    c = Cell(("stab.ema=0.999", "model.d_hidden=64,64"))
    assert c.label == "stab.ema=0.999 model.d_hidden=64,64"
    assert c.slug == "ema-0.999_d_hidden-64-64"
    assert Cell(()).label == "default" and Cell(()).slug == "default"


def test_summary_by_hand():
    """[1, 2, 3]: mean 2, sample std 1, t_{0.975, 2} = 4.3027 (tables), half-width 4.3027/sqrt 3."""
    s = summarise([1.0, 2.0, 3.0])
    assert (s.n, s.mean, s.std) == (3, 2.0, 1.0)
    assert s.hi - s.mean == pytest.approx(4.302653 / math.sqrt(3), rel=1e-6)
    assert s.mean - s.lo == pytest.approx(s.hi - s.mean)
    one = summarise([5.0])
    assert one.mean == 5.0 and math.isnan(one.std) and math.isnan(one.lo)
    assert summarise([]).n == 0


def _rows(path):
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


def _records() -> list[Record]:
    a, b = Cell(()), Cell(("stab.ema=0.9",))
    return [
        Record(a, 0, "ok", ablate.Path("r/a0"), 1.0, {"modes": 7.0, "kl": 0.1}),
        Record(a, 1, "ok", ablate.Path("r/a1"), 1.0, {"modes": 8.0, "kl": 0.3}),
        Record(b, 0, "ok", ablate.Path("r/b0"), 1.0, {"modes": 8.0, "kl": 0.05}),
        Record(b, 1, "diverged", ablate.Path("r/b1"), 1.0, {}, "training diverged at step 9"),
    ]


def test_tables_keep_failed_runs(tmp_path):
    ablate.write_outputs(_records(), tmp_path, "test")
    rows = _rows(tmp_path / "ablation.csv")
    assert [r["status"] for r in rows] == ["ok", "ok", "ok", "diverged"]
    assert rows[3]["message"] == "training diverged at step 9" and rows[3]["modes"] == ""
    md = (tmp_path / "ablation.md").read_text()
    # modes of the default cell: mean 7.5, std 0.7071, 95 % interval 7.5 +- 12.706 * 0.5
    assert "| `default` | 2/2 | 7.500 ± 0.707 [1.147, 13.853] |" in md
    assert "| `stab.ema=0.9` | 1/2 | 8.000 | 0.050 |" in md
    assert "`stab.ema=0.9` seed 1: diverged: training diverged at step 9" in md
    assert (tmp_path / "ablation.png").stat().st_size > 10_000


def test_a_failing_or_diverging_run_is_recorded_not_raised(monkeypatch, tmp_path):
    def diverge(*args, **kwargs):
        raise DivergedError("training diverged at step 3: loss_d not finite")

    monkeypatch.setattr(ablate, "train", diverge)
    job = Job("mnist-mlp", Cell(()), 0, 5, tuple(TINY), tmp_path, 16)
    r = ablate.run_job(job)
    assert r.status == "diverged" and "step 3" in r.message

    def refuse(*args, **kwargs):  # the error's kind decides, not words in its message
        raise GanforgeError("the data has values that are not finite: diverged input")

    monkeypatch.setattr(ablate, "train", refuse)
    r = ablate.run_job(job)
    assert r.status == "failed" and r.message.endswith("diverged input")

    def crash(*args, **kwargs):
        raise RuntimeError("out of memory")

    monkeypatch.setattr(ablate, "train", crash)
    r = ablate.run_job(job)
    assert r.status == "failed" and r.message == "RuntimeError: out of memory"


@pytest.mark.slow  # a grid of runs in 2 worker processes
def test_ablate_command_end_to_end_in_parallel_processes(cli, tmp_path):
    import numpy as np

    points = tmp_path / "points.npy"  # small 2-D data: the workers load little
    np.save(points, np.random.default_rng(0).uniform(-1, 1, (64, 2)).astype(np.float32))
    out = tmp_path / "abl"
    args = ["ablate", "--vary", "train.loss=ns,hinge", "--seeds", "1", "--steps", "3"]
    tiny = [*TINY[:3], "train.batch_size=16", "train.log_every=5", f"data.source={points}"]
    code, stdout, err = cli(*args, "--jobs", "2", "--samples", "8", "--out", out, *tiny)
    assert code == 0, err
    rows = _rows(out / "ablation.csv")
    assert [(r["cell"], r["status"]) for r in rows] == [
        ("train.loss=ns", "ok"),
        ("train.loss=hinge", "ok"),
    ]
    assert all(float(r["loss_d"]) > 0 for r in rows)
    assert (out / "loss-hinge" / "seed-0" / "metrics.jsonl").is_file()  # a normal run folder
    assert (out / "ablation.png").is_file() and "| `train.loss=hinge` | 1/1 |" in stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--seeds", "0"], "--seeds must be at least 1"),
        (["--vary", "lr_d=fast"], "optim.lr_d: expected a number, got 'fast'"),
        (["--cell", "nope=1"], "unknown config key 'nope'"),
        (["--preset", "nope"], "unknown preset 'nope'"),
    ],
)
def test_bad_input_gets_one_line(cli, tmp_path, args, message):
    code, _, err = cli("ablate", "--out", tmp_path / "x", *args)
    assert code == 2 and message in err and len(err.strip().splitlines()) == 1
    assert not (tmp_path / "x").exists()
