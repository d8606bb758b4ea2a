"""Measures from a classifier's outputs: the classifier score, the class histogram, the classes
covered and the KL divergence to the data's class distribution; Stacked MNIST's modes.

Classifier score: the Inception Score (Salimans et al. 2016) computed with another classifier,

    score = exp( E_x KL( p(y|x) || p(y) ) ),   p(y) = E_x p(y|x),

between 1 (every sample gets the same class distribution) and the number of classes (each
sample is one class for sure, and the classes are equally frequent).

Mode histogram (Metz et al. 2017; Srivastava et al. 2017, VEEGAN; Lin et al. 2018, PacGAN): each
sample's mode is the classifier's most likely class; a mode is covered when at least one
sample falls in it, and

    KL(q || p) = sum_c q_c log(q_c / p_c)

compares the samples' mode frequencies q to the data's p (0 log 0 = 0).
"""

from __future__ import annotations

import math

import torch


def classifier_score(probs: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) of class probabilities ``[N, K]``."""
    p = probs.double()
    marginal = p.mean(0, keepdim=True)  # p(y): [1, K]
    # p log(p / m), written with xlogy so that 0 log 0 = 0
    kl = (torch.xlogy(p, p) - torch.xlogy(p, marginal)).sum(1)  # [N]
    return math.exp(float(kl.mean()))


def histogram(labels: torch.Tensor, classes: int) -> torch.Tensor:
    """Frequencies ``[classes]`` (summing to 1) of integer ``labels`` ``[N]``."""
    counts = torch.bincount(labels.long(), minlength=classes)[:classes].double()
    return counts / counts.sum()


def kl_divergence(q: torch.Tensor, p: torch.Tensor) -> float:
    """KL(q || p) = sum q log(q / p) of two histograms; infinite where q > 0 = p."""
    q, p = q.double(), p.double()
    if bool(((q > 0) & (p == 0)).any()):
        return math.inf
    return float((torch.xlogy(q, q) - torch.xlogy(q, p)).sum())


def class_metrics(
    probs: torch.Tensor, data_hist: torch.Tensor | None = None
) -> dict[str, float | list[float]]:
    """Classifier score, histogram, classes covered (>= 1 sample) and KL to ``data_hist``
    (default: uniform) of the class probabilities ``[N, K]`` of N samples."""
    classes = probs.shape[1]
    q = histogram(probs.argmax(1), classes)
    uniform = torch.full((classes,), 1.0 / classes, dtype=torch.float64)
    p = data_hist if data_hist is not None else uniform
    return {
        "classifier_score": classifier_score(probs),
        "classes_covered": float((q > 0).sum()),
        "class_kl": kl_divergence(q, p),
        "class_histogram": q.tolist(),
    }


def stacked_modes(channel_labels: torch.Tensor) -> torch.Tensor:
    """The Stacked MNIST mode of digits ``[N, 3]`` (one per channel, R G B): 100 R + 10 G + B,
    in 0..999."""
    d = channel_labels.long()
    return d[:, 0] * 100 + d[:, 1] * 10 + d[:, 2]


def mode_metrics(modes: torch.Tensor, n_modes: int) -> dict[str, float]:
    """Modes covered (>= 1 sample) out of ``n_modes`` and KL(samples' modes || uniform)."""
    q = histogram(modes, n_modes)
    return {
        "modes": float((q > 0).sum()),
        "mode_kl": kl_divergence(q, torch.full((n_modes,), 1.0 / n_modes, dtype=torch.float64)),
    }
