"""Discriminator Rejection Sampling against numpy by hand, on a G and a D known in closed form."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from conftest import TINY
from ganforge import config as cfglib
from ganforge import runs
from ganforge.cli import main
from ganforge.config import CHOICES, SAMPLE_FILTERS
from ganforge.data import from_config, mixture_of
from ganforge.errors import GanforgeError
from ganforge.evaluation import evaluate_run
from ganforge.metrics.modes import mode_metrics
from ganforge.nets.filters import (
    BATCH,
    BURN_IN,
    EPS,
    FILTERS,
    PERCENTILE,
    POINT_BATCH,
    QUANTILE,
    RATIO_FEATURES,
    RatioMean,
    RatioNet,
    acceptance,
    drs,
    drs_f,
    drs_gamma,
    logits,
    quantile_burn_in,
    rejection,
)
from ganforge.nets.layers import PackedD
from ganforge.train import calibrate


class _Identity(nn.Module):
    """G(z) = z: the candidates are the latent draws themselves, z ~ N(0, 1) in 1-D."""

    latent_dim = 1

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z.clone()


class _Quadratic(nn.Module):
    """D~(x) = a - x^2 / 2: its logit in closed form, largest at 0."""

    def __init__(self, a: float = 1.0) -> None:
        super().__init__()
        self.a = a

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.a - x.flatten(1).square().sum(1, keepdim=True) / 2  # [N, 1]


def _np_f(lg: np.ndarray, m: float, gamma: float, eps: float = 1e-6) -> np.ndarray:
    """F(x) of Azadi et al. (2019), eq. 8, written out in numpy."""
    return lg - m - np.log(1 - np.exp(lg - m - eps)) - gamma


def test_acceptance_probabilities_by_hand():
    lg = np.array([0.3, -1.0, 2.0, 1.999, -8.0])
    m, gamma = 2.0, 1.5
    p = 1 / (1 + np.exp(-_np_f(lg, m, gamma)))
    assert_close(acceptance(torch.tensor(lg), m, gamma).numpy(), p, rtol=1e-9, atol=0)
    # at the maximum: F = -log(1 - e^-eps) - gamma ~ log(1e6) - gamma, nearly sure to be kept
    assert_close(drs_f(torch.tensor([m]), m).item(), -math.log(-math.expm1(-EPS)))
    assert acceptance(torch.tensor([m]), m, 0.0).item() > 1 - 1e-5
    # far below it: F ~ D~ - D~_M - gamma, acceptance ~ the density ratio e^(D~ - D~_M) / e^gamma
    assert_close(
        acceptance(torch.tensor([m - 12.0]), m, 0.0).item(), math.exp(-12.0), rtol=1e-4, atol=0
    )


def test_gamma_is_the_percentile_of_f_over_the_burn_in():
    lg = np.random.default_rng(0).normal(size=257)
    expected = np.percentile(_np_f(lg, lg.max(), 0.0), 95.0)  # linear interpolation
    assert PERCENTILE == 95.0
    assert drs_gamma(torch.tensor(lg)) == pytest.approx(expected, rel=1e-12)
    assert drs_gamma(torch.tensor(lg), 50.0) == pytest.approx(
        np.median(_np_f(lg, lg.max(), 0.0)), rel=1e-12
    )


def _by_hand(n: int, seed: int, burn_in: int, batch: int, percentile: float, a: float = 1.0):
    """The algorithm replayed in numpy on the same draws: burn-in batches of z, then per batch
    z and u; D~_M raised to each batch's maximum before its probabilities."""
    gen = torch.Generator().manual_seed(seed)
    burn = np.concatenate(
        [
            torch.randn(min(batch, burn_in - i), 1, generator=gen).numpy()[:, 0]
            for i in range(0, burn_in, batch)
        ]
    )
    # D~ as D computes it, in float32 (each operation exact as in torch), then in float64
    lg_burn = (np.float32(a) - burn**2 / np.float32(2)).astype(np.float64)
    m = lg_burn.max()
    gamma = np.percentile(_np_f(lg_burn, m, 0.0), percentile)
    kept, probs, drawn = [], [], 0
    while len(kept) < n:
        z = torch.randn(batch, 1, generator=gen).numpy()[:, 0]
        u = torch.rand(batch, generator=gen, dtype=torch.float64).numpy()
        lg = (np.float32(a) - z**2 / np.float32(2)).astype(np.float64)
        m = max(m, lg.max())
        p = 1 / (1 + np.exp(-_np_f(lg, m, gamma)))
        kept += list(z[u < p])
        probs += list(p)
        drawn += batch
    return np.array(kept[:n]), len(kept) / drawn, gamma, np.array(probs)


def test_drs_keeps_exactly_the_samples_numpy_keeps():
    out = drs(_Identity(), _Quadratic(), 37, seed=3, burn_in=200, batch=16, percentile=80.0)
    kept, rate, gamma, probs = _by_hand(37, 3, 200, 16, 80.0)
    assert out.samples.shape == (37, 1)
    assert_close(out.samples[:, 0].numpy(), kept)
    assert out.rate == pytest.approx(rate) and out.gamma == pytest.approx(gamma, rel=1e-12)
    assert out.candidates % 16 == 0 and out.accepted >= 37
    # the filter favours D's high logits: kept samples sit nearer 0 than the candidates
    assert np.mean(kept**2) < 0.7
    assert 0 < probs.min() < probs.max() < 1


def test_rejection_keeps_exactly_the_samples_numpy_keeps_with_a_fixed_quantile_maximum():
    """min(1, exp(D~ - D~_M)), D~_M the burn-in logits' 0.9 quantile (numpy's linear one),
    never raised: the logits above it are kept for sure."""
    gen = torch.Generator().manual_seed(5)
    burn = np.concatenate([torch.randn(16, 1, generator=gen).numpy()[:, 0] for _ in range(4)])
    m = np.quantile((np.float32(1) - burn**2 / np.float32(2)).astype(np.float64), 0.9)
    kept, drawn, sure = [], 0, 0
    while len(kept) < 29:
        z = torch.randn(16, 1, generator=gen).numpy()[:, 0]
        u = torch.rand(16, generator=gen, dtype=torch.float64).numpy()
        lg = (np.float32(1) - z**2 / np.float32(2)).astype(np.float64)
        p = np.exp(np.minimum(lg - m, 0.0))
        sure += int((p == 1).sum())
        kept += list(z[u < p])
        drawn += 16
    out = rejection(_Identity(), _Quadratic(), 29, seed=5, quantile=0.9, burn_in=64, batch=16)
    assert_close(out.samples[:, 0].numpy(), np.array(kept[:29]))
    assert out.d_max == pytest.approx(m, rel=1e-12) and out.gamma == 0.0
    assert out.candidates == drawn and out.rate == pytest.approx(len(kept) / drawn)
    assert sure > 0  # some candidates lay above D~_M: kept with probability 1, not more
    assert QUANTILE == 0.99995 and quantile_burn_in(QUANTILE) == 200_000
    assert quantile_burn_in(0.999) == 10_000 and quantile_burn_in(0.99999) == 1_000_000
    assert quantile_burn_in(0.9) == BURN_IN and quantile_burn_in(1.0) == BURN_IN
    with pytest.raises(GanforgeError, match=r"kept \d+ of 500 samples in 16 .*; try --filter drs"):
        rejection(_Identity(), _Quadratic(), 500, burn_in=16, batch=16, max_candidates=16)


@pytest.mark.parametrize("n", [1, 16, 50])
def test_exactly_n_samples_come_back(n):
    out = drs(_Identity(), _Quadratic(), n, seed=0, burn_in=64, batch=16)
    assert out.samples.shape == (n, 1) and 0 < out.rate <= 1


def test_progress_hears_the_kept_count_after_every_batch():
    """A constant logit under rejection: every candidate kept (exp(0) = 1), 16 a batch."""

    class _Flat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(len(x), 1)

    calls: list[tuple[int, int]] = []
    out = rejection(
        _Identity(), _Flat(), 40, burn_in=16, batch=16, progress=lambda *a: calls.append(a)
    )
    assert calls == [(16, 40), (32, 40), (40, 40)] and out.accepted == 48


def test_reproducible_with_the_seed_and_no_global_rng():
    torch.manual_seed(123)
    state = torch.get_rng_state()
    a = drs(_Identity(), _Quadratic(), 20, seed=7, burn_in=100, batch=32)
    assert torch.equal(torch.get_rng_state(), state)  # the global generator is untouched
    torch.manual_seed(999)
    b = drs(_Identity(), _Quadratic(), 20, seed=7, burn_in=100, batch=32)
    c = drs(_Identity(), _Quadratic(), 20, seed=8, burn_in=100, batch=32)
    assert torch.equal(a.samples, b.samples) and a.rate == b.rate
    assert not torch.equal(a.samples, c.samples)


def test_an_indifferent_d_keeps_half_the_samples():
    """A constant logit: every F equals gamma, so every candidate is kept with probability 1/2."""

    class _Flat(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.zeros(len(x), 1)

    out = drs(_Identity(), _Flat(), 1000, seed=1, burn_in=64, batch=500)
    assert_close(
        acceptance(torch.zeros(3), 0.0, out.gamma), torch.full((3,), 0.5, dtype=torch.float64)
    )
    assert abs(out.rate - 0.5) < 0.05  # 2,000 or more candidates: 0.5 +- 0.011 (1 sd)


def test_d_max_rises_when_a_larger_logit_appears():
    """A burn-in far from D's peak: the candidates' larger logits raise D~_M."""

    class _Far(nn.Module):
        latent_dim = 1

        def __init__(self) -> None:
            super().__init__()
            self.calls = 0

        def forward(self, z: torch.Tensor) -> torch.Tensor:
            self.calls += 1
            return z + (5.0 if self.calls == 1 else 0.0)  # the burn-in (one batch) at x ~ 5

    out = drs(_Far(), _Quadratic(), 5, seed=0, burn_in=16, batch=16)
    assert out.d_max > 1.0 - 0.5 * 2.0**2  # a logit of a candidate within 2 of 0


def test_a_packing_d_scores_each_sample_as_a_pack_of_copies():
    class _Inner(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:  # a pack [N, 3]: mean minus spread
            return x.mean(1, keepdim=True) - x.std(1, keepdim=True)

    d = PackedD(_Inner(), 3)
    x = torch.tensor([[1.0], [-2.0], [0.5], [4.0]])  # 4 samples: not a multiple of the pack
    assert_close(logits(d, x), torch.tensor([1.0, -2.0, 0.5, 4.0], dtype=torch.float64))
    out = drs(_Identity(), d, 10, seed=0, burn_in=30, batch=10)
    assert out.samples.shape == (10, 1)


def test_conditional_runs_and_bad_parameters_are_refused_in_one_line():
    g = _Identity()
    g.num_classes = 10
    with pytest.raises(GanforgeError, match="unconditional runs only"):
        drs(g, _Quadratic(), 4)
    with pytest.raises(GanforgeError, match="positive number"):
        drs(_Identity(), _Quadratic(), 0)
    with pytest.raises(GanforgeError, match=r"kept 0 of 4 samples in 32 candidates"):
        # a D that rejects all but its burn-in's best: an acceptance near 0
        drs(_Identity(), _Quadratic(), 4, burn_in=16, batch=16, percentile=100.0, max_candidates=32)


def test_the_table_and_the_config_agree():
    assert tuple(FILTERS) == SAMPLE_FILTERS
    assert CHOICES["train.sample_filter"] == ("none", "drs", "rejection")


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory):
    """A 5-step run of the tiny course model, and one whose config asks for drs."""
    root = tmp_path_factory.mktemp("runs")
    for name, extra in (("plain", []), ("drs", ["train.sample_filter=drs"])):
        assert (
            main(["train", "--out", str(root / name), "--steps", "5", "--quiet", *TINY, *extra])
            == 0
        )
    return root


def test_sample_filter_none_is_todays_sample_bit_for_bit(cli, tiny_run, tmp_path):
    run = tiny_run / "plain"
    assert cli("sample", run, "--n", "10", "--seed", "4", "--out", tmp_path / "a.npy")[0] == 0
    code, out, err = cli(
        "sample", run, "--n", "10", "--seed", "4", "--out", tmp_path / "b.npy", "--filter", "none"
    )
    assert code == 0 and err == "" and out == f"wrote 10 samples to {tmp_path / 'b.npy'}\n"
    a, b = np.load(tmp_path / "a.npy"), np.load(tmp_path / "b.npy")
    assert np.array_equal(a, b) and a.tobytes() == b.tobytes()
    assert np.array_equal(a, runs.sample(run, 10, seed=4).numpy())


def test_sample_filter_drs_writes_n_samples_and_its_acceptance_rate(cli, tiny_run, tmp_path):
    run = tiny_run / "plain"
    code, out, err = cli("sample", run, "--n", "12", "--out", tmp_path / "d.npy", "--filter", "drs")
    assert code == 0, err
    x = np.load(tmp_path / "d.npy")
    assert x.shape == (12, 1, 28, 28)
    kept = runs.sample_filtered(run, 12, "drs")
    assert np.array_equal(x, kept.samples.numpy())
    rate = f"acceptance rate {100 * kept.rate:.3g} %, gamma {kept.gamma:.3f})"
    assert rate in err and "(drs)" in out
    # the run's config names the default filter; --filter none overrides it
    code, _, err = cli("sample", tiny_run / "drs", "--n", "12", "--out", tmp_path / "e.npy")
    assert code == 0 and "acceptance rate" in err
    code, _, err = cli(
        "sample", tiny_run / "drs", "--n", "3", "--out", tmp_path / "f.npy", "--filter", "none"
    )
    assert code == 0 and err == ""
    code, _, err = cli(
        "sample", run, "--n", "3", "--out", tmp_path / "g.npy", "--filter", "drs", "--label", "1"
    )
    assert code == 1 and "--label needs --filter none" in err


def test_the_rejection_quantile_comes_from_the_run_and_sample_quantile_overrides_it(
    cli, tiny_run, tmp_path
):
    """D~_M is the train.filter_quantile of the burn-in's logits (0.99995 by default), unless
    ``--quantile`` says otherwise; drs and none refuse the flag in one line."""
    run = tiny_run / "plain"
    g, d, _ = runs.load_filter_nets(run)
    direct = rejection(g, d, 4, seed=3, quantile=0.5)
    assert runs.sample_filtered(run, 4, "rejection", seed=3, quantile=0.5).d_max == direct.d_max
    default = rejection(g, d, 4, seed=3, quantile=QUANTILE)
    assert runs.sample_filtered(run, 4, "rejection", seed=3).d_max == default.d_max
    assert default.d_max > direct.d_max  # a higher quantile, a higher cap
    half = tmp_path / "half"
    args = ["train", "--out", str(half), "--steps", "5", "--quiet", *TINY]
    assert main([*args, "train.filter_quantile=0.5"]) == 0
    g2, d2, _ = runs.load_filter_nets(half)
    want = rejection(g2, d2, 4, seed=3, quantile=0.5).d_max
    assert runs.sample_filtered(half, 4, "rejection", seed=3).d_max == want
    out = tmp_path / "x.npy"
    code, _, err = cli(
        "sample", run, "--n", "4", "--out", out, "--filter", "rejection", "--seed", "3",
        "--quantile", "0.5",
    )  # fmt: skip
    want = f"(acceptance rate {100 * direct.rate:.3g} %, D~_M {direct.d_max:.3f})"
    assert code == 0 and want in err
    code, _, err = cli(
        "sample", run, "--n", "2", "--out", out, "--filter", "drs", "--quantile", "0.9"
    )
    assert code == 1 and "--quantile sets the rejection filter's D~_M, not drs's" in err
    code, _, err = cli("sample", run, "--n", "2", "--out", out, "--quantile", "0.9")
    assert code == 1 and "--quantile needs --filter rejection" in err
    code, _, err = cli(
        "sample", run, "--n", "2", "--out", out, "--filter", "rejection", "--quantile", "1.5"
    )
    assert code == 1 and "--quantile must be in (0, 1], got 1.5" in err
    assert main([*args, "train.filter_quantile=0"]) == 2  # ConfigError: in (0, 1]
    assert cfglib.TrainConfig().filter_quantile == QUANTILE  # one default, in two places


# ---- the filter's own D: a RatioNet fitted on the final G (train/calibrate.py) ----


def test_ratio_net_standardises_the_data_and_lifts_it_by_fourier_features():
    x = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    net = RatioNet(2, seed=3)
    net.standardise(x)
    # mean (2, 2); every coordinate 2 away from it: one standard deviation of 2
    assert net.shift.tolist() == [2.0, 2.0] and net.scale.item() == 2.0
    u = torch.tensor([[-1.0, -1.0], [1.0, -1.0], [-1.0, 1.0], [1.0, 1.0]]) @ net.freq
    assert_close(net(x), net.mlp(torch.cat([torch.sin(u), torch.cos(u)], 1)))
    assert net.freq.shape == (2, RATIO_FEATURES)
    same = RatioNet(2, seed=3)
    same.load_state_dict(net.state_dict())
    # the same seed draws the same frequencies; a moved and scaled copy of the data scores the
    # same once standardised
    assert torch.equal(RatioNet(2, seed=3).freq, net.freq)
    same.standardise(3 * x - 7)
    assert_close(same(3 * x - 7), net(x))
    flat = RatioNet(2)
    flat.standardise(torch.ones(5, 2))  # no spread at all: a scale of 1, not a division by 0
    assert flat.scale.item() == 1.0


class _Shift(nn.Module):
    """G(z) = z + 3 in 1-D, with a weight that must not move while D is fitted on it."""

    latent_dim = 1

    def __init__(self) -> None:
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z * self.w + 3


def test_fit_learns_the_log_density_ratio_of_two_gaussians_and_leaves_g_alone():
    """real N(0, 1) against G's N(3, 1): log p_data / p_g = (9 - 6x) / 2, positive left of 1.5."""
    g = _Shift().train()
    real = torch.randn(4000, 1, generator=torch.Generator().manual_seed(0))
    small = {"batch": 128, "hidden": (32,)}
    net, loss = calibrate.fit(g, real, 300, seed=1, **small)
    net2, loss2 = calibrate.fit(g, real, 300, seed=1, **small)
    assert torch.equal(g.w, torch.ones(1)) and g.training  # G untouched, its mode restored
    assert loss == loss2 and all(  # one seeded generator: the same net twice
        torch.equal(a, b)
        for a, b in zip(net.state_dict().values(), net2.state_dict().values(), strict=True)
    )
    assert 0.2 < loss < 2 * math.log(2)  # the two overlap: D cannot be sure of every point
    x = torch.arange(7.0)[:, None] / 2  # 0, 0.5, ..., 3: where both have their mass
    with torch.no_grad():
        lg = net(x).flatten()
    assert (lg - (9 - 6 * x.flatten()) / 2).abs().max() < 1.0  # 4.5 at 0 down to -4.5 at 3
    with pytest.raises(ValueError, match="steps must be positive"):
        calibrate.fit(g, real, 0)


def test_fit_returns_the_moving_average_of_the_weights_from_the_initial_ones():
    """One update: w_avg = b w0 + (1 - b) w1, w0 the seed's initial net, w1 the last iterate
    (``average=0``), b = min(average, 1 / 10) (the ramp-up (1 + t) / (10 + t) at t = 0)."""
    g = _Shift()
    real = torch.randn(256, 1, generator=torch.Generator().manual_seed(0))
    small = {"batch": 16, "hidden": (8,)}
    w0 = RatioNet(1, seed=2, hidden=(8,)).state_dict()
    w1 = calibrate.fit(g, real, 1, seed=2, average=0.0, **small)[0].state_dict()
    ramped = calibrate.fit(g, real, 1, seed=2, **small)[0].state_dict()  # AVERAGE = 0.995
    low = calibrate.fit(g, real, 1, seed=2, average=0.05, **small)[0].state_dict()
    assert not torch.equal(w0["mlp.0.weight"], w1["mlp.0.weight"])  # the update moved it
    for key in ("mlp.0.weight", "mlp.0.bias", "mlp.2.weight", "mlp.2.bias"):
        assert_close(ramped[key], 0.1 * w0[key] + 0.9 * w1[key])
        assert_close(low[key], 0.05 * w0[key] + 0.95 * w1[key])
    assert torch.equal(low["freq"], w1["freq"]) and torch.equal(low["shift"], w1["shift"])
    with pytest.raises(ValueError, match="average must be in"):
        calibrate.fit(g, real, 1, average=1.0)


def test_a_run_with_filter_steps_keeps_the_fitted_d_and_drs_scores_with_it(tmp_path):
    toy = ["data.source=ring8", "model.arch=mlp", "model.g_out=linear", "data.limit=512"]
    run = tmp_path / "fitted"
    args = ["train", "--out", str(run), "--steps", "5", "--quiet", *TINY, *toy]
    assert main([*args, "train.filter_steps=3"]) == 0
    g, d, fitted = runs.load_filter_nets(run)
    assert fitted and isinstance(d, RatioNet) and not d.training
    # the fitted D scores points in the data's units: its shift is the data's mean
    data = from_config(runs.RunFolder(run).read_config().data)
    assert_close(d.shift, data.x.mean(0))
    kept = runs.sample_filtered(run, 20, "drs", seed=2)  # points: candidates by POINT_BATCH
    assert_close(kept.samples, drs(g, d, 20, seed=2, batch=POINT_BATCH).samples)
    assert not torch.equal(kept.samples, drs(g, d, 20, seed=2, batch=BATCH).samples)
    plain = tmp_path / "plain"
    assert main(["train", "--out", str(plain), "--steps", "5", "--quiet", *TINY, *toy]) == 0
    assert runs.load_filter_nets(plain)[2] is False  # no fitted D: the run's own


def test_filter_steps_on_images_is_refused_in_one_line(cli, tmp_path):
    code, _, err = cli(
        "train", "--out", tmp_path / "r", "--steps", "2", *TINY, "train.filter_steps=5"
    )
    assert code == 2 and err.count("\n") == 1 and "train.filter_steps fits" in err
    assert not (tmp_path / "r").exists()


def test_eval_judges_what_the_filter_keeps(tmp_path):
    """ganforge eval's samples are the filter's: the high-quality share it reports is that of
    sample_filtered's n samples (same seed); --filter none judges the raw G."""
    toy = ["data.source=ring8", "model.arch=mlp", "model.g_out=linear", "data.limit=512"]
    run = tmp_path / "fitted"
    args = ["train", "--out", str(run), "--steps", "5", "--quiet", *TINY, *toy]
    assert main([*args, "train.filter_steps=3", "train.sample_filter=rejection"]) == 0
    kept = runs.sample_filtered(run, 50, "rejection", seed=0)
    expected = mode_metrics(kept.samples, mixture_of("ring8"))["hq_share"]
    out = evaluate_run(run, n=50, bootstrap=2)  # the run's default: rejection
    assert out["filter"] == "rejection"
    assert out["metrics"]["high_quality"]["value"] == pytest.approx(expected, abs=1e-12)
    raw = evaluate_run(run, n=50, bootstrap=2, sample_filter="none")
    expected_raw = mode_metrics(runs.sample(run, 50, seed=0), mixture_of("ring8"))["hq_share"]
    assert raw["filter"] == "none"
    assert raw["metrics"]["high_quality"]["value"] == pytest.approx(expected_raw, abs=1e-12)


def test_an_average_of_fitted_ds_is_their_mean_logit_and_comes_back_from_the_checkpoint(
    tmp_path,
):
    """train.filter_nets=2: member 0 is the lone fit's net (same seed), member 1 is seeded
    1000 later; D_filter's logit is the mean of the two; load_filter_nets rebuilds both."""
    toy = ["data.source=ring8", "model.arch=mlp", "model.g_out=linear", "data.limit=512"]
    run = tmp_path / "mean"
    args = ["train", "--out", str(run), "--steps", "5", "--quiet", *TINY, *toy]
    assert main([*args, "train.filter_steps=3", "train.filter_nets=2"]) == 0
    g, d, fitted = runs.load_filter_nets(run)
    assert fitted and isinstance(d, RatioMean) and len(d.nets) == 2
    real = from_config(runs.RunFolder(run).read_config().data).x
    one, _ = calibrate.fit(g, real, 3, seed=0)
    other, _ = calibrate.fit(g, real, 3, seed=calibrate.SEED_STRIDE)
    x = torch.randn(64, 2)
    with torch.no_grad():
        assert_close(d.nets[0](x), one(x))
        assert_close(d.nets[1](x), other(x))
        assert_close(d(x), (one(x) + other(x)) / 2)
    kept = runs.sample_filtered(run, 20, "rejection", seed=2)  # scored by the mean
    assert_close(kept.samples, rejection(g, d, 20, seed=2, batch=POINT_BATCH).samples)


def test_filter_nets_without_filter_steps_is_refused_in_one_line(cli, tmp_path):
    toy = ["data.source=ring8", "model.arch=mlp", "model.g_out=linear"]
    code, _, err = cli(
        "train", "--out", tmp_path / "r", "--steps", "2", *TINY, *toy, "train.filter_nets=3"
    )
    assert code == 2 and err.count("\n") == 1 and "needs train.filter_steps > 0" in err
    code, _, err = cli("train", "--out", tmp_path / "r", *TINY, "train.filter_nets=0")
    assert code == 2 and "train.filter_nets" in err
