"""Reconstruction and consistency measures for magnitude spectrograms.

``spectral_convergence`` and ``snr`` score a phase reconstruction against the original;
``consistency`` (Marafioti et al., ICML 2019, Sec. 4) scores how close a log-magnitude is to the
magnitude of *some* signal's STFT, needing no phase and no reference.

Consistency, as we implement it. For the Gaussian window ``exp(-pi t^2 / gamma)`` with
``gamma = a M`` (hop ``a``, ``M`` channels: TiFGAN's transform), the phase gradient is fixed by the
log-magnitude ``s`` (see ``ganaug.spectral.pghi``). Equating the mixed second derivatives of the
phase (d/dbin of the frame step = d/dframe of the bin step) gives, in lattice units,

    D_tt s + D_ff s = -2 pi a / M        (= -pi / 2 for a / M = 1 / 4)

i.e. ``|D_tt s + pi a / M| = |D_ff s + pi a / M|`` for every coefficient of a real signal's
spectrogram, with ``D_tt``, ``D_ff`` the second differences along frames and bins. The measure is
the Pearson correlation, over the interior coefficients of one spectrogram, of those two absolute
values: near 1 for consistent spectrograms (about 0.7-0.9 for speech: the discrete relation is only
approximate), near 0 for spectrograms no signal has. This is the definition of the paper and of its
authors' code (``|.|`` of the offset second differences, then correlation); the only input is the
natural-log magnitude, so undo any scaling of a network's output first.
"""

from __future__ import annotations

import math

import torch

__all__ = ["spectral_convergence", "snr", "consistency"]


def spectral_convergence(mag: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """``||mag - target||_F / ||target||_F`` per item of ``(batch, bins, frames)`` (lower is better)."""
    dims = tuple(range(1, target.dim()))
    return (mag - target).norm(dim=dims) / target.norm(dim=dims).clamp_min(1e-12)


def snr(estimate: torch.Tensor, reference: torch.Tensor, sign_invariant: bool = True) -> torch.Tensor:
    """Signal-to-noise ratio in dB of ``(batch, time)`` waveforms. Magnitude-only reconstruction
    cannot tell ``x`` from ``-x``; ``sign_invariant`` scores the better of the two."""
    power = reference.pow(2).sum(-1)
    error = (estimate - reference).pow(2).sum(-1)
    if sign_invariant:
        error = torch.minimum(error, (estimate + reference).pow(2).sum(-1))
    return 10 * torch.log10(power.clamp_min(1e-20) / error.clamp_min(1e-20))


def consistency(logmag: torch.Tensor, hop_length: int = 128, channels: int = 512) -> torch.Tensor:
    """Spectrogram consistency of natural-log magnitudes ``(..., bins, frames)`` -> ``(...)`` in [-1, 1].

    Valid for the Gaussian window with ``gamma = hop_length * channels`` (``gauss_stft``); for
    other windows the relation it tests does not hold exactly.
    """
    if logmag.dim() < 2 or logmag.shape[-1] < 3 or logmag.shape[-2] < 3:
        raise ValueError(f"need a spectrogram (..., bins >= 3, frames >= 3), got {tuple(logmag.shape)}")
    s = logmag.double()
    offset = math.pi * hop_length / channels
    centre = s[..., 1:-1, 1:-1]
    d_tt = (s[..., 1:-1, :-2] - 2 * centre + s[..., 1:-1, 2:] + offset).abs().flatten(-2)
    d_ff = (s[..., :-2, 1:-1] - 2 * centre + s[..., 2:, 1:-1] + offset).abs().flatten(-2)
    d_tt = d_tt - d_tt.mean(-1, keepdim=True)
    d_ff = d_ff - d_ff.mean(-1, keepdim=True)
    corr = (d_tt * d_ff).sum(-1) / (d_tt.norm(dim=-1) * d_ff.norm(dim=-1)).clamp_min(1e-12)
    return corr.float()


def gauss_log_magnitude(wavs: torch.Tensor, dynamic_range: float = 10.0) -> torch.Tensor:
    """TiFGAN's representation of audio ``(batch, time)``: Gaussian-window STFT magnitude (Nyquist bin
    dropped), normalised to each clip's peak, natural log clipped to ``[-dynamic_range, 0]``."""
    from ganaug.spectral.stft import gauss_stft

    mag = gauss_stft(wavs)[:, :-1].abs()
    mag = mag / mag.amax(dim=(1, 2), keepdim=True).clamp_min(1e-12)
    return torch.log(mag.clamp_min(1e-30)).clamp_min(-dynamic_range)
