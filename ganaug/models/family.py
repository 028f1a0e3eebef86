"""The generator family: what every generator in ``ganaug.models.GENERATORS`` offers, as a ``typing.Protocol``.

Training (``ganaug.train``), checkpoints (``ganaug.checkpoint``) and the generator source of
``ganaug.augment`` call nothing else; ``tests/test_protocols.py`` checks that every registered family
implements it, signatures included (a family's method may add parameters after these, with defaults).
A new family implements these members and registers in ``GENERATORS``.
"""

from __future__ import annotations

from typing import Protocol, runtime_checkable

import torch

__all__ = ["GeneratorFamily"]


@runtime_checkable
class GeneratorFamily(Protocol):
    family: str                     # the name in config.json's "model" and in GENERATORS
    label_names: list[str] | None   # None: unconditional
    sample_rate: int
    num_samples: int                # length of its waveforms
    latent_dim: int                 # size of z

    def config(self) -> dict:
        """The constructor's keyword arguments (config.json's "kwargs")."""

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, latent_dim)`` (+ label indices) -> what the family's critic sees."""

    def encode(self, wavs: torch.Tensor) -> torch.Tensor:
        """Real waveforms ``(batch, num_samples)`` -> the space :meth:`forward` outputs."""

    def fit_data(self, wavs):
        """Data statistics, set once before training, from ``(N, num_samples)`` or batches."""

    def synthesize(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Waveforms ``(batch, num_samples)`` in [-1, 1] of given latents: the inference path."""

    def sample(self, n: int, labels=None, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` waveforms ``(n, num_samples)`` float32 in [-1, 1]; ``labels`` names or indices."""
