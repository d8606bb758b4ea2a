"""Precision, recall, density and coverage of features, from k-nearest-neighbour balls.

Each sample x gets the ball B(x, NND_k(x)) whose radius is the distance to its k-th nearest
neighbour in its own set (itself excluded).

Precision and recall (Kynkaanniemi et al. 2019, "Improved precision and recall", k = 3):

    precision = 1/N sum_j 1[fake_j in some real ball]
    recall    = 1/M sum_i 1[real_i in some fake ball]

Density and coverage (Naeem et al. 2020, "Reliable fidelity and diversity metrics", k = 5):

    density  = 1/(kN) sum_j sum_i 1[fake_j in B(real_i, NND_k(real_i))]
    coverage = 1/M sum_i 1[the nearest fake to real_i lies in B(real_i, NND_k(real_i))]

Every metric is the mean of a per-sample quantity (``PerSample``): an indicator, or for
density a count / k. The bootstrap of ``evaluate`` resamples those per-sample values with the
balls of the whole sets kept fixed.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

K_PR = 3  # Kynkaanniemi et al. 2019
K_DC = 5  # Naeem et al. 2020
BLOCK = 1024  # rows of a distance matrix held at once: [BLOCK, N] floats


def knn_radii(x: torch.Tensor, k: int) -> torch.Tensor:
    """Distance from each row of ``x`` ``[N, D]`` to its k-th nearest other row: ``[N]``."""
    if not 1 <= k < len(x):
        raise ValueError(f"k = {k} needs more than k samples, got {len(x)}")
    out = []
    for i in range(0, len(x), BLOCK):
        d = torch.cdist(x[i : i + BLOCK], x)  # [block, N]
        # k + 1 smallest: the first is the point itself (distance 0)
        out.append(d.topk(k + 1, dim=1, largest=False).values[:, k])
    return torch.cat(out)


@dataclass
class PerSample:
    """Per-sample values whose means are the metrics: ``[N]`` for fakes, ``[M]`` for reals."""

    precision: torch.Tensor  # [N] fake_j inside some real ball (k = 3)
    recall: torch.Tensor  # [M] real_i inside some fake ball (k = 3)
    density: torch.Tensor  # [N] real balls (k = 5) holding fake_j, divided by k
    coverage: torch.Tensor  # [M] real_i's ball (k = 5) holds its nearest fake

    def means(self) -> dict[str, float]:
        return {k: float(v.double().mean()) for k, v in vars(self).items()}


def per_sample(
    real: torch.Tensor, fake: torch.Tensor, k_pr: int = K_PR, k_dc: int = K_DC
) -> PerSample:
    """The per-sample values of the four metrics for features ``real`` ``[M, D]`` and
    ``fake`` ``[N, D]``."""
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"expected features [N, D] of one width, got {list(real.shape)} and {list(fake.shape)}"
        )
    real, fake = real.double(), fake.double()  # distances of near-equal points need the digits
    r_real_pr, r_fake_pr = knn_radii(real, k_pr), knn_radii(fake, k_pr)
    r_real_dc = knn_radii(real, k_dc)
    prec, dens = [], []
    for j in range(0, len(fake), BLOCK):
        d = torch.cdist(fake[j : j + BLOCK], real)  # [block, M]
        prec.append((d <= r_real_pr).any(1))
        dens.append((d <= r_real_dc).sum(1).double() / k_dc)
    rec, cov = [], []
    for i in range(0, len(real), BLOCK):
        d = torch.cdist(real[i : i + BLOCK], fake)  # [block, N]
        rec.append((d <= r_fake_pr).any(1))
        cov.append(d.min(1).values <= r_real_dc[i : i + BLOCK])
    return PerSample(
        precision=torch.cat(prec).double(),
        recall=torch.cat(rec).double(),
        density=torch.cat(dens),
        coverage=torch.cat(cov).double(),
    )


def prdc(
    real: torch.Tensor, fake: torch.Tensor, k_pr: int = K_PR, k_dc: int = K_DC
) -> dict[str, float]:
    """``{"precision", "recall", "density", "coverage"}`` of features ``fake`` against ``real``."""
    return per_sample(real, fake, k_pr, k_dc).means()
