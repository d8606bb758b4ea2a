"""Objectives against values and gradients computed by hand.

Logits chosen so that D's probabilities are 1/2, 3/4 and 1/4: sigmoid(0) = 1/2,
sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4.
"""

import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch.testing import assert_close

from ganforge.config import LOSS_NAMES
from ganforge.losses import (
    LOSSES,
    d_bce,
    d_bce_smoothed,
    d_hinge,
    d_lsgan_smoothed,
    d_rpgan,
    g_minimax,
    g_ns,
    g_rpgan,
    value,
)

LN3 = math.log(3.0)


def _leaf(*values: float) -> torch.Tensor:
    return torch.tensor(values, dtype=torch.float64).view(-1, 1).requires_grad_(True)


def test_d_bce_value_and_gradients():
    real, fake = _leaf(0.0, LN3), _leaf(0.0, -LN3)
    loss = d_bce(real, fake)
    # -mean log D(x) = (ln 2 + ln 4/3) / 2 ; -mean log(1 - D(G(z))) = (ln 2 + ln 4/3) / 2
    assert_close(loss, torch.tensor(math.log(2) + math.log(4 / 3), dtype=torch.float64))
    loss.backward()
    # dL/dl_real = -(1 - D(x)) / N ; dL/dl_fake = D(G(z)) / M
    assert_close(real.grad, torch.tensor([[-0.25], [-0.125]], dtype=torch.float64))
    assert_close(fake.grad, torch.tensor([[0.25], [0.125]], dtype=torch.float64))


def test_value_is_minus_d_loss_and_log4_at_equilibrium():
    real, fake = _leaf(0.0, LN3), _leaf(0.0, -LN3)
    assert_close(value(real, fake), -d_bce(real, fake))
    half = torch.zeros(5, 1, dtype=torch.float64)  # D = 1/2 everywhere
    assert_close(value(half, half), torch.tensor(-math.log(4), dtype=torch.float64))


def test_non_saturating_generator_loss():
    fake = _leaf(0.0, -LN3)
    loss = g_ns(fake)
    # -log(1/2) = ln 2, -log(1/4) = 2 ln 2
    assert_close(loss, torch.tensor(1.5 * math.log(2), dtype=torch.float64))
    loss.backward()
    # d/dl of -log sigmoid(l) = -(1 - D) ; over N = 2
    assert_close(fake.grad, torch.tensor([[-0.25], [-0.375]], dtype=torch.float64))


def test_minimax_generator_loss():
    fake = _leaf(0.0, -LN3)
    loss = g_minimax(fake)
    # log(1 - 1/2) = -ln 2, log(1 - 1/4) = ln 3/4
    assert_close(loss, torch.tensor((-math.log(2) + math.log(3 / 4)) / 2, dtype=torch.float64))
    loss.backward()
    # d/dl of log(1 - sigmoid(l)) = -D ; over N = 2
    assert_close(fake.grad, torch.tensor([[-0.25], [-0.125]], dtype=torch.float64))


def test_minimax_saturates_where_non_saturating_does_not():
    """When D rejects fakes with confidence, log(1 - D) has no gradient and -log D keeps one."""
    mm, ns = _leaf(-20.0), _leaf(-20.0)
    g_minimax(mm).backward()
    g_ns(ns).backward()
    assert abs(mm.grad.item()) < 1e-8
    assert_close(ns.grad, torch.tensor([[-1.0]], dtype=torch.float64), atol=1e-8, rtol=0)


def test_confident_logits_stay_exact_in_float32():
    """softplus keeps -log D(G(z)) = 100 and its gradient -1 at logit -100, where
    -log(sigmoid(l) + 1e-8) would give 18.42 and no gradient."""
    fake = torch.tensor([[-100.0]], requires_grad=True)
    loss = g_ns(fake)
    loss.backward()
    assert loss.item() == 100.0
    assert fake.grad.item() == -1.0
    real = torch.tensor([[100.0]], requires_grad=True)
    d = d_bce(real, torch.tensor([[-100.0]]))
    # 2 softplus(-100) = 2 log(1 + e^-100) ~ 7.4e-44: tiny, positive, finite
    assert 0.0 < d.item() < 1e-40


def _sp(x: float) -> float:
    """softplus by hand: log(1 + e^x)."""
    return math.log1p(math.exp(x))


# D's outputs on two real and two fake samples, and each loss's (L_D, L_G) on them, by hand.
REAL, FAKE = (2.0, -1.0), (0.5, -3.0)
EXPECTED = {
    # mean softplus(-l_real) + mean softplus(l_fake); G: mean softplus(-l_fake)
    "ns": ((_sp(-2) + _sp(1)) / 2 + (_sp(0.5) + _sp(-3)) / 2, (_sp(-0.5) + _sp(3)) / 2),
    # G: -mean softplus(l_fake)
    "minimax": ((_sp(-2) + _sp(1)) / 2 + (_sp(0.5) + _sp(-3)) / 2, -(_sp(0.5) + _sp(-3)) / 2),
    # mean f(fake) - mean f(real) = -1.25 - 0.5; G: -mean f(fake) = 1.25
    "wgan": (-1.75, 1.25),
    "wgan-gp": (-1.75, 1.25),
    # mean relu(1 - [2, -1]) = (0 + 2) / 2 = 1; mean relu(1 + [0.5, -3]) = (1.5 + 0) / 2 = 0.75
    "hinge": (1.75, 1.25),
    # 1/2 mean([1, 4]) + 1/2 mean([0.25, 9]) = 1.25 + 2.3125; G: 1/2 mean([0.25, 16]) = 4.0625
    "lsgan": (3.5625, 4.0625),
    # pairs (2, 0.5) and (-1, -3): mean softplus(fake - real) = (sp(-1.5) + sp(-2)) / 2;
    # G: mean softplus(real - fake) = (sp(1.5) + sp(2)) / 2
    "rpgan": ((_sp(-1.5) + _sp(-2)) / 2, (_sp(1.5) + _sp(2)) / 2),
}


def test_every_loss_has_a_row_of_expected_values():
    assert set(EXPECTED) == set(LOSSES)


@pytest.mark.parametrize("name", sorted(EXPECTED))
def test_loss_values_by_hand(name):
    real, fake = _leaf(*REAL), _leaf(*FAKE)
    d, g = EXPECTED[name]
    assert_close(LOSSES[name].d(real, fake), torch.tensor(d, dtype=torch.float64))
    assert_close(LOSSES[name].g_loss(fake, real), torch.tensor(g, dtype=torch.float64))


def test_hinge_pushes_real_scores_up_and_fake_scores_down():
    """Gradient descent on L_D raises real scores below 1 and lowers fake scores above -1;
    scores past the margins get no gradient. Signs flipped would make D score fakes high."""
    real, fake = _leaf(2.0, -1.0), _leaf(0.5, -3.0)
    d_hinge(real, fake).backward()
    assert_close(real.grad, torch.tensor([[0.0], [-0.5]], dtype=torch.float64))
    assert_close(fake.grad, torch.tensor([[0.5], [0.0]], dtype=torch.float64))
    fake = _leaf(0.5, -3.0)
    LOSSES["hinge"].g(fake).backward()  # G raises every fake score
    assert_close(fake.grad, torch.tensor([[-0.5], [-0.5]], dtype=torch.float64))


def test_wasserstein_critic_gradients():
    real, fake = _leaf(2.0, -1.0), _leaf(0.5, -3.0)
    LOSSES["wgan"].d(real, fake).backward()
    assert_close(real.grad, torch.full((2, 1), -0.5, dtype=torch.float64))
    assert_close(fake.grad, torch.full((2, 1), 0.5, dtype=torch.float64))


def test_label_smoothing_puts_alpha_on_real_targets_only():
    """Against PyTorch's BCE with explicit targets: 0.9 for the real samples, 0 for the fakes."""
    real, fake = _leaf(2.0, -1.0), _leaf(0.5, -3.0)
    ours = d_bce_smoothed(real, fake, 0.9)
    ref = F.binary_cross_entropy_with_logits(
        real, torch.full_like(real, 0.9)
    ) + F.binary_cross_entropy_with_logits(fake, torch.zeros_like(fake))
    assert_close(ours, ref)
    assert_close(d_bce_smoothed(real, fake, 1.0), d_bce(real, fake))  # alpha = 1: no smoothing
    # the optimal D on a real sample is now alpha: at D(x) = 0.9 (logit ln 9) the gradient is 0
    at = _leaf(math.log(9.0))
    d_bce_smoothed(at, _leaf(0.0), 0.9).backward()
    assert abs(at.grad.item()) < 1e-12


def test_lsgan_smoothing_moves_the_real_target():
    real, fake = _leaf(0.9), _leaf(0.0)
    assert d_lsgan_smoothed(real, fake, 0.9).item() == 0.0  # both at their targets
    assert_close(d_lsgan_smoothed(real, fake, 1.0), LOSSES["lsgan"].d(real, fake))


def test_table_flags():
    assert LOSSES["wgan"].clip and not LOSSES["wgan-gp"].clip
    assert LOSSES["wgan-gp"].gp == 10.0 and LOSSES["ns"].gp == 0.0
    critics = {n for n, loss in LOSSES.items() if loss.d_smoothed is None and not loss.g_needs_real}
    assert critics == {"wgan", "wgan-gp", "hinge"}
    relativistic = {n for n, loss in LOSSES.items() if loss.g_needs_real}
    assert relativistic == {"rpgan"} and LOSSES["rpgan"].d_smoothed is None


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_table_rows_are_complete(name):
    loss = LOSSES[name]
    logits = torch.zeros(4, 1)
    assert torch.isfinite(loss.d(logits, logits)) and torch.isfinite(loss.g_loss(logits, logits))
    assert loss.about


def test_table_maps_names_to_the_course_losses():
    assert LOSSES["ns"].g is g_ns and LOSSES["minimax"].g is g_minimax
    assert LOSSES["ns"].d is d_bce and LOSSES["minimax"].d is d_bce


def test_the_table_and_the_config_list_the_same_names_in_order():
    assert tuple(LOSSES) == LOSS_NAMES


# The relativistic pairing GAN on three pairs (real logit a_i, fake logit b_i), in numpy.
A, B = np.array([2.0, -1.0, 0.5]), np.array([0.5, -3.0, 1.0])


def _np_sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def test_rpgan_discriminator_value_and_gradients_by_hand():
    real, fake = _leaf(*A), _leaf(*B)
    loss = d_rpgan(real, fake)
    # softplus(-(a - b)) = log(1 + e^(b - a)), averaged over the pairs
    assert_close(loss.item(), float(np.mean(np.logaddexp(0.0, B - A))))
    loss.backward()
    # d/da softplus(-(a - b)) = -sigmoid(-(a - b)); d/db = +sigmoid(-(a - b)); over N = 3
    s = _np_sigmoid(-(A - B)) / 3
    assert_close(real.grad.view(-1).numpy(), -s)
    assert_close(fake.grad.view(-1).numpy(), s)


def test_rpgan_generator_value_and_gradients_by_hand():
    real, fake = _leaf(*A), _leaf(*B)
    loss = LOSSES["rpgan"].g_loss(fake, real)
    # softplus(-(b - a)) = log(1 + e^(a - b))
    assert_close(loss.item(), float(np.mean(np.logaddexp(0.0, A - B))))
    loss.backward()
    # d/db softplus(-(b - a)) = -sigmoid(-(b - a)): G raises each fake above its real
    s = _np_sigmoid(-(B - A)) / 3
    assert_close(fake.grad.view(-1).numpy(), -s)
    assert_close(real.grad.view(-1).numpy(), s)


def test_rpgan_is_relative_and_paired():
    """Only the differences a_i - b_i count: one constant added to every logit changes
    nothing, and pairing the same logits otherwise changes the loss (unlike ns's means)."""
    real, fake = _leaf(*A), _leaf(*B)
    for f, args in ((d_rpgan, (real, fake)), (g_rpgan, (fake, real))):
        assert_close(f(*(x + 7.0 for x in args)), f(*args))
    swapped = _leaf(*B[[1, 0, 2]])
    assert abs(d_rpgan(real, swapped).item() - d_rpgan(real, fake).item()) > 0.1
    assert_close(d_bce(real, swapped), d_bce(real, fake))  # ns sees the means only
    # at D's indifference (equal logits in every pair) both losses are log 2
    same = _leaf(0.3, -2.0, 5.0)
    assert_close(d_rpgan(same, same), torch.tensor(math.log(2), dtype=torch.float64))
    assert_close(g_rpgan(same, same), torch.tensor(math.log(2), dtype=torch.float64))


def test_rpgan_refuses_unpaired_logits_and_a_missing_real():
    with pytest.raises(ValueError, match="pairs the i-th real"):
        d_rpgan(_leaf(1.0, 2.0), _leaf(1.0))
    with pytest.raises(ValueError, match="pass real_logits"):
        LOSSES["rpgan"].g_loss(_leaf(1.0))
    assert LOSSES["ns"].g_loss(_leaf(0.0)) == LOSSES["ns"].g_loss(_leaf(0.0), _leaf(5.0))
