"""The run folder and what a run keeps across stops: eval.json, the best checkpoint, the
schedules' horizon, checkpoints by wall time, every term of the step in metrics.jsonl."""

import json
import math
import shutil

import pytest
import torch

from conftest import TINY, read_metrics
from ganforge import checkpoint
from ganforge import config as cfglib
from ganforge.runs import RunFolder
from ganforge.train.loop import Trainer
from ganforge.train.schedule import lr_factor, resume_note


def _ckpts(run) -> list[int]:
    return [step for step, _ in checkpoint.list_checkpoints(run / "checkpoints")]


def test_overwrite_removes_the_old_runs_eval_json(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--out", run, "--steps", "5", "--quiet", *TINY)[0] == 0
    RunFolder(run).eval_file.write_text(json.dumps({"metrics": {"fid": {"value": 1.0}}}))
    assert RunFolder(run).read_eval() == {"metrics": {"fid": {"value": 1.0}}}
    assert cli("train", "--out", run, "--steps", "5", "--quiet", "--overwrite", *TINY)[0] == 0
    assert not (run / "eval.json").exists() and RunFolder(run).read_eval() is None


def test_checkpoints_by_wall_time_at_log_steps(cli, tmp_path):
    """train.ckpt_seconds: a checkpoint at the first log step that long after the last one
    (here at once: every log step), besides those of train.ckpt_every; 0 turns it off."""
    few = [*TINY, "train.ckpt_every=1000", "train.keep_ckpts=10"]
    timed, untimed = tmp_path / "timed", tmp_path / "untimed"
    cli("train", "--out", timed, "--steps", "12", "--quiet", *few, "train.ckpt_seconds=1e-9")
    cli("train", "--out", untimed, "--steps", "12", "--quiet", *few, "train.ckpt_seconds=0")
    assert _ckpts(timed) == [5, 10, 12] and _ckpts(untimed) == [12]
    assert cfglib.Config().train.ckpt_seconds == 60  # a crash loses at most about a minute


def test_the_best_fid_comes_back_from_the_best_checkpoint(cli, tmp_path):
    """A resume or a rollback loads a step checkpoint, which may be older than the best one:
    the best FID to beat is the best checkpoint's own, never the step checkpoint's."""
    run = tmp_path / "run"
    assert cli("train", "--out", run, "--steps", "10", "--quiet", *TINY)[0] == 0
    folder = RunFolder(run)
    cfg = folder.read_config()
    first = Trainer(cfg, folder, quiet=True)
    first.restore()
    assert first.best_fid == math.inf  # no best checkpoint yet
    first.best_fid = 12.5
    first.save_checkpoint(folder.best_checkpoint.name)  # as the probe keeps one
    step_meta = checkpoint.meta_of(folder.checkpoints / "step-000010.safetensors")
    assert step_meta is not None and step_meta["best_fid"] == math.inf  # what a resume loads
    again = Trainer(cfg, folder, quiet=True)
    again.restore()
    assert again.best_fid == 12.5


def test_schedules_keep_their_horizon_when_a_resume_raises_the_steps(cli, tmp_path):
    """optim.decay_from: the rates of steps 1..10 are those of a 10-step run; a resume to 14
    steps warns in one line and runs steps 11-14 at step 10's rates."""
    assert [lr_factor(s, 10, 0.5) for s in (5, 6, 10, 11, 14)] == [1.0, 5 / 6, 1 / 6, 1 / 6, 1 / 6]
    run = tmp_path / "run"
    decay = [*TINY, "optim.decay_from=0.5"]
    assert cli("train", "--out", run, "--steps", "10", "--quiet", *decay)[0] == 0
    with pytest.warns(UserWarning) as caught:
        code, _, err = cli("train", "--resume", run, "--steps", "14", "--quiet")
    assert code == 0, err
    (note,) = [str(w.message) for w in caught if "horizon" in str(w.message)]
    assert (
        note
        == resume_note(10, 14, True, False)
        == (
            "train.steps is now 14, but the learning-rate decay keep(s) the run's horizon of 10 "
            "steps, so that the steps already taken keep their maths; steps 11-14 run at the last "
            "step's rates and without noise"
        )
    )
    _, meta = checkpoint.read(run / "checkpoints" / "step-000014.safetensors")
    assert meta["states"]["schedule"] == {"steps": 10}
    lrs = [g["lr"] for opt in ("opt_g", "opt_d") for g in meta["optimizer_groups"][opt]]
    assert lrs == [2e-4 * lr_factor(10, 10, 0.5)] * 2  # step 10's rates, both optimisers
    assert resume_note(10, 10, True, True) is None and resume_note(10, 14, False, False) is None


def test_every_term_of_the_step_reaches_metrics_jsonl(cli, tmp_path):
    run = tmp_path / "run"
    switches = [
        "stab.gp=1",
        "stab.r1=0.5",
        "stab.feature_matching=0.1",
        "stab.historical_averaging=0.01",
    ]
    assert cli("train", "--out", run, "--steps", "10", "--quiet", *TINY, *switches)[0] == 0
    rows = read_metrics(run)
    terms = ["loss_d", "loss_g", "d_real", "d_fake", "gp", "r1", "hist_d", "fm", "hist_g"]
    assert all(list(r)[1 : 1 + len(terms)] == terms for r in rows)
    assert all(r[k] > 0 for r in rows for k in ("gp", "r1", "fm"))
    plain = tmp_path / "plain"
    assert cli("train", "--out", plain, "--steps", "10", "--quiet", *TINY)[0] == 0
    assert list(read_metrics(plain)[0]) == [
        "step",
        *terms[:4],
        "grad_d",
        "grad_g",
        "img_per_s",
        "elapsed_s",
    ]


def test_r2_reaches_metrics_jsonl_beside_r1(cli, tmp_path):
    run = tmp_path / "run"
    switches = ["stab.r1=0.5", "stab.r2=0.5"]
    assert cli("train", "--out", run, "--steps", "10", "--quiet", *TINY, *switches)[0] == 0
    rows = read_metrics(run)
    terms = ["loss_d", "loss_g", "d_real", "d_fake", "r1", "r2"]
    assert all(list(r)[1 : 1 + len(terms)] == terms for r in rows)
    assert all(r["r2"] > 0 for r in rows)


def test_a_run_folder_reads_its_events_and_grids(tmp_path):
    folder = RunFolder(tmp_path)
    assert folder.events() == [] and folder.sample_grids() == [] and folder.stage_grids() == []
    folder.append_event({"event": "nonfinite", "step": 3})
    with open(folder.events_file, "a") as f:
        f.write("{cut short\n")
    assert folder.events() == [{"event": "nonfinite", "step": 3}]
    folder.samples.mkdir()
    for name in ("step-000010.png", "step-000002.png", "stage-1-8x8.png", "stage-0-4x4.png"):
        (folder.samples / name).write_bytes(b"")
    assert [s for s, _ in folder.sample_grids()] == [2, 10]
    assert [p.name for p in folder.stage_grids()] == ["stage-0-4x4.png", "stage-1-8x8.png"]
    shutil.rmtree(folder.samples)
    torch.manual_seed(0)  # nothing above drew a number


def test_a_run_folder_takes_a_string_path(tmp_path):
    folder = RunFolder(str(tmp_path))
    folder.write_config(cfglib.Config())
    assert folder.path == tmp_path
    assert folder.read_config() == cfglib.Config()
