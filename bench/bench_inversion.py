"""STFT -> magnitude -> phase reconstruction round trip on real speech: quality and time per clip.

For SpecGAN's transform (Hann 256 / hop 128) and TiFGAN-M's (Gaussian, 512 channels / hop 128),
the magnitude of real clips is inverted by Griffin-Lim (fast, momentum 0.99, as torchaudio; and the
original algorithm, momentum 0), by PGHI alone, and by PGHI followed by fast Griffin-Lim. Scores:
spectral convergence ``||(|STFT(x_hat)| - |STFT(x)|)||_F / ||STFT(x)||_F`` in the same transform
(mean over clips, and in dB), SNR of the waveform (sign-invariant), and wall time per clip on the
CPU with the given number of threads (Griffin-Lim runs batched; PGHI one clip at a time).

    python bench/bench_inversion.py --clips 50 --threads 1

Prints a markdown table (docs/inversion.md holds the last one).
"""

from __future__ import annotations

import argparse
import functools
import math
import platform
import sys
import time
from pathlib import Path

import torch

from ganaug.audio import load_audio
from ganaug.spectral import (HANN_GAMMA, gauss_istft, gauss_stft, griffin_lim, hann_istft, hann_stft, pghi, snr,
                             spectral_convergence)

REPO = Path(__file__).resolve().parents[1]
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
NUM_SAMPLES = 16384


def load_clips(root: Path, count: int) -> torch.Tensor:
    """``count`` clips spread evenly over the ten keywords (first files in sorted order)."""
    per_label = math.ceil(count / len(KEYWORDS))
    files = [f for label in KEYWORDS for f in sorted((root / label).glob("*.flac"))[:per_label]][:count]
    if len(files) < count:
        sys.exit(f"{root}: found {len(files)} clips, need {count}")
    return torch.stack([load_audio(f, 16000, NUM_SAMPLES) for f in files])


def transforms():
    """name -> (stft, istft, PGHI kwargs)."""
    return {
        "SpecGAN (Hann 256/128)": (hann_stft, functools.partial(hann_istft, length=NUM_SAMPLES),
                                   dict(gamma=HANN_GAMMA * 256**2, hop_length=128, channels=256, shift=1)),
        "TiFGAN-M (Gauss 512/128)": (gauss_stft, functools.partial(gauss_istft, length=NUM_SAMPLES),
                                     dict(gamma=128 * 512, hop_length=128, channels=512, shift=0)),
    }


def methods(stft, istft, pghi_kwargs):
    """name -> function(mag) -> waveforms."""
    def gl(iters, momentum=0.99):
        return lambda mag: griffin_lim(mag, stft, istft, iters, momentum)

    def pghi_then_gl(iters):
        return lambda mag: griffin_lim(mag, stft, istft, iters, phase=pghi(mag, tol=10.0, **pghi_kwargs).angle())

    return {
        "Griffin-Lim 16, momentum 0 (original)": gl(16, 0.0),
        "Griffin-Lim 16 (fast, torchaudio)": gl(16),
        "Griffin-Lim 32 (fast)": gl(32),
        "Griffin-Lim 100 (fast)": gl(100),
        "PGHI (non-iterative)": pghi_then_gl(0),
        "PGHI + Griffin-Lim 16 (fast)": pghi_then_gl(16),
    }


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data" / "speech_commands")
    parser.add_argument("--clips", type=int, default=50)
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)
    wavs = load_clips(args.data, args.clips)
    print(f"{args.clips} Speech Commands clips (16384 samples at 16 kHz), {args.threads} CPU thread(s), "
          f"torch {torch.__version__}, {platform.processor() or platform.machine()}\n")
    print("| transform | inversion | spectral convergence | SC (dB) | SNR (dB) | ms / clip |")
    print("|---|---|---:|---:|---:|---:|")
    for tname, (stft, istft, pghi_kwargs) in transforms().items():
        target = stft(wavs).abs()
        for mname, invert in methods(stft, istft, pghi_kwargs).items():
            start = time.perf_counter()
            estimate = invert(target)
            ms = 1000 * (time.perf_counter() - start) / len(wavs)
            sc = spectral_convergence(stft(estimate).abs(), target).mean().item()
            db = 20 * math.log10(sc)
            print(f"| {tname} | {mname} | {sc:.3f} | {db:.1f} | {snr(estimate, wavs).mean().item():.1f} | {ms:.0f} |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
