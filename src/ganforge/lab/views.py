"""What the lab's page draws, as pure functions of arrays: the plane's grid, the densities of
the data and of G smoothed at one bandwidth, D* and the JSD and values on that grid, the image
of a grid of z, and thinning of the curves.

The 2-D theory at a resolution h. The course's identities hold for any pair of densities; in
2-D the density of G can only be estimated from its samples, and the toy modes are narrow
(ring8: std 0.02), so both densities are smoothed by the same Gaussian kernel of std h:

    p_h = p_data * N(0, h^2 I)   (a mixture: its stds become sqrt(sigma_k^2 + h^2), exact)
    q_h = p_g * N(0, h^2 I)      (a histogram of G's samples on the grid, blurred by h)

and the lab shows D*_h = p_h / (p_h + q_h), JSD_h = JSD(p_h || q_h), V(D, G) and V(D*_h, G) =
-log 4 + 2 JSD_h on the grid. Smoothing both sides can only lower the JSD (data-processing
inequality: JSD_h <= JSD) and JSD_h = 0 only when p_g = p_data (a Gaussian blur loses
nothing), so JSD_h falls to 0 exactly when the true JSD does. The sums run over the cells of
the grid and one cell more, everything off the grid.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy.ndimage import gaussian_filter

from ganforge.data.toy import Mixture

Extent = tuple[float, float, float, float]  # x0, x1, y0, y1
LOG2 = math.log(2.0)


def cell_centres(extent: Extent, n: int) -> tuple[np.ndarray, np.ndarray]:
    """The centres of an ``n`` x ``n`` grid of cells over ``extent``: xs ``[n]``, ys ``[n]``."""
    x0, x1, y0, y1 = extent
    dx, dy = (x1 - x0) / n, (y1 - y0) / n
    return x0 + dx * (np.arange(n) + 0.5), y0 + dy * (np.arange(n) + 0.5)


def grid_points(extent: Extent, n: int) -> np.ndarray:
    """The cell centres as points ``[n * n, 2]``, row by row (row = y, as an image)."""
    xs, ys = cell_centres(extent, n)
    gx, gy = np.meshgrid(xs, ys)
    return np.stack([gx.ravel(), gy.ravel()], axis=1)


def cell_area(extent: Extent, n: int) -> float:
    x0, x1, y0, y1 = extent
    return (x1 - x0) * (y1 - y0) / (n * n)


def bandwidth(extent: Extent, n: int) -> float:
    """h: two cells of the grid along x (the blur stays well resolved by the grid)."""
    return 2.0 * (extent[1] - extent[0]) / n


def smoothed_mixture(mixture: Mixture, h: float) -> Mixture:
    """p_data * N(0, h^2 I): the same mixture with each std sqrt(sigma_k^2 + h^2)."""
    return Mixture(mixture.weights, mixture.means, np.sqrt(mixture.stds**2 + h * h))


def sample_masses(points: np.ndarray, extent: Extent, n: int, h: float) -> np.ndarray:
    """The share of ``points`` ``[N, 2]`` in each cell after a Gaussian blur of std ``h``,
    ``[n, n]`` (row = y): a kernel density estimate times the cell area. Points off the grid,
    and blur that spills off it, are lost: the sum is the share that stays on the grid."""
    x0, x1, y0, y1 = extent
    hist, _, _ = np.histogram2d(points[:, 1], points[:, 0], bins=n, range=[[y0, y1], [x0, x1]])
    sigma = (h * n / (x1 - x0), h * n / (y1 - y0))  # in cells: (rows = y, columns = x)
    blurred = gaussian_filter(hist, sigma=sigma, mode="constant", truncate=4.0)
    return blurred / max(len(points), 1)


def density_masses(
    mixture: Mixture | None, data: np.ndarray, extent: Extent, n: int, h: float
) -> np.ndarray:
    """p_h's mass per cell ``[n, n]``: exact for a mixture (pdf at the centre times the cell's
    area), else the blurred histogram of the data points."""
    if mixture is None:
        return sample_masses(data, extent, n, h)
    pdf = smoothed_mixture(mixture, h).pdf(grid_points(extent, n))
    return (pdf * cell_area(extent, n)).reshape(n, n)


def _xlog(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """a log b, 0 where a = 0."""
    out = np.zeros_like(a)
    pos = a > 0
    out[pos] = a[pos] * np.log(b[pos])
    return out


def theory_2d(
    p: np.ndarray, q: np.ndarray, logits: np.ndarray, logit_out: float = 0.0
) -> dict[str, Any]:
    """D*, JSD and the values on a grid of cell masses ``p`` (data) and ``q`` (G), ``[n, n]``
    each summing to at most 1, with one more cell for the mass off the grid (1 - sum); D's
    logits on the cells ``[n, n]`` and ``logit_out`` for the cell off the grid.

    JSD_h = 1/2 sum p log(2p / s) + q log(2q / s), s = p + q; V(D*, G) = sum p log(p / s) +
    q log(q / s) = -log 4 + 2 JSD_h; V(D, G) = sum p log D + q log(1 - D), log D =
    -softplus(-logit). Sums over cells: the JSD of the two smoothed densities seen through
    the cells, which by the data-processing inequality is at most theirs.
    """
    p_cells = np.append(p.ravel(), max(0.0, 1.0 - float(p.sum())))
    q_cells = np.append(q.ravel(), max(0.0, 1.0 - float(q.sum())))
    l_cells = np.append(logits.ravel(), logit_out)
    s = p_cells + q_cells
    safe = np.where(s > 0, s, 1.0)
    d_star = np.where(s > 0, p_cells / safe, 0.5)
    half = _xlog(p_cells, 2 * p_cells / safe) + _xlog(q_cells, 2 * q_cells / safe)
    jsd = 0.5 * float(half.sum())
    v_dstar = float((_xlog(p_cells, p_cells / safe) + _xlog(q_cells, q_cells / safe)).sum())
    log_d = -np.logaddexp(0.0, -l_cells)  # log sigmoid(l)
    log_1md = -np.logaddexp(0.0, l_cells)  # log(1 - sigmoid(l))
    v_d = float((p_cells * log_d + q_cells * log_1md).sum())
    return {
        "d_star": d_star[:-1].reshape(p.shape),
        "jsd": min(max(jsd, 0.0), LOG2),
        "v_d": v_d,
        "v_dstar": v_dstar,
        "off_grid": float(q_cells[-1]),
    }


def z_grid(latent_dim: int, lines: int = 11, points: int = 25, span: float = 2.5) -> np.ndarray:
    """A square grid in the plane of z's first two coordinates (the others 0), as ``lines``
    horizontal then ``lines`` vertical polylines of ``points`` each: ``[2 lines, points, D]``
    with z_1, z_2 in [-span, span]. With one latent coordinate: the single line z_1."""
    ticks = np.linspace(-span, span, lines)
    along = np.linspace(-span, span, points)
    out = np.zeros((2 * lines, points, latent_dim), dtype=np.float32)
    if latent_dim == 1:
        out[:, :, 0] = along
        return out[:1]
    for i, t in enumerate(ticks):
        out[i, :, 0], out[i, :, 1] = along, t  # z_2 fixed: a "horizontal" line
        out[lines + i, :, 0], out[lines + i, :, 1] = t, along
    return out


def thin(rows: list[Any], most: int) -> list[Any]:
    """At most ``most`` rows: every other one of the older half dropped until they fit (the
    newest rows stay dense)."""
    while len(rows) > most:
        half = len(rows) // 2
        rows = rows[:half:2] + rows[half:]
    return rows


def rounded(a: np.ndarray | Sequence[float], digits: int = 4) -> list[Any]:
    """An array as nested lists of floats rounded to ``digits`` decimals (small JSON)."""
    return np.round(np.asarray(a, dtype=np.float64), digits).tolist()
