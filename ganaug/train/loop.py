"""The training loop (WGAN-GP as WaveGAN trains, plus the options of ``TrainOptions``): one function, read top to bottom.

A *step* is one generator update, preceded by ``d_steps_per_g_step`` critic updates; it is
what the WaveGAN paper counts as an iteration. The maths of a step is in :mod:`ganaug.train.step`
(no host synchronisation: every random draw on the device); this module sets up, resumes, logs,
checkpoints and stops cleanly. The loop only calls the family interface of ``ganaug.models``
(``G(z, labels)``, ``G.encode``, ``G.fit_data``, ``G.sample``, ``D(x, labels)``), so SpecGAN-style
generators train here unchanged.

SIGINT (Ctrl-C) or SIGTERM while training: the current step finishes, a checkpoint is written,
one line says how to resume (the same command), and the process exits with 130 / 143 (no traceback).
The signals are blocked while the run computes and taken between steps (:mod:`ganaug.train.signals` says why).
"""

from __future__ import annotations

import contextlib
import shlex
import signal
import sys
import time
from pathlib import Path

import torch

from ganaug.checkpoint import save_generator
from ganaug.train import state as st
from ganaug.train.distributed import Dist
from ganaug.train.logs import RunLog, finite_or_raise
from ganaug.train.losses import gradient_penalty
from ganaug.train.options import TrainOptions
from ganaug.train.signals import StopRequest
from ganaug.train.step import GanStep

__all__ = ["TrainOptions", "train_gan", "gradient_penalty", "Interrupted"]


class Interrupted(SystemExit):
    """Training stopped by SIGINT/SIGTERM after writing a checkpoint; exit code 128 + signal number."""


def _rng_tensors(dist: Dist, device: torch.device, gen: torch.Generator) -> dict[str, torch.Tensor]:
    """Every process's training RNG state (collective under torchrun): ``rng.<rank>.data``, the
    device generator every step draws from. The global torch RNGs are neither used nor saved:
    restoring them on resume would change the caller's random state behind its back."""
    return {f"rng.{rank}.data": tensor for rank, tensor in enumerate(dist.gather(gen.get_state(), device))}


def _set_rng(tensors: dict, rank: int, device: torch.device, gen: torch.Generator) -> bool:
    if f"rng.{rank}.data" not in tensors:
        return False
    try:
        gen.set_state(tensors[f"rng.{rank}.data"].cpu())
    except RuntimeError:   # saved by a run on another device type: its stream cannot continue here
        return False
    return True


@contextlib.contextmanager
def _cuda_flags(cuda: bool, tf32: bool):
    """TF32 and cuDNN benchmark on for a CUDA run, restored to what they were afterwards."""
    if not cuda:
        yield
        return
    saved = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    torch.backends.cudnn.benchmark = True
    try:
        yield
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark = saved


def resume_command() -> str:
    """The command line that started this process, as the user would type it again."""
    argv = list(sys.argv)
    if argv and Path(argv[0]).name in ("cli.py", "__main__.py") and "ganaug" in Path(argv[0]).parts:
        argv = ["python", "-m", "ganaug.cli", *argv[1:]]
    elif argv:
        argv[0] = Path(argv[0]).name
    return " ".join(shlex.quote(a) for a in argv)


def _default_classifier(opts: TrainOptions, G) -> Path | None:
    """``aux_classifier``, else the reference classifier of the training data (``ganaug.models.classifier.reference_dir``)."""
    if opts.aux_classifier:
        return Path(opts.aux_classifier)
    fingerprint = opts.metadata.get("data_fingerprint")
    if fingerprint is None:
        return None
    from ganaug.models.classifier import reference_dir

    return reference_dir(str(fingerprint).split("/")[0], G.label_names, G.sample_rate)


def train_gan(generator, critic, wavs: torch.Tensor, labels: torch.Tensor | None, ckpt_dir: str | Path,
              opts: TrainOptions, device="cpu", dist: Dist | None = None) -> Path:
    """Train ``generator`` against ``critic`` on ``wavs`` ``(N, num_samples)`` and write ``ckpt_dir``.

    ``labels`` ``(N,)`` are indices into ``generator.label_names`` (conditional) or ``None``.
    ``generator`` and ``critic`` come freshly built (same seed on every process); if
    ``ckpt_dir`` holds a checkpoint, training resumes from its newest intact one. Returns
    ``ckpt_dir``, which then holds the exported generator of the last step. Raises
    :class:`Interrupted` (a ``SystemExit``) after checkpointing when SIGINT/SIGTERM arrives.
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
    cuda = device.type == "cuda"
    with _cuda_flags(cuda, opts.tf32), StopRequest() as stop:
        return _train(G, D, wavs, labels, ckpt_dir, opts, device, dist, conditional, stop)


def _train(G, D, wavs, labels, ckpt_dir, opts, device, dist, conditional, stop) -> Path:
    cuda = device.type == "cuda"
    data = wavs.to(device) if cuda else wavs          # on CPU, rows are read from the memory map per batch
    data_labels = labels.to(device) if labels is not None else None
    G.fit_data(data.split(1024))                      # data statistics in batches (no-op for WaveGAN); saved with G
    dist.broadcast_module(G)
    dist.broadcast_module(D)
    seed = opts.seed * 1_000_003 + dist.rank
    classifier = _default_classifier(opts, G) if opts.aux_weight and opts.aux == "frozen" else None
    try:
        run = GanStep(G, D, opts, device, data, data_labels, opts.batch_size // dist.world_size, seed, dist, classifier)
    except ValueError as err:   # an option that cannot work here: one line, named (ganaug train exits 2)
        from ganaug.config import HparamsError

        raise HparamsError(str(err)) from err
    for module in run.extra_modules().values():
        dist.broadcast_module(module)
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
        run.load_extra(tensors)
        if run.ema is not None:
            run.ema.load_state_dict(st.unprefixed("G_ema", tensors))
        st.unflatten_optimizer(run.opt_G, "opt_G", tensors, meta["opt_G"])
        st.unflatten_optimizer(run.opt_D, "opt_D", tensors, meta["opt_D"])
        exact = meta.get("world_size") == dist.world_size and _set_rng(tensors, dist.rank, device, run.gen)
        if not exact and dist.main:
            print(f"{ckpt_dir}: saved with {meta.get('world_size')} processes on another device or torch, resumed with "
                  f"{dist.world_size}: random streams restart from a seed, so the run is not bit-identical to an "
                  f"uninterrupted one")
        if not exact:
            run.gen.manual_seed(seed + 104_729 * meta["step"])
        step, train_seconds = meta["step"], meta.get("train_seconds", 0.0)
        run.critic_steps = step * opts.d_steps_per_g_step
        if exact:   # the stats row in progress, so the next row is the one an uninterrupted run writes
            run.totals, run.counts = st.unpack_running(tensors, meta, dist.rank, device)
        del tensors
    exported = run.ema if run.ema is not None else G
    if found is not None and dist.main:   # the exported generator matches the state training resumes from
        save_generator(ckpt_dir, exported, step=step, ema=run.ema is not None, **opts.metadata)
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

    def render_samples() -> None:
        with torch.random.fork_rng(devices=[device] if cuda else []):   # leave training RNG untouched
            clips = exported.sample(len(sample_names), sample_labels,
                                    generator=torch.Generator(device).manual_seed(opts.seed))
        log.samples(step, clips, sample_names, G.sample_rate)

    if log and step and log.samples_missing(step):    # a kill cut the samples of the resumed step short
        render_samples()

    def checkpoint() -> None:
        dist.check_in_sync(G, device, "generator")
        rng = _rng_tensors(dist, device, run.gen)
        running = st.pack_running(run.totals, run.counts, lambda t: dist.gather(t, device))
        if dist.main:
            _save(ckpt_dir, step, run, {**rng, **running[0]}, signature, opts, dist, train_seconds, running[1])
            save_generator(ckpt_dir, exported, step=step, ema=run.ema is not None, **opts.metadata)
            render_samples()
        dist.barrier()

    since, tick = 0, time.perf_counter()
    while step < opts.max_steps:
        for _ in range(opts.d_steps_per_g_step):
            run.critic_step()
        run.generator_step()
        step, since = step + 1, since + 1
        if log:
            log.advance()

        # -- stats: the only place a step's numbers are read back from the device ------------------------
        if step % opts.log_interval_steps == 0 or step == opts.max_steps:
            seconds = time.perf_counter() - tick
            train_seconds += seconds
            values = dist.mean(run.pop_stats())                # averaged over processes
            finite_or_raise(values, step, ckpt_dir)
            if log:
                log.stats(step, {**values, "steps_per_s": since / max(seconds, 1e-9), "train_seconds": train_seconds})
            since, tick = 0, time.perf_counter()

        # -- checkpoint: train_state first, then the exported generator, then samples ----------------
        signum = stop.requested(dist, device)
        if step % opts.ckpt_interval_steps == 0 or step == opts.max_steps or signum:
            paused = time.perf_counter()
            if signum and since:   # the steps since the last stats row count too
                train_seconds += paused - tick
                tick = paused
            checkpoint()
            tick += time.perf_counter() - paused         # steps_per_s counts training only
        if signum:
            name = signal.Signals(signum).name
            if log:
                log.close()
                print(f"ganaug train: {name} at step {step}: checkpoint written to {ckpt_dir}; resume with the same "
                      f"command: {resume_command()}", file=sys.stderr, flush=True)
            raise Interrupted(128 + signum)
    if log:
        log.close()
    dist.barrier()
    return ckpt_dir


def _save(ckpt_dir, step, run: GanStep, rng, signature, opts, dist, train_seconds, running: dict) -> None:
    tensors = {**st.prefixed("G", run.G.state_dict()), **st.prefixed("D", run.D.state_dict()), **rng,
               **run.extra_tensors()}
    for prefix, module in run.extra_modules().items():
        tensors.update(st.prefixed(prefix, module.state_dict()))
    if run.ema is not None:
        tensors.update(st.prefixed("G_ema", run.ema.state_dict()))
    g_tensors, g_meta = st.flatten_optimizer(run.opt_G, "opt_G")
    d_tensors, d_meta = st.flatten_optimizer(run.opt_D, "opt_D")
    tensors.update(g_tensors)
    tensors.update(d_tensors)
    meta = {"signature": signature, "opt_G": g_meta, "opt_D": d_meta, "world_size": dist.world_size,
            "train_seconds": train_seconds, "max_steps": opts.max_steps, **running}
    st.save_state(ckpt_dir, step, tensors, meta, keep=opts.keep_checkpoints)
