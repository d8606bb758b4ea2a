"""Tests for ganforge.metrics.modes on point sets whose answers are known by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganforge.data.toy import Mixture, grid, ring
from ganforge.metrics.modes import assign_modes, mode_metrics


def exact_points(m: Mixture, per_mode: list[int], offset: float = 0.0) -> np.ndarray:
    """``per_mode[k]`` copies of centre k, shifted by ``offset`` along the first axis."""
    pts = [np.repeat(m.means[k : k + 1], c, axis=0) for k, c in enumerate(per_mode)]
    x = np.concatenate(pts)
    x[:, 0] += offset
    return x


def test_all_modes_equally_hit():
    m = grid()
    r = mode_metrics(exact_points(m, [40] * 25), m)
    assert r["modes"] == 25 and r["n_modes"] == 25 and r["n"] == 1000
    assert r["hq_share"] == 1.0
    assert r["kl"] == pytest.approx(0.0, abs=1e-12)
    assert r["counts"] == [40] * 25


def test_one_mode_only():
    m = ring()
    r = mode_metrics(exact_points(m, [0, 0, 500, 0, 0, 0, 0, 0]), m)
    assert r["modes"] == 1 and r["hq_share"] == 1.0
    # q = one-hot, w = 1/8: KL(q || w) = log 8
    assert r["kl"] == pytest.approx(math.log(8))


def test_samples_far_away_are_not_high_quality():
    m = ring()
    x = np.full((100, 2), 10.0)
    r = mode_metrics(x, m)
    assert r["modes"] == 0 and r["hq_share"] == 0.0 and r["kl"] == math.inf
    assert r["counts"] == [0] * 8


def test_three_std_boundary():
    m = ring()  # std 0.02: 3 std = 0.06
    inside = exact_points(m, [1] * 8, offset=0.0599)
    outside = exact_points(m, [1] * 8, offset=0.0601)
    _, hq_in = assign_modes(inside, m)
    _, hq_out = assign_modes(outside, m)
    assert hq_in.all() and not hq_out.any()


def test_capture_threshold_is_a_fifth_of_the_expected_count():
    m = Mixture.of(None, [[0.0, 0.0], [10.0, 0.0]], 0.1)
    # n = 100, w = 1/2: a mode needs >= 0.2 * 100 * 0.5 = 10 high-quality samples
    x = np.concatenate([exact_points(m, [90, 10])])
    assert mode_metrics(x, m)["modes"] == 2
    x = np.concatenate([exact_points(m, [91, 9])])
    assert mode_metrics(x, m)["modes"] == 1


def test_kl_and_share_by_hand_with_unequal_weights():
    m = Mixture.of([0.25, 0.75], [-2.0, 2.0], [0.5, 0.5])  # 1-D
    x = np.array([-2.0] * 30 + [2.1] * 50 + [20.0] * 20)  # 20 far away
    r = mode_metrics(x, m)
    q = np.array([30, 50]) / 80
    expected = float(np.sum(q * np.log(q / np.array([0.25, 0.75]))))
    assert r["hq_share"] == pytest.approx(0.8)
    assert r["kl"] == pytest.approx(expected)
    assert r["counts"] == [30, 50] and r["modes"] == 2


def test_tensor_and_1d_inputs_agree_with_numpy():
    m = Mixture.of(None, [-1.0, 1.0], [0.1, 0.1])
    x = np.array([-1.0, -0.95, 1.35, 5.0])  # 1.35 is 3.5 std from 1
    a = mode_metrics(x, m)
    b = mode_metrics(torch.tensor(x, dtype=torch.float32).view(-1, 1), m)
    assert a == b
    assert a["counts"] == [2, 0] and a["modes"] == 1 and a["hq_share"] == 0.5


def test_samples_from_the_mixture_itself_score_near_perfect():
    m = grid()
    x, _ = m.sample(20_000, seed=3)
    r = mode_metrics(x, m)
    assert r["modes"] == 25
    # P(chi_2 <= 3) = 1 - exp(-9/2) = 0.98889
    assert r["hq_share"] == pytest.approx(1 - math.exp(-4.5), abs=0.004)
    assert r["kl"] < 0.005


def test_wrong_shapes_are_refused():
    with pytest.raises(ValueError, match=r"expected samples \[N, 2\]"):
        mode_metrics(np.zeros((5, 3)), ring())
    with pytest.raises(ValueError, match="no samples"):
        mode_metrics(np.zeros((0, 2)), ring())
