"""A fresh machine: the install's pins and ranges, a torchaudio that cannot load, ``device: auto``, lazy imports,
and errors on a line of their own."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from ganaug.env import TESTED, fix_command, resolve_device
from ganaug.errors import run_command

REPO = Path(__file__).resolve().parents[1]


def _constraints() -> dict[str, str]:
    pins = {}
    for line in (REPO / "constraints.txt").read_text().splitlines():
        if line.strip() and not line.startswith("#"):
            name, _, version = line.partition("==")
            pins[name.strip().lower()] = version.strip()
    return pins


def test_constraints_pin_the_tested_pair_and_pyproject_states_ranges():
    pins = _constraints()
    assert {k: pins[k] for k in TESTED} == TESTED                      # one source of truth for the error's advice
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    deps = project["dependencies"] + [d for extra in project["optional-dependencies"].values() for d in extra]
    assert not [d for d in deps if "==" in d], "pyproject states ranges; exact pins live in constraints.txt"
    from packaging.requirements import Requirement

    for dep in project["dependencies"]:
        req = Requirement(dep)
        if req.name.lower() in pins:        # every range admits the tested version
            assert req.specifier.contains(pins[req.name.lower()], prereleases=True), dep
    assert not Requirement(next(d for d in deps if d.startswith("torchaudio"))).specifier.contains("2.11.1")
    # the README's set-up commands and .ci/run install with the constraints
    readme = (REPO / "README.md").read_text()
    assert '.venv/bin/pip install -c constraints.txt -e . && .venv/bin/ganaug demo' in readme
    assert '.venv/bin/pip install -c constraints.txt -e ".[test]" && .venv/bin/python -m pytest -q tests' in readme
    assert "-c constraints.txt" in (REPO / ".ci" / "run").read_text()


def test_a_torchaudio_that_cannot_load_stops_every_command_with_one_line(tmp_path):
    """What pip's pairing of torch 2.11.0 with torchaudio 2.11.1 does: ``import torchaudio`` raises OSError."""
    fake = tmp_path / "site" / "torchaudio"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text('raise OSError("/x/lib/libtorchaudio.so: undefined symbol: '
                                      'torch_exception_get_what_without_backtrace")\n')
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}
    for args in (["kws", "kws", f"--data_folder={tmp_path}", f"--output_folder={tmp_path / 'out'}"],
                 ["demo", "--data_folder", str(tmp_path), "--output_folder", str(tmp_path / "demo")]):
        done = subprocess.run([sys.executable, "-m", "ganaug.cli", *args], env=env, capture_output=True, text=True,
                              timeout=120)
        assert done.returncode == 2, done.stderr
        assert done.stderr.count("\n") == 1 and "Traceback" not in done.stderr
        assert re.search(r"torchaudio \S+ cannot load with torch \S+ \(.*undefined symbol", done.stderr)
        assert fix_command() in done.stderr
    assert not (tmp_path / "out").exists() and not (tmp_path / "demo").exists()       # stopped before any work
    # `python -m ganaug.env` (what .ci/run runs first) says the same
    done = subprocess.run([sys.executable, "-m", "ganaug.env"], env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 2 and fix_command() in done.stderr


def test_env_check_runs_torchaudios_compiled_ops():
    done = subprocess.run([sys.executable, "-m", "ganaug.env"], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert f"torch {TESTED['torch']}" in done.stdout and f"torchaudio {TESTED['torchaudio']}" in done.stdout
    assert "torchaudio runs: resample (1, 8000), Fbank (1, 101, 40), lfilter (1, 16000)" in done.stdout


def test_generating_needs_none_of_the_training_stack(weak_generator):
    """A plugin inside someone's pipeline: GanAugment and load_generator import no SpeechBrain, datasets,
    TensorBoard or matplotlib."""
    code = f"""
import sys, torch
from ganaug import GanAugment, load_generator
G = load_generator({str(weak_generator)!r})
assert G.sample(2, labels=["yes", "no"]).shape == (2, 16384)
aug = GanAugment({str(weak_generator)!r}, p=1.0, label_names=["yes", "no"]).train()
wavs, labels = aug(torch.zeros(2, 16000), torch.tensor([0, 1]))
assert wavs.abs().sum() > 0
print(sorted(m for m in ("speechbrain", "datasets", "tensorboard", "matplotlib") if m in sys.modules))
"""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": str(REPO)})
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"


def test_device_auto_is_said_once(capsys, monkeypatch):
    import torch

    assert resolve_device("cpu") == "cpu" and resolve_device("cuda:1") == "cuda:1"
    capsys.readouterr()
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve_device("auto") == "cpu" and resolve_device(None, say=False) == "cpu"
    assert capsys.readouterr().out == "device: cpu (auto: no CUDA device visible to torch)\n"


def test_kws_and_generate_default_to_auto_and_say_it(mini_sc, weak_generator, tmp_path, capsys, monkeypatch,
                                                     one_thread):
    from ganaug.cli import main

    env = {**os.environ, "PYTHONPATH": str(REPO), "CUDA_VISIBLE_DEVICES": ""}
    done = subprocess.run([sys.executable, "-m", "ganaug.cli", "kws", "kws", f"--data_folder={mini_sc}",
                           f"--output_folder={tmp_path / 'kws'}", "--labels=yes,no", "--number_of_epochs=1",
                           "--channels=8", "--num_blocks=1", "--progress=False", "--num_threads=1"],
                          env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr
    assert done.stdout.count("device: cpu (auto: no CUDA device visible to torch)") == 1
    assert json.loads((tmp_path / "kws" / "results.json").read_text())["config"]["device"] == "cpu"
    assert (tmp_path / "kws" / "hparams.yaml").read_text().count("device: auto") == 1   # the resolved YAML as given
    import torch

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    capsys.readouterr()
    assert main(["generate", str(weak_generator), "--per-label", "1", "--out", str(tmp_path / "bank")]) == 0
    assert capsys.readouterr().out.count("device: cpu (auto: no CUDA device visible to torch)\n") == 1


def test_an_error_starts_a_line_of_its_own_after_a_progress_bar(capsys):
    from tqdm.auto import tqdm

    def dies_mid_bar():
        bar = tqdm(total=100, desc="train")
        bar.update(37)
        raise ValueError("samples/step_100.png: could not render the spectrogram")

    assert run_command("ganaug train", dies_mid_bar) == 2
    err = capsys.readouterr().err
    last = err.split("\n")[-2] if err.endswith("\n") else err
    assert re.fullmatch(r"ganaug train: error: samples/step_100\.png: could not render the spectrogram", last), err
