"""Generation speed: plain float32, bf16 autocast and ``G.sample()`` side by side, idle and with a busy core.

    python bench/bench_generate.py [--ckpt DIR] [--batch_size 64] [--rounds 7] [--threads N]

CPU: the generator of ``--ckpt`` (default: the shared trained WaveGAN, paper size, 10 keywords), batch
``--batch_size``, timed round-robin (``--rounds`` rounds after a warm-up, so load hits every variant alike):
  * ``f32``       ``G(z, labels)`` under inference mode;
  * ``autocast``  the same under ``torch.autocast("cpu", torch.bfloat16)``, forced even where bf16 is not native;
  * ``sample()``  ``G.sample(batch)``: the one inference path (autocast only where bf16 is native).
Each is measured idle, then while a second process spins one core (the "busy core" of a shared machine).
Printed: the CPU, whether it runs bf16 natively, the load average, clips/s (median and best round), the
speed-up over ``f32`` and the relative error ``||x - f32|| / ||f32||`` on the same latents.

CUDA (when present): clips/s of ``sample()`` and of the float32 forward at ``--cuda_batch``.
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import platform
import statistics
import time
from pathlib import Path

import torch

from ganaug.checkpoint import load_generator
from ganaug.functional import sample_latents
from ganaug.models.sampling import native_bf16

SHARED = Path(__file__).resolve().parents[2] / "shared" / "generators" / "wavegan_sc10_h100_5k_ema"


def loadavg() -> str:
    return " ".join(f"{v:.2f}" for v in os.getloadavg())


def cpu_name() -> str:
    try:
        with open("/proc/cpuinfo") as f:
            return next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        return platform.processor() or "unknown CPU"


def spin() -> None:
    while True:
        pass


def round_robin(variants: dict, rounds: int) -> dict[str, list[float]]:
    """Seconds per call of each variant, interleaved over ``rounds`` rounds after one warm-up each."""
    for fn in variants.values():
        fn()
    times = {name: [] for name in variants}
    for _ in range(rounds):
        for name, fn in variants.items():
            t0 = time.perf_counter()
            fn()
            times[name].append(time.perf_counter() - t0)
    return times


def cpu_variants(G, batch: int):
    """The three ways to make ``batch`` clips, each a function of the same latents and labels."""
    gen = torch.Generator()
    index = None if G.label_names is None else torch.arange(batch) % len(G.label_names)
    z = sample_latents(batch, G.latent_dim, gen.manual_seed(0))

    @torch.inference_mode()
    def f32():
        return G(z, index)

    @torch.inference_mode()
    def autocast():
        with torch.autocast("cpu", dtype=torch.bfloat16):
            return G(z, index).float()

    def sample():
        return G.synthesize(z, index)   # what G.sample(batch) runs after drawing z and labels

    return {"f32": f32, "autocast": autocast, "sample()": sample}


def report(variants: dict, times: dict, batch: int) -> None:
    ref = variants["f32"]().float()
    base = statistics.median(times["f32"])
    for name, ts in times.items():
        err = float((variants[name]().float() - ref).norm() / ref.norm())
        med = statistics.median(ts)
        print(f"  {name:9s} {batch / med:8.1f} clips/s (best {batch / min(ts):7.1f})  {base / med:5.2f}x f32  "
              f"rel err {err:.1e}")


def cuda_bench(ckpt, batch: int, rounds: int) -> None:
    G = load_generator(ckpt, device="cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    torch.backends.cudnn.benchmark = True
    z = sample_latents(batch, G.latent_dim, torch.Generator("cuda").manual_seed(0), "cuda")
    index = None if G.label_names is None else torch.arange(batch, device="cuda") % len(G.label_names)

    def timed(fn) -> float:
        fn()
        torch.cuda.synchronize()
        best = float("inf")
        for _ in range(rounds):
            t0 = time.perf_counter()
            fn()
            torch.cuda.synchronize()
            best = min(best, time.perf_counter() - t0)
        return best

    with torch.inference_mode():
        f32_s, ref = timed(lambda: G(z, index)), G(z, index)
    sample_s, out = timed(lambda: G.synthesize(z, index, batch_size=batch)), G.synthesize(z, index, batch_size=batch)
    print(f"CUDA {torch.cuda.get_device_name()}, native bf16 {native_bf16('cuda')}, batch {batch}: "
          f"f32 {batch / f32_s:,.0f} clips/s, sample() {batch / sample_s:,.0f} clips/s "
          f"({f32_s / sample_s:.2f}x), rel err {float((out - ref.clamp(-1, 1)).norm() / ref.norm()):.1e}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ckpt", default=str(SHARED), help="generator checkpoint directory")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", type=int, default=os.cpu_count(), help="torch CPU threads")
    parser.add_argument("--cuda_batch", type=int, default=4096)
    parser.add_argument("--no_cpu", action="store_true", help="only the CUDA part")
    args = parser.parse_args()
    if not args.no_cpu:
        torch.set_num_threads(args.threads)
        G = load_generator(args.ckpt)
        print(f"{cpu_name()}, {os.cpu_count()} cores, torch {torch.__version__} ({args.threads} threads, "
              f"{torch.backends.cpu.get_cpu_capability()}), native bf16: {native_bf16('cpu')} -> sample() runs "
              f"{'bf16 autocast' if native_bf16('cpu') else 'float32'}")
        print(f"{G.family} d={getattr(G, 'model_dim', '?')} from {args.ckpt}, batch {args.batch_size}, "
              f"{args.rounds} rounds")
        variants = cpu_variants(G, args.batch_size)
        for busy in (False, True):
            spinner = multiprocessing.Process(target=spin, daemon=True) if busy else None
            if spinner:
                spinner.start()
            try:
                before = loadavg()
                times = round_robin(variants, args.rounds)
                print(f"{'one core busy (a second process spinning)' if busy else 'idle'}: load average "
                      f"{before} before, {loadavg()} after")
                report(variants, times, args.batch_size)
            finally:
                if spinner:
                    spinner.terminate()
                    spinner.join()
    if torch.cuda.is_available():
        cuda_bench(args.ckpt, args.cuda_batch, max(3, args.rounds))
    else:
        print("CUDA: not present, GPU part skipped")


if __name__ == "__main__":
    main()
