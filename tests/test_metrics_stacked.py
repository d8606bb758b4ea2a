"""Stacked MNIST: the data set and its mode count."""

from __future__ import annotations

import torch

from ganforge.data import DATA_SOURCES, load_dataset
from ganforge.data.mnist import load_mnist5k
from ganforge.metrics.compare import Sets, compare


def test_stacked_mnist_channels_are_bundled_digits_with_the_label_of_the_triple():
    ds = load_dataset("stacked-mnist")
    assert "stacked-mnist" in DATA_SOURCES
    assert ds.x.shape == (30_000, 3, 28, 28) and ds.x.dtype == torch.uint8
    assert ds.y is not None and int(ds.y.min()) >= 0 and int(ds.y.max()) <= 999
    assert len(ds.y.unique()) == 1000  # 30 per mode on average: every mode is present
    digits = load_mnist5k()
    assert digits.y is not None
    flat = digits.x.view(5000, -1)
    for i in range(5):
        for c, place in enumerate((100, 10, 1)):
            # find the bundled image in channel c; its label is the triple's digit c
            match = (flat == ds.x[i, c].reshape(1, -1)).all(1).nonzero()[0, 0]
            assert int(digits.y[match]) == int(ds.y[i]) // place % 10
    again = load_dataset("stacked-mnist")
    assert torch.equal(again.x, ds.x)  # fixed seed: the same data set every time


def test_mode_figures_with_floor_and_interval():
    gen = torch.Generator().manual_seed(0)
    n = 400
    feats = torch.randn(3 * n, 4, generator=gen)
    real_modes = torch.randint(0, 1000, (2 * n,), generator=gen)
    fake_modes = torch.randint(0, 10, (n,), generator=gen)  # a collapsed generator: 10 modes
    sets = Sets(
        ref=feats[:n],
        other=feats[n : 2 * n],
        fake=feats[2 * n :],
        ref_modes=real_modes[:n],
        other_modes=real_modes[n:],
        fake_modes=fake_modes,
    )
    out = compare(sets, bootstrap=10)
    assert out["modes"]["value"] == 10.0
    assert out["modes"]["floor"] == float(len(real_modes[n:].unique()))
    # KL of 10 equally likely modes (about) to uniform over 1000: log 100
    assert abs(out["mode_kl"]["value"] - torch.log(torch.tensor(100.0)).item()) < 0.05
