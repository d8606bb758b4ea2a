"""The MNIST feature network shipped inside the package."""

from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import safe_open

from ganforge.data import load_dataset
from ganforge.metrics.compare import evaluate_images, features_of
from ganforge.metrics.features import extract, mnist_net, weights_path

ROOT = Path(__file__).resolve().parents[1]


def test_the_weights_are_small_package_data_with_their_provenance():
    path = weights_path()
    assert path.is_file() and path.stat().st_size < 500_000
    assert path.parent == ROOT / "src" / "ganforge" / "metrics"
    assert '"metrics/*.safetensors"' in (ROOT / "pyproject.toml").read_text()  # package data
    with safe_open(str(path), framework="pt") as f:
        info = json.loads((f.metadata() or {})["info"])
    assert info["held_out"] == "MNIST test set images 5000..9999"
    assert info["held_out_accuracy"] >= 0.98


def test_it_classifies_bundled_digits():
    ds = load_dataset("mnist5k", limit=1000)
    _, probs = extract(mnist_net(), ds.batch(torch.arange(1000)))
    assert probs is not None and ds.y is not None
    assert float((probs.argmax(1) == ds.y).double().mean()) > 0.98


def test_stacked_mnist_modes_of_real_images_are_their_labels():
    ds = load_dataset("stacked-mnist", limit=600)
    assert ds.y is not None
    _, _, modes = features_of(mnist_net(), ds.batch(torch.arange(600)))
    assert modes is not None
    assert float((modes == ds.y).double().mean()) > 0.95  # three digits right


def test_real_digits_score_like_the_floor_and_noise_does_not():
    ds = load_dataset("mnist5k")
    x = ds.batch(torch.randperm(5000, generator=torch.Generator().manual_seed(0))[:600])
    net = mnist_net()
    real = evaluate_images(net, x[:400], x[400:], bootstrap=10)
    noise = evaluate_images(net, x[:400], torch.rand(200, 1, 28, 28) * 2 - 1, bootstrap=10)
    fid_real, fid_noise = real["fid"], noise["fid"]
    assert fid_real["value"] < 2 * fid_real["floor"]
    assert fid_noise["value"] > 10 * fid_real["floor"]
    assert real["classes_covered"]["value"] == 10
    assert real["class_kl"]["value"] < 0.05
    assert real["recall"]["value"] > 0.7
    # The classifier maps noise into one class's cluster: precise-looking, but one class and
    # no recall or coverage (why precision is never read alone).
    assert noise["classes_covered"]["value"] <= 2
    assert noise["recall"]["value"] < 0.05 and noise["coverage"]["value"] < 0.1
