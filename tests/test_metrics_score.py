"""Classifier score, class histogram and KL, Stacked MNIST modes: values worked out by hand."""

from __future__ import annotations

import math

import pytest
import torch

from ganforge.metrics.score import (
    class_metrics,
    classifier_score,
    histogram,
    kl_divergence,
    mode_metrics,
    stacked_modes,
)


def test_classifier_score_is_the_number_of_classes_for_sure_balanced_predictions():
    probs = torch.eye(4).repeat(5, 1)  # 20 samples, each certain, 5 per class
    assert classifier_score(probs) == pytest.approx(4.0)


def test_classifier_score_is_one_when_every_sample_gets_the_same_distribution():
    probs = torch.tensor([[0.7, 0.2, 0.1]]).repeat(6, 1)
    assert classifier_score(probs) == pytest.approx(1.0)


def test_classifier_score_by_hand():
    # p(y|x) = (1, 0) and (0.5, 0.5): p(y) = (0.75, 0.25);
    # KL_1 = log(1 / 0.75); KL_2 = 0.5 log(0.5 / 0.75) + 0.5 log(0.5 / 0.25).
    probs = torch.tensor([[1.0, 0.0], [0.5, 0.5]])
    kl1 = math.log(1 / 0.75)
    kl2 = 0.5 * math.log(0.5 / 0.75) + 0.5 * math.log(0.5 / 0.25)
    assert classifier_score(probs) == pytest.approx(math.exp((kl1 + kl2) / 2), rel=1e-12)


def test_histogram_and_kl_by_hand():
    q = histogram(torch.tensor([0, 1, 1, 0]), 3)
    torch.testing.assert_close(q, torch.tensor([0.5, 0.5, 0.0], dtype=torch.float64))
    # KL(q || uniform of 3) = 2 * 0.5 log(0.5 / (1/3)) = log 1.5; the empty class adds 0.
    third = torch.full((3,), 1 / 3, dtype=torch.float64)
    assert kl_divergence(q, third) == pytest.approx(math.log(1.5), rel=1e-12)
    assert kl_divergence(q, q) == 0.0
    assert kl_divergence(q, torch.tensor([1.0, 0.0, 0.0])) == math.inf


def test_class_metrics_of_a_generator_that_draws_two_digits_of_ten():
    probs = torch.zeros(8, 10)
    probs[:6, 3] = 1.0
    probs[6:, 7] = 1.0
    m = class_metrics(probs)
    assert m["classes_covered"] == 2.0
    # q = 0.75 at 3, 0.25 at 7: KL to uniform = 0.75 log 7.5 + 0.25 log 2.5
    assert m["class_kl"] == pytest.approx(0.75 * math.log(7.5) + 0.25 * math.log(2.5))
    assert m["class_histogram"][3] == 0.75 and sum(m["class_histogram"]) == pytest.approx(1.0)


def test_stacked_modes_and_their_metrics():
    digits = torch.tensor([[1, 2, 3], [0, 0, 0], [9, 9, 9], [1, 2, 3]])
    modes = stacked_modes(digits)
    assert modes.tolist() == [123, 0, 999, 123]
    m = mode_metrics(modes, 1000)
    assert m["modes"] == 3.0
    # q = (0.5, 0.25, 0.25) on 3 of 1000 modes: KL = sum q log(1000 q)
    expected = 0.5 * math.log(500) + 2 * 0.25 * math.log(250)
    assert m["mode_kl"] == pytest.approx(expected, rel=1e-12)
    # every mode once: KL 0
    assert mode_metrics(torch.arange(1000), 1000) == {"modes": 1000.0, "mode_kl": 0.0}
