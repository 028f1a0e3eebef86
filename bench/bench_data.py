"""Time to iterate the shared Speech Commands subset once: decoding vs the preload cache.

    python bench/bench_data.py [--data_folder ../shared/data/speech_commands] [--num_workers 2]

Prints clips/s for (a) a DataLoader over KeywordDataset (FLAC decode + pad every item), (b) the
first preload (decode once into the memory-mapped cache) and (c) an epoch over the cache.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader, TensorDataset

from ganaug.data import KeywordDataset
from ganaug.data.cache import preload

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_folder", default=str(DEFAULT))
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=64)
    args = parser.parse_args()

    t0 = time.perf_counter()
    ds = KeywordDataset(args.data_folder)
    scan_s = time.perf_counter() - t0
    print(f"scan: {len(ds)} clips, {len(ds.label_names)} labels, {len(ds.speakers)} speakers in {scan_s:.2f} s")

    t0 = time.perf_counter()
    n = sum(len(b["label"]) for b in DataLoader(ds, batch_size=args.batch_size, num_workers=args.num_workers))
    decode_s = time.perf_counter() - t0
    print(f"DataLoader epoch, decoding (workers={args.num_workers}): {decode_s:.2f} s = {n / decode_s:.0f} clips/s")

    with tempfile.TemporaryDirectory() as cache:
        t0 = time.perf_counter()
        wavs, labels = preload(ds, cache_dir=cache, progress=False)
        first_s = time.perf_counter() - t0
        print(f"preload, first call (decode + write cache): {first_s:.2f} s = {len(ds) / first_s:.0f} clips/s")
        t0 = time.perf_counter()
        wavs, labels = preload(ds, cache_dir=cache, progress=False)
        loader = DataLoader(TensorDataset(wavs, labels), batch_size=args.batch_size, shuffle=True)
        total = sum(float(w.sum()) * 0 + len(w) for w, _ in loader)
        cached_s = time.perf_counter() - t0
        print(f"epoch over the cache: {cached_s:.3f} s = {total / cached_s:.0f} clips/s "
              f"({decode_s / cached_s:.0f}x faster than decoding)")
    print(f"torch threads: {torch.get_num_threads()}")


if __name__ == "__main__":
    main()
