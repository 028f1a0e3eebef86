"""The GAN losses of ``ganaug.train.losses`` (issue 22 item 1), each against a value computed by hand on a tiny
critic: a linear ``nn.Linear(2, 1)`` whose weights are set, so every score and input gradient is known."""

from __future__ import annotations

import math

import pytest
import torch

from ganaug.train import losses as L


@pytest.fixture
def critic() -> torch.nn.Linear:
    """``D(x) = 3 x0 + 4 x1 - 1``: input gradient (3, 4) everywhere, norm 5."""
    lin = torch.nn.Linear(2, 1)
    with torch.no_grad():
        lin.weight.copy_(torch.tensor([[3.0, 4.0]]))
        lin.bias.fill_(-1.0)
    return lin


REAL = torch.tensor([[1.0, 0.0], [0.0, 1.0]])      # D = 2, 3
FAKE = torch.tensor([[0.0, 0.0], [0.5, 0.0]])      # D = -1, 0.5


def scores(critic, x):
    return critic(x).squeeze(1)


def test_adversarial_losses_match_hand_values(critic):
    real, fake = scores(critic, REAL), scores(critic, FAKE)
    assert torch.allclose(real, torch.tensor([2.0, 3.0])) and torch.allclose(fake, torch.tensor([-1.0, 0.5]))
    # WGAN: E[D(f)] - E[D(r)] = -0.25 - 2.5
    name, value = L.critic_loss("wgan-gp", real, fake)
    assert name == "wgan" and value.item() == pytest.approx(-2.75)
    assert L.critic_loss("wgan-clip", real, fake)[1].item() == pytest.approx(-2.75)
    assert L.generator_loss("wgan-gp", fake).item() == pytest.approx(0.25)
    # non-saturating: mean softplus(fake) + mean softplus(-real)
    sp = lambda v: math.log1p(math.exp(v))                                           # noqa: E731
    expected = (sp(-1.0) + sp(0.5)) / 2 + (sp(-2.0) + sp(-3.0)) / 2
    name, value = L.critic_loss("nsgan", real, fake)
    assert name == "nsgan" and value.item() == pytest.approx(expected)
    assert L.generator_loss("nsgan", fake).item() == pytest.approx((sp(1.0) + sp(-0.5)) / 2)
    # hinge: relu(1 - 2), relu(1 - 3) = 0, 0 ; relu(1 - 1), relu(1 + 0.5) = 0, 1.5
    name, value = L.critic_loss("hinge", real, fake)
    assert name == "hinge" and value.item() == pytest.approx(0.75)
    assert L.generator_loss("hinge", fake).item() == pytest.approx(0.25)
    with pytest.raises(ValueError, match="loss='lsgan'"):
        L.critic_loss("lsgan", real, fake)


def test_penalties_match_hand_values(critic):
    eps = torch.tensor([0.25, 1.0])
    x_hat = L.interpolate(REAL, FAKE, eps)
    assert torch.allclose(x_hat, torch.tensor([[0.25, 0.0], [0.0, 1.0]]))
    probe = torch.zeros_like(x_hat, requires_grad=True)
    grad = L.input_gradient(scores(critic, x_hat + probe), probe)
    assert torch.allclose(grad, torch.tensor([[3.0, 4.0], [3.0, 4.0]]))
    assert L.gradient_penalty(grad).item() == pytest.approx(16.0)                     # (5 - 1)^2
    assert L.r1_penalty(grad).item() == pytest.approx(25.0)                           # ||(3, 4)||^2
    # the penalty trains the critic: its gradient w.r.t. the weights is d/dw (||w|| - 1)^2 = 2 (||w|| - 1) w / ||w||
    L.gradient_penalty(grad).backward()
    assert torch.allclose(critic.weight.grad, torch.tensor([[2 * 4 * 3 / 5, 2 * 4 * 4 / 5]]))


def test_penalties_of_a_quadratic_critic_vary_per_row():
    """``D(x) = ||x||^2 / 2``: the input gradient is ``x`` itself."""
    x = torch.tensor([[1.0, 2.0], [2.0, 2.0]])
    probe = torch.zeros_like(x, requires_grad=True)
    grad = L.input_gradient(((x + probe) ** 2).sum(dim=1) / 2, probe)
    assert torch.allclose(grad, x)
    assert L.r1_penalty(grad).item() == pytest.approx((5 + 8) / 2)
    assert L.gradient_penalty(grad).item() == pytest.approx(((5 ** 0.5 - 1) ** 2 + (8 ** 0.5 - 1) ** 2) / 2)


def test_class_loss_is_the_cross_entropy():
    logits = torch.tensor([[0.0, 0.0], [math.log(3.0), 0.0]])
    assert L.class_loss(logits, torch.tensor([0, 0])).item() == pytest.approx((math.log(2) + math.log(4 / 3)) / 2)


def test_a_critic_shifted_by_a_constant_has_the_same_wgan_loss_but_not_the_same_ada_signal(critic):
    """Why ADA is refused with WGAN losses: ``D + c`` leaves the WGAN loss and its gradient penalty unchanged,
    while ADA's signal E[sign D(real)] moves with ``c``; the nsgan loss is not shift-invariant (0 is its boundary)."""
    real, fake = scores(critic, REAL), scores(critic, FAKE)
    shifted_real, shifted_fake = real - 10, fake - 10
    assert L.critic_loss("wgan-gp", shifted_real, shifted_fake)[1].item() == pytest.approx(-2.75)
    assert real.sign().mean().item() == 1.0 and shifted_real.sign().mean().item() == -1.0
    assert L.critic_loss("nsgan", shifted_real, shifted_fake)[1].item() != pytest.approx(
        L.critic_loss("nsgan", real, fake)[1].item())
