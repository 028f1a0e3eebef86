"""Training speed: WGAN-GP iterations/s (f32 vs bf16 autocast, CPU and CUDA) and the cost of GanAugment in a KWS epoch.

    python bench/bench_train.py [--data_folder ../shared/data/speech_commands] [--parts gan,curves,kws] [--threads 2]

Parts (CPU always; CUDA parts when CUDA is present):
  gan     WGAN-GP iterations/s (``--d_steps`` critic + 1 generator update), TODAY'S PATH and THE NEW ONE side
          by side in one run. "today" is the step as ``train_gan`` ran it before issue 10 (separate D calls on
          real and fake, random draws on the CPU copied over, phase shuffle reading ``max |shift|`` on the host
          at every layer, default Adam, GP in float32); "new" is ``ganaug.train.step.GanStep`` (every draw on the
          device generator, static shapes, foreach/fused Adam, stats kept on the device) with the speed options.
          CPU: the ``tiny`` size (``wavegan_cpu``, d=16) at ``--cpu_batch``, float32, variants interleaved, with the ratio
          new/today (the default must not be slower). CUDA (only when present): ``paper`` (``wavegan``) at batch 64:
          it/s, hours for 200k iterations, and the share of the GPU's measured bf16 matmul rate (FLOPs of one
          iteration counted by ``torch.utils.flop_counter``) for today fp32 / tf32 / bf16 autocast and new bf16
          eager / + compile reduce-overhead / + GP in bf16, and wavegan_fast's step (nsgan, 1 D, lazy R1 every 16).
          ``bench/gpu_smoke.py`` is the shorter check of every amp x compile mode against eager float32.
  curves  the losses of the same run (same seed, real clips) in float32 and in CPU bf16 autocast over
          ``--curve_steps`` iterations: does bf16 train the same (D/gp stays bounded, D/wgan follows)?
  kws     a keyword-classifier training epoch (DS-CNN forward + backward + AdamW over the preloaded clips)
          without GanAugment, and with GanAugment(p=0.5) drawing from a bank, alternated epoch by epoch;
          on-the-fly generation (GanAugment running G ``small``) is timed once beside them.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import statistics
import tempfile
import time
from pathlib import Path

import torch

from ganaug.functional import draw_shifts, sample_latents
from ganaug.train import losses as L
from ganaug.train.options import TrainOptions
from ganaug.train.run import sized_models
from ganaug.train.step import GanStep


def models(size: str, label_names=None):
    """``(G, D)`` of a size (``ganaug.train.run.SIZES``), built as its YAML preset builds them, from torch's
    global RNG state (the caller seeds)."""
    return sized_models(size, label_names, seed=int(torch.initial_seed() % 2**31))

DEFAULT = Path(__file__).resolve().parents[2] / "shared" / "data" / "speech_commands"
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def loadavg() -> str:
    try:
        return " ".join(f"{v:.2f}" for v in os.getloadavg())
    except OSError:
        return "n/a"


def real_clips(data_folder: str, limit: int) -> torch.Tensor:
    from ganaug.data import KeywordDataset
    from ganaug.data.cache import preload

    if not Path(data_folder).is_dir():  # e.g. a GPU machine without the shared data: speed does not depend on it
        print(f"{data_folder}: not found; timing on uniform noise clips (the curves part needs real clips)")
        return torch.rand(limit, 16384).sub_(0.5).mul_(0.2), torch.zeros(limit, dtype=torch.long)
    ds = KeywordDataset(data_folder, labels=KEYWORDS, num_samples=16384)
    wavs, labels = preload(ds, progress=False)
    return wavs[:limit].clone(), labels[:limit].clone()


class WGANStep:
    """One WGAN-GP iteration as ``train_gan`` ran it before issue 10 (``d_steps`` critic updates, one generator
    update), with an autocast dtype for the G and D forwards (the gradient penalty stays float32): random
    draws on the CPU generator copied to the device, phase-shuffle shifts from the global RNG with the
    host read of ``max |shift|`` at each layer that the old ``phase_shuffle`` made."""

    def __init__(self, preset: str, device, batch: int, d_steps: int, amp: torch.dtype | None, compile: bool = False,
                 seed: int = 0):
        torch.manual_seed(seed)
        self.device, self.batch, self.d_steps, self.amp = torch.device(device), batch, d_steps, amp
        G, D = models(preset)
        self.G, self.D = G.to(self.device).train(), D.to(self.device).train()
        self.opt_G = torch.optim.Adam(self.G.parameters(), lr=1e-4, betas=(0.5, 0.9))
        self.opt_D = torch.optim.Adam(self.D.parameters(), lr=1e-4, betas=(0.5, 0.9))
        self.g_fwd = torch.compile(self.G) if compile else self.G
        self.d_fwd = torch.compile(self.D) if compile else self.D
        self.gen = torch.Generator().manual_seed(seed)

    def critic(self, x):
        """D(x) with today's phase shuffle: shifts from the global RNG, ``int(max |shift|)`` read per layer."""
        shifts = draw_shifts(self.D.phase_shuffle, (self.D.shuffle_layers, x.shape[0]), device=self.device)
        for row in shifts:
            int(row.abs().max())              # the host synchronisation of the old phase_shuffle
        return self.d_fwd(x, None, shifts=shifts)

    def autocast(self):
        if self.amp is None:
            return contextlib.nullcontext()
        return torch.autocast(self.device.type, dtype=self.amp)

    def __call__(self, data: torch.Tensor) -> dict:
        stats = {}
        for _ in range(self.d_steps):
            real = data[torch.randint(len(data), (self.batch,), generator=self.gen)].to(self.device)
            z = sample_latents(self.batch, self.G.latent_dim, self.gen, self.device)
            eps = torch.rand(self.batch, generator=self.gen)
            with torch.no_grad(), self.autocast():
                fake = self.g_fwd(z)
            with self.autocast():
                d_wgan = self.critic(fake).float().mean() - self.critic(real).float().mean()
            shifts = draw_shifts(self.D.phase_shuffle, (self.D.shuffle_layers, self.batch), device=self.device)
            x_hat = L.interpolate(real, fake, eps)
            probe = torch.zeros_like(x_hat, requires_grad=True)
            d_gp = L.gradient_penalty(L.input_gradient(self.D(x_hat + probe, None, shifts=shifts), probe))
            loss = d_wgan + 10 * d_gp
            self.opt_D.zero_grad(set_to_none=True)
            loss.backward()
            self.opt_D.step()
        z = sample_latents(self.batch, self.G.latent_dim, self.gen, self.device)
        self.D.requires_grad_(False)
        with self.autocast():
            g_adv = -self.critic(self.g_fwd(z)).float().mean()
        self.opt_G.zero_grad(set_to_none=True)
        g_adv.backward()
        self.opt_G.step()
        self.D.requires_grad_(True)
        stats.update({"D/wgan": float(d_wgan.detach()), "D/gp": float(d_gp.detach()), "G/adv": float(g_adv.detach())})
        return stats


def sync(device) -> None:
    if torch.device(device).type == "cuda":
        torch.cuda.synchronize()


def iteration_rates(variants: dict, data: torch.Tensor, iters: int, rounds: int, cpu_time: dict | None = None) -> dict[str, float]:
    """Median iterations/s of each ``WGANStep`` in ``variants``, ``iters`` iterations a round, rounds interleaved.
    ``cpu_time``: filled with the median process CPU seconds per iteration (robust to a shared machine's load)."""
    for step in variants.values():
        step(data)   # warm-up (compiles where asked)
        sync(step.device)
    times = {name: [] for name in variants}
    cpu = {name: [] for name in variants}
    for _ in range(rounds):
        for name, step in variants.items():
            t0, c0 = time.perf_counter(), time.process_time()
            for _ in range(iters):
                step(data)
            sync(step.device)
            times[name].append((time.perf_counter() - t0) / iters)
            cpu[name].append((time.process_time() - c0) / iters)
    if cpu_time is not None:
        cpu_time.update({name: statistics.median(ts) for name, ts in cpu.items()})
    return {name: 1 / statistics.median(ts) for name, ts in times.items()}


class NewStep:
    """One iteration of ``ganaug.train.step.GanStep`` (the training loop's step) with ``options``."""

    def __init__(self, preset: str, device, batch: int, d_steps: int, data: torch.Tensor, seed: int = 0,
                 **options):
        torch.manual_seed(seed)
        self.device, self.d_steps = torch.device(device), d_steps
        G, D = models(preset)
        G, D = G.to(self.device).train(), D.to(self.device).train()
        opts = TrainOptions(**{"batch_size": batch, "d_steps_per_g_step": d_steps, **options})
        self.d_steps = opts.d_steps_per_g_step
        self.run = GanStep(G, D, opts, self.device, data.to(self.device), None, batch, seed)

    def __call__(self, data=None) -> dict:
        for _ in range(self.d_steps):
            self.run.critic_step()
        self.run.generator_step()
        return {}


def iteration_flops(step: NewStep) -> float:
    """FLOPs of one iteration (forward, backward, the penalty's double backward), counted by torch."""
    from torch.utils.flop_counter import FlopCounterMode

    counter = FlopCounterMode(display=False)
    with counter:
        step()
    return float(counter.get_total_flops())


def bf16_matmul_rate(n: int = 8192, reps: int = 20) -> float:
    """Measured bf16 matmul FLOP/s of the current GPU (n^3 GEMM)."""
    a = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    b = torch.randn(n, n, device="cuda", dtype=torch.bfloat16)
    for _ in range(3):
        a @ b
    torch.cuda.synchronize()
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    torch.cuda.synchronize()
    return 2 * n ** 3 * reps / (time.perf_counter() - t0)


def gan_part(data, args) -> None:
    if not args.no_cpu:
        preset = "tiny"
        variants = {"today (f32)": WGANStep(preset, "cpu", args.cpu_batch, args.d_steps, None),
                    "new (f32, compile none)": NewStep(preset, "cpu", args.cpu_batch, args.d_steps, data, amp="none")}
        cpu = {}
        rates = iteration_rates(variants, data, args.iters, args.rounds, cpu)
        base, base_cpu = rates["today (f32)"], cpu["today (f32)"]
        print(f"CPU WGAN-GP {preset} (d={variants['today (f32)'].G.model_dim}), batch {args.cpu_batch}, {args.d_steps} D + 1 G, "
              f"{args.threads} thread(s), medians of {args.rounds} interleaved rounds of {args.iters} iteration(s):")
        for name, rate in rates.items():
            print(f"  {name:28s} {rate:8.4f} it/s ({rate / base:.2f}x today); process CPU {cpu[name]:6.2f} s/it "
                  f"({base_cpu / cpu[name]:.2f}x today)")
    if torch.cuda.is_available() and not args.no_cuda:
        gpu = data[:2048].cuda()
        peak = bf16_matmul_rate()
        print(f"CUDA {torch.cuda.get_device_name()}: bf16 matmul {peak / 1e12:.0f} TFLOP/s (8192^3, measured)")
        flops = None
        variants = (
            ("today fp32", dict(tf32=False, amp=None)),
            ("today tf32", dict(tf32=True, amp=None)),
            ("today bf16 autocast (issue 10's default)", dict(tf32=True, amp=torch.bfloat16)),
            ("new bf16", dict(amp="bf16")),
            ("new bf16 + compile reduce-overhead", dict(amp="bf16", compile="reduce-overhead")),
            ("new + GP in bf16", dict(amp="bf16", compile="reduce-overhead", gp_precision="bf16")),
            ("wavegan_fast's step (nsgan, lazy R1 k=16, 1 D) bf16 + compile", dict(
                amp="bf16", compile="reduce-overhead", loss="nsgan", r1_gamma=1.0, gp_interval=16,
                d_steps_per_g_step=1, lr=2e-4, betas=(0.0, 0.99))),
        )
        for name, kw in variants:
            try:
                if name.startswith("today"):
                    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = kw["tf32"]
                    torch.backends.cudnn.benchmark = True
                    step = WGANStep("paper", "cuda", 64, 5, kw["amp"])
                else:
                    step = NewStep("paper", "cuda", 64, 5, gpu, **kw)
                    if flops is None:
                        flops = iteration_flops(step)
                        print(f"  one iteration (5 D + 1 G, paper, batch 64): {flops / 1e12:.2f} TFLOP")
                rate = iteration_rates({name: step}, gpu, args.cuda_iters, 3)[name]
            except Exception as err:  # noqa: BLE001 - a failing variant is reported, the others still run
                print(f"CUDA {name}: failed: {type(err).__name__}: {err}")
                continue
            share = f", {flops * rate / peak:.1%} of bf16 matmul rate" if flops else ""
            print(f"  {name:36s} {rate:6.1f} it/s  200k iterations in {200_000 / rate / 3600:5.1f} h{share}")


def curves_part(data, args) -> None:
    runs = {"f32": WGANStep("tiny", "cpu", args.curve_batch, args.d_steps, None, seed=1),
            "bf16 autocast": WGANStep("tiny", "cpu", args.curve_batch, args.d_steps, torch.bfloat16, seed=1)}
    logs = {name: [] for name in runs}
    for _ in range(args.curve_steps):
        for name, step in runs.items():
            logs[name].append(step(data))
    window = max(1, args.curve_steps // 5)
    print(f"loss curves, tiny, batch {args.curve_batch}, {args.curve_steps} iterations, same seed and data "
          f"(mean over windows of {window} iterations):")
    for key in ("D/wgan", "D/gp", "G/adv"):
        for name, log in logs.items():
            means = [statistics.fmean(row[key] for row in log[i:i + window]) for i in range(0, len(log), window)]
            print(f"  {key:7s} {name:14s} " + " ".join(f"{m:9.4f}" for m in means))


def kws_part(args) -> None:
    from torch.utils.data import DataLoader, TensorDataset

    from ganaug import GanAugment
    from ganaug.augment import generate_bank
    from ganaug.checkpoint import save_generator
    from ganaug.data import KeywordDataset
    from ganaug.data.cache import preload
    from ganaug.models.classifier import KWSClassifier

    ds = KeywordDataset(args.data_folder, labels=KEYWORDS, num_samples=16000)
    wavs, labels = preload(ds, progress=False)
    wavs, labels = wavs[:args.kws_clips], labels[:args.kws_clips]
    with tempfile.TemporaryDirectory() as tmp:
        G = models("small", KEYWORDS)[0]
        ckpt = save_generator(Path(tmp) / "small", G)
        bank = generate_bank(ckpt, Path(tmp) / "bank", args.bank_per_label, progress=False)
        for name in bank.label_names:
            bank.clips(name)
        augs = {"none": None, "bank p=0.5": GanAugment(bank=bank, p=0.5, label_names=KEYWORDS),
                "on-the-fly G small p=0.5": GanAugment(ckpt, p=0.5, label_names=KEYWORDS)}
        torch.manual_seed(0)
        model = KWSClassifier(KEYWORDS)
        opt = torch.optim.AdamW(model.parameters(), lr=3e-3)

        def epoch(aug) -> float:
            loader = DataLoader(TensorDataset(wavs, labels), batch_size=args.kws_batch, shuffle=True,
                                generator=torch.Generator().manual_seed(0))
            g = torch.Generator().manual_seed(0)
            t0 = time.perf_counter()
            for x, y in loader:
                if aug is not None:
                    x, y = aug(x, y, generator=g)
                loss = torch.nn.functional.cross_entropy(model(x), y)
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()
            return time.perf_counter() - t0

        times = {"none": [], "bank p=0.5": []}
        epoch(None)  # warm-up
        for _ in range(args.kws_rounds):
            for name in times:
                times[name].append(epoch(augs[name]))
        fly = epoch(augs["on-the-fly G small p=0.5"])
    base = statistics.median(times["none"])
    print(f"KWS epoch ({len(wavs)} clips, batch {args.kws_batch}, DS-CNN fwd+bwd+AdamW), medians of "
          f"{args.kws_rounds} alternated epochs:")
    print(f"  without GanAugment        : {base:6.2f} s")
    print(f"  GanAugment p=0.5, bank    : {statistics.median(times['bank p=0.5']):6.2f} s = "
          f"{statistics.median(times['bank p=0.5']) / base:.3f}x (target <= 1.10x)")
    print(f"  GanAugment p=0.5, G small on the fly (one epoch): {fly:6.2f} s = {fly / base:.2f}x")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data_folder", default=str(DEFAULT))
    parser.add_argument("--parts", default="gan,curves,kws")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--cpu_batch", type=int, default=16)
    parser.add_argument("--d_steps", type=int, default=5)
    parser.add_argument("--iters", type=int, default=1, help="iterations per timed round")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--curve_steps", type=int, default=10)
    parser.add_argument("--curve_batch", type=int, default=8)
    parser.add_argument("--kws_batch", type=int, default=64)
    parser.add_argument("--kws_rounds", type=int, default=2)
    parser.add_argument("--kws_clips", type=int, default=640, help="clips per KWS epoch (a subset keeps it short)")
    parser.add_argument("--bank_per_label", type=int, default=16)
    parser.add_argument("--no_cuda", action="store_true")
    parser.add_argument("--no_cpu", action="store_true", help="skip the CPU timings of the gan part")
    parser.add_argument("--cuda_iters", type=int, default=20, help="iterations per timed CUDA round")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    parts = args.parts.split(",")
    print(f"torch {torch.__version__}, {args.threads} threads, load average before: {loadavg()}")
    data = real_clips(args.data_folder, 2048) if {"gan", "curves"} & set(parts) else None
    if data is not None:
        data = data[0]
    if "gan" in parts:
        gan_part(data, args)
    if "curves" in parts:
        curves_part(data, args)
    if "kws" in parts:
        kws_part(args)
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
