"""The command-line surface: help, and one clear line for every mistake."""

import json
import shutil
import subprocess
import sys

import pytest

from conftest import TINY, read_metrics
from ganforge import config as cfglib
from ganforge.train.loop import TIMING_KEYS


def test_help_imports_no_torch():
    """`import ganforge` and `ganforge --help` stay light: the CLI imports the module of the
    command asked for, and nothing below it imports torch."""
    code = (
        "import sys, contextlib, io\n"
        "import ganforge\n"
        "assert 'torch' not in sys.modules, 'import ganforge'\n"
        "from ganforge.cli import main\n"
        "with contextlib.redirect_stdout(io.StringIO()):\n"
        "    try:\n"
        "        main(['--help'])\n"
        "    except SystemExit:\n"
        "        pass\n"
        "assert 'torch' not in sys.modules, 'ganforge --help'\n"
        "assert not [m for m in sys.modules if m.startswith('ganforge.commands.')]\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert done.returncode == 0, done.stderr


SLOW = pytest.mark.slow


def test_help_lists_commands_and_presets(cli):
    code, out, _ = cli("--help")
    assert code == 0
    assert all(word in out for word in ("train", "sample", *cfglib.PRESETS))


def test_train_help_text(cli):
    code, text, _ = cli("train", "--help")
    assert code == 0
    for option in (
        "--preset",
        "--config",
        "--data",
        "--out",
        "--steps",
        "--seed",
        "--resume",
        "--overwrite",
        "--download",
        "--tensorboard",
        "key=value",
    ):
        assert option in text
    for name in cfglib.PRESETS:
        assert name in text
    for key in cfglib.fields_of(cfglib.Config()):
        if key != "preset":
            assert f"{key}=" in text
    for loss in ("ns", "minimax"):
        assert f"  {loss} " in text


def test_sample_help_text(cli):
    code, text, _ = cli("sample", "--help")
    assert code == 0
    assert all(o in text for o in ("--n", "--out", "--seed", "RUN"))


@pytest.mark.parametrize(
    ("args", "message"),
    [
        # an unknown command imports no command module, so no torch: a fast process
        (["bogus"], "invalid choice: 'bogus'"),
        # the others import torch with the command's module (about 3 s each): the slow tier's
        pytest.param(["train", "--preset", "nope"], "invalid choice: 'nope'", marks=SLOW),
        pytest.param(["train", "--steps", "ten"], "invalid int value: 'ten'", marks=SLOW),
        pytest.param(["sample"], "the following arguments are required", marks=SLOW),
    ],
)
def test_usage_errors_in_a_real_process(args, message):
    p = subprocess.run([sys.executable, "-m", "ganforge", *args], capture_output=True, text=True)
    assert p.returncode == 2
    assert message in p.stderr and len(p.stderr.strip().splitlines()) == 1
    assert "Traceback" not in p.stderr


def test_refuses_to_overwrite_a_run_unless_asked(cli, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--out", run, "--steps", "5", "--quiet", *TINY)[0] == 0
    code, _, err = cli("train", "--out", run, "--steps", "5", "--quiet", *TINY)
    assert code == 1 and "already exists" in err and "--overwrite" in err
    assert cli("train", "--out", run, "--steps", "10", "--quiet", "--overwrite", *TINY)[0] == 0
    assert sorted(p.name for p in (run / "checkpoints").iterdir())[-1] == "step-000010.safetensors"


def test_resume_errors(cli, tmp_path, shared_run):
    code, _, err = cli("train", "--resume", tmp_path)
    assert code == 1 and "is not a ganforge run (no config.json)" in err
    run = tmp_path / "run"
    shutil.copytree(shared_run, run)
    code, _, err = cli("train", "--resume", run, "lr_d=1")
    assert code == 2 and "optim.lr_d cannot change when resuming" in err
    code, _, err = cli("train", "--resume", run, "--seed", "3")
    assert code == 2 and "--seed cannot be combined with --resume" in err
    code, _, err = cli("train", "--resume", run, "preset=ring8")
    assert (code, err) == (
        2,
        "ganforge train: error: preset cannot change when resuming a run (it changes the maths)\n",
    )


def test_a_run_killed_before_its_first_checkpoint_resumes_from_step_0(cli, tmp_path):
    """No checkpoint to load: --resume starts the run again from step 0, with its saved config,
    and gives the uninterrupted run (clock fields aside)."""
    run = tmp_path / "run"
    cli("train", "--out", run, "--steps", "5", "--quiet", *TINY)
    whole = read_metrics(run)
    shutil.rmtree(run / "checkpoints")
    (run / "metrics.jsonl").write_text(json.dumps(whole[0]) + "\n")  # what the crash left
    code, _, err = cli("train", "--resume", run, "--quiet")
    assert code == 0, err
    again = read_metrics(run)
    strip = [
        [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in rows]
        for rows in (whole, again)
    ]
    assert [len(whole), len(again)] == [1, 1] and strip[0] == strip[1]
    assert (run / "checkpoints" / "step-000005.safetensors").is_file()


def test_resume_refuses_a_run_of_another_architecture(cli, tmp_path, shared_run):
    run = tmp_path / "run"
    shutil.copytree(shared_run, run)
    cfg = (run / "config.json").read_text().replace('"latent_dim": 8', '"latent_dim": 9')
    (run / "config.json").write_text(cfg)
    code, _, err = cli("train", "--resume", run, "--steps", "6")
    assert code == 1 and "another architecture" in err


def test_corrupt_checkpoint_is_one_line(cli, tmp_path):
    run = tmp_path / "run"
    cli("train", "--out", run, "--steps", "5", "--quiet", *TINY)
    (run / "checkpoints" / "step-000005.safetensors").write_bytes(b"not a checkpoint")
    code, _, err = cli("sample", run, "--n", "2", "--out", tmp_path / "x.npy")
    assert code == 1 and "not a readable ganforge checkpoint" in err


def test_sample_errors(cli, tmp_path, shared_run):
    code, _, err = cli("sample", tmp_path, "--n", "2", "--out", tmp_path / "x.npy")
    assert code == 1 and "not a ganforge run" in err
    run = shared_run
    code, _, err = cli("sample", run, "--n", "0", "--out", tmp_path / "x.npy")
    assert code == 1 and "--n must be a positive number" in err
    code, _, err = cli("sample", run, "--n", "2", "--out", tmp_path / "x.jpg")
    assert code == 1 and "must end in .npy or .png" in err
    code, _, err = cli("sample", run, "--n", "2", "--out", tmp_path / "no" / "x.npy")
    assert code == 1 and "does not exist" in err


def test_unwritable_output_is_refused_before_training(cli, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code, _, err = cli("train", "--out", blocker / "run", "--steps", "5", "--quiet", *TINY)
    assert code == 1 and "cannot write to output folder" in err


def test_overrides_may_sit_between_options(cli, tmp_path):
    run = tmp_path / "run"
    code, _, err = cli(
        "train",
        *TINY[:3],
        "--steps",
        "5",
        "data.limit=256",
        "--out",
        run,
        "batch_size=16",
        "--quiet",
        *TINY[5:],
    )
    assert code == 0, err
    saved = cfglib.from_json(run / "config.json")
    assert (saved.data.limit, saved.train.batch_size, saved.train.steps) == (256, 16, 5)


def test_stray_arguments_are_refused(cli):
    code, _, err = cli("train", "--steps", "5", "oops")
    assert code == 2 and "expected key=value, got 'oops'" in err
    code, _, err = cli("sample", "run", "--out", "x.npy", "n=3")
    assert code == 2 and "unrecognized arguments: n=3" in err
