"""Tests for ganforge.theory: D*, V, KL and JSD on densities known in closed form."""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import integrate as sint
from scipy import stats

from ganforge.data.toy import Mixture
from ganforge.theory import (
    LOG4,
    d_star,
    integrate,
    jsd,
    kde_1d,
    kl,
    silverman_bandwidth,
    value,
    value_at_optimum,
)

X = np.linspace(-30, 30, 120_001)  # wide and fine: every density below integrates to 1 - 1e-12


def normal(mu: float, sd: float) -> np.ndarray:
    return stats.norm.pdf(X, mu, sd)


def mixture(spec: tuple[list[float], list[float], list[float]]) -> np.ndarray:
    w, mu, sd = spec
    return Mixture.of(w, mu, sd).pdf(X)


PAIRS = {
    "same-sd": (normal(0, 1), normal(1, 1)),
    "different-sd": (normal(-1, 0.5), normal(2, 2)),
    "mixtures": (
        mixture(([0.3, 0.7], [-2, 2], [0.5, 0.5])),
        mixture(([1, 1, 2], [-3, 0, 1], [1, 0.3, 2])),
    ),
    "mixture-vs-normal": (mixture(([0.3, 0.7], [-2, 2], [0.5, 0.5])), normal(0, 0.2)),
}


@pytest.mark.parametrize("name", list(PAIRS))
def test_value_at_d_star_is_minus_log4_plus_2_jsd(name):
    p, q = PAIRS[name]
    assert value_at_optimum(p, q, X) == pytest.approx(-LOG4 + 2 * jsd(p, q, X), abs=1e-6)


@pytest.mark.parametrize("name", list(PAIRS))
def test_jsd_agrees_with_adaptive_quadrature(name):
    """An independent computation: scipy's quad on the closed-form densities."""
    p, q = PAIRS[name]
    i = list(PAIRS).index(name)
    fp, fq = [
        (lambda t: stats.norm.pdf(t, 0, 1), lambda t: stats.norm.pdf(t, 1, 1)),
        (lambda t: stats.norm.pdf(t, -1, 0.5), lambda t: stats.norm.pdf(t, 2, 2)),
        (
            lambda t: 0.3 * stats.norm.pdf(t, -2, 0.5) + 0.7 * stats.norm.pdf(t, 2, 0.5),
            lambda t: (
                0.25 * stats.norm.pdf(t, -3, 1)
                + 0.25 * stats.norm.pdf(t, 0, 0.3)
                + 0.5 * stats.norm.pdf(t, 1, 2)
            ),
        ),
        (
            lambda t: 0.3 * stats.norm.pdf(t, -2, 0.5) + 0.7 * stats.norm.pdf(t, 2, 0.5),
            lambda t: stats.norm.pdf(t, 0, 0.2),
        ),
    ][i]

    def integrand(t: float) -> float:
        a, b = fp(t), fq(t)
        m = (a + b) / 2
        return 0.5 * (a * math.log(a / m) if a > 0 else 0) + 0.5 * (
            b * math.log(b / m) if b > 0 else 0
        )

    expected, _ = sint.quad(integrand, -30, 30, points=[-3, -2, -1, 0, 1, 2], limit=400)
    assert jsd(p, q, X) == pytest.approx(expected, abs=1e-7)


def test_kl_of_two_gaussians_matches_the_closed_form():
    # KL(N(m1, s1^2) || N(m2, s2^2)) = log(s2 / s1) + (s1^2 + (m1 - m2)^2) / (2 s2^2) - 1/2
    m1, s1, m2, s2 = -1.0, 0.5, 2.0, 2.0
    expected = math.log(s2 / s1) + (s1**2 + (m1 - m2) ** 2) / (2 * s2**2) - 0.5
    assert kl(normal(m1, s1), normal(m2, s2), X) == pytest.approx(expected, abs=1e-8)


@pytest.mark.parametrize("name", list(PAIRS))
def test_jsd_of_a_density_with_itself_is_zero(name):
    p, _ = PAIRS[name]
    assert jsd(p, p, X) == pytest.approx(0.0, abs=1e-12)
    assert kl(p, p, X) == pytest.approx(0.0, abs=1e-12)
    # and then D* = 1/2 everywhere, V(D*, G) = -log 4
    assert value_at_optimum(p, p, X) == pytest.approx(-LOG4, abs=1e-9)


@pytest.mark.parametrize("name", list(PAIRS))
def test_jsd_lies_between_0_and_log2(name):
    p, q = PAIRS[name]
    assert 0 < jsd(p, q, X) < math.log(2)


def test_jsd_reaches_log2_for_disjoint_supports():
    x = np.linspace(-2, 3, 50_001)
    p = np.where((x >= -1) & (x <= 0), 1.0, 0.0)  # U(-1, 0)
    q = np.where((x >= 1) & (x <= 2), 1.0, 0.0)  # U(1, 2)
    # normalised on the grid (the trapezoid sees each jump as a ramp one step wide)
    p, q = p / integrate(p, x), q / integrate(q, x)
    assert jsd(p, q, x) == pytest.approx(math.log(2), abs=1e-12)
    assert value_at_optimum(p, q, x) == pytest.approx(0.0, abs=1e-12)  # -log 4 + 2 log 2
    assert kl(p, q, x) == math.inf
    # far-apart Gaussians: disjoint to machine precision
    assert jsd(normal(-15, 1), normal(15, 1), X) == pytest.approx(math.log(2), abs=1e-9)


def test_d_star_is_the_pointwise_ratio():
    p = np.array([0.0, 1.0, 2.0, 0.0, 3.0])
    q = np.array([0.0, 1.0, 0.0, 4.0, 1.0])
    np.testing.assert_allclose(d_star(p, q), [0.5, 0.5, 1.0, 0.0, 0.75])


@pytest.mark.parametrize("name", list(PAIRS))
def test_perturbing_d_star_lowers_v(name):
    """D* maximises V pointwise: any bump up or down, anywhere, lowers V."""
    p, q = PAIRS[name]
    ds = d_star(p, q)
    best = value_at_optimum(p, q, X)  # V at D*, written with logs that survive the tails
    rng = np.random.default_rng(0)
    for centre in (-2.0, 0.0, 0.5, 2.0):
        bump = np.exp(-0.5 * ((X - centre) / 0.3) ** 2)
        for eps in (0.05, -0.05, 0.01, -0.01):
            d = np.clip(ds + eps * bump, 1e-12, 1 - 1e-12)
            assert value(d, p, q, X) < best
    # random D: also below, and equal to D* only at D*
    for _ in range(5):
        d = rng.uniform(0.01, 0.99, len(X))
        assert value(d, p, q, X) < best
    # the constant 1/2 gives -log 4 exactly
    assert value(np.full(len(X), 0.5), p, q, X) == pytest.approx(-LOG4, abs=1e-9)


def test_value_with_d_matches_the_formula_by_hand():
    # p = q = U(0, 1), D(x) = (1 + x) / 3:
    # int_0^1 log((1 + x) / 3) dx = int_0^1 log((2 - x) / 3) dx = 2 log 2 - 1 - log 3
    x = np.linspace(0, 1, 100_001)
    one = np.ones_like(x)
    expected = 2 * (2 * math.log(2) - 1 - math.log(3))
    assert value((1 + x) / 3, one, one, x) == pytest.approx(expected, abs=1e-9)
    # p = U(0, 1), q = 0: V = int log D only
    assert value((1 + x) / 3, one, 0 * one, x) == pytest.approx(expected / 2, abs=1e-9)


def test_kde_matches_scipy_gaussian_kde():
    rng = np.random.default_rng(1)
    s = np.concatenate([rng.normal(-2, 0.5, 300), rng.normal(2, 0.5, 700)])
    x = np.linspace(-5, 5, 501)
    h = 0.3
    ref = stats.gaussian_kde(s, bw_method=h / s.std(ddof=1))(x)
    np.testing.assert_allclose(kde_1d(s, x, h), ref, rtol=1e-10, atol=1e-14)
    # the default bandwidth is Silverman's
    ref2 = stats.gaussian_kde(s, bw_method=silverman_bandwidth(s) / s.std(ddof=1))(x)
    np.testing.assert_allclose(kde_1d(s, x), ref2, rtol=1e-10, atol=1e-14)


def test_silverman_by_hand():
    s = np.array([0.0, 1.0, 2.0, 3.0, 4.0])
    sd = math.sqrt(2.5)  # ddof=1
    iqr = 3.0 - 1.0
    assert silverman_bandwidth(s) == pytest.approx(0.9 * min(sd, iqr / 1.34) * 5 ** (-0.2))


def test_kde_of_a_large_sample_approaches_the_density():
    rng = np.random.default_rng(2)
    s = rng.normal(0.0, 1.0, 20_000)
    x = np.linspace(-8, 8, 1601)
    est = kde_1d(s, x)
    assert jsd(est, stats.norm.pdf(x), x) < 1e-3


# ---------------------------------------------------------------- ganforge theory RUN


def _tiny_run(cli, out, preset: str, steps: int, every: int) -> None:
    code, _, err = cli(
        "train", "--preset", preset, "--steps", steps, "--out", out, "--quiet",
        f"train.snapshot_every={every}", "train.batch_size=32", "data.limit=512",
        "model.g_hidden=8,8", "model.d_hidden=8,8", "train.n_samples=16",
        *(["train.filter_steps=3"] if preset == "ring8" else []),
    )  # fmt: skip
    assert code == 0, err


@pytest.mark.slow  # the full theory pipeline on a 1-D run (about 16 s); the 2-D run stays fast
def test_theory_command_on_a_1d_run(cli, tmp_path):
    import json

    import torch

    from ganforge import snapshots
    from ganforge.report.theory import fixed_z

    run = tmp_path / "toy"
    _tiny_run(cli, run, "toy-1d", 6, 3)
    code, out, err = cli("theory", run, "--frames", "2")
    assert code == 0, err
    files = {p.name for p in (run / "theory").iterdir()}
    assert files == {"abcd.png", "curves.png", "run.gif", "theory.jsonl"}
    assert "(b) step 0 after a D update" in out and "(d) step 6 end" in out
    rows = [json.loads(line) for line in (run / "theory" / "theory.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 3, 6]
    for r in rows:
        assert 0 <= r["jsd"] <= math.log(2)
        assert r["v_optimal"] == pytest.approx(-LOG4 + 2 * r["jsd"], abs=1e-6)
        assert r["v_learned"] <= r["v_optimal"] + 1e-12
    # step 3 recomputed independently: G before its G update, scipy's KDE, scipy's Simpson
    from ganforge import config, nets
    from ganforge.data.toy import mixture_of

    cfg = config.from_json(run / "config.json")
    g, _ = nets.build(cfg.model, (1,))
    g.load_state_dict(snapshots.read(run / "snapshots" / "step-000003.safetensors").g_pre)
    with torch.no_grad():
        s = g.eval()(fixed_z(1)).double().numpy()[:, 0]
    m = mixture_of(cfg.data.source)
    assert m is not None
    h = silverman_bandwidth(s)
    x = np.linspace(min(-6, s.min() - 10 * h), max(6, s.max() + 10 * h), 8001)
    x = np.union1d(x, np.linspace(s.min() - 10 * h, s.max() + 10 * h, 8001))  # G may be narrow
    q = stats.gaussian_kde(s, bw_method=h / s.std(ddof=1))(x)
    p = m.pdf(x)
    mid = (p + q) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        f = np.where(p > 0, p * np.log(p / mid), 0) + np.where(q > 0, q * np.log(q / mid), 0)
    expected = 0.5 * sint.simpson(f, x=x)
    assert rows[1]["jsd"] == pytest.approx(expected, abs=1e-4)


def test_theory_command_on_a_2d_run(cli, tmp_path):
    import json

    run = tmp_path / "ring"
    _tiny_run(cli, run, "ring8", 4, 2)
    code, out, err = cli("theory", run)
    assert code == 0, err
    maps = sorted(p.name for p in (run / "theory" / "heatmaps").iterdir())
    assert maps == ["filter.png", "step-000000.png", "step-000002.png", "step-000004.png"]
    assert (run / "theory" / "heatmaps.gif").is_file()
    # the preset's filter at work: the modes of its raw and its kept samples
    filtered = json.loads((run / "theory" / "filter.json").read_text())
    assert set(filtered) == {"raw", "rejection"}
    assert set(filtered["rejection"]) == {"modes", "hq_share", "kl"}
    rows = [json.loads(line) for line in (run / "theory" / "modes.jsonl").read_text().splitlines()]
    assert [r["step"] for r in rows] == [0, 2, 4]
    assert all(r["n_modes"] == 8 and r["n"] == 20_000 for r in rows)
    assert "HQ share" in out


@pytest.mark.slow  # a second theory run (about 6 s); the 2-D one stays fast
def test_theory_without_snapshots_uses_checkpoints(cli, tmp_path):
    run = tmp_path / "toy"
    _tiny_run(cli, run, "toy-1d", 4, 0)
    code, out, err = cli("theory", run, "--no-gif")
    assert code == 0, err
    assert "no snapshots in this run" in out
    assert not (run / "theory" / "run.gif").exists()


def test_theory_refuses_image_runs_and_bad_panels(cli, tmp_path, shared_run):
    run = shared_run  # an MNIST run, read only
    code, _, err = cli("theory", run)
    assert code == 1 and "1-D or 2-D points" in err and "Traceback" not in err
    code, _, err = cli("theory", run, "--panels", "5")
    assert code == 2 and "--panels: expected two steps" in err
    code, _, err = cli("theory", tmp_path / "nothing")
    assert code == 1 and "not a ganforge run" in err
