"""The only door audio comes in by: read, downmix, resample, fit length.

Everything is read with soundfile (wav, flac, ogg) and returned as float32 torch tensors
in [-1, 1] (float input beyond that range is clipped).
"""

from __future__ import annotations

import functools
import os
from pathlib import Path

import numpy as np
import soundfile as sf
import torch

__all__ = ["AudioError", "load_audio", "prepare_audio", "to_mono", "fit_length", "resample", "audio_info", "OFFSETS"]

OFFSETS = ("center", "random", "start")
MIN_SAMPLE_RATE = 1000  # below this no speech survives; resampling from it is a mistake, not a request
MAX_CHANNELS = 8        # a 2-D array whose first dimension is at most this (and the second larger) is (channels, time)


class AudioError(ValueError):
    """An audio input that cannot be used; the message names the file and the fix."""


def audio_info(path: str | Path) -> tuple[int, int]:
    """``(sample_rate, frames)`` of an audio file without decoding it."""
    path = Path(path)
    if not path.is_file():
        raise AudioError(f"{path}: no such file (check the path or the dataset's data_folder)")
    try:
        info = sf.info(str(path))
    except Exception as err:  # soundfile raises its own LibsndfileError / RuntimeError
        raise _unreadable(path, err) from err
    return int(info.samplerate), int(info.frames)


def _unreadable(path, err: Exception) -> AudioError:
    """Why soundfile could not read ``path``: permission denied, or not audio."""
    try:
        os.close(os.open(path, os.O_RDONLY))
    except PermissionError:
        return AudioError(f"{path}: permission denied; make it readable (chmod a+r) or remove it from the folder")
    except OSError:
        pass
    return AudioError(f"{path}: not a readable audio file ({err}); use wav, flac or ogg")


def to_mono(arr: np.ndarray, name: str = "<array>") -> np.ndarray:
    """``(time,)``, ``(time, channels)`` or ``(channels, time)`` samples -> ``(time,)`` (channel mean).

    A 2-D array is ``(channels, time)`` when its first dimension is at most ``MAX_CHANNELS`` and
    its second is larger (HF ``Audio(mono=False)``, torchaudio), else ``(time, channels)``
    (soundfile).
    """
    if arr.ndim == 1:
        return arr
    if arr.ndim != 2:
        raise AudioError(f"{name}: expected (time,), (time, channels) or (channels, time) samples, got shape {arr.shape}")
    channels_first = arr.shape[0] <= MAX_CHANNELS and arr.shape[1] > arr.shape[0]
    return arr.mean(axis=1 if not channels_first else 0)


@functools.lru_cache(maxsize=32)
def _resampler(orig: int, new: int):
    """A cached sinc-interpolation kernel (building it costs more than applying it to 1 s)."""
    import torchaudio.transforms as T  # lazy: torchaudio is slow to import

    return T.Resample(orig, new)


def resample(wav: torch.Tensor, orig_sample_rate: int, sample_rate: int) -> torch.Tensor:
    """Band-limited resampling of ``(..., time)`` from ``orig_sample_rate`` to ``sample_rate``."""
    if orig_sample_rate == sample_rate:
        return wav
    if orig_sample_rate < MIN_SAMPLE_RATE or sample_rate < MIN_SAMPLE_RATE:
        raise AudioError(
            f"cannot resample {orig_sample_rate} Hz -> {sample_rate} Hz: rates below "
            f"{MIN_SAMPLE_RATE} Hz are not audio; check the file's header or the sample_rate argument"
        )
    kernel = _resampler(int(orig_sample_rate), int(sample_rate))
    return kernel.to(wav.device)(wav.float()).to(wav.dtype)


def _offset(length: int, num_samples: int, offset: str, generator: torch.Generator | None) -> int:
    excess = length - num_samples
    if offset == "center":
        return excess // 2
    if offset == "start":
        return 0
    return int(torch.randint(0, excess + 1, (1,), generator=generator))


def fit_length(
    wavs: torch.Tensor,
    num_samples: int,
    offset: str = "center",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Crop or zero-pad the last dimension of ``(..., time)`` to ``num_samples``.

    Cropping takes a window at ``offset`` ("center", "start" or "random", one draw for the whole
    tensor); padding centres the signal for "center" and appends zeros otherwise.
    """
    if offset not in OFFSETS:
        raise ValueError(f"offset={offset!r}: choose one of {OFFSETS}")
    if num_samples <= 0:
        raise ValueError(f"num_samples={num_samples}: must be a positive number of samples")
    length = wavs.shape[-1]
    if length == num_samples:
        return wavs
    if length > num_samples:
        start = _offset(length, num_samples, offset, generator)
        return wavs[..., start : start + num_samples]
    missing = num_samples - length
    left = missing // 2 if offset == "center" else 0
    return torch.nn.functional.pad(wavs, (left, missing - left))


def prepare_audio(
    data,
    orig_sample_rate: int,
    sample_rate: int = 16000,
    num_samples: int | None = None,
    offset: str = "center",
    generator: torch.Generator | None = None,
    name: str = "<array>",
) -> torch.Tensor:
    """Turn samples already in memory into what :func:`load_audio` returns.

    ``data`` is ``(time,)``, ``(time, channels)`` or ``(channels, time)`` (see :func:`to_mono`;
    numpy or torch, any float or int dtype; integers are scaled to [-1, 1] (unsigned ones around
    their midpoint, as 8-bit WAV stores them), floats beyond it are clipped). ``name`` appears in error messages.
    """
    if offset not in OFFSETS:
        raise ValueError(f"offset={offset!r}: choose one of {OFFSETS}")
    arr = data.detach().cpu().numpy() if isinstance(data, torch.Tensor) else np.asarray(data)
    if arr.dtype.kind in "iu":   # PCM: signed around 0, unsigned (8-bit WAV) around its midpoint 2**(bits-1)
        half = float(np.iinfo(arr.dtype).max // 2 + 1) if arr.dtype.kind == "u" else float(np.iinfo(arr.dtype).max + 1)
        arr = (arr.astype(np.float64) - (half if arr.dtype.kind == "u" else 0.0)) / half
    elif arr.dtype.kind != "f":
        raise AudioError(f"{name}: samples of dtype {arr.dtype} are not audio; pass float or int PCM")
    arr = to_mono(arr.astype(np.float32, copy=False), name)
    if arr.shape[0] == 0:
        raise AudioError(f"{name}: holds zero samples; remove it from the dataset or re-export it")
    if not np.isfinite(arr).all():
        raise AudioError(f"{name}: holds NaN or Inf samples; re-export it as 16-bit PCM")
    wav = torch.from_numpy(np.ascontiguousarray(arr))
    try:
        wav = resample(wav, int(orig_sample_rate), int(sample_rate))
    except AudioError as err:
        raise AudioError(f"{name}: {err}") from None
    wav = wav.clamp(-1.0, 1.0)         # after resampling, whose ringing can overshoot a full-scale input
    if num_samples is not None:
        wav = fit_length(wav, num_samples, offset, generator)
    return wav.contiguous()


def load_audio(
    path,
    sample_rate: int = 16000,
    num_samples: int | None = None,
    offset: str = "center",
    generator: torch.Generator | None = None,
) -> torch.Tensor:
    """Read an audio file as a mono float32 tensor ``(time,)`` in [-1, 1] at ``sample_rate``.

    ``path`` is a file path or a binary file object (e.g. ``io.BytesIO`` of wav/flac bytes).
    Multichannel audio is averaged to mono; other rates are resampled (torchaudio's sinc
    resampler); ``num_samples`` crops or zero-pads (see :func:`fit_length`).

    Raises:
        AudioError: the file is missing, unreadable (permission denied), not audio, empty, holds
            NaN/Inf, or has a rate that cannot be resampled. The message names the file.
    """
    if offset not in OFFSETS:
        raise ValueError(f"offset={offset!r}: choose one of {OFFSETS}")
    is_path = isinstance(path, (str, Path))
    name = str(path) if is_path else getattr(path, "name", "<audio bytes>")
    if is_path and not Path(path).is_file():
        raise AudioError(f"{name}: no such file (check the path or the dataset's data_folder)")
    try:
        data, file_rate = sf.read(str(path) if is_path else path, dtype="float32", always_2d=True)
    except Exception as err:
        if is_path:
            raise _unreadable(name, err) from err
        raise AudioError(f"{name}: not a readable audio file ({err}); use wav, flac or ogg") from err
    # soundfile's layout is known, (frames, channels): downmix here rather than guess it
    return prepare_audio(data.mean(axis=1), file_rate, sample_rate, num_samples, offset, generator, name)
