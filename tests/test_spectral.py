"""ganaug.spectral: transforms, Griffin-Lim, PGHI and consistency on the shared speech."""

from __future__ import annotations

import functools

import pytest
import torch
import torchaudio.functional as AF

from ganaug.audio import load_audio
from ganaug.spectral import (HANN_GAMMA, consistency, gauss_istft, gauss_stft, griffin_lim, hann_istft, hann_stft,
                             pghi, snr, spectral_convergence)

pytestmark = pytest.mark.usefixtures("one_thread")

N = 16384


GAUSS = dict(gamma=128 * 512, hop_length=128, channels=512)


@pytest.fixture(scope="module")
def speech(sc_root):
    """Six keyword clips (first file of six labels), 16384 samples each."""
    labels = ["yes", "no", "up", "down", "left", "stop"]
    return torch.stack([load_audio(sorted((sc_root / label).glob("*.flac"))[0], 16000, N) for label in labels])


def test_transform_shapes_and_round_trip(speech):
    spec = hann_stft(speech)
    assert spec.shape == (6, 129, 128) and spec.is_complex()
    assert torch.allclose(hann_istft(spec, N), speech, atol=1e-5)
    spec = gauss_stft(speech)
    assert spec.shape == (6, 257, 128)
    back = gauss_istft(spec, N)
    assert (back - speech).norm() / speech.norm() < 1e-2  # the long Gaussian's folding error, about -52 dB
    with pytest.raises(ValueError, match="multiple of the hop"):
        hann_stft(speech[:, :1000])


def test_griffin_lim_matches_torchaudio(speech):
    mag = hann_stft(speech[:2]).abs()
    ours = griffin_lim(mag, hann_stft, functools.partial(hann_istft, length=N), n_iter=8)
    window = torch.hann_window(256)
    theirs = AF.griffinlim(torch.nn.functional.pad(mag, (0, 1)), window, 256, 128, 256, 1, 8, 0.99, N, False)
    assert torch.allclose(ours, theirs, atol=1e-5)
    with pytest.raises(ValueError, match="momentum"):
        griffin_lim(mag, hann_stft, hann_istft, momentum=1.0)


def test_pghi_beats_griffin_lim_16_on_speech(speech):
    """Non-iterative PGHI against the Griffin-Lim of the SpecGAN paper (16 iterations, no momentum)
    on TiFGAN's transform; PGHI as a start for fast Griffin-Lim beats fast Griffin-Lim alone."""
    mag = gauss_stft(speech).abs()
    istft = functools.partial(gauss_istft, length=N)

    def sc(wavs):
        return spectral_convergence(gauss_stft(wavs).abs(), mag).mean()

    phase = pghi(mag, tol=10.0, **GAUSS).angle()
    by_pghi = istft(torch.polar(mag, phase))
    by_gl16 = griffin_lim(mag, gauss_stft, istft, 16, momentum=0.0)
    assert sc(by_pghi) < 0.8 * sc(by_gl16)
    assert snr(by_pghi, speech).mean() > snr(by_gl16, speech).mean()
    sc_fast16 = sc(griffin_lim(mag, gauss_stft, istft, 16))
    sc_both = sc(griffin_lim(mag, gauss_stft, istft, 16, phase=phase))
    assert sc_both < 0.7 * sc_fast16


def test_pghi_recovers_a_chirp_and_survives_silence():
    t = torch.arange(N, dtype=torch.float64) / 16000
    chirp = (0.5 * torch.sin(2 * torch.pi * (200 * t + 1500 * t**2))).float().unsqueeze(0)
    mag = gauss_stft(chirp).abs()
    rebuilt = gauss_istft(pghi(mag, **GAUSS), N)
    assert spectral_convergence(gauss_stft(rebuilt).abs(), mag) < 0.1
    hann_mag = hann_stft(chirp).abs()
    rebuilt = hann_istft(pghi(hann_mag, HANN_GAMMA * 256**2, 128, 256, shift=1), N)
    assert spectral_convergence(hann_stft(rebuilt).abs(), hann_mag) < 0.3
    silent = pghi(torch.zeros(1, 257, 128), **GAUSS)
    assert silent.abs().max() == 0 and torch.isfinite(torch.view_as_real(silent)).all()
    with pytest.raises(ValueError, match="batch, bins, frames"):
        pghi(torch.ones(257, 128), **GAUSS)


def test_consistency_real_above_shuffled_and_noise(speech):
    mag = gauss_stft(speech).abs()
    logmag = torch.log(mag / mag.amax(dim=(1, 2), keepdim=True)).clamp_min(-10)
    real = consistency(logmag)
    assert real.shape == (6,) and bool(((real > 0.5) & (real < 0.95)).all())
    frames = torch.randperm(128, generator=torch.Generator().manual_seed(0))
    assert bool((consistency(logmag[..., frames]) < real - 0.2).all())
    noise = torch.randn(6, 256, 128, generator=torch.Generator().manual_seed(0))
    assert bool((consistency(noise) < real - 0.1).all())
    # a magnitude given a random phase and re-analysed is consistent again, by construction
    phase = torch.rand(mag.shape, generator=torch.Generator().manual_seed(1)) * 2 * torch.pi
    again = gauss_stft(gauss_istft(torch.polar(mag, phase), N)).abs()
    assert bool((consistency(torch.log(again.clamp_min(1e-12))) > 0.5).all())
    with pytest.raises(ValueError, match="bins >= 3"):
        consistency(torch.zeros(2, 2))
