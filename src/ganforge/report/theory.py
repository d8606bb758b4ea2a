"""The theory made visible, from a run's snapshots: Goodfellow's figure, its animation, the
JSD and value curves (1-D runs), and D's heat map under G's samples (2-D runs).

Goodfellow et al. (2014), Figure 1: data density (black dots), generator density (green,
solid), discriminator D(x) (blue, dashed), and below, the mapping x = G(z) from an evenly
sampled z line; here D*(x) = p_data / (p_data + p_g) is drawn too (orange, dash-dot).

p_data is the mixture's closed form (a Gaussian KDE of the data points when the data are no
mixture); p_g is a Gaussian kernel density estimate (Silverman's bandwidth) of G's samples.
Every quantity is integrated on one grid with the trapezoidal rule (``ganforge.theory``).
"""

from __future__ import annotations

import io
import json
import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F
from matplotlib.colors import LogNorm
from PIL import Image
from scipy.special import ndtri
from torch import nn

from ganforge import checkpoint, nets, snapshots, theory
from ganforge.config import Config
from ganforge.data import from_config
from ganforge.data.toy import Mixture, mixture_of
from ganforge.errors import GanforgeError
from ganforge.metrics.modes import mode_metrics
from ganforge.nets import filters
from ganforge.plots import figure
from ganforge.runs import RunFolder, load_filter_nets, sample
from ganforge.snapshots import Snapshot

N_GRID = 1201  # points of the displayed x grid (1-D)
MAX_GRID = 20_001  # most points of a grid of integration (1-D)
N_SAMPLES = 20_000  # samples of G for its density estimate and the mode metrics
N_MAP = 31  # lines of the z-to-x mapping
HEAT = 160  # heat-map resolution per axis (2-D)

# Goodfellow et al. (2014), Figure 1, plus D*.
STYLE = {
    "p_data": {"color": "black", "linestyle": ":", "linewidth": 2.0},
    "p_g": {"color": "tab:green", "linestyle": "-", "linewidth": 1.8},
    "D": {"color": "tab:blue", "linestyle": "--", "linewidth": 1.8},
    "D*": {"color": "tab:orange", "linestyle": "-.", "linewidth": 1.6},
}


@dataclass
class State:
    """G and D as they stood at one moment of training, as modules in eval mode."""

    step: int
    phase: str  # "start", "after D update", "after G update", "end"
    G: nn.Module
    D: nn.Module


def build_state(
    cfg: Config,
    shape: tuple[int, ...],
    snap: Snapshot,
    after_d: bool,
    phase: str,
) -> State:
    """The modules of ``snap``: (G before the G update, D) when ``after_d``, else (G, D)."""
    g, d = nets.build(cfg.model, shape)
    g.load_state_dict(snap.g_pre if after_d else snap.g)
    d.load_state_dict(snap.d)
    return State(snap.step, phase, g.eval(), d.eval())


def fixed_z(latent_dim: int, n: int = N_SAMPLES, seed: int = 0) -> torch.Tensor:
    """The same z ~ N(0, I) ``[n, latent_dim]`` for every snapshot, so frames compare."""
    return torch.randn(n, latent_dim, generator=torch.Generator().manual_seed(seed))


@torch.no_grad()
def samples_of(g: nn.Module, z: torch.Tensor) -> np.ndarray:
    """G(z) as ``[n, D]`` float64."""
    return g(z).reshape(len(z), -1).double().numpy()


@torch.no_grad()
def d_logits(d: nn.Module, pts: np.ndarray) -> np.ndarray:
    """D's logits at points ``[M, D]`` as ``[M]`` float64 (a packing D judges each point as a
    pack of copies of itself)."""
    score = getattr(d, "score_each", d)
    out = [score(torch.from_numpy(pts[i : i + 8192]).float()) for i in range(0, len(pts), 8192)]
    return torch.cat(out).reshape(-1).double().numpy()


# ---------------------------------------------------------------- 1-D


@dataclass
class Frame1D:
    """What one state of a 1-D run looks like on the grid ``x``, and its figures of merit."""

    step: int
    phase: str
    x: np.ndarray  # [M] grid of integration (covers the display range)
    p_data: np.ndarray  # [M]
    p_g: np.ndarray  # [M] KDE of G's samples
    d: np.ndarray  # [M] D(x) = sigmoid(logit)
    d_star: np.ndarray  # [M]
    z_u: np.ndarray  # [N_MAP] evenly spaced quantiles of z_1
    x_of_z: np.ndarray  # [N_MAP] G(z) at those quantiles
    jsd: float
    v_learned: float  # V(D, G) with the network's D
    v_optimal: float  # V(D*, G) = -log 4 + 2 JSD
    d_gap: float  # E_{(p_data + p_g) / 2} |D - D*|
    view: tuple[float, float] = (0.0, 1.0)  # x range shown

    def row(self) -> dict[str, Any]:
        """The JSON line of this frame."""
        return {
            "step": self.step,
            "phase": self.phase,
            "jsd": self.jsd,
            "v_learned": self.v_learned,
            "v_optimal": self.v_optimal,
            "minus_log4_plus_2jsd": -theory.LOG4 + 2 * self.jsd,
            "d_gap": self.d_gap,
        }


def value_from_logits(
    logits: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, x: np.ndarray
) -> float:
    """V(D, G) with log D = -softplus(-l) and log(1 - D) = -softplus(l): finite where sigmoid
    would round D to exactly 0 or 1."""
    lt = torch.from_numpy(logits)
    log_d = (-F.softplus(-lt)).numpy()
    log_1md = (-F.softplus(lt)).numpy()
    return theory.integrate(p_data * log_d + p_g * log_1md, x)


def data_density_1d(mixture: Mixture | None, data: np.ndarray | None, x: np.ndarray) -> np.ndarray:
    """p_data on ``x``: the mixture's closed form, else a KDE of the data points."""
    if mixture is not None:
        return mixture.pdf(x)
    assert data is not None
    return theory.kde_1d(data, x)


def mode_grids(mixture: Mixture | None) -> np.ndarray | None:
    """Fine points around each mode of a 1-D mixture (mu +- 6 sigma, 241 each), or None."""
    if mixture is None:
        return None
    u = np.linspace(-6, 6, 241)
    return (mixture.means[:, :1] + mixture.stds[:, None] * u[None]).ravel()


def grid_1d(mixture: Mixture | None, data: np.ndarray | None) -> np.ndarray:
    """A grid covering the data (mixture centres +- 5 std, or the points' range, padded)."""
    if mixture is not None:
        lo = float((mixture.means[:, 0] - 5 * mixture.stds).min())
        hi = float((mixture.means[:, 0] + 5 * mixture.stds).max())
    else:
        assert data is not None
        lo, hi = float(np.min(data)), float(np.max(data))
    pad = 0.25 * (hi - lo)
    return np.linspace(lo - pad, hi + pad, N_GRID)


def frame_1d(
    state: State,
    x: np.ndarray,
    p_data_fn: Callable[[np.ndarray], np.ndarray],
    z: torch.Tensor,
    extra: np.ndarray | None = None,
) -> Frame1D:
    """Densities, D, D* and the figures of merit of one state; ``x`` is the display grid,
    ``p_data_fn`` gives p_data at any points."""
    s = samples_of(state.G, z)[:, 0]
    h = theory.silverman_bandwidth(s)
    # Integrate where either density lives, finely enough for both: the display grid, plus
    # G's samples +- 6 h at spacing h / 4 (at most MAX_GRID points; p_g's mass off the grid,
    # or a spike narrower than the spacing, would break V(D*, G) = -log 4 + 2 JSD), plus
    # ``extra`` (fine grids around narrow data modes).
    view = (float(x[0]), float(x[-1]))
    lo, hi = float(s.min()) - 6 * h, float(s.max()) + 6 * h
    n_fine = int(min(MAX_GRID, math.ceil((hi - lo) / (h / 4)) + 1))
    x = np.union1d(x, np.linspace(lo, hi, n_fine))
    if extra is not None:
        x = np.union1d(x, extra)
    # each density divided by its quadrature on the grid (off by < 1e-5): exactly 1 there, so
    # the identities of the theory hold to rounding on the picture
    p_data = p_data_fn(x)
    p_data = p_data / theory.integrate(p_data, x)
    p_g = theory.kde_1d(s, x, h)
    p_g = p_g / theory.integrate(p_g, x)
    logits = d_logits(state.D, x[:, None])
    d = 1 / (1 + np.exp(-logits))
    ds = theory.d_star(p_data, p_g)
    u = (np.arange(N_MAP) + 0.5) / N_MAP  # evenly spaced probabilities of z_1
    zz = torch.zeros(N_MAP, z.shape[1])
    zz[:, 0] = torch.from_numpy(ndtri(u)).float()  # z_1 = Phi^-1(u), other coordinates 0
    x_of_z = samples_of(state.G, zz)[:, 0]
    return Frame1D(
        step=state.step,
        phase=state.phase,
        x=x,
        p_data=p_data,
        p_g=p_g,
        d=d,
        d_star=ds,
        z_u=u,
        x_of_z=x_of_z,
        jsd=theory.jsd(p_data, p_g, x),
        v_learned=value_from_logits(logits, p_data, p_g, x),
        v_optimal=theory.value_at_optimum(p_data, p_g, x),
        d_gap=theory.integrate(0.5 * (p_data + p_g) * np.abs(d - ds), x),
        view=view,
    )


def _draw_1d(ax: Any, zax: Any, f: Frame1D, title: str, legend: bool, ymax: float) -> None:
    """One panel: densities, D and D* above; the z line and its mapping to x below."""
    ax.plot(f.x, f.p_data, label="p_data (closed form)", **STYLE["p_data"])
    ax.plot(f.x, f.p_g, label="p_g (KDE of 20k G samples)", **STYLE["p_g"])
    ax.plot(f.x, f.d, label="D(x), learned", **STYLE["D"])
    ax.plot(f.x, f.d_star, label="D*(x) = p_data / (p_data + p_g)", **STYLE["D*"])
    ax.set_ylim(0, ymax)
    ax.set_xlim(*f.view)
    ax.set_title(title, fontsize=10)
    ax.text(
        0.02,
        0.97,
        f"JSD {f.jsd:.3f}\nV(D,G) {f.v_learned:.3f}\nV(D*,G) {f.v_optimal:.3f}",
        transform=ax.transAxes,
        va="top",
        fontsize=7.5,
        family="monospace",
    )
    if legend:
        ax.legend(fontsize=7, loc="upper right")
    ax.tick_params(labelsize=7)
    # z line (y = 0) mapped to the x line (y = 1): z_1 at evenly spaced quantiles u, drawn at
    # the matching place of the axis, joined to x = G(z)
    lo, hi = f.view
    zpos = lo + f.z_u * (hi - lo)
    for a, b in zip(zpos, f.x_of_z, strict=True):
        zax.annotate(
            "",
            xy=(b, 1.0),
            xytext=(a, 0.0),
            arrowprops={"arrowstyle": "->", "color": "0.35", "linewidth": 0.6},
        )
    zax.axhline(0.0, color="black", linewidth=0.8)
    zax.axhline(1.0, color="black", linewidth=0.8)
    zax.set_ylim(-0.15, 1.15)
    zax.set_xlim(lo, hi)
    zax.set_yticks([0, 1], ["z", "x"], fontsize=8)
    zax.tick_params(labelsize=7)


def _ymax(frames: Sequence[Frame1D]) -> float:
    """The top of the density axis: room for D in [0, 1] and twice p_data's peak (a collapsed
    G's spike goes off the top rather than flattening everything else)."""
    return max(1.05, 2.0 * max(float(f.p_data.max()) for f in frames))


def abcdfigure(frames: Sequence[Frame1D], path: Path, title: str) -> None:
    """Goodfellow et al. (2014) Figure 1 from four real states: (a) to (d) side by side."""
    fig = figure((16, 4.8))
    grid = fig.add_gridspec(2, len(frames), height_ratios=[3, 1])
    ymax = _ymax(frames)
    for i, f in enumerate(frames):
        ax = fig.add_subplot(grid[0, i])
        zax = fig.add_subplot(grid[1, i], sharex=ax)
        letter = "abcd"[i] if i < 4 else str(i)
        _draw_1d(ax, zax, f, f"({letter}) step {f.step}: {f.phase}", i == 0, ymax)
    fig.suptitle(title, fontsize=11)
    path.write_bytes(_png(fig))


def frame_png(f: Frame1D, title: str, ymax: float) -> bytes:
    """One animation frame: a single panel."""
    fig = figure((6.4, 4.6))
    grid = fig.add_gridspec(2, 1, height_ratios=[3, 1])
    ax = fig.add_subplot(grid[0])
    _draw_1d(ax, fig.add_subplot(grid[1], sharex=ax), f, title, True, ymax)
    return _png(fig, dpi=80)


def curves_png(frames: Sequence[Frame1D], path: Path, title: str) -> None:
    """JSD, V(D, G) with the learned D, and -log 4 + 2 JSD = V(D*, G) against the step."""
    steps = [f.step for f in frames]
    fig = figure((8, 6.2))
    top, bottom = fig.subplots(2, 1, sharex=True)
    top.plot(
        steps, [f.v_optimal for f in frames], color="tab:orange", label="V(D*, G) = -log 4 + 2 JSD"
    )
    top.plot(steps, [f.v_learned for f in frames], color="tab:blue", label="V(D, G), learned D")
    top.axhline(
        -theory.LOG4, color="0.5", linewidth=0.8, linestyle=":", label="-log 4 (p_g = p_data)"
    )
    top.set_ylabel("value (nats)")
    top.legend(fontsize=8)
    top.grid(alpha=0.3)
    top.set_title(title, fontsize=10)
    bottom.plot(steps, [f.jsd for f in frames], color="black", label="JSD(p_data || p_g)")
    bottom.plot(
        steps,
        [f.d_gap for f in frames],
        color="tab:purple",
        label="E|D - D*| under (p_data + p_g) / 2",
    )
    bottom.axhline(math.log(2), color="0.5", linewidth=0.8, linestyle=":", label="log 2")
    bottom.set_xlabel("step (generator updates)")
    bottom.set_ylabel("nats / probability")
    bottom.legend(fontsize=8)
    bottom.grid(alpha=0.3)
    path.write_bytes(_png(fig))


# ---------------------------------------------------------------- 2-D


def plane_extent(mixture: Mixture | None, data: np.ndarray) -> tuple[float, float, float, float]:
    """(x0, x1, y0, y1) around the data: mixture centres +- 1, or the points' range, padded."""
    if mixture is not None:
        lo, hi = mixture.means.min(0) - 1.0, mixture.means.max(0) + 1.0
    else:
        lo, hi = np.percentile(data, 0.5, axis=0), np.percentile(data, 99.5, axis=0)
        pad = 0.1 * (hi - lo)
        lo, hi = lo - pad, hi + pad
    return float(lo[0]), float(hi[0]), float(lo[1]), float(hi[1])


def heatmap_png(
    state: State,
    z: torch.Tensor,
    mixture: Mixture | None,
    extent: tuple[float, float, float, float],
    title: str,
    dpi: int = 90,
) -> bytes:
    """D(x) over the plane as a heat map, G's samples as dots, the true centres as crosses."""
    x0, x1, y0, y1 = extent
    xs, ys = np.linspace(x0, x1, HEAT), np.linspace(y0, y1, HEAT)
    gx, gy = np.meshgrid(xs, ys)  # [HEAT, HEAT], row = y
    pts = np.stack([gx.ravel(), gy.ravel()], axis=1)
    d = 1 / (1 + np.exp(-d_logits(state.D, pts))).reshape(HEAT, HEAT)
    s = samples_of(state.G, z)
    fig = figure((5.6, 5.0))
    ax = fig.add_subplot()
    im = ax.imshow(
        d, origin="lower", extent=extent, cmap="coolwarm", vmin=0, vmax=1, aspect="equal"
    )
    fig.colorbar(im, ax=ax, fraction=0.046, pad=0.04, label="D(x)")
    ax.scatter(s[:, 0], s[:, 1], s=2, color="tab:green", alpha=0.5, label="G(z)")
    if mixture is not None:
        ax.scatter(
            mixture.means[:, 0],
            mixture.means[:, 1],
            marker="x",
            s=40,
            color="black",
            label="mode centres",
        )
    ax.set_xlim(x0, x1)
    ax.set_ylim(y0, y1)
    ax.set_title(title, fontsize=10)
    ax.legend(fontsize=7, loc="upper right", markerscale=3)
    return _png(fig, dpi=dpi)


FILTER_N = 2000  # samples drawn for the filter's picture, raw and kept (at most) ...
FILTER_CANDIDATES = 100_000  # ... out of this many candidates
KEEP_FLOOR = 1e-4  # the lowest probability of being kept that the picture tells apart


def filter_png(
    run: Path,
    name: str,
    mixture: Mixture | None,
    extent: tuple[float, float, float, float],
    title: str,
    dpi: int = 90,
) -> tuple[bytes, dict[str, Any]]:
    """The sampling filter ``name`` at work on a 2-D run: left, the probability that it keeps
    a sample at x (from the D it scores with: the fitted one when the run has it) under G's
    raw samples; right, the samples it keeps. Returns the PNG and, for mixtures, the mode
    metrics of the raw and the kept samples."""
    g, d, fitted = load_filter_nets(run)
    kept = filters.FILTERS[name](
        g, d, FILTER_N, seed=0, max_candidates=FILTER_CANDIDATES, allow_fewer=True
    )
    raw = sample(run, FILTER_N, seed=0).numpy()
    x0, x1, y0, y1 = extent
    gx, gy = np.meshgrid(np.linspace(x0, x1, HEAT), np.linspace(y0, y1, HEAT))
    lg = torch.from_numpy(d_logits(d, np.stack([gx.ravel(), gy.ravel()], axis=1)))
    if name == "rejection":
        keep = torch.exp((lg - kept.d_max).clamp(max=0.0))
    else:
        keep = filters.acceptance(lg.clamp(max=kept.d_max), kept.d_max, kept.gamma)
    fig = figure((10.4, 4.8))
    left, right = fig.add_subplot(1, 2, 1), fig.add_subplot(1, 2, 2)
    im = left.imshow(  # a log scale: a filter may keep one sample in a hundred, sharply
        keep.numpy().reshape(HEAT, HEAT).clip(min=KEEP_FLOOR),
        origin="lower",
        extent=extent,
        cmap="viridis",
        norm=LogNorm(vmin=KEEP_FLOOR, vmax=1.0),
        aspect="equal",
    )
    fig.colorbar(im, ax=left, fraction=0.046, pad=0.04, label="probability of being kept (log)")
    which = "the D fitted on the final G" if fitted else "the run's D"
    left.scatter(raw[:, 0], raw[:, 1], s=2, color="white", alpha=0.4, label="G(z), raw")
    left.set_title(f"{name}: what it keeps, by {which}", fontsize=9)
    if kept.accepted:
        right.scatter(*kept.samples.numpy().T, s=2, color="tab:green", alpha=0.5, label="kept")
    right.set_title(
        f"the {kept.accepted:,} samples kept of {kept.candidates:,} (acceptance {kept.rate:.2%})",
        fontsize=9,
    )
    figures: dict[str, Any] = {}
    for ax in (left, right):
        if mixture is not None:
            ax.scatter(*mixture.means.T, marker="x", s=30, color="black", label="mode centres")
        ax.set_xlim(x0, x1)
        ax.set_ylim(y0, y1)
        ax.legend(fontsize=7, loc="upper right", markerscale=3)
    if mixture is not None:
        figures = {"raw": mode_metrics(raw, mixture)}
        if kept.accepted:
            figures[name] = mode_metrics(kept.samples, mixture)
    fig.suptitle(title, fontsize=10)
    return _png(fig, dpi=dpi), figures


# ---------------------------------------------------------------- files


def _png(fig: Any, dpi: int = 100) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=dpi)
    return buf.getvalue()


def write_gif(frames: Sequence[bytes], path: Path, ms_per_frame: int = 120) -> None:
    """An animated GIF from PNG frames (the last one held 1.5 s)."""
    images = [Image.open(io.BytesIO(b)).convert("RGB") for b in frames]
    palette = [im.quantize(colors=128, method=Image.Quantize.MEDIANCUT) for im in images]
    durations = [ms_per_frame] * (len(images) - 1) + [1500]
    palette[0].save(
        path,
        save_all=True,
        append_images=palette[1:],
        duration=durations,
        loop=0,
        optimize=False,
    )


# ---------------------------------------------------------------- a whole run


@dataclass
class TheoryResult:
    """What ``theory_report`` wrote and measured."""

    dim: int
    files: list[Path]
    rows: list[dict[str, Any]]  # one per snapshot: JSD and values (1-D), mode metrics (2-D)
    panels: list[tuple[int, str]] = field(default_factory=list)  # (step, phase) of (a)-(d)
    source: str = "snapshots"  # or "checkpoints" when the run kept no snapshots


def load_snapshots(run: Path) -> tuple[list[Snapshot], str]:
    """The run's snapshots, oldest first, or else its kept checkpoints (G_pre = G)."""
    found = snapshots.list_snapshots(run)
    if found:
        return [snapshots.read(p) for _, p in found], "snapshots"
    ckpts = checkpoint.list_checkpoints(RunFolder(run).checkpoints)
    if not ckpts:
        raise GanforgeError(f"{run} has neither snapshots nor checkpoints to look at")
    out = []
    for step, p in ckpts:
        tensors, _ = checkpoint.read(p)
        g = checkpoint.subset(tensors, "G")
        out.append(Snapshot(step, g, g, checkpoint.subset(tensors, "D")))
    return out, "checkpoints"


def pick(snaps: Sequence[Snapshot], step: int) -> Snapshot:
    """The snapshot of ``step``, or the nearest one."""
    return min(snaps, key=lambda s: (abs(s.step - step), s.step))


def default_panels(snaps: Sequence[Snapshot]) -> tuple[int, int]:
    """Steps of panels (b) and (c): about 5% and 25% into the run."""
    last = snaps[-1].step
    return pick(snaps, round(0.05 * last)).step, pick(snaps, round(0.25 * last)).step


def _every(items: Sequence[Any], most: int) -> list[Any]:
    """At most ``most`` items, evenly spread, first and last kept."""
    if len(items) <= most:
        return list(items)
    idx = np.unique(np.linspace(0, len(items) - 1, most).round().astype(int))
    return [items[i] for i in idx]


def theory_report(
    run: Path,
    out: Path,
    panels: tuple[int, int] | None = None,
    gif: bool = True,
    max_frames: int = 80,
    max_maps: int = 10,
    progress: Any = None,
) -> TheoryResult:
    """Look at a 1-D or 2-D run through its snapshots and write the pictures into ``out``.

    1-D: ``abcd.png`` (Goodfellow's panels (a) start, (b) after a D update at step
    ``panels[0]``, (c) after a G update at step ``panels[1]``, (d) end), ``curves.png`` (JSD,
    V(D, G), V(D*, G) over training), ``run.gif`` (every snapshot, after its D update) and
    ``theory.jsonl``. 2-D: ``heatmaps/step-XXXXXX.png`` and ``heatmaps.gif`` (D's heat map,
    G's samples, the mode centres) and, for mixtures, ``modes.jsonl`` (mode metrics per step);
    for a run that filters its samples, ``heatmaps/filter.png`` (``filter_png``) and, for
    mixtures, ``filter.json`` (modes, high-quality share and KL, raw and kept).
    ``progress(done, total)`` is called as frames are drawn.
    """
    cfg = RunFolder(run).read_config()
    data = from_config(cfg.data)
    if data.kind != "points" or data.sample_shape[0] not in (1, 2):
        raise GanforgeError(
            f"{run}: `ganforge theory` looks at runs on 1-D or 2-D points; this run's data "
            f"has samples of shape {list(data.sample_shape)}"
        )
    dim = data.sample_shape[0]
    mixture = mixture_of(cfg.data.source)
    points = data.x.double().numpy()
    snaps, source = load_snapshots(run)
    shape = data.sample_shape
    z = fixed_z(cfg.model.latent_dim)
    out.mkdir(parents=True, exist_ok=True)
    files: list[Path] = []
    tick = progress or (lambda done, total: None)
    name = f"{run.name} ({cfg.preset}, {cfg.data.source})"

    if dim == 1:
        x = grid_1d(mixture, points[:, 0] if mixture is None else None)

        def p_data(t: np.ndarray) -> np.ndarray:
            return data_density_1d(mixture, points[:, 0], t)

        fine = mode_grids(mixture)
        b_step, c_step = panels or default_panels(snaps)
        chosen = [
            build_state(cfg, shape, snaps[0], False, "start"),
            build_state(cfg, shape, pick(snaps, b_step), True, "after a D update"),
            build_state(cfg, shape, pick(snaps, c_step), False, "after a G update"),
            build_state(cfg, shape, snaps[-1], False, "end"),
        ]
        panel_frames = [frame_1d(s, x, p_data, z, fine) for s in chosen]
        abcdfigure(panel_frames, out / "abcd.png", f"Goodfellow et al. (2014), Fig. 1: {name}")
        files.append(out / "abcd.png")
        frames = []
        for i, snap in enumerate(snaps):
            state = build_state(cfg, shape, snap, snap.step > 0, "after its D update")
            frames.append(frame_1d(state, x, p_data, z, fine))
            tick(i + 1, len(snaps))
        rows = [f.row() for f in frames]
        (out / "theory.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        files.append(out / "theory.jsonl")
        curves_png(frames, out / "curves.png", f"{name}: D after each D update")
        files.append(out / "curves.png")
        if gif:
            ymax = _ymax(frames)
            pngs = [
                frame_png(f, f"step {f.step}: after its D update", ymax)
                for f in _every(frames, max_frames)
            ]
            write_gif(pngs, out / "run.gif")
            files.append(out / "run.gif")
        return TheoryResult(1, files, rows, [(s.step, s.phase) for s in chosen], source)

    extent = plane_extent(mixture, points)
    maps = out / "heatmaps"
    maps.mkdir(exist_ok=True)
    rows = []
    pngs = []
    shown = _every(snaps, max_maps)
    for i, snap in enumerate(shown):
        state = build_state(cfg, shape, snap, False, "after its G update")
        png = heatmap_png(state, z[:2000], mixture, extent, f"{name}\nstep {snap.step}")
        path = maps / f"step-{snap.step:06d}.png"
        path.write_bytes(png)
        files.append(path)
        pngs.append(png)
        row: dict[str, Any] = {"step": snap.step}
        if mixture is not None:
            row |= mode_metrics(samples_of(state.G, z), mixture)
        rows.append(row)
        tick(i + 1, len(shown))
    if mixture is not None:
        (out / "modes.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
        files.append(out / "modes.jsonl")
    if gif:
        write_gif(pngs, out / "heatmaps.gif", ms_per_frame=500)
        files.append(out / "heatmaps.gif")
    if (chosen_filter := cfg.train.sample_filter) != "none" or cfg.train.filter_steps:
        png, figures = filter_png(run, filter_name(chosen_filter), mixture, extent, name)
        (maps / "filter.png").write_bytes(png)
        files.append(maps / "filter.png")
        if figures:
            text = json.dumps(
                {k: {m: v[m] for m in ("modes", "hq_share", "kl")} for k, v in figures.items()}
            )
            (out / "filter.json").write_text(text + "\n")
            files.append(out / "filter.json")
    return TheoryResult(2, files, rows, [], source)


def filter_name(configured: str) -> str:
    """The filter a 2-D run's picture shows: its ``train.sample_filter``, or rejection when it
    has a fitted filter D but samples unfiltered by default."""
    return configured if configured != "none" else "rejection"
