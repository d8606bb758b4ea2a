"""Class-conditional runs: which labels to draw, grids with one row per class, checks of the
training data's labels, and per-class evaluation (does G obey the label? does it collapse
within a class?)."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganforge.data import Dataset
from ganforge.errors import ConfigError, GanforgeError
from ganforge.nets.conditional import is_conditional

Tensor = torch.Tensor


def num_classes(g: nn.Module) -> int:
    """K of a conditional G, 0 for an unconditional one."""
    return int(getattr(g, "num_classes", 0)) if is_conditional(g) else 0


def sampling_labels(g: nn.Module, n: int, label: int | None = None) -> Tensor | None:
    """The labels of ``n`` samples: all ``label``, or 0, 1, ..., K - 1, 0, 1, ... (every class
    equally often, one row per class in ``class_grid``); None for an unconditional G."""
    k = num_classes(g)
    if k == 0:
        if label is not None:
            raise GanforgeError("--label needs a conditional run (model.cond), this one is not")
        return None
    if label is None:
        return torch.arange(n) % k
    if not 0 <= label < k:
        raise GanforgeError(f"--label must be a class in 0..{k - 1}, got {label}")
    return torch.full((n,), label, dtype=torch.long)


def class_grid(x: Tensor, y: Tensor, k: int) -> tuple[Tensor, int]:
    """Images ``[N, C, H, W]`` with labels ``y`` arranged one row per class (0 at the top), as
    ``(cells [K * M, C, H, W], M)`` for ``image_grid(cells, nrow=M)``; M = the largest class's
    count, short rows padded with blank (mid-grey) cells."""
    per = [x[y == c] for c in range(k)]
    m = max(1, *(len(p) for p in per))
    blank = torch.zeros(1, *x.shape[1:], dtype=x.dtype)
    rows = [torch.cat([p, blank.expand(m - len(p), *x.shape[1:])]) for p in per]
    return torch.cat(rows), m


def check_labels(data: Dataset, k: int) -> None:
    """A conditional run needs labels 0..k-1 on every training sample."""
    if data.y is None:
        raise ConfigError(
            f"model.cond needs labelled data, and {data.name} has no labels (an image folder "
            "gets them from class sub-folders)"
        )
    lo, hi = int(data.y.min()), int(data.y.max())
    if lo < 0 or hi >= k:
        raise ConfigError(
            f"{data.name} has labels {lo}..{hi}, outside 0..{k - 1}: set model.num_classes={hi + 1}"
        )


def class_figures(
    c: int, f_real: Tensor, f_fake: Tensor, p_fake: Tensor | None
) -> dict[str, float | None]:
    """The figures of class ``c`` from features of its real images ``f_real`` ``[M, D]`` and of
    samples asked to be ``c`` ``f_fake`` ``[N, D]``, with the classifier's probabilities on the
    samples ``p_fake`` ``[N, K]`` (None: the network has no logits, accuracy is None):

    - accuracy: the share of samples the classifier assigns to c (does G obey the label?);
    - recall and precision (Kynkaanniemi et al. 2019, k = 3) within the class: does G cover
      the class's variety (recall), are its samples like the class's images (precision)?
    - fid: intra-class FID; fid_floor: the FID between the two halves of ``f_real``.
    """
    from ganforge.metrics.fid import fid
    from ganforge.metrics.prdc import prdc

    half = len(f_real) // 2
    pr = prdc(f_real, f_fake)
    accuracy = None if p_fake is None else float((p_fake.argmax(1) == c).double().mean())
    return {
        "label": c,
        "accuracy": accuracy,
        "recall": pr["recall"],
        "precision": pr["precision"],
        "fid": fid(f_real, f_fake),
        "fid_floor": fid(f_real[:half], f_real[half:]),
    }


@torch.no_grad()
def evaluate_classes(
    run: str | Path,
    real_x: Tensor,
    real_y: Tensor,
    *,
    n_per_class: int = 500,
    seed: int = 0,
    features: nn.Module | None = None,
    checkpoint_file: Path | None = None,
) -> dict[str, Any]:
    """Per-class figures (``class_figures``) of a conditional run's G (newest checkpoint, or
    ``checkpoint_file``) against labelled real images ``real_x`` ``[M, C, H, W]`` in [-1, 1]
    with labels ``real_y`` ``[M]``: for each class c, ``n_per_class`` samples G(z, c) and the
    real images of class c (at most ``n_per_class``, drawn at random) go through the feature
    network (the shipped MNIST classifier unless ``features`` is given).

    Returns ``{"classes": [row per class], "accuracy": mean over classes, "min_recall",
    "n_per_class"}``, as ``ganforge eval`` writes it under ``per_class`` in eval.json.
    """
    from ganforge.metrics.features import extract, load_feature_net
    from ganforge.sample import generate, load_generator

    g = load_generator(run, checkpoint_file=checkpoint_file)
    k = num_classes(g)
    if k == 0:
        raise GanforgeError(f"{run}: not a conditional run (model.cond): no classes to evaluate")
    net = features if features is not None else load_feature_net()
    gen = torch.Generator().manual_seed(seed)
    latent = int(g.latent_dim)  # type: ignore[arg-type]
    rows = []
    for c in range(k):
        real_c = real_x[real_y == c]
        if len(real_c) < 8:
            raise GanforgeError(f"only {len(real_c)} real images of class {c}: too few to compare")
        real_c = real_c[torch.randperm(len(real_c), generator=gen)[:n_per_class]]
        z = torch.randn(n_per_class, latent, generator=gen)
        fake = generate(g, z, y=torch.full((n_per_class,), c, dtype=torch.long))
        f_fake, p_fake = extract(net, fake)
        f_real, _ = extract(net, real_c)
        rows.append(class_figures(c, f_real, f_fake, p_fake))
    accs = [a for r in rows if (a := r["accuracy"]) is not None]
    return {
        "classes": rows,
        "accuracy": float(np.mean(accs)) if len(accs) == k else None,
        "min_recall": min(float(r["recall"] or 0.0) for r in rows),
        "n_per_class": n_per_class,
    }
