"""Layers against independent implementations and their defining properties."""

import math

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganforge import nets, runs
from ganforge.cli import main
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.nets.layers import (
    FeatureD,
    MinibatchDiscrimination,
    MinibatchStdDev,
    PackedD,
    Standardise,
    VirtualBatchNorm,
    VirtualBatchNormG,
    features_and_scores,
    standardise,
)
from ganforge.train.step import batch_independent


def test_minibatch_discrimination_against_a_numpy_loop():
    torch.manual_seed(0)
    layer = MinibatchDiscrimination(3, kernels=4, kernel_dim=2).double()
    f = torch.randn(5, 3, dtype=torch.float64)
    out = layer(f)
    # by the paper's definition, one pair at a time
    T = layer.T.detach().numpy().reshape(3, 4, 2)
    m = np.einsum("na,abc->nbc", f.numpy(), T)
    o = np.zeros((5, 4))
    for i in range(5):
        for j in range(5):
            o[i] += np.exp(-np.abs(m[i] - m[j]).sum(1))
    assert_close(out, torch.cat([f, torch.from_numpy(o)], 1))


def test_minibatch_discrimination_by_hand():
    """A = B = C = 1 and T = 1: o_i = sum_j exp(-|f_i - f_j|)."""
    layer = MinibatchDiscrimination(1, kernels=1, kernel_dim=1).double()
    with torch.no_grad():
        layer.T.fill_(1.0)
    f = torch.tensor([[0.0], [1.0], [3.0]], dtype=torch.float64)
    o = layer(f)[:, 1]
    e = math.exp
    expected = [1 + e(-1) + e(-3), e(-1) + 1 + e(-2), e(-3) + e(-2) + 1]
    assert_close(o, torch.tensor(expected, dtype=torch.float64))


def test_minibatch_stddev_appends_the_mean_feature_std():
    f = torch.tensor([[1.0, 5.0], [3.0, 5.0]], dtype=torch.float64)  # stds 1 and 0
    out = MinibatchStdDev()(f)
    expected = (math.sqrt(1 + 1e-8) + math.sqrt(1e-8)) / 2
    assert_close(out[:, 2], torch.full((2,), expected, dtype=torch.float64))
    assert_close(out[:, :2], f)


def _vbn_with_reference(ref: torch.Tensor) -> VirtualBatchNorm:
    vbn = VirtualBatchNorm(ref.shape[1]).double()
    vbn.reference = True
    vbn(ref)
    vbn.reference = False
    return vbn


def test_virtual_batch_norm_is_batch_norm_over_the_reference_plus_the_example():
    """By hand: reference {1, 3}, example 5: batch {1, 3, 5} has mean 3 and variance 8/3."""
    vbn = _vbn_with_reference(torch.tensor([[1.0], [3.0]], dtype=torch.float64))
    y = vbn(torch.tensor([[5.0]], dtype=torch.float64))
    assert_close(y, torch.tensor([[2.0 / math.sqrt(8.0 / 3.0 + 1e-5)]], dtype=torch.float64))
    # against PyTorch's BatchNorm (training mode: batch statistics) on the reference + x
    torch.manual_seed(0)
    ref, x = torch.randn(16, 4, dtype=torch.float64), torch.randn(3, 4, dtype=torch.float64)
    vbn = _vbn_with_reference(ref)
    bn = nn.BatchNorm1d(4).double()
    for i in range(3):
        expected = bn(torch.cat([ref, x[i : i + 1]]))[-1]
        assert_close(vbn(x)[i], expected)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_virtual_batch_norm_output_does_not_depend_on_the_rest_of_the_batch(arch):
    torch.manual_seed(0)
    cfg = ModelConfig(arch=arch, latent_dim=4, g_hidden=(8, 8), width=8, virtual_batch_norm=True)
    g, _ = nets.build(cfg, (1, 28, 28) if arch == "dcgan" else (3,))
    assert isinstance(g, VirtualBatchNormG) and g.latent_dim == 4
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in g.modules())
    z = torch.randn(5, 4)
    alone = g(z[:1])
    assert_close(g(z)[:1], alone)
    assert_close(g(torch.cat([z[:1], 10 * torch.randn(7, 4)]))[:1], alone)
    g.eval()
    assert_close(g(z[:1]), alone)  # sampling uses the same statistics


def test_virtual_batch_norm_image_layers():
    """For [N, C, H, W] an example's statistics are its own positions plus the reference's."""
    torch.manual_seed(0)
    ref, x = torch.randn(6, 2, 3, 3), torch.randn(1, 2, 3, 3)
    vbn = VirtualBatchNorm(2)
    vbn.reference = True
    vbn(ref)
    vbn.reference = False
    both = torch.cat([ref, x])  # equal weight per example = equal count of positions
    mean = both.mean((0, 2, 3), keepdim=True)
    var = both.var((0, 2, 3), unbiased=False, keepdim=True)
    assert_close(vbn(x), (x - mean) / (var + 1e-5).sqrt())


def test_virtual_batch_norm_needs_a_batchnorm_in_g():
    with pytest.raises(ConfigError, match="g_batchnorm"):
        nets.build(ModelConfig(g_batchnorm=False, virtual_batch_norm=True), (3,))


def test_switches_off_leave_the_nets_alone():
    torch.manual_seed(0)
    g, d = nets.build(ModelConfig(latent_dim=4), (3,))
    assert type(g).__name__ == "MLPGenerator" and type(d).__name__ == "MLPDiscriminator"
    assert batch_independent(d)


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_minibatch_layers_make_d_see_the_batch(arch):
    torch.manual_seed(0)
    cfg = ModelConfig(
        arch=arch, latent_dim=4, width=8, minibatch_discrimination=6, minibatch_stddev=True
    )
    shape = (1, 28, 28) if arch == "dcgan" else (3,)
    _, d = nets.build(cfg, shape)
    assert isinstance(d, FeatureD) and not batch_independent(d)
    x = torch.randn(5, *shape)
    f, scores = features_and_scores(d, x)
    assert scores.shape == (5, 1) and f.shape[0] == 5
    assert d.head.in_features == f.shape[1] + 6 + 1
    # a sample's score changes with its batch-mates
    other = torch.cat([x[:1], torch.randn(4, *shape)])
    assert not torch.allclose(d(x)[0], d(other)[0])


@pytest.mark.parametrize("arch", ["mlp", "dcgan"])
def test_features_and_scores_of_a_plain_d(arch):
    torch.manual_seed(0)
    shape = (1, 28, 28) if arch == "dcgan" else (3,)
    _, d = nets.build(ModelConfig(arch=arch, width=8), shape)
    x = torch.randn(4, *shape)
    f, scores = features_and_scores(d, x)
    assert_close(scores, d(x))
    assert f.ndim == 2 and len(f) == 4


def test_spectral_norm_makes_d_weights_unit_norm():
    torch.manual_seed(0)
    _, d = nets.build(ModelConfig(d_hidden=(16, 8), spectral_norm=True), (3,))
    for _ in range(30):  # one power iteration per forward
        d(torch.randn(4, 3))
    linears = [m for m in d.modules() if isinstance(m, nn.Linear)]
    assert len(linears) == 3
    for m in linears:
        sigma = torch.linalg.matrix_norm(m.weight.detach(), ord=2)
        assert sigma.item() == pytest.approx(1.0, abs=1e-3)


def test_dropout_follows_every_hidden_activation_of_d():
    torch.manual_seed(0)
    _, d = nets.build(ModelConfig(d_hidden=(16, 8), d_dropout=0.3), (3,))
    drops = [m for m in d.modules() if isinstance(m, nn.Dropout)]
    assert len(drops) == 2 and all(m.p == 0.3 for m in drops)
    x = torch.randn(64, 3)
    d.eval()
    assert torch.equal(d(x), d(x))  # off in eval mode
    d.train()
    assert not torch.equal(d(x), d(x))


def test_packed_d_scores_m_samples_joined():
    torch.manual_seed(0)
    _, d = nets.build(ModelConfig(latent_dim=4, d_hidden=(8,), pack=3), (2,))
    assert isinstance(d, PackedD) and batch_independent(d)  # packs of reals, packs of fakes
    assert d.d.net[1].in_features == 6  # the inner D takes 3 points of 2 features
    x = torch.randn(6, 2)
    packs = torch.stack([torch.cat([x[0], x[1], x[2]]), torch.cat([x[3], x[4], x[5]])])
    assert_close(d(x), d.d(packs))  # [2, 1]: one score per pack of consecutive samples
    f, scores = features_and_scores(d, x)
    assert_close(scores, d(x))
    assert f.shape == (2, 8)
    # each point alone: a pack of 3 copies of it
    assert_close(d.score_each(x[:2]), d.d(torch.stack([x[0].repeat(3), x[1].repeat(3)])))
    with pytest.raises(ValueError, match="divisible"):
        d(torch.randn(4, 2))


def test_packed_dcgan_d_joins_the_channels():
    torch.manual_seed(0)
    cfg = ModelConfig(arch="dcgan", width=8, pack=2, minibatch_stddev=True)
    g, d = nets.build(cfg, (1, 28, 28))
    assert isinstance(d, PackedD) and isinstance(d.d, FeatureD)  # switches on the inner D
    assert not batch_independent(d)  # the minibatch layer mixes packs: reals, fakes apart
    assert g(torch.randn(2, cfg.latent_dim)).shape == (2, 1, 28, 28)
    assert d.d.trunk[0].in_channels == 2
    x = torch.randn(4, 1, 28, 28)
    assert_close(d.pack(x)[1], torch.cat([x[2], x[3]]))  # sample 2 in channel 0, 3 in 1
    assert d(x).shape == (2, 1)


@pytest.mark.parametrize(
    ("cfg", "message"),
    [
        (ModelConfig(cond="concat", pack=2), "unconditional models only"),
        (ModelConfig(arch="progressive", pack=2), "not progressive"),
    ],
)
def test_packing_refuses_models_it_cannot_pack(cfg, message):
    shape = (1, 32, 32) if cfg.arch == "progressive" else (1, 28, 28)
    with pytest.raises(ConfigError, match=message):
        nets.build(cfg, shape)


# ---- model.standardize: G and D on standardised points, samples in the data's units ----


def test_standardise_layers_map_the_data_in_and_out_exactly():
    x = torch.tensor([[0.0, 0.0], [4.0, 0.0], [0.0, 4.0], [4.0, 4.0]])
    d_in, g_out = Standardise(2, inverse=False), Standardise(2, inverse=True)
    assert torch.equal(d_in(x), x) and torch.equal(g_out(x), x)  # identity until set
    assert standardise([nn.Sequential(d_in, nn.ReLU()), g_out], x) == 2
    # mean (2, 2); every coordinate 2 from it: one standard deviation of 2
    assert d_in.shift.tolist() == [2.0, 2.0] and d_in.scale.item() == 2.0
    assert torch.equal(d_in(x), torch.tensor([[-1.0, -1], [1, -1], [-1, 1], [1, 1]]))
    assert torch.equal(g_out(d_in(x)), x)
    packed = Standardise(4, inverse=False)  # a D packing 2 points of 2 coordinates
    standardise([packed], x)
    assert packed.shift.tolist() == [2.0] * 4
    assert torch.equal(packed(x.reshape(2, 4)), (x.reshape(2, 4) - 2) / 2)


def test_standardised_nets_keep_their_units_in_the_checkpoint_and_refuse_images():
    cfg = ModelConfig(g_out="linear", g_batchnorm=False, latent_dim=4, standardize=True, pack=2)
    g, d = nets.build(cfg, (2,))
    assert isinstance(g.net[-1], Standardise) and g.net[-1].inverse
    inner = d.d.net  # the packing D's inner MLP: flatten, then the data's units out
    assert isinstance(inner[1], Standardise) and len(inner[1].shift) == 4
    assert f"net.{len(g.net) - 1}.shift" in g.state_dict() and "d.net.1.scale" in d.state_dict()
    for bad in (
        {"arch": "dcgan"},
        {"cond": "concat"},
    ):
        with pytest.raises(ConfigError, match=r"model\.standardize works with points"):
            nets.build(ModelConfig(standardize=True, **bad), (2,) if "cond" in bad else (1, 8, 8))
    with pytest.raises(ConfigError, match=r"samples of shape \[1, 8, 8\]"):
        nets.build(ModelConfig(standardize=True), (1, 8, 8))


def test_a_standardised_run_on_moved_and_scaled_points_draws_the_same_samples_so_moved(tmp_path):
    """The recipe holds at any scale: 100 x + 5 trains step for step like x (up to rounding)."""
    x = np.random.default_rng(0).normal(size=(512, 2)).astype(np.float32) * [1.0, 0.5]
    np.save(tmp_path / "a.npy", x)
    np.save(tmp_path / "b.npy", 100 * x + 5)
    common = [
        "train",
        "--steps",
        "10",
        "--quiet",
        "model.standardize=true",
        "model.g_out=linear",
        "model.g_batchnorm=false",
        "model.latent_dim=4",
        "model.g_hidden=16,16",
        "model.d_hidden=16",
        "train.batch_size=32",
        "diagnose.report=false",
    ]
    for name in "ab":
        out = tmp_path / f"run-{name}"
        assert main([*common, "--out", str(out), f"data.source={tmp_path / name}.npy"]) == 0
    a = runs.sample(tmp_path / "run-a", 200, seed=3)
    b = runs.sample(tmp_path / "run-b", 200, seed=3)
    assert_close(b, 100 * a + 5, rtol=1e-4, atol=1e-2)
    assert a.std() > 0.1  # not a collapsed G that would pass trivially
