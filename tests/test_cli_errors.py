"""Every command's user error: one line on stderr, ``ganaug <command>: error: ...``, exit code 2, no traceback.

The cases of issues 12 (item 15) and 15 (item 10) run as real ``python -m ganaug.cli`` processes (and
the recipe script), started together so the suite pays for one torch import's wall time, not fifteen.
The other cases call ``ganaug.cli.main`` in this process.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from ganaug.checkpoint import save_generator
from ganaug.cli import main
from ganaug.models import WaveGANGenerator

REPO = Path(__file__).resolve().parents[1]
ENV = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}
NO_GPU = not torch.cuda.is_available()


def assert_one_line(returncode: int, err: str, command: str, *words: str) -> None:
    assert returncode == 2, (returncode, err)
    assert "Traceback" not in err and err.count("\n") == 1, err
    assert err.startswith(f"ganaug {command}: error: "), err
    for word in words:
        assert word in err, (word, err)


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory) -> Path:
    torch.manual_seed(0)
    return save_generator(tmp_path_factory.mktemp("g") / "cond", WaveGANGenerator(model_dim=8, label_names=["yes", "no"]))


def test_user_errors_of_every_command_in_real_processes(ckpt, mini_sc, tmp_path):
    missing, out = tmp_path / "missing", tmp_path / "out"
    huge = tmp_path / "huge.yaml"
    huge.write_text("base: wavegan_tiny\nmodel_dim: 100000\n")
    broken = tmp_path / "broken.yaml"
    broken.write_text("base: wavegan_tiny\nbetas: [0.5, 0.9\nseed: 1\n")
    wav = tmp_path / "text.wav"
    wav.write_bytes(b"RIFF\x00\x00\x00\x00WAVE")
    train = ("train", "wavegan_tiny", f"--data_folder={mini_sc}", f"--output_folder={out}")
    cases = {  # name: (argv, command, words the line must hold)
        "generate missing ckpt": (("generate", missing, "--per-label", "2", "--out", out), "generate", [str(missing)]),
        "generate --per-label 0": (("generate", ckpt, "--per-label", "0", "--out", out), "generate", ["--per-label"]),
        "generate --device gpu": (("generate", ckpt, "--per-label", "1", "--out", out, "--device", "gpu"), "generate",
                                  ["--device", "gpu", "cpu"]),
        "evaluate missing data": (("evaluate", ckpt, "--data", missing), "evaluate", ["--data", str(missing)]),
        "evaluate --num-clips 0": (("evaluate", ckpt, "--data_folder", mini_sc, "--num-clips", "0"), "evaluate",
                                   ["--num-clips"]),
        "report missing ckpt": (("report", missing, "--out", out), "report", [str(missing)]),
        "train --seed=abc": ((*train, "--seed=abc"), "train", ["--seed=abc", "an integer"]),
        "train --lr=abc": ((*train, "--lr=abc"), "train", ["--lr=abc", "a number"]),
        "train --betas=0.5": ((*train, "--betas=0.5"), "train", ["--betas=0.5", "a list"]),
        "train --model_dim=abc": ((*train, "--model_dim=abc"), "train", ["--model_dim=abc", "an integer"]),
        "model_dim: 100000": (("train", huge, f"--data={mini_sc}", f"--out={out}"), "train", ["model_dim=100000", "256"]),
        "broken YAML": (("train", broken, f"--data_folder={mini_sc}", f"--output_folder={out}"), "train",
                        [f"{broken}:3", "broken YAML", "flow sequence at line 2"]),
        "train text.wav": (("train", wav), "train", [str(wav), "not a YAML file", "wavegan_tiny"]),
        "recipe --lr=abc": ((f"--data_folder={mini_sc}", f"--output_folder={out}", "--lr=abc"), "kws", ["--lr=abc"]),
    }
    if NO_GPU:
        cases["evaluate --device cuda"] = (("evaluate", ckpt, "--data", mini_sc, "--device", "cuda"), "evaluate",
                                           ["--device", "--device=cpu"])
    procs = {}
    for name, (argv, _, _) in cases.items():
        script = [str(REPO / "recipes" / "speech_commands" / "train.py")] if name.startswith("recipe") else ["-m", "ganaug.cli"]
        procs[name] = subprocess.Popen([sys.executable, *script, *map(str, argv)], stdout=subprocess.PIPE,
                                       stderr=subprocess.PIPE, text=True, env=ENV)
    for name, proc in procs.items():
        _, err = proc.communicate(timeout=600)
        _, command, words = cases[name]
        assert_one_line(proc.returncode, err, command, *words)
    assert not out.exists()          # every error came before any work: nothing decoded, nothing written


def _main(capsys, *argv) -> tuple[int, str]:
    code = main([str(a) for a in argv])
    return code, capsys.readouterr().err


def test_more_user_errors_in_process(ckpt, mini_sc, tmp_path, capsys):
    missing, out = tmp_path / "missing", tmp_path / "out"
    assert_one_line(*_main(capsys, "generate", tmp_path, "--per-label", "1", "--out", out), "generate", str(tmp_path))
    assert_one_line(*_main(capsys, "evaluate", missing, "--data", mini_sc), "evaluate", str(missing))
    assert_one_line(*_main(capsys, "report", ckpt, "--output_folder", out, "--data", missing), "report", "--data")
    assert_one_line(*_main(capsys, "report", ckpt, "--out", out, "--per-label", "0"), "report", "--per-label")
    assert_one_line(*_main(capsys, "demo", "--data_folder", missing), "demo", "--data_folder", str(missing))
    train = ("train", "wavegan_tiny", f"--data_folder={mini_sc}", f"--output_folder={out}")
    assert_one_line(*_main(capsys, *train, "--max_stepz=3"), "train", "max_stepz", "known keys", "max_steps")
    assert_one_line(*_main(capsys, *train, "--device=gpu"), "train", "device='gpu'", "cpu")
    assert_one_line(*_main(capsys, "train", "no_such_preset"), "train", "no_such_preset", "packaged")
    assert_one_line(*_main(capsys, "train", "wavegan_tiny", f"--data_folder={missing}", f"--output_folder={out}"),
                    "train", "data_folder")
    if NO_GPU:
        assert_one_line(*_main(capsys, "kws", "kws", f"--data_folder={mini_sc}", f"--output_folder={out}",
                               "--device=cuda"), "kws", "--device=cpu")
    assert_one_line(*_main(capsys, "kws", "kws", f"--data_folder={mini_sc}", f"--output_folder={out}",
                           "--number_of_epochs=many"), "kws", "number_of_epochs", "an integer")
    assert_one_line(*_main(capsys, "ablate", "ablation_quick", f"--data_folder={mini_sc}", f"--output_folder={out}",
                           "--seeds=0"), "ablate", "seeds", "a list")
    assert_one_line(*_main(capsys, "ablate", "ablation_quick", f"--data_folder={mini_sc}", f"--output_folder={out}",
                           "--augmentations=[mixup]"), "ablate", "augmentations", "gan_filtered")
    assert not out.exists()
