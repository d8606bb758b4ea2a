"""The HTML report: self-contained, complete, runs overlaid; checked in headless Chromium."""

import base64
import io
import json
import re
import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from conftest import TINY
from ganforge import config as cfglib
from ganforge.cli import main
from ganforge.report.html import MAX_STRIP, _strip, write_report
from ganforge.train.loop import train

CHROMIUM = Path("/usr/bin/chromium")
# A 40-step tiny G covers few MNIST classes, which the mode-collapse rule rightly reports when
# the shipped classifier is installed; these runs are about the loss rules, so it is off.
QUIET_MODES = [*TINY, "diagnose.collapse_ratio=0"]
BROKEN = [*QUIET_MODES, "optim.lr_d=2e-2", "train.ckpt_every=40"]  # D's lr 100 x G's: D too strong


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    """Two tiny runs: a broken one (it warns) and a healthy one; the report that `ganforge
    train` writes at the end of training is left on for the first."""
    root = tmp_path_factory.mktemp("runs")
    broken, healthy = root / "broken", root / "healthy"
    args = ["train", "--out", str(broken), "--quiet", *BROKEN, "steps=40", "diagnose.report=true"]
    assert main(args) == 0
    train(cfglib.build(overrides=[*QUIET_MODES, "steps=40"]), healthy, quiet=True)
    return broken, healthy


def _images(text: str) -> list[str]:
    return re.findall(r"<img [^>]*src=\"([^\"]*)\"", text)


def _png(uri: str) -> Image.Image:
    head, data = uri.split(",", 1)
    assert head == "data:image/png;base64"
    img = Image.open(io.BytesIO(base64.b64decode(data)))
    img.load()
    return img


def test_training_writes_a_self_contained_report(runs):
    broken, healthy = runs
    assert not (healthy / "report.html").exists()  # diagnose.report=false
    text = (broken / "report.html").read_text()
    # nothing outside the file: no URL, only embedded PNGs, and a policy forbidding the rest
    assert not re.search(r"(src|href)=[\"'](?!data:)", text)
    assert "http://" not in text and "https://" not in text
    assert "default-src 'none'; img-src data:" in text
    uris = _images(text)
    # 4 curves, the timeline, 5 grids (steps 0..40) in the strip and the latest one again
    assert len(uris) == 4 + 1 + 5 + 1
    assert all(_png(u).size[0] > 100 for u in uris)
    for words in (
        "D too strong",
        "Try: lower D&#x27;s learning rate",
        'alt="L_D and L_G"',
        'alt="D(x) and D(G(z)): D&#x27;s mean belief',
        'alt="Gradient norms of D and G (log scale)"',
        'alt="Diversity of the samples: their mean pairwise distance',
        "step 40",
        "ganforge eval",  # says how to add the metrics
        "optim.lr_d</td><td>0.02",
    ):
        assert words in text, words


def test_report_shows_eval_metrics_and_theory_figures(cli, runs, tmp_path):
    broken, _ = runs
    run = tmp_path / "run"
    shutil.copytree(broken, run)
    ev = {"fid": {"value": 41.25, "ci_low": 39.5, "ci_high": 43.0, "floor": 2.125, "n": 5000}}
    (run / "eval.json").write_text(json.dumps(ev))
    (run / "theory").mkdir()
    for name in ("d-star.png", "value-function.png"):
        Image.new("RGB", (120, 80), "white").save(run / "theory" / name)
    code, out, _ = cli("report", run)
    assert (code, out.strip()) == (0, f"wrote {run / 'report.html'}")
    text = (run / "report.html").read_text()
    row = "<tr><td>fid</td><td>41.25</td><td>[39.5, 43]</td><td>2.125</td><td>5000</td></tr>"
    assert row in text
    assert "<h2>Theory</h2>" in text and len(_images(text)) == 11 + 2
    (run / "eval.json").write_text("{not json")  # read defensively
    assert cli("report", run)[0] == 0
    assert "eval.json could not be read as JSON" in (run / "report.html").read_text()


def test_several_runs_are_overlaid_and_their_config_compared(cli, runs, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    code, out, _ = cli("report", *runs)
    assert (code, out.strip()) == (0, "wrote report.html")
    text = (tmp_path / "report.html").read_text()
    assert "<h3>broken</h3>" in text and "<h3>healthy</h3>" in text
    assert "No warnings: over 8 log lines none of the rules fired" in text
    # the learning rates differ (shaded row), the seeds do not
    assert "<tr class='differs'><td>optim.lr_d</td><td>0.02</td><td>0.0002</td></tr>" in text
    assert "<tr><td>train.seed</td><td>0</td><td>0</td></tr>" in text
    assert cli("report", *runs, "--out", tmp_path / "cmp.html")[0] == 0
    assert (tmp_path / "cmp.html").is_file()


def test_report_errors_are_one_line(cli, runs, tmp_path):
    code, _, err = cli("report", tmp_path / "nope")
    assert code == 1 and err.count("\n") == 1 and "is not a folder" in err
    code, _, err = cli("report", runs[0], "--out", tmp_path / "missing" / "r.html")
    assert code == 1 and "does not exist" in err


def test_strip_keeps_first_and_last_evenly_spaced():
    samples = [(i * 100, Path(f"{i}.png")) for i in range(25)]
    steps = [s for s, _ in _strip(samples)]
    assert len(steps) == MAX_STRIP and steps[0] == 0 and steps[-1] == 2400
    # round(i * 24 / 9) for i = 0..9
    assert steps == [100 * round(i * 24 / 9) for i in range(10)]
    assert _strip(samples[:3]) == samples[:3]


def _chromium(*args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking"]
    return subprocess.run(
        [str(CHROMIUM), *flags, *args], capture_output=True, text=True, timeout=120
    )


def _loaded_images(html: Path, tmp_path: Path) -> tuple[int, int]:
    """(images in the page, images that failed to load), as headless Chromium sees them: a
    copy of the page reports them from its load event (the report itself runs no script)."""
    text = html.read_text()
    text = re.sub(r"<meta http-equiv='Content-Security-Policy'[^>]*>", "", text)
    probe = (
        "<script>window.addEventListener('load', () => { const im = [...document.images];"
        "document.body.setAttribute('data-images', im.length + ' ' +"
        " im.filter(i => !(i.complete && i.naturalWidth > 0)).length); });</script>"
    )
    page = tmp_path / "probe.html"
    page.write_text(text.replace("</body>", probe + "</body>"))
    dom = _chromium("--dump-dom", page.as_uri()).stdout
    found = re.search(r'data-images="(\d+) (\d+)"', dom)
    assert found, "Chromium did not run the page's load event"
    return int(found.group(1)), int(found.group(2))


@pytest.mark.browser
@pytest.mark.skipif(
    not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium (.ci/run adds it)"
)
def test_report_renders_in_headless_chromium(runs, tmp_path):
    report = tmp_path / "report.html"
    write_report(list(runs), report)
    shot = tmp_path / "shot.png"
    _chromium("--window-size=1200,2400", f"--screenshot={shot}", report.as_uri())
    pixels = np.asarray(Image.open(shot).convert("L"), dtype=np.float64)
    assert pixels.shape == (2400, 1200)
    # not blank: a good share of the page is drawn, in many shades
    assert (pixels < 200).mean() > 0.05 and len(np.unique(pixels)) > 50
    total, failed = _loaded_images(report, tmp_path)
    assert total == len(_images(report.read_text())) and total > 10
    assert failed == 0
    # the check can fail: a corrupt picture is seen as not loaded
    bad = tmp_path / "bad.html"
    bad.write_text(report.read_text().replace("base64,iVBOR", "base64,AAAA", 1))
    assert _loaded_images(bad, tmp_path) == (total, 1)
