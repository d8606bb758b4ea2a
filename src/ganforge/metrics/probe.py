"""FID during training (``train.eval_every``): a small, fixed sample of G against real data.

The real features are computed once; every probe draws G's samples from the same fixed z (its
own generator, so training's random stream is untouched) and returns their FID against those
real features. With ``train.eval_n`` samples (default 1,000) the figure is biased upwards and
noisier than ``ganforge eval``'s, but comparable from step to step, which is what keeping the
best checkpoint needs.
"""

from __future__ import annotations

import torch
from torch import nn

from ganforge.data import Dataset
from ganforge.errors import ConfigError, GanforgeError
from ganforge.metrics.features import MnistNet, mnist_net
from ganforge.metrics.fid import FID

PROBE_SEED_OFFSET = 7919  # the probe's z and real subset come from seed + this: not the grids'


class FidProbe:
    """``probe(G)`` -> FID of G's samples against ``n`` real samples of ``data``."""

    def __init__(
        self, data: Dataset, n: int, latent_dim: int, seed: int, device: torch.device
    ) -> None:
        from ganforge.metrics.evaluate import features_of

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
        from ganforge.metrics.evaluate import features_of
        from ganforge.sample import generate

        x = generate(g, self.z).cpu()
        fake = features_of(self.net, x)[0] if self.net is not None else x
        return self.fid(self.real, fake)
