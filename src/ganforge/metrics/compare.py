"""Evaluate samples against real data: every figure with a bootstrap interval, the score of
real data itself (the floor) and the sample sizes.

Protocol. From the real set, shuffled with ``seed``, two disjoint sets of n images are drawn:
R_a, the reference, and R_b. Every metric is computed for (R_a, fakes), the value, and for
(R_a, R_b), the floor: what real data scores against the reference with the same n. A value
near its floor is as good as the metric can tell at that sample size.

Intervals. B bootstrap resamples draw n indices with replacement from R_a and from the fakes
and recompute the metric: FID on the resampled features; KID as the unbiased U-statistic of
the whole weighted sets (``fid.kid_weighted``, copies of one point are never paired);
precision, recall, density, coverage and the class figures as means of the per-sample values
of the drawn points, the k-NN balls of the whole sets kept fixed (their interval is the
uncertainty of the averaging, not of the balls). The interval is the spread of the replicates
about their median, placed about the value:

    (value - (q50 - q2.5), value + (q97.5 - q50)),

not the percentiles themselves: a resample holds about 63 % distinct points, which raises FID,
so FID's replicates sit above the value and their percentiles may not even contain it. Finite
samples bias FID upwards at any n; the floor, measured at the same n, shows by how much.

The result is a plain dict (written as ``eval.json`` by ``ganforge eval``):
``{"metrics": {name: {"value", "ci_low", "ci_high", "floor", "n"}}, ...}``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from ganforge.data.toy import Mixture
from ganforge.metrics.features import MnistNet, extract
from ganforge.metrics.fid import FID, fid, kid, kid_weighted
from ganforge.metrics.modes import mode_metrics
from ganforge.metrics.prdc import per_sample, prdc
from ganforge.metrics.score import classifier_score, histogram, kl_divergence, stacked_modes

BOOTSTRAP = 100  # resamples behind each interval
LEVEL = 0.95
DEFAULT_N = 5000  # samples evaluated, when the real set holds twice as many
MIN_N = 10  # k-NN balls (k = 5) need a few more points than k
PER_CLASS_REAL = 20_000  # conditional runs: labelled real images the per-class sets come from


@dataclass(frozen=True)
class MetricInfo:
    about: str
    higher_is_better: bool


# The table of reported metrics, in the order they are printed.
METRICS: dict[str, MetricInfo] = {
    "fid": MetricInfo("Frechet distance of features (Heusel et al. 2017)", False),
    "kid": MetricInfo("kernel MMD^2 of features, unbiased (Binkowski et al. 2018)", False),
    "precision": MetricInfo("fakes inside the real k=3 manifold (Kynkaanniemi 2019)", True),
    "recall": MetricInfo("reals inside the fake k=3 manifold (Kynkaanniemi 2019)", True),
    "density": MetricInfo("real k=5 balls per fake, / k (Naeem et al. 2020)", True),
    "coverage": MetricInfo("real k=5 balls holding a fake (Naeem et al. 2020)", True),
    "classifier_score": MetricInfo("Inception Score with the feature net's classifier", True),
    "class_kl": MetricInfo("KL(class histogram of samples || of R_a)", False),
    "classes_covered": MetricInfo("classes given to at least one sample", True),
    "modes": MetricInfo("Stacked MNIST modes covered, of 1000 (Metz et al. 2017)", True),
    "mode_kl": MetricInfo("KL(Stacked MNIST modes || uniform)", False),
    "modes_captured": MetricInfo("mixture modes holding >= 1/5 of their share (Lin 2018)", True),
    "high_quality": MetricInfo("samples within 3 std of their nearest mixture mode", True),
    "mixture_kl": MetricInfo("KL(high-quality mode histogram || mixture weights)", False),
}
# metrics.modes.mode_metrics' names -> ours
_TOY_NAMES = {"modes": "modes_captured", "hq_share": "high_quality", "kl": "mixture_kl"}


def figure(
    value: float,
    replicates: torch.Tensor | None,
    floor: float | None,
    n: int,
) -> dict[str, Any]:
    """One metric's entry: value, 95 % bootstrap interval, real floor, sample size."""
    lo = hi = None
    if replicates is not None and len(replicates):
        a = (1 - LEVEL) / 2
        probs = torch.tensor([a, 0.5, 1 - a], dtype=torch.float64)
        reps = replicates.double()
        finite = bool(torch.isfinite(reps).all())
        # linear interpolation between two infinite replicates would give NaN
        how = "linear" if finite else "nearest"
        q_lo, q_mid, q_hi = torch.quantile(reps, probs, interpolation=how).tolist()
        if all(math.isfinite(v) for v in (value, q_lo, q_mid, q_hi)):
            lo, hi = value - (q_mid - q_lo), value + (q_hi - q_mid)
        else:  # an infinite KL (a class the reference lacks): the percentiles, and the value
            lo, hi = min(q_lo, value), max(q_hi, value)
    return {"value": value, "ci_low": lo, "ci_high": hi, "floor": floor, "n": n}


def _resample_means(values: torch.Tensor, idx: torch.Tensor) -> torch.Tensor:
    """Means of ``values`` ``[N]`` over each row of indices ``idx`` ``[B, N]``: ``[B]``."""
    return values.double()[idx].mean(1)


def _boot(stat: Callable[[torch.Tensor], float], idx: torch.Tensor) -> torch.Tensor:
    """``stat(indices)`` for each bootstrap row of ``idx`` ``[B, n]``: ``[B]``."""
    return torch.tensor([stat(row) for row in idx], dtype=torch.float64)


@dataclass
class Sets:
    """Features (and class probabilities, if any) of the reference R_a, of R_b and of fakes."""

    ref: torch.Tensor  # [n, D]
    other: torch.Tensor  # [n, D] R_b, disjoint from ref
    fake: torch.Tensor  # [n, D]
    ref_probs: torch.Tensor | None = None  # [n, K]
    other_probs: torch.Tensor | None = None
    fake_probs: torch.Tensor | None = None
    ref_modes: torch.Tensor | None = None  # [n] Stacked MNIST modes, 0..999
    other_modes: torch.Tensor | None = None
    fake_modes: torch.Tensor | None = None


def compare(sets: Sets, bootstrap: int = BOOTSTRAP, seed: int = 0) -> dict[str, dict[str, Any]]:
    """Every metric that ``sets`` allow, with intervals and floors (see the module docstring)."""
    n = len(sets.fake)
    if len(sets.ref) != n or len(sets.other) != n:
        raise ValueError("R_a, R_b and the fakes must have the same size")
    gen = torch.Generator().manual_seed(seed)
    i_ref = torch.randint(0, n, (bootstrap, n), generator=gen)  # [B, n]
    i_fake = torch.randint(0, n, (bootstrap, n), generator=gen)
    out: dict[str, dict[str, Any]] = {}

    f = FID(sets.ref.shape[1])
    fid_boot = torch.tensor(
        [f(sets.ref[a], sets.fake[b]) for a, b in zip(i_ref, i_fake, strict=True)]
    )
    out["fid"] = figure(f(sets.ref, sets.fake), fid_boot, f(sets.ref, sets.other), n)

    kid_mean, kid_std = kid(sets.ref, sets.fake, seed=seed)
    counts_ref = torch.zeros(bootstrap, n).scatter_add_(1, i_ref, torch.ones(bootstrap, n))
    counts_fake = torch.zeros(bootstrap, n).scatter_add_(1, i_fake, torch.ones(bootstrap, n))
    kid_boot = kid_weighted(sets.ref, sets.fake, counts_ref, counts_fake)
    out["kid"] = figure(kid_mean, kid_boot, kid(sets.ref, sets.other, seed=seed)[0], n)
    out["kid"]["std"] = kid_std  # over torchmetrics' subsets

    ps = per_sample(sets.ref, sets.fake)
    floor = per_sample(sets.ref, sets.other).means()
    for name, values, idx in (
        ("precision", ps.precision, i_fake),
        ("recall", ps.recall, i_ref),
        ("density", ps.density, i_fake),
        ("coverage", ps.coverage, i_ref),
    ):
        out[name] = figure(float(values.mean()), _resample_means(values, idx), floor[name], n)

    if sets.fake_probs is not None and sets.ref_probs is not None and sets.other_probs is not None:
        out |= _class_figures(sets.ref_probs, sets.other_probs, sets.fake_probs, i_fake)
    if sets.fake_modes is not None and sets.other_modes is not None:
        out |= _mode_figures(sets.other_modes, sets.fake_modes, i_fake)
    return out


def _class_figures(
    ref: torch.Tensor, other: torch.Tensor, fake: torch.Tensor, idx: torch.Tensor
) -> dict[str, dict[str, Any]]:
    """Classifier score, class KL to R_a's predicted histogram, classes covered."""
    n, k = fake.shape
    p = histogram(ref.argmax(1), k)
    labels = fake.argmax(1)

    def kl(lab: torch.Tensor) -> float:
        return kl_divergence(histogram(lab, k), p)

    def covered(lab: torch.Tensor) -> float:
        return float((torch.bincount(lab, minlength=k) > 0).sum())

    return {
        "classifier_score": figure(
            classifier_score(fake),
            _boot(lambda r: classifier_score(fake[r]), idx),
            classifier_score(other),
            n,
        ),
        "class_kl": figure(kl(labels), _boot(lambda r: kl(labels[r]), idx), kl(other.argmax(1)), n),
        "classes_covered": figure(
            covered(labels), _boot(lambda r: covered(labels[r]), idx), covered(other.argmax(1)), n
        ),
    }


def _mode_figures(
    other: torch.Tensor, fake: torch.Tensor, idx: torch.Tensor
) -> dict[str, dict[str, Any]]:
    """Stacked MNIST: modes covered out of 1000 and KL to uniform (Lin et al. 2018's protocol)."""
    n = len(fake)
    uniform = torch.full((1000,), 1e-3, dtype=torch.float64)

    def modes(m: torch.Tensor) -> float:
        return float((torch.bincount(m, minlength=1000) > 0).sum())

    def kl(m: torch.Tensor) -> float:
        return kl_divergence(histogram(m, 1000), uniform)

    return {
        "modes": figure(modes(fake), _boot(lambda r: modes(fake[r]), idx), modes(other), n),
        "mode_kl": figure(kl(fake), _boot(lambda r: kl(fake[r]), idx), kl(other), n),
    }


def features_of(
    net: nn.Module, x: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor | None, torch.Tensor | None]:
    """(features, class probabilities or None, Stacked MNIST modes or None) of images ``x``.

    Three-channel images seen by the shipped one-channel MNIST network are Stacked MNIST: each
    channel goes through the network alone; the features are the three channels' features side
    by side ``[N, 3 * 128]``, the mode is the three predicted digits (R G B) as 0..999.
    """
    if isinstance(net, MnistNet):
        MnistNet.check(tuple(x.shape[1:]))
    if isinstance(net, MnistNet) and x.shape[1] == 3:
        parts = [extract(net, x[:, c : c + 1]) for c in range(3)]
        feats = torch.cat([p[0] for p in parts], dim=1)
        digits = torch.stack([p[1].argmax(1) for p in parts if p[1] is not None], dim=1)
        return feats, None, stacked_modes(digits)
    feats, probs = extract(net, x)
    return feats, probs, None


def build_sets(net: nn.Module, real: torch.Tensor, fake: torch.Tensor) -> Sets:
    """Run ``net`` on ``real`` ``[2n, ...]`` (its first n: R_a, the next n: R_b) and ``fake``
    ``[n, ...]``, both in data space."""
    n = len(fake)
    if len(real) < 2 * n:
        raise ValueError(f"{n} samples need {2 * n} real ones (two disjoint sets); got {len(real)}")
    fr, pr, mr = features_of(net, real[: 2 * n])
    ff, pf, mf = features_of(net, fake)
    return Sets(
        ref=fr[:n],
        other=fr[n:],
        fake=ff,
        ref_probs=None if pr is None else pr[:n],
        other_probs=None if pr is None else pr[n:],
        fake_probs=pf,
        ref_modes=None if mr is None else mr[:n],
        other_modes=None if mr is None else mr[n:],
        fake_modes=mf,
    )


def evaluate_images(
    net: nn.Module,
    real: torch.Tensor,
    fake: torch.Tensor,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
) -> dict[str, dict[str, Any]]:
    """Metrics of ``fake`` ``[n, ...]`` against ``real`` ``[2n, ...]`` (see ``build_sets``)."""
    return compare(build_sets(net, real, fake), bootstrap, seed)


class Points(nn.Module):
    """Points are their own features (FID, KID, precision... in the data space)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x


def toy_figures(
    mixture: Mixture, other: torch.Tensor, fake: torch.Tensor, bootstrap: int, seed: int
) -> dict[str, dict[str, Any]]:
    """Mode figures of samples of a known Gaussian mixture (``metrics.modes``), with the floor
    from the real set R_b ``other``."""
    n = len(fake)
    idx = torch.randint(0, n, (bootstrap, n), generator=torch.Generator().manual_seed(seed))
    value, floor = mode_metrics(fake, mixture), mode_metrics(other, mixture)
    reps = [mode_metrics(fake[row], mixture) for row in idx]
    return {
        ours: figure(
            float(value[theirs]),
            torch.tensor([float(r[theirs]) for r in reps], dtype=torch.float64),
            float(floor[theirs]),
            n,
        )
        for theirs, ours in _TOY_NAMES.items()
    }


def class_figures(
    c: int, f_real: torch.Tensor, f_fake: torch.Tensor, p_fake: torch.Tensor | None
) -> dict[str, float | None]:
    """The figures of class ``c`` from features of its real images ``f_real`` ``[M, D]`` and of
    samples asked to be ``c`` ``f_fake`` ``[N, D]``, with the classifier's probabilities on the
    samples ``p_fake`` ``[N, K]`` (None: the network has no logits, accuracy is None):

    - accuracy: the share of samples the classifier assigns to c (does G obey the label?);
    - recall and precision (Kynkaanniemi et al. 2019, k = 3) within the class: does G cover
      the class's variety (recall), are its samples like the class's images (precision)?
    - fid: intra-class FID; fid_floor: the FID between the two halves of ``f_real``.
    """
    half = len(f_real) // 2
    pr = prdc(f_real, f_fake)
    accuracy = None if p_fake is None else float((p_fake.argmax(1) == c).double().mean())
    return {
        "label": c,
        "accuracy": accuracy,
        "recall": pr["recall"],
        "precision": pr["precision"],
        "fid": fid(f_real, f_fake),
        "fid_floor": fid(f_real[:half], f_real[half:]),
    }
