"""The WGAN-GP training loop (Gulrajani et al. 2017, as WaveGAN trains): one function, read top to bottom.

A *step* is one generator update, preceded by ``d_steps_per_g_step`` critic updates; it is
what the WaveGAN paper counts as an iteration. The loop only calls the family interface of
``ganaug.models`` (``G(z, labels)``, ``G.encode``, ``G.fit_data``, ``G.sample``, ``D(x, labels)``),
so SpecGAN-style generators train here unchanged.
"""

from __future__ import annotations

import contextlib
import copy
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ganaug.checkpoint import save_generator
from ganaug.functional import sample_latents
from ganaug.train import state as st
from ganaug.train.distributed import Dist
from ganaug.train.logs import RunLog, finite_or_raise

__all__ = ["TrainOptions", "train_gan", "gradient_penalty"]


@dataclass
class TrainOptions:
    """Options of one training run; defaults are the WaveGAN paper's."""

    max_steps: int = 100_000          # generator updates to train for (a rerun resumes up to this)
    batch_size: int = 64              # global batch; split evenly across torchrun processes
    d_steps_per_g_step: int = 5       # critic updates per generator update
    gp_weight: float = 10.0           # lambda of the gradient penalty
    lr: float = 1e-4                  # Adam learning rate of G and D
    betas: tuple = (0.5, 0.9)         # Adam betas of G and D
    ema_decay: float = 0.0            # EMA of G's weights, 0 = off; exported weights are the EMA when on
    ckpt_interval_steps: int = 1000   # checkpoint + samples + spectrogram grid every N steps and at the end
    log_interval_steps: int = 50      # stats row (jsonl, TensorBoard, progress bar) every N steps
    keep_checkpoints: int = 3         # newest train_state folders kept on disk
    samples_per_label: int = 4        # clips per label written at each checkpoint
    seed: int = 0                     # seeds weights, batches, latents and phase shuffle
    amp: str = "bf16"                 # autocast on CUDA: "bf16" or "none"; never on CPU, never for the GP
    tf32: bool = True                 # TF32 matmuls/convs on CUDA
    progress: bool = True             # tqdm bar on process 0
    tensorboard: bool = True          # TensorBoard event files next to stats.jsonl
    name: str = "train"               # progress bar label
    metadata: dict = field(default_factory=dict)   # extra entries for config.json (data fingerprint, keyword)

    def __post_init__(self):
        self.betas = tuple(float(b) for b in self.betas)
        for key in ("max_steps", "batch_size", "d_steps_per_g_step", "ckpt_interval_steps",
                    "log_interval_steps", "keep_checkpoints"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ValueError(f"{key}={value!r}: must be a positive integer")
        if not 0.0 <= self.ema_decay < 1.0:
            raise ValueError(f"ema_decay={self.ema_decay}: must be in [0, 1) (0 = off, 0.999 is typical)")
        if self.amp not in ("bf16", "none"):
            raise ValueError(f"amp={self.amp!r}: choose bf16 or none")
        if self.lr <= 0 or self.gp_weight < 0 or len(self.betas) != 2:
            raise ValueError(f"lr={self.lr}, gp_weight={self.gp_weight}, betas={self.betas}: need lr > 0, "
                             f"gp_weight >= 0 and two betas")

    def signature(self) -> dict:
        """Settings a resumed run must share with the saved one."""
        return {k: v for k, v in asdict(self).items() if k in (
            "batch_size", "d_steps_per_g_step", "gp_weight", "lr", "betas", "ema_decay", "seed")}


def gradient_penalty(critic, real: torch.Tensor, fake: torch.Tensor, labels, eps: torch.Tensor) -> torch.Tensor:
    """``E[(||grad D(x_hat)|| - 1)^2]`` on ``x_hat = eps*real + (1-eps)*fake``, in float32 (no autocast)."""
    shape = (-1,) + (1,) * (real.dim() - 1)
    eps = eps.view(shape).to(real.device)
    x_hat = (eps * real.float() + (1 - eps) * fake.float()).requires_grad_(True)
    with torch.autocast(device_type=real.device.type, enabled=False):
        out = critic(x_hat, labels)
    (grad,) = torch.autograd.grad(out.sum(), x_hat, create_graph=True)
    return (grad.flatten(1).norm(dim=1) - 1).square().mean()


def _rng_tensors(dist: Dist, device: torch.device, data_gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Every process's RNG states (collective under torchrun): ``rng.<rank>.{cpu,cuda,data}``."""
    mine = {"cpu": torch.get_rng_state(), "data": data_gen.get_state()}
    if device.type == "cuda":
        mine["cuda"] = torch.cuda.get_rng_state(device)
    out = {}
    for key, value in mine.items():
        for rank, tensor in enumerate(dist.gather(value, device)):
            out[f"rng.{rank}.{key}"] = tensor
    return out


def _set_rng(tensors: dict, rank: int, device: torch.device, data_gen: torch.Generator) -> bool:
    if f"rng.{rank}.cpu" not in tensors:
        return False
    torch.set_rng_state(tensors[f"rng.{rank}.cpu"].cpu())
    data_gen.set_state(tensors[f"rng.{rank}.data"].cpu())
    if device.type == "cuda" and f"rng.{rank}.cuda" in tensors:
        torch.cuda.set_rng_state(tensors[f"rng.{rank}.cuda"].cpu(), device)
    return True


def train_gan(generator, critic, wavs: torch.Tensor, labels: torch.Tensor | None, ckpt_dir: str | Path,
              opts: TrainOptions, device="cpu", dist: Dist | None = None) -> Path:
    """Train ``generator`` against ``critic`` on ``wavs`` ``(N, num_samples)`` and write ``ckpt_dir``.

    ``labels`` ``(N,)`` are indices into ``generator.label_names`` (conditional) or ``None``.
    ``generator`` and ``critic`` come freshly built (same seed on every process); if
    ``ckpt_dir`` holds a checkpoint, training resumes from its newest intact one. Returns
    ``ckpt_dir``, which then holds the exported generator of the last step.
    """
    dist = dist or Dist()
    device = torch.device(device)
    ckpt_dir = Path(ckpt_dir)
    G, D = generator.to(device).train(), critic.to(device).train()
    conditional = G.label_names is not None
    if conditional and labels is None:
        raise ValueError("a conditional generator needs the clips' labels")
    if len(wavs) == 0:
        raise ValueError(f"{ckpt_dir}: no training clips")
    if opts.batch_size % dist.world_size:
        raise ValueError(f"batch_size={opts.batch_size} must divide evenly over {dist.world_size} processes")
    local_batch = opts.batch_size // dist.world_size
    cuda = device.type == "cuda"
    if cuda:
        torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = opts.tf32
        torch.backends.cudnn.benchmark = True
    autocast = (lambda: torch.autocast("cuda", dtype=torch.bfloat16)) if cuda and opts.amp == "bf16" \
        else contextlib.nullcontext
    data = wavs.to(device) if cuda else wavs          # on CPU, rows are read from the memory map per batch
    data_labels = labels.to(device) if labels is not None else None

    G.fit_data(data.split(1024))                      # data statistics in batches (no-op for WaveGAN); saved with G
    dist.broadcast_module(G)
    dist.broadcast_module(D)
    ema = copy.deepcopy(G).requires_grad_(False) if opts.ema_decay else None
    opt_G = torch.optim.Adam(G.parameters(), lr=opts.lr, betas=opts.betas)
    opt_D = torch.optim.Adam(D.parameters(), lr=opts.lr, betas=opts.betas)
    data_gen = torch.Generator().manual_seed(opts.seed * 1_000_003 + dist.rank)   # batches, latents, GP mixing
    torch.manual_seed(opts.seed * 1_000_003 + dist.rank + 7)                   # phase shuffle
    if cuda:
        torch.cuda.manual_seed(opts.seed * 1_000_003 + dist.rank + 7)
    signature = {**opts.signature(), "family": G.family, "generator": G.config(), "critic": D.config(),
                 "data_fingerprint": opts.metadata.get("data_fingerprint")}

    # -- resume ---------------------------------------------------------------------------------
    step, train_seconds = 0, 0.0
    if dist.main:
        st.remove_partial(ckpt_dir)
    dist.barrier()
    found = st.load_latest(ckpt_dir, device="cpu", quarantine=dist.main)
    if found is not None:
        tensors, meta = found
        st.check_signature(meta["signature"], signature, ckpt_dir)
        G.load_state_dict(st.unprefixed("G", tensors))
        D.load_state_dict(st.unprefixed("D", tensors))
        if ema is not None:
            ema.load_state_dict(st.unprefixed("G_ema", tensors))
        st.unflatten_optimizer(opt_G, "opt_G", tensors, meta["opt_G"])
        st.unflatten_optimizer(opt_D, "opt_D", tensors, meta["opt_D"])
        exact = meta.get("world_size") == dist.world_size and _set_rng(tensors, dist.rank, device, data_gen)
        if not exact and dist.main:
            print(f"{ckpt_dir}: saved with {meta.get('world_size')} processes, resumed with {dist.world_size}: "
                  f"random streams restart from a seed, so the run is not bit-identical to an uninterrupted one")
        if not exact:
            data_gen.manual_seed(opts.seed * 1_000_003 + dist.rank + 104_729 * meta["step"])
            torch.manual_seed(opts.seed * 1_000_003 + dist.rank + 7 + 104_729 * meta["step"])
        step, train_seconds = meta["step"], meta.get("train_seconds", 0.0)
        del tensors
    exported = ema if ema is not None else G
    if found is not None and dist.main:   # the exported generator matches the state training resumes from
        save_generator(ckpt_dir, exported, step=step, ema=ema is not None, **opts.metadata)
    dist.barrier()
    if step >= opts.max_steps:
        if dist.main:
            print(f"{ckpt_dir}: already trained to step {step} (max_steps={opts.max_steps}); "
                  f"raise --max_steps to train on", file=sys.stderr)
        return ckpt_dir
    log = RunLog(ckpt_dir, step, opts.max_steps, opts.name, opts.progress, opts.tensorboard) if dist.main else None
    if log and step:
        log.message(f"{ckpt_dir}: resumed at step {step}")
    # fixed latents for the samples written at each checkpoint, so they are comparable across steps
    sample_names = list(G.label_names or [opts.metadata.get("keyword", "sample")])
    sample_labels = [n for n in sample_names for _ in range(opts.samples_per_label)] if conditional else None
    sample_names = [n for n in sample_names for _ in range(opts.samples_per_label)]

    def batch(n: int):
        """``n`` real clips (with replacement) in D's space, and their labels."""
        index = torch.randint(len(data), (n,), generator=data_gen)
        real = data[index.to(data.device)].to(device, non_blocking=True)
        return G.encode(real), (data_labels[index.to(data_labels.device)] if conditional else None)

    def latents(n: int):
        return sample_latents(n, G.latent_dim, data_gen, device)

    totals: dict[str, torch.Tensor] = {}
    since, tick = 0, time.perf_counter()
    while step < opts.max_steps:
        # -- critic: d_steps_per_g_step updates of E[D(fake)] - E[D(real)] + lambda * GP ---------
        for _ in range(opts.d_steps_per_g_step):
            real, y = batch(local_batch)
            z, eps = latents(local_batch), torch.rand(local_batch, generator=data_gen)
            with torch.no_grad(), autocast():
                fake = G(z, y)
            with autocast():
                d_wgan = D(fake, y).float().mean() - D(real, y).float().mean()
            d_gp = gradient_penalty(D, real, fake, y, eps)
            d_loss = d_wgan + opts.gp_weight * d_gp
            opt_D.zero_grad(set_to_none=True)
            d_loss.backward()
            dist.average_gradients(D)
            opt_D.step()
            for key, value in (("D/wgan", d_wgan), ("D/gp", d_gp), ("D/loss", d_loss)):
                totals[key] = totals.get(key, 0) + value.detach() / opts.d_steps_per_g_step
        # -- generator: one update of -E[D(G(z))] --------------------------------------------------
        _, y = batch(local_batch)                       # labels follow the data's label frequencies
        z = latents(local_batch)
        D.requires_grad_(False)
        with autocast():
            g_adv = -D(G(z, y), y).float().mean()
        opt_G.zero_grad(set_to_none=True)
        g_adv.backward()
        dist.average_gradients(G)
        opt_G.step()
        D.requires_grad_(True)
        if ema is not None:
            with torch.no_grad():
                for p_ema, p in zip(ema.parameters(), G.parameters()):
                    p_ema.lerp_(p, 1 - opts.ema_decay)
                for b_ema, b in zip(ema.buffers(), G.buffers()):
                    b_ema.copy_(b)
        totals["G/adv"] = totals.get("G/adv", 0) + g_adv.detach()
        step, since = step + 1, since + 1
        if log:
            log.advance()

        # -- stats ---------------------------------------------------------------------------------
        if step % opts.log_interval_steps == 0 or step == opts.max_steps:
            seconds = time.perf_counter() - tick
            train_seconds += seconds
            values = dist.mean({k: v / since for k, v in totals.items()})   # averaged over processes
            finite_or_raise(values, step, ckpt_dir)
            if log:
                log.stats(step, {**values, "steps_per_s": since / max(seconds, 1e-9), "train_seconds": train_seconds})
            totals, since, tick = {}, 0, time.perf_counter()

        # -- checkpoint: train_state first, then the exported generator, then samples ----------------
        if step % opts.ckpt_interval_steps == 0 or step == opts.max_steps:
            paused = time.perf_counter()
            dist.check_in_sync(G, device, "generator")
            rng = _rng_tensors(dist, device, data_gen)
            if dist.main:
                _save(ckpt_dir, step, G, D, ema, opt_G, opt_D, rng, signature, opts, dist, train_seconds)
                save_generator(ckpt_dir, exported, step=step, ema=ema is not None, **opts.metadata)
                with torch.random.fork_rng(devices=[device] if cuda else []):   # leave training RNG untouched
                    clips = exported.sample(len(sample_names), sample_labels,
                                            generator=torch.Generator(device).manual_seed(opts.seed))
                log.samples(step, clips, sample_names, G.sample_rate)
            dist.barrier()
            tick += time.perf_counter() - paused         # steps_per_s counts training only
    if log:
        log.close()
    dist.barrier()
    return ckpt_dir


def _save(ckpt_dir, step, G, D, ema, opt_G, opt_D, rng, signature, opts, dist, train_seconds) -> None:
    tensors = {**st.prefixed("G", G.state_dict()), **st.prefixed("D", D.state_dict()), **rng}
    if ema is not None:
        tensors.update(st.prefixed("G_ema", ema.state_dict()))
    g_tensors, g_meta = st.flatten_optimizer(opt_G, "opt_G")
    d_tensors, d_meta = st.flatten_optimizer(opt_D, "opt_D")
    tensors.update(g_tensors)
    tensors.update(d_tensors)
    meta = {"signature": signature, "opt_G": g_meta, "opt_D": d_meta, "world_size": dist.world_size,
            "train_seconds": train_seconds, "max_steps": opts.max_steps}
    st.save_state(ckpt_dir, step, tensors, meta, keep=opts.keep_checkpoints)
