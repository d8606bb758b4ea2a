"""Stabilisers: each one's defining property with numbers, and their hooks in the step."""

import copy

import numpy as np
import pytest
import torch
from torch import nn
from torch.testing import assert_close

from conftest import TINY, read_metrics
from ganforge.config import Config, ModelConfig
from ganforge.errors import ConfigError
from ganforge.losses import LOSSES
from ganforge.stabilizers import (
    EMA,
    HistoricalAverage,
    augment,
    cutout,
    feature_matching,
    noise_std,
    translate,
)
from ganforge.train.loop import build_step
from ganforge.train.step import GANStep, Switches


@pytest.mark.parametrize(
    ("step", "expected"), [(0, 0.5), (25, 0.375), (50, 0.25), (100, 0.0), (150, 0.0)]
)
def test_instance_noise_std_falls_linearly_to_zero(step, expected):
    assert noise_std(step, 0.5, 100) == expected


def test_feature_matching_value_and_zero_at_equal_features():
    real = torch.tensor([[1.0, 2.0], [3.0, 4.0]])  # mean (2, 3)
    fake = torch.tensor([[0.0, 0.0], [2.0, 2.0], [1.0, 1.0]])  # mean (1, 1)
    assert feature_matching(real, fake).item() == 5.0  # 1^2 + 2^2
    # equal means give 0, whatever the samples
    assert feature_matching(real, torch.tensor([[2.0, 3.0]])).item() == 0.0


def _scalar(value: float) -> nn.Linear:
    m = nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        m.weight.fill_(value)
    return m


def test_historical_averaging_is_zero_at_the_first_step_then_tracks_the_mean():
    m = _scalar(2.0)
    ha = HistoricalAverage(m)
    assert ha.penalty(m).item() == 0.0
    with torch.no_grad():
        m.weight.fill_(4.0)
    ha.update(m)  # mean of (2, 4) = 3
    assert ha.penalty(m).item() == 1.0  # (4 - 3)^2
    with torch.no_grad():
        m.weight.fill_(0.0)
    ha.update(m)  # mean of (2, 4, 0) = 2
    assert ha.penalty(m).item() == 4.0
    assert ha.count.item() == 3.0


def test_ema_of_weights_and_copy_of_buffers():
    m = nn.Sequential(_scalar(1.0), nn.BatchNorm1d(1))
    ema = EMA(m, beta=0.9)
    with torch.no_grad():
        m[0].weight.fill_(2.0)
        m[1].running_mean.fill_(7.0)
    ema.update(m)  # 0.9 * 1 + 0.1 * 2
    assert_close(ema.module[0].weight, torch.tensor([[1.1]]))
    ema.update(m)  # 0.9 * 1.1 + 0.1 * 2
    assert_close(ema.module[0].weight, torch.tensor([[1.19]]))
    assert ema.module[1].running_mean.item() == 7.0
    assert m[0].weight.item() == 2.0  # the live G is untouched


def test_ema_rampup_caps_the_half_life_at_a_share_of_the_steps_taken():
    ema = EMA(_scalar(0.0), beta=0.99, rampup=0.5)
    assert ema.beta_at(0) == 0.0  # the first update copies G
    assert ema.beta_at(4) == 0.5 ** (1 / 2)  # half-life 0.5 x 4 = 2 steps
    assert ema.beta_at(1000) == 0.99  # 500 steps > 0.99's own half-life of 69
    assert EMA(_scalar(0.0), beta=0.99).beta_at(0) == 0.99  # rampup off


def test_ema_rampup_in_the_step_follows_g_early():
    """Through the step: the first G update is copied, the second averaged at beta_at(1)."""
    gan = _gan(ema=0.999, ema_rampup=1.0)
    gan([torch.randn(8, 3)])
    for a, b in zip(gan.G.parameters(), gan.sampler_g.parameters(), strict=True):
        assert torch.equal(a, b)
    before = [p.clone() for p in gan.sampler_g.parameters()]
    gan([torch.randn(8, 3)])  # t = 1: beta 0.5 ** (1 / 1) = 0.5
    for e, old, new in zip(gan.sampler_g.parameters(), before, gan.G.parameters(), strict=True):
        assert_close(e, 0.5 * old + 0.5 * new)


def test_ema_rampup_without_ema_is_refused_in_one_line():
    with pytest.raises(ConfigError, match=r"stab.ema_rampup shapes G's moving average"):
        _gan(ema_rampup=0.2)


def _gan(loss: str = "ns", g_steps: int = 1, **stab) -> GANStep:
    cfg = Config(model=ModelConfig(latent_dim=4, g_hidden=(8,), d_hidden=(8,)))
    cfg.train.loss, cfg.train.g_steps, cfg.train.steps = loss, g_steps, 100
    for k, v in stab.items():
        setattr(cfg.stab, k, v)
    torch.manual_seed(0)
    return build_step(cfg, (3,), torch.device("cpu"))


def test_with_every_switch_off_the_step_has_the_adversarial_terms_and_no_hook():
    gan = _gan()
    assert gan.switches == Switches(noise_steps=100) and not gan.after_d and not gan.after_g
    assert list(gan([torch.randn(8, 3)])) == ["loss_d", "d_real", "d_fake", "loss_g"]
    hooked = _gan(ema=0.99, historical_averaging=0.5)
    assert (len(hooked.after_d), len(hooked.after_g)) == (1, 2)  # hist_d; hist_g, then EMA
    out = hooked([torch.randn(8, 3)])
    assert list(out) == ["loss_d", "hist_d", "d_real", "d_fake", "loss_g", "hist_g"]


def test_ema_hook_gives_the_weights_of_the_step_without_it():
    """EMA does not touch the training maths: G and D follow the trajectory of the step
    without it exactly; only the hook after G's update differs."""
    plain, hooked = _gan(), _gan(ema=0.9)
    for _ in range(3):
        reals = [torch.randn(8, 3)]
        state = torch.get_rng_state()
        plain(reals)
        torch.set_rng_state(state)
        hooked(reals)
    for a, b in zip(
        [*plain.G.parameters(), *plain.D.parameters()],
        [*hooked.G.parameters(), *hooked.D.parameters()],
        strict=True,
    ):
        assert torch.equal(a, b)
    assert hooked.sampler_g is hooked.switches.ema.module and plain.sampler_g is plain.G


def test_label_smoothing_in_the_step():
    assert _gan(label_smoothing=True).switches.smooth_real == 0.9
    assert _gan(label_smoothing=True, smooth_real=0.8).switches.smooth_real == 0.8
    assert _gan(smooth_real=0.8).switches.smooth_real == 1.0  # off unless switched on
    with pytest.raises(ConfigError, match="label_smoothing"):
        _gan("hinge", label_smoothing=True)


def test_label_smoothing_changes_only_the_real_term_of_the_step_loss():
    """The step's L_D with smoothing equals the BCE with real targets 0.9 on the same logits."""
    gan = _gan(label_smoothing=True)
    real = torch.randn(8, 3)
    state = torch.get_rng_state()
    out = gan([real])
    # rerun the D pass on the initial weights with the same z
    ref = _gan()
    torch.set_rng_state(state)
    fake = ref.G(ref.noise(real)).detach()
    r, f = ref.D(real), ref.D(fake)
    bce = nn.functional.binary_cross_entropy_with_logits
    expected = bce(r, torch.full_like(r, 0.9)) + bce(f, torch.zeros_like(f))
    assert_close(out["loss_d"], expected)


def test_g_steps_updates_g_that_many_times():
    gan = _gan(g_steps=3)
    gan([torch.randn(8, 3), torch.randn(8, 3)])
    assert {int(s["step"]) for s in gan.opt_g.state.values()} == {3}
    assert {int(s["step"]) for s in gan.opt_d.state.values()} == {2}


def test_instance_noise_follows_the_schedule_in_the_step():
    gan = _gan(instance_noise=0.4, noise_steps=10)
    assert gan.noise_std() == 0.4
    for _ in range(5):
        gan([torch.randn(8, 3)])
    assert gan.t == 5 and gan.noise_std() == pytest.approx(0.2)
    gan.t = 10
    assert gan.noise_std() == 0.0


def test_instance_noise_reaches_d_inputs():
    """D sees real + N(0, s^2): the difference from the clean batch has std s."""
    gan = _gan(instance_noise=2.0)
    seen: list[torch.Tensor] = []
    gan.D.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    real = torch.zeros(4000, 3)
    gan([real])
    noisy_real = seen[0][: len(real)]  # the joint pass: reals first
    assert noisy_real.std().item() == pytest.approx(2.0, rel=0.02)


def test_feature_matching_term_is_the_weighted_distance_of_mean_features():
    """G's terms: the adversarial loss on D's scores and w ||E f(x) - E f(G(z))||^2, both from
    the passes of D that the step makes (no second D for the features)."""
    gan = _gan(feature_matching=2.0)
    real, fake = torch.randn(8, 3), torch.randn(8, 3)
    terms = gan.g_terms(fake, real)
    with torch.no_grad():
        h_real = gan.D.net[:-1](real).numpy().astype(np.float64)  # D's last hidden features
        h_fake = gan.D.net[:-1](fake).numpy().astype(np.float64)
        scores = gan.D(fake)
    want = 2.0 * np.square(h_real.mean(0) - h_fake.mean(0)).sum()
    assert list(terms) == ["loss_g", "fm"]
    assert_close(terms["fm"].double(), torch.tensor(want, dtype=torch.float64), rtol=1e-5, atol=0)
    assert torch.equal(terms["loss_g"], LOSSES["ns"].g(scores))


def test_feature_matching_and_historical_averaging_run_in_the_step():
    gan = _gan(feature_matching=1.0, historical_averaging=0.5)
    g0 = copy.deepcopy(gan.G)
    out = gan([torch.randn(8, 3)])
    assert set(out) == {"loss_d", "hist_d", "d_real", "d_fake", "loss_g", "fm", "hist_g"}
    assert out["hist_d"] == 0.0 and out["hist_g"] == 0.0  # the means start at the weights
    assert gan.switches.hist_g is not None and gan.switches.hist_g.count.item() == 2.0
    # the mean now holds (theta_0 + theta_1) / 2
    mean0 = gan.switches.hist_g.means()[0]
    assert_close(mean0, (next(g0.parameters()) + next(gan.G.parameters())) / 2)


def test_ema_weights_are_checkpointed_and_used_for_sampling(cli, tmp_path):
    from ganforge import checkpoint
    from ganforge.runs import load_generator

    run = tmp_path / "r"
    code, _, err = cli("train", "--out", run, "--steps", "10", "--quiet", *TINY, "stab.ema=0.5")
    assert code == 0, err
    tensors, _ = checkpoint.read(checkpoint.list_checkpoints(run / "checkpoints")[-1][1])
    ema = checkpoint.subset(tensors, "G_ema")
    live = checkpoint.subset(tensors, "G")
    assert set(ema) == set(live) and not torch.equal(ema["net.0.weight"], live["net.0.weight"])
    g = load_generator(run)
    assert torch.equal(g.state_dict()["net.0.weight"], ema["net.0.weight"])


def _maths(run):
    return [
        {k: v for k, v in r.items() if k not in ("img_per_s", "elapsed_s")}
        for r in read_metrics(run)
    ]


def test_resume_is_exact_with_stabilisers_on(cli, tmp_path):
    """Historical means, the EMA and the step of the noise schedule come back from the
    checkpoint: 5 steps, then 5 more, give the metrics of 10 steps in one go."""
    switches = [
        "stab.ema=0.9",
        "stab.historical_averaging=0.1",
        "stab.instance_noise=0.3",
        "stab.noise_steps=8",
        "stab.label_smoothing=true",
    ]
    full, part = tmp_path / "full", tmp_path / "part"
    assert cli("train", "--out", full, "--steps", "10", "--quiet", *TINY, *switches)[0] == 0
    assert cli("train", "--out", part, "--steps", "5", "--quiet", *TINY, *switches)[0] == 0
    assert cli("train", "--resume", part, "--steps", "10", "--quiet")[0] == 0
    assert _maths(full) == _maths(part)


@pytest.mark.parametrize(
    "switches",
    [
        ["train.loss=wgan", "model.spectral_norm=true"],
        ["train.loss=wgan-gp", "model.minibatch_discrimination=4", "train.g_steps=2"],
        ["train.loss=hinge", "model.minibatch_stddev=true", "stab.r1=1"],
        ["train.loss=lsgan", "model.virtual_batch_norm=true", "stab.feature_matching=1"],
        ["model.d_dropout=0.3", "stab.label_smoothing=true", "stab.instance_noise=0.1"],
        ["model.pack=4", "stab.ema=0.9", "optim.decay_from=0.5", "stab.gp=1"],
    ],
)
def test_switches_train_end_to_end(cli, tmp_path, switches):
    from ganforge.runs import sample

    run = tmp_path / "r"
    code, _, err = cli("train", "--out", run, "--steps", "6", "--quiet", *TINY, *switches)
    assert code == 0, err
    assert len(read_metrics(run)) == 2
    x = sample(run, 3)
    assert x.shape == (3, 1, 28, 28) and torch.isfinite(x).all()


def test_lr_factor_by_hand():
    from ganforge.train.schedule import lr_factor

    # 10 steps, decay from the middle: 1 to step 5, then (11 - step) / 6
    assert [lr_factor(s, 10, 0.5) for s in range(1, 11)] == pytest.approx(
        [1, 1, 1, 1, 1, 5 / 6, 4 / 6, 3 / 6, 2 / 6, 1 / 6]
    )
    assert [lr_factor(s, 10, 1.0) for s in (1, 10)] == [1, 1]  # off
    assert lr_factor(1, 10, 0.0) == pytest.approx(10 / 11)  # decays from the first step


def test_lr_factor_on_the_clock_by_hand():
    from ganforge.train.schedule import lr_factor_on_clock

    # a budget of 100 s, decay from the middle: 1 to 50 s, then (100 - elapsed) / 50, 0 past it
    shares = [lr_factor_on_clock(e, 100.0, 0.5) for e in (0.0, 50.0, 60.0, 75.0, 100.0, 130.0)]
    assert shares == pytest.approx([1, 1, 0.8, 0.5, 0, 0])
    assert lr_factor_on_clock(99.0, 100.0, 1.0) == 1  # off
    assert lr_factor_on_clock(25.0, 100.0, 0.0) == pytest.approx(0.75)  # from the first second


def test_lr_decay_sets_both_rates_every_step(cli, tmp_path, monkeypatch):
    from ganforge.train.step import GANStep

    seen: list[float] = []  # lr of G, lr of D, at each step
    call = GANStep.__call__

    def spy(self, *args, **kwargs):
        seen.extend([self.opt_g.param_groups[0]["lr"], self.opt_d.param_groups[0]["lr"]])
        return call(self, *args, **kwargs)

    monkeypatch.setattr(GANStep, "__call__", spy)
    rates = ["optim.lr_g=1e-3", "optim.lr_d=3e-3", "optim.decay_from=0.5"]
    code, _, err = cli("train", "--out", tmp_path / "r", "--steps", "4", "--quiet", *TINY, *rates)
    assert code == 0, err
    # 4 steps, decay from step 2: factors 1, 1, 2/3, 1/3
    factors = [1, 1, 2 / 3, 1 / 3]
    assert seen == pytest.approx([lr * f for f in factors for lr in (1e-3, 3e-3)])


def test_translation_moves_each_image_by_its_own_shift_and_repeats_the_edge():
    x = torch.arange(2 * 16, dtype=torch.float).view(2, 1, 4, 4)
    torch.manual_seed(0)
    dy, dx = (torch.randint(-1, 2, (2, 1, 1)) for _ in range(2))  # what translate draws
    torch.manual_seed(0)
    out = translate(x, 1)
    for i in range(2):
        a, b = int(dy[i]), int(dx[i])
        for r in range(4):
            for c in range(4):
                src = x[i, 0, min(max(r - a, 0), 3), min(max(c - b, 0), 3)]
                assert out[i, 0, r, c] == src
    # a gather: the gradient of the sum counts how often each input pixel was taken
    x.requires_grad_(True)
    torch.manual_seed(0)
    translate(x, 1).sum().backward()
    assert x.grad is not None and x.grad.sum() == 32


def test_cutout_zeroes_one_square_of_the_given_size_per_image():
    torch.manual_seed(1)
    out = cutout(torch.ones(50, 2, 8, 8), 4)
    zeros = (out == 0).all(1)  # every channel alike
    assert ((out == 0) | (out == 1)).all()
    for mask in zeros:  # one square of side 4, clipped where it crosses the edge
        rows, cols = mask.any(1).nonzero().flatten(), mask.any(0).nonzero().flatten()
        assert 2 <= len(rows) <= 4 and 2 <= len(cols) <= 4
        assert int(mask.sum()) == len(rows) * len(cols)
        assert len(rows) == 4 or rows[0] == 0 or rows[-1] == 7
    assert (zeros.sum((1, 2)) == 16).any()


def test_augmentation_reaches_every_input_of_d_and_refuses_points():
    with pytest.raises(ConfigError, match="images"):
        augment(torch.randn(4, 3), ("translation",))
    cfg = Config(model=ModelConfig(arch="dcgan", width=4, latent_dim=8))
    cfg.stab.augment = "cutout"
    torch.manual_seed(0)
    gan = build_step(cfg, (1, 28, 28), torch.device("cpu"))
    assert gan.switches.augment == ("cutout",)
    seen: list[torch.Tensor] = []
    gan.D.register_forward_hook(lambda m, inp, out: seen.append(inp[0].detach()))
    gan([torch.full((6, 1, 28, 28), 0.5)])
    # D's pass on reals and fakes (joint), then G's pass on fakes: each image has 14 x 14 = 196
    # zeros, or fewer where the square crosses the edge; the reals had none
    real_seen = seen[0][:6]
    assert ((real_seen == 0) | (real_seen == 0.5)).all()
    assert all(0 < int((im == 0).sum()) <= 196 for im in real_seen)
    assert len(seen) == 2 and all((s == 0).flatten(1).any(1).all() for s in seen)
