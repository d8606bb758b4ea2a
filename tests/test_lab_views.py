"""ganforge.lab.views: the lab's 2-D theory on a grid, against numbers computed by hand."""

from __future__ import annotations

import math

import numpy as np
import pytest

from ganforge.data.toy import Mixture, ring
from ganforge.lab import views

LOG2 = math.log(2.0)


def test_jsd_dstar_and_values_on_three_cells_by_hand():
    # p = (1/2, 1/2, 0), q = (0, 1/2, 1/2): s = (1/2, 1, 1/2), D* = (1, 1/2, 0);
    # JSD = 1/2 (1/2 log 2 + 0) + 1/2 (0 + 1/2 log 2) = (log 2) / 2;
    # V(D*, G) = 1/2 log 1 + 1/2 log 1/2 + 1/2 log 1/2 + 1/2 log 1 = -log 2 = -log 4 + 2 JSD;
    # D = 1/2 everywhere (logit 0): V(D, G) = (1/2 + 1/2 + 1/2 + 1/2) log 1/2 = -log 4
    p = np.array([[0.5, 0.5, 0.0]])
    q = np.array([[0.0, 0.5, 0.5]])
    t = views.theory_2d(p, q, np.zeros((1, 3)))
    np.testing.assert_allclose(t["d_star"], [[1.0, 0.5, 0.0]])
    assert t["jsd"] == pytest.approx(LOG2 / 2, abs=1e-12)
    assert t["v_dstar"] == pytest.approx(-LOG2, abs=1e-12)
    assert t["v_d"] == pytest.approx(-math.log(4.0), abs=1e-12)
    assert t["off_grid"] == 0.0


def test_the_mass_off_the_grid_is_one_more_cell():
    # p = (0.4, 0.4) and q = (0.3, 0.3) on two cells: 0.2 of p and 0.4 of q off the grid,
    # which count as one more cell (0.2, 0.4)
    p = np.array([[0.4, 0.4]])
    q = np.array([[0.3, 0.3]])
    t = views.theory_2d(p, q, np.zeros((1, 2)), logit_out=0.0)

    def half_kl_terms(a: float, b: float) -> float:
        s = a + b
        return 0.5 * (a * math.log(2 * a / s) + b * math.log(2 * b / s))

    expected = 2 * half_kl_terms(0.4, 0.3) + half_kl_terms(0.2, 0.4)
    assert t["jsd"] == pytest.approx(expected, abs=1e-12)
    assert t["v_dstar"] == pytest.approx(-math.log(4.0) + 2 * expected, abs=1e-12)
    assert t["off_grid"] == pytest.approx(0.4)
    assert t["v_d"] == pytest.approx(-math.log(4.0), abs=1e-12)  # D = 1/2 in every cell


def test_equal_masses_give_jsd_0_and_v_minus_log_4():
    rng = np.random.default_rng(0)
    p = rng.uniform(size=(4, 4))
    p /= p.sum()
    t = views.theory_2d(p, p.copy(), rng.normal(size=(4, 4)))
    assert t["jsd"] == pytest.approx(0.0, abs=1e-12)
    assert t["v_dstar"] == pytest.approx(-math.log(4.0), abs=1e-12)
    assert t["v_d"] < t["v_dstar"]  # any other D does worse than D* = 1/2
    np.testing.assert_allclose(t["d_star"], 0.5)


def test_sample_masses_bin_and_blur():
    extent = (0.0, 4.0, 0.0, 2.0)  # n = 4: cells of 1 x 0.5
    pts = np.array([[0.5, 0.25], [0.5, 0.25], [3.5, 1.75], [9.0, 9.0]])  # the last off the grid
    m = views.sample_masses(pts, extent, 4, h=1e-6)  # no blur to speak of
    assert m.shape == (4, 4) and m.sum() == pytest.approx(0.75)
    assert m[0, 0] == pytest.approx(0.5) and m[3, 3] == pytest.approx(0.25)  # row = y
    blurred = views.sample_masses(pts[:1], extent, 4, h=1.0)
    assert blurred.sum() < 1 and blurred[0, 0] == blurred.max()  # spilled off the edges


def test_smoothed_mixture_and_its_cell_masses():
    mix = Mixture.of(None, [[0.0, 0.0]], 0.3)
    assert views.smoothed_mixture(mix, 0.4).stds[0] == pytest.approx(0.5)  # sqrt(.09 + .16)
    extent = (-4.0, 4.0, -4.0, 4.0)
    m = views.density_masses(mix, np.zeros((1, 2)), extent, 40, 0.4)
    assert m.sum() == pytest.approx(1.0, abs=1e-3)  # all of it within 8 std
    assert views.bandwidth(extent, 32) == pytest.approx(0.5)


def test_a_perfect_g_shows_a_jsd_near_0_on_ring8():
    mix = ring()
    extent = (-3.0, 3.0, -3.0, 3.0)
    h = views.bandwidth(extent, 32)
    p = views.density_masses(mix, np.zeros((1, 2)), extent, 32, h)
    x, _ = mix.sample(1000, seed=3)
    q = views.sample_masses(x, extent, 32, h)
    assert views.theory_2d(p, q, np.zeros((32, 32)))["jsd"] < 0.005
    far = views.sample_masses(x + 1.0, extent, 32, h)  # the ring shifted by (1, 1)
    assert views.theory_2d(p, far, np.zeros((32, 32)))["jsd"] > 0.3


def test_z_grid_lines_and_thinning():
    lines = views.z_grid(4, lines=3, points=5, span=2.0)
    assert lines.shape == (6, 5, 4) and not lines[:, :, 2:].any()
    np.testing.assert_allclose(lines[0, :, 0], [-2, -1, 0, 1, 2])  # z_1 along, z_2 = -2
    np.testing.assert_allclose(lines[0, :, 1], -2.0)
    np.testing.assert_allclose(lines[3, :, 0], -2.0)  # z_1 = -2, z_2 along
    assert views.z_grid(1).shape == (1, 25, 1)  # one latent coordinate: the z line
    rows = list(range(1000))
    kept = views.thin(rows, 100)
    assert len(kept) <= 100 and kept[0] == 0 and kept[-1] == 999
    assert kept[-10:] == list(range(990, 1000))  # the newest stay dense
