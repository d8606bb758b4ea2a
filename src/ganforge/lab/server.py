"""The lab's web server: the page and its JSON API, on 127.0.0.1 only (standard library).

    GET  /                  the page (static/index.html); /static/NAME its script and style
    GET  /api/state         the newest state (JSON)
    GET  /api/config.toml   the current settings as a TOML file for ``ganforge train --config``
    POST /api/step          {"steps": N} or {"d": n, "g": m}: advance, answer the new state
    POST /api/config        {"optim.lr_d": 1e-3, "data": "ring8", "points": [...], ...}
    POST /api/play | /api/pause | /api/reset
    POST /api/export        {"out": "FOLDER"} (optional): lab.toml and the run folder

A bad request gets a 4xx and ``{"error": "one line"}``; the server keeps serving. Requests
whose Host is not this machine's loopback name are refused (no DNS rebinding), and so are
POSTs that are not JSON or come from another site's page (no cross-site requests).
"""

from __future__ import annotations

import json
import threading
from http import HTTPStatus
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from importlib import resources
from pathlib import Path
from typing import Any

from ganforge.errors import GanforgeError
from ganforge.lab.session import Session, check_steps

HOST = "127.0.0.1"
MAX_BODY = 1 << 20  # bytes of a request body
STATIC = {  # the files the page may load, and their types: nothing else is served
    "index.html": "text/html; charset=utf-8",
    "lab.js": "text/javascript; charset=utf-8",
    "lab.css": "text/css; charset=utf-8",
}
LOOPBACK_NAMES = ("127.0.0.1", "localhost")


class BadRequest(Exception):
    """A request the API refuses: its status and one line."""

    def __init__(self, status: HTTPStatus, message: str) -> None:
        super().__init__(message)
        self.status = status


def static_file(name: str) -> bytes:
    return resources.files("ganforge.lab").joinpath("static").joinpath(name).read_bytes()


class LabServer(ThreadingHTTPServer):
    """A threading HTTP server bound to 127.0.0.1 that serves one ``Session``."""

    daemon_threads = True

    def __init__(self, session: Session, port: int = 0, export_dir: Path | None = None) -> None:
        super().__init__((HOST, port), Handler)
        self.session = session
        self.export_dir = export_dir or Path("lab-export")

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.server_address[1]}/"

    def start(self) -> threading.Thread:
        """Serve from a background thread (tests); ``serve_forever`` serves from this one."""
        thread = threading.Thread(target=self.serve_forever, name="ganforge-lab-http")
        thread.daemon = True
        thread.start()
        return thread


class Handler(BaseHTTPRequestHandler):
    server: LabServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:
        pass  # quiet: the terminal shows the URL, not every poll

    # ------------------------------------------------------------------ replies

    def _send(self, status: HTTPStatus, body: bytes, kind: str) -> None:
        self.send_response(status)
        self.send_header("Content-Type", kind)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        if self.command != "HEAD":
            self.wfile.write(body)

    def _json(self, data: Any, status: HTTPStatus = HTTPStatus.OK) -> None:
        body = data if isinstance(data, bytes) else json.dumps(data, allow_nan=False).encode()
        self._send(status, body, "application/json")

    def _error(self, status: HTTPStatus, message: str) -> None:
        self._json({"error": " ".join(message.split())}, status)

    def _body(self) -> dict[str, Any]:
        try:
            length = int(self.headers.get("Content-Length") or 0)
        except ValueError:
            raise BadRequest(HTTPStatus.BAD_REQUEST, "Content-Length is not a number") from None
        if length > MAX_BODY:
            self.close_connection = True  # the unread body must not be taken for a request
            raise BadRequest(HTTPStatus.REQUEST_ENTITY_TOO_LARGE, "request body over 1 MiB")
        raw = self.rfile.read(length) if length > 0 else b""
        if not raw.strip():
            return {}
        try:
            body = json.loads(raw)
        except (ValueError, UnicodeDecodeError):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "the body is not valid JSON") from None
        if not isinstance(body, dict):
            raise BadRequest(HTTPStatus.BAD_REQUEST, "expected a JSON object")
        return body

    def _host_ok(self) -> bool:
        host = (self.headers.get("Host") or "").rsplit(":", 1)[0].strip("[]")
        return host in LOOPBACK_NAMES

    def _origin_ok(self) -> bool:
        """A POST comes from the lab's own page: no Origin (a script, a test), or this
        server's; and as JSON, which another site's page cannot send without asking first
        (a CORS preflight, which this server never grants)."""
        origin = self.headers.get("Origin")
        port = self.server.server_address[1]
        if origin is not None and origin not in {f"http://{h}:{port}" for h in LOOPBACK_NAMES}:
            return False
        kind = (self.headers.get("Content-Type") or "").split(";")[0].strip().lower()
        return kind == "application/json"

    # ------------------------------------------------------------------ routes

    def do_HEAD(self) -> None:
        self.do_GET()

    def do_GET(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "only http://127.0.0.1 is served")
        path = self.path.split("?", 1)[0]
        session = self.server.session
        if path == "/api/state":
            return self._json(session.state_json())
        if path == "/api/config.toml":
            text = session.config_toml().encode()
            return self._send(HTTPStatus.OK, text, "application/toml; charset=utf-8")
        name = "index.html" if path in ("/", "/index.html") else path.removeprefix("/static/")
        if name in STATIC:
            return self._send(HTTPStatus.OK, static_file(name), STATIC[name])
        if path.startswith("/api/"):
            return self._error(HTTPStatus.METHOD_NOT_ALLOWED, f"{path} takes POST, or is unknown")
        return self._error(HTTPStatus.NOT_FOUND, f"no page {path}")

    def do_POST(self) -> None:
        if not self._host_ok():
            return self._error(HTTPStatus.FORBIDDEN, "only http://127.0.0.1 is served")
        if not self._origin_ok():
            self.close_connection = True
            return self._error(
                HTTPStatus.FORBIDDEN,
                "POST JSON (Content-Type: application/json) from the lab's page",
            )
        path = self.path.split("?", 1)[0]
        session = self.server.session
        try:
            body = self._body()
            if path == "/api/step":
                steps, d, g = check_steps(body)
                return self._json(session.advance(steps, d, g))
            if path == "/api/config":
                return self._json(session.configure(body))
            if path in ("/api/play", "/api/pause", "/api/reset"):
                if body:
                    raise BadRequest(HTTPStatus.BAD_REQUEST, f"{path} takes no fields")
                action = {"/api/play": session.play, "/api/pause": session.pause}
                return self._json(action.get(path, session.reset)())
            if path == "/api/export":
                unknown = sorted(set(body) - {"out"})
                if unknown or not isinstance(body.get("out", ""), str):
                    raise BadRequest(HTTPStatus.BAD_REQUEST, 'send {"out": "FOLDER"} or nothing')
                out = Path(body["out"]) if body.get("out") else self.server.export_dir
                return self._json(session.export(out))
            raise BadRequest(HTTPStatus.NOT_FOUND, f"no API {path}")
        except BadRequest as e:
            return self._error(e.status, str(e))
        except GanforgeError as e:
            return self._error(HTTPStatus.BAD_REQUEST, str(e))
        except Exception as e:  # a bug: say it in one line, keep serving
            return self._error(HTTPStatus.INTERNAL_SERVER_ERROR, f"{type(e).__name__}: {e}")
