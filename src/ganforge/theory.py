"""The GAN theory on known densities: D*, the value function, KL and JSD by integration.

Goodfellow et al. (2014), Proposition 1 and Theorem 1. For a fixed G with density p_g,

    V(D, G) = E_{x ~ p_data}[log D(x)] + E_{x ~ p_g}[log(1 - D(x))]
            = integral of  p_data(x) log D(x) + p_g(x) log(1 - D(x))  dx,

is maximised pointwise by D*(x) = p_data(x) / (p_data(x) + p_g(x)) (a log y + b log(1 - y)
peaks at y = a / (a + b)), and

    V(D*, G) = -log 4 + 2 JSD(p_data || p_g),

with JSD(p || q) = KL(p || m) / 2 + KL(q || m) / 2, m = (p + q) / 2, in nats (0 <= JSD <= log 2).

Every function takes densities tabulated on a grid of points ``x`` ``[M]`` (1-D, increasing)
and integrates with the trapezoidal rule; 0 log 0 is taken as 0. In 1-D the generator's
density p_g is estimated from its samples by a Gaussian kernel density estimate
(``kde_1d``; bandwidth by Silverman's rule).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.integrate import trapezoid

LOG4 = math.log(4.0)


def integrate(f: np.ndarray, x: np.ndarray) -> float:
    """The integral of ``f`` over the grid ``x`` (trapezoidal rule), both ``[M]``."""
    return float(trapezoid(f, x))


def _xlogy(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a log b with 0 log 0 = 0 (also 0 log(anything) = 0), elementwise; a > 0, b = 0 -> -inf."""
    out = np.zeros(np.broadcast(a, b).shape)
    a_b, b_b = np.broadcast_arrays(a, b)
    pos = a_b > 0
    with np.errstate(divide="ignore"):
        out[pos] = a_b[pos] * np.log(b_b[pos])
    return out


def d_star(p_data: np.ndarray, p_g: np.ndarray) -> np.ndarray:
    """The optimal discriminator p_data / (p_data + p_g) (Goodfellow et al. 2014, Prop. 1).

    Where both densities vanish D* is arbitrary; we return 1/2 there.
    """
    total = p_data + p_g
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(total > 0, p_data / np.where(total > 0, total, 1.0), 0.5)


def value(d: np.ndarray, p_data: np.ndarray, p_g: np.ndarray, x: np.ndarray) -> float:
    """V(D, G) = integral of p_data log D + p_g log(1 - D), D tabulated on ``x`` in [0, 1]."""
    return integrate(_xlogy(p_data, d) + _xlogy(p_g, 1.0 - d), x)


def _xlog_ratio(a: np.ndarray, b: np.ndarray, c: np.ndarray) -> np.ndarray:
    """a (log b - log c), 0 where a = 0: a log(b / c) without forming b / c, which would round
    to 0 or 1 where the densities are tiny (the tails) and turn a finite term into inf."""
    out = np.zeros(np.broadcast(a, b, c).shape)
    a_b, b_b, c_b = np.broadcast_arrays(a, b, c)
    pos = a_b > 0
    with np.errstate(divide="ignore"):
        out[pos] = a_b[pos] * (np.log(b_b[pos]) - np.log(c_b[pos]))
    return out


def value_at_optimum(p_data: np.ndarray, p_g: np.ndarray, x: np.ndarray) -> float:
    """V(D*, G) = integral of p_data log(p_data / s) + p_g log(p_g / s), s = p_data + p_g,
    which equals -log 4 + 2 JSD(p_data || p_g) (Goodfellow et al. 2014, Theorem 1)."""
    s = p_data + p_g
    return integrate(_xlog_ratio(p_data, p_data, s) + _xlog_ratio(p_g, p_g, s), x)


def kl(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """KL(p || q) = integral of p log(p / q), in nats; inf where q = 0 < p."""
    with np.errstate(invalid="ignore"):
        return integrate(_xlog_ratio(p, p, q), x)


def jsd(p: np.ndarray, q: np.ndarray, x: np.ndarray) -> float:
    """JSD(p || q) = KL(p || m) / 2 + KL(q || m) / 2, m = (p + q) / 2, in nats, in [0, log 2].

    Written as (1/2) integral of p log(2p / s) + q log(2q / s), s = p + q, so that m never
    underflows to 0 where p > 0.
    """
    s = p + q
    return 0.5 * integrate(_xlog_ratio(p, 2 * p, s) + _xlog_ratio(q, 2 * q, s), x)


def silverman_bandwidth(samples: np.ndarray) -> float:
    """Silverman's rule of thumb (1986, eq. 3.31): h = 0.9 min(sd, IQR / 1.34) n^(-1/5)."""
    s = np.asarray(samples, dtype=np.float64).reshape(-1)
    sd = float(s.std(ddof=1)) if len(s) > 1 else 0.0
    q75, q25 = np.percentile(s, [75, 25])
    spread = min(sd, float(q75 - q25) / 1.34) or sd
    if spread <= 0:
        spread = max(abs(float(s.mean())), 1.0) * 1e-3  # all samples equal: a narrow spike
    return 0.9 * spread * len(s) ** (-0.2)


def kde_1d(samples: np.ndarray, x: np.ndarray, bandwidth: float | None = None) -> np.ndarray:
    """Gaussian kernel density estimate of 1-D ``samples`` ``[N]`` at the points ``x`` ``[M]``.

    p_hat(x) = (1 / N) sum_i N(x; s_i, h^2), h = ``bandwidth`` or Silverman's rule. Kernels
    are cut at 8 h (a relative weight below e^-32 = 1e-14): each block of points sums only
    the samples within reach, found in the sorted samples.
    """
    s = np.sort(np.asarray(samples, dtype=np.float64).reshape(-1))
    h = bandwidth if bandwidth is not None else silverman_bandwidth(s)
    grid = np.asarray(x, dtype=np.float64)
    order = np.argsort(grid, kind="stable")
    g = grid[order]
    out = np.zeros(len(g))
    reach = 8 * h
    for i in range(0, len(g), 256):  # [256, window] at a time
        block = g[i : i + 256]
        lo, hi = np.searchsorted(s, [block[0] - reach, block[-1] + reach])
        for j in range(lo, hi, 8192):
            u = (block[:, None] - s[None, j : min(hi, j + 8192)]) / h
            out[i : i + 256] += np.exp(-0.5 * u * u).sum(1)
    result = np.empty(len(g))
    result[order] = out / (len(s) * h * math.sqrt(2 * math.pi))
    return result


def grid_for(*ranges: tuple[float, float], n: int = 2001, pad: float = 0.0) -> np.ndarray:
    """An even grid ``[n]`` covering every (lo, hi) range, widened by ``pad`` on each side."""
    lo = min(r[0] for r in ranges) - pad
    hi = max(r[1] for r in ranges) + pad
    return np.linspace(lo, hi, n)
