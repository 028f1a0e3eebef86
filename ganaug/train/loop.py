"""The training loop (WGAN-GP as WaveGAN trains, plus the options of ``TrainOptions``), read top to bottom:
``train_gan`` sets up (:func:`_setup`), resumes (:func:`_resume`), then steps, logging stats
(:func:`_log_stats`) and writing checkpoints (:class:`_Checkpoints`) at their intervals, and stops cleanly.

A *step* is one generator update, preceded by ``d_steps_per_g_step`` critic updates; it is
what the WaveGAN paper counts as an iteration. The maths of a step is in :mod:`ganaug.train.step`
(no host synchronisation: every random draw on the device). The loop only calls the family interface of ``ganaug.models``
(``G(z, labels)``, ``G.encode``, ``G.fit_data``, ``G.sample``, ``D(x, labels)``), so SpecGAN-style
generators train here unchanged.

SIGINT (Ctrl-C) or SIGTERM while training: the signals are blocked while the run computes and taken
between steps (:mod:`ganaug.train.signals` says why); the loop sees one after the current step (under
torchrun, at the next log interval: the processes agree by one all-reduce, so a step never waits on the
host), writes a checkpoint, says how to resume (the same command), and the process exits with 130 / 143
(no traceback). A resumed run continues the stats row in progress and re-renders the samples a kill cut short.
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
from ganaug.train.options import TrainOptions
from ganaug.train.signals import StopRequest
from ganaug.train.step import GanStep

__all__ = ["TrainOptions", "train_gan", "Interrupted"]


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
    if generator.label_names is not None and labels is None:
        raise ValueError("a conditional generator needs the clips' labels")
    if len(wavs) == 0:
        raise ValueError(f"{ckpt_dir}: no training clips")
    if opts.batch_size % dist.world_size:
        raise ValueError(f"batch_size={opts.batch_size} must divide evenly over {dist.world_size} processes")
    with _cuda_flags(device.type == "cuda", opts.tf32), StopRequest() as stop:
        run = _setup(generator.to(device).train(), critic.to(device).train(), wavs, labels, opts, device, dist)
        return _train(run, ckpt_dir, opts, device, dist, stop)


def _setup(G, D, wavs, labels, opts: TrainOptions, device, dist: Dist) -> GanStep:
    """The step of this process: data placed, G's data statistics fitted, weights equal on every process."""
    data = wavs.to(device) if device.type == "cuda" else wavs   # on CPU, rows are read from the memory map per batch
    data_labels = labels.to(device) if labels is not None else None
    G.fit_data(data.split(1024))                      # data statistics in batches (no-op for WaveGAN); saved with G
    dist.broadcast_module(G)
    dist.broadcast_module(D)
    classifier = _default_classifier(opts, G) if opts.aux_weight and opts.aux == "frozen" else None
    try:
        run = GanStep(G, D, opts, device, data, data_labels, opts.batch_size // dist.world_size,
                      _seed(opts, dist), dist, classifier)
    except ValueError as err:   # an option that cannot work here: one line, named (ganaug train exits 2)
        from ganaug.config import HparamsError

        raise HparamsError(str(err)) from err
    for module in run.extra_modules().values():
        dist.broadcast_module(module)
    return run


def _seed(opts: TrainOptions, dist: Dist) -> int:
    return opts.seed * 1_000_003 + dist.rank


def _resume(run: GanStep, ckpt_dir: Path, signature: dict, opts: TrainOptions, device, dist: Dist) -> tuple[int, float]:
    """``(step, train_seconds)`` of the newest intact checkpoint, loaded into ``run`` (``(0, 0.0)``: none)."""
    if dist.main:
        st.remove_partial(ckpt_dir)
    dist.barrier()
    found = st.load_latest(ckpt_dir, device="cpu", quarantine=dist.main)
    if found is None:
        return 0, 0.0
    tensors, meta = found
    st.check_signature(meta["signature"], signature, ckpt_dir)
    step = meta["step"]
    run.load_state(tensors, meta, step)
    exact = meta.get("world_size") == dist.world_size and _set_rng(tensors, dist.rank, device, run.gen)
    if not exact:
        if dist.main:
            print(f"{ckpt_dir}: saved with {meta.get('world_size')} processes on another device or torch, resumed with "
                  f"{dist.world_size}: random streams restart from a seed, so the run is not bit-identical to an "
                  f"uninterrupted one")
        run.gen.manual_seed(_seed(opts, dist) + 104_729 * step)
    else:   # the stats row in progress, so the next row is the one an uninterrupted run writes
        run.totals, run.counts = st.unpack_running(tensors, meta, dist.rank, device)
    if dist.main:   # the exported generator matches the state training resumes from
        save_generator(ckpt_dir, run.exported, step=step, ema=run.ema is not None, **opts.metadata)
    dist.barrier()
    return step, meta.get("train_seconds", 0.0)


def _train(run: GanStep, ckpt_dir: Path, opts: TrainOptions, device, dist: Dist, stop: StopRequest) -> Path:
    signature = st.run_signature(opts, run.G, run.D)
    step, train_seconds = _resume(run, ckpt_dir, signature, opts, device, dist)
    if step >= opts.max_steps:
        if dist.main:
            print(f"{ckpt_dir}: already trained to step {step} (max_steps={opts.max_steps}); "
                  f"raise --max_steps to train on", file=sys.stderr)
        return ckpt_dir
    log = RunLog(ckpt_dir, step, opts.max_steps, opts.name, opts.progress, opts.tensorboard) if dist.main else None
    if log and step:
        log.message(f"{ckpt_dir}: resumed at step {step}")
    checkpoints = _Checkpoints(ckpt_dir, run, opts, signature, device, dist, log)
    if log and step and log.samples_missing(step):    # a kill cut the samples of the resumed step short
        checkpoints.render_samples(step)
    since, tick = 0, time.perf_counter()
    while step < opts.max_steps:
        for _ in range(opts.d_steps_per_g_step):
            run.critic_step()
        run.generator_step()
        step, since = step + 1, since + 1
        if log:
            log.advance()
        at_log = step % opts.log_interval_steps == 0 or step == opts.max_steps
        if at_log:
            seconds = time.perf_counter() - tick
            train_seconds += seconds
            _log_stats(run, log, dist, step, ckpt_dir, since / max(seconds, 1e-9), train_seconds)
            since, tick = 0, time.perf_counter()
        signum = stop.requested(dist, device) if at_log or not dist.active else 0
        if step % opts.ckpt_interval_steps == 0 or step == opts.max_steps or signum:
            paused = time.perf_counter()
            if signum and since:   # the steps since the last stats row count too
                train_seconds, tick = train_seconds + paused - tick, paused
            checkpoints.write(step, train_seconds)
            tick += time.perf_counter() - paused         # steps_per_s counts training only
        if signum:
            _stop(signum, step, ckpt_dir, log)
    if log:
        log.close()
    dist.barrier()
    return ckpt_dir


def _log_stats(run: GanStep, log: RunLog | None, dist: Dist, step: int, ckpt_dir: Path, steps_per_s: float,
               train_seconds: float) -> None:
    """One stats row: the only place a step's numbers are read back from the device (averaged over processes)."""
    values = dist.mean(run.pop_stats())
    finite_or_raise(values, step, ckpt_dir)
    if log:
        log.stats(step, {**values, "steps_per_s": steps_per_s, "train_seconds": train_seconds})


def _stop(signum: int, step: int, ckpt_dir: Path, log: RunLog | None) -> None:
    """After the checkpoint of a signal: one line saying how to resume, then exit 128 + signal."""
    if log:
        log.close()
        print(f"ganaug train: {signal.Signals(signum).name} at step {step}: checkpoint written to {ckpt_dir}; resume "
              f"with the same command: {resume_command()}", file=sys.stderr, flush=True)
    raise Interrupted(128 + signum)


class _Checkpoints:
    """Writes one checkpoint: ``train_state`` first, then the exported generator, then the samples (fixed
    latents, so they are comparable across steps)."""

    def __init__(self, ckpt_dir: Path, run: GanStep, opts: TrainOptions, signature: dict, device, dist: Dist,
                 log: RunLog | None):
        self.ckpt_dir, self.run, self.opts, self.signature = ckpt_dir, run, opts, signature
        self.device, self.dist, self.log = device, dist, log
        G = run.G
        names = list(G.label_names or [opts.metadata.get("keyword", "sample")])
        self.sample_names = [n for n in names for _ in range(opts.samples_per_label)]
        self.sample_labels = self.sample_names if G.label_names is not None else None

    def write(self, step: int, train_seconds: float) -> None:
        run, dist, opts = self.run, self.dist, self.opts
        dist.check_in_sync(run.G, self.device, "generator")
        rng = _rng_tensors(dist, self.device, run.gen)
        running, counts = st.pack_running(run.totals, run.counts, lambda t: dist.gather(t, self.device))
        if dist.main:
            tensors, meta = run.state_tensors()
            meta.update(signature=self.signature, world_size=dist.world_size, train_seconds=train_seconds,
                        max_steps=opts.max_steps, **counts)
            st.save_state(self.ckpt_dir, step, {**tensors, **rng, **running}, meta, keep=opts.keep_checkpoints)
            save_generator(self.ckpt_dir, run.exported, step=step, ema=run.ema is not None, **opts.metadata)
            self.render_samples(step)
        dist.barrier()

    def render_samples(self, step: int) -> None:
        run, opts = self.run, self.opts
        devices = [self.device] if self.device.type == "cuda" else []
        with torch.random.fork_rng(devices=devices):   # leave training RNG untouched
            clips = run.exported.sample(len(self.sample_names), self.sample_labels,
                                        generator=torch.Generator(self.device).manual_seed(opts.seed))
        self.log.samples(step, clips, self.sample_names, run.G.sample_rate)
