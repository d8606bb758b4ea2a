"""Objectives against values and gradients computed by hand.

Logits chosen so that D's probabilities are 1/2, 3/4 and 1/4: sigmoid(0) = 1/2,
sigmoid(ln 3) = 3/4, sigmoid(-ln 3) = 1/4.
"""

import math

import pytest
import torch
from torch.testing import assert_close

from ganforge.losses import LOSSES, d_bce, g_minimax, g_ns, value

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


@pytest.mark.parametrize("name", sorted(LOSSES))
def test_table_rows_are_complete(name):
    loss = LOSSES[name]
    logits = torch.zeros(4, 1)
    assert torch.isfinite(loss.d(logits, logits)) and torch.isfinite(loss.g(logits))
    assert loss.about


def test_table_maps_names_to_the_course_losses():
    assert LOSSES["ns"].g is g_ns and LOSSES["minimax"].g is g_minimax
    assert LOSSES["ns"].d is d_bce and LOSSES["minimax"].d is d_bce
