"""What synthetic clips cost: on-the-fly generation vs a pre-generated bank, and a DataLoader epoch.

    python bench/bench_augment.py [--data_folder ../shared/data/speech_commands] [--threads 2]

Prints, from one run on this machine (CPU; untrained weights, which cost what trained ones do):
  (a) clips/s of on-the-fly generation for the `paper` (d=64) and `small` (d=32) presets,
  (b) clips/s of drawing from a SyntheticBank,
  (c) a DataLoader epoch over the shared keywords without GanAugment, with GanAugment(p=0.5)
      running G (`small`), and with GanAugment(p=0.5) drawing from a bank,
and the ratios between them. The default run takes 1-3 minutes on 2 cores.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

import torch
from torch.utils.data import DataLoader

from ganaug import GanAugment, KeywordDataset
from ganaug.augment import GeneratorSource, generate_bank
from ganaug.checkpoint import save_generator
from ganaug.train.run import sized_models


DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands"
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def throughput(source, n: int, batch_size: int) -> float:
    """clips/s of ``source.generate`` in batches of ``batch_size`` (after one warm-up batch)."""
    names = [KEYWORDS[i % len(KEYWORDS)] for i in range(batch_size)]
    source.generate(names, range(batch_size))
    t0 = time.perf_counter()
    for start in range(0, n, batch_size):
        source.generate(names, range(start, start + batch_size))
    return (-(-n // batch_size) * batch_size) / (time.perf_counter() - t0)


def epoch(ds, aug, batch_size: int, num_workers: int) -> tuple[float, int]:
    """Seconds for one pass of a DataLoader over ``ds`` with ``aug`` on every batch; clips seen."""
    loader = DataLoader(ds, batch_size=batch_size, shuffle=True, num_workers=num_workers,
                        generator=torch.Generator().manual_seed(0))
    g = torch.Generator().manual_seed(0)
    t0, n = time.perf_counter(), 0
    for batch in loader:
        wavs, labels = batch["wav"], batch["label"]
        if aug is not None:
            wavs, labels = aug(wavs, labels, generator=g)
        n += len(wavs)
    return time.perf_counter() - t0, n


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_folder", default=str(DEFAULT))
    parser.add_argument("--threads", type=int, default=2, help="torch CPU threads")
    parser.add_argument("--num_workers", type=int, default=2)
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--paper_clips", type=int, default=64, help="clips timed for the paper preset")
    parser.add_argument("--small_clips", type=int, default=128, help="clips timed for the small preset")
    parser.add_argument("--bank_per_label", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} threads, batch {args.batch_size}")

    with tempfile.TemporaryDirectory() as tmp:
        sources, rates = {}, {}
        for preset, n in (("paper", args.paper_clips), ("small", args.small_clips)):
            G = sized_models(preset, KEYWORDS)[0]
            sources[preset] = GeneratorSource(save_generator(Path(tmp) / preset, G))
            rates[preset] = throughput(sources[preset], n, min(n, args.batch_size))
            print(f"(a) on-the-fly {preset:5s} (d={G.model_dim}): {rates[preset]:8.1f} clips/s")
        t0 = time.perf_counter()
        bank = generate_bank(Path(tmp) / "small", Path(tmp) / "bank", args.bank_per_label, progress=False,
                             batch_size=args.batch_size)
        bank_build_s = time.perf_counter() - t0
        for name in bank.label_names:
            bank.clips(name)  # decode once into the memory-mapped tensors
        rates["bank"] = throughput(bank, 4096, args.batch_size)
        print(f"(b) bank draws: {rates['bank']:8.0f} clips/s (bank of {len(bank)} small clips built in "
              f"{bank_build_s:.1f} s, decoded + mapped once)")

        ds = KeywordDataset(args.data_folder, labels=KEYWORDS)
        runs = {
            "no GanAugment": None,
            "GanAugment p=0.5, G small": GanAugment(Path(tmp) / "small", p=0.5, label_names=KEYWORDS),
            "GanAugment p=0.5, bank": GanAugment(bank=bank, p=0.5, label_names=KEYWORDS),
        }
        times = {}
        for name, aug in runs.items():
            times[name], n = epoch(ds, aug, args.batch_size, args.num_workers)
            print(f"(c) epoch, {name:26s}: {times[name]:6.1f} s for {n} clips = {n / times[name]:6.0f} clips/s")

    base = times["no GanAugment"]
    print("ratios (this run):")
    print(f"  bank / on-the-fly paper generation      : {rates['bank'] / rates['paper']:8.1f}x clips/s")
    print(f"  bank / on-the-fly small generation      : {rates['bank'] / rates['small']:8.1f}x clips/s")
    print(f"  small / paper generation                : {rates['small'] / rates['paper']:8.1f}x clips/s")
    print(f"  epoch with GanAugment (G small) / without : {times['GanAugment p=0.5, G small'] / base:6.2f}x time")
    print(f"  epoch with GanAugment (bank) / without    : {times['GanAugment p=0.5, bank'] / base:6.2f}x time")


if __name__ == "__main__":
    main()
