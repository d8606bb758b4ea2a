"""Diagnostics in words: rules that read the measurements of metrics.jsonl and say what they see.

Each rule of ``RULES`` has a title, the config keys of its thresholds, a test over a window of
recent measurements (what it sees, in words, or ``None``) and advice. A ``Diagnoser`` is fed
one log line at a time, by the training loop as it writes them or by ``diagnose()`` over a
finished run, and reports each symptom once per *episode*: when it appears, not again while
it lasts; it ends once the rule has not seen it for two windows (``2 * diagnose.window``
log lines).

The symptoms are those of the course's advice on watching L_D and L_G (Goodfellow 2016, NIPS
tutorial, section 5; Arjovsky and Bottou 2017 for the vanishing gradient of a perfect D):

- D too strong: L_D -> 0 and D(G(z)) -> 0; with the minimax loss G's gradient vanishes,
  since d/dl log(1 - sigmoid(l)) = -sigmoid(l) -> 0 as D(G(z)) = sigmoid(l) -> 0.
- G too strong / D fooled: D(x) and D(G(z)) both near 1, or L_D above chance (log 4) and rising.
- Mode collapse: the fixed-z samples spread less than the real data (mean pairwise distance).
- Oscillation: the losses swing with growing amplitude.
- Divergence: a measurement is NaN or infinite.
"""

from __future__ import annotations

import itertools
import math
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from ganforge.config import DiagnoseConfig
from ganforge.data.toy import mixture_of
from ganforge.metrics.features import mnist_net, weights_path
from ganforge.metrics.modes import mode_metrics
from ganforge.runs import RunFolder

Row = Mapping[str, Any]  # one line of metrics.jsonl
LOG4 = math.log(4.0)  # L_D at the game's equilibrium, D = 1/2 everywhere


@dataclass(frozen=True)
class Finding:
    """One episode of a symptom: the rule, the log step where it was first seen, in words."""

    rule: str
    step: int
    seen: str

    @property
    def title(self) -> str:
        return RULES[self.rule].title

    @property
    def advice(self) -> str:
        return RULES[self.rule].advice

    def text(self) -> str:
        """The console's words: ``step 400: D too strong: <what is seen>. Try: <advice>``."""
        return f"step {self.step}: {self.title}: {self.seen}. Try: {self.advice}"

    def to_dict(self) -> dict[str, Any]:
        return {"rule": self.rule, "step": self.step, "title": self.title, "seen": self.seen}


@dataclass
class History:
    """The recent measurements a rule may read: the last log lines, the last diversity values."""

    rows: deque[Row]
    diversity: deque[tuple[int, float]]  # (step, fixed-z spread / real spread)
    modes: deque[tuple[int, int, int]]  # (step, modes the fixed-z samples cover, as many reals)


Test = Callable[[History, DiagnoseConfig], "str | None"]


@dataclass(frozen=True)
class Rule:
    title: str
    keys: tuple[str, ...]  # the config keys of its thresholds
    test: Test  # what it sees in words, or None
    advice: str


def mean_pairwise_distance(x: torch.Tensor) -> float:
    """Mean Euclidean distance over all pairs of samples ``x`` ``[N, ...]`` (N >= 2), flattened:
    (2 / (N (N - 1))) sum_{i<j} ||x_i - x_j||."""
    flat = x.detach().float().reshape(len(x), -1)
    return float(torch.pdist(flat).mean()) if len(flat) > 1 else 0.0


def _window(h: History, cfg: DiagnoseConfig, n: int | None = None) -> list[Row] | None:
    """The last ``n`` (default ``window``) log lines, or None while there are fewer."""
    n = n or cfg.window
    if len(h.rows) < n:
        return None
    return list(h.rows)[-n:]


def _mean(rows: Sequence[Row], key: str) -> float:
    return sum(float(r[key]) for r in rows) / len(rows)


def _span(rows: Sequence[Row]) -> str:
    return f"steps {rows[0]['step']}-{rows[-1]['step']}"


def _divergence(h: History, cfg: DiagnoseConfig) -> str | None:
    if not h.rows:
        return None
    row = h.rows[-1]
    bad = [
        f"{_NAMES.get(k, k)} is {v}"
        for k, v in row.items()
        if isinstance(v, float) and not math.isfinite(v)
    ]
    if not bad:
        return None
    return f"{', '.join(bad)} at step {row['step']}: training diverged"


def _d_too_strong(h: History, cfg: DiagnoseConfig) -> str | None:
    rows = _window(h, cfg)
    if rows is None:
        return None
    loss_d, d_fake = _mean(rows, "loss_d"), _mean(rows, "d_fake")
    if not (loss_d < cfg.d_strong_loss and d_fake < cfg.d_strong_fake):
        return None
    grad_g = float(rows[-1].get("grad_g", math.nan))
    gradient = (
        f"G's gradient norm has vanished ({grad_g:.2g}), so G learns nothing"
        if grad_g < cfg.g_grad_vanish
        else f"G's gradient norm is {grad_g:.2g}, but G cannot catch up"
    )
    return (
        f"L_D averaged {loss_d:.3f} and D(G(z)) {d_fake:.3f} over {_span(rows)}: "
        f"D rejects nearly every fake; {gradient}"
    )


def _g_too_strong(h: History, cfg: DiagnoseConfig) -> str | None:
    rows = _window(h, cfg)
    if rows is None:
        return None
    d_real, d_fake = _mean(rows, "d_real"), _mean(rows, "d_fake")
    if d_real > cfg.fooled_prob and d_fake > cfg.fooled_prob:
        return (
            f"D(x) averaged {d_real:.2f} and D(G(z)) {d_fake:.2f} over {_span(rows)}: "
            "D calls everything real and no longer tells G anything"
        )
    losses = [float(r["loss_d"]) for r in rows]
    if min(losses) > cfg.fooled_loss and losses[-1] > losses[0]:
        return (
            f"L_D rose from {losses[0]:.2f} to {losses[-1]:.2f} over {_span(rows)}, above "
            f"chance (log 4 = {LOG4:.3f}): D does worse than a coin"
        )
    return None


def _mode_collapse(h: History, cfg: DiagnoseConfig) -> str | None:
    n = cfg.collapse_checks
    spread = list(h.diversity)[-n:]
    if len(spread) == n and all(v < cfg.collapse_ratio for _, v in spread):
        return (
            f"the samples from the fixed z spread {spread[-1][1]:.2f} times as much as real "
            f"data (mean pairwise distance) at step {spread[-1][0]}: G covers few modes"
        )
    modes = list(h.modes)[-n:]
    if len(modes) == n and all(k < cfg.collapse_ratio * k_real for _, k, k_real in modes):
        step, k, k_real = modes[-1]
        return (
            f"the samples from the fixed z cover {k} modes at step {step}, where as many real "
            f"samples cover {k_real}: G covers few modes"
        )
    return None


def _amplitude(ys: Sequence[float]) -> float:
    """Swing of a series: the standard deviation of its residual after a least-squares line
    (a steady trend is not a swing)."""
    n = len(ys)
    xs = range(n)
    mx, my = (n - 1) / 2, sum(ys) / n
    sxx = sum((x - mx) ** 2 for x in xs)
    slope = sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / sxx
    res = [y - my - slope * (x - mx) for x, y in zip(xs, ys, strict=True)]
    return math.sqrt(sum(r * r for r in res) / n)


def _reversals(ys: Sequence[float], size: float) -> int:
    """How often the series turns back, counting only moves of more than ``size``: a swing
    up and down again turns twice; a level shift or a steady trend, never."""
    signs = [d > 0 for d in (b - a for a, b in itertools.pairwise(ys)) if abs(d) > size]
    return sum(s != t for s, t in itertools.pairwise(signs))


def _oscillation(h: History, cfg: DiagnoseConfig) -> str | None:
    rows = _window(h, cfg, 2 * cfg.window)
    if rows is None:
        return None
    w = cfg.window
    for key in ("loss_d", "loss_g"):
        ys = [float(r[key]) for r in rows]
        before, after = _amplitude(ys[:w]), _amplitude(ys[w:])
        if (
            after > cfg.osc_min
            and after > cfg.osc_growth * before
            and _reversals(ys, cfg.osc_min / 2) >= 2
        ):
            return (
                f"{_NAMES[key]} swings up and down, and its swing grew from {before:.2f} to "
                f"{after:.2f} (standard deviation about its trend) over {_span(rows)}"
            )
    return None


_NAMES = {
    "loss_d": "L_D",
    "loss_g": "L_G",
    "d_real": "D(x)",
    "d_fake": "D(G(z))",
    "grad_d": "D's gradient norm",
    "grad_g": "G's gradient norm",
}

# The table of rules: name -> title, thresholds, test, advice. Order is the order of reports.
RULES: dict[str, Rule] = {
    "divergence": Rule(
        "Divergence",
        (),
        _divergence,
        "resume from the last good checkpoint with lower learning rates (optim.lr_d, "
        "optim.lr_g), or a loss with a bounded gradient (WGAN-GP)",
    ),
    "d_too_strong": Rule(
        "D too strong",
        ("diagnose.d_strong_loss", "diagnose.d_strong_fake", "diagnose.g_grad_vanish"),
        _d_too_strong,
        "lower D's learning rate (optim.lr_d), give G more updates (fewer train.d_steps), "
        "use the non-saturating loss, one-sided label smoothing or instance noise, or WGAN-GP",
    ),
    "g_too_strong": Rule(
        "G too strong / D fooled",
        ("diagnose.fooled_prob", "diagnose.fooled_loss"),
        _g_too_strong,
        "give D more updates (train.d_steps) or a higher learning rate (optim.lr_d), "
        "or lower G's (optim.lr_g)",
    ),
    "mode_collapse": Rule(
        "Mode collapse",
        ("diagnose.collapse_ratio", "diagnose.collapse_checks"),
        _mode_collapse,
        "minibatch discrimination, feature matching, a lower G learning rate, more D updates, "
        "or WGAN-GP; look at the sample grids",
    ),
    "oscillation": Rule(
        "Oscillation",
        ("diagnose.osc_growth", "diagnose.osc_min"),
        _oscillation,
        "lower both learning rates, lower Adam's beta1 (optim.betas_d, optim.betas_g), "
        "or use a gradient penalty (WGAN-GP)",
    ),
}


class Diagnoser:
    """Feeds log lines to every rule and returns the findings that open a new episode."""

    def __init__(self, cfg: DiagnoseConfig) -> None:
        self.cfg = cfg
        keep = 2 * cfg.window
        n = cfg.collapse_checks
        self.history = History(deque(maxlen=keep), deque(maxlen=n), deque(maxlen=n))
        self.open: dict[str, Episode] = {}  # rule -> its episode under way
        self.episodes: list[Episode] = []  # every episode, in order of start

    def update(self, row: Row) -> list[Finding]:
        """Add one log line; the findings whose episode starts at it."""
        h = self.history
        h.rows.append(row)
        step = int(row["step"])
        if "diversity" in row:
            h.diversity.append((step, float(row["diversity"])))
        if "modes" in row and "modes_real" in row:
            h.modes.append((step, int(row["modes"]), int(row["modes_real"])))
        found = []
        for name, rule in RULES.items():
            seen = rule.test(h, self.cfg)
            episode = self.open.get(name)
            if seen is not None:
                if episode is None:
                    episode = self.open[name] = Episode(Finding(name, step, seen), step)
                    self.episodes.append(episode)
                    found.append(episode.finding)
                episode.last, episode.absent = step, 0
            elif episode is not None:
                episode.absent += 1
                # A window's test stays false for up to ``window`` lines after one odd line:
                # the episode ends once the rule has not seen it for two windows.
                if episode.absent >= 2 * self.cfg.window:
                    del self.open[name]
        return found


@dataclass
class Episode:
    """A symptom from its first log line to the last one where it was seen."""

    finding: Finding
    last: int  # step
    absent: int = 0  # log lines since it was last seen


CountModes = Callable[[torch.Tensor], int]  # samples -> how many modes (classes) they cover


class Watch:
    """The training loop's side: the diversity measurements and the rules, fed as it logs."""

    def __init__(
        self, cfg: DiagnoseConfig, real: torch.Tensor, count_modes: CountModes | None = None
    ) -> None:
        self.cfg = cfg
        self.real_spread = mean_pairwise_distance(real)  # of a fixed subset of the data
        self.count_modes = count_modes
        self.real_modes = count_modes(real) if count_modes else 0
        self.diagnoser = Diagnoser(cfg)

    def diversity(self, fake: torch.Tensor) -> float:
        """Spread of the fixed-z samples ``[N, ...]`` relative to the real data's: 1 is as
        diverse as the data (in pixel or data space), 0 is one sample repeated."""
        return mean_pairwise_distance(fake) / max(self.real_spread, 1e-12)

    def measure(self, fake: torch.Tensor) -> dict[str, float]:
        """The log line's fields of a grid of fixed-z samples: diversity, and the modes they
        cover (with those of as many real samples) when the data's modes are known."""
        out = {"diversity": self.diversity(fake)}
        if self.count_modes is not None:
            out |= {"modes": self.count_modes(fake), "modes_real": self.real_modes}
        return out

    def update(self, row: Row) -> list[Finding]:
        return self.diagnoser.update(row) if self.cfg.enabled else []


def mode_counter(source: str, shape: tuple[int, ...]) -> CountModes | None:
    """How to count the modes a set of samples covers, where the data's modes are known: the
    modes a toy mixture's samples capture (Srivastava et al. 2017; ganforge.metrics.modes),
    or for MNIST the classes of the classifier shipped in ganforge.metrics (when its weights
    are installed). None otherwise: the diversity in data space still serves."""
    if len(shape) == 1:
        return _toy_counter(source)
    if source not in ("mnist5k", "mnist") or shape not in ((1, 28, 28), (1, 32, 32)):
        return None
    if not weights_path().is_file():
        return None
    net = mnist_net()

    @torch.no_grad()
    def classes(x: torch.Tensor) -> int:
        _, logits = net(x.detach().float().cpu())
        return int(torch.unique(logits.argmax(1)).numel())

    return classes


def _toy_counter(source: str) -> CountModes | None:
    mixture = mixture_of(source)
    if mixture is None:  # points without known modes (a spiral, a CSV file)
        return None
    return lambda x: int(mode_metrics(x, mixture)["modes"])


def episodes(rows: Iterable[Row], cfg: DiagnoseConfig) -> list[Episode]:
    """Every episode in a run's log lines, in order of start."""
    d = Diagnoser(cfg)
    for row in rows:
        d.update(row)
    return d.episodes


def diagnose(rows: Iterable[Row], cfg: DiagnoseConfig) -> list[Finding]:
    """The finding of every episode in a run's log lines, in order."""
    return [e.finding for e in episodes(rows, cfg)]


def event_findings(events: Iterable[Mapping[str, Any]]) -> list[Finding]:
    """Divergence in words from the guard's events: ``{"event": "nonfinite", "step": 37,
    "tensors": [...], "action": "rollback" | "stop", "to_step": 35}``."""
    found = []
    for e in events:
        if e.get("event") != "nonfinite" or not isinstance(e.get("step"), int):
            continue
        names = [str(t) for t in e.get("tensors") or []]
        more = f" and {len(names) - 3} more" if len(names) > 3 else ""
        what = f"{', '.join(names[:3])}{more} not finite" if names else "a value not finite"
        if e.get("action") == "rollback":
            done = (
                f"training went back to the checkpoint of step {e.get('to_step')} and on "
                "with new noise"
            )
        else:
            done = "training stopped; the last good checkpoint is kept"
        found.append(Finding("divergence", e["step"], f"{what} at step {e['step']}: {done}"))
    return found


def run_episodes(path: Path, rows: Iterable[Row], cfg: DiagnoseConfig) -> list[Episode]:
    """Every episode of the run at ``path``: from its log lines and its guard's events."""
    found = episodes(rows, cfg)
    found += [Episode(f, f.step) for f in event_findings(RunFolder(path).events())]
    return sorted(found, key=lambda e: e.finding.step)
