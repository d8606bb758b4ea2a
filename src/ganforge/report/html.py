"""The run report: one self-contained ``report.html`` for one run or several runs overlaid.

Every picture is a PNG embedded as a base64 ``data:`` URI and the style sheet is inline, so
the file opens anywhere, offline, and can be mailed or archived on its own. No script runs.

Sections: what the rules saw (the diagnostics, with advice, and their timeline); the course's
L_D and L_G curves; D(x) and D(G(z)) with the 0.5 equilibrium line; gradient norms; the
diversity of the fixed-z samples; the sample grids over time; the metrics of ``ganforge eval``
(``RUN/eval.json``) with intervals and the real data's floor; for a conditional run its
per-class figures (label accuracy, intra-class recall, precision and FID); for a progressive
run the last samples of each stage (``samples/stage-S-RxR.png``); the theory figures of toy
runs (``RUN/theory/*.png``); the config, side by side when runs are compared.
"""

from __future__ import annotations

import base64
import html
import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from matplotlib.figure import Figure

from ganforge.checkpoint import atomic_write
from ganforge.config import Config
from ganforge.diagnose import LOG4, RULES, Episode, run_episodes
from ganforge.errors import GanforgeError
from ganforge.plots import png_bytes
from ganforge.runs import RunFolder

# The browser itself refuses anything but the embedded images and the inline style sheet.
CSP = "default-src 'none'; img-src data:; style-src 'unsafe-inline'"
MAX_STRIP = 10  # sample grids shown over time per run (evenly spaced, first and last kept)
COLORS = ("tab:blue", "tab:orange", "tab:green", "tab:red", "tab:purple", "tab:brown")


@dataclass
class RunData:
    """What the report reads from one run folder."""

    path: Path
    cfg: Config
    rows: list[dict[str, Any]]
    episodes: list[Episode]
    samples: list[tuple[int, Path]]  # (step, grid PNG)
    evaluation: dict[str, Any] | None = None
    theory: list[Path] = field(default_factory=list)
    stages: list[Path] = field(default_factory=list)  # progressive runs: a grid per stage

    @property
    def name(self) -> str:
        return self.path.resolve().name

    @property
    def last_step(self) -> int:
        return int(self.rows[-1]["step"]) if self.rows else 0


def load_run(path: Path) -> RunData:
    """Read a run folder; a folder that is not a run raises ``GanforgeError`` in one line."""
    folder = RunFolder(path)
    if not path.is_dir():
        raise GanforgeError(f"{path} is not a folder")
    cfg = folder.read_config()
    rows = list(folder.metrics())
    for r in rows:  # the modes the fixed-z samples cover, over those of as many real ones
        if r.get("modes_real"):
            r["mode_ratio"] = r["modes"] / r["modes_real"]
    samples = folder.sample_grids()
    theory_dir = folder.theory
    theory = sorted(theory_dir.rglob("*.png")) if theory_dir.is_dir() else []
    found = run_episodes(path, rows, cfg.diagnose)
    stages = folder.stage_grids()
    return RunData(path, cfg, rows, found, samples, folder.read_eval(), theory, stages)


# ---------------------------------------------------------------------------------- figures


def _figure(size: tuple[float, float], left: float = 0.11) -> Any:
    """A figure with fixed margins: constrained layout would double the drawing time."""
    fig = Figure(figsize=size)  # no pyplot: no global state, no GUI backend
    fig.subplots_adjust(left=left, right=0.97, bottom=0.15, top=0.9)
    return fig


def _png_uri(data: bytes) -> str:
    return "data:image/png;base64," + base64.b64encode(data).decode("ascii")


def _series(run: RunData, key: str) -> tuple[list[int], list[float]]:
    pts = [
        (int(r["step"]), float(r[key]))
        for r in run.rows
        if isinstance(r.get(key), (int, float)) and math.isfinite(float(r[key]))
    ]
    return [p[0] for p in pts], [p[1] for p in pts]


def _curves(
    runs: Sequence[RunData],
    keys: Sequence[tuple[str, str]],
    ylabel: str,
    title: str,
    hlines: Sequence[tuple[float, str]] = (),
    log: bool = False,
) -> str | None:
    """One figure: each run in its colour, each key in its line style; None when empty."""
    fig = _figure((6, 3.4))
    ax = fig.add_subplot()
    styles = ("-", "--", ":", "-.")
    drawn = False
    for i, run in enumerate(runs):
        for j, (key, label) in enumerate(keys):
            xs, ys = _series(run, key)
            if not xs:
                continue
            name = label if len(runs) == 1 else f"{run.name}: {label}"
            marker = "o" if len(xs) < 30 and key == "diversity" else None
            ax.plot(
                xs,
                ys,
                styles[j % 4],
                color=COLORS[(i if len(runs) > 1 else j) % len(COLORS)],
                label=name,
                linewidth=1.2,
                marker=marker,
                markersize=3,
            )
            drawn = True
    if not drawn:
        return None
    for y, label in hlines:
        ax.axhline(y, color="grey", linestyle=":", linewidth=1)
        ax.annotate(
            label,
            (0.99, y),
            xycoords=("axes fraction", "data"),
            fontsize=8,
            color="grey",
            ha="right",
            va="bottom",
        )
    if log:
        ax.set_yscale("log")
    ax.set_xlabel("step (generator updates)")
    ax.set_ylabel(ylabel)
    ax.set_title(title)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    return _png_uri(png_bytes(fig))


def _timeline(runs: Sequence[RunData]) -> str | None:
    """Each episode as a bar from its first to its last log line, one row per rule (and run)."""
    rows = [(run, name) for run in runs for name in RULES]
    if not any(run.episodes for run in runs):
        return None
    labels = [
        RULES[name].title if len(runs) == 1 else f"{run.name}: {RULES[name].title}"
        for run, name in rows
    ]
    height = 0.9 + 0.3 * len(rows)
    # room for the longest label: about 5.5 px a character at 8 points, of 900 px
    fig = _figure((9, height), left=min(0.5, (5.5 * max(map(len, labels)) + 20) / 900))
    fig.subplots_adjust(bottom=0.55 / height, top=1 - 0.3 / height)
    ax = fig.add_subplot()
    for y, (run, name) in enumerate(rows):
        for e in run.episodes:
            if e.finding.rule == name:
                # an episode seen at one log line still gets a visible width
                width = max(e.last - e.finding.step, run.last_step / 200, 1)
                ax.barh(y, width, left=e.finding.step, color="tab:red", height=0.6)
    ax.set_yticks(range(len(rows)), labels, fontsize=8)
    ax.set_xlim(0, max(run.last_step for run in runs) or 1)
    ax.invert_yaxis()
    ax.set_xlabel("step (generator updates)")
    ax.set_title("diagnostics timeline")
    ax.grid(alpha=0.3, axis="x")
    return _png_uri(png_bytes(fig))


def _strip(samples: Sequence[tuple[int, Path]]) -> list[tuple[int, Path]]:
    """At most MAX_STRIP grids, evenly spaced, the first and the last kept."""
    if len(samples) <= MAX_STRIP:
        return list(samples)
    idx = sorted({round(i * (len(samples) - 1) / (MAX_STRIP - 1)) for i in range(MAX_STRIP)})
    return [samples[i] for i in idx]


# ------------------------------------------------------------------------------------ HTML

_CSS = """
body { font-family: system-ui, -apple-system, "Segoe UI", sans-serif; margin: 2em auto;
       max-width: 1100px; padding: 0 1em; color: #222; line-height: 1.45; }
h1 { margin-bottom: 0.1em; } h2 { border-bottom: 1px solid #ddd; padding-bottom: 0.2em;
     margin-top: 1.8em; } .muted { color: #666; }
table { border-collapse: collapse; font-size: 0.9em; }
td, th { border: 1px solid #ddd; padding: 0.25em 0.6em; text-align: left; vertical-align: top; }
th { background: #f4f4f4; } tr.differs td { background: #fff6d6; }
.ok { background: #e9f7ec; border-left: 4px solid #2e9d47; padding: 0.5em 1em; }
.warn { background: #fdecea; border-left: 4px solid #c62828; padding: 0.5em 1em;
        margin: 0.4em 0; } .advice { color: #444; }
.strip { display: flex; gap: 0.6em; overflow-x: auto; padding-bottom: 0.4em; }
.strip figure { margin: 0; text-align: center; font-size: 0.8em; color: #555; }
.strip img { width: 200px; border: 1px solid #ccc; }  /* a smooth downscale of each grid */
.plots { display: grid; grid-template-columns: repeat(auto-fit, minmax(480px, 1fr));
         gap: 0.5em; } img.plot { max-width: 100%; }
.plots figure { margin: 0; } figcaption { font-size: 0.85em; color: #555; }
.latest img { max-width: 100%; }  /* the grid at its own size */
.theory img { max-width: 48%; }
"""


def _e(value: Any) -> str:
    return html.escape(str(value))


def _img(uri: str, alt: str, cls: str = "plot") -> str:
    return f'<img class="{cls}" src="{uri}" alt="{_e(alt)}">'


def _summary(runs: Sequence[RunData]) -> str:
    head = "<tr><th>run</th><th>preset</th><th>steps</th><th>L_D</th><th>L_G</th>"
    head += "<th>D(x)</th><th>D(G(z))</th><th>warnings</th></tr>"
    body = []
    for run in runs:
        last = run.rows[-1] if run.rows else {}

        def num(key: str, last: dict[str, Any] = last) -> str:
            v = last.get(key)
            return f"{v:.3f}" if isinstance(v, (int, float)) else "-"

        body.append(
            f"<tr><td>{_e(run.name)}</td><td>{_e(run.cfg.preset)}</td>"
            f"<td>{run.last_step} / {run.cfg.train.steps}</td><td>{num('loss_d')}</td>"
            f"<td>{num('loss_g')}</td><td>{num('d_real')}</td><td>{num('d_fake')}</td>"
            f"<td>{len(run.episodes)}</td></tr>"
        )
    return f"<table>{head}{''.join(body)}</table>"


def _diagnostics(runs: Sequence[RunData]) -> str:
    parts = []
    for run in runs:
        title = f"<h3>{_e(run.name)}</h3>" if len(runs) > 1 else ""
        if not run.rows:
            parts.append(f"{title}<p class='muted'>No measurements yet (metrics.jsonl).</p>")
            continue
        if not run.episodes:
            checked = ", ".join(r.title for r in RULES.values())
            parts.append(
                f"{title}<div class='ok'>No warnings: over {len(run.rows)} log lines none of "
                f"the rules fired ({_e(checked)}).</div>"
            )
            continue
        items = []
        for e in run.episodes:
            f = e.finding
            span = f"step {f.step}" + (f" to {e.last}" if e.last > f.step else "")
            items.append(
                f"<div class='warn'><b>{_e(f.title)}</b> <span class='muted'>({span})</span>"
                f"<br>{_e(f.seen)}.<br><span class='advice'>Try: {_e(f.advice)}.</span></div>"
            )
        parts.append(title + "".join(items))
    timeline = _timeline(runs)
    if timeline:
        parts.append(_img(timeline, "diagnostics timeline"))
    return "".join(parts)


def _samples(runs: Sequence[RunData]) -> str:
    parts = []
    for run in runs:
        title = f"<h3>{_e(run.name)}</h3>" if len(runs) > 1 else ""
        if not run.samples:
            parts.append(f"{title}<p class='muted'>No sample grids in samples/.</p>")
            continue
        figs = "".join(
            f"<figure>{_img(_png_uri(p.read_bytes()), f'samples at step {s}', 'grid')}"
            f"<figcaption>step {s}</figcaption></figure>"
            for s, p in _strip(run.samples)
        )
        step, latest = run.samples[-1]
        parts.append(
            f"{title}<div class='strip'>{figs}</div><div class='latest'><p>The latest grid, "
            f"step {step}:</p>{_img(_png_uri(latest.read_bytes()), 'latest samples', 'grid')}"
            "</div>"
        )
    return "".join(parts)


def _fmt(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:.4g}"
    return _e(v) if v is not None else "-"


def _evaluation(runs: Sequence[RunData]) -> str:
    parts = []
    for run in runs:
        title = f"<h3>{_e(run.name)}</h3>" if len(runs) > 1 else ""
        ev = run.evaluation
        if ev is None:
            parts.append(
                f"{title}<p class='muted'>Not evaluated: run <code>ganforge eval "
                f"{_e(run.path)}</code> to add the metrics here.</p>"
            )
            continue
        if "_error" in ev:
            parts.append(f"{title}<p class='muted'>{_e(ev['_error'])}.</p>")
            continue
        head = "<tr><th>metric</th><th>value</th><th>interval</th><th>real floor</th>"
        head += "<th>n</th></tr>"
        body = []
        # eval.json as `ganforge eval` writes it keeps the figures under "metrics"
        table = ev["metrics"] if isinstance(ev.get("metrics"), dict) else ev
        for metric, v in table.items():
            if metric in ("per_class", "class_histogram"):
                continue
            if not isinstance(v, dict):
                body.append(f"<tr><td>{_e(metric)}</td><td>{_fmt(v)}</td>" + "<td>-</td>" * 3)
                continue
            lo, hi = v.get("ci_low"), v.get("ci_high")
            interval = f"[{_fmt(lo)}, {_fmt(hi)}]" if lo is not None and hi is not None else "-"
            body.append(
                f"<tr><td>{_e(metric)}</td><td>{_fmt(v.get('value'))}</td><td>{interval}</td>"
                f"<td>{_fmt(v.get('floor'))}</td><td>{_fmt(v.get('n'))}</td></tr>"
            )
        parts.append(f"{title}<table>{head}{''.join(body)}</table>")
        figure = RunFolder(run.path).before_after
        if "columns" in ev and figure.is_file():  # an image-to-image run's before/after
            caption = f"Before and after, on {ev.get('test', 'held-out data')}: " + ", ".join(
                map(str, ev["columns"])
            )
            parts.append(
                f"<figure>{_img(_png_uri(figure.read_bytes()), 'before and after', 'grid')}"
                f"<figcaption>{_e(caption)}</figcaption></figure>"
            )
    return "".join(parts)


def _class_chart(rows: Sequence[dict[str, Any]]) -> str:
    """Bars of label accuracy and intra-class recall per class, with the targets 0.95, 0.5."""
    fig = _figure((7.0, 2.8), left=0.08)
    ax = fig.add_subplot()
    labels = [int(r["label"]) for r in rows]
    for i, (key, name) in enumerate((("accuracy", "label accuracy"), ("recall", "recall"))):
        vals = [float(r[key]) if r.get(key) is not None else math.nan for r in rows]
        ax.bar([c + (i - 0.5) * 0.4 for c in labels], vals, 0.4, label=name, color=COLORS[i])
    ax.axhline(0.95, color=COLORS[0], ls="--", lw=1, label="0.95")
    ax.axhline(0.5, color=COLORS[1], ls=":", lw=1, label="0.5")
    ax.set_xticks(labels)
    ax.set_ylim(0, 1.3)  # room above the bars for the legend
    ax.set_yticks([0, 0.25, 0.5, 0.75, 1])
    ax.set_xlabel("requested label")
    ax.set_title("per class: does G obey the label, does it cover the class?")
    ax.legend(fontsize=7, ncol=4, loc="upper center")
    return _png_uri(png_bytes(fig))


def _per_class(runs: Sequence[RunData]) -> str:
    """Per-class figures of conditional runs (``per_class`` in eval.json); "" when none."""
    parts = []
    for run in runs:
        pc = (run.evaluation or {}).get("per_class")
        if not isinstance(pc, dict) or not pc.get("classes"):
            continue
        title = f"<h3>{_e(run.name)}</h3>" if len(runs) > 1 else ""
        keys = ("accuracy", "recall", "precision", "fid", "fid_floor")
        head = "<tr><th>label</th><th>accuracy</th><th>recall</th><th>precision</th>"
        head += "<th>FID</th><th>FID floor</th></tr>"
        body = "".join(
            f"<tr><td>{_fmt(r.get('label'))}</td>"
            + "".join(f"<td>{_fmt(r.get(k))}</td>" for k in keys)
            + "</tr>"
            for r in pc["classes"]
        )
        note = (
            f"<p>{_fmt(pc.get('n_per_class'))} samples per requested label. Mean label "
            f"accuracy {_fmt(pc.get('accuracy'))}; lowest intra-class recall "
            f"{_fmt(pc.get('min_recall'))}.</p>"
        )
        chart = _img(_class_chart(pc["classes"]), "per-class accuracy and recall")
        parts.append(f"{title}{note}<table>{head}{body}</table>{chart}")
    return "".join(parts)


def _stages(runs: Sequence[RunData]) -> str:
    """The last samples of each stage of progressive runs; "" when none."""
    parts = []
    for run in runs:
        if not run.stages:
            continue
        title = f"<h3>{_e(run.name)}</h3>" if len(runs) > 1 else ""
        figs = "".join(
            f"<figure>{_img(_png_uri(p.read_bytes()), p.stem, 'grid')}"
            f"<figcaption>{_e(p.stem.replace('-', ' '))}</figcaption></figure>"
            for p in run.stages
        )
        parts.append(f"{title}<div class='strip'>{figs}</div>")
    return "".join(parts)


def _theory(runs: Sequence[RunData]) -> str:
    parts = []
    for run in runs:
        if not run.theory:
            continue
        title = f"<h3>{_e(run.name)}</h3>" if len(runs) > 1 else ""
        imgs = "".join(
            _img(_png_uri(p.read_bytes()), p.stem.replace("-", " ").replace("_", " "))
            for p in run.theory
        )
        parts.append(f"{title}<div class='theory'>{imgs}</div>")
    return "".join(parts)


def _config(runs: Sequence[RunData]) -> str:
    """The keys that differ between runs in plain view; every key behind a click."""
    tables = [_flat(run.cfg.to_dict()) for run in runs]
    keys = list(dict.fromkeys(k for t in tables for k in t))
    head = "<tr><th>key</th>" + "".join(f"<th>{_e(run.name)}</th>" for run in runs) + "</tr>"

    def rows(selected: Sequence[str]) -> str:
        out = []
        for k in selected:
            values = [t.get(k, "-") for t in tables]
            cls = " class='differs'" if len(runs) > 1 and len(set(map(str, values))) > 1 else ""
            cells = "".join(f"<td>{_e(v)}</td>" for v in values)
            out.append(f"<tr{cls}><td>{_e(k)}</td>{cells}</tr>")
        return "".join(out)

    differ = [k for k in keys if len({str(t.get(k, "-")) for t in tables}) > 1]
    shown = ""
    if len(runs) > 1:
        shown = (
            f"<p>Keys that differ between the runs:</p><table>{head}{rows(differ)}</table>"
            if differ
            else "<p>The runs share every config key.</p>"
        )
    return (
        f"{shown}<details{'' if len(runs) > 1 else ' open'}><summary>every key "
        f"({len(keys)})</summary><table>{head}{rows(keys)}</table></details>"
    )


def _flat(table: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    out: dict[str, Any] = {}
    for k, v in table.items():
        if isinstance(v, dict):
            out |= _flat(v, f"{prefix}{k}.")
        else:
            out[f"{prefix}{k}"] = ",".join(map(str, v)) if isinstance(v, (list, tuple)) else v
    return out


def render(runs: Sequence[RunData]) -> str:
    """The report's HTML text."""
    names = ", ".join(run.name for run in runs)
    figures = [
        (
            _curves(
                runs,
                [("loss_d", "L_D"), ("loss_g", "L_G")],
                "loss",
                "L_D and L_G",
                [(LOG4, "log 4: L_D at equilibrium")],
            ),
            "L_D and L_G. L_D = log 4 = 1.386 when D cannot tell real from fake; L_D falling "
            "to 0 means D wins.",
        ),
        (
            _curves(
                runs,
                [("d_real", "D(x)"), ("d_fake", "D(G(z))")],
                "mean probability",
                "D(x) and D(G(z))",
                [(0.5, "0.5: equilibrium")],
            ),
            "D(x) and D(G(z)): D's mean belief that real and generated images are real. At the "
            "equilibrium both are 0.5.",
        ),
        (
            _curves(
                runs, [("grad_d", "D"), ("grad_g", "G")], "L2 norm", "gradient norms", log=True
            ),
            "Gradient norms of D and G (log scale). G's falling towards 0 means it stops learning.",
        ),
        (
            _curves(
                runs,
                [
                    ("diversity", "spread: fixed-z samples / real data"),
                    ("mode_ratio", "modes covered: fixed-z samples / real data"),
                ],
                "ratio to the real data",
                "diversity of the samples",
                [(runs[0].cfg.diagnose.collapse_ratio, "collapse threshold")],
            ),
            "Diversity of the samples: their mean pairwise distance over the real data's (and, "
            "where the modes are known, the modes they cover over those of as many real "
            "samples). 1 is as "
            "varied as the data; near 0, G draws the same thing for every z.",
        ),
    ]
    drawn = "".join(
        f"<figure>{_img(uri, caption.split('. ')[0])}<figcaption>{_e(caption)}</figcaption>"
        "</figure>"
        for uri, caption in figures
        if uri
    )
    plots = (
        f"<div class='plots'>{drawn}</div>" if drawn else "<p class='muted'>No measurements.</p>"
    )
    theory = _theory(runs)
    per_class = _per_class(runs)
    stages = _stages(runs)
    sections = [
        ("Summary", _summary(runs)),
        ("Diagnostics", _diagnostics(runs)),
        ("Training curves", plots),
        ("Samples from the fixed z over time", _samples(runs)),
        ("Evaluation", _evaluation(runs)),
        *([("Per class", per_class)] if per_class else []),
        *([("Samples at the end of each stage", stages)] if stages else []),
        *([("Theory", theory)] if theory else []),
        ("Config", _config(runs)),
    ]
    body = "".join(f"<h2>{title}</h2>{content}" for title, content in sections)
    return (
        "<!DOCTYPE html>\n<html lang='en'><head><meta charset='utf-8'>"
        f"<meta http-equiv='Content-Security-Policy' content=\"{CSP}\">"
        f"<title>ganforge report: {_e(names)}</title><style>{_CSS}</style></head><body>"
        f"<h1>ganforge report</h1><p class='muted'>{_e(names)}</p>{body}</body></html>\n"
    )


def write_report(paths: Sequence[Path], out: Path) -> Path:
    """Write the report of the runs at ``paths`` (overlaid when several) to ``out``."""
    if not paths:
        raise GanforgeError("no run folder given")
    runs = [load_run(Path(p)) for p in paths]
    if not out.parent.is_dir():
        raise GanforgeError(f"folder {out.parent} does not exist")
    atomic_write(out, render(runs).encode("utf-8"))
    return out
