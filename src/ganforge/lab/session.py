"""The lab's session: one toy GAN (1-D or 2-D points), stepped live, and what the page shows.

The GAN is ganforge's own: a ``Config`` from the toy presets (``toy-1d`` for 1-D data,
``ring8`` for 2-D), its nets and optimisers from ``train.loop.build_step``, and the one
training step of ``train/step.py`` (``GANStep``: a full step, or its ``d_update`` and
``g_update`` alone for the page's one-update buttons). A background thread trains while the
page plays, and after each slice of training publishes the *state*: the step, the losses and
D's beliefs, the JSD and the values V(D, G) and V(D*, G) (``ganforge.theory``, through
``report.theory``'s frame in 1-D and ``lab.views`` in 2-D), mode figures for mixtures, the
diagnostics' warnings in words, and the pictures' data.

Every change comes through one lock: the page's requests and the training thread never see
half a step.
"""

from __future__ import annotations

import copy
import dataclasses
import json
import math
import threading
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganforge import checkpoint, nets, snapshots
from ganforge import config as cfglib
from ganforge.config import SECTIONS, Config
from ganforge.data import BatchSampler, Dataset, from_config
from ganforge.data.toy import TOYS, Mixture, mixture_of
from ganforge.diagnose import Watch
from ganforge.errors import ConfigError, DataError, GanforgeError
from ganforge.lab import views
from ganforge.losses import LOSSES
from ganforge.metrics.modes import mode_metrics
from ganforge.nets.layers import standardise
from ganforge.plots import samples_png
from ganforge.report import theory as rt
from ganforge.runs import RunFolder
from ganforge.train.loop import build_step, real_reference, seed_everything, write_loss_plot
from ganforge.train.step import make_switches

TOY_1D = "gmm1d:-2,2:0.5:0.3,0.7"  # the toy-1d preset's data
DRAWN = "drawn"  # data drawn on the page: a mixture with a mode at each point clicked
# The data the page offers by name; --data also takes any toy spec or a file of points.
DATA_NAMES: dict[str, str] = {
    "toy-1d": TOY_1D,
    **{name: name for name in TOYS},
}
DRAWN_STD = {1: 0.25, 2: 0.1}  # std of each drawn mode, by dimension
MAX_DRAWN = 64  # most modes a drawing may have

# The lab's defaults on top of the presets (measured in docs/lab.md: the JSD shown falls below
# 0.1 within a minute of play on toy-1d and ring8 on 2 cores). In 2-D the samples drawn are
# the live G's, which D is trained against: no moving average unless asked for.
# The filter's D is fitted at the end of a `ganforge train` run; the lab has no end: its
# exports keep every sample (train.sample_filter=none) and fit no filter.
LAB_DEFAULTS: dict[int, dict[str, Any]] = {
    1: {},
    2: {"stab.ema": 0.0, "train.filter_steps": 0, "train.sample_filter": "none"},
}
BASE_PRESET = {1: "toy-1d", 2: "ring8"}
# Keys whose change needs new nets or new data: the run starts again from step 0.
RESTART_PREFIXES = ("model.", "data.", "train.seed", "preset")

# While playing: train for TRAIN_SECONDS, or longer in proportion to the time the last state
# took to compute (by dimension), then publish a state. 1-D: Goodfellow's panel costs ~40 ms,
# and 3/7 of the time goes to training; 2-D: a state costs ~25 ms (D on the 32 x 32 grid), and
# a third goes to training, so that a 2-D toy shows 20 states a second (docs/lab.md).
TRAIN_SECONDS = 0.01
TRAIN_SHARE = {1: 0.75, 2: 0.5}
LOG_EVERY = 50  # steps between the diagnostics' log lines (the toy presets' train.log_every)
SNAPSHOT_EVERY = {1: 25, 2: 100}  # steps between weight snapshots kept for the export
MAX_SNAPSHOTS = 200  # kept in memory: older ones are thinned beyond this
MAX_HISTORY = 600  # points of each curve sent to the page
# samples of G behind p_g, the JSD and the mode figures (fixed z), by dimension: in 2-D, 1,000
# samples put the JSD of a perfect G at 0.002 on ring8 (measured), and halve the time of G's pass
N_VIEW = {1: 2000, 2: 1000}
N_SHOWN = 500  # samples of G and of the data drawn as dots (2-D)
N_DISPLAY = 241  # points of the 1-D display grid
HEAT = 32  # cells per axis of the 2-D heat maps (and of the JSD's grid)
MAX_STEPS = 10_000  # most steps one request may ask for
VIEW_SEED = 1234  # seed of the fixed z of the pictures


@dataclass
class World:
    """The data a session trains on: its name, points, dimension and mixture (when known)."""

    name: str  # what the page shows: a name of DATA_NAMES, a spec, a file, or "drawn"
    source: str  # data.source of the config ("" for drawn data, written on export)
    data: Dataset
    mixture: Mixture | None

    @property
    def dim(self) -> int:
        return int(self.data.sample_shape[0])

    @property
    def drawn(self) -> bool:
        return self.name == DRAWN


def make_world(name: str, points: Sequence[Any] | None = None) -> World:
    """The world of a data name (``DATA_NAMES``), a toy spec or a points file, or of drawn
    ``points`` (numbers in 1-D, pairs in 2-D) when ``name`` is "drawn"."""
    if not isinstance(name, str) or not name.strip():
        raise DataError("data: expected a name such as ring8 or toy-1d, or a file")
    name = name.strip()
    if name == DRAWN:
        mixture = drawn_mixture(points)
        x, labels = mixture.sample(20_000, seed=0)
        data = Dataset(torch.from_numpy(x), torch.from_numpy(labels), name=DRAWN)
        return World(DRAWN, "", data, mixture)
    source = DATA_NAMES.get(name, name)
    path = Path(source).expanduser()
    if path.suffix and path.exists():
        source = str(path.resolve())  # an export must find it from any folder
    data = from_config(cfglib.DataConfig(source=source))
    if data.kind != "points" or data.sample_shape[0] not in (1, 2):
        raise DataError(
            f"{name}: the lab trains on 1-D or 2-D points; these samples have shape "
            f"{list(data.sample_shape)}"
        )
    return World(name, source, data, mixture_of(source))


def drawn_mixture(points: Sequence[Any] | None) -> Mixture:
    """A mixture of equal Gaussians, one at each drawn point (std ``DRAWN_STD``)."""
    if not isinstance(points, (list, tuple)) or not points:
        raise DataError("points: draw at least one point (a list of numbers or of [x, y] pairs)")
    if len(points) > MAX_DRAWN:
        raise DataError(f"points: at most {MAX_DRAWN} points, got {len(points)}")
    try:
        arr = np.asarray(points, dtype=np.float64)
    except (TypeError, ValueError):
        raise DataError("points: expected numbers (1-D) or [x, y] pairs (2-D)") from None
    if arr.ndim == 1:
        arr = arr[:, None]
    if arr.ndim != 2 or arr.shape[1] not in (1, 2) or not np.isfinite(arr).all():
        raise DataError("points: expected finite numbers (1-D) or [x, y] pairs (2-D)")
    return Mixture.of(None, arr, DRAWN_STD[arr.shape[1]], name="points")


def lab_config(dim: int, source: str) -> Config:
    """The lab's config for data of dimension ``dim``: the toy preset, the lab's defaults."""
    cfg = cfglib.preset(BASE_PRESET[dim])
    cfglib.apply(cfg, LAB_DEFAULTS[dim])
    cfg.data.source = source
    return cfg


@contextmanager
def evaluating(*modules: nn.Module) -> Iterator[None]:
    """The modules in eval mode (dropout off) for the pictures, then as they were."""
    modes = [m.training for m in modules]
    for m in modules:
        m.eval()
    try:
        yield
    finally:
        for m, mode in zip(modules, modes, strict=True):
            m.train(mode)


def finite(v: float) -> float | None:
    """``v``, or None (JSON null) when it is NaN or infinite."""
    return v if math.isfinite(v) else None


def per_mille(a: np.ndarray) -> list[Any]:
    """Values in [0, 1] as whole thousandths (small, fast JSON)."""
    return np.rint(np.nan_to_num(a, nan=0.5) * 1000).astype(np.int64).tolist()


def toml_value(v: Any) -> str:
    """A config value as TOML."""
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, (int, float)):
        return repr(v)
    if isinstance(v, str):
        return json.dumps(v)  # TOML's basic strings share JSON's escapes
    if isinstance(v, (tuple, list)):
        return "[" + ", ".join(toml_value(x) for x in v) + "]"
    raise TypeError(f"no TOML for {v!r}")


def config_toml(cfg: Config, note: str = "") -> str:
    """``cfg`` as a TOML file for ``ganforge train --config``: the preset, and every key that
    differs from it."""
    base = cfglib.preset(cfg.preset)
    lines = [f"# {note}"] if note else []
    lines.append(f"preset = {toml_value(cfg.preset)}")
    for name in SECTIONS:
        ours, theirs = getattr(cfg, name), getattr(base, name)
        rows = [
            f"{f.name} = {toml_value(getattr(ours, f.name))}"
            for f in dataclasses.fields(ours)
            if getattr(ours, f.name) != getattr(theirs, f.name)
        ]
        if rows:
            lines += ["", f"[{name}]", *rows]
    return "\n".join(lines) + "\n"


@dataclass
class Snap:
    """Weights kept for the export's snapshots (``ganforge.snapshots``)."""

    step: int
    g_pre: dict[str, torch.Tensor]
    g: dict[str, torch.Tensor]
    d: dict[str, torch.Tensor]


class Session:
    """One live GAN and its state; every public method is safe to call from any thread."""

    def __init__(
        self,
        data: str = "toy-1d",
        overrides: Mapping[str, Any] | None = None,
        points: Sequence[Any] | None = None,
        threads: int = 1,
    ) -> None:
        if threads > 0:
            torch.set_num_threads(threads)  # tiny nets: one thread beats two
        self._lock = threading.RLock()
        self._wake = threading.Condition(self._lock)
        self.playing = False
        self.closed = False
        self.version = 0
        self.published: dict[str, Any] = {}
        self.published_json = b"{}"
        self.state_seconds = 0.0  # how long the last state took to compute
        world = make_world(data, points)
        cfg = lab_config(world.dim, world.source)
        for key, value in (overrides or {}).items():
            cfglib.set_value(cfg, key, value)
        self._build(cfg, world)
        self._thread = threading.Thread(target=self._play_loop, name="ganforge-lab", daemon=True)
        self._thread.start()

    # ------------------------------------------------------------------ building

    def _build(self, cfg: Config, world: World) -> None:
        """New nets, optimisers and counters for ``cfg`` on ``world``: step 0 (checked first,
        so that a mistake changes nothing)."""
        t = cfg.train
        if t.batch_size > len(world.data):
            raise ConfigError(
                f"train.batch_size={t.batch_size} exceeds the {len(world.data)} points"
            )
        if t.batch_size % cfg.model.pack:
            raise ConfigError(
                f"model.pack={cfg.model.pack} needs train.batch_size divisible by it, "
                f"got {t.batch_size}"
            )
        if cfg.model.g_out == "tanh" and float(world.data.x.abs().max()) > 1:
            raise ConfigError("the points lie outside [-1, 1], which tanh cannot reach")
        seed_everything(t.seed)
        gan = build_step(cfg, world.data.sample_shape, torch.device("cpu"))
        if cfg.model.standardize:  # as `ganforge train` does: the nets see the data standardised
            standardise([gan.G, gan.D, *gan.switches.modules().values()], world.data.x)
        self.cfg, self.world, self.gan = cfg, world, gan
        self.sampler = BatchSampler(len(world.data), t.batch_size, t.seed)
        self.step = 0  # full steps and single G updates
        self.d_updates = 0
        self.last: dict[str, float] = {}
        self.sums: dict[str, float] = {}
        self.counts: dict[str, int] = {}
        self.rows: list[dict[str, Any]] = []  # metrics.jsonl of the export
        self.history: list[tuple[dict[str, Any], str]] = []  # each point with its JSON
        self.findings: list[dict[str, Any]] = []
        self.snaps: list[Snap] = []
        self.snapshot_every = SNAPSHOT_EVERY[world.dim]
        self.stopped = ""  # why play stopped by itself (a NaN), shown on the page
        z = torch.Generator().manual_seed(VIEW_SEED)
        latent = cfg.model.latent_dim
        self.z_view = torch.randn(N_VIEW[world.dim], latent, generator=z)
        self.z_lines = torch.from_numpy(views.z_grid(latent))
        mixture = world.mixture
        self.watch = Watch(
            cfg.diagnose,
            real_reference(world.data, t.n_samples, t.seed),
            (lambda x: int(mode_metrics(x, mixture)["modes"])) if mixture is not None else None,
        )
        self.z_fixed = torch.randn(
            t.n_samples, latent, generator=torch.Generator().manual_seed(t.seed)
        )
        idx = torch.randperm(len(world.data), generator=torch.Generator().manual_seed(0))
        self.shown_real = world.data.x[idx[:N_SHOWN]].double().numpy()
        points = world.data.x.double().numpy()
        if world.dim == 1:
            x = rt.grid_1d(world.mixture, points[:, 0] if world.mixture is None else None)
            self.x_display = np.linspace(x[0], x[-1], N_DISPLAY)
            self.fine = rt.mode_grids(mixture)
            sub = points[idx[:20_000].numpy(), 0]

            def p_data(at: np.ndarray) -> np.ndarray:  # closed form, or a KDE of the points
                return rt.data_density_1d(mixture, sub, at)

            self.p_data_fn = p_data
        else:
            self.extent = rt.plane_extent(world.mixture, points)
            self.h = views.bandwidth(self.extent, HEAT)
            self.heat_points = views.grid_points(self.extent, HEAT)
            sub = points[idx[:20_000].numpy()]
            self.p_masses = views.density_masses(world.mixture, sub, self.extent, HEAT, self.h)
        # what the page draws that stays fixed for this world: sent as JSON made once
        self.fixed: dict[str, Any] = {
            "minus_log4": -math.log(4.0),
            "data_names": [*DATA_NAMES, DRAWN],
            "losses": list(LOSSES),
            "centres": views.rounded(mixture.means) if mixture is not None else [],
        }
        if world.dim == 1:
            self.fixed["x"] = views.rounded(self.x_display)
        else:
            self.fixed |= {
                "extent": list(self.extent),
                "h": self.h,
                "real": views.rounded(self.shown_real, 3),
            }
        self.fixed_json = json.dumps(self.fixed, allow_nan=False)
        self._keep_snapshot(None)
        self._publish()

    def _restep(self, cfg: Config) -> None:
        """Take ``cfg``'s loss, k, rates, batch size and stabilisers into the running GAN: the
        same nets and optimisers, a new step object around them (switches checked first)."""
        gan = self.gan
        loss = LOSSES[cfg.train.loss]
        switches = make_switches(cfg, gan.G, gan.D, loss, tuple(self.world.data.sample_shape))
        t = cfg.train
        if t.batch_size > len(self.world.data) or t.batch_size % cfg.model.pack:
            raise ConfigError(
                f"train.batch_size={t.batch_size} must be at most {len(self.world.data)} and "
                f"divisible by model.pack={cfg.model.pack}"
            )
        o = cfg.optim
        for opt, lr, betas in ((gan.opt_g, o.lr_g, o.betas_g), (gan.opt_d, o.lr_d, o.betas_d)):
            for group in opt.param_groups:
                group["lr"], group["betas"] = lr, betas
        self.gan = dataclasses.replace(gan, loss=loss, switches=switches, t=self.step)
        if t.batch_size != self.cfg.train.batch_size:
            self.sampler = BatchSampler(len(self.world.data), t.batch_size, t.seed)
        self.cfg = cfg

    # ------------------------------------------------------------------ stepping

    def _reals(self, n: int) -> list[torch.Tensor]:
        return [self.world.data.batch(self.sampler.next()) for _ in range(n)]

    def _record(self, stats: Mapping[str, torch.Tensor]) -> None:
        for k, v in stats.items():
            value = float(v)
            if k not in ("grad_d", "grad_g"):
                self.sums[k] = self.sums.get(k, 0.0) + value
                self.counts[k] = self.counts.get(k, 0) + 1
            self.last[k] = value
            if not math.isfinite(value) and not self.stopped:  # diverged: stop playing
                self.playing = False
                self.stopped = f"step {self.step}: {k} is {value}; lower the rates and reset"

    def _full_step(self) -> None:
        """One step of Algorithm 1: k D updates, then G's (``GANStep.__call__``)."""
        step = self.step + 1
        log_now = step % LOG_EVERY == 0
        snap = step % self.snapshot_every == 0
        g_pre = snapshots.copy_state(self.gan.G) if snap else None
        self.gan.t = self.step
        stats = self.gan(self._reals(self.cfg.train.d_steps), measure=log_now)
        self.step, self.d_updates = step, self.d_updates + self.cfg.train.d_steps
        self._record(stats)
        if snap:
            self._keep_snapshot(g_pre)
        if log_now:
            self._log()

    def _d_update(self) -> None:
        """One D update alone (``GANStep.d_update``): G's step count does not change."""
        self.gan.t = self.step
        _, stats = self.gan.d_update(self._reals(1)[0], keep_graph=False)
        self.d_updates += 1
        self._record(stats)

    def _g_update(self) -> None:
        """One G update alone (``GANStep.g_update``) on a fresh z."""
        self.gan.t = self.step
        real = self._reals(1)[0]
        fake = self.gan.G(self.gan.noise(real))
        stats = self.gan.g_update(fake, real)
        self.step += 1
        self._record(stats)

    def _keep_snapshot(self, g_pre: dict[str, torch.Tensor] | None) -> None:
        g = snapshots.copy_state(self.gan.G)
        d = snapshots.copy_state(self.gan.D)
        if self.snaps and self.snaps[-1].step == self.step:
            self.snaps.pop()
        self.snaps.append(Snap(self.step, g_pre if g_pre is not None else g, g, d))
        self.snaps = views.thin(self.snaps, MAX_SNAPSHOTS)

    def _log(self) -> None:
        """A log line: the interval's means, the diagnostics' rules fed with it."""
        row: dict[str, Any] = {"step": self.step}
        row |= {k: self.sums[k] / self.counts[k] for k in self.sums}
        row |= {k: self.last[k] for k in ("grad_d", "grad_g") if k in self.last}
        self.sums, self.counts = {}, {}
        with torch.no_grad(), evaluating(self.gan.sampler_g):
            row |= self.watch.measure(self.gan.sampler_g(self.z_fixed))
        for f in self.watch.update(row):
            self.findings.append({**f.to_dict(), "advice": f.advice, "text": f.text()})
        self.findings = self.findings[-8:]
        self.rows.append(row)

    def _advance(self, steps: int, d: int, g: int) -> None:
        for _ in range(d):
            self._d_update()
        for _ in range(g):
            self._g_update()
        for _ in range(steps):
            self._full_step()

    # ------------------------------------------------------------------ the state

    def _state(self) -> dict[str, Any]:
        g = self.gan.sampler_g
        with torch.no_grad(), evaluating(g, self.gan.D):
            pictures = self._pictures_1d(g) if self.world.dim == 1 else self._pictures_2d(g)
        jsd, v_d, v_dstar = pictures.pop("_theory")
        samples = pictures.pop("_samples")
        modes: dict[str, Any] = {}
        if self.world.mixture is not None:
            m = mode_metrics(samples, self.world.mixture)
            modes = {
                "modes_captured": m["modes"],
                "n_modes": m["n_modes"],
                "high_quality": m["hq_share"],
            }
        last = {k: finite(self.last[k]) if k in self.last else None for k in
                ("loss_d", "loss_g", "d_real", "d_fake")}  # fmt: skip
        point = {"step": self.step, "jsd": jsd, "v_d": v_d, "v_dstar": v_dstar, **last}
        point |= {k: modes[k] for k in ("modes_captured", "high_quality") if k in modes}
        if self.history and self.history[-1][0]["step"] == self.step:
            self.history.pop()
        self.history.append((point, json.dumps(point, allow_nan=False)))
        self.history = views.thin(self.history, MAX_HISTORY)
        t, s, o = self.cfg.train, self.cfg.stab, self.cfg.optim
        return {
            "version": self.version,
            "step": self.step,
            "d_updates": self.d_updates,
            "playing": self.playing,
            "stopped": self.stopped,
            **last,
            "jsd": jsd,
            "v_d": v_d,
            "v_dstar": v_dstar,
            **modes,
            "warnings": self.findings,
            "history": [p for p, _ in self.history],
            "data": self.world.name,
            "dim": self.world.dim,
            "config": {
                "train.loss": t.loss,
                "train.d_steps": t.d_steps,
                "train.batch_size": t.batch_size,
                "train.seed": t.seed,
                "optim.lr_d": o.lr_d,
                "optim.lr_g": o.lr_g,
                "stab.gp": s.gp,
                "stab.r1": s.r1,
                "stab.r2": s.r2,
                "stab.instance_noise": s.instance_noise,
                "stab.label_smoothing": s.label_smoothing,
                "stab.ema": s.ema,
                "model.pack": self.cfg.model.pack,
            },
            **pictures,
        }

    def _pictures_1d(self, g: nn.Module) -> dict[str, Any]:
        """Goodfellow's panel, live: p_data, p_g, D, D* on the display grid; z to x below."""
        state = rt.State(self.step, "live", g, self.gan.D)
        with np.errstate(over="ignore"):  # a saturated D's exp(-logit): D is 0 there, rightly
            f = rt.frame_1d(state, self.x_display, self.p_data_fn, self.z_view, self.fine)
        xd = self.x_display
        lo, hi = f.view

        def shown(y: np.ndarray) -> list[Any]:
            return views.rounded(np.nan_to_num(np.interp(xd, f.x, y)))

        return {
            "p_data": shown(f.p_data),
            "p_g": shown(f.p_g),
            "d": shown(f.d),
            "d_star": shown(f.d_star),
            "z_at": views.rounded(lo + f.z_u * (hi - lo)),
            "x_of_z": views.rounded(np.nan_to_num(f.x_of_z)),
            "_theory": (finite(f.jsd), finite(f.v_learned), finite(f.v_optimal)),
            "_samples": rt.samples_of(g, self.z_view),
        }

    def _pictures_2d(self, g: nn.Module) -> dict[str, Any]:
        """D's heat map and D*_h's, the real points, G's samples, the image of a z grid."""
        logits = rt.d_logits(self.gan.D, self.heat_points).reshape(HEAT, HEAT)
        samples = rt.samples_of(g, self.z_view)
        q = views.sample_masses(samples, self.extent, HEAT, self.h)
        x0, x1, y0, y1 = self.extent
        off = samples[(samples[:, 0] < x0) | (samples[:, 0] > x1) | (samples[:, 1] < y0) |
                      (samples[:, 1] > y1)]  # fmt: skip
        # D of the cell off the grid: sigmoid of its mean logit at G's samples there (1/2 if none)
        logit_out = float(rt.d_logits(self.gan.D, off).mean()) if len(off) else 0.0
        th = views.theory_2d(self.p_masses, q, logits, logit_out)
        lines = self.z_lines
        image = g(lines.reshape(-1, lines.shape[-1])).reshape(lines.shape[0], lines.shape[1], 2)
        d = 1 / (1 + np.exp(-np.clip(logits, -60, 60)))
        return {
            "heat": per_mille(d),  # D(x) in thousandths
            "heat_star": per_mille(th["d_star"]),
            "fake": views.rounded(np.nan_to_num(samples[:N_SHOWN]), 3),
            "z_lines": views.rounded(np.nan_to_num(image.double().numpy()), 3),
            "off_grid": th["off_grid"],
            "_theory": (finite(th["jsd"]), finite(th["v_d"]), finite(th["v_dstar"])),
            "_samples": samples,
        }

    def _publish(self) -> None:
        """Compute the state and its JSON. The history's points and what stays fixed for a
        world (the real points, the grids) are serialised once, not at every state."""
        self.version += 1
        start = time.perf_counter()
        try:
            with np.errstate(invalid="ignore", over="ignore"):
                state = self._state()
        except (ValueError, RuntimeError):
            if not self.stopped:  # a bug: let it be seen
                raise
            # diverged (NaN weights): the last pictures stay, with why training stopped
            keep = {k: v for k, v in self.published.items() if k not in self.fixed}
            state = keep | {"version": self.version, "step": self.step, "playing": False,
                            "d_updates": self.d_updates, "stopped": self.stopped}  # fmt: skip
        fixed = self.fixed
        head = json.dumps(
            {k: v for k, v in state.items() if k not in fixed and k != "history"}, allow_nan=False
        )
        history = ",".join(text for _, text in self.history)
        tail = f', "history": [{history}], {self.fixed_json[1:]}'
        self.published = state | fixed
        self.published_json = (head[:-1] + tail).encode()
        self.state_seconds = time.perf_counter() - start

    # ------------------------------------------------------------------ the page's requests

    def state(self) -> dict[str, Any]:
        """The newest published state (no waiting on training)."""
        return self.published

    def state_json(self) -> bytes:
        return self.published_json

    def advance(self, steps: int = 0, d: int = 0, g: int = 0) -> dict[str, Any]:
        """``d`` D updates, then ``g`` G updates, then ``steps`` full steps; the new state."""
        for name, n in (("steps", steps), ("d", d), ("g", g)):
            if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_STEPS:
                raise ConfigError(f"{name}: expected a whole number from 0 to {MAX_STEPS}")
        with self._lock:
            self._advance(steps, d, g)
            self._publish()
            return self.published

    def configure(self, changes: Mapping[str, Any]) -> dict[str, Any]:
        """Apply config keys (``{"optim.lr_d": 1e-3, ...}``) and ``data``/``points``: live
        when the nets stay (loss, k, rates, stabilisers), from step 0 when they change (model,
        data, seed). Nothing changes when one value is wrong."""
        if not isinstance(changes, Mapping):
            raise ConfigError("expected a JSON object of config keys and values")
        changes = dict(changes)
        data, points = changes.pop("data", None), changes.pop("points", None)
        with self._lock:
            world = self.world
            if data is not None or points is not None:
                world = make_world(DRAWN if points is not None else data, points)
            cfg = copy.deepcopy(self.cfg)
            if world.dim != self.world.dim:
                cfg = lab_config(world.dim, world.source)
            cfg.data.source = world.source
            keys = []
            for key, value in changes.items():
                full = cfglib.resolve_key(str(key), cfg)
                cfglib.set_value(cfg, full, value)
                keys.append(full)
            restart = world is not self.world or any(k.startswith(RESTART_PREFIXES) for k in keys)
            if restart:
                self._build(cfg, world)
            else:
                self._restep(cfg)
                self._publish()
            self._wake.notify_all()
            return self.published

    def reset(self) -> dict[str, Any]:
        """Step 0 again: new weights from the seed, the same settings."""
        with self._lock:
            self._build(self.cfg, self.world)
            return self.published

    def play(self) -> dict[str, Any]:
        with self._lock:
            self.playing, self.stopped = True, ""
            self._wake.notify_all()
            self._publish()
            return self.published

    def pause(self) -> dict[str, Any]:
        with self._lock:
            self.playing = False
            self._publish()
            return self.published

    def close(self) -> None:
        with self._lock:
            self.closed, self.playing = True, False
            self._wake.notify_all()
        self._thread.join(timeout=5)

    def _play_loop(self) -> None:
        while True:
            with self._wake:
                while not self.playing and not self.closed:
                    self._wake.wait()
                if self.closed:
                    return
                try:
                    slice_ = max(TRAIN_SECONDS, TRAIN_SHARE[self.world.dim] * self.state_seconds)
                    end = time.perf_counter() + slice_
                    self._full_step()
                    while self.playing and time.perf_counter() < end:
                        self._full_step()
                    self._publish()
                except Exception as e:  # a switch that fails once it runs, a bug: said on the page
                    self.playing = False
                    self.stopped = f"training stopped: {' '.join(str(e).split())}"
                    self._publish()
            time.sleep(0.001)  # let the page's requests take the lock

    # ------------------------------------------------------------------ export

    def config_toml(self) -> str:
        """The TOML of the current settings, at the preset's full length."""
        return config_toml(self.cfg, "ganforge lab: run with `ganforge train --config FILE`")

    def export(self, out: Path) -> dict[str, str]:
        """Write ``out/lab.toml`` (for ``ganforge train --config``; drawn data in
        ``out/drawn.toml``) and ``out/run/``, the live run as a run folder (config.json,
        metrics.jsonl, snapshots, a checkpoint, samples, loss.png) that ``ganforge theory``
        and ``ganforge report`` read. Returns the paths written."""
        with self._lock:
            out = out.expanduser()
            try:
                out.mkdir(parents=True, exist_ok=True)
            except OSError as e:
                raise GanforgeError(f"cannot create {out}: {e.strerror}") from None
            cfg = copy.deepcopy(self.cfg)
            written: dict[str, str] = {}
            if self.world.drawn:
                assert self.world.mixture is not None
                drawn = (out / "drawn.toml").resolve()
                table = self.world.mixture.to_dict()
                drawn.write_text("".join(f"{k} = {toml_value(v)}\n" for k, v in table.items()))
                cfg.data.source = str(drawn)
                written["data"] = str(drawn)
            config_file = out / "lab.toml"
            config_file.write_text(config_toml(cfg, "ganforge lab: `ganforge train --config`"))
            written["config"] = str(config_file)
            written["run"] = str(self._export_run(cfg, out / "run"))
            return written

    def _export_run(self, cfg: Config, path: Path) -> Path:
        run = RunFolder(path)
        run.prepare_new(overwrite=True)
        cfg.train.steps = max(self.step, 1)
        cfg.train.log_every = LOG_EVERY
        cfg.train.snapshot_every = self.snapshot_every
        run.write_config(cfg)
        for row in self.rows:
            run.append_metrics(row)
        self._keep_snapshot(None)
        g, d = nets.build(cfg.model, self.world.data.sample_shape)
        for snap in self.snaps:
            d.load_state_dict(snap.d)
            g.load_state_dict(snap.g)
            snapshots.save(run.path, snap.step, snap.g_pre, g, d)
        run.checkpoints.mkdir(exist_ok=True)
        modules = {"G": self.gan.G, "D": self.gan.D, **self.gan.switches.modules()}
        checkpoint.save(
            checkpoint.path_for(run.checkpoints, self.step),
            step=self.step,
            modules=modules,
            optimizers={"opt_g": self.gan.opt_g, "opt_d": self.gan.opt_d},
            meta={
                "model": json.loads(json.dumps(cfg.to_dict()["model"])),
                "data_shape": list(self.world.data.sample_shape),
                "world_size": 1,
                "rng_cuda_device": None,
                "best_fid": math.inf,
            },
        )
        with torch.no_grad(), evaluating(self.gan.sampler_g):
            samples_png(self.gan.sampler_g(self.z_fixed), run.sample_path(self.step))
        write_loss_plot(run, cfg)
        return run.path


def check_steps(body: Mapping[str, Any]) -> tuple[int, int, int]:
    """(steps, d, g) of a step request: ``{"steps": N}`` or ``{"d": n, "g": m}``."""
    unknown = sorted(set(body) - {"steps", "d", "g"})
    if unknown:
        raise ConfigError(
            f'unknown field {unknown[0]!r}: send {{"steps": N}} or {{"d": n, "g": m}}'
        )
    if not body:
        raise ConfigError('send {"steps": N} or {"d": n, "g": m}')
    if "steps" in body and ("d" in body or "g" in body):
        raise ConfigError('send either {"steps": N} or {"d": n, "g": m}, not both')
    values = [body.get(k, 0) for k in ("steps", "d", "g")]
    for name, n in zip(("steps", "d", "g"), values, strict=True):
        if not isinstance(n, int) or isinstance(n, bool) or not 0 <= n <= MAX_STEPS:
            raise ConfigError(f"{name}: expected a whole number from 0 to {MAX_STEPS}, got {n!r}")
    return values[0], values[1], values[2]
