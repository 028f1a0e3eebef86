"""ganaug kws: the keyword classifier, its checkpoint, and one-epoch recipe runs on mini_sc."""

from __future__ import annotations

import json

import pytest
import torch

from ganaug.checkpoint import CheckpointError, save_generator
from ganaug.config import HparamsError
from ganaug.kws import KWSClassifier, load_classifier, run_kws, save_classifier
from ganaug.models import WaveGANGenerator

TINY = {"labels": "yes,no", "number_of_epochs": 1, "batch_size": 16, "channels": 8, "num_blocks": 1}


@pytest.fixture(scope="module")
def cache(tmp_path_factory):
    return str(tmp_path_factory.mktemp("clip_cache"))


@pytest.fixture(scope="module")
def cond_ckpt(tmp_path_factory):
    torch.manual_seed(0)
    return save_generator(tmp_path_factory.mktemp("gan") / "cond", WaveGANGenerator(model_dim=8, label_names=["yes", "no"]))


def _run(mini_sc, out, cache, **overrides):
    return run_kws("kws", {**TINY, "data_folder": str(mini_sc), "output_folder": str(out), "cache_dir": cache, **overrides})


def test_classifier_shapes_and_round_trip(tmp_path):
    model = KWSClassifier(["yes", "no", "up"], channels=8, num_blocks=2).eval()
    wavs = torch.randn(3, 16000)
    assert model(wavs).shape == (3, 3) and model.embed(wavs).shape == (3, 8)
    save_classifier(tmp_path / "clf", model, test_acc=0.5)
    loaded = load_classifier(tmp_path / "clf")
    assert loaded.label_names == ["yes", "no", "up"]
    torch.testing.assert_close(loaded(wavs), model(wavs))
    config = json.loads((tmp_path / "clf" / "config.json").read_text())
    assert config["label_names"] == ["yes", "no", "up"] and config["test_acc"] == 0.5
    weights = tmp_path / "clf" / "classifier.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    with pytest.raises(CheckpointError, match="classifier.safetensors"):
        load_classifier(tmp_path / "clf")
    with pytest.raises(ValueError, match="label_names"):
        KWSClassifier("yes")
    with pytest.raises(ValueError, match=r"\(batch, time\)"):
        model(torch.randn(16000))


def test_speechbrain_recipe_writes_results(mini_sc, tmp_path, cache):
    out = tmp_path / "run"
    results = _run(mini_sc, out, cache, classic_augment=True, eval_folder=str(mini_sc))
    saved = json.loads((out / "results.json").read_text())
    for key in ("test_acc", "eval_acc", "num_train", "seed", "per_label_acc", "config", "valid_acc"):
        assert key in saved
    assert 0.0 <= saved["test_acc"] <= 1.0 and 0.0 <= saved["eval_acc"] <= 1.0
    assert saved["num_train"] > 0 and saved["seed"] == 0 and set(saved["per_label_acc"]) == {"yes", "no"}
    n_clips = sum(1 for label in ("yes", "no") for _ in (mini_sc / label).iterdir())
    assert saved["num_eval"] == n_clips  # every clip of the eval folder, all its speakers
    assert saved["num_train"] + saved["num_valid"] + saved["num_test"] == n_clips  # speaker-disjoint partition
    assert saved["augmentation"]["classic"] and saved["synthetic_rows"] == 0
    assert "data_folder" in (out / "hparams.yaml").read_text() and (out / "noise.csv").is_file()
    assert load_classifier(out / "classifier").label_names == ["yes", "no"]
    assert results["test_acc"] == saved["test_acc"]


def test_gan_switch_calls_gan_augment(mini_sc, tmp_path, cache, cond_ckpt):
    results = _run(mini_sc, tmp_path / "gan", cache, gan_ckpt=str(cond_ckpt), gan_p=1.0)
    # p=1 replaces every training row in the one epoch by a synthetic clip of its label
    assert results["synthetic_rows"] == results["num_train"] > 0
    assert results["augmentation"]["gan_ckpt"] == str(cond_ckpt)


def test_hf_datasets_path_with_gan_map(mini_sc, tmp_path, cache, cond_ckpt):
    results = _run(mini_sc, tmp_path / "hf", cache, trainer="hf", gan_ckpt=str(cond_ckpt), gan_p=0.5)
    assert results["trainer"] == "hf" and 0.0 <= results["test_acc"] <= 1.0
    assert results["synthetic_rows"] == results["num_train"] // 2  # hf_map added half a row per real row
    assert (tmp_path / "hf" / "results.json").is_file()


def test_tstr_trains_on_synthetic_only(mini_sc, tmp_path, cache, cond_ckpt):
    results = _run(mini_sc, tmp_path / "tstr", cache, gan_ckpt=str(cond_ckpt), train_source="synthetic",
                   synthetic_per_label=4)
    assert results["num_train"] == 8 and results["num_real_train"] == 0 and 0.0 <= results["test_acc"] <= 1.0


def test_bad_input_names_the_key(mini_sc, tmp_path, cache):
    with pytest.raises(HparamsError, match="data_folder"):
        _run(tmp_path / "missing", tmp_path / "x", cache)
    with pytest.raises(HparamsError, match="gan_p"):
        _run(mini_sc, tmp_path / "x", cache, gan_p=2.0)
    with pytest.raises(HparamsError, match="gan_ckpt"):
        _run(mini_sc, tmp_path / "x", cache, train_source="synthetic")
    with pytest.raises(HparamsError, match="labels"):
        _run(mini_sc, tmp_path / "x", cache, labels="yes,banana")
