"""Penalties against values computed by hand, on critics whose gradients are known."""

import numpy as np
import pytest
import torch
from scipy import stats
from torch import nn
from torch.testing import assert_close

from ganforge.config import Config, ModelConfig, set_value
from ganforge.errors import ConfigError
from ganforge.losses import LOSSES
from ganforge.penalties import (
    clip_weights,
    gradient_penalty,
    interpolate,
    r1_penalty,
    r2_penalty,
    safe_norm,
)
from ganforge.train.loop import build_step
from ganforge.train.step import GANStep, Switches


def _linear_critic(*w: float) -> nn.Linear:
    """D(x) = w.x + 0.5: grad_x D = w everywhere."""
    d = nn.Linear(len(w), 1).double()
    with torch.no_grad():
        d.weight.copy_(torch.tensor([w], dtype=torch.float64))
        d.bias.fill_(0.5)
    return d


def test_gradient_penalty_of_a_linear_critic_is_lambda_times_norm_minus_one_squared():
    d = _linear_critic(3.0, 4.0)  # ||w|| = 5
    real = torch.randn(7, 2, dtype=torch.float64)
    fake = torch.randn(7, 2, dtype=torch.float64)
    gp = gradient_penalty(d, real, fake, weight=10.0)
    assert_close(gp, torch.tensor(10.0 * (5.0 - 1.0) ** 2, dtype=torch.float64))
    # and its gradient reaches the weights: d/dw lambda (||w|| - 1)^2 = 2 lambda (||w|| - 1) w/||w||
    gp.backward()
    assert_close(d.weight.grad, torch.tensor([[48.0, 64.0]], dtype=torch.float64))


def test_gradient_penalty_has_no_nan_where_the_gradient_is_zero():
    d = _linear_critic(0.0, 0.0)  # a constant critic: grad_x D = 0
    x = torch.randn(4, 2, dtype=torch.float64)
    gp = gradient_penalty(d, x, x, weight=10.0)
    assert gp.item() == 10.0  # (0 - 1)^2
    gp.backward()
    # sqrt's derivative at 0 would give inf * 0 = NaN; the safe norm gives 0
    assert_close(d.weight.grad, torch.zeros(1, 2, dtype=torch.float64))


def test_safe_norm_values_and_zero_gradient_at_zero():
    g = torch.tensor([[3.0, 4.0], [0.0, 0.0]], dtype=torch.float64, requires_grad=True)
    n = safe_norm(g)
    assert_close(n, torch.tensor([5.0, 0.0], dtype=torch.float64))
    n.sum().backward()
    assert_close(g.grad, torch.tensor([[0.6, 0.8], [0.0, 0.0]], dtype=torch.float64))


class _Recorder(nn.Module):
    """A critic that keeps its last input: D(x) = sum of x."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.seen = x.detach().clone()
        return x.flatten(1).sum(1, keepdim=True)


def test_interpolation_weight_is_one_uniform_draw_per_sample():
    """real = 1, fake = 0, so x_hat = eps: constant within a sample (not per pixel) and
    distributed as U[0, 1] across samples (not as a normal)."""
    torch.manual_seed(0)
    d = _Recorder()
    n = 4000
    ones = torch.ones(n, 3, 4, 4, dtype=torch.float64)
    gradient_penalty(d, ones, torch.zeros_like(ones), weight=1.0)
    x_hat = d.seen
    eps = x_hat[:, 0, 0, 0]
    assert_close(x_hat, eps.view(n, 1, 1, 1).expand_as(x_hat))  # one eps per sample
    assert eps.min() >= 0.0 and eps.max() <= 1.0
    assert stats.kstest(eps.numpy(), "uniform").pvalue > 1e-3
    assert len(np.unique(eps.numpy())) == n  # a fresh draw for every sample


def test_interpolate_with_given_weights():
    real, fake = torch.full((2, 3), 10.0), torch.full((2, 3), 2.0)
    x = interpolate(real, fake, torch.tensor([[0.25], [1.0]]))
    assert_close(x, torch.tensor([[4.0] * 3, [10.0] * 3]))  # 0.25 * 10 + 0.75 * 2 = 4


@pytest.mark.parametrize("penalty", [r1_penalty, r2_penalty], ids=["r1", "r2"])
def test_r1_and_r2_of_a_linear_critic_are_half_gamma_norm_squared(penalty):
    """R1 on reals, R2 on fakes: the same zero-centred penalty gamma/2 E||grad_x D(x)||^2."""
    d = _linear_critic(3.0, 4.0)
    x = torch.randn(5, 2, dtype=torch.float64, requires_grad=True)
    value = penalty(x, d(x), gamma=0.2)
    assert_close(value, torch.tensor(0.1 * 25.0, dtype=torch.float64))
    value.backward()  # d/dw gamma/2 ||w||^2 = gamma w
    assert_close(d.weight.grad, torch.tensor([[0.6, 0.8]], dtype=torch.float64))


def test_clipping_bounds_every_weight_and_keeps_the_rest():
    d = nn.Sequential(nn.Linear(3, 2), nn.Linear(2, 1))
    with torch.no_grad():
        d[0].weight.copy_(torch.tensor([[-0.5, 0.005, 0.02], [0.0, -0.01, 3.0]]))
    clip_weights(d, 0.01)
    assert all(p.abs().max() <= 0.01 for p in d.parameters())
    assert_close(d[0].weight, torch.tensor([[-0.01, 0.005, 0.01], [0.0, -0.01, 0.01]]))


def _tiny_gan(loss: str, **stab) -> object:
    cfg = Config(model=ModelConfig(latent_dim=4, g_hidden=(8,), d_hidden=(8,)))
    cfg.train.loss = loss
    for k, v in stab.items():
        setattr(cfg.stab, k, v)
    torch.manual_seed(0)
    return build_step(cfg, (3,), torch.device("cpu"))


def test_wgan_step_clips_the_critic_after_every_update():
    gan = _tiny_gan("wgan", clip=0.05)
    reals = [torch.randn(8, 3) for _ in range(3)]
    gan(reals)
    assert all(p.abs().max() <= 0.05 for p in gan.D.parameters())
    assert max(p.abs().max() for p in gan.G.parameters()) > 0.05  # G is not clipped


@pytest.mark.parametrize(("loss", "gp", "expected"), [("wgan-gp", 0.0, 10.0), ("ns", 2.0, 2.0)])
def test_gradient_penalty_weight_in_the_step(loss, gp, expected):
    gan = _tiny_gan(loss, gp=gp)
    assert gan.switches.gp == expected
    out = gan([torch.randn(8, 3)])
    assert out["gp"] > 0 and torch.isfinite(out["loss_g"])


def test_r1_in_the_step_reports_its_value():
    gan = _tiny_gan("ns", r1=1.0)
    out = gan([torch.randn(8, 3)])
    assert out["r1"] > 0


class _Shift(nn.Module):
    """G(z) = z + 1, a generator whose samples D's penalties must not move."""

    def __init__(self) -> None:
        super().__init__()
        self.b = nn.Parameter(torch.ones(2, dtype=torch.float64))

    def forward(self, z: torch.Tensor) -> torch.Tensor:
        return z + self.b


def _linear_step(**switches: float) -> GANStep:
    g, d = _Shift(), _linear_critic(3.0, 4.0)
    opt_g = torch.optim.SGD(g.parameters(), lr=0.0)
    opt_d = torch.optim.SGD(d.parameters(), lr=0.0)  # rate 0: the weights stay w = (3, 4)
    return GANStep(g, d, opt_g, opt_d, LOSSES["ns"], 2, Switches(**switches))


@pytest.mark.parametrize("joint", [True, False])
def test_the_step_reports_r1_and_r2_of_a_linear_critic_exactly(joint):
    """D(x) = w.x + 1/2 with ||w||^2 = 25: R1 = 0.5 * 0.4 * 25 = 5, R2 = 0.5 * 0.2 * 25 = 2.5,
    whether D scores reals and fakes in one pass or two."""
    gan = _linear_step(r1=0.4, r2=0.2)
    gan.joint_d_pass = joint
    torch.manual_seed(0)
    out = gan([torch.randn(6, 2, dtype=torch.float64)])
    assert out["r1"].item() == pytest.approx(5.0, rel=1e-12)
    assert out["r2"].item() == pytest.approx(2.5, rel=1e-12)


def test_r2_is_a_term_of_d_only_and_only_when_switched_on():
    gan = _linear_step(r2=0.2)
    real = torch.randn(6, 2, dtype=torch.float64)
    fake = gan.G(torch.randn(6, 2, dtype=torch.float64))
    terms, _ = gan.d_terms(real, fake.detach())
    assert list(terms) == ["loss_d", "r2"]
    terms["r2"].backward()  # gamma w on D's weights; nothing reaches G
    assert_close(gan.D.weight.grad, torch.tensor([[0.6, 0.8]], dtype=torch.float64))
    assert gan.G.b.grad is None
    assert list(_linear_step().d_terms(real, fake.detach())[0]) == ["loss_d"]


def test_r2_must_be_non_negative():
    cfg = Config()
    with pytest.raises(ConfigError, match=r"stab\.r2: must be >= 0"):
        set_value(cfg, "stab.r2", "-1")
    assert Config().stab.r2 == 0.0


def test_lazy_penalties_weigh_every_nth_step_n_times():
    """stab.reg_every = 3: steps 0, 3, 6 carry R1 = 0.5 * 3 * 0.4 * 25 = 15 and R2 = 7.5; the
    others none, so the mean weight over a period is the eager one."""
    gan = _linear_step(r1=0.4, r2=0.2, reg_every=3)
    seen = []
    for _ in range(7):
        out = gan([torch.randn(6, 2, dtype=torch.float64)])
        seen += [out[k].item() if k in out else 0.0 for k in ("r1", "r2")]
    assert seen == pytest.approx([15.0, 7.5, 0, 0, 0, 0] * 2 + [15.0, 7.5], rel=1e-12)


def test_lazy_penalties_in_the_split_update_and_resumed_at_the_same_phase():
    """Every 2nd step in the seeds' two-batch update; a step resumed at t = 5 skips, t = 6 pays."""
    gan = _linear_step(r1=0.4, split_d=True, reg_every=2)
    assert "r1" in gan([torch.randn(6, 2, dtype=torch.float64)])
    assert "r1" not in gan([torch.randn(6, 2, dtype=torch.float64)])
    gan.t = 5
    assert "r1" not in gan([torch.randn(6, 2, dtype=torch.float64)])
    assert gan([torch.randn(6, 2, dtype=torch.float64)])["r1"].item() == pytest.approx(10.0)


def test_lazy_penalties_need_a_penalty():
    cfg = Config()
    set_value(cfg, "stab.reg_every", "4")
    with pytest.raises(ConfigError, match=r"stab\.reg_every=4 spaces out R1 and R2: set stab"):
        build_step(cfg, (2,), torch.device("cpu"))
    with pytest.raises(ConfigError, match=r"stab\.reg_every: must be > 0"):
        set_value(cfg, "stab.reg_every", "0")


def test_drift_is_eps_times_the_mean_squared_real_score_and_joins_d_only():
    """D(x) = w.x + 1/2 on x = (1, 1) and (0, 0): scores 7.5 and 0.5, eps (56.25 + 0.25) / 2."""
    real = torch.tensor([[1.0, 1.0], [0.0, 0.0]], dtype=torch.float64)
    gan = _linear_step(drift=0.001)
    fake = gan.G(torch.zeros(2, 2, dtype=torch.float64))
    terms, _ = gan.d_terms(real, fake.detach())
    assert list(terms) == ["loss_d", "drift"]
    assert terms["drift"].item() == pytest.approx(0.001 * 28.25, rel=1e-12)
    terms["drift"].backward()  # d/dw eps mean (w.x + b)^2 = eps mean 2 (w.x + b) x = eps (7.5, 7.5)
    assert_close(gan.D.weight.grad, torch.tensor([[0.0075, 0.0075]], dtype=torch.float64))
    split = _linear_step(drift=0.001, split_d=True)
    assert split([real])["drift"].item() == pytest.approx(0.02825, rel=1e-12)
