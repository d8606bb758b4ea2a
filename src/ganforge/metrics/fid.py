"""Distances between two sets of features: FID and KID, with bootstrap replicates.

FID (Heusel et al. 2017): fit a Gaussian to each set of features and take the Fréchet
(2-Wasserstein) distance between the two,

    FID = ||mu_r - mu_f||^2 + Tr(S_r + S_f - 2 (S_r S_f)^(1/2)).

KID (Binkowski et al. 2018): the squared maximum mean discrepancy with the cubic polynomial
kernel k(a, b) = (a.b / d + 1)^3, estimated without bias (the U-statistic, pairs i != j),

    KID = 1/(m(m-1)) sum_{i!=j} k(r_i, r_j) + 1/(n(n-1)) sum_{i!=j} k(f_i, f_j)
          - 2/(mn) sum_{i,j} k(r_i, f_j).

Both take features ``[N, D]``, not images: ganforge runs the feature network once per set and
reuses the features for every metric and every bootstrap replicate. torchmetrics'
``FrechetInceptionDistance`` and ``KernelInceptionDistance`` accept a custom feature module;
here that module is the identity on features (``_Given``), so their statistics and maths are
used as they are, on features computed once.
"""

from __future__ import annotations

import warnings

import torch
from torch import nn

# torchmetrics' image metrics are imported where they are used: they pull in scipy (~2 s), which
# every `ganforge train` would otherwise pay at start-up for metrics it may never compute.

KID_SUBSETS = 100  # subsets KID is averaged over (torchmetrics' default)
KID_SUBSET_SIZE = 1000  # samples per subset (torchmetrics' default), capped at the set sizes


class _Given(nn.Module):
    """The 'feature network' handed to torchmetrics: the features are already computed."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.num_features = dim  # torchmetrics reads this instead of probing with an image

    def forward(self, f: torch.Tensor) -> torch.Tensor:
        return f


def _check(real: torch.Tensor, fake: torch.Tensor, least: int = 2) -> None:
    if real.ndim != 2 or fake.ndim != 2 or real.shape[1] != fake.shape[1]:
        raise ValueError(
            f"expected features [N, D] of one width, got {list(real.shape)} and {list(fake.shape)}"
        )
    if min(len(real), len(fake)) < least:
        raise ValueError(f"need at least {least} samples in each set")


class FID:
    """FID of features, reusing one torchmetrics metric (float64 sums) for many resamples."""

    def __init__(self, dim: int) -> None:
        from torchmetrics.image.fid import FrechetInceptionDistance

        self.metric = FrechetInceptionDistance(feature=_Given(dim))

    def __call__(self, real: torch.Tensor, fake: torch.Tensor) -> float:
        _check(real, fake)
        m = self.metric
        m.reset()
        m.update(real.double(), real=True)
        m.update(fake.double(), real=False)
        # torchmetrics takes the square root through eigenvalues of S_r S_f; rounding can leave a
        # tiny negative value for identical sets.
        return max(float(m.compute()), 0.0)


def fid(real: torch.Tensor, fake: torch.Tensor) -> float:
    """FID between features ``real`` ``[M, D]`` and ``fake`` ``[N, D]``."""
    _check(real, fake)
    return FID(real.shape[1])(real, fake)


def kid(
    real: torch.Tensor,
    fake: torch.Tensor,
    subsets: int = KID_SUBSETS,
    subset_size: int = KID_SUBSET_SIZE,
    seed: int = 0,
) -> tuple[float, float]:
    """KID's mean and standard deviation over ``subsets`` random subsets of ``subset_size``
    samples of each set (capped at the smaller set), drawn with ``seed``: torchmetrics'
    ``KernelInceptionDistance`` on features."""
    from torchmetrics.image.kid import KernelInceptionDistance

    _check(real, fake)
    size = min(subset_size, len(real), len(fake))
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "will save all extracted features"
        m = KernelInceptionDistance(
            feature=_Given(real.shape[1]), subsets=subsets, subset_size=size
        )
    m.update(real.double(), real=True)
    m.update(fake.double(), real=False)
    with torch.random.fork_rng(devices=[]):  # its subsets come from torch's global generator
        torch.manual_seed(seed)
        mean, std = m.compute()
    return float(mean), float(std)


def _poly(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """k(a, b) = (a.b / d + 1)^3 for every pair: ``[len(a), len(b)]``."""
    return (a @ b.T / a.shape[1] + 1.0) ** 3


def _weighted_sum(
    a: torch.Tensor, wa: torch.Tensor, b: torch.Tensor, wb: torch.Tensor
) -> torch.Tensor:
    """sum_ij wa[r, i] wb[r, j] k(a_i, b_j) for each row r of the weights ``[R, len(a)]``,
    ``[R, len(b)]``; the kernel matrix is built in blocks of rows, never whole."""
    total = torch.zeros(len(wa), dtype=torch.float64)
    for i in range(0, len(a), 1024):
        k = _poly(a[i : i + 1024], b)  # [block, len(b)]
        total += ((k @ wb.T) * wa[:, i : i + 1024].T).sum(0)  # [block, R] -> [R]
    return total


def kid_weighted(
    real: torch.Tensor, fake: torch.Tensor, w_real: torch.Tensor, w_fake: torch.Tensor
) -> torch.Tensor:
    """The unbiased KID of whole weighted sets, one value per row of the weights ``[R, M]`` and
    ``[R, N]`` (counts of a bootstrap resample, or all ones for the plain sets).

    A point drawn w_i times stands for w_i copies; pairs of copies of one point are left out,
    as i = j is in the U-statistic: sum_{i!=j} -> w^T K w - sum_i w_i^2 k(x_i, x_i), over
    (sum w)^2 - sum w_i^2 pairs. With all weights 1 this is the module docstring's formula.
    """
    _check(real, fake)
    real, fake = real.double(), fake.double()
    w_real, w_fake = w_real.double(), w_fake.double()
    d = real.shape[1]
    diag_r = ((real * real).sum(1) / d + 1.0) ** 3  # k(x_i, x_i): [M]
    diag_f = ((fake * fake).sum(1) / d + 1.0) ** 3

    def within(x: torch.Tensor, w: torch.Tensor, diag: torch.Tensor) -> torch.Tensor:
        pairs = w.sum(1) ** 2 - (w * w).sum(1)
        return (_weighted_sum(x, w, x, w) - (w * w) @ diag) / pairs

    cross = _weighted_sum(real, w_real, fake, w_fake) / (w_real.sum(1) * w_fake.sum(1))
    return within(real, w_real, diag_r) + within(fake, w_fake, diag_f) - 2 * cross
