"""Decode a KeywordDataset once, keep it as a memory-mapped array.

Training reads every clip many times; decoding FLAC and resampling each time makes an epoch
bound by audio decoding. ``preload`` decodes the selected clips once into
``<cache>/clips/<key>.npy`` (float32, ``(N, num_samples)``), keyed by the dataset's fingerprint
and the files' sizes and modification times, and maps it back on later calls.
"""

from __future__ import annotations

import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ganaug.io import atomic_write
from ganaug.io import cache_dir as default_cache_dir

__all__ = ["preload", "cache_key"]


def cache_key(dataset) -> str:
    """Fingerprint of the selection, audio settings and the files' sizes and mtimes."""
    h = hashlib.sha1(dataset.fingerprint().encode())
    for clip in dataset.clips:
        if clip.row < 0:
            st = os.stat(clip.path)
            h.update(f"{clip.path}|{st.st_size}|{st.st_mtime_ns}\n".encode())
    return h.hexdigest()[:20]


def preload(dataset, cache_dir: str | Path | None = None, progress: bool = True):
    """``(wavs float32 (N, num_samples), labels long (N,))`` of every item of ``dataset``.

    ``cache_dir=None`` uses ``$GANAUG_CACHE`` (default ``~/.cache/ganaug``); ``cache_dir=False``
    decodes into memory without writing a cache. The returned tensor maps the cache file
    copy-on-write: writing to it never changes the file.
    """
    if dataset.num_samples is None:
        raise ValueError("preload needs fixed-length clips: build the dataset with num_samples=16384 (or another length)")
    if dataset.offset == "random":
        raise ValueError("preload caches deterministic clips: build the dataset with offset='center' or 'start'")
    labels = torch.tensor(dataset.labels, dtype=torch.long)
    shape = (len(dataset), dataset.num_samples)

    def decode_into(array):
        for i in tqdm(range(len(dataset)), desc="decode clips", unit="clip", disable=not progress):
            array[i] = dataset.load(i).numpy()

    if cache_dir is False:
        wavs = np.empty(shape, dtype=np.float32)
        decode_into(wavs)
        return torch.from_numpy(wavs), labels
    path = Path(cache_dir or default_cache_dir()) / "clips" / f"{cache_key(dataset)}.npy"
    if not path.is_file():
        def write(tmp):
            array = np.lib.format.open_memmap(tmp, mode="w+", dtype=np.float32, shape=shape)
            decode_into(array)
            array.flush()
            del array

        atomic_write(path, write)
    array = np.load(path, mmap_mode="c")
    if array.shape != shape or array.dtype != np.float32:
        path.unlink(missing_ok=True)
        raise ValueError(f"{path}: cache file has shape {array.shape}, expected {shape}; it was removed, call again")
    return torch.from_numpy(array), labels
