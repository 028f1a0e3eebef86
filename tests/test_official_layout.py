"""The official Speech Commands v0.02 layout (WAV, list files, ``_background_noise_/``, no ``_silence_/``)
and FSDD (no noise folder at all) through every command that trains a classifier with classic augmentation."""

from __future__ import annotations

import csv
import json

import pytest
import torch

from ganaug.cli import main
from ganaug.data import KeywordDataset
from ganaug.kws.reference import ensure_reference

pytestmark = pytest.mark.usefixtures("one_thread")

SMALL_KWS = ["--number_of_epochs=1", "--batch_size=16", "--channels=8", "--num_blocks=1", "--progress=False",
             "--device=cpu"]
TINY_REFERENCE = {"number_of_epochs": 1, "batch_size": 16, "channels": 8, "num_blocks": 1}   # classic stays on


def test_official_layout_splits_by_its_lists_and_keeps_noise_out_of_the_labels(official_sc):
    everything = KeywordDataset(official_sc, num_samples=None)
    assert "_background_noise_" not in everything.label_names and "_silence_" not in everything.label_names
    assert everything.label_names == ["backward", "bed", "no", "yes"]      # two other words beside the keywords
    listed = {line.strip() for name in ("validation_list.txt", "testing_list.txt")
              for line in (official_sc / name).read_text().splitlines()}
    splits = {s: KeywordDataset(official_sc, labels=["yes", "no"], split=s) for s in ("train", "valid", "test")}
    assert all(len(d) > 0 for d in splits.values())
    for split, dataset in splits.items():
        names = {f"{c.relpath}.wav" for c in dataset.clips}
        assert (names <= listed) == (split != "train") and (names & listed or split == "train")
    assert not set(splits["train"].speakers) & (set(splits["valid"].speakers) | set(splits["test"].speakers))


def test_kws_with_classic_augmentation_takes_the_background_noise_recordings(official_sc, tmp_path):
    out = tmp_path / "kws"
    assert main(["kws", "kws", f"--data_folder={official_sc}", f"--output_folder={out}", "--labels=yes,no",
                 "--classic_augment=True", *SMALL_KWS]) == 0
    results = json.loads((out / "results.json").read_text())
    assert results["augmentation"]["noise"] == str(official_sc / "_background_noise_")
    with open(out / "noise.csv") as f:
        rows = list(csv.DictReader(f))
    # the three 20-second recordings (not the README beside them), cut into 1.5 s segments every second
    assert len(rows) == 3 * 19 and {float(r["duration"]) for r in rows} == {1.5}
    assert 0.0 <= results["test_acc"] <= 1.0 and results["num_test"] > 0


def test_a_corpus_without_noise_folders_gets_white_noise_and_one_warning(fsdd_root, tmp_path, capsys):
    with pytest.warns(UserWarning, match=r"noise_folder=auto: .*fsdd has no _background_noise_ or _silence_ folder"):
        code = main(["kws", "kws", f"--data_folder={fsdd_root}", f"--output_folder={tmp_path / 'kws'}",
                     "--labels=zero,one", "--classic_augment=True", *SMALL_KWS])
    assert code == 0
    results = json.loads((tmp_path / "kws" / "results.json").read_text())
    assert results["augmentation"]["noise"] == "white noise" and not (tmp_path / "kws" / "noise.csv").exists()
    # a folder that is not there is one line, before any work
    code = main(["kws", "kws", f"--data_folder={fsdd_root}", f"--output_folder={tmp_path / 'bad'}", "--labels=zero,one",
                 "--classic_augment=True", f"--noise_folder={tmp_path / 'nowhere'}", *SMALL_KWS])
    err = capsys.readouterr().err
    assert code == 2 and err.count("\n") == 1 and f"noise_folder={tmp_path / 'nowhere'}: no such folder" in err


@pytest.fixture(scope="module")
def official_generator(official_sc, tmp_path_factory):
    """A conditional WaveGAN trained for two steps on the official layout's TRAIN speakers."""
    out = tmp_path_factory.mktemp("official_gan") / "cond"
    assert main(["train", "wavegan_tiny", f"--data_folder={official_sc}", f"--output_folder={out}", "--labels=yes,no",
                 "--max_steps=2", "--ckpt_interval_steps=2", "--batch_size=8", "--d_steps_per_g_step=1",
                 "--progress=False", "--device=cpu"]) == 0
    return out


def test_evaluate_and_filtered_generate_train_their_classifier_with_background_noise(official_sc, official_generator,
                                                                                     tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    # the generator's own reference classifier, trained with classic augmentation (forced by the reference
    # recipe) where `ganaug evaluate` and `ganaug generate --min_confidence` look for it
    config = json.loads((official_generator / "config.json").read_text())
    from ganaug.kws.reference import ensure_reference_for

    folder = ensure_reference_for(config, device="cpu", progress=False, overrides=TINY_REFERENCE)
    recipe = json.loads((folder / "config.json").read_text())["recipe"]
    assert recipe["classic_augment"] is True and "noise_folder" not in recipe          # auto: found by itself
    assert main(["evaluate", str(official_generator), "--data", str(official_sc), "--num-clips", "8",
                 "--device", "cpu"]) == 0
    metrics = json.loads((official_generator / "eval" / "metrics.json").read_text())
    assert metrics["classifier"]["folder"] == str(folder.resolve()) and metrics["num_generated"] == 8
    assert main(["generate", str(official_generator), "--per-label", "4", "--out", str(tmp_path / "bank"),
                 "--min_confidence", "0.01", "--device", "cpu"]) == 0
    bank = json.loads((tmp_path / "bank" / "bank.json").read_text())
    assert set(bank["acceptance"]) == {"yes", "no"} and bank["filter_classifier"] == str(folder)
    assert "error" not in capsys.readouterr().err


def test_reference_training_with_classic_augmentation_on_the_official_layout(official_sc, tmp_path):
    folder = ensure_reference(official_sc, ["yes", "no"], folder=tmp_path / "ref", device="cpu", progress=False,
                              overrides=TINY_REFERENCE)
    config = json.loads((folder / "config.json").read_text())
    assert config["recipe"]["classic_augment"] is True and 0.0 <= config["test_acc"] <= 1.0


def test_demo_pipeline_and_a_classic_ablation_arm_on_the_official_layout(official_sc, tmp_path, capsys):
    from ganaug.demo import SMOKE, run_demo

    settings = {**SMOKE, "ablation_overrides": {**SMOKE["ablation_overrides"],
                                               "augmentations": ["none", "classic", "gan_conditional"]}}
    paths = run_demo(official_sc, tmp_path / "demo", "cpu", settings=settings)
    cell = json.loads((tmp_path / "demo" / "ablation" / "cells" / "f1_classic_s0" / "results.json").read_text())
    assert cell["augmentation"]["noise"] == str(official_sc / "_background_noise_")
    assert paths["report"].is_file() and torch.isfinite(torch.tensor(cell["test_acc"]))
