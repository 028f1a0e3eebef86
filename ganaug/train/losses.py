"""GAN losses as named terms, and the input-gradient penalties (WGAN-GP, R1).

``d_adversarial(kind, real, fake)`` / ``g_adversarial(kind, fake)`` take critic scores ``(batch,)``
and return ``(name, loss)``; ``kind`` is one of :data:`ganaug.train.options.LOSSES`:

- ``wgan-gp`` / ``wgan-clip`` (Arjovsky et al. 2017; Gulrajani et al. 2017): D ``E[D(f)] - E[D(r)]``, G ``-E[D(f)]``;
- ``nsgan`` (Goodfellow et al. 2014, non-saturating): D ``E[softplus(D(f))] + E[softplus(-D(r))]``, G ``E[softplus(-D(f))]``;
- ``hinge`` (Lim & Ye 2017; Miyato et al. 2018): D ``E[relu(1 - D(r))] + E[relu(1 + D(f))]``, G ``-E[D(f)]``.

Penalties are computed at a probe: ``x + delta`` with ``delta`` a zero tensor that requires grad,
made by the caller, so the penalty's graph holds no ``requires_grad_`` call and dynamo traces it whole
(with ``torch._dynamo.config.trace_autograd_ops``).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["d_adversarial", "g_adversarial", "input_gradient_penalty", "gradient_penalty"]


def d_adversarial(kind: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[str, torch.Tensor]:
    """The critic's adversarial loss ``(name, value)`` from its scores on real and generated clips."""
    if kind in ("wgan-gp", "wgan-clip"):
        return "wgan", fake.mean() - real.mean()
    if kind == "nsgan":
        return "nsgan", F.softplus(fake).mean() + F.softplus(-real).mean()
    if kind == "hinge":
        return "hinge", F.relu(1 - real).mean() + F.relu(1 + fake).mean()
    raise ValueError(f"loss={kind!r}: choose wgan-gp, wgan-clip, nsgan or hinge")


def g_adversarial(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss from the critic's scores on its clips."""
    if kind == "nsgan":
        return F.softplus(-fake).mean()
    return -fake.mean()


def input_gradient_penalty(critic, x: torch.Tensor, probe: torch.Tensor, labels, center: float,
                           shifts: torch.Tensor | None = None, autocast=None) -> torch.Tensor:
    """``E[(||grad_x D(x)|| - center)^2]`` (WGAN-GP: center 1) or, for ``center=0``, ``E[||grad_x D(x)||^2]`` (R1).

    ``probe``: zeros shaped like ``x`` that require grad (the point the gradient is taken at is
    ``x + probe``; ``x`` itself is detached). ``autocast``: a context for the critic pass (``None``:
    float32, autocast off). ``shifts`` go to critics that take phase-shuffle shifts.
    """
    point = x.detach().float() + probe
    context = autocast() if autocast is not None else torch.autocast(device_type=x.device.type, enabled=False)
    with context:
        out = critic(point, labels) if shifts is None else critic(point, labels, shifts=shifts)
    (grad,) = torch.autograd.grad(out.float().sum(), probe, create_graph=True)
    grad = grad.float().flatten(1)
    if center == 0:
        return grad.square().sum(dim=1).mean()
    return (grad.norm(dim=1) - center).square().mean()


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, labels, eps: torch.Tensor,
                     shifts: torch.Tensor | None = None) -> torch.Tensor:
    """WGAN-GP's ``E[(||grad D(x_hat)|| - 1)^2]`` on ``x_hat = eps*real + (1-eps)*fake``, in float32 (no autocast)."""
    shape = (-1,) + (1,) * (real.dim() - 1)
    eps = eps.view(shape).to(real.device)
    x_hat = eps * real.float() + (1 - eps) * fake.float()
    probe = torch.zeros_like(x_hat, requires_grad=True)
    return input_gradient_penalty(critic, x_hat, probe, labels, 1.0, shifts)
