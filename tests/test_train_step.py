"""The training step of issue 10 (no host sync, static shapes, compile) and the loop's clean stop (issue 15).

- the step (``ganaug.train.step.GanStep``) computes the losses and gradients of the plain
  WGAN-GP step (written out here as the loop had it) on the same fixed batch;
- ``torch._dynamo.explain`` finds no graph break in the critic's forward, the compiled step (G's forward
  and D's scoring through ``aot_eager``: AOTAutograd without a C++ toolchain) matches eager, and a part
  that fails to compile falls back to eager with one warning (issue 22);
- static-shape phase shuffle equals WaveGAN's one-example-at-a-time shift and draws uniformly from [-n, n];
- SIGINT/SIGTERM during ``ganaug train`` checkpoint, print how to resume, exit 130/143 without a traceback,
  and the resumed run is bit-exact; the loop leaves torch's global RNG and the CUDA flags as it found them.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
import torch._dynamo
from safetensors.torch import load_file

from ganaug.functional import draw_shifts, phase_shuffle
from ganaug.models import WaveGANDiscriminator, WaveGANGenerator
from ganaug.train.loop import _cuda_flags, train_gan
from ganaug.train.options import TrainOptions
from ganaug.train.state import list_states
from ganaug.train.step import GanStep

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = ["yes", "no"]


@pytest.fixture(scope="module")
def clips(sc_root) -> tuple[torch.Tensor, torch.Tensor]:
    """24 real clips of two keywords, padded to 16384 samples."""
    from ganaug.data import KeywordDataset

    ds = KeywordDataset(sc_root, labels=LABELS, num_samples=16384, split="train")
    rows = list(range(0, len(ds), max(1, len(ds) // 24)))[:24]
    items = [ds[i] for i in rows]
    return torch.stack([it["wav"] for it in items]), torch.tensor([it["label"] for it in items])


def build(clips, **options):
    torch.manual_seed(0)
    G = WaveGANGenerator(model_dim=4, label_names=LABELS)
    D = WaveGANDiscriminator(model_dim=4, label_names=LABELS)
    torch.nn.init.normal_(D.embed.weight, std=0.1)        # make the projection term matter
    opts = TrainOptions(batch_size=6, **options)
    return GanStep(G, D, opts, "cpu", clips[0], clips[1], 6, seed=3)


def grads(module) -> list[torch.Tensor]:
    return [p.grad.clone() for p in module.parameters()]


def close(a, b, tol=1e-4) -> bool:
    return all(torch.allclose(x, y, rtol=tol, atol=tol * max(1.0, float(y.abs().max()))) for x, y in zip(a, b))


def test_new_step_computes_the_plain_wgan_gp_losses_and_gradients(clips):
    run = build(clips)
    G, D, n = run.G, run.D, run.batch
    batch = run.draw_critic_batch(regularize=True)
    loss, terms, _ = run.critic_losses(batch, penalties=True)
    D.zero_grad()
    loss.backward()
    new_d = grads(D)

    # the plain step, as train/loop.py had it: separate D calls, x_hat.requires_grad_, float32 GP
    real, y, z, eps, sh = batch["real"], batch["y"], batch["z"], batch["eps"], batch["shifts"]
    with torch.no_grad():
        fake = G(z, y)
    d_wgan = D(fake, y, shifts=sh[:, n:]).mean() - D(real, y, shifts=sh[:, :n]).mean()
    x_hat = (eps.view(-1, 1) * real + (1 - eps.view(-1, 1)) * fake).requires_grad_(True)
    (g,) = torch.autograd.grad(D(x_hat, y, shifts=batch["gp_shifts"]).sum(), x_hat, create_graph=True)
    d_gp = (g.flatten(1).norm(dim=1) - 1).square().mean()
    D.zero_grad()
    (d_wgan + 10 * d_gp).backward()
    assert torch.allclose(terms["D/wgan"], d_wgan, rtol=1e-4, atol=1e-6)
    assert torch.allclose(terms["D/gp"], d_gp, rtol=1e-4, atol=1e-6)
    assert close(new_d, grads(D))
    assert float(d_gp.detach()) > 0 and any(float(t.abs().max()) > 0 for t in new_d)

    gbatch = run.draw_generator_batch()
    g_loss, g_terms = run.generator_losses(gbatch)
    G.zero_grad()
    g_loss.backward()
    new_g = grads(G)
    G.zero_grad()
    (-D(G(gbatch["z"], gbatch["y"]), gbatch["y"], shifts=gbatch["shifts"]).mean()).backward()
    assert torch.allclose(g_terms["G/adv"], g_loss) and close(new_g, grads(G))


def test_generator_step_reads_no_audio(clips):
    run = build(clips)
    calls = []
    encode = run.G.encode
    run.G.encode = lambda wavs: calls.append(len(wavs)) or encode(wavs)
    run.generator_step()
    assert calls == []                                     # labels drawn directly, no real batch gathered
    run.critic_step()
    assert calls == [run.batch]


def test_critic_forward_has_no_graph_break(clips):
    run = build(clips)
    D, n = run.D, 6
    x, y = clips[0][:n], clips[1][:n]
    shifts = draw_shifts(2, (D.shuffle_layers, n), torch.Generator().manual_seed(0))
    torch._dynamo.reset()
    forward = torch._dynamo.explain(lambda x, y, s: D(x, y, shifts=s))(x, y, shifts)
    assert forward.graph_break_count == 0 and forward.graph_count == 1, forward.break_reasons


def test_compiled_step_matches_eager(clips):
    eager = build(clips)
    compiled = GanStep(*_copies(eager), TrainOptions(batch_size=6, compile="default"), "cpu", clips[0], clips[1], 6,
                       seed=3, compile_backend="aot_eager")
    torch._dynamo.reset()
    for run in (eager, compiled):
        run.critic_step()
        run.generator_step()
    a, b = eager.pop_stats(), compiled.pop_stats()
    assert a.keys() == b.keys() and all(torch.allclose(a[k], b[k], rtol=1e-4, atol=1e-6) for k in a)
    assert close([p.detach() for p in eager.D.parameters()], [p.detach() for p in compiled.D.parameters()])
    assert close([p.detach() for p in eager.G.parameters()], [p.detach() for p in compiled.G.parameters()])


def _copies(run):
    import copy

    G, D = copy.deepcopy(run.G), copy.deepcopy(run.D)
    return G, D


# -- phase shuffle with static shapes ------------------------------------------------------------------
def test_static_phase_shuffle_equals_the_data_dependent_one_and_draws_uniformly():
    x = torch.randn(200, 3, 40)
    shifts = draw_shifts(2, (200,), torch.Generator().manual_seed(1))

    def one(example, s: int):   # WaveGAN's phase shuffle, one example at a time: pad one side by reflection, crop
        if s > 0:
            return torch.nn.functional.pad(example, (s, 0), mode="reflect")[..., :40]
        if s < 0:
            return torch.nn.functional.pad(example, (0, -s), mode="reflect")[..., -s:]
        return example

    expected = torch.stack([one(x[b], int(s)) for b, s in enumerate(shifts)])
    assert torch.equal(phase_shuffle(x, shifts, 2), expected)     # static shapes (the training path)
    many = draw_shifts(2, (50_000,), torch.Generator().manual_seed(2))
    counts = torch.bincount(many + 2, minlength=5).float() / many.numel()
    assert many.min() == -2 and many.max() == 2 and torch.allclose(counts, torch.full((5,), 0.2), atol=0.01)


# -- the loop: global RNG, CUDA flags ------------------------------------------------------------------------
def test_training_leaves_the_global_rng_and_backend_flags_alone(clips, tmp_path):
    torch.manual_seed(123)
    before = torch.get_rng_state()
    G = WaveGANGenerator(model_dim=4, label_names=LABELS)
    D = WaveGANDiscriminator(model_dim=4, label_names=LABELS)
    before = torch.get_rng_state()
    opts = TrainOptions(batch_size=4, max_steps=2, d_steps_per_g_step=1, ckpt_interval_steps=2, progress=False,
                        tensorboard=False, samples_per_label=1)
    train_gan(G, D, clips[0], clips[1], tmp_path / "run", opts)
    assert torch.equal(torch.get_rng_state(), before)      # every draw came from the run's own generator

    flags = (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32, torch.backends.cudnn.benchmark)
    with _cuda_flags(True, tf32=not flags[0]):
        assert torch.backends.cudnn.benchmark and torch.backends.cuda.matmul.allow_tf32 == (not flags[0])
    assert (torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32,
            torch.backends.cudnn.benchmark) == flags


# -- Ctrl-C / SIGTERM ----------------------------------------------------------------------------------------
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def cmd_args(mini_sc, tmp_path_factory) -> list[str]:
    cache = tmp_path_factory.mktemp("cache")
    return ["train", "wavegan_conditional", f"--data_folder={mini_sc}", "--labels=yes,no", "--model_dim=8",
            "--batch_size=4", "--d_steps_per_g_step=2", "--device=cpu", "--num_threads=1", "--progress=False",
            "--tensorboard=False", f"--cache_dir={cache}", "--log_interval_steps=1", "--ckpt_interval_steps=1000",
            "--samples_per_label=1"]


def _interrupt(cmd: list[str], out: Path, sig: int, log: Path) -> tuple[int, str]:
    with open(log, "w") as f:
        proc = subprocess.Popen(cmd, stdout=f, stderr=subprocess.STDOUT, env=ENV)
        stats = out / "logs" / "stats.jsonl"
        deadline = time.monotonic() + 120
        while not (stats.is_file() and len(stats.read_text().splitlines()) >= 2):
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, "no 2 steps within 120 s"
            time.sleep(0.02)
        proc.send_signal(sig)
        code = proc.wait(timeout=120)
    return code, log.read_text()


@pytest.mark.parametrize("sig, code", [(signal.SIGINT, 130), (signal.SIGTERM, 143)])
def test_signal_checkpoints_says_how_to_resume_and_exits_cleanly(cmd_args, tmp_path, sig, code):
    from ganaug.cli import main as cli

    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganaug.cli", *cmd_args, f"--output_folder={out}", "--max_steps=200"]
    returncode, text = _interrupt(cmd, out, sig, tmp_path / "log.txt")
    assert returncode == code, text
    assert "Traceback" not in text and "KeyboardInterrupt" not in text
    assert "resume with the same command: python -m ganaug.cli train wavegan_conditional" in text
    steps = [s for s, _ in list_states(out)]
    assert len(steps) == 1 and 2 <= steps[0] < 200                     # the checkpoint of the step it stopped at
    if sig != signal.SIGINT:
        return
    stop = steps[0]
    resume = [*cmd_args, f"--output_folder={out}", f"--max_steps={stop + 2}"]
    assert cli(resume) == 0                                             # the same command resumes
    straight = tmp_path / "straight"
    assert cli([*cmd_args, f"--output_folder={straight}", f"--max_steps={stop + 2}"]) == 0
    final = f"train_state/step_{stop + 2:09d}/state.safetensors"
    a, b = load_file(str(out / final)), load_file(str(straight / final))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
