"""An exponential moving average of the generator's weights, with StyleGAN2-ADA's ramp-up.

``ema_decay`` (beta per generator step) fixes a half-life of ``H = ln 0.5 / ln beta`` steps. With ramp-up
(``rampup`` r, 0.05 in StyleGAN2-ADA's ``training_loop.py``), the half-life after ``t`` steps is
``min(H, r * t)``, so the average forgets the random initialisation as fast as training moves away from
it: without it, 150 steps at beta 0.999 leave ``0.999^150 = 86%`` of the random weights in the export.
Buffers (SpecGAN's data statistics, spectral norm's power-iteration vectors) are copied, not averaged.

Why not ``torch.optim.swa_utils.AveragedModel`` with ``get_ema_multi_avg_fn``: its decay is a constant
(a ramp needs the step, and its own counter ``n_averaged`` is a device tensor whose read is a host
synchronisation per step on a GPU); with ``use_buffers=True`` it would average the buffers too (a bool
``data_fitted`` cannot be averaged); and it wraps the copy as ``module.``, which renames the ``G_ema.*``
tensors older training states resume from.
"""

from __future__ import annotations

import copy
import math

import torch
from torch import nn

__all__ = ["EMA"]


class EMA:
    """``EMA(module, decay, rampup)``: ``.module`` is the averaged copy; ``update(source, step)`` after each
    generator update, with ``step`` the number of updates before this one (0 for the first: the copy)."""

    def __init__(self, module: nn.Module, decay: float, rampup: float = 0.05):
        if not 0.0 < decay < 1.0:
            raise ValueError(f"ema_decay={decay}: must be in (0, 1), e.g. 0.999")
        if rampup < 0:
            raise ValueError(f"ema_rampup={rampup}: must be >= 0 (0 = no ramp-up; 0.05 in StyleGAN2-ADA)")
        self.module = copy.deepcopy(module).requires_grad_(False)
        self.decay, self.rampup = float(decay), float(rampup)
        self.half_life = math.log(0.5) / math.log(self.decay)        # in generator steps

    def beta(self, step: int) -> float:
        """The decay used for the update after ``step`` earlier updates."""
        if not self.rampup:
            return self.decay
        half_life = min(self.half_life, self.rampup * step)
        return 0.5 ** (1.0 / half_life) if half_life > 0 else 0.0

    @torch.no_grad()
    def update(self, source: nn.Module, step: int) -> None:
        weight = 1.0 - self.beta(step)
        torch._foreach_lerp_(list(self.module.parameters()), list(source.parameters()), weight)
        for mine, theirs in zip(self.module.buffers(), source.buffers()):
            mine.copy_(theirs)
