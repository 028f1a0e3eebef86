"""BC-ResNet: broadcasted residual learning for keyword spotting (Kim, Chang, Lee, Sung, Interspeech 2021,
arXiv 2106.04140), written from the paper.

The network works on log-mel features ``(batch, 1, n_mels=40, frames)``. Its block keeps the 2-D
(frequency x time) features for a cheap frequency-depthwise convolution, averages them over frequency,
runs the temporal part (a time-depthwise convolution, BN, Swish, a pointwise convolution, channel
dropout) on the 1-D result, and broadcasts that back over frequency as a residual. SubSpectralNorm
normalises each of 5 frequency sub-bands with statistics of its own. Widths scale with ``tau``
(BC-ResNet-``tau``: 16t stem, stages of 8t/12t/16t/20t channels with 2/2/4/4 blocks, the 2nd and 3rd
stages halving the frequency axis, time dilations 1/2/4/8, then a 5x5 depthwise convolution over what
is left of the frequency axis and a 32t-channel pointwise layer). The embedding is that layer's output
averaged over time.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

__all__ = ["bcresnet_layers", "SubSpectralNorm", "BCResBlock"]

STAGES = ((8, 2, 1, 1), (12, 2, 2, 2), (16, 4, 2, 4), (20, 4, 1, 8))   # (width/tau, blocks, freq stride, dilation)


class SubSpectralNorm(nn.Module):
    """Batch norm per frequency sub-band: ``(N, C, F, T)`` normalised as ``(N, C * sub_bands, F / sub_bands, T)``."""

    def __init__(self, channels: int, sub_bands: int = 5):
        super().__init__()
        self.sub_bands = sub_bands
        self.norm = nn.BatchNorm2d(channels * sub_bands)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        n, c, f, t = x.shape
        if f % self.sub_bands:
            raise ValueError(f"SubSpectralNorm: {f} frequency bins do not split into {self.sub_bands} sub-bands")
        return self.norm(x.reshape(n, c * self.sub_bands, f // self.sub_bands, t)).reshape(n, c, f, t)


class BCResBlock(nn.Module):
    """One broadcasted residual block. A transition block (``in_channels != out_channels``) first maps the
    channels with a 1x1 convolution and has no identity shortcut; it is where the frequency stride goes."""

    def __init__(self, in_channels: int, out_channels: int, freq_stride: int = 1, dilation: int = 1,
                 dropout: float = 0.1, sub_bands: int = 5):
        super().__init__()
        self.transition = in_channels != out_channels
        if freq_stride != 1 and not self.transition:
            raise ValueError("a strided BC-ResBlock must also change the channels (a transition block)")
        c = out_channels
        self.project = nn.Sequential(nn.Conv2d(in_channels, c, 1, bias=False), nn.BatchNorm2d(c),
                                     nn.ReLU(inplace=True)) if self.transition else nn.Identity()
        self.freq = nn.Sequential(nn.Conv2d(c, c, (3, 1), stride=(freq_stride, 1), padding=(1, 0), groups=c, bias=False),
                                  SubSpectralNorm(c, sub_bands))
        self.time = nn.Sequential(
            nn.Conv2d(c, c, (1, 3), padding=(0, dilation), dilation=(1, dilation), groups=c, bias=False),
            nn.BatchNorm2d(c), nn.SiLU(inplace=True), nn.Conv2d(c, c, 1, bias=False), nn.Dropout2d(dropout))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shortcut = x
        x2 = self.freq(self.project(x))                          # (N, C, F', T)
        out = x2 + self.time(x2.mean(dim=2, keepdim=True))       # broadcast over frequency
        if not self.transition:
            out = out + shortcut
        return F.relu(out)


def bcresnet_layers(tau: int = 1, dropout: float = 0.1, n_mels: int = 40) -> tuple[nn.Module, nn.Module, nn.Module, int]:
    """BC-ResNet-``tau`` as ``(stem, blocks, tail, embedding_dim)``: ``(batch, 1, 40 mels, frames)`` through the
    three gives ``(batch, 32 * tau, 1, frames)``, averaged over time into the embedding."""
    if n_mels != 40:
        raise ValueError(f"n_mels={n_mels}: BC-ResNet is laid out for 40 mel bands (5 sub-bands at each stage)")
    if isinstance(tau, bool) or int(tau) != tau or tau < 1:
        raise ValueError(f"tau={tau!r}: the width multiplier of BC-ResNet is a positive integer (1, 2, 3, 6, 8)")
    tau = int(tau)
    stem = nn.Sequential(nn.Conv2d(1, 16 * tau, 5, stride=(2, 1), padding=2, bias=False),
                         nn.BatchNorm2d(16 * tau), nn.ReLU(inplace=True))
    blocks, channels = [], 16 * tau
    for width, count, stride, dilation in STAGES:
        for i in range(count):
            blocks.append(BCResBlock(channels, width * tau, stride if i == 0 else 1, dilation, dropout))
            channels = width * tau
    tail = nn.Sequential(
        nn.Conv2d(channels, channels, 5, padding=(0, 2), groups=channels, bias=False),   # the 5 bins left -> 1
        nn.Conv2d(channels, 32 * tau, 1, bias=False), nn.BatchNorm2d(32 * tau), nn.ReLU(inplace=True))
    return stem, nn.Sequential(*blocks), tail, 32 * tau
