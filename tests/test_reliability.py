"""Crash safety: checksummed checkpoints, NaN/inf guard, SIGKILL at random points, no pickles."""

import json
import math
import os
import pickle
import random
import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from safetensors.torch import load_file

from conftest import TINY, read_metrics
from ganforge import checkpoint
from ganforge.errors import GanforgeError
from ganforge.train.guard import WATCHED, NonFiniteGuard, reseed
from ganforge.train.loop import TIMING_KEYS
from ganforge.train.step import GANStep

SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.fixture
def tiny(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """TINY on 64 random 8 x 8 images from a .npy: no mnist5k to parse in each process."""
    path = tmp_path_factory.mktemp("data") / "x.npy"
    np.save(path, np.random.default_rng(0).integers(0, 256, (64, 8, 8), dtype=np.uint8))
    return [*TINY, "--data", str(path), "data.limit=0", "batch_size=8", "n_samples=4"]


def _weights(run: Path) -> dict[str, torch.Tensor]:
    newest = checkpoint.list_checkpoints(run / "checkpoints")[-1][1]
    return {k: v for k, v in load_file(newest).items() if k.startswith(("G.", "D."))}


def _same_weights(a: Path, b: Path) -> bool:
    wa, wb = _weights(a), _weights(b)
    return wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)


def _untimed(run: Path) -> list[dict]:
    return [{k: v for k, v in r.items() if k not in TIMING_KEYS} for r in read_metrics(run)]


def _ckpt_names(run: Path) -> list[str]:
    return sorted(p.name for p in (run / "checkpoints").iterdir())


# ---------------------------------------------------------------- checksums


def _small_checkpoint(path: Path) -> None:
    m = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(m.parameters())
    m(torch.randn(4, 3)).sum().backward()
    opt.step()
    checkpoint.save(path, step=3, modules={"M": m}, optimizers={"opt": opt})


def test_checksum_is_the_sha256_of_meta_and_payload(tmp_path):
    import hashlib

    path = tmp_path / "step-000003.safetensors"
    _small_checkpoint(path)
    data = path.read_bytes()
    n = int.from_bytes(data[:8], "little")
    fields = json.loads(data[8 : 8 + n])["__metadata__"]
    expected = hashlib.sha256(fields["meta"].encode() + data[8 + n :]).hexdigest()
    assert fields["sha256"] == expected
    assert checkpoint.read(path)[1]["step"] == 3


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (lambda d: d[: len(d) - 7], "corrupted checkpoint (SHA-256 mismatch"),  # cut short
        (lambda d: d[:-1] + bytes([d[-1] ^ 1]), "corrupted checkpoint (SHA-256 mismatch"),
        (lambda d: d.replace(b'\\"step\\": 3', b'\\"step\\": 4'), "corrupted checkpoint (SHA"),
        (lambda d: d[:100], "not a readable ganforge checkpoint"),  # header cut
        (lambda d: d[:5], "not a readable ganforge checkpoint"),
        (lambda d: d.replace(b'"sha256"', b'"sha255"'), "corrupted checkpoint"),  # no digest
    ],
)
def test_damaged_checkpoints_are_refused_in_one_line(tmp_path, damage, message):
    path = tmp_path / "step-000003.safetensors"
    _small_checkpoint(path)
    data = path.read_bytes()
    assert damage(data) != data
    path.write_bytes(damage(data))
    with pytest.raises(checkpoint.CheckpointError) as e:
        checkpoint.read(path)
    assert message in str(e.value) and str(path) in str(e.value)
    assert "\n" not in str(e.value)


def test_load_latest_falls_back_to_the_newest_intact_checkpoint(tmp_path):
    for step in (1, 2, 3):
        _small_checkpoint(tmp_path / f"step-{step:06d}.safetensors")
    (tmp_path / "step-000003.safetensors").write_bytes(b"\x00" * 40)
    data = (tmp_path / "step-000002.safetensors").read_bytes()
    (tmp_path / "step-000002.safetensors").write_bytes(data[:-3])
    with pytest.warns(UserWarning, match=r"step-000003.*and 1 newer ones.*using step-000001"):
        path, _, _ = checkpoint.load_latest(tmp_path)
    assert path.name == "step-000001.safetensors"
    assert len(checkpoint.list_checkpoints(tmp_path)) == 3  # read-only without set_aside
    with pytest.warns(UserWarning, match=r"set aside as \*\.corrupt"):
        checkpoint.load_latest(tmp_path, set_aside=True)
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "step-000001.safetensors",
        "step-000002.safetensors.corrupt",
        "step-000003.safetensors.corrupt",
    ]
    (tmp_path / "step-000001.safetensors").write_bytes(b"")
    with pytest.raises(checkpoint.CheckpointError, match="step-000001"):
        checkpoint.load_latest(tmp_path)


class _Counter:
    def __init__(self) -> None:
        self.n, self.names = 0, ["a"]

    def state_dict(self) -> dict:
        return {"n": self.n, "names": self.names, "t": torch.arange(self.n)}

    def load_state_dict(self, state: dict) -> None:
        self.n, self.names = state["n"], state["names"]
        assert torch.equal(state["t"], torch.arange(self.n))


def test_named_states_take_one_line_each(tmp_path):
    m = torch.nn.Linear(2, 2)
    c = _Counter()
    c.n, c.names = 4, ["x", "y"]
    path = tmp_path / "step-000001.safetensors"
    checkpoint.save(path, step=1, modules={"M": m}, optimizers={}, states={"count": c})
    tensors, meta = checkpoint.read(path)
    assert meta["states"]["count"] == {"n": 4, "names": ["x", "y"]}
    assert torch.equal(tensors["count.t"], torch.arange(4))
    back = _Counter()
    checkpoint.restore(tensors, meta, modules={"M": m}, optimizers={}, states={"count": back})
    assert (back.n, back.names) == (4, ["x", "y"])
    with pytest.raises(checkpoint.CheckpointError, match="holds no state 'other'"):
        checkpoint.restore(tensors, meta, modules={}, optimizers={}, states={"other": back})


def test_resume_skips_a_truncated_checkpoint_and_stays_exact(tiny, cli, tmp_path):
    """The newest checkpoint cut short: resume warns, sets it aside, continues from the one
    before, and ends bit-identical to a run that never stopped."""
    whole, run = tmp_path / "whole", tmp_path / "run"
    assert cli("train", "--out", whole, "--steps", "15", "--quiet", *tiny)[0] == 0
    assert cli("train", "--out", run, "--steps", "10", "--quiet", *tiny)[0] == 0
    newest = run / "checkpoints" / "step-000010.safetensors"
    newest.write_bytes(newest.read_bytes()[:-100])
    with pytest.warns(UserWarning, match=r"step-000010.safetensors: corrupted checkpoint"):
        code, _, err = cli("train", "--resume", run, "--steps", "15", "--quiet")
    assert code == 0, err
    assert _ckpt_names(run) == [
        "step-000010.safetensors",  # rewritten by the resumed run
        "step-000010.safetensors.corrupt",
        "step-000015.safetensors",
    ]
    assert _same_weights(whole, run)
    assert _untimed(whole) == _untimed(run)


def test_sample_uses_the_previous_checkpoint_when_the_newest_is_damaged(tiny, cli, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--out", run, "--steps", "10", "--quiet", *tiny)[0] == 0
    good = cli("sample", run, "--n", "4", "--out", tmp_path / "a.npy")
    assert good[0] == 0
    (run / "checkpoints" / "step-000005.safetensors").rename(tmp_path / "keep")
    newest = run / "checkpoints" / "step-000010.safetensors"
    newest.write_bytes(newest.read_bytes()[:-1] + b"\x01")
    (tmp_path / "keep").rename(run / "checkpoints" / "step-000005.safetensors")
    with pytest.warns(UserWarning, match="using step-000005.safetensors instead"):
        assert cli("sample", run, "--n", "4", "--out", tmp_path / "b.npy")[0] == 0
    assert newest.exists()  # sampling never renames files in the run
    assert not np.array_equal(np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy"))


# ---------------------------------------------------------------- NaN / inf guard


@pytest.fixture
def fault(monkeypatch):
    """Turn D's first weight into NaN before chosen calls of the step (counted from 1), and
    record each call's first real batch and torch's seed."""
    state: dict = {"n": 0, "at": set(), "from": None, "seen": []}
    original = GANStep.__call__

    def call(self, reals, measure=False, labels=None):
        state["n"] += 1
        n = state["n"]
        state["seen"].append((reals[0].clone(), torch.initial_seed()))
        if n in state["at"] or (state["from"] is not None and n >= state["from"]):
            with torch.no_grad():
                next(self.D.parameters()).fill_(math.nan)
        return original(self, reals, measure, labels)

    monkeypatch.setattr(GANStep, "__call__", call)
    return state


def _events(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "events.jsonl").read_text().splitlines()]


def test_nan_stops_with_the_step_and_the_tensors(tiny, cli, tmp_path, fault):
    fault["at"] = {7}
    run = tmp_path / "run"
    code, _, err = cli("train", "--out", run, "--steps", "20", "--quiet", *tiny)
    assert code == 1
    assert err.strip() == (
        "ganforge train: error: training diverged at step 7: "
        f"{', '.join(WATCHED)} not finite; non-finite weights in G.net.0.weight, "
        "G.net.0.bias, G.net.2.weight and 15 more; the last good checkpoint is step 5; "
        "set train.on_nonfinite=rollback to retry from it, or lower the rates"
    )
    assert _ckpt_names(run) == ["step-000005.safetensors"]  # no checkpoint holds a NaN
    # the guard reads its flags at step 10 (a log step): that line is logged before the stop,
    # and the diagnostics' divergence rule names what it sees in it
    rows = read_metrics(run)
    assert [r["step"] for r in rows] == [5, 10]
    assert all(math.isnan(rows[1][k]) for k in WATCHED)
    (warning,) = rows[1]["warnings"]
    assert warning["rule"] == "divergence" and warning["step"] == 10
    assert warning["seen"].startswith("L_D is nan, L_G is nan,")
    (event,) = _events(run)
    assert event["step"] == 7 and event["action"] == "stop"
    assert "D.net.1.weight" in event["tensors"] and "loss_d" in event["tensors"]


def test_nan_before_the_first_checkpoint_says_so(tiny, cli, tmp_path, fault):
    fault["at"] = {2}
    code, _, err = cli("train", "--out", tmp_path / "r", "--steps", "20", "--quiet", *tiny)
    assert code == 1
    assert err.startswith("ganforge train: error: training diverged at step 2: loss_d, ")
    assert err.strip().endswith("; no checkpoint was written before it; lower the learning rates")
    assert not (tmp_path / "r" / "checkpoints").exists()


def test_rollback_skips_the_bad_batches_and_draws_new_noise(tiny, cli, tmp_path, fault):
    """A NaN at step 7 (checkpoint at 5): back to 5, the batches of steps 6-7 skipped, torch
    reseeded from (seed, 1, 7); the run ends at step 20 with finite weights."""
    clean = tmp_path / "clean"
    assert cli("train", "--out", clean, "--steps", "20", "--quiet", *tiny)[0] == 0
    clean_batches = [b for b, _ in fault["seen"]]
    fault["seen"].clear()
    fault["n"], fault["at"] = 0, {7}
    run = tmp_path / "run"
    with pytest.warns(UserWarning) as w:
        code, _, err = cli(
            "train", "--out", run, "--steps", "20", "--quiet", *tiny, "on_nonfinite=rollback"
        )
    assert code == 0, err
    (msg,) = [str(x.message) for x in w if "rolled back" in str(x.message)]
    assert msg.startswith("step 7: loss_d, loss_g, d_real, d_fake not finite;")
    assert msg.endswith(
        "rolled back to step 5, skipping the batches of steps 6-7 and drawing new noise "
        "(rollback 1 of 3)"
    )
    seen = fault["seen"]
    # The guard reads its flags at step 10 (a log step): steps 1-10 ran, then 6-20 again.
    assert len(seen) == 10 + 15
    assert all(torch.equal(seen[i][0], clean_batches[i]) for i in range(10))
    # the retried step 6 + j draws the batch of step 8 + j of the clean run
    assert all(torch.equal(seen[10 + j][0], clean_batches[7 + j]) for j in range(13))
    assert seen[10][1] == reseed(0, 1, 7) and seen[9][1] == 0
    assert [r["step"] for r in read_metrics(run)] == [5, 10, 15, 20]
    assert all(math.isfinite(v) for r in read_metrics(run) for k, v in r.items() if k != "warnings")
    assert all(bool(torch.isfinite(t).all()) for t in _weights(run).values())
    assert not _same_weights(run, clean)
    assert _events(run)[0] | {"tensors": []} == {
        "event": "nonfinite",
        "step": 7,
        "tensors": [],
        "action": "rollback",
        "to_step": 5,
    }
    meta = checkpoint.read(run / "checkpoints" / "step-000020.safetensors")[1]
    assert meta["states"]["guard"] == {"rollbacks": 1}


def test_rollback_skips_the_batches_at_their_own_stage_sizes(cli, tmp_path, fault):
    """train.stage_batch=8,4,6,2 (stages end at steps 3, 8 and 13). The NaN put before step 7
    lands in D's first parameter, its 32 x 32 input layer, unused until stage 3: the losses
    stay finite and the weight check before step 10's checkpoint finds it. Rolled back to
    step 5, the run skips the batches of steps 6-10 at their own sizes (4, 4, 4, 6, 6: 24
    samples, where step 10's size for each would be 30); the retried steps 6-12 draw 4, 4,
    4, 6, 6, 6, 6."""
    data = tmp_path / "x.npy"
    np.save(data, np.random.default_rng(0).integers(0, 256, (256, 32, 32), dtype=np.uint8))
    args = [
        *("--data", data, "data.limit=0", "model.arch=progressive", "model.width=4"),
        *("model.latent_dim=8", "train.stage_steps=3", "train.fade_steps=2"),
        *("train.log_every=5", "train.ckpt_every=5", "train.sample_every=100"),
        *("train.n_samples=4", "train.threads=1", "train.stage_batch=8,4,6,2"),
    ]
    fault["at"] = {7}
    run = tmp_path / "run"
    with pytest.warns(
        UserWarning, match=r"^step 10: non-finite weights in D\..*rolled back to step 5"
    ):
        code, _, err = cli(
            "train", "--out", run, "--steps", "12", "--quiet", *args, "on_nonfinite=rollback"
        )
    assert code == 0, err
    sizes = [len(batch) for batch, _ in fault["seen"]]
    assert sizes == [8, 8, 8, 4, 4, 4, 4, 4, 6, 6, 4, 4, 4, 6, 6, 6, 6]  # steps 1-10, then 6-12
    meta = checkpoint.read(run / "checkpoints" / "step-000012.safetensors")[1]
    # steps 1-5 (3 x 8 + 2 x 4), skipped 6-10 (3 x 4 + 2 x 6), retried 6-12 (3 x 4 + 4 x 6)
    assert meta["states"]["sampler"] == {"pos": 32 + 24 + 36, "epoch": 0}


def test_rollback_is_capped(tiny, cli, tmp_path, fault):
    fault["from"] = 7  # every step from the 7th call on fails
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="rolled back"):
        code, _, err = cli(
            "train",
            "--out",
            run,
            "--steps",
            "20",
            "--quiet",
            *tiny,
            "on_nonfinite=rollback",
            "max_rollbacks=2",
        )
    assert code == 1
    assert err.startswith("ganforge train: error: training diverged at step 6: loss_d,")
    assert err.strip().endswith(
        "the last good checkpoint is step 5; rolled back 2 time(s) already (train.max_rollbacks)"
    )
    assert [e["action"] for e in _events(run)] == ["rollback", "rollback", "stop"]
    # steps 1-10 (the failure at 7 is read at the log step 10), then 6-10 twice
    assert fault["n"] == 10 + 5 + 5


def test_rollback_mode_keeps_a_checkpoint_of_step_0(tiny, cli, tmp_path, fault):
    fault["at"] = {2}
    run = tmp_path / "run"
    with pytest.warns(UserWarning, match="rolled back to step 0"):
        code, _, err = cli(
            "train", "--out", run, "--steps", "6", "--quiet", *tiny, "on_nonfinite=rollback"
        )
    assert code == 0, err
    assert _ckpt_names(run) == ["step-000005.safetensors", "step-000006.safetensors"]


def test_guard_reads_nothing_until_asked_and_names_gradients():
    guard = NonFiniteGuard("stop", 0)
    ok = {k: torch.tensor(0.5) for k in WATCHED}
    guard.watch(1, ok)
    guard.watch(2, ok | {"loss_g": torch.tensor(math.inf)})
    guard.watch(3, ok | {"loss_d": torch.tensor(math.nan)})
    found = guard.problem(3, ok, {})
    assert found is not None and (found.step, found.scalars) == (2, ("loss_g",))
    fresh = NonFiniteGuard("stop", 0)
    fresh.watch(4, ok)
    found = fresh.problem(4, ok | {"grad_d": torch.tensor(math.inf)}, {})
    assert found is not None and (found.step, found.scalars) == (4, ("grad_d",))
    assert fresh.problem(4, ok, {}) is None
    m = torch.nn.Linear(2, 2)
    with torch.no_grad():
        m.bias[1] = math.inf
    found = fresh.problem(4, ok | {"grad_g": torch.tensor(math.nan)}, {"G": m})
    assert found is not None and found.weights == ("G.bias",)
    with pytest.raises(GanforgeError):
        NonFiniteGuard("ignore", 0)


# ---------------------------------------------------------------- SIGKILL

# Runs `ganforge ARGS` and freezes at a chosen point, where the test kills it with SIGKILL:
#   CRASH_AT=step:K     before the K-th training step of this process
#   CRASH_AT=write:NAME halfway through writing checkpoint NAME (half its bytes in the temp file)
DRIVER = textwrap.dedent(
    """
    import os, sys, time
    from pathlib import Path
    from ganforge import checkpoint
    from ganforge.cli import main
    from ganforge.train.step import GANStep

    marker = Path(os.environ["CRASH_MARKER"])
    mode, arg = os.environ["CRASH_AT"].split(":")

    def freeze():
        marker.touch()
        time.sleep(600)

    if mode == "step":
        step, calls = GANStep.__call__, [0]

        def call(self, reals, measure=False, labels=None):
            calls[0] += 1
            if calls[0] == int(arg):
                freeze()
            return step(self, reals, measure)

        GANStep.__call__ = call
    else:
        write = checkpoint.atomic_write

        def half_write(path, data):
            if path.name == arg:
                with open(path.with_name(f".{path.name}.tmp"), "wb") as f:
                    f.write(data[: len(data) // 2])
                    f.flush()
                    os.fsync(f.fileno())
                freeze()
            write(path, data)

        checkpoint.atomic_write = half_write
    sys.exit(main(sys.argv[1:]))
    """
)


def _run_and_kill(driver: Path, args: list[str], crash_at: str, tmp: Path) -> None:
    marker = tmp / "frozen"
    marker.unlink(missing_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": f"{SRC}{os.pathsep}{os.environ.get('PYTHONPATH', '')}",
        "CRASH_AT": crash_at,
        "CRASH_MARKER": str(marker),
    }
    proc = subprocess.Popen(
        [sys.executable, str(driver), *args],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    deadline = time.time() + 120
    while not marker.exists():
        if proc.poll() is not None or time.time() > deadline:
            proc.kill()
            raise AssertionError(f"the run did not reach {crash_at}: {proc.communicate()[1]}")
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.communicate(timeout=60)
    assert proc.returncode == -signal.SIGKILL


@pytest.mark.slow  # 3 subprocesses killed with SIGKILL, 4 resumes
def test_sigkill_at_random_points_then_resume_is_bit_identical(tiny, cli, tmp_path):
    """Killed three times (twice mid-step at random steps, once halfway through writing a
    checkpoint), resumed each time with --resume: the final G and D weights and the metrics
    equal those of a run that never stopped."""
    steps, every = 40, 5
    common = [*tiny, "d_steps=2", f"ckpt_every={every}", "--quiet"]
    whole = tmp_path / "whole"
    assert cli("train", "--out", whole, "--steps", steps, *common)[0] == 0

    driver = tmp_path / "driver.py"
    driver.write_text(DRIVER)
    run = tmp_path / "run"
    rng = random.Random(6)
    first = rng.randrange(6, 15)  # a step of the first interval or two
    _run_and_kill(
        driver,
        ["train", "--out", str(run), "--steps", str(steps), *common],
        f"step:{first}",
        tmp_path,
    )
    at = checkpoint.list_checkpoints(run / "checkpoints")[-1][0]
    assert at == (first - 1) // every * every

    target = f"step-{at + 2 * every:06d}.safetensors"  # the second checkpoint after resuming
    _run_and_kill(driver, ["train", "--resume", str(run)], f"write:{target}", tmp_path)
    assert (run / "checkpoints" / f".{target}.tmp").exists()
    assert checkpoint.list_checkpoints(run / "checkpoints")[-1][0] == at + every

    _run_and_kill(driver, ["train", "--resume", str(run)], f"step:{rng.randrange(2, 12)}", tmp_path)

    code, _, err = cli("train", "--resume", str(run), "--quiet")
    assert code == 0, err
    assert not list((run / "checkpoints").glob(".*.tmp"))
    assert _same_weights(whole, run)
    assert _untimed(whole) == _untimed(run)


# ---------------------------------------------------------------- no pickles


class _Payload:
    """Unpickling this creates a marker file: what a malicious file would do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_pickle_planted_as_a_checkpoint_is_refused_and_never_run(tiny, cli, tmp_path):
    run = tmp_path / "run"
    assert cli("train", "--out", run, "--steps", "5", "--quiet", *tiny)[0] == 0
    marker = tmp_path / "pwned"
    with open(marker.with_suffix(".probe"), "wb") as f:  # the payload does run when unpickled
        pickle.dump(_Payload(marker.with_suffix(".ran")), f)
    pickle.loads(marker.with_suffix(".probe").read_bytes())
    assert marker.with_suffix(".ran").exists()

    planted = run / "checkpoints" / "step-000005.safetensors"
    torch.save({"G": _Payload(marker)}, planted)  # torch's zip+pickle format
    code, _, err = cli("sample", run, "--n", "2", "--out", tmp_path / "x.npy")
    assert code == 1 and len(err.strip().splitlines()) == 1
    assert "step-000005.safetensors: not a readable ganforge checkpoint" in err
    code, _, err = cli("train", "--resume", run, "--steps", "8", "--quiet")
    assert code == 1 and "not a readable ganforge checkpoint" in err
    planted.write_bytes(pickle.dumps(_Payload(marker)))  # a bare pickle
    assert cli("sample", run, "--n", "2", "--out", tmp_path / "x.npy")[0] == 1
    assert not marker.exists()
    assert not (tmp_path / "x.npy").exists()


@pytest.mark.parametrize("suffix", [".npy", ".npz"])
def test_a_pickled_array_is_refused_and_never_run(cli, tmp_path, suffix):
    marker = tmp_path / "pwned"
    x = np.array([_Payload(marker)], dtype=object)
    path = tmp_path / f"data{suffix}"
    if suffix == ".npy":
        np.save(path, x, allow_pickle=True)
    else:
        np.savez(path, x=x)
    code, _, err = cli("train", "--data", path, "--out", tmp_path / "run", "--quiet")
    assert code == 1
    assert err.strip() == (
        f"ganforge train: error: {path}: holds pickled Python objects, which are not loaded "
        "(unpickling can run code); save a numeric array instead"
    )
    assert not marker.exists() and not (tmp_path / "run").exists()


def test_no_unsafe_loading_in_the_source():
    """Weights come from safetensors, metadata from JSON: no pickle, no torch.load without
    weights_only=True, no np.load with allow_pickle=True anywhere in the package."""
    for path in sorted(SRC.rglob("*.py")):
        text = path.read_text()
        assert "import pickle" not in text and "pickle.load" not in text, path
        assert "allow_pickle=True" not in text, path
        for line in text.splitlines():
            if "torch.load(" in line:
                assert "weights_only=True" in line, f"{path}: {line.strip()}"
