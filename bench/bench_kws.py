"""Keyword-classifier training speed: optimizer steps per second of each model, one process, interleaved.

    python bench/bench_kws.py [--threads 1] [--rounds 3] [--batch 32]

Each round times every model for ``--steps`` training steps (Fbank, forward, backward, AdamW) on random
one-second clips, in the channels-last and in the default contiguous memory layout (the classifier uses
channels-last for the DS-CNN only, where it is faster), so the ratios come from one run. ``ganaug.ablation.cost.KWS_RATES`` (the ablation's time estimate) takes
its figures from here (docs/performance.md says which run).
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch
import torch.nn.functional as F

from ganaug.models.classifier import KWSClassifier

MODELS = {"ds_cnn": {"model": "ds_cnn"}, "bcresnet-1": {"model": "bcresnet", "tau": 1},
          "bcresnet-3": {"model": "bcresnet", "tau": 3}}
LABELS = [f"w{i}" for i in range(12)]


def steps_per_second(kwargs: dict, batch: int, steps: int, channels_last: bool) -> float:
    torch.manual_seed(0)
    model = KWSClassifier(LABELS, **kwargs)
    model.to(memory_format=torch.channels_last if channels_last else torch.contiguous_format)
    opt = torch.optim.AdamW(model.parameters(), lr=1e-3)
    wavs, labels = 0.1 * torch.randn(batch, 16000), torch.randint(0, len(LABELS), (batch,))

    def step():
        loss = F.cross_entropy(model(wavs), labels)
        opt.zero_grad()
        loss.backward()
        opt.step()

    step()                                       # warm-up (oneDNN primitive creation)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    return steps / (time.perf_counter() - start)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--steps", type=int, default=10)
    parser.add_argument("--batch", type=int, default=32)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    print(f"torch {torch.__version__}, {args.threads} thread(s), batch {args.batch}, load average "
          f"{os.getloadavg()[0]:.2f} before")
    rates: dict[tuple[str, bool], list[float]] = {}
    for _ in range(args.rounds):
        for name, kwargs in MODELS.items():
            for layout in (True, False):
                rates.setdefault((name, layout), []).append(steps_per_second(kwargs, args.batch, args.steps, layout))
    print("| model | steps/s (channels last) | steps/s (contiguous) | ratio |")
    print("|---|---|---|---|")
    for name in MODELS:
        last, plain = statistics.median(rates[(name, True)]), statistics.median(rates[(name, False)])
        print(f"| {name} | {last:.2f} | {plain:.2f} | {last / plain:.2f}x |")
    print(f"medians of {args.rounds} interleaved rounds of {args.steps} steps; load average {os.getloadavg()[0]:.2f} after")


if __name__ == "__main__":
    main()
