"""Issue 24.4: the label filter works from a client's folder, wherever the training data went.

A generator trained by `ganaug train` from a relative --data_folder stores it absolute; when that
folder is not there (moved, another machine, an older checkpoint's relative path), every command
that may train the default filter takes --data_folder, checked to hold the generator's TRAIN split.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest

from ganaug.augment.filter import default_filter_dir, filter_config
from ganaug.cli import main as cli_main
from ganaug.kws.generate import filter_classifier_for, filter_for_config

TINY = {"number_of_epochs": 1, "batch_size": 8, "channels": 8, "num_blocks": 1}   # a filter classifier, small for CI


@pytest.fixture(scope="module")
def moved(tmp_path_factory, mini_sc):
    """A generator trained (2 steps, d=8) from the relative folder ``data/sc``, whose data then moved away."""
    root = tmp_path_factory.mktemp("anywhere")
    shutil.copytree(mini_sc, root / "data" / "sc")
    with pytest.MonkeyPatch.context() as patch:
        patch.chdir(root)
        assert cli_main(["train", "wavegan_conditional", "--data_folder=data/sc", "--output_folder=runs/cond",
                         "--labels=yes,no", "--model_dim=8", "--max_steps=2", "--batch_size=4", "--device=cpu",
                         "--ckpt_interval_steps=2", "--progress=False", "--tensorboard=False",
                         f"--cache_dir={root / 'cache'}"]) == 0
    config = json.loads((root / "runs/cond/config.json").read_text())
    stored = Path(config["data"]["data_folder"])
    assert stored.is_absolute() and stored == (root / "data" / "sc").resolve()   # absolute in new checkpoints
    (root / "data" / "sc").rename(root / "elsewhere")
    return root


def test_generate_asks_for_the_data_and_checks_it_is_the_training_split(moved, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)   # a client's folder
    ckpt = str(moved / "runs/cond")
    assert cli_main(["generate", ckpt, "--per-label", "1", "--out", "bank", "--min_confidence", "0.5"]) == 2
    assert "is not here" in capsys.readouterr().err.splitlines()[-1] and not Path("bank").exists()
    other = tmp_path / "other"
    shutil.copytree(moved / "elsewhere", other)
    for f in sorted((other / "no").glob("*.flac"))[:3]:   # another TRAIN split (a few clips fewer)
        f.unlink()
    assert cli_main(["generate", ckpt, "--per-label", "1", "--out", "bank", "--min_confidence", "0.5",
                     "--data_folder", str(other)]) == 2
    assert "is not the one the generator was trained on" in capsys.readouterr().err
    assert cli_main(["generate", ckpt, "--per-label", "1", "--out", "bank", "--data_folder", str(other)]) == 2
    assert "does nothing without --min_confidence" in capsys.readouterr().err


def test_the_filter_trains_on_the_given_folder_and_generate_finds_it(moved, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    monkeypatch.chdir(tmp_path)
    config = json.loads((moved / "runs/cond/config.json").read_text())
    folder = filter_for_config(config, "cpu", data_folder=moved / "elsewhere", progress=False, overrides=TINY)
    assert folder == default_filter_dir(filter_config(config))
    assert json.loads((folder / "config.json").read_text())["data"] == str((moved / "elsewhere").resolve())
    assert cli_main(["generate", str(moved / "runs/cond"), "--per-label", "2", "--out", "bank", "--min_confidence",
                     "0.01", "--data_folder", str(moved / "elsewhere"), "--device", "cpu"]) == 0
    assert "acceptance at min_confidence=0.01" in capsys.readouterr().out
    # the bank finds its generator's filter (what a kws run or an ablation given a bank uses by default)
    assert filter_classifier_for(Path("bank"), "cpu", progress=False) == folder
