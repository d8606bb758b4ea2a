"""Sampling filters: keep or drop a trained G's samples by what the trained D says of them.

Discriminator Rejection Sampling (Azadi et al. 2019). D's logit D~(x) = log(D / (1 - D)) is,
for the optimal D, log p_data(x) / p_g(x): rejection sampling from p_g with acceptance
p_data / (M p_g) = exp(D~(x) - D~_M) would draw from p_data, with M the ratio's maximum. DRS
estimates D~_M as the largest logit seen (over a burn-in, raised as larger ones appear) and
accepts x with probability sigmoid(F(x)), where (eq. 8)

    F(x) = D~(x) - D~_M - log(1 - exp(D~(x) - D~_M - eps)) - gamma,

the logit of exp(D~(x) - D~_M) (eps keeps the log finite at the maximum) shifted by gamma:
gamma trades fidelity for the acceptance rate. It is set from the burn-in, as the
``percentile``-th percentile of F (gamma = 0) there: a sample at that percentile is accepted
with probability 1/2, the higher the percentile the fewer accepted.

``rejection`` is the rejection sampling DRS starts from, gamma = 0: x kept with probability
min(1, exp(D~(x) - D~_M)). With the largest logit as D~_M, one outlier makes the acceptance
vanish, so D~_M is a high quantile of the burn-in's logits instead (a burn-in long enough to
hold ten logits above it), held fixed; samples above it are always kept. It keeps the
mixture's weights where DRS's gamma skews them (docs/toy.md).

The filter is only as good as D's density ratio. The run's D was trained against a moving G
(and a packing D scores packs, not samples), so DRS as the paper does it continues training a
D on the final G, held fixed (``train.filter_steps``, train/calibrate.py). For points (1-D or
2-D data) that D is a ``RatioNet``: the data standardised, lifted by random Fourier features
(Tancik et al. 2020) so that a small MLP can draw boundaries as sharp as a mode of std 0.02,
and an MLP on top.

Pure functions of G, D and a seeded ``torch.Generator``; no run folder, no training.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import nn

from ganforge.config import SAMPLE_FILTERS
from ganforge.errors import GanforgeError
from ganforge.nets.conditional import is_conditional
from ganforge.nets.layers import PackedD

Tensor = torch.Tensor
Progress = Callable[[int, int], None]  # progress(kept so far, wanted)

EPS = 1e-6  # keeps log(1 - exp(D~ - D~_M - eps)) finite at the maximum
PERCENTILE = 95.0  # gamma: this percentile of F over the burn-in
BURN_IN = 10_000  # samples scored to estimate D~_M and gamma before any is kept
BATCH = 1000  # candidates drawn, generated and scored at once
POINT_BATCH = 10_000  # the same for points: small nets run several times faster on these
QUANTILE = 0.99995  # rejection: D~_M is this quantile of the burn-in's logits (docs/toy.md)
TAIL = 10  # rejection: the burn-in holds this many logits above the quantile (200,000 at 0.99995)


def quantile_burn_in(quantile: float) -> int:
    """The burn-in that estimates the ``quantile`` of the logits from about ``TAIL`` samples
    above it (at least ``BURN_IN``): 10,000 logits put the 0.9999 quantile at their second
    largest, and one outlier then sets D~_M."""
    if quantile >= 1.0:
        return BURN_IN
    return max(BURN_IN, round(TAIL / (1.0 - quantile)))


@dataclass(frozen=True)
class Filtered:
    """What a filter kept: ``samples`` ``[n, ...]`` in the order drawn; ``rate``, the share of
    candidates accepted after the burn-in (``accepted / candidates``); ``gamma`` and ``d_max``
    (D~_M at the end) as the filter used them."""

    samples: Tensor
    rate: float
    accepted: int
    candidates: int
    gamma: float
    d_max: float


def logits(d: nn.Module, x: Tensor) -> Tensor:
    """D~(x) per sample ``[N]`` in float64: a packing D scores each sample as a pack of copies
    of itself (``PackedD.score_each``), so that every candidate has its own logit."""
    out = d.score_each(x) if isinstance(d, PackedD) else d(x)  # [N, 1]
    return out.reshape(len(x)).double()


def drs_f(d_logits: Tensor, d_max: float, eps: float = EPS) -> Tensor:
    """F(x) + gamma = D~ - D~_M - log(1 - exp(D~ - D~_M - eps)) for logits ``[N]`` <= ``d_max``.

    log(1 - e^a) is computed as log(-expm1(a)), exact for a near 0 where 1 - e^a cancels."""
    delta = d_logits.double() - d_max
    return delta - torch.log(-torch.expm1(delta - eps))


def acceptance(d_logits: Tensor, d_max: float, gamma: float, eps: float = EPS) -> Tensor:
    """The probability ``[N]`` of keeping each sample: sigmoid(F(x))."""
    return torch.sigmoid(drs_f(d_logits, d_max, eps) - gamma)


def drs_gamma(burn_in_logits: Tensor, percentile: float = PERCENTILE, eps: float = EPS) -> float:
    """gamma: the ``percentile``-th percentile (linear interpolation, as numpy's) of F over the
    burn-in's logits, with D~_M their maximum."""
    d_max = float(burn_in_logits.max())
    return float(torch.quantile(drs_f(burn_in_logits, d_max, eps), percentile / 100.0))


def _draw(g: nn.Module, k: int, gen: torch.Generator, device: str) -> Tensor:
    """``k`` candidates G(z), z ~ N(0, I) from ``gen`` (on the CPU, then moved)."""
    z = torch.randn(k, int(g.latent_dim), generator=gen).to(device)  # type: ignore[arg-type]
    return g(z)


@torch.no_grad()
def drs(
    g: nn.Module,
    d: nn.Module,
    n: int,
    seed: int = 0,
    percentile: float = PERCENTILE,
    burn_in: int = BURN_IN,
    batch: int = BATCH,
    eps: float = EPS,
    max_candidates: int | None = None,
    device: str = "cpu",
    allow_fewer: bool = False,
    progress: Progress | None = None,
) -> Filtered:
    """Exactly ``n`` samples of G kept by Discriminator Rejection Sampling with D.

    Draws from ``torch.Generator().manual_seed(seed)`` alone, in this order: the burn-in's z in
    batches of ``batch`` (its samples only estimate D~_M and gamma; none is kept); then per
    batch of candidates, z ``[batch, latent]`` and u ~ U[0, 1) ``[batch]``; a candidate is kept
    when u < sigmoid(F(x)), D~_M first raised to the batch's largest logit. G and D run in eval
    mode (restored afterwards). Refuses a conditional G or D, and stops with one line once
    ``max_candidates`` (100 n + the burn-in unless given) are drawn without n kept (or, with
    ``allow_fewer``, returns the fewer kept so far). ``progress(kept, n)`` is called after
    each batch of candidates.
    """
    if not (0.0 <= percentile <= 100.0) or burn_in <= 0 or batch <= 0:
        raise GanforgeError("drs: percentile in [0, 100], burn_in and batch > 0")
    return _filter(
        "drs",
        g,
        d,
        n,
        seed,
        burn_in,
        batch,
        max_candidates if max_candidates is not None else 100 * n + burn_in,
        device,
        start=lambda burn: (float(burn.max()), drs_gamma(burn, percentile, eps)),
        accept=lambda lx, d_max, gamma: acceptance(lx, d_max, gamma, eps),
        rises=True,
        hint="lower the percentile",
        allow_fewer=allow_fewer,
        progress=progress,
    )


@torch.no_grad()
def rejection(
    g: nn.Module,
    d: nn.Module,
    n: int,
    seed: int = 0,
    quantile: float = QUANTILE,
    burn_in: int | None = None,
    batch: int = BATCH,
    max_candidates: int | None = None,
    device: str = "cpu",
    allow_fewer: bool = False,
    progress: Progress | None = None,
) -> Filtered:
    """Exactly ``n`` samples of G kept by plain rejection sampling on D's density ratio: x is
    kept with probability min(1, exp(D~(x) - D~_M)), D~_M the ``quantile`` of the burn-in's
    logits (``burn_in`` of them, by default ``quantile_burn_in(quantile)``), held fixed (gamma
    = 0 in DRS's terms). For the optimal D this draws from p_data wherever p_data / p_g <=
    exp(D~_M), and from p_g, scaled, where the ratio is larger. Its acceptance rate is low
    (about 1 / exp(D~_M)), which costs little for points.

    Draws as ``drs`` does; ``max_candidates`` defaults to 10,000 n + the burn-in (an
    acceptance down to 0.01 %).
    """
    if burn_in is None:
        burn_in = quantile_burn_in(quantile) if 0.0 < quantile <= 1.0 else BURN_IN
    if not (0.0 < quantile <= 1.0) or burn_in <= 0 or batch <= 0:
        raise GanforgeError("rejection: quantile in (0, 1], burn_in and batch > 0")
    return _filter(
        "rejection",
        g,
        d,
        n,
        seed,
        burn_in,
        batch,
        max_candidates if max_candidates is not None else 10_000 * n + burn_in,
        device,
        start=lambda burn: (float(torch.quantile(burn, quantile)), 0.0),
        accept=lambda lx, d_max, _gamma: torch.exp((lx - d_max).clamp(max=0.0)),
        rises=False,
        hint="try --filter drs, or none",
        allow_fewer=allow_fewer,
        progress=progress,
    )


def _filter(
    name: str,
    g: nn.Module,
    d: nn.Module,
    n: int,
    seed: int,
    burn_in: int,
    batch: int,
    limit: int,
    device: str,
    start: Callable[[Tensor], tuple[float, float]],
    accept: Callable[[Tensor, float, float], Tensor],
    rises: bool,
    hint: str,
    allow_fewer: bool = False,
    progress: Progress | None = None,
) -> Filtered:
    """The loop of both filters: D~_M and gamma from the burn-in (``start``), then candidates
    kept with the probabilities ``accept`` gives, D~_M raised to each batch's largest logit
    when ``rises``."""
    if n <= 0:
        raise GanforgeError(f"--n must be a positive number of samples, got {n}")
    if is_conditional(g) or is_conditional(d):
        raise GanforgeError(f"--filter {name} works with unconditional runs only (model.cond=none)")
    modes = g.training, d.training
    g.eval()
    d.eval()
    try:
        gen = torch.Generator().manual_seed(seed)
        burn = torch.cat(
            [
                logits(d, _draw(g, min(batch, burn_in - i), gen, device))
                for i in range(0, burn_in, batch)
            ]
        )
        d_max, gamma = start(burn)
        kept: list[Tensor] = []
        accepted = candidates = 0
        while accepted < n:
            if candidates >= limit:
                if allow_fewer:
                    break
                raise GanforgeError(
                    f"{name} kept {accepted} of {n} samples in {candidates} candidates "
                    f"(acceptance {accepted / candidates:.2%}); {hint}"
                )
            x = _draw(g, batch, gen, device)
            u = torch.rand(batch, generator=gen, dtype=torch.float64)
            lx = logits(d, x)
            if rises:
                d_max = max(d_max, float(lx.max()))
            keep = (u < accept(lx, d_max, gamma).cpu()).to(x.device)
            kept.append(x[keep].cpu())
            accepted += int(keep.sum())
            candidates += batch
            if progress is not None:
                progress(min(accepted, n), n)
    finally:
        g.train(modes[0])
        d.train(modes[1])
    rate = accepted / candidates if candidates else 0.0
    samples = torch.cat(kept)[:n] if kept else torch.empty(0)
    return Filtered(samples, rate, accepted, candidates, gamma, d_max)


RATIO_FEATURES = 128  # random frequencies of a RatioNet (a sine and a cosine of each)
RATIO_SIGMA = 10.0  # their standard deviation, per unit of the data's standard deviation
RATIO_HIDDEN = (256, 256)  # the MLP on the features, LeakyReLU(0.2)


class RatioNet(nn.Module):
    """A discriminator for flat points ``[N, dim]``: logit = MLP([sin(u B), cos(u B)]) with
    u = (x - shift) / scale, B ``[dim, RATIO_FEATURES]`` drawn once from N(0, RATIO_SIGMA^2);
    B and the MLP's first weights come from ``seed`` alone. ``shift`` (the data's mean) and
    ``scale`` (its standard deviation over every coordinate) are buffers set by
    ``standardise``: saved with the weights, so the net scores points in the data's units."""

    shift: Tensor
    scale: Tensor
    freq: Tensor

    def __init__(self, dim: int, seed: int = 0, hidden: tuple[int, ...] = RATIO_HIDDEN) -> None:
        super().__init__()
        self.register_buffer("shift", torch.zeros(dim))
        self.register_buffer("scale", torch.ones(()))
        layers: list[nn.Module] = []
        width = 2 * RATIO_FEATURES
        with torch.random.fork_rng(devices=[]):  # from ``seed`` alone; the global RNG untouched
            torch.manual_seed(seed)
            self.register_buffer("freq", torch.randn(dim, RATIO_FEATURES) * RATIO_SIGMA)
            for h in hidden:
                layers += [nn.Linear(width, h), nn.LeakyReLU(0.2)]
                width = h
            self.mlp = nn.Sequential(*layers, nn.Linear(width, 1))

    @torch.no_grad()
    def standardise(self, x: Tensor) -> None:
        """Set ``shift`` and ``scale`` from data ``x`` ``[N, dim]`` (a scale of 0 becomes 1)."""
        x = x.flatten(1).to(self.shift)
        self.shift.copy_(x.mean(0))
        sd = (x - self.shift).square().mean().sqrt()
        self.scale.copy_(torch.where(sd > 0, sd, torch.ones_like(sd)))

    def forward(self, x: Tensor) -> Tensor:
        u = ((x.flatten(1) - self.shift) / self.scale) @ self.freq  # [N, RATIO_FEATURES]
        return self.mlp(torch.cat([torch.sin(u), torch.cos(u)], dim=1))  # [N, 1]


class RatioMean(nn.Module):
    """Several ``RatioNet``s fitted apart (``train.filter_nets``): the mean of their logits, a
    density-ratio estimate that varies less from one fit to the next than any one of them."""

    def __init__(self, nets: list[RatioNet]) -> None:
        super().__init__()
        self.nets = nn.ModuleList(nets)

    @classmethod
    def members_in(cls, state: dict[str, Tensor]) -> int:
        """How many nets a saved ``RatioMean`` holds (0: the state is a lone ``RatioNet``'s)."""
        found = {int(k.split(".")[1]) for k in state if k.startswith("nets.")}
        return max(found) + 1 if found else 0

    def forward(self, x: Tensor) -> Tensor:
        return torch.stack([net(x) for net in self.nets]).mean(0)


# The filters of ``ganforge sample --filter`` besides "none" (names: config.SAMPLE_FILTERS).
FILTERS: dict[str, Callable[..., Filtered]] = {"drs": drs, "rejection": rejection}
assert tuple(FILTERS) == SAMPLE_FILTERS
