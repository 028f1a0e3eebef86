"""The one spectrogram renderer (training samples, report pages), on torchaudio and matplotlib's Figure API.

:func:`spectrogram_db` computes log-power spectrograms with ``torchaudio.transforms.Spectrogram``
and ``AmplitudeToDB`` (32 ms Hann window, 8 ms hop, dB relative to a full-scale sine, floor -100
dB); :func:`draw_spectrogram` draws one on a matplotlib ``Axes`` on the fixed scale
:data:`DB_RANGE`, so every picture of ganaug compares by eye; :func:`spectrogram_png` writes one
clip as a small PNG. Matplotlib is used through ``matplotlib.figure.Figure`` and its Agg canvas:
no pyplot, no global backend change. This module sits at the floor (it imports only torch,
torchaudio, matplotlib and :mod:`ganaug.io`), so training and reports both use it.
"""

from __future__ import annotations

import math
from pathlib import Path

import torch

__all__ = ["spectrogram_db", "draw_spectrogram", "spectrogram_png", "new_figure", "figure_rgb", "DB_RANGE"]

DB_RANGE = (-90.0, 0.0)   # colour scale of every spectrogram, dB re full scale


def _n_fft(sample_rate: int) -> int:
    return 2 ** int(math.ceil(math.log2(sample_rate * 0.032)))


def spectrogram_db(wavs: torch.Tensor, sample_rate: int) -> torch.Tensor:
    """``(..., time)`` float audio in [-1, 1] -> ``(..., freq, frames)`` dB re full scale (a full-scale sine
    peaks near 0 dB), computed by ``torchaudio.transforms.Spectrogram`` + ``AmplitudeToDB``."""
    import torchaudio

    n_fft = _n_fft(sample_rate)
    spec = torchaudio.transforms.Spectrogram(n_fft=n_fft, hop_length=n_fft // 4, power=2.0)(wavs.detach().float().cpu())
    return torchaudio.transforms.AmplitudeToDB(stype="power", top_db=None)(spec / (n_fft / 4) ** 2)


def draw_spectrogram(ax, db: torch.Tensor, sample_rate: int, seconds: float) -> None:
    """Draw one ``(freq, frames)`` dB spectrogram on ``ax`` (kHz up, seconds across, :data:`DB_RANGE`)."""
    ax.imshow(db.numpy(), origin="lower", aspect="auto", cmap="magma", vmin=DB_RANGE[0], vmax=DB_RANGE[1],
              extent=(0, seconds, 0, sample_rate / 2000))


def new_figure(width: float, height: float, dpi: int = 80):
    """A matplotlib ``Figure`` with an Agg canvas (no pyplot state)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    fig = Figure(figsize=(width, height), dpi=dpi)
    FigureCanvasAgg(fig)
    return fig


def figure_rgb(fig):
    """The figure as an RGB ``numpy`` array ``(H, W, 3)`` uint8."""
    import numpy as np

    fig.canvas.draw()
    return np.asarray(fig.canvas.buffer_rgba())[..., :3].copy()


def spectrogram_png(wav: torch.Tensor, path, sample_rate: int, title: str = "") -> None:
    """One clip ``(time,)`` as a small labelled PNG (written atomically)."""
    from ganaug.io import atomic_write

    fig = new_figure(3.1, 1.9)
    ax = fig.add_subplot()
    draw_spectrogram(ax, spectrogram_db(wav, sample_rate), sample_rate, wav.shape[-1] / sample_rate)
    ax.set_xlabel("s", fontsize=7, labelpad=1)
    ax.set_ylabel("kHz", fontsize=7, labelpad=1)
    ax.tick_params(labelsize=6, length=2, pad=1)
    if title:
        ax.set_title(title, fontsize=7, pad=2)
    fig.tight_layout(pad=0.3)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(Path(path), lambda tmp: fig.savefig(tmp, format="png"))
