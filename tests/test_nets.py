import pytest
import torch
from torch import nn

from ganforge import nets
from ganforge.config import ModelConfig
from ganforge.errors import ConfigError
from ganforge.nets.dcgan import DCGANDiscriminator, DCGANGenerator
from ganforge.nets.mlp import MLPDiscriminator, MLPGenerator


def _kinds(module: nn.Module) -> list[str]:
    return [type(m).__name__ for m in module.net]


def test_course_generator_is_exactly_the_course_model():
    g, _ = nets.build(ModelConfig(), (1, 28, 28))
    assert isinstance(g, MLPGenerator) and g.latent_dim == 100
    assert _kinds(g) == ["Linear", "LeakyReLU", "BatchNorm1d"] * 3 + ["Linear", "Tanh"]
    widths = [(m.in_features, m.out_features) for m in g.net if isinstance(m, nn.Linear)]
    assert widths == [(100, 128), (128, 256), (256, 512), (512, 784)]
    assert all(m.negative_slope == 0.2 for m in g.net if isinstance(m, nn.LeakyReLU))
    # 100*128+128 + 2*128 + 128*256+256 + 2*256 + 256*512+512 + 2*512 + 512*784+784
    assert sum(p.numel() for p in g.parameters()) == 581_520


def test_batchnorm_momentum_and_eps_are_not_swapped():
    """BatchNorm1d(n, 0.8) sets eps = 0.8; ours has eps 1e-5 and PyTorch momentum 0.2
    (Keras' 0.8): running = 0.8 * running + 0.2 * batch."""
    g, _ = nets.build(ModelConfig(), (1, 28, 28))
    bns = [m for m in g.net if isinstance(m, nn.BatchNorm1d)]
    assert [(m.eps, m.momentum) for m in bns] == [(1e-5, 0.2)] * 3
    bn = bns[0]
    bn.train()
    x = torch.ones(4, bn.num_features) * 10.0  # batch mean 10
    bn(torch.cat([x, x + 2]))  # batch mean 11
    assert torch.allclose(bn.running_mean, torch.full_like(bn.running_mean, 0.2 * 11))


def test_course_discriminator_is_exactly_the_course_model():
    _, d = nets.build(ModelConfig(), (1, 28, 28))
    assert isinstance(d, MLPDiscriminator)
    assert _kinds(d) == ["Flatten", "Linear", "LeakyReLU", "Linear", "LeakyReLU", "Linear"]
    widths = [(m.in_features, m.out_features) for m in d.net if isinstance(m, nn.Linear)]
    assert widths == [(784, 512), (512, 256), (256, 1)]
    assert sum(p.numel() for p in d.parameters()) == 784 * 512 + 512 + 512 * 256 + 256 + 257


def test_mlp_shapes_and_range():
    torch.manual_seed(0)
    g, d = nets.build(ModelConfig(), (1, 28, 28))
    x = g(torch.randn(5, 100))
    assert x.shape == (5, 1, 28, 28) and x.abs().max() <= 1.0
    assert d(x).shape == (5, 1)


def test_mlp_points_with_linear_output():
    cfg = ModelConfig(latent_dim=2, g_hidden=(8,), d_hidden=(8,), g_out="linear")
    g, d = nets.build(cfg, (2,))
    assert _kinds(g)[-1] == "Linear"
    assert g(torch.randn(3, 2)).shape == (3, 2) and d(torch.randn(3, 2)).shape == (3, 1)


@pytest.mark.parametrize("size", [28, 32, 64])
@pytest.mark.parametrize("channels", [1, 3])
def test_dcgan_shapes(size, channels):
    cfg = ModelConfig(arch="dcgan", width=8, latent_dim=16)
    g, d = nets.build(cfg, (channels, size, size))
    x = g(torch.randn(2, 16))
    assert x.shape == (2, channels, size, size) and x.abs().max() <= 1.0
    assert d(x).shape == (2, 1)


def test_dcgan_layers():
    g = DCGANGenerator(100, (1, 32, 32), width=16)
    d = DCGANDiscriminator((1, 32, 32), width=16)
    assert any(isinstance(m, nn.ConvTranspose2d) for m in g.modules())
    assert any(isinstance(m, nn.BatchNorm2d) for m in g.modules())
    assert not any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in d.modules())
    assert [m.negative_slope for m in d.modules() if isinstance(m, nn.LeakyReLU)] == [0.2] * 3
    # 4 -> 8 -> 16 -> 32: three ConvTranspose stages after the first projection
    assert sum(isinstance(m, nn.ConvTranspose2d) for m in g.modules()) == 4


def test_dcgan_refuses_other_sizes_and_points():
    with pytest.raises(ConfigError, match="size"):
        nets.build(ModelConfig(arch="dcgan"), (1, 30, 30))
    with pytest.raises(ConfigError, match="square images"):
        nets.build(ModelConfig(arch="dcgan"), (2,))


def test_dcgan_discriminator_batchnorm_option():
    d = DCGANDiscriminator((1, 28, 28), width=8, batchnorm=True)
    kinds = [type(m).__name__ for m in d.net]
    # BatchNorm on every layer but the first (Radford et al. 2015)
    assert kinds == [
        "Conv2d",
        "LeakyReLU",
        "Conv2d",
        "BatchNorm2d",
        "LeakyReLU",
        "Conv2d",
        "Flatten",
    ]
    assert d.net[2].bias is None  # BatchNorm's shift replaces the bias


def test_dcgan_discriminator_hidden_layer_judges_the_whole_map():
    from ganforge.nets.layers import split_d

    d = nets.build(ModelConfig(arch="dcgan", width=4, d_fc=6), (1, 28, 28))[1]
    kinds = [type(m).__name__ for m in d.net]
    assert kinds[-5:] == ["LeakyReLU", "Flatten", "Linear", "LeakyReLU", "Linear"]
    assert (d.net[-3].in_features, d.net[-3].out_features) == (8 * 7 * 7, 6)
    trunk, head = split_d(d)  # the features are the hidden layer's 6, the head its logit
    x = torch.randn(3, 1, 28, 28)
    assert trunk(x).shape == (3, 6)
    torch.testing.assert_close(head(trunk(x)), d(x))


def test_dcgan_generator_hidden_layer_on_z():
    g = nets.build(ModelConfig(arch="dcgan", width=4, latent_dim=5, g_fc=6), (1, 28, 28))[0]
    first, bn, act, project = g.net[:4]
    assert isinstance(first, nn.ConvTranspose2d) and first.weight.shape == (5, 6, 1, 1)
    assert isinstance(bn, nn.BatchNorm2d) and isinstance(act, nn.ReLU)
    assert project.weight.shape == (6, 8, 7, 7)  # 6 -> the 7 x 7 map of 2 x width channels
    g.eval()
    z = torch.randn(3, 5)
    h = torch.relu(bn(torch.einsum("nz,zf->nf", z, first.weight[:, :, 0, 0])[..., None, None]))
    torch.testing.assert_close(g.net[3:](h), g(z))


def test_step_scores_real_and_fake_apart_when_d_has_batchnorm():
    from ganforge.config import Config
    from ganforge.train.loop import build_step

    cfg = Config(model=ModelConfig(arch="dcgan", width=4, latent_dim=8, d_batchnorm=True))
    gan = build_step(cfg, (1, 28, 28), torch.device("cpu"))
    assert not gan.joint_d_pass
    cfg.model.d_batchnorm = False
    assert build_step(cfg, (1, 28, 28), torch.device("cpu")).joint_d_pass


class _BNG(nn.Module):
    latent_dim = 2

    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(2, 3)
        self.bn = nn.BatchNorm1d(3, momentum=0.1)

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return self.bn(self.lin(z))


def test_recompute_batchnorm_averages_each_batchs_mean_and_unbiased_variance():
    torch.manual_seed(0)
    g = _BNG().eval()
    g.bn.running_mean.fill_(5.0)  # the live G's statistics, copied by the moving average
    state = torch.get_rng_state()
    assert nets.recompute_batchnorm(g, seed=3, batches=4, batch=8)
    gen = torch.Generator().manual_seed(3)
    with torch.no_grad():
        h = [g.lin(torch.randn(8, 2, generator=gen)) for _ in range(4)]
    mean = torch.stack([b.mean(0) for b in h]).mean(0)
    var = torch.stack([b.var(0, unbiased=True) for b in h]).mean(0)
    torch.testing.assert_close(g.bn.running_mean, mean)
    torch.testing.assert_close(g.bn.running_var, var)
    assert int(g.bn.num_batches_tracked) == 4
    assert g.bn.momentum == 0.1 and not g.training  # restored
    assert torch.equal(torch.get_rng_state(), state)  # the global generator untouched
    assert not nets.recompute_batchnorm(nn.Sequential(nn.Linear(2, 2)), seed=0)
