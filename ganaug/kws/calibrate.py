"""Temperature scaling (Guo et al., 2017): one softmax temperature per classifier, fitted on VALID.

A classifier trained with label smoothing and augmentation is under-confident on clean clips, and by a
different amount for every recipe, so a posterior threshold (the label filter's ``min_confidence``) would
mean different things. The temperature ``T`` that minimises the negative log-likelihood of the VALID
speakers' labels under ``softmax(logits / T)`` is stored in the classifier's config.json; every posterior
ganaug reads from it (:meth:`ganaug.models.classifier.KWSClassifier.posteriors`) uses it.
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F

__all__ = ["fit_temperature", "logits_of"]


def logits_of(model, wavs: torch.Tensor, batch_size: int = 64) -> torch.Tensor:
    """``model``'s logits of ``wavs`` ``(n, time)`` in eval mode, float64 on the CPU."""
    model.eval()
    device = next(model.parameters()).device
    with torch.inference_mode():
        return torch.cat([model(wavs[i: i + batch_size].to(device)).double().cpu()
                          for i in range(0, len(wavs), batch_size)])


def fit_temperature(logits: torch.Tensor, targets: torch.Tensor) -> float:
    """The temperature in [0.05, 20] minimising the NLL of ``targets`` under ``softmax(logits / T)`` (scipy)."""
    from scipy.optimize import minimize_scalar

    logits, targets = logits.double(), targets.long()
    result = minimize_scalar(lambda log_t: float(F.cross_entropy(logits / math.exp(log_t), targets)),
                             bounds=(math.log(0.05), math.log(20.0)), method="bounded")
    return float(math.exp(result.x))
