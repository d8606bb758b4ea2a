"""``ganforge lab``: a toy GAN trained live in a local web page, with the course's theory."""

from __future__ import annotations

import argparse
import sys
import webbrowser
from pathlib import Path

from ganforge.errors import ConfigError, GanforgeError
from ganforge.lab.server import LabServer
from ganforge.lab.session import DATA_NAMES, Session

DESCRIPTION = (
    "Serve a local web page (127.0.0.1 only, every file shipped in the package, nothing "
    "fetched) that trains a small GAN on 1-D or 2-D points with ganforge's own step and shows, "
    "live: p_data and p_g with D and D* = p_data / (p_data + p_g) (1-D, Goodfellow's figure), "
    "or D's heat map with the real points, G's samples and the image of a grid of z (2-D); "
    "the JSD, V(D, G) and V(D*, G) = -log 4 + 2 JSD over time; L_D, L_G, D(x), D(G(z)); modes "
    "captured and the high-quality share for mixtures; the diagnostics' warnings in words. "
    "Controls: play, pause, one D update, one G update, reset, the loss, k, both learning "
    "rates, the stabilisers, the data (or points drawn by clicking) and the seed. Export: a "
    "TOML config for `ganforge train --config` and the live run as a run folder for "
    "`ganforge theory` and `ganforge report`. Ctrl-C stops the server."
)
TAKES_OVERRIDES = False


def epilog() -> str:
    return (
        "data names: " + ", ".join(DATA_NAMES) + "; or a toy spec (gmm1d:-1,1:0.3) or a file "
        "of 1-D or 2-D points (.csv, .npy, a mixture .toml/.json)\n\n"
        "examples:\n"
        "  ganforge lab                          # toy-1d: Goodfellow's figure, live\n"
        "  ganforge lab --data ring8             # 8 Gaussians on a circle\n"
        "  ganforge lab --port 8000 --no-browser # then open http://127.0.0.1:8000/"
    )


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument(
        "--data",
        default="toy-1d",
        metavar="NAME|FILE",
        help="the points to learn: " + ", ".join(DATA_NAMES) + ", a toy spec or a file (toy-1d)",
    )
    p.add_argument(
        "--port", type=int, default=0, metavar="P", help="port on 127.0.0.1 (0: a free one)"
    )
    p.add_argument("--no-browser", action="store_true", help="print the URL, open no browser")
    p.add_argument(
        "--out",
        type=Path,
        default=Path("lab-export"),
        metavar="DIR",
        help="where the page's Export button writes lab.toml and run/ (lab-export)",
    )


def run(args: argparse.Namespace) -> int:
    if not 0 <= args.port <= 65535:
        raise ConfigError(f"--port must be from 0 to 65535, got {args.port}")
    session = Session(args.data)
    try:
        server = LabServer(session, args.port, args.out)
    except OSError as e:
        session.close()
        raise GanforgeError(f"cannot listen on 127.0.0.1:{args.port}: {e.strerror}") from None
    print(f"ganforge lab: {server.url}  (Ctrl-C stops)", flush=True)
    if not args.no_browser:
        webbrowser.open(server.url)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        print("ganforge lab: stopped", file=sys.stderr)
    finally:
        server.server_close()
        session.close()
    return 0
