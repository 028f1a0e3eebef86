"""How a keyword classifier learns from synthetic rows: loss weight, soft targets, separate batch-norm
statistics, a domain-adversarial head. The rows come with a mask (``synthetic``) from the injection policy.

- ``synthetic_weight`` w: the batch loss is ``(sum of real rows' losses + w * sum of synthetic rows' losses)
  / (n_real + w * n_synthetic)``.
- ``soft_labels``: a synthetic row's target is the filter classifier's posterior over the run's labels
  instead of its intended label (only when that classifier was trained on the run's own training speakers).
- ``synthetic_bn: separate`` (Synt++, arXiv 2110.11479): synthetic rows go through the network in a pass of
  their own, so batch norm normalises them with their own statistics; the running statistics used at
  inference are updated by real rows only.
- ``domain_adversarial`` lambda (arXiv 2408.10463): a small real-vs-synthetic head on the embedding behind a
  gradient-reversal layer, so the embedding learns not to tell them apart; its loss is weighted by lambda.
"""

from __future__ import annotations

import contextlib

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["synthetic_loss", "GradientReversal", "DomainHead", "running_stats_frozen", "BN_MODES"]

BN_MODES = ("shared", "separate")


def synthetic_loss(logits: torch.Tensor, labels: torch.Tensor, synthetic: torch.Tensor | None, weight: float = 1.0,
                   label_smoothing: float = 0.0, soft_targets: torch.Tensor | None = None) -> torch.Tensor:
    """Cross-entropy over a batch whose ``synthetic`` rows (bool mask) weigh ``weight`` each and, with
    ``soft_targets`` (``(n_synthetic, num_labels)`` rows that sum to 1), learn those distributions."""
    losses = F.cross_entropy(logits, labels, reduction="none", label_smoothing=label_smoothing)
    if synthetic is None or not bool(synthetic.any()):
        return losses.mean()
    if soft_targets is not None:
        losses = losses.clone()
        losses[synthetic] = -(soft_targets * F.log_softmax(logits[synthetic], dim=1)).sum(dim=1)
    weights = torch.where(synthetic, torch.full_like(losses, float(weight)), torch.ones_like(losses))
    return (weights * losses).sum() / weights.sum().clamp_min(1e-12)


class _Reverse(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x):
        return x.view_as(x)

    @staticmethod
    def backward(ctx, grad):
        return -grad


class GradientReversal(nn.Module):
    """Identity forward, negated gradient backward (Ganin & Lempitsky, 2015)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _Reverse.apply(x)


class DomainHead(nn.Module):
    """Real (0) vs synthetic (1) logit of an embedding, behind a gradient reversal."""

    def __init__(self, embedding_dim: int, hidden: int = 64):
        super().__init__()
        self.net = nn.Sequential(GradientReversal(), nn.Linear(embedding_dim, hidden), nn.ReLU(), nn.Linear(hidden, 1))

    def loss(self, embeddings: torch.Tensor, synthetic: torch.Tensor) -> torch.Tensor:
        return F.binary_cross_entropy_with_logits(self.net(embeddings).squeeze(1), synthetic.float())


@contextlib.contextmanager
def running_stats_frozen(model: nn.Module):
    """Batch norm still normalises with the batch's statistics, but its running statistics stay as they are."""
    norms = [m for m in model.modules() if isinstance(m, nn.modules.batchnorm._BatchNorm) and m.training]
    saved = [(m.momentum, m.num_batches_tracked.clone() if m.num_batches_tracked is not None else None) for m in norms]
    for m in norms:
        m.momentum = 0.0                 # running = (1 - 0) * running + 0 * batch
    try:
        yield
    finally:
        for m, (momentum, tracked) in zip(norms, saved):
            m.momentum = momentum
            if tracked is not None:
                m.num_batches_tracked.copy_(tracked)
