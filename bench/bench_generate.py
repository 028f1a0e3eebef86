"""Generation speed: a plain float32 forward of G against ``G.sample()`` (the fast path), one run.

    python bench/bench_generate.py [--presets paper,small] [--batch_size 64] [--rounds 7] [--threads 2,1]

CPU (always): for each preset, clips/s and x real time of
  * ``f32``     the plain float32 forward ``G(z)`` under inference mode, batch ``--batch_size``;
  * ``sample``  ``G.sample(batch_size)`` with its default precision (``ganaug.models.fast``);
  * ``bf16w``   for reference, the module cast to bf16 (``G.to(torch.bfloat16)``), eager.
The variants are timed round-robin (``--rounds`` rounds, after a warm-up), so machine load hits them
alike; the table shows the median and best round and the speed-up of the medians over ``f32``, plus
the relative error ``||sample - f32|| / ||f32||`` on the same latents (weights at a trained model's
output level). The load average is printed before and after.

CUDA (when present): clips/s of ``paper`` in bf16 (``sample``) at a large batch, with the bf16 matmul
rate of the same GPU (TFLOP/s of an 8192^3 GEMM) beside it.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time

import torch

from ganaug.functional import sample_latents
from ganaug.models import WaveGANGenerator
from ganaug.train.run import preset_models
from ganaug.models import fast


def wavegan(size: str, label_names=None, **overrides):
    """The generator of a YAML preset: paper = ``wavegan`` (d=64), paper_32k its 32768-sample model,
    small = d=32, tiny = ``wavegan_cpu`` (d=16)."""
    name, sized = {"paper": ("wavegan", {}), "paper_32k": ("wavegan", {"num_samples": 32768}),
                   "small": ("wavegan", {"model_dim": 32}), "tiny": ("wavegan_cpu", {})}[size]
    return preset_models(name, label_names, **sized, **overrides)[0]


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def realistic(preset: str) -> WaveGANGenerator:
    """Random weights scaled to a trained model's output level (rms ~0.1-0.3); speed does not depend on it."""
    torch.manual_seed(0)
    G = wavegan(preset).eval()
    with torch.no_grad():
        for conv in G.convs:
            conv.weight.mul_(2.2)
    return G


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


def cpu_bench(preset: str, batch: int, rounds: int) -> dict:
    G = realistic(preset)
    Gb = realistic(preset).to(torch.bfloat16)
    z = sample_latents(batch, G.latent_dim, torch.Generator().manual_seed(0))
    with torch.inference_mode():
        ref = G(z).float()
        fast_out = fast.generate(G, z)
    err = float((fast_out - ref.clamp(-1, 1)).norm() / ref.clamp(-1, 1).norm())

    def plain():
        with torch.inference_mode():
            return G(z)

    def bf16w():
        with torch.inference_mode():
            return Gb(z.bfloat16())

    gen = torch.Generator()
    variants = {"f32": plain, "sample": lambda: G.sample(batch, generator=gen.manual_seed(0)), "bf16w": bf16w}
    times = round_robin(variants, rounds)
    seconds = G.num_samples / G.sample_rate
    rows = {}
    base = statistics.median(times["f32"])
    for name, ts in times.items():
        med = statistics.median(ts)
        rows[name] = {"clips_s": batch / med, "best_clips_s": batch / min(ts), "x_real_time": batch * seconds / med,
                      "speedup": base / med}
    return {"rows": rows, "rel_err": err, "precision": fast.resolve_precision(None, torch.device("cpu"))}


def cuda_bench(batch: int, rounds: int) -> dict:
    device = torch.device("cuda")
    G = realistic("paper").to(device)
    gen = torch.Generator(device).manual_seed(0)
    z = sample_latents(batch, G.latent_dim, gen, device)
    with torch.inference_mode():
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
        ref = G(z[:256]).float().clamp(-1, 1)
        err = float((fast.generate(G, z[:256]) - ref).norm() / ref.norm())
    torch.backends.cudnn.benchmark = True

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

    sample_s = timed(lambda: G.sample(batch, generator=gen, batch_size=batch))
    with torch.inference_mode():
        f32_s = timed(lambda: G(z))
    n = 8192
    a = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    b = torch.randn(n, n, device=device, dtype=torch.bfloat16)
    mm_s = timed(lambda: a @ b)
    flop_per_clip = 2 * sum(c.weight.numel() * 16 * 4 ** i for i, c in enumerate(G.convs))
    return {"batch": batch, "sample_clips_s": batch / sample_s, "f32_clips_s": batch / f32_s,
            "bf16_matmul_tflops": 2 * n ** 3 / mm_s / 1e12, "rel_err": err,
            "sample_tflops": flop_per_clip * batch / sample_s / 1e12, "gpu": torch.cuda.get_device_name()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presets", default="paper,small")
    parser.add_argument("--batch_size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=7)
    parser.add_argument("--threads", default="2,1", help="torch CPU thread counts to run the CPU part with")
    parser.add_argument("--cuda_batch", type=int, default=4096)
    parser.add_argument("--no_cuda", action="store_true")
    parser.add_argument("--no_cpu", action="store_true", help="only the CUDA part")
    args = parser.parse_args()
    print(f"torch {torch.__version__}, CPU native bf16: {fast.cpu_has_fast_bf16()}, load average before: {loadavg()}")
    for threads in [] if args.no_cpu else [int(t) for t in args.threads.split(",")]:
        torch.set_num_threads(threads)
        for preset in args.presets.split(","):
            r = cpu_bench(preset, args.batch_size, args.rounds)
            print(f"CPU {threads} thread(s), {preset} (d={wavegan(preset).model_dim}), batch {args.batch_size}, "
                  f"sample() precision {r['precision']}, rel err vs f32 {r['rel_err']:.1e}")
            for name, row in r["rows"].items():
                print(f"  {name:7s} {row['clips_s']:8.1f} clips/s (best {row['best_clips_s']:7.1f})  "
                      f"{row['x_real_time']:8.1f}x real time  {row['speedup']:5.2f}x f32")
    print(f"load average after: {loadavg()}")
    if torch.cuda.is_available() and not args.no_cuda:
        r = cuda_bench(args.cuda_batch, max(3, args.rounds))
        print(f"CUDA {r['gpu']}: paper bf16 sample() batch {r['batch']}: {r['sample_clips_s']:,.0f} clips/s "
              f"(= x real time at 16384 samples/16 kHz: {r['sample_clips_s'] * 1.024:,.0f}x; "
              f"{r['sample_tflops']:.0f} TFLOP/s of conv work), f32 forward {r['f32_clips_s']:,.0f} clips/s, "
              f"rel err {r['rel_err']:.1e}; bf16 matmul 8192^3: {r['bf16_matmul_tflops']:.0f} TFLOP/s")
    else:
        print("CUDA: not present, GPU part skipped")


if __name__ == "__main__":
    main()
