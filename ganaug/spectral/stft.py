"""The two short-time Fourier transforms of the time-frequency GANs, their inverses and Griffin-Lim.

* **SpecGAN** (Donahue et al. 2019): periodic Hann window of 256 samples (16 ms at 16 kHz), hop 128.
  ``hann_stft`` is centred (frame ``n`` is centred on sample ``n * hop``) and keeps ``T // hop``
  frames, so 16384 samples give 128 frames x 129 bins; SpecGAN drops the top bin -> 128 x 128.
* **TiFGAN-M** (Marafioti et al. 2019): Gaussian window ``g(t) = exp(-pi t^2 / lam)`` with
  ``lam = hop * channels`` (time-frequency ratio matched to the lattice, the case where the phase
  gradient follows from the log-magnitude), hop 128, 512 channels -> 257 bins x 128 frames; the
  Nyquist bin is dropped -> 256 x 128. The Gaussian (std about 102 samples) is longer than 512
  samples, so it is sampled on 1024 points and the 1024-point FFT is read at every other bin,
  which is exactly the 512-channel transform of the long window (frequency-domain subsampling =
  time-domain folding, as LTFAT's long-window DGT does). Truncating at +-512 samples leaves
  ``exp(-pi 512^2 / 65536) = 4e-6`` of the window out.

Shapes: waveforms ``(batch, time)``, spectrograms ``(batch, bins, frames)``, complex or magnitude.
Both inverses are the overlap-add least-squares inverse (``torch.istft``); phases follow the
"time-invariant" convention (phase referred to each frame's centre).
"""

from __future__ import annotations

import functools
import math
from typing import Callable

import torch

__all__ = [
    "SPECGAN_N_FFT", "SPECGAN_HOP", "TIFGAN_CHANNELS", "TIFGAN_HOP",
    "hann_stft", "hann_istft", "gauss_window", "gauss_stft", "gauss_istft", "griffin_lim",
]

SPECGAN_N_FFT, SPECGAN_HOP = 256, 128
TIFGAN_CHANNELS, TIFGAN_HOP = 512, 128


def _check_signal(wavs: torch.Tensor, hop_length: int) -> None:
    if wavs.dim() != 2:
        raise ValueError(f"expected waveforms of shape (batch, time), got {tuple(wavs.shape)}")
    if wavs.shape[-1] % hop_length:
        raise ValueError(f"signal length {wavs.shape[-1]} must be a multiple of the hop ({hop_length})")


@functools.lru_cache(maxsize=8)
def _hann(n_fft: int, device: str) -> torch.Tensor:
    return torch.hann_window(n_fft, periodic=True, device=device)


def hann_stft(wavs: torch.Tensor, n_fft: int = SPECGAN_N_FFT, hop_length: int = SPECGAN_HOP) -> torch.Tensor:
    """Complex STFT ``(batch, n_fft // 2 + 1, time // hop_length)`` with a periodic Hann window."""
    _check_signal(wavs, hop_length)
    spec = torch.stft(wavs.float(), n_fft, hop_length, window=_hann(n_fft, str(wavs.device)),
                      center=True, pad_mode="reflect", return_complex=True)
    return spec[..., : wavs.shape[-1] // hop_length]


def hann_istft(spec: torch.Tensor, length: int, n_fft: int = SPECGAN_N_FFT,
               hop_length: int = SPECGAN_HOP) -> torch.Tensor:
    """Inverse of ``hann_stft``: ``(batch, bins, frames)`` complex -> ``(batch, length)``."""
    spec = torch.nn.functional.pad(spec, (0, length // hop_length + 1 - spec.shape[-1]))
    return torch.istft(spec, n_fft, hop_length, window=_hann(n_fft, str(spec.device)), center=True, length=length)


@functools.lru_cache(maxsize=8)
def gauss_window(channels: int = TIFGAN_CHANNELS, hop_length: int = TIFGAN_HOP, device: str = "cpu") -> torch.Tensor:
    """Gaussian ``exp(-pi t^2 / (hop * channels))`` on ``2 * channels`` points, peak at the centre."""
    t = torch.arange(2 * channels, dtype=torch.float64) - channels
    return torch.exp(-math.pi * t**2 / (hop_length * channels)).float().to(device)


def gauss_stft(wavs: torch.Tensor, channels: int = TIFGAN_CHANNELS, hop_length: int = TIFGAN_HOP) -> torch.Tensor:
    """TiFGAN's Gaussian STFT: ``(batch, channels // 2 + 1, time // hop_length)`` complex."""
    _check_signal(wavs, hop_length)
    window = gauss_window(channels, hop_length, str(wavs.device))
    spec = torch.stft(wavs.float(), 2 * channels, hop_length, window=window, center=True,
                      pad_mode="constant", return_complex=True)
    return spec[:, ::2, : wavs.shape[-1] // hop_length]


def gauss_istft(spec: torch.Tensor, length: int, channels: int = TIFGAN_CHANNELS,
                hop_length: int = TIFGAN_HOP) -> torch.Tensor:
    """Inverse of ``gauss_stft`` (overlap-add with the Gaussian as synthesis window).

    The odd bins of the 1024-point spectrum are zero, so each frame comes back as the 512-periodic
    signal the 512-channel transform sees; the error of this (non-canonical) dual is the window
    overlap ``g(t) g(t - 512)``, about -55 dB for speech.
    """
    full = spec.new_zeros(spec.shape[0], channels + 1, length // hop_length + 1)
    full[:, ::2, : spec.shape[-1]] = 2 * spec
    window = gauss_window(channels, hop_length, str(spec.device))
    return torch.istft(full, 2 * channels, hop_length, window=window, center=True, length=length)


def griffin_lim(mag: torch.Tensor, stft: Callable, istft: Callable, n_iter: int = 16, momentum: float = 0.99,
                phase: torch.Tensor | None = None) -> torch.Tensor:
    """Fast Griffin-Lim (Perraudin et al. 2013; the algorithm of ``torchaudio.functional.griffinlim``)
    for any transform pair, optionally started from a phase estimate (e.g. PGHI's).

    Args:
        mag: target magnitude ``(batch, bins, frames)``.
        stft, istft: ``stft(wavs) -> complex spec``, ``istft(spec) -> wavs`` (fix the length with
            ``functools.partial``).
        n_iter: iterations (0 returns ``istft(mag * e^{i phase})``).
        momentum: 0 is the original Griffin-Lim, 0.99 torchaudio's default.
        phase: initial phase, zeros (torchaudio's ``rand_init=False``) if ``None``.
    Returns:
        waveforms ``(batch, time)``.
    """
    if not 0 <= momentum < 1:
        raise ValueError(f"momentum={momentum}: must be in [0, 1) (0.99 is fast Griffin-Lim)")
    angles = torch.polar(torch.ones_like(mag), phase) if phase is not None else torch.ones_like(mag, dtype=torch.complex64)
    alpha = momentum / (1 + momentum)
    previous = None
    for _ in range(n_iter):
        rebuilt = stft(istft(mag * angles))
        angles = rebuilt - alpha * previous if previous is not None and alpha else rebuilt
        angles = angles / (angles.abs() + 1e-16)
        previous = rebuilt
    return istft(mag * angles)
