"""Background noise as short segments: what classic augmentation adds and what ``_silence_`` is made of.

The official Speech Commands archive keeps its noise as six long recordings in ``_background_noise_/``
(about a minute each); the shared subset ships ``_silence_/`` of one-second clips cut from such
recordings. SpeechBrain's ``AddNoise`` reads a whole file per row of every batch, so a batch of 32
one-minute files costs about 1.5 s (2-core CPU) against milliseconds for short clips, and
SpeechBrain's own ``prepare_csv(max_length=...)`` cuts long files by *deleting the original* and
writing the pieces beside it. Here every noise file is decoded once (downmixed, resampled to the run's
rate) and cut into overlapping segments written to the ganaug cache (``$GANAUG_CACHE/noise/<key>/``,
keyed by the files' names, sizes and modification times, the rate and the segment length); the
user's folder is only read.
"""

from __future__ import annotations

import hashlib
import shutil
from pathlib import Path

import numpy as np

__all__ = ["NOISE_SUFFIXES", "noise_files", "noise_segments"]

NOISE_SUFFIXES = (".wav", ".flac", ".ogg")


def noise_files(folder) -> list[Path]:
    """The audio files of a noise folder (hidden and AppleDouble files skipped), sorted."""
    folder = Path(folder)
    return sorted(p for p in folder.iterdir()
                  if p.is_file() and not p.name.startswith(".") and p.suffix.lower() in NOISE_SUFFIXES)


def _key(files: list[Path], sample_rate: int, segment: int, hop: int) -> str:
    h = hashlib.sha1(f"{sample_rate}|{segment}|{hop}".encode())
    for path in files:
        stat = path.stat()
        h.update(f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}\n".encode())
    return h.hexdigest()[:16]


def _cut(wav: np.ndarray, segment: int, hop: int) -> list[np.ndarray]:
    """Overlapping ``segment``-long pieces every ``hop`` samples; a file shorter than one segment is one piece."""
    if len(wav) <= segment:
        return [wav]
    starts = range(0, len(wav) - segment + 1, hop)
    return [wav[s: s + segment] for s in starts]


def noise_segments(folder, sample_rate: int, segment_seconds: float = 1.5, hop_seconds: float = 1.0,
                   cache=None) -> list[Path]:
    """Segments of every noise file in ``folder`` at ``sample_rate`` (mono 16-bit WAV), cut once and cached.

    Files no longer than one segment stay whole (resampled). Returns the segment files, sorted.
    Raises ``ValueError`` naming the folder when it holds no audio file.
    """
    import soundfile as sf

    from ganaug.audio import load_audio
    from ganaug.io import cache_dir, lock

    folder = Path(folder)
    files = noise_files(folder)
    if not files:
        raise ValueError(f"noise_folder={folder}: no audio files ({', '.join(NOISE_SUFFIXES)}); point it at "
                         f"background-noise recordings (e.g. <data_folder>/_background_noise_) or '' for white noise")
    segment, hop = int(round(segment_seconds * sample_rate)), int(round(hop_seconds * sample_rate))
    root = Path(cache) if cache is not None else cache_dir() / "noise"
    target = root / _key(files, int(sample_rate), segment, hop)
    done = target / "segments"
    with lock(target, wait=True):
        if not done.is_dir():
            work = target / "segments.partial"
            shutil.rmtree(work, ignore_errors=True)
            work.mkdir(parents=True)
            for i, path in enumerate(files):
                wav = load_audio(path, int(sample_rate)).numpy()
                for j, piece in enumerate(_cut(wav, segment, hop)):
                    sf.write(work / f"{i:03d}_{path.stem}_{j:04d}.wav", piece, int(sample_rate), subtype="PCM_16")
            work.rename(done)                      # all or nothing: a killed cut leaves only the partial folder
    return sorted(done.glob("*.wav"))
