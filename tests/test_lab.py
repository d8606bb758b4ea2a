"""ganforge lab: the session and its HTTP API, in-process, on 127.0.0.1."""

from __future__ import annotations

import contextlib
import json
import math
import time
import urllib.error
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ganforge import config as cfglib
from ganforge.cli import main
from ganforge.data import from_config
from ganforge.lab import server as labserver
from ganforge.lab.server import LabServer
from ganforge.lab.session import MAX_STEPS, Session, config_toml
from ganforge.report.html import load_run
from ganforge.report.theory import load_snapshots

LOG4 = math.log(4.0)


class Client:
    def __init__(self, server: LabServer) -> None:
        self.url = server.url.rstrip("/")
        self.session = server.session

    def request(
        self, method: str, path: str, body: Any = None, headers: dict | None = None
    ) -> tuple[int, Any]:
        data = None if body is None else (body if isinstance(body, bytes) else json.dumps(body))
        req = urllib.request.Request(
            self.url + path,
            data=data.encode() if isinstance(data, str) else data,
            method=method,
            headers={"Content-Type": "application/json", **(headers or {})},
        )
        try:
            with urllib.request.urlopen(req, timeout=30) as res:
                raw, status = res.read(), res.status
                kind = res.headers.get("Content-Type", "")
        except urllib.error.HTTPError as e:
            raw, status, kind = e.read(), e.code, e.headers.get("Content-Type", "")
        return status, json.loads(raw) if "json" in kind else raw.decode()

    def get(self, path: str = "/api/state") -> Any:
        status, body = self.request("GET", path)
        assert status == 200, body
        return body

    def post(self, path: str, body: Any = None) -> Any:
        status, reply = self.request("POST", path, {} if body is None else body)
        assert status == 200, reply
        return reply


@contextlib.contextmanager
def _serve_one(session: Session) -> Iterator[Client]:
    server = LabServer(session, port=0)
    server.start()
    try:
        yield Client(server)
    finally:
        server.shutdown()
        server.server_close()
        session.close()


def _serve(session: Session) -> Iterator[Client]:
    with _serve_one(session) as client:
        yield client


@pytest.fixture(scope="module")
def one_d() -> Iterator[Client]:
    yield from _serve(Session("toy-1d"))


@pytest.fixture(scope="module")
def two_d() -> Iterator[Client]:
    yield from _serve(Session("ring8"))


STATE_KEYS = {
    "step", "d_updates", "loss_d", "loss_g", "d_real", "d_fake", "jsd", "v_d", "v_dstar",
    "modes_captured", "n_modes", "high_quality", "warnings", "history", "config", "playing",
}  # fmt: skip


def _theory_holds(s: dict) -> None:
    """The course's identities on the state shown: V(D*, G) = -log 4 + 2 JSD, V(D, G) <=
    V(D*, G), 0 <= JSD <= log 2."""
    assert 0 <= s["jsd"] <= math.log(2)
    assert s["v_dstar"] == pytest.approx(-LOG4 + 2 * s["jsd"], abs=1e-6)
    assert s["v_d"] <= s["v_dstar"] + 1e-9


def test_the_state_of_a_new_1d_session(one_d):
    s = one_d.get()
    assert set(s) >= STATE_KEYS
    assert s["dim"] == 1 and s["n_modes"] == 2 and s["data"] == "toy-1d"
    assert len(s["x"]) == len(s["p_data"]) == len(s["p_g"]) == len(s["d"]) == len(s["d_star"])
    assert all(0 <= v <= 1 for v in s["d"] + s["d_star"])
    _theory_holds(s)
    assert s["jsd"] > 0.5  # a G at its initial weights is far from the data


def test_stepping_moves_the_step_by_exactly_what_was_asked(one_d):
    before = one_d.get()
    k = before["config"]["train.d_steps"]
    assert k == 3  # the toy-1d preset's k
    s = one_d.post("/api/step", {"steps": 7})
    assert (s["step"], s["d_updates"]) == (before["step"] + 7, before["d_updates"] + 7 * k)
    s2 = one_d.post("/api/step", {"d": 2})
    assert (s2["step"], s2["d_updates"]) == (s["step"], s["d_updates"] + 2)
    s3 = one_d.post("/api/step", {"g": 1})
    assert (s3["step"], s3["d_updates"]) == (s2["step"] + 1, s2["d_updates"])
    s4 = one_d.post("/api/step", {"d": 1, "g": 2})
    assert (s4["step"], s4["d_updates"]) == (s3["step"] + 2, s3["d_updates"] + 1)
    assert one_d.get()["step"] == s4["step"]
    assert all(isinstance(s4[k], float) for k in ("loss_d", "loss_g", "d_real", "d_fake"))
    _theory_holds(s4)
    assert s4["history"][-1]["step"] == s4["step"]


@pytest.mark.parametrize(
    ("method", "path", "body", "status", "words"),
    [
        ("POST", "/api/step", b"{not json", 400, "not valid JSON"),
        ("POST", "/api/step", [1, 2], 400, "expected a JSON object"),
        ("POST", "/api/step", {}, 400, '{"steps": N}'),
        ("POST", "/api/step", {"steps": -1}, 400, "steps: expected a whole number"),
        ("POST", "/api/step", {"steps": 1.5}, 400, "steps: expected a whole number"),
        ("POST", "/api/step", {"steps": "3"}, 400, "steps: expected a whole number"),
        ("POST", "/api/step", {"steps": True}, 400, "steps: expected a whole number"),
        ("POST", "/api/step", {"steps": MAX_STEPS + 1}, 400, f"from 0 to {MAX_STEPS}"),
        ("POST", "/api/step", {"steps": 1, "d": 1}, 400, "not both"),
        ("POST", "/api/step", {"stpes": 1}, 400, "unknown field 'stpes'"),
        ("POST", "/api/config", {"optim.lr_d": -1}, 400, "optim.lr_d: must be > 0"),
        ("POST", "/api/config", {"optim.lr_d": "fast"}, 400, "optim.lr_d: expected a number"),
        ("POST", "/api/config", {"no.such": 1}, 400, "unknown config key"),
        ("POST", "/api/config", {"train.loss": "nope"}, 400, "unknown value 'nope'"),
        ("POST", "/api/config", {"data": "nope"}, 400, "nope"),
        ("POST", "/api/config", {"points": []}, 400, "draw at least one point"),
        ("POST", "/api/config", {"points": [[1, 2, 3]]}, 400, "pairs"),
        (
            "POST",
            "/api/config",
            {"train.loss": "hinge", "stab.label_smoothing": True},
            400,
            "label_smoothing needs a loss with targets",
        ),
        ("POST", "/api/config", {"model.pack": 3}, 400, "divisible"),
        ("POST", "/api/play", {"fast": True}, 400, "takes no fields"),
        ("POST", "/api/export", {"out": 3}, 400, '{"out": "FOLDER"}'),
        ("POST", "/api/nope", {}, 404, "no API /api/nope"),
        ("GET", "/api/step", None, 405, "takes POST"),
        ("GET", "/nope.html", None, 404, "no page /nope.html"),
    ],
)
def test_bad_requests_get_a_4xx_and_one_line_and_change_nothing(
    one_d, method, path, body, status, words
):
    before = one_d.get()
    got, reply = one_d.request(method, path, body)
    assert got == status
    assert set(reply) == {"error"} and "\n" not in reply["error"]
    assert words in reply["error"]
    after = one_d.get()  # the server still answers, and nothing changed
    assert (after["step"], after["config"], after["data"]) == (
        before["step"],
        before["config"],
        before["data"],
    )


def test_a_big_body_and_a_foreign_host_are_refused(one_d):
    # the length announced is refused before the body is read (none is sent beyond 2 bytes)
    big = {"Content-Length": str(2 << 20), "Content-Type": "application/json"}
    status, reply = one_d.request("POST", "/api/step", b"{}", headers=big)
    assert status == 413 and "1 MiB" in reply["error"]
    status, reply = one_d.request("GET", "/api/state", headers={"Host": "evil.example:80"})
    assert status == 403 and "127.0.0.1" in reply["error"]
    assert one_d.get()["dim"] == 1


@pytest.mark.parametrize(
    "headers",
    [
        {"Content-Type": "text/plain"},  # what a form of another site may send unasked
        {"Content-Type": "application/x-www-form-urlencoded"},
        {"Origin": "http://evil.example"},
        {"Origin": "http://127.0.0.1:1"},  # another port: another site
    ],
)
def test_posts_from_other_pages_are_refused(one_d, headers):
    before = one_d.get()["step"]
    status, reply = one_d.request("POST", "/api/step", {"steps": 1}, headers=headers)
    assert status == 403 and "application/json" in reply["error"]
    assert one_d.get()["step"] == before
    own = {"Origin": one_d.url}  # the lab's own page
    assert one_d.request("POST", "/api/step", {"steps": 1}, headers=own)[0] == 200


def test_the_server_listens_on_loopback_only_and_serves_the_page():
    session = Session("toy-1d")
    server = LabServer(session, port=0)
    try:
        assert server.server_address[0] == "127.0.0.1" and server.server_address[1] > 0
    finally:
        server.server_close()
        session.close()
    for name in labserver.STATIC:  # shipped in the package (package-data)
        assert labserver.static_file(name)


def test_the_page_and_its_files_are_served(one_d):
    _, page = one_d.request("GET", "/")
    assert '<canvas id="main"' in page and "/static/lab.js" in page
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched from elsewhere
    _, script = one_d.request("GET", "/static/lab.js")
    assert "/api/state" in script and "http" not in script


def test_config_changes_apply_live_or_from_step_0(one_d):
    one_d.post("/api/step", {"steps": 2})
    step = one_d.get()["step"]
    s = one_d.post("/api/config", {"optim.lr_d": 5e-4, "train.d_steps": 2, "lr_g": 2e-4})
    assert s["config"]["optim.lr_d"] == 5e-4 and s["config"]["optim.lr_g"] == 2e-4
    assert s["config"]["train.d_steps"] == 2 and s["step"] == step  # live: the same nets
    s = one_d.post("/api/step", {"steps": 3})
    assert (s["step"], s["d_updates"]) == (step + 3, one_d.get()["d_updates"])
    s = one_d.post("/api/config", {"train.loss": "hinge", "stab.r1": 1.0})
    assert (s["config"]["train.loss"], s["config"]["stab.r1"]) == ("hinge", 1.0)
    s = one_d.post("/api/step", {"steps": 1})
    assert s["step"] == step + 4
    s = one_d.post("/api/config", {"train.seed": 5})  # new weights: step 0
    assert (s["step"], s["d_updates"], s["config"]["train.seed"]) == (0, 0, 5)
    s = one_d.post("/api/reset")
    assert s["step"] == 0 and s["config"]["train.loss"] == "hinge"
    back = {"train.loss": "ns", "stab.r1": 0, "train.d_steps": 3, "optim.lr_d": 1e-3}
    s = one_d.post("/api/config", {**back, "optim.lr_g": 3e-4, "train.seed": 0})
    assert s["step"] == 0


def test_play_trains_in_the_background_and_pause_stops_it(one_d):
    start = one_d.post("/api/play")["step"]
    deadline = time.monotonic() + 20
    while one_d.get()["step"] < start + 5 and time.monotonic() < deadline:
        time.sleep(0.05)
    paused = one_d.post("/api/pause")
    assert paused["playing"] is False and paused["step"] >= start + 5
    time.sleep(0.2)
    assert one_d.get()["step"] == paused["step"]


def test_a_2d_session_shows_the_plane_and_the_modes(two_d):
    s = two_d.post("/api/step", {"steps": 3})
    assert s["dim"] == 2 and s["step"] == 3 and s["n_modes"] == 8
    n = len(s["heat"])
    assert n == len(s["heat"][0]) == len(s["heat_star"]) > 10
    assert len(s["real"]) == len(s["fake"]) == 500 and len(s["centres"]) == 8
    assert len(s["z_lines"]) == 22 and all(len(p[0]) == 2 for p in s["z_lines"])
    assert 0 <= s["modes_captured"] <= 8 and 0 <= s["high_quality"] <= 1
    _theory_holds(s)


def test_export_round_trips_to_train_theory_and_report(one_d, tmp_path):
    one_d.post("/api/reset")
    one_d.post("/api/step", {"steps": 30})
    written = one_d.post("/api/export", {"out": str(tmp_path / "exp")})
    toml = Path(written["config"])
    cfg = cfglib.build(config_file=toml)  # what `ganforge train --config` reads
    assert cfg.preset == "toy-1d" and cfg.train.steps == 3000  # the preset's full length
    assert cfg.data.source == "gmm1d:-2,2:0.5:0.3,0.7" and cfg.train.d_steps == 3
    run = Path(written["run"])
    assert cfglib.from_json(run / "config.json").train.steps == 30
    snaps, source = load_snapshots(run)  # what `ganforge theory` reads
    assert source == "snapshots" and [s.step for s in snaps] == [0, 25, 30]
    assert snaps[-1].g.keys() == snaps[-1].g_pre.keys()
    data = load_run(run)  # what `ganforge report` reads
    assert data.cfg.train.loss == "ns" and [s for s, _ in data.samples] == [30]
    assert (run / "checkpoints" / "step-000030.safetensors").is_file()


@pytest.mark.slow
def test_ganforge_theory_and_report_draw_an_exported_run(one_d, tmp_path):
    one_d.post("/api/reset")
    one_d.post("/api/step", {"steps": 60})
    run = Path(one_d.post("/api/export", {"out": str(tmp_path)})["run"])
    assert main(["theory", str(run), "--no-gif", "--quiet"]) == 0
    assert (run / "theory" / "abcd.png").is_file()
    rows = [json.loads(line) for line in (run / "theory" / "theory.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 25, 50, 60]
    assert main(["report", str(run)]) == 0
    assert load_run(run).theory  # the report shows the theory's figures of the export
    assert (run / "report.html").read_text().count("data:image/png") > 3


def test_drawn_points_train_and_export_as_a_mixture(two_d, tmp_path):
    s = two_d.post("/api/config", {"points": [[0, 0], [1.5, 1.5], [-1.5, 1]]})
    assert (s["data"], s["dim"], s["n_modes"], s["step"]) == ("drawn", 2, 3, 0)
    s = two_d.post("/api/step", {"steps": 2})
    written = two_d.post("/api/export", {"out": str(tmp_path / "drawn")})
    cfg = cfglib.build(config_file=written["config"])
    assert cfg.data.source == written["data"]
    data = from_config(cfg.data)
    assert data.sample_shape == (2,) and len(data) == 100_000
    assert load_run(Path(written["run"])).cfg.data.source == written["data"]
    s = two_d.post("/api/config", {"data": "toy-1d"})  # back to a 1-D world: 1-D nets
    assert (s["dim"], s["data"], s["config"]["train.d_steps"]) == (1, "toy-1d", 3)
    s = two_d.post("/api/config", {"data": "ring8"})
    assert (s["dim"], s["data"]) == (2, "ring8")


def test_the_toml_holds_what_differs_from_the_preset():
    cfg = cfglib.preset("ring8")
    cfglib.apply(cfg, {"stab.ema": 0.0, "model.d_hidden": (64, 32), "train.loss": "hinge"})
    text = config_toml(cfg, "note")
    assert text.splitlines()[:2] == ["# note", 'preset = "ring8"']
    assert "d_hidden = [64, 32]" in text and 'loss = "hinge"' in text and "ema = 0.0" in text
    path = Path(pytest.importorskip("tempfile").mkdtemp()) / "c.toml"
    path.write_text(text)
    assert cfglib.build(config_file=path).to_dict() == cfg.to_dict()


def test_the_command_prints_the_url_and_stops_cleanly(monkeypatch, capsys):
    def interrupted(self: LabServer) -> None:
        raise KeyboardInterrupt

    monkeypatch.setattr(LabServer, "serve_forever", interrupted)
    assert main(["lab", "--no-browser", "--port", "0"]) == 0
    out, err = capsys.readouterr()
    assert out.startswith("ganforge lab: http://127.0.0.1:") and "stopped" in err


@pytest.mark.parametrize(
    ("argv", "words"),
    [
        (["--port", "70000"], "--port must be from 0 to 65535"),
        (["--data", "nope"], "nope"),
        (["--data", "mnist5k"], "the lab trains on 1-D or 2-D points"),
    ],
)
def test_command_mistakes_are_one_line(argv, words, capsys):
    assert main(["lab", "--no-browser", *argv]) in (1, 2)
    err = capsys.readouterr().err
    assert err.startswith("ganforge lab: error: ") and words in err
    assert len(err.strip().splitlines()) == 1


def test_a_diverged_run_stops_with_one_line_and_keeps_serving():
    import torch

    with _serve_one(Session("toy-1d")) as client:
        session = client.session
        with torch.no_grad():
            next(session.gan.D.parameters()).fill_(float("nan"))
        s = client.post("/api/step", {"steps": 2})
        assert s["step"] == 2 and s["playing"] is False
        assert s["stopped"].startswith("step 1: loss_d is nan") and "reset" in s["stopped"]
        assert client.get()["stopped"] == s["stopped"]  # valid JSON: no NaN in it
        s = client.post("/api/reset")
        assert (s["step"], s["stopped"]) == (0, "")
        assert math.isfinite(client.post("/api/step", {"steps": 1})["jsd"])


@pytest.mark.slow
def test_the_real_command_serves_until_ctrl_c(tmp_path):
    import os
    import signal
    import subprocess
    import sys

    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1] / "src")}
    proc = subprocess.Popen(
        [sys.executable, "-m", "ganforge", "lab", "--no-browser", "--data", "ring8"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=tmp_path,
        env=env,
    )
    try:
        line = proc.stdout.readline()  # type: ignore[union-attr]
        assert line.startswith("ganforge lab: http://127.0.0.1:")
        url = line.split()[2].rstrip("/")
        with urllib.request.urlopen(url + "/api/state", timeout=30) as res:
            assert json.loads(res.read())["data"] == "ring8"
        proc.send_signal(signal.SIGINT)
        _, err = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 0 and "stopped" in err and "Traceback" not in err
