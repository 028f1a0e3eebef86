"""Decode a KeywordDataset once, keep it as a memory-mapped array.

Training reads every clip many times; decoding FLAC and resampling each time makes an epoch
bound by audio decoding. ``preload`` decodes the selected clips once into
``<cache>/clips/<key>.npy`` (float32, ``(N, num_samples)``), keyed by the dataset's fingerprint
and the files' sizes and modification times, and maps it back on later calls.

The file is written with ordinary writes into space reserved up front (``posix_fallocate``),
never through a writable memory map: a full disk is an error naming the folder before any
decoding, not a ``Bus error``, and the temp file is removed (:func:`ganaug.io.atomic_write`).
"""

from __future__ import annotations

import errno
import hashlib
import os
from pathlib import Path

import numpy as np
import torch
from tqdm.auto import tqdm

from ganaug.io import WriteError, atomic_write
from ganaug.io import cache_dir as default_cache_dir

CACHE_VERSION = 2   # bump when decoding changes what a clip holds (2: floats clipped to [-1, 1])
CHUNK = 256         # clips decoded per write

__all__ = ["preload", "cache_key"]


def cache_key(dataset) -> str:
    """Fingerprint of the selection, audio settings and the files' sizes and mtimes."""
    h = hashlib.sha1(f"v{CACHE_VERSION}|{dataset.fingerprint()}".encode())
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
        try:
            atomic_write(path, lambda tmp: _write_npy(tmp, shape, dataset, progress))
        except WriteError as err:
            if err.errno in (errno.ENOSPC, errno.EDQUOT):
                raise WriteError(err.errno, f"no space left on {path.parent}: free space or set "
                                            f"cache_dir/GANAUG_CACHE") from None
            raise WriteError(err.errno, f"{err}: set cache_dir/GANAUG_CACHE to a writable folder") from None
    array = np.load(path, mmap_mode="c")
    if array.shape != shape or array.dtype != np.float32:
        path.unlink(missing_ok=True)
        raise ValueError(f"{path}: cache file has shape {array.shape}, expected {shape}; it was removed, call again")
    return torch.from_numpy(array), labels


def _write_npy(tmp, shape: tuple[int, int], dataset, progress: bool) -> None:
    """A float32 ``.npy`` of every clip of ``dataset``, space reserved first, then written in chunks."""
    header = {"descr": np.lib.format.dtype_to_descr(np.dtype(np.float32)), "fortran_order": False, "shape": shape}
    with open(tmp, "wb") as f:
        np.lib.format.write_array_header_1_0(f, header)
        start = f.tell()
        try:
            os.posix_fallocate(f.fileno(), 0, start + shape[0] * shape[1] * 4)   # ENOSPC now, not SIGBUS later
        except OSError as err:
            if err.errno not in (errno.EOPNOTSUPP, errno.EINVAL, errno.ENOSYS):   # a file system without it
                raise
        chunk = np.empty((min(CHUNK, shape[0]), shape[1]), dtype=np.float32)
        with tqdm(total=shape[0], desc="decode clips", unit="clip", disable=not progress) as bar:
            for first in range(0, shape[0], CHUNK):
                rows = min(CHUNK, shape[0] - first)
                for j in range(rows):
                    chunk[j] = dataset.load(first + j).numpy()
                f.write(chunk[:rows].tobytes())
                bar.update(rows)
