"""The reference classifier: a kws configuration, found at reference_dir or trained there once."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import killed_after_epoch

from ganaug.kws.reference import REFERENCE_OVERRIDES, ensure_reference, ensure_reference_for, reference_folder
from ganaug.models.classifier import REFERENCE_VERSION, load_classifier, reference_dir

pytestmark = pytest.mark.usefixtures("one_thread")

LABELS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]
TINY = {"number_of_epochs": 2, "batch_size": 8, "channels": 8, "num_blocks": 1}   # the recipe, small for CI


def test_reference_recipe_is_the_default_kws_recipe_with_classic_augmentation():
    from ganaug.config import load_hparams

    kws, _ = load_hparams("kws", {"data_folder": "x", "output_folder": "y"})
    reference, _ = load_hparams("kws", {"data_folder": "x", "output_folder": "y", **REFERENCE_OVERRIDES})
    assert reference["classic_augment"] and not kws["classic_augment"] and reference["task"] == "keywords"
    # the best recipe measured is kws.yaml's default: the reference changes nothing else
    same = ("model", "tau", "channels", "number_of_epochs", "steps_per_epoch", "lr", "weight_decay", "label_smoothing")
    assert {k: reference[k] for k in same} == {k: kws[k] for k in same}
    assert REFERENCE_VERSION >= 3          # bumped when the recipe became the converged one (issue 20)


def test_shared_generator_finds_the_folder_ensure_reference_computes(sc_root):
    """Contract 1/2: a generator's config.json (data_fingerprint, labels, rate) and the data folder
    itself name the same reference_dir, so the filter and the scorer meet there."""
    from ganaug.checkpoint import read_config

    config = read_config(sc_root.parents[1] / "generators" / "wavegan_sc10_h100_5k_ema")
    assert reference_folder(sc_root, config["label_names"]) == reference_dir(config["data_fingerprint"], LABELS)


def test_ensure_reference_trains_once_then_reuses(mini_sc, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    folder = ensure_reference(mini_sc, ["yes", "no"], device="cpu", progress=True, overrides=TINY)
    out = capsys.readouterr()
    assert "training the reference classifier" in out.out and "test accuracy" in out.out
    assert "reference classifier" in out.err and "valid_acc=" in out.err        # the per-epoch bar
    assert folder == reference_folder(mini_sc, ["yes", "no"]) and folder.is_relative_to(tmp_path / "cache")
    config = json.loads((folder / "config.json").read_text())
    assert config["role"] == "reference_classifier" and config["reference_version"] == REFERENCE_VERSION
    assert config["recipe"] == {**REFERENCE_OVERRIDES, **TINY} and config["recipe"]["classic_augment"]
    assert 0.0 <= config["test_acc"] <= 1.0 and config["num_test"] > 0 and 1 <= config["best_epoch"] <= 2
    model = load_classifier(folder)
    assert model.label_names == ["yes", "no"] and model.sample_rate == 16000
    assert model(torch.zeros(2, 16384)).shape == (2, 2)
    before = (folder / "classifier.safetensors").stat().st_mtime_ns
    assert ensure_reference(mini_sc, ["yes", "no"], device="cpu", overrides=TINY) == folder
    assert "training" not in capsys.readouterr().out
    assert (folder / "classifier.safetensors").stat().st_mtime_ns == before
    assert not folder.with_name(folder.name + ".training").exists()        # its checkpoints go once it is saved


def test_reference_killed_while_training_resumes_from_its_newest_epoch(mini_sc, tmp_path, capsys):
    with killed_after_epoch(1), pytest.raises(KeyboardInterrupt):
        ensure_reference(mini_sc, ["yes", "no"], folder=tmp_path / "ref", device="cpu", progress=False, overrides=TINY)
    assert not (tmp_path / "ref").exists() and (tmp_path / "ref.training" / "save").is_dir()
    capsys.readouterr()
    folder = ensure_reference(mini_sc, ["yes", "no"], folder=tmp_path / "ref", device="cpu", progress=False,
                              overrides=TINY)
    assert "reference classifier: resumed after epoch 1" in capsys.readouterr().out
    assert not (tmp_path / "ref.training").exists()
    # killed again, then asked for with another recipe: its checkpoints are a cache, so it starts over
    with killed_after_epoch(1), pytest.raises(KeyboardInterrupt):
        ensure_reference(mini_sc, ["yes", "no"], folder=tmp_path / "other", device="cpu", progress=False,
                         overrides=TINY)
    capsys.readouterr()
    ensure_reference(mini_sc, ["yes", "no"], folder=tmp_path / "other", device="cpu", progress=False,
                     overrides={**TINY, "seed": 1})
    assert "resumed" not in capsys.readouterr().out
    assert json.loads((tmp_path / "other" / "config.json").read_text())["recipe"]["seed"] == 1


def test_ensure_reference_for_reads_the_generator_config(mini_sc, tmp_path, monkeypatch):
    from ganaug.data import KeywordDataset

    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    fingerprint = KeywordDataset(mini_sc, labels=["yes", "no"], split="train").fingerprint()
    per_keyword = {"data": {"data_folder": str(mini_sc), "labels": ["yes", "no"], "speaker_fraction": 1.0,
                            "data_seed": 0}, "label_names": None, "sample_rate": 16000, "num_samples": 16384,
                   "data_fingerprint": f"{fingerprint}/yes"}
    folder = ensure_reference_for(per_keyword, device="cpu", progress=False, overrides=TINY)
    assert folder == reference_dir(fingerprint, ["yes", "no"]) == reference_folder(mini_sc, ["yes", "no"])
    assert load_classifier(folder).label_names == ["yes", "no"]
    # a moved data folder: one line naming it and the way out
    moved = {**per_keyword, "data": {**per_keyword["data"], "data_folder": str(tmp_path / "gone")}}
    assert ensure_reference_for(moved) == folder          # trained already: found without its data
    with pytest.raises(FileNotFoundError, match="gone.*--filter_classifier"):
        ensure_reference_for(moved, folder=tmp_path / "new")
    assert ensure_reference_for(moved, data_folder=mini_sc) == folder       # or say where it is now
    with pytest.raises(ValueError, match="data_fingerprint"):
        ensure_reference_for({"label_names": ["yes"]})


def test_bad_folder_and_data_are_one_line(mini_sc, tmp_path):
    (tmp_path / "junk").mkdir()
    (tmp_path / "junk" / "notes.txt").write_text("mine")
    with pytest.raises(ValueError, match="holds no classifier"):
        ensure_reference(mini_sc, ["yes", "no"], folder=tmp_path / "junk", overrides=TINY)
    assert (tmp_path / "junk" / "notes.txt").read_text() == "mine"
    with pytest.raises(FileNotFoundError, match="data_folder"):
        ensure_reference(tmp_path / "nothing", ["yes", "no"], folder=tmp_path / "new")
    with pytest.raises(ValueError, match="banana"):
        ensure_reference(mini_sc, ["yes", "banana"], folder=tmp_path / "new", overrides=TINY)
    assert not (tmp_path / "new").exists()
