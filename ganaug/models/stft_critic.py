"""A multi-resolution STFT critic (as the HiFi-GAN / UnivNet vocoders use beside their waveform critics).

``MultiResolutionSTFTCritic(label_names, resolutions, channels)`` scores a waveform ``(batch, time)``
by one small 2-D conv stack per STFT resolution (``(n_fft, hop)``, default UnivNet's
``(512, 128), (1024, 256), (256, 64)``) on the log-magnitude spectrogram: scores
``(resolutions, batch)``, one critic per resolution. The training loss is applied to each resolution
and the losses are added (as multi-scale critics do: summing the scores first would let one resolution
meet every hinge or logistic margin for all). Each stack ends in a patch map whose mean is the unconditional score; a
conditional critic adds the same projection term as the waveform critic (Miyato & Koyama 2018),
``<embed(y), h>`` with ``h`` the pooled last feature map, the embedding initialised at zero.

It is trained beside the waveform critic (``ganaug.train``, ``stft_critic: true``); its weights live
in the training state, never in an exported generator.
"""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["MultiResolutionSTFTCritic", "STFT_RESOLUTIONS"]

#: (n_fft, hop) of UnivNet's multi-resolution discriminator
STFT_RESOLUTIONS = ((512, 128), (1024, 256), (256, 64))


class _ResolutionCritic(nn.Module):
    """Conv2d stack on one resolution's log-magnitude ``(batch, 1, bins, frames)``."""

    def __init__(self, n_fft: int, hop: int, channels: int, num_labels: int | None):
        super().__init__()
        self.n_fft, self.hop = n_fft, hop
        self.register_buffer("window", torch.hann_window(n_fft), persistent=False)
        c = channels
        widths = [1, c, 2 * c, 4 * c, 4 * c]
        strides = [2, 2, 2, 1]
        self.convs = nn.ModuleList(nn.Conv2d(a, b, 5, s, padding=2) for a, b, s in zip(widths[:-1], widths[1:], strides))
        self.out = nn.Conv2d(widths[-1], 1, 3, padding=1)
        self.embed = None
        if num_labels is not None:
            self.embed = nn.Embedding(num_labels, widths[-1])
            nn.init.zeros_(self.embed.weight)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None) -> torch.Tensor:
        spec = torch.stft(x.float(), self.n_fft, self.hop, window=self.window, center=True, return_complex=True)
        mag = torch.view_as_real(spec).square().sum(-1).add(1e-6)        # |X|^2 + eps: smooth for the double backward
        h = 0.5 * mag.log().unsqueeze(1)                                   # log-magnitude
        for conv in self.convs:
            h = nn.functional.leaky_relu(conv(h), 0.2)
        score = self.out(h).mean(dim=(1, 2, 3))
        if self.embed is not None:
            if labels is None:
                raise ValueError("a conditional STFT critic needs labels")
            score = score + (self.embed(labels) * h.mean(dim=(2, 3))).sum(dim=1)
        return score


class MultiResolutionSTFTCritic(nn.Module):
    """Critics on STFT magnitudes at several resolutions: ``forward(x, labels=None)`` -> ``(resolutions, batch)``.

    Args:
        label_names: label names of a conditional critic (projection term), ``None`` unconditional.
        resolutions: ``(n_fft, hop)`` pairs.
        channels: width of the first conv of each resolution's stack (doubling twice).
    """

    family = "stft"

    def __init__(self, label_names=None, resolutions=STFT_RESOLUTIONS, channels: int = 16):
        super().__init__()
        if channels < 1:
            raise ValueError(f"channels={channels}: must be a positive integer")
        self.label_names = list(label_names) if label_names is not None else None
        self.resolutions = [tuple(int(v) for v in r) for r in resolutions]
        for n_fft, hop in self.resolutions:
            if n_fft < 16 or not 0 < hop <= n_fft:
                raise ValueError(f"resolution ({n_fft}, {hop}): need n_fft >= 16 and 0 < hop <= n_fft")
        self.channels = channels
        num = len(self.label_names) if self.label_names is not None else None
        self.critics = nn.ModuleList(_ResolutionCritic(n, h, channels, num) for n, h in self.resolutions)

    def config(self) -> dict:
        return {"label_names": self.label_names, "resolutions": [list(r) for r in self.resolutions],
                "channels": self.channels}

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if x.dim() != 2:
            raise ValueError(f"the STFT critic takes waveforms (batch, time), got shape {tuple(x.shape)}")
        return torch.stack([critic(x, labels) for critic in self.critics])
