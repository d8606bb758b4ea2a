"""The evaluation protocol: intervals, real floors, sample sizes, metrics per kind of network."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from ganforge.metrics.compare import METRICS, Sets, compare, evaluate_images, figure


def test_figure_places_the_replicates_spread_about_the_value():
    reps = torch.arange(101, dtype=torch.float64)  # quantiles 2.5, 50, 97.5 of 0..100
    f = figure(10.0, reps, floor=1.0, n=7)
    assert f == {"value": 10.0, "ci_low": 10 - 47.5, "ci_high": 10 + 47.5, "floor": 1.0, "n": 7}
    assert figure(3.0, None, None, 5)["ci_low"] is None


def _sets(shift: float, n: int = 150, seed: int = 0) -> Sets:
    gen = torch.Generator().manual_seed(seed)
    real = torch.randn(2 * n, 6, generator=gen)
    fake = torch.randn(n, 6, generator=gen) + shift
    return Sets(ref=real[:n], other=real[n:], fake=fake)


def test_a_fake_set_from_the_real_distribution_scores_like_the_floor():
    out = compare(_sets(0.0), bootstrap=30)
    assert set(out) == {"fid", "kid", "precision", "recall", "density", "coverage"}
    fid = out["fid"]
    assert fid["n"] == 150
    assert fid["ci_low"] <= fid["value"] <= fid["ci_high"]
    # same distribution: FID within its interval's reach of the real floor
    assert abs(fid["value"] - fid["floor"]) < 2 * (fid["ci_high"] - fid["ci_low"])
    assert out["precision"]["value"] == pytest.approx(out["precision"]["floor"], abs=0.15)


def test_a_shifted_fake_set_scores_far_from_the_floor():
    out = compare(_sets(3.0), bootstrap=30)
    assert out["fid"]["value"] > 10 * out["fid"]["floor"]
    assert out["fid"]["ci_low"] > out["fid"]["floor"]
    assert out["precision"]["value"] < 0.2 and out["recall"]["value"] < 0.2
    assert out["kid"]["value"] > out["kid"]["ci_low"] > out["kid"]["floor"]


def test_compare_is_reproducible_with_its_seed():
    a, b = compare(_sets(0.5), bootstrap=10, seed=3), compare(_sets(0.5), bootstrap=10, seed=3)
    assert a == b


class _Flat(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.flatten(1)


class _WithLogits(nn.Module):
    """Features: the pixels; logits: class 0 if the mean pixel is below 0, else class 1."""

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        m = x.flatten(1).mean(1, keepdim=True)
        return x.flatten(1), torch.cat([-100 * m, 100 * m], dim=1)


def test_class_figures_need_a_network_with_logits():
    gen = torch.Generator().manual_seed(1)
    real = torch.rand(120, 1, 3, 3, generator=gen) * 2 - 1
    fake = real[:60] * 0 - 0.5  # every fake is class 0
    out = evaluate_images(_Flat(), real, fake, bootstrap=5)
    assert "classifier_score" not in out
    out = evaluate_images(_WithLogits(), real, fake, bootstrap=5)
    assert out["classes_covered"]["value"] == 1.0
    assert out["classes_covered"]["floor"] == 2.0
    assert out["classifier_score"]["value"] == pytest.approx(1.0)
    assert set(out) <= set(METRICS)


def test_evaluate_images_needs_two_disjoint_real_sets():
    with pytest.raises(ValueError, match="need 20 real"):
        evaluate_images(_Flat(), torch.zeros(15, 1, 2, 2), torch.zeros(10, 1, 2, 2))


def test_figure_of_an_infinite_kl_keeps_the_percentiles():
    reps = torch.tensor([0.1, 0.2, float("inf"), float("inf")], dtype=torch.float64)
    f = figure(float("inf"), reps, 0.0, 4)
    assert f["ci_high"] == float("inf") and f["ci_low"] == 0.1  # nearest replicate
