"""Toy worlds: Gaussian mixtures whose density is known in closed form, and point files.

Specs accepted by ``--data`` (and ``load_dataset``), one table, ``TOYS``, for the named ones:

    ring8                 8 Gaussians on a circle of radius 2, std 0.02 (Srivastava et al. 2017)
    grid25                25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (Lin et al. 2018)
    spiral                two turns of an Archimedean spiral, Gaussian noise 0.05 (no mixture)
    gmm1d:MEANS[:STDS[:WEIGHTS]]
                          a 1-D mixture; each part a comma list, e.g. ``gmm1d:-2,2:0.5:1,3``
                          (one std or weight is shared by all components; weights are
                          normalised; default std 1, equal weights)
    mixture.toml / .json  ``weights``, ``means`` (numbers for 1-D, pairs for 2-D), ``stds``
    points.csv            one point per row, D comma-separated numbers (a header row is skipped)

A mixture spec yields ``TOY_SIZE`` points drawn with seed 0 (so every run of a spec sees the
same data; ``data.limit`` takes the first ones) and their component labels;
``mixture_of(spec)`` gives the ``Mixture`` itself, for densities and mode metrics.
"""

from __future__ import annotations

import csv
import json
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from ganforge.data.base import Dataset
from ganforge.errors import DataError

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

TOY_SIZE = 100_000  # points drawn for a mixture or spiral spec
TOY_SEED = 0  # the seed of those points: the data do not change with train.seed
GMM1D = "gmm1d:"
MIXTURE_SUFFIXES = (".toml", ".json")
POINT_SUFFIXES = (".csv",)


@dataclass(frozen=True)
class Mixture:
    """A mixture of isotropic Gaussians: p(x) = sum_k w_k N(x; mu_k, sigma_k^2 I).

    ``weights`` ``[K]`` (sum 1), ``means`` ``[K, D]`` with D = 1 or 2, ``stds`` ``[K]`` (one
    sigma per component, the same along every axis).
    """

    weights: np.ndarray
    means: np.ndarray
    stds: np.ndarray

    @staticmethod
    def of(
        weights: Sequence[float] | np.ndarray | None,
        means: Sequence[float] | Sequence[Sequence[float]] | np.ndarray,
        stds: Sequence[float] | float | np.ndarray,
        name: str = "mixture",
    ) -> Mixture:
        """A checked mixture: weights default to equal and are normalised; a single std (or
        weight) is shared by every component; 1-D means may be plain numbers."""
        try:
            mu = np.asarray(means, dtype=np.float64)
            sd = np.asarray(stds, dtype=np.float64).reshape(-1)
            w = np.ones(len(mu)) if weights is None else np.asarray(weights, dtype=np.float64)
        except (TypeError, ValueError) as e:
            raise DataError(f"{name}: weights, means and stds must be numbers ({e})") from None
        w = w.reshape(-1)
        if mu.ndim == 1:
            mu = mu[:, None]  # 1-D means: [K] -> [K, 1]
        k = len(mu)
        if mu.ndim != 2 or mu.shape[1] not in (1, 2) or k == 0:
            raise DataError(
                f"{name}: means must be K numbers (1-D) or K pairs (2-D), got shape "
                f"{list(mu.shape)}"
            )
        if len(sd) == 1:
            sd = np.full(k, sd[0])
        if len(w) == 1:
            w = np.full(k, w[0])
        if len(sd) != k or len(w) != k:
            raise DataError(
                f"{name}: {k} means but {len(sd)} stds and {len(w)} weights (give K or one)"
            )
        finite = all(np.isfinite(a).all() for a in (mu, sd, w))
        if not finite:
            raise DataError(f"{name}: weights, means and stds must be finite")
        if (sd <= 0).any():
            raise DataError(f"{name}: every std must be > 0, got {sd.tolist()}")
        if (w < 0).any() or w.sum() <= 0:
            raise DataError(f"{name}: weights must be >= 0 and not all 0, got {w.tolist()}")
        return Mixture(weights=w / w.sum(), means=mu, stds=sd)

    @property
    def dim(self) -> int:
        """D, the dimension of a point (1 or 2)."""
        return int(self.means.shape[1])

    @property
    def k(self) -> int:
        """K, the number of components (modes)."""
        return len(self.weights)

    def sample(self, n: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
        """``n`` points ``[n, D]`` float32 and their component labels ``[n]`` int64."""
        rng = np.random.default_rng(seed)
        labels = rng.choice(self.k, size=n, p=self.weights)
        noise = rng.standard_normal((n, self.dim))
        x = self.means[labels] + self.stds[labels, None] * noise  # mu_k + sigma_k * eps
        return x.astype(np.float32), labels.astype(np.int64)

    def pdf(self, x: np.ndarray) -> np.ndarray:
        """p(x) at points ``x`` ``[M, D]`` (or ``[M]`` when D = 1), as ``[M]`` float64."""
        pts = np.asarray(x, dtype=np.float64)
        if pts.ndim == 1 and self.dim == 1:
            pts = pts[:, None]
        if pts.ndim != 2 or pts.shape[1] != self.dim:
            raise ValueError(f"expected points [M, {self.dim}], got shape {list(pts.shape)}")
        d2 = ((pts[:, None, :] - self.means[None]) ** 2).sum(-1)  # [M, K] squared distances
        var = self.stds**2  # [K]
        norm = (2 * math.pi * var) ** (-self.dim / 2)  # N(.; mu, sigma^2 I) in D dimensions
        return (self.weights * norm * np.exp(-d2 / (2 * var))).sum(-1)

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready ``{"weights", "means", "stds"}`` (1-D means as plain numbers)."""
        means = self.means[:, 0].tolist() if self.dim == 1 else self.means.tolist()
        return {"weights": self.weights.tolist(), "means": means, "stds": self.stds.tolist()}


def ring(n_modes: int = 8, radius: float = 2.0, std: float = 0.02) -> Mixture:
    """``n_modes`` equal Gaussians centred at radius * (cos a_k, sin a_k), a_k = 2 pi k / n.

    k runs over 0..n-1 (``np.arange``): ``np.linspace(0, 2 pi, n)`` would put the last centre
    on top of the first and leave n - 1 modes, a bug of well-known toy code.
    """
    angles = 2 * math.pi * np.arange(n_modes) / n_modes
    means = radius * np.stack([np.cos(angles), np.sin(angles)], axis=1)
    return Mixture.of(None, means, std)


def grid(side: int = 5, spacing: float = 2.0, std: float = 0.05) -> Mixture:
    """``side``^2 equal Gaussians on a square grid centred at 0 ({-4,-2,0,2,4}^2 by default)."""
    ticks = spacing * (np.arange(side) - (side - 1) / 2)
    xs, ys = np.meshgrid(ticks, ticks, indexing="ij")
    return Mixture.of(None, np.stack([xs.ravel(), ys.ravel()], axis=1), std)


def spiral(n: int, seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """``n`` points ``[n, 2]`` near the spiral r = theta / pi, theta in [0, 4 pi] (radius <= 4).

    theta = 4 pi sqrt(u), u ~ U(0, 1): arc length grows about as theta^2, so the points spread
    evenly along the curve; each gets N(0, noise^2 I) added.
    """
    rng = np.random.default_rng(seed)
    theta = 4 * math.pi * np.sqrt(rng.uniform(size=n))
    r = theta / math.pi
    x = np.stack([r * np.cos(theta), r * np.sin(theta)], axis=1)
    return (x + noise * rng.standard_normal((n, 2))).astype(np.float32)


@dataclass(frozen=True)
class Toy:
    """A named toy world: its help line, and its mixture (None when it is not one)."""

    about: str
    mixture: Mixture | None
    points: Callable[[int, int], np.ndarray] | None = None  # (n, seed) -> [n, D], non-mixtures


# The named toy worlds: --data NAME, --help and the tests read this table.
TOYS: dict[str, Toy] = {
    "ring8": Toy("8 Gaussians on a circle of radius 2, std 0.02 (2-D points)", ring()),
    "grid25": Toy("25 Gaussians at {-4,-2,0,2,4}^2, std 0.05 (2-D points)", grid()),
    "spiral": Toy("two turns of a spiral, radius up to 4, noise 0.05 (2-D points)", None, spiral),
}

TOY_SOURCES: dict[str, str] = {
    **{name: toy.about for name, toy in TOYS.items()},
    "gmm1d:M[:S[:W]]": "a 1-D Gaussian mixture: comma lists of means, stds, weights "
    "(e.g. gmm1d:-2,2:0.5:1,3)",
}


def _numbers(text: str, what: str, spec: str) -> list[float]:
    try:
        values = [float(s) for s in text.split(",") if s.strip()]
    except ValueError:
        raise DataError(f"{spec}: {what} must be comma-separated numbers, got '{text}'") from None
    if not values:
        raise DataError(f"{spec}: no {what} given")
    return values


def parse_gmm1d(spec: str) -> Mixture:
    """The mixture of ``gmm1d:MEANS[:STDS[:WEIGHTS]]``, e.g. ``gmm1d:-2,2:0.5:1,3``."""
    body = spec.strip()[len(GMM1D) :]
    parts = body.split(":")
    if len(parts) > 3 or not parts[0].strip():
        raise DataError(
            f"{spec}: expected gmm1d:MEANS[:STDS[:WEIGHTS]], comma lists, e.g. gmm1d:-2,2:0.5:1,3"
        )
    means = _numbers(parts[0], "means", spec)
    stds = _numbers(parts[1], "stds", spec) if len(parts) > 1 else [1.0]
    weights = _numbers(parts[2], "weights", spec) if len(parts) > 2 else None
    return Mixture.of(weights, means, stds, name=spec)


def read_mixture_file(path: Path) -> Mixture:
    """The mixture in a TOML or JSON file with ``weights`` (optional), ``means`` and ``stds``."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as e:
        raise DataError(f"{path}: cannot read the mixture file ({e})") from None
    try:
        table = json.loads(text) if path.suffix.lower() == ".json" else tomllib.loads(text)
    except (json.JSONDecodeError, tomllib.TOMLDecodeError) as e:
        raise DataError(f"{path}: not valid {path.suffix[1:].upper()}: {e}") from None
    if not isinstance(table, dict):
        raise DataError(f"{path}: expected a table with weights, means and stds")
    missing = [k for k in ("means", "stds") if k not in table]
    if missing:
        raise DataError(f"{path}: missing {' and '.join(missing)} (and optional weights)")
    unknown = sorted(set(table) - {"weights", "means", "stds"})
    if unknown:
        raise DataError(f"{path}: unknown keys {unknown}; expected weights, means, stds")
    return Mixture.of(table.get("weights"), table["means"], table["stds"], name=str(path))


def read_csv_points(path: Path) -> np.ndarray:
    """Points ``[N, D]`` float32 from a CSV file: one point per row; a header row is skipped."""
    try:
        with path.open(encoding="utf-8", newline="") as f:
            rows = [r for r in csv.reader(f) if r and any(c.strip() for c in r)]
    except (OSError, UnicodeDecodeError, csv.Error) as e:
        raise DataError(f"{path}: cannot read the CSV file ({e})") from None
    if rows:
        try:
            [float(c) for c in rows[0]]
        except ValueError:
            rows = rows[1:]  # a header
    if not rows:
        raise DataError(f"{path}: no points in the file")
    width = len(rows[0])
    out = np.empty((len(rows), width), dtype=np.float64)
    for i, r in enumerate(rows):
        if len(r) != width:
            raise DataError(f"{path}: row {i + 1} has {len(r)} values, the first has {width}")
        try:
            out[i] = [float(c) for c in r]
        except ValueError:
            raise DataError(f"{path}: row {i + 1} holds a value that is not a number") from None
    if not np.isfinite(out).all():
        raise DataError(f"{path}: the points contain NaN or infinite values")
    return out.astype(np.float32)


def is_toy_spec(spec: str) -> bool:
    """Whether ``spec`` names a toy world or a mixture/CSV file (rather than another source)."""
    s = spec.strip()
    return (
        s.lower() in TOYS
        or s.lower().startswith(GMM1D)
        or Path(s).suffix.lower() in MIXTURE_SUFFIXES + POINT_SUFFIXES
    )


def mixture_of(spec: str) -> Mixture | None:
    """The ``Mixture`` behind a data spec (``ring8``, ``grid25``, ``gmm1d:...``, a .toml/.json
    mixture file), or None when the spec is no mixture (``spiral``, CSV/NumPy points, images).

    Raises ``DataError`` for a malformed gmm1d spec or mixture file.
    """
    s = spec.strip()
    if s.lower() in TOYS:
        return TOYS[s.lower()].mixture
    if s.lower().startswith(GMM1D):
        return parse_gmm1d(s)
    path = Path(s).expanduser()
    if path.suffix.lower() in MIXTURE_SUFFIXES:
        if not path.is_file():
            raise DataError(f"{path}: no such mixture file")
        return read_mixture_file(path)
    return None


def load_toy(spec: str, n: int = TOY_SIZE) -> Dataset:
    """The Dataset of a toy spec (see the module docstring): ``[n, D]`` float32 points, with
    component labels for mixtures. CSV files give all their rows."""
    s = spec.strip()
    path = Path(s).expanduser()
    if path.suffix.lower() in POINT_SUFFIXES:
        if not path.is_file():
            raise DataError(f"{path}: no such file")
        return Dataset(x=torch.from_numpy(read_csv_points(path)), name=str(path))
    toy = TOYS.get(s.lower())
    if toy is not None and toy.points is not None:
        return Dataset(x=torch.from_numpy(toy.points(n, TOY_SEED)), name=s.lower())
    mixture = mixture_of(s)
    if mixture is None:  # pragma: no cover - is_toy_spec() guards the call
        raise DataError(f"{spec}: not a toy data spec")
    x, labels = mixture.sample(n, TOY_SEED)
    return Dataset(x=torch.from_numpy(x), y=torch.from_numpy(labels), name=s)
