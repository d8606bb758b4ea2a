"""Mode counting on Gaussian mixtures, as the mode-collapse papers measure it.

Srivastava et al. (2017, VEEGAN) and Lin et al. (2018, PacGAN, Section 5.1):

- each sample is assigned to its nearest mode centre mu_k (Euclidean distance);
- it is *high quality* when ||x - mu_k|| <= 3 sigma_k;
- a mode is *captured* when it holds at least 1/5 of the high-quality samples it should hold,
  count_k >= 0.2 * n * w_k (PacGAN: with 2,500 samples on 25 equal modes, at least 20 of the
  100 expected);
- the reverse KL, KL(q || w) = sum_k q_k log(q_k / w_k), between the histogram q of the
  high-quality samples over the modes and the mixture weights w (0 when every mode holds its
  share; inf when no sample is high quality).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from ganforge.data.toy import Mixture

HQ_STDS = 3.0  # a sample within 3 sigma of its nearest mode is high quality
CAPTURE_SHARE = 0.2  # a mode is captured with >= 1/5 of its expected high-quality samples


def _points(samples: np.ndarray | torch.Tensor, dim: int) -> np.ndarray:
    """Samples as ``[N, D]`` float64 numpy (1-D ones may come as ``[N]``)."""
    x = samples.detach().cpu().double().numpy() if torch.is_tensor(samples) else samples
    x = np.asarray(x, dtype=np.float64)
    if x.ndim == 1 and dim == 1:
        x = x[:, None]
    if x.ndim != 2 or x.shape[1] != dim:
        raise ValueError(f"expected samples [N, {dim}] for a {dim}-D mixture, got {list(x.shape)}")
    if len(x) == 0:
        raise ValueError("no samples given")
    return x


def assign_modes(
    samples: np.ndarray | torch.Tensor, mixture: Mixture
) -> tuple[np.ndarray, np.ndarray]:
    """Each sample's nearest mode ``[N]`` int64, and whether it is high quality ``[N]`` bool."""
    x = _points(samples, mixture.dim)
    nearest = np.empty(len(x), dtype=np.int64)
    dist = np.empty(len(x))
    for i in range(0, len(x), 65_536):  # [chunk, K] distances, not [N, K] at once
        d = np.linalg.norm(x[i : i + 65_536, None, :] - mixture.means[None], axis=-1)
        nearest[i : i + 65_536] = d.argmin(1)
        dist[i : i + 65_536] = d.min(1)
    return nearest, dist <= HQ_STDS * mixture.stds[nearest]


def mode_metrics(samples: np.ndarray | torch.Tensor, mixture: Mixture) -> dict[str, Any]:
    """The mode metrics of ``samples`` ``[N, D]`` (or ``[N]`` in 1-D) against ``mixture``.

    Returns a JSON-ready dict:

    - ``modes``: number of modes captured (see the module docstring);
    - ``n_modes``: K, the number of modes of the mixture;
    - ``hq_share``: share of samples within 3 std of their nearest mode, in [0, 1];
    - ``kl``: KL(q || w) in nats between the high-quality histogram q and the weights w
      (``inf`` when no sample is high quality);
    - ``counts``: high-quality samples per mode, ``[K]`` ints;
    - ``n``: number of samples.
    """
    nearest, hq = assign_modes(samples, mixture)
    n, k = len(nearest), mixture.k
    counts = np.bincount(nearest[hq], minlength=k)
    captured = counts >= CAPTURE_SHARE * n * mixture.weights
    total = int(counts.sum())
    if total == 0:
        kl = math.inf
    else:
        q = counts / total
        used = q > 0  # 0 log 0 = 0; q_k > 0 on a mode of weight 0 gives inf, as it should
        with np.errstate(divide="ignore"):
            kl = float(np.sum(q[used] * np.log(q[used] / mixture.weights[used])))
    return {
        "modes": int(captured.sum()),
        "n_modes": k,
        "hq_share": total / n,
        "kl": kl,
        "counts": counts.tolist(),
        "n": n,
    }
