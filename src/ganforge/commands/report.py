"""``ganforge report``: write one self-contained report.html for one run or several overlaid."""

from __future__ import annotations

import argparse
from pathlib import Path

from ganforge.report.html import write_report

DESCRIPTION = (
    "Write one self-contained HTML file (images embedded, nothing fetched from the network) "
    "showing the runs: diagnostics in words and their timeline, L_D and L_G, D(x) and D(G(z)) "
    "with the 0.5 line, gradient norms, sample diversity, the fixed-z samples over time, the "
    "metrics of `ganforge eval` when present, theory figures of toy runs, and the config. "
    "Several runs are overlaid for comparison."
)
TAKES_OVERRIDES = False


def epilog() -> str:
    return (
        "examples:\n"
        "  ganforge report runs/a                       # writes runs/a/report.html\n"
        "  ganforge report runs/a runs/b --out cmp.html # two runs overlaid"
    )


def add_arguments(s: argparse.ArgumentParser) -> None:
    s.add_argument("runs", type=Path, nargs="+", metavar="RUN", help="one or more run folders")
    s.add_argument(
        "--out",
        type=Path,
        metavar="FILE",
        help="the HTML file (default: RUN/report.html for one run, report.html for several)",
    )


def run(args: argparse.Namespace) -> int:

    out = args.out or (args.runs[0] / "report.html" if len(args.runs) == 1 else Path("report.html"))
    write_report(args.runs, out)
    print(f"wrote {out}")
    return 0
