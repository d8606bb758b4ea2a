"""ganforge lab in headless Chromium: press play, see the JSD shown fall and the plots drawn.

Chromium is driven through the DevTools protocol over a pipe (``--remote-debugging-pipe``:
JSON messages ended by a NUL byte on file descriptors 3 and 4), so no library and no
network port is needed besides the lab's own.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from ganforge.lab.server import LabServer
from ganforge.lab.session import Session

CHROMIUM = Path("/usr/bin/chromium")
FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--window-size=1700,1000",
]

pytestmark = [
    pytest.mark.browser,
    pytest.mark.skipif(
        not CHROMIUM.is_file(), reason="needs Debian's chromium at /usr/bin/chromium"
    ),
]


class DevTools:
    """A minimal DevTools-protocol client over Chromium's debugging pipe."""

    def __init__(self, profile: Path) -> None:
        to_chrome_r, self._to_chrome = os.pipe()
        self._from_chrome, from_chrome_w = os.pipe()

        def wire() -> None:  # in the child: the pipe's ends as fds 3 (read) and 4 (write)
            os.dup2(to_chrome_r, 3)
            os.dup2(from_chrome_w, 4)

        self.proc = subprocess.Popen(
            [
                str(CHROMIUM),
                *FLAGS,
                f"--user-data-dir={profile}",
                "--remote-debugging-pipe",
                "about:blank",
            ],
            preexec_fn=wire,
            close_fds=False,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        os.close(to_chrome_r)
        os.close(from_chrome_w)
        self._buffer = b""
        self._id = 0
        self.session: str | None = None
        self.requested: list[str] = []  # every URL the page asked for

    def call(self, method: str, **params: Any) -> dict[str, Any]:
        self._id += 1
        message: dict[str, Any] = {"id": self._id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            message["sessionId"] = self.session
        os.write(self._to_chrome, json.dumps(message).encode() + b"\0")
        while True:
            while b"\0" not in self._buffer:
                chunk = os.read(self._from_chrome, 1 << 16)
                if not chunk:
                    raise RuntimeError("Chromium closed the debugging pipe")
                self._buffer += chunk
            raw, self._buffer = self._buffer.split(b"\0", 1)
            reply = json.loads(raw)
            if reply.get("method") == "Network.requestWillBeSent":
                self.requested.append(reply["params"]["request"]["url"])
            if reply.get("id") == self._id:
                if "error" in reply:
                    raise RuntimeError(f"{method}: {reply['error']}")
                return reply.get("result", {})

    def open(self, url: str) -> None:
        pages = [t for t in self.call("Target.getTargets")["targetInfos"] if t["type"] == "page"]
        self.session = self.call("Target.attachToTarget", targetId=pages[0]["targetId"],
                                 flatten=True)["sessionId"]  # fmt: skip
        self.call("Network.enable")
        self.call("Page.navigate", url=url)

    def js(self, expression: str) -> Any:
        result = self.call(
            "Runtime.evaluate", expression=expression, returnByValue=True, awaitPromise=True
        )
        if "exceptionDetails" in result:
            raise RuntimeError(f"{expression}: {result['exceptionDetails']}")
        return result["result"].get("value")

    def wait_for(self, expression: str, seconds: float) -> Any:
        """Poll ``expression`` until it is truthy; its value."""
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            try:
                value = self.js(expression)
            except RuntimeError:
                value = None
            if value:
                return value
            time.sleep(0.2)
        raise AssertionError(f"still false after {seconds} s: {expression}")

    def close(self) -> None:
        with contextlib.suppress(RuntimeError, OSError):
            self.call("Browser.close")
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self._to_chrome)
        os.close(self._from_chrome)


@pytest.fixture
def lab() -> Iterator[LabServer]:
    server = LabServer(Session("toy-1d"), port=0)
    server.start()
    yield server
    server.shutdown()
    server.server_close()
    server.session.close()


@pytest.fixture
def browser(tmp_path: Path) -> Iterator[DevTools]:
    tools = DevTools(tmp_path / "profile")
    yield tools
    tools.close()


# The share of a canvas's pixels that are not white, and of those close to a colour.
INK = """((id, rgb) => {
  const c = document.getElementById(id);
  const d = c.getContext('2d').getImageData(0, 0, c.width, c.height).data;
  let ink = 0, hue = 0;
  for (let i = 0; i < d.length; i += 4) {
    if (d[i] < 245 || d[i + 1] < 245 || d[i + 2] < 245) ink++;
    if (!rgb) continue;
    const far = Math.abs(d[i] - rgb[0]) + Math.abs(d[i + 1] - rgb[1]) + Math.abs(d[i + 2] - rgb[2]);
    if (far < 60) hue++;
  }
  return [ink / (d.length / 4), hue / (d.length / 4), +(c.dataset.frames || 0)];
})"""

SHOWN_JSD = "parseFloat(document.getElementById('jsd').textContent)"


def test_play_makes_the_jsd_shown_fall_and_draws_the_plots(lab, browser):
    browser.open(lab.url)
    j0 = browser.wait_for(f"{SHOWN_JSD} > 0 && {SHOWN_JSD}", 60)
    assert j0 > 0.5  # the initial G is far from the data
    browser.js("document.getElementById('play').click()")
    fell = browser.wait_for(f"{SHOWN_JSD} < {j0 / 2} && {SHOWN_JSD}", 90)
    assert fell < j0 / 2
    status = "document.getElementById('status').textContent"
    assert browser.wait_for(f"{status}.startsWith('playing')", 10)
    browser.js("document.getElementById('pause').click()")
    browser.wait_for(f"{status}.startsWith('paused')", 10)
    paused = lab.session.state()
    assert paused["step"] > 0
    # one D update: D's count moves by one, G's step does not; one G update: the reverse
    browser.js("document.getElementById('step-d').click()")
    d_shown = f"document.getElementById('d-updates').textContent === '{paused['d_updates'] + 1}'"
    browser.wait_for(d_shown, 10)
    browser.js("document.getElementById('step-g').click()")
    browser.wait_for(f"document.getElementById('step').textContent === '{paused['step'] + 1}'", 10)
    assert lab.session.state()["d_updates"] == paused["d_updates"] + 1
    # the 1-D picture: p_g (green) and D* (orange) drawn, the curves and the z-to-x mapping
    ink, green, frames = browser.js(f"{INK}('main', [44, 160, 44])")
    assert ink > 0.03 and green > 0.0005 and frames >= 2
    _, orange, _ = browser.js(f"{INK}('main', [255, 127, 14])")
    assert orange > 0.0005
    for canvas in ("second", "curve-v", "curve-loss", "curve-d"):
        ink, _, frames = browser.js(f"{INK}('{canvas}', null)")
        assert ink > 0.01 and frames >= 2, canvas
    # switching to ring8 from the page's own control draws D's heat map over the plane
    browser.js(
        "const s = document.getElementById('data'); s.value = 'ring8';"
        "s.dispatchEvent(new Event('change'))"
    )
    browser.wait_for("document.getElementById('main').height === 560", 30)
    ink, _, _ = browser.js(f"{INK}('main', null)")
    assert ink > 0.3  # the heat map fills the square
    assert lab.session.state()["dim"] == 2
    assert browser.js("document.getElementById('message').textContent") == ""
    # drawing: tick "draw", click three places on the plane, train on the drawing
    browser.js(
        "document.getElementById('draw').checked = true;"
        "const m = document.getElementById('main'), r = m.getBoundingClientRect();"
        "for (const [fx, fy] of [[0.2, 0.2], [0.5, 0.6], [0.7, 0.3]]) {"
        "  m.dispatchEvent(new MouseEvent('click', {clientX: r.left + fx * r.width * 0.8,"
        "    clientY: r.top + fy * r.height * 0.9, bubbles: true})); }"
        "document.getElementById('use-drawing').click()"
    )
    browser.wait_for("document.getElementById('modes').textContent.endsWith('/ 3')", 30)
    drawn = lab.session.state()
    assert (drawn["data"], drawn["dim"], drawn["n_modes"]) == ("drawn", 2, 3)
    # every file and request of the page went to the lab's own server: nothing from a network
    assert browser.requested and all(u.startswith(lab.url) for u in browser.requested)
