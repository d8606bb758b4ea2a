"""Precision, recall, density and coverage on point clouds with known answers."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from ganforge.metrics.prdc import knn_radii, per_sample, prdc


def _line(*xs: float) -> torch.Tensor:
    return torch.tensor(xs, dtype=torch.float64)[:, None]


def _prdc_numpy(real: np.ndarray, fake: np.ndarray, k_pr: int = 3, k_dc: int = 5) -> dict:
    """Brute force with full distance matrices, written from the papers' definitions."""

    def dist(a, b):
        return np.sqrt(((a[:, None, :] - b[None, :, :]) ** 2).sum(-1))

    def radii(a, k):
        return np.sort(dist(a, a), axis=1)[:, k]  # column 0 is the point itself

    d_fr = dist(fake, real)  # [N, M]
    rr, rf, rd = radii(real, k_pr), radii(fake, k_pr), radii(real, k_dc)
    return {
        "precision": (d_fr <= rr[None]).any(1).mean(),
        "recall": (d_fr <= rf[:, None]).any(0).mean(),
        "density": (d_fr <= rd[None]).sum(1).mean() / k_dc,
        "coverage": (d_fr.min(0) <= rd).mean(),
    }


def test_knn_radii_on_a_line_by_hand():
    # 0..9: the 3rd nearest other point is 3 away at the ends, 2 away inside.
    r = knn_radii(_line(*range(10)), 3)
    torch.testing.assert_close(r, torch.tensor([3.0, 2, 2, 2, 2, 2, 2, 2, 2, 3], dtype=r.dtype))


def test_by_hand_one_fake_inside_and_one_far_away():
    real = _line(*range(10))
    fake = _line(0.5, 100.0, 101.0, 102.0, 103.0)
    m = prdc(real, fake)
    # precision: 0.5 lies in the ball of 0 (radius 3); the others lie in no real ball.
    assert m["precision"] == pytest.approx(1 / 5)
    # recall: the 3rd nearest other fake of 0.5 is 102, so its ball (radius 101.5) holds every
    # real point.
    assert m["recall"] == pytest.approx(1.0)
    # density (k = 5): the radius of real i is 5 at 0 and 9, 4 at 1 and 8, 3 inside; 0.5 lies
    # in the balls of 0, 1, 2, 3 (|0.5 - 3| = 2.5 <= 3): 4 balls, / (k * N) = 4 / 25.
    assert m["density"] == pytest.approx(4 / 25)
    # coverage: reals 0..3 have 0.5 within their radius (0.5, 0.5, 1.5, 2.5); 4 has 3.5 > 3.
    assert m["coverage"] == pytest.approx(4 / 10)


def test_identical_sets_are_fully_precise_and_covered():
    x = torch.randn(200, 4, generator=torch.Generator().manual_seed(0))
    m = prdc(x, x.clone())
    assert m["precision"] == m["recall"] == m["coverage"] == 1.0
    assert m["density"] >= 1.0  # each fake sits at the centre of its own real ball and more


def test_far_apart_sets_score_zero():
    gen = torch.Generator().manual_seed(1)
    real, fake = torch.randn(100, 3, generator=gen), torch.randn(80, 3, generator=gen) + 50
    assert prdc(real, fake) == {"precision": 0.0, "recall": 0.0, "density": 0.0, "coverage": 0.0}


def test_a_collapsed_generator_is_precise_without_recall():
    # Fakes on one real point's spot: all precise, almost nothing of the reals recalled.
    real = torch.randn(300, 2, generator=torch.Generator().manual_seed(2))
    fake = real[:1].repeat(50, 1) + 1e-3 * torch.randn(50, 2, generator=torch.Generator())
    m = prdc(real, fake)
    assert m["precision"] == 1.0
    assert m["recall"] < 0.05 and m["coverage"] < 0.05


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_a_brute_force_numpy_implementation(seed):
    rng = np.random.default_rng(seed)
    real = rng.normal(size=(1500, 5))  # more than one block of 1024 rows
    fake = rng.normal(size=(1100, 5)) * 1.2 + 0.3
    ours = prdc(torch.tensor(real), torch.tensor(fake))
    ref = _prdc_numpy(real, fake)
    for key, value in ref.items():
        torch.testing.assert_close(ours[key], float(value), rtol=1e-12, atol=1e-12)


def test_per_sample_shapes_and_means():
    gen = torch.Generator().manual_seed(3)
    real, fake = torch.randn(40, 2, generator=gen), torch.randn(30, 2, generator=gen)
    ps = per_sample(real, fake)
    assert ps.precision.shape == (30,) and ps.density.shape == (30,)
    assert ps.recall.shape == (40,) and ps.coverage.shape == (40,)
    assert ps.means() == prdc(real, fake)


def test_too_few_samples_for_k():
    with pytest.raises(ValueError, match="more than k samples"):
        prdc(torch.zeros(3, 2), torch.zeros(10, 2))
