"""`ganaug train` on real keyword audio (the mini Speech Commands fixture), small model, few steps.

Covers: per-keyword and conditional runs through the CLI, losses finite and weights moving,
train split only, the checkpoint directory and load_generator, resume after SIGKILL being
bit-exact, damaged checkpoints falling back to an intact one, bad input, DDP with 2 CPU processes.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import soundfile as sf
import torch
from safetensors.torch import load_file

from ganaug.checkpoint import load_generator, read_config
from ganaug.cli import main as cli
from ganaug.data import KeywordDataset
from ganaug.train import build_models
from ganaug.train.state import flatten_optimizer, list_states, unflatten_optimizer

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


@pytest.fixture(scope="module")
def small(mini_sc, tmp_path_factory) -> list[str]:
    """Overrides of a tiny, fast run: d=8, batch 4, one CPU thread, no progress bar."""
    cache = tmp_path_factory.mktemp("clip_cache")
    return [f"--data_folder={mini_sc}", "--labels=yes,no", "--model_dim=8", "--batch_size=4",
            "--device=cpu", "--num_threads=1", "--progress=False", f"--cache_dir={cache}"]


def train(hparams: str, out: Path, args: list[str], *extra: str) -> int:
    return cli(["train", hparams, *args, f"--output_folder={out}", *extra])


def tensors(path: Path) -> dict[str, torch.Tensor]:
    return load_file(str(path))


def same(a: dict, b: dict) -> bool:
    return a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def stats(ckpt: Path) -> list[dict]:
    return [json.loads(line) for line in (ckpt / "logs" / "stats.jsonl").read_text().splitlines()]


# -- runs through the CLI --------------------------------------------------------------------------
def test_per_keyword_run_trains_one_generator_per_label(small, mini_sc, tmp_path):
    out = tmp_path / "run"
    assert train("wavegan", out, small, "--max_steps=3", "--ckpt_interval_steps=2", "--log_interval_steps=1") == 0
    assert "model_dim: 8" in (out / "hparams.yaml").read_text()           # resolved YAML in the run folder
    train_clips = KeywordDataset(mini_sc, labels=["yes", "no"], split="train").label_counts()
    all_clips = KeywordDataset(mini_sc, labels=["yes", "no"]).label_counts()
    for label in ("yes", "no"):
        ckpt = out / label
        config = read_config(ckpt)
        assert config["step"] == 3 and config["keyword"] == label and config["label_names"] is None
        assert config["data"]["split"] == "train" and config["data_fingerprint"]
        assert config["data"]["num_clips"] == train_clips[label] < all_clips[label]   # test speakers unseen
        rows = stats(ckpt)
        assert [r["step"] for r in rows] == [1, 2, 3]
        assert all(torch.isfinite(torch.tensor(v)) for r in rows for k, v in r.items() if k.startswith(("D/", "G/")))
        assert [s for s, _ in list_states(ckpt)] == [3, 2]
        initial, _ = build_models({"model": "wavegan", "model_dim": 8, "seed": 0}, None)
        trained = load_generator(ckpt)
        changed = [k for k, v in initial.state_dict().items() if not torch.equal(v, trained.state_dict()[k])]
        assert len(changed) == len(initial.state_dict())                   # every tensor moved
        clip, rate = sf.read(ckpt / "samples" / "step_000000003" / f"{label}_0.flac")
        assert rate == 16000 and clip.shape == (16384,)
        assert (ckpt / "samples" / "step_000000003.png").stat().st_size > 1000
        assert list((ckpt / "logs").glob("events.out.tfevents.*"))
        wavs = trained.sample(3, generator=torch.Generator().manual_seed(0))
        assert wavs.shape == (3, 16384) and wavs.abs().max() <= 1


def test_conditional_run_with_ema_and_load_generator(small, tmp_path):
    out = tmp_path / "cond"
    assert train(str(REPO / "hparams" / "wavegan_conditional.yaml"), out, small,
                 "--max_steps=2", "--ema_decay=0.5", "--d_steps_per_g_step=2") == 0
    config = read_config(out)
    assert config["label_names"] == ["yes", "no"] and config["ema"] is True
    assert config["training"]["d_steps_per_g_step"] == 2
    G = load_generator(out)
    assert G.label_names == ["yes", "no"] and G.sample_rate == 16000 and G.num_samples == 16384
    labels = ["yes", "no", "no", "yes"]
    a = G.sample(4, labels, generator=torch.Generator().manual_seed(3))
    b = G.sample(4, labels, generator=torch.Generator().manual_seed(3))
    assert a.shape == (4, 16384) and torch.equal(a, b)
    state = tensors(list_states(out)[0][1] / "state.safetensors")
    exported = tensors(out / "generator.safetensors")
    assert all(torch.equal(exported[k], state[f"G_ema.{k}"]) for k in exported)      # EMA weights exported
    assert not all(torch.equal(exported[k], state[f"G.{k}"]) for k in exported)
    assert "rng.0.data" in state and not any(k.endswith(".cpu") for k in state) and any(k.startswith("opt_D.") for k in state)


# -- resume ------------------------------------------------------------------------------------------
RESUME = ["--labels=yes", "--max_steps=12", "--ckpt_interval_steps=2", "--log_interval_steps=1", "--ema_decay=0.9"]


@pytest.fixture(scope="module")
def reference(small, tmp_path_factory) -> Path:
    """An uninterrupted run of the resume tests' command."""
    out = tmp_path_factory.mktemp("reference") / "run"
    assert train("wavegan", out, small, *RESUME) == 0
    return out / "yes"


def assert_same_run(ckpt: Path, reference: Path) -> None:
    assert same(tensors(ckpt / "generator.safetensors"), tensors(reference / "generator.safetensors"))
    final = "train_state/step_000000012/state.safetensors"
    assert same(tensors(ckpt / final), tensors(reference / final))     # D, both optimizers, EMA, RNG
    assert [r["step"] for r in stats(ckpt)] == list(range(1, 13))      # no step logged twice
    assert read_config(ckpt)["step"] == 12


def test_run_killed_with_sigkill_resumes_bit_exact(small, reference, tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "ganaug.cli", "train", "wavegan", *small, *RESUME, f"--output_folder={out}"]
    with open(tmp_path / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV)
        deadline = time.monotonic() + 120
        while not (out / "yes" / "train_state" / "step_000000004").exists():
            assert proc.poll() is None, (tmp_path / "log.txt").read_text()
            assert time.monotonic() < deadline, "no checkpoint at step 4 within 120 s"
            time.sleep(0.02)
        proc.send_signal(signal.SIGKILL)
        assert proc.wait() == -signal.SIGKILL                            # killed mid-run, not finished
    steps = [s for s, _ in list_states(out / "yes")]
    assert 4 <= steps[0] < 12
    assert train("wavegan", out, small, *RESUME) == 0                  # the same command again
    assert_same_run(out / "yes", reference)


def test_damaged_checkpoints_are_reported_and_an_older_one_is_used(small, reference, tmp_path):
    out = tmp_path / "run"
    shutil.copytree(reference.parent, out)
    ckpt = out / "yes"
    for folder in ("step_000000012", "step_000000010", "step_000000008"):
        assert (ckpt / "train_state" / folder).is_dir()
    newest = ckpt / "train_state" / "step_000000012" / "state.safetensors"
    newest.write_bytes(newest.read_bytes()[: newest.stat().st_size // 2])          # truncated
    middle = ckpt / "train_state" / "step_000000010" / "state.safetensors"
    data = bytearray(middle.read_bytes())
    data[-100] ^= 0xFF                                                               # one bit-flipped byte
    middle.write_bytes(bytes(data))
    with pytest.warns(UserWarning) as caught:
        assert train("wavegan", out, small, *RESUME) == 0
    messages = "\n".join(str(w.message) for w in caught)
    assert str(newest) in messages and str(middle) in messages
    assert "resuming" in messages and "step 8" in messages
    assert (ckpt / "train_state" / "step_000000012.damaged").is_dir()
    assert_same_run(ckpt, reference)                                     # retrained 8 -> 12 exactly


def test_changed_settings_are_refused_on_resume(small, reference, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(reference.parent, out)
    assert train("wavegan", out, small, *RESUME, "--lr=0.001") == 2
    err = capsys.readouterr().err
    assert "other settings" in err and "lr" in err and "--output_folder" in err
    assert train("wavegan", out, small, *RESUME) == 0                  # nothing left to do: same weights
    assert_same_run(out / "yes", reference)


# -- the pieces ----------------------------------------------------------------------------------------
def test_optimizer_state_round_trips_without_pickle():
    model = torch.nn.Linear(3, 2)
    opt = torch.optim.Adam(model.parameters(), lr=1e-3, betas=(0.5, 0.9))
    for _ in range(2):
        opt.zero_grad()
        model(torch.randn(4, 3)).square().sum().backward()
        opt.step()
    flat, meta = flatten_optimizer(opt, "opt")
    meta = json.loads(json.dumps(meta))                                  # as stored in state.json
    again = torch.optim.Adam(model.parameters(), lr=1.0)
    unflatten_optimizer(again, "opt", flat, meta)
    a, b = opt.state_dict(), again.state_dict()
    assert a["param_groups"] == b["param_groups"]
    assert all(same(a["state"][i], b["state"][i]) for i in a["state"])


@pytest.mark.parametrize("extra, fragment", [
    (["--data_folder=/nonexistent/speech"], "data_folder=/nonexistent/speech"),
    (["--labels=yes,maybe"], "maybe"),
    (["--labels="], "--labels="),
    (["--model=melgan"], "model='melgan'"),
    (["--batch_size=0"], "batch_size=0"),
    (["--num_samples=1000"], "num_samples=1000"),
    (["--no_such_key=1"], "no_such_key"),
])
def test_bad_input_is_one_clear_error(small, tmp_path, capsys, extra, fragment):
    assert train("wavegan", tmp_path / "run", small, "--max_steps=1", *extra) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganaug train: error:") and fragment in err


def test_cuda_without_a_gpu_says_use_cpu(small, tmp_path, capsys):
    if torch.cuda.is_available():
        assert train("wavegan", tmp_path / "run", small, "--max_steps=1", "--device=cuda", "--labels=yes") == 0
        return
    assert train("wavegan", tmp_path / "run", small, "--max_steps=1", "--device=cuda") == 2
    assert "--device=cpu" in capsys.readouterr().err


# -- DDP -----------------------------------------------------------------------------------------------
def test_ddp_with_two_cpu_processes(small, tmp_path):
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ganaug.cli", "train", "wavegan_conditional",
           *small, "--max_steps=3", "--ckpt_interval_steps=2", "--log_interval_steps=1", f"--output_folder={out}"]
    done = subprocess.run(cmd, capture_output=True, text=True, env=ENV, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "2 process(es)" in done.stderr
    config = read_config(out)
    assert config["step"] == 3 and config["training"]["world_size"] == 2
    assert [r["step"] for r in stats(out)] == [1, 2, 3]                 # one writer: each row once
    assert sorted(p.name for p in (out / "samples").iterdir()) == [
        "step_000000002", "step_000000002.png", "step_000000003", "step_000000003.png"]
    state = tensors(list_states(out)[0][1] / "state.safetensors")
    assert {"rng.0.data", "rng.1.data"} <= state.keys()                 # both processes' training RNG, for resume
    assert not [p for p in (out / "train_state").iterdir() if p.name.startswith(".")]
    G = load_generator(out)
    assert G.sample(2, ["yes", "no"]).shape == (2, 16384)


def test_ddp_stops_on_sigint_at_a_log_interval(small, tmp_path):
    """Under torchrun the stop flag is agreed on by one all-reduce per log interval (not per step, which would
    make every step wait for the host): SIGINT checkpoints at the next multiple of log_interval_steps."""
    out = tmp_path / "ddp"
    torchrun = Path(sys.executable).with_name("torchrun")
    cmd = [str(torchrun), "--standalone", "--nproc_per_node=2", "-m", "ganaug.cli", "train", "wavegan_conditional",
           *small, "--max_steps=100000", "--ckpt_interval_steps=100000", "--log_interval_steps=6",
           "--d_steps_per_g_step=1", "--samples_per_label=1", "--tensorboard=False", f"--output_folder={out}"]
    with open(tmp_path / "log.txt", "w") as log:
        proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT, env=ENV)
        deadline = time.monotonic() + 300
        while not ((out / "logs" / "stats.jsonl").is_file() and (out / "logs" / "stats.jsonl").read_text()):
            assert proc.poll() is None, (tmp_path / "log.txt").read_text()[-3000:]
            assert time.monotonic() < deadline, "no stats row within 300 s"
            time.sleep(0.05)
        # right after the row of step 6: SIGINT to both training processes (as torchrun passes on a Ctrl-C, without its 30 s grace period)
        workers = Path(f"/proc/{proc.pid}/task/{proc.pid}/children").read_text().split()
        assert len(workers) == 2
        for pid in workers:
            os.kill(int(pid), signal.SIGINT)
        proc.wait(timeout=300)
    text = (tmp_path / "log.txt").read_text()
    steps = [s for s, _ in list_states(out)]
    assert len(steps) == 1 and steps[0] % 6 == 0 and steps[0] > 6, text[-3000:]      # polled at step 12, not 7
    assert f"SIGINT at step {steps[0]}" in text and read_config(out)["step"] == steps[0]
