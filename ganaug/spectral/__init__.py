"""Time-frequency helpers for the spectrogram GANs (SpecGAN, TiFGAN-M): STFTs and their inverses,
Griffin-Lim, Phase Gradient Heap Integration, and reconstruction / consistency measures.

Stateless functions (torchaudio style); the generator modules in ``ganaug.models`` call them.
"""

from ganaug.spectral.metrics import consistency, snr, spectral_convergence
from ganaug.spectral.pghi import HANN_GAMMA, pghi, pghi_phase
from ganaug.spectral.stft import (
    SPECGAN_HOP, SPECGAN_N_FFT, TIFGAN_CHANNELS, TIFGAN_HOP,
    gauss_istft, gauss_stft, gauss_window, griffin_lim, hann_istft, hann_stft,
)

__all__ = [
    "SPECGAN_N_FFT", "SPECGAN_HOP", "TIFGAN_CHANNELS", "TIFGAN_HOP",
    "hann_stft", "hann_istft", "gauss_window", "gauss_stft", "gauss_istft", "griffin_lim",
    "HANN_GAMMA", "pghi", "pghi_phase", "spectral_convergence", "snr", "consistency",
]
