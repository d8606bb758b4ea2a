"""Shared helpers: a tiny, fast version of the course's model for end-to-end runs."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
import torch

from ganforge.cli import main

# One torch thread for the tests and the processes they start (they inherit the variable): the
# tensors here are tiny, and on a busy 2-core machine a second thread's spin-waits made small
# runs up to 3x slower. Runs compared bit for bit (in-process against a subprocess) thus use the
# same count. Set OMP_NUM_THREADS to run the tests with another.
os.environ.setdefault("OMP_NUM_THREADS", "1")
torch.set_num_threads(int(os.environ["OMP_NUM_THREADS"]))

# Small nets and 256 images: an end-to-end run of 20 steps takes well under a second.
TINY = [
    "model.latent_dim=8",
    "model.g_hidden=16,16",
    "model.d_hidden=16",
    "data.limit=256",
    "train.batch_size=16",
    "train.log_every=5",
    "train.sample_every=10",
    "train.ckpt_every=5",
    "train.n_samples=16",
    "diagnose.report=false",  # about 1 s a run; tests/test_report.py turns it on
]


@pytest.fixture(scope="session")
def shared_run(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One TINY run of 10 steps (seed 0), trained once per session, for tests that only read a
    run (sample, eval, inpaint, theory's refusals). A test that changes a run, or writes into it
    (``ganforge eval`` writes eval.json), copies it first: ``shutil.copytree(shared_run, dst)``.
    """
    run = tmp_path_factory.mktemp("shared") / "tiny"
    assert main(["train", "--out", str(run), "--steps", "10", "--quiet", *TINY]) == 0
    return run


def read_metrics(run: Path) -> list[dict]:
    return [json.loads(line) for line in (run / "metrics.jsonl").read_text().splitlines()]


@pytest.fixture(autouse=True)
def _torch_threads():
    """Give every test torch's thread count back as it found it. A run with train.threads=N
    sets it for the whole process, and float sums split over 1 or 2 threads round differently:
    a later test that compares an in-process run with a subprocess (default threads) bit for
    bit would fail, depending on which tests ran before it."""
    before = torch.get_num_threads()
    yield
    torch.set_num_threads(before)


@pytest.fixture
def cli(capsys):
    """Run ``ganforge ARGS`` in-process; returns (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse: --help, usage errors
            code = int(e.code or 0)
        out = capsys.readouterr()
        return code, out.out, out.err

    return run
