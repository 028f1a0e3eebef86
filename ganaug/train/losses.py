"""The GAN losses as pure functions of critic scores and input gradients (as StyleGAN2-ADA's ``loss.py``
keeps them apart from its training loop). Scores are ``(batch,)`` float tensors; nothing here holds state.

Adversarial terms, by ``loss`` (:data:`ganaug.train.options.LOSSES`):

==============  =========================================  ====================  ===============================
loss            critic                                     generator             source
==============  =========================================  ====================  ===============================
``wgan-gp``     ``E[D(f)] - E[D(r)]`` + ``gp_weight * GP``  ``-E[D(f)]``          Gulrajani et al. 2017
``wgan-clip``   ``E[D(f)] - E[D(r)]``, weights clipped      ``-E[D(f)]``          Arjovsky et al. 2017
``nsgan``       ``E[softplus(D(f))] + E[softplus(-D(r))]``  ``E[softplus(-D(f))]``  Goodfellow et al. 2014
``hinge``       ``E[relu(1 - D(r))] + E[relu(1 + D(f))]``   ``-E[D(f)]``          Lim & Ye 2017; Miyato et al. 2018
==============  =========================================  ====================  ===============================

Penalties take the gradient of the critic's scores with respect to its input (:func:`input_gradient`):
WGAN-GP's ``E[(||g|| - 1)^2]`` at interpolates of real and generated clips (:func:`interpolate`), R1's
``E[||g||^2]`` at real clips (Mescheder et al. 2018; weighted ``gamma / 2`` by the caller). The class
term is a cross-entropy (:func:`class_loss`): AC-GAN (Odena et al. 2017) on the critic's class logits.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["wgan_critic", "wgan_generator", "nsgan_critic", "nsgan_generator", "hinge_critic", "critic_loss",
           "generator_loss", "interpolate", "input_gradient", "gradient_penalty", "r1_penalty", "class_loss"]


def wgan_critic(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``E[D(fake)] - E[D(real)]``: the negated Wasserstein estimate the critic minimises."""
    return fake.mean() - real.mean()


def wgan_generator(fake: torch.Tensor) -> torch.Tensor:
    """``-E[D(fake)]`` (WGAN and hinge generators)."""
    return -fake.mean()


def nsgan_critic(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """Logistic loss of a critic whose scores are logits: ``E[softplus(D(f))] + E[softplus(-D(r))]``."""
    return F.softplus(fake).mean() + F.softplus(-real).mean()


def nsgan_generator(fake: torch.Tensor) -> torch.Tensor:
    """The non-saturating generator loss ``E[softplus(-D(f))] = -E[log sigmoid(D(f))]``."""
    return F.softplus(-fake).mean()


def hinge_critic(real: torch.Tensor, fake: torch.Tensor) -> torch.Tensor:
    """``E[relu(1 - D(r))] + E[relu(1 + D(f))]``."""
    return F.relu(1 - real).mean() + F.relu(1 + fake).mean()


_CRITIC = {"wgan-gp": ("wgan", wgan_critic), "wgan-clip": ("wgan", wgan_critic), "nsgan": ("nsgan", nsgan_critic),
           "hinge": ("hinge", hinge_critic)}
_GENERATOR = {"wgan-gp": wgan_generator, "wgan-clip": wgan_generator, "nsgan": nsgan_generator,
              "hinge": wgan_generator}


def critic_loss(kind: str, real: torch.Tensor, fake: torch.Tensor) -> tuple[str, torch.Tensor]:
    """``(name, value)`` of the critic's adversarial loss ``kind`` (the name is the logged term, ``D/<name>``)."""
    if kind not in _CRITIC:
        raise ValueError(f"loss={kind!r}: choose one of {'|'.join(_CRITIC)}")
    name, fn = _CRITIC[kind]
    return name, fn(real, fake)


def generator_loss(kind: str, fake: torch.Tensor) -> torch.Tensor:
    """The generator's adversarial loss ``kind`` from the critic's scores on its clips."""
    if kind not in _GENERATOR:
        raise ValueError(f"loss={kind!r}: choose one of {'|'.join(_GENERATOR)}")
    return _GENERATOR[kind](fake)


def interpolate(real: torch.Tensor, fake: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """``eps * real + (1 - eps) * fake`` per row (``eps`` ``(batch,)`` in [0, 1]), detached, in float32."""
    eps = eps.view((-1,) + (1,) * (real.dim() - 1)).to(real.device, torch.float32)
    return (eps * real.detach().float() + (1 - eps) * fake.detach().float())


def input_gradient(scores: torch.Tensor, probe: torch.Tensor) -> torch.Tensor:
    """``d sum(scores) / d probe`` with its graph kept (``create_graph``), so a penalty of it trains the critic.

    ``probe``: zeros shaped like the critic's input that require grad; the critic was called at
    ``x.detach() + probe``, so the graph holds no ``requires_grad_`` call and dynamo can trace it.
    """
    (grad,) = torch.autograd.grad(scores.float().sum(), probe, create_graph=True)
    return grad.float()


def gradient_penalty(grad: torch.Tensor) -> torch.Tensor:
    """WGAN-GP's two-sided penalty ``E[(||g|| - 1)^2]`` of per-row input gradients ``g`` ``(batch, ...)``."""
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def r1_penalty(grad: torch.Tensor) -> torch.Tensor:
    """R1's ``E[||g||^2]`` of per-row input gradients at real clips (the loss weights it ``r1_gamma / 2``)."""
    return grad.flatten(1).square().sum(dim=1).mean()


def class_loss(logits: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of class logits ``(batch, classes)`` against label indices ``(batch,)`` (the AC-GAN term)."""
    return F.cross_entropy(logits.float(), labels)
