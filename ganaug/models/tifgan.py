"""TiFGAN-M (Marafioti, Perraudin, Holighaus, Majdak, ICML 2019): a GAN on Gaussian-window STFT
log-magnitudes, turned into audio by Phase Gradient Heap Integration.

Representation (``ganaug.spectral.gauss_stft``): Gaussian window with ``gamma = hop * channels``,
hop 128, 512 channels at 16 kHz, 16384 samples -> 257 bins x 128 frames; the Nyquist bin is
dropped -> ``(batch, 1, 256, 128)``. Each clip's magnitude is divided by its maximum, its natural
log clipped below at ``-dynamic_range`` (10, i.e. about 87 dB) and mapped to [-1, 1] by
``s / (dynamic_range / 2) + 1``, as in the authors' code.
Back to audio: undo the map, zero Nyquist bin, PGHI phase (``ganaug.spectral.pghi``), then
``griffin_lim_iters`` fast Griffin-Lim steps started from that phase, inverse STFT, and a gain
that brings each clip's peak to the training set's median peak (the per-clip normalisation
drops the level; ``fit_data`` measures it). The published model used PGHI
alone (``griffin_lim_iters=0``); our default adds 16 steps, which on real speech brings the
spectral convergence from -19 dB to -27 dB for about 70 ms more per clip (docs/inversion.md).

Architecture (the authors' released "md64" configuration): z -> dense -> (8d, 8, 4) -> ReLU ->
5 transposed conv2d (kernel 12 x 3 in frequency x time, stride 2): 8d -> 8d -> 4d -> 2d -> d -> 1,
(8, 4) -> (256, 128), ReLU between, tanh out. Discriminator: 5 conv2d (12 x 3, stride 2)
1 -> d -> 2d -> 4d -> 8d -> 16d, LeakyReLU 0.2, phase shuffle (2 frames) after the first four,
flatten, dense -> 1. Both use spectral normalisation as released (``spectral_norm=True``), on top of
WGAN-GP. Deviation: the latent prior is ganaug's U(-1, 1) (the authors drew z from a normal
truncated at 2.5), since the training loop samples z for every family alike.
Conditioning as in ``wavegan.py``: label embedding joined to z; projection discriminator.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ganaug.models.specgan import SpectrogramDiscriminator, SpectrogramGenerator
from ganaug.spectral import TIFGAN_CHANNELS, TIFGAN_HOP, consistency, gauss_istft, gauss_stft, griffin_lim, pghi
from ganaug.spectral.metrics import gauss_log_magnitude

__all__ = ["TiFGANGenerator", "TiFGANDiscriminator"]

KERNEL = (12, 3)


def _check_tifgan(model_dim: int, num_samples: int):
    if num_samples != 16384:
        raise ValueError(f"num_samples={num_samples}: TiFGAN-M makes 16384 samples (128 frames of hop 128)")
    if model_dim < 1:
        raise ValueError(f"model_dim={model_dim}: must be a positive channel multiplier (64 in the paper)")


class TiFGANGenerator(SpectrogramGenerator):
    """TiFGAN-M generator: ``forward(z, labels=None)`` -> ``(batch, 1, 256, 128)`` scaled log-magnitude;
    ``sample(n, labels)`` -> waveforms ``(n, 16384)``.

    Args:
        model_dim: channel multiplier ``d`` (64 as released; 16 or 32 for CPU runs).
        num_samples: 16384.
        latent_dim: size of z (100).
        label_names: label names of a conditional model; ``None`` is unconditional.
        sample_rate: rate of the training audio.
        embedding_dim: size of the label embedding joined to z (conditional only).
        dynamic_range: natural-log units kept below each clip's maximum (10).
        griffin_lim_iters: fast Griffin-Lim steps after PGHI in ``sample`` (16; 0 = PGHI alone, as published).
        spectral_norm: spectral normalisation of every layer (True as released).
    """

    family = "tifgan"

    def __init__(self, model_dim=64, num_samples=16384, latent_dim=100, label_names=None, sample_rate=16000,
                 embedding_dim=50, dynamic_range=10.0, griffin_lim_iters=16, spectral_norm=True):
        _check_tifgan(model_dim, num_samples)
        if dynamic_range <= 0:
            raise ValueError(f"dynamic_range={dynamic_range}: must be > 0 (natural-log units, 10 in the paper)")
        d = model_dim
        super().__init__([8 * d, 8 * d, 4 * d, 2 * d, d, 1], (8, 4), KERNEL, latent_dim, label_names,
                         embedding_dim, spectral_norm)
        self.model_dim, self.num_samples, self.latent_dim = model_dim, num_samples, latent_dim
        self.sample_rate, self.embedding_dim, self.dynamic_range = sample_rate, embedding_dim, float(dynamic_range)
        self.griffin_lim_iters, self.spectral_norm = griffin_lim_iters, spectral_norm
        self.register_buffer("peak", torch.ones(1))
        self.register_buffer("data_fitted", torch.zeros(1, dtype=torch.bool))

    def config(self) -> dict:
        """Constructor kwargs: with the weights (and data statistics), everything to rebuild the module."""
        return {"model_dim": self.model_dim, "num_samples": self.num_samples, "latent_dim": self.latent_dim,
                "label_names": self.label_names, "sample_rate": self.sample_rate,
                "embedding_dim": self.embedding_dim, "dynamic_range": self.dynamic_range,
                "griffin_lim_iters": self.griffin_lim_iters, "spectral_norm": self.spectral_norm}

    def log_magnitude(self, wavs: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> per-clip normalised, clipped natural-log magnitude ``(batch, 256, frames)``
        in ``[-dynamic_range, 0]``; the input to ``ganaug.spectral.consistency``."""
        return gauss_log_magnitude(wavs, self.dynamic_range)

    def to_log_magnitude(self, x: torch.Tensor) -> torch.Tensor:
        """D's representation ``(batch, 1, 256, 128)`` -> natural-log magnitude ``(batch, 256, 128)``."""
        return (x.squeeze(1).float() - 1) * (self.dynamic_range / 2)

    @torch.no_grad()
    def fit_data(self, wavs) -> "TiFGANGenerator":
        """Median peak amplitude of ``wavs`` (``(N, num_samples)`` or an iterable of batches): the
        level ``sample`` restores, since the representation is normalised per clip."""
        peaks = [batch.abs().amax(dim=-1) for batch in self._batches(wavs)]
        if not peaks:
            raise ValueError("fit_data got no audio; give the training waveforms (N, num_samples)")
        peaks = torch.cat(peaks)
        self.peak.fill_(float(peaks[peaks > 0].median()) if bool((peaks > 0).any()) else 1.0)
        self.data_fitted.fill_(True)
        return self

    def encode(self, wavs: torch.Tensor) -> torch.Tensor:
        """Real audio ``(batch, num_samples)`` -> D's input ``(batch, 1, 256, 128)`` in [-1, 1]."""
        logmag = self.log_magnitude(wavs.to(self.peak.device))
        return (logmag / (self.dynamic_range / 2) + 1).unsqueeze(1)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, 256, 128)`` -> waveforms ``(batch, num_samples)`` by PGHI (+ Griffin-Lim)."""
        mag = nn.functional.pad(self.to_log_magnitude(x).exp(), (0, 0, 0, 1))  # zero Nyquist bin
        spec = pghi(mag, TIFGAN_HOP * TIFGAN_CHANNELS, TIFGAN_HOP, TIFGAN_CHANNELS, tol=self.dynamic_range)
        istft = functools.partial(gauss_istft, length=self.num_samples)
        wavs = griffin_lim(mag, gauss_stft, istft, self.griffin_lim_iters, phase=spec.angle())
        gain = self.peak / wavs.abs().amax(dim=-1, keepdim=True).clamp_min(1e-12)
        return wavs * gain

    @torch.inference_mode()
    def consistency(self, x: torch.Tensor) -> torch.Tensor:
        """Spectrogram consistency ``(batch,)`` of generated (``forward``) or encoded (``encode``) outputs."""
        return consistency(self.to_log_magnitude(x), TIFGAN_HOP, TIFGAN_CHANNELS)


class TiFGANDiscriminator(SpectrogramDiscriminator):
    """TiFGAN-M critic: ``forward(x, labels=None)`` with ``x`` ``(batch, 1, 256, 128)`` -> ``(batch,)``."""

    def __init__(self, model_dim=64, num_samples=16384, phase_shuffle=2, label_names=None, spectral_norm=True):
        _check_tifgan(model_dim, num_samples)
        d = model_dim
        super().__init__([1, d, 2 * d, 4 * d, 8 * d, 16 * d], (8, 4), KERNEL, label_names, phase_shuffle,
                         spectral_norm)
        self.model_dim, self.num_samples, self.spectral_norm = model_dim, num_samples, spectral_norm

    def config(self) -> dict:
        """Constructor kwargs (recorded with the training state, so resume can check them)."""
        return {"model_dim": self.model_dim, "num_samples": self.num_samples, "phase_shuffle": self.phase_shuffle,
                "label_names": self.label_names, "spectral_norm": self.spectral_norm}
