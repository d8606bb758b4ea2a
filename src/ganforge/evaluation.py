"""Evaluating a run: its generator against real data, shared by ``ganforge eval``, ``ganforge
ablate``, the FID probe of training (``train.eval_every``) and the reports.

The measures themselves are pure functions of tensors in ``ganforge.metrics`` (the protocol:
metrics/compare.py); this module brings the run's generator, its data and the feature network
to them.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ganforge import checkpoint
from ganforge.data import Dataset, from_config, load_dataset, mixture_of
from ganforge.data.toy import Mixture
from ganforge.errors import ConfigError, DataError, GanforgeError
from ganforge.metrics.compare import (
    BOOTSTRAP,
    DEFAULT_N,
    MIN_N,
    PER_CLASS_REAL,
    Points,
    build_sets,
    class_figures,
    compare,
    features_of,
    toy_figures,
)
from ganforge.metrics.features import MnistNet, extract, load_feature_net, mnist_net
from ganforge.metrics.fid import FID
from ganforge.metrics.score import histogram
from ganforge.nets import generate
from ganforge.nets.conditional import num_classes
from ganforge.runs import RunFolder, load_generator, sample, sample_filtered

Tensor = torch.Tensor


def known_mixture(spec: str) -> Mixture | None:
    """The Gaussian mixture behind a data spec (ring8, grid25, a mixture file...), or None for
    points that are not a known mixture."""
    try:
        return mixture_of(spec)
    except GanforgeError:
        return None


def evaluate_run(
    run: str | Path,
    *,
    n: int | None = None,
    real: str | None = None,
    features: str | Path | nn.Module | None = None,
    bootstrap: int = BOOTSTRAP,
    seed: int = 0,
    best: bool = False,
    on_stage: Callable[[str], None] | None = None,
    sample_filter: str | None = None,
) -> dict[str, Any]:
    """Evaluate the generator of the run folder ``run`` (its newest checkpoint, or
    ``checkpoints/best.safetensors`` with ``best``) against real data.

    ``real``: a data spec as ``--data`` takes (default: the run's training data), conformed to
    the run's image size and channels. ``n``: samples (default: up to 5,000, at most half the
    real set, since R_a and R_b need n each). ``features``: a network (module or TorchScript /
    torch.export file; default: the shipped MNIST classifier; points are their own features).
    ``sample_filter``: "none" or a filter of ``nets.filters.FILTERS`` (default: the run's
    ``train.sample_filter``, so that what is judged is what ``ganforge sample`` writes).
    Returns the dict that ``ganforge eval`` writes as eval.json (docs/evaluation.md).
    """
    stage = on_stage or (lambda text: None)
    folder = RunFolder(Path(run))
    cfg = folder.read_config()
    ckpt = folder.best_checkpoint if best else folder.latest_checkpoint()
    if not ckpt.is_file():
        raise GanforgeError(
            f"{run}: no {folder.best_checkpoint.name} (train with train.eval_every=N to keep one)"
        )
    if bootstrap < 1:
        raise ConfigError(f"--bootstrap must be at least 1, got {bootstrap}")
    stage("loading the real data")
    if real is None:
        data = from_config(cfg.data)
    else:
        data = load_dataset(
            real, image_size=cfg.data.image_size or None, channels=cfg.data.channels or None
        )
    largest = len(data) // 2
    if n is None:
        n = min(DEFAULT_N, largest)
    if n < MIN_N:
        raise ConfigError(f"--n must be at least {MIN_N}, got {n}")
    if n > largest:
        raise ConfigError(
            f"--n {n} needs {2 * n} real samples (two disjoint sets of n for the real floor); "
            f"{data.name} has {len(data)}: use --n {largest} or a larger --real"
        )
    perm = torch.randperm(len(data), generator=torch.Generator().manual_seed(seed))
    real_x = data.batch(perm[: 2 * n])
    name = sample_filter or cfg.train.sample_filter
    stage(f"drawing {n} samples" + ("" if name == "none" else f" ({name})"))
    if name == "none":
        fake = sample(folder.path, n, seed=seed, checkpoint_file=ckpt)
    else:
        fake = sample_filtered(folder.path, n, name, seed=seed, checkpoint_file=ckpt).samples
    if tuple(fake.shape[1:]) != tuple(real_x.shape[1:]):
        raise DataError(
            f"the run's samples have shape {list(fake.shape[1:])} but the real data "
            f"{data.name} has {list(real_x.shape[1:])}"
        )
    if isinstance(features, nn.Module):
        net, net_name = features, type(features).__name__
    elif features is not None:
        net, net_name = load_feature_net(features), str(features)
    elif data.kind == "points":
        net, net_name = Points(), "none (the points themselves)"
    else:
        net, net_name = load_feature_net(None), "mnist (shipped with ganforge)"
    stage("computing features")
    sets = build_sets(net, real_x, fake)
    stage(f"computing the metrics and {bootstrap} bootstrap resamples")
    metrics = compare(sets, bootstrap, seed)
    out: dict[str, Any] = {
        "run": str(folder.path),
        "checkpoint": ckpt.name,
        "step": checkpoint.step_of(ckpt),
        "real": data.name,
        "filter": name,
        "n": n,
        "feature_net": net_name,
        "bootstrap": bootstrap,
        "seed": seed,
        "metrics": metrics,
    }
    if data.kind == "points" and (mixture := known_mixture(real or cfg.data.source)) is not None:
        metrics |= toy_figures(mixture, real_x[n:], fake, bootstrap, seed)
    if sets.fake_probs is not None and sets.ref_probs is not None:
        k = sets.fake_probs.shape[1]
        out["class_histogram"] = {
            "samples": histogram(sets.fake_probs.argmax(1), k).tolist(),
            "real": histogram(sets.ref_probs.argmax(1), k).tolist(),
        }
    if cfg.model.cond != "none" and data.y is not None and data.kind == "image":
        k = cfg.model.num_classes
        stage(f"per-class figures ({k} classes)")
        sel = perm[:PER_CLASS_REAL]  # the labelled real images the classes are drawn from
        out["per_class"] = evaluate_classes(
            folder.path,
            data.batch(sel),
            data.y[sel],
            n_per_class=max(MIN_N, n // k),
            seed=seed,
            features=net,
            checkpoint_file=ckpt,
        )
    return out


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


# --- FID during training (train.eval_every): a small, fixed sample of G against real data.
# The real features are computed once; every probe draws G's samples from the same fixed z (its
# own generator, so training's random stream is untouched) and returns their FID against those
# real features. With train.eval_n samples (default 1,000) the figure is biased upwards and
# noisier than ``ganforge eval``'s, but comparable from step to step, which is what keeping the
# best checkpoint needs.

PROBE_SEED_OFFSET = 7919  # the probe's z and real subset come from seed + this: not the grids'


class FidProbe:
    """``probe(G)`` -> FID of G's samples against ``n`` real samples of ``data``."""

    def __init__(
        self, data: Dataset, n: int, latent_dim: int, seed: int, device: torch.device
    ) -> None:
        if data.kind == "image":
            try:
                MnistNet.check(data.sample_shape)
            except GanforgeError as e:
                raise ConfigError(f"train.eval_every: {e}") from None
        if n > len(data):
            raise ConfigError(f"train.eval_n={n} exceeds the {len(data)} training samples")
        self.net: nn.Module | None = mnist_net() if data.kind == "image" else None
        gen = torch.Generator().manual_seed(seed + PROBE_SEED_OFFSET)
        real = data.batch(torch.randperm(len(data), generator=gen)[:n])
        self.real = features_of(self.net, real)[0] if self.net is not None else real
        self.z = torch.randn(n, latent_dim, generator=gen).to(device)
        self.fid = FID(self.real.shape[1])

    def __call__(self, g: nn.Module) -> float:
        x = generate(g, self.z).cpu()
        fake = features_of(self.net, x)[0] if self.net is not None else x
        return self.fid(self.real, fake)
