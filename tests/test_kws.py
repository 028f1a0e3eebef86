"""ganaug kws: the keyword classifier, its checkpoint, and one-epoch recipe runs on mini_sc."""

from __future__ import annotations

import csv
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import killed_after_epoch

from ganaug.checkpoint import CheckpointError, save_generator
from ganaug.config import HparamsError
from ganaug.kws import KWSClassifier, load_classifier, run_kws, save_classifier
from ganaug.models import WaveGANGenerator

TINY = {"labels": "yes,no", "number_of_epochs": 1, "steps_per_epoch": None, "batch_size": 16, "channels": 8,
        "num_blocks": 1, "progress": False}        # an epoch is one pass here: the recipe's mechanics, in seconds


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
    assert "data_folder" in (out / "hparams.yaml").read_text()
    rows = list(csv.DictReader((out / "noise.csv").open()))
    noise = sorted((mini_sc / "_silence_").glob("*.flac"))     # every background clip, in order, decoded once
    assert [Path(r["wav"]).name for r in rows] == [f"{i:03d}_{p.stem}_0000.wav" for i, p in enumerate(noise)]
    assert all(r["duration"] == "1.000" and r["wav_format"] == "wav" for r in rows)
    assert load_classifier(out / "classifier").label_names == ["yes", "no"]
    assert results["test_acc"] == saved["test_acc"]


def test_gan_switch_calls_gan_augment(mini_sc, tmp_path, cache, cond_ckpt):
    results = _run(mini_sc, tmp_path / "gan", cache, gan_ckpt=str(cond_ckpt), gan_mode="replace", gan_p=1.0)
    # replace with p=1 replaces every training row in the one epoch by a synthetic clip of its label
    assert results["synthetic_rows"] == results["num_train"] > 0
    assert results["augmentation"]["gan_ckpt"] == str(cond_ckpt)


def test_both_trainers_run_the_same_experiment_from_the_same_yaml(mini_sc, tmp_path, cache, cond_ckpt):
    """One injection policy: the HF trainer applies GanAugment to each batch as the SpeechBrain one does
    (it used to add hf_map rows once and ignore gan_mode), so the same YAML gives the same run."""
    for mode in ("append", "replace"):
        same = dict(gan_ckpt=str(cond_ckpt), gan_mode=mode, gan_ratio=0.5, gan_p=0.5, classic_augment=True,
                    noise_folder="")
        sb = _run(mini_sc, tmp_path / f"sb_{mode}", cache, **same)
        hf = _run(mini_sc, tmp_path / f"hf_{mode}", cache, trainer="hf", **same)
        assert hf["trainer"] == "hf" and sb["trainer"] == "speechbrain"
        assert hf["synthetic_rows"] == sb["synthetic_rows"] > 0
        assert hf["test_acc"] == pytest.approx(sb["test_acc"], abs=0.1)     # within seed noise (same draws: equal)
        assert hf["test_predictions"] == sb["test_predictions"]


def test_tstr_trains_on_synthetic_only(mini_sc, tmp_path, cache, cond_ckpt):
    results = _run(mini_sc, tmp_path / "tstr", cache, gan_ckpt=str(cond_ckpt), train_source="synthetic",
                   synthetic_per_label=4)
    assert results["num_train"] == 8 and results["num_real_train"] == 0 and 0.0 <= results["test_acc"] <= 1.0
    # TSTR goes through the label filter too: a threshold no clip of an untrained classifier reaches is refused
    torch.manual_seed(0)
    judge = save_classifier(tmp_path / "judge", KWSClassifier(["yes", "no"], channels=8, num_blocks=1))
    with pytest.raises(HparamsError, match="reached min_confidence=0.999999"):
        _run(mini_sc, tmp_path / "tstr_f", cache, gan_ckpt=str(cond_ckpt), train_source="synthetic",
             synthetic_per_label=4, gan_min_confidence=0.999999, gan_filter_classifier=str(judge))


def test_bad_input_names_the_key(mini_sc, tmp_path, cache):
    with pytest.raises(HparamsError, match="data_folder"):
        _run(tmp_path / "missing", tmp_path / "x", cache)
    with pytest.raises(HparamsError, match="gan_p"):
        _run(mini_sc, tmp_path / "x", cache, gan_p=2.0)
    with pytest.raises(HparamsError, match="gan_ckpt"):
        _run(mini_sc, tmp_path / "x", cache, train_source="synthetic")
    with pytest.raises(HparamsError, match="labels"):
        _run(mini_sc, tmp_path / "x", cache, labels="yes,banana")
    with pytest.raises(HparamsError, match="gan_unknown_labels"):
        _run(mini_sc, tmp_path / "x", cache, gan_unknown_labels="drop")
    with pytest.raises(HparamsError, match=r"num_threads=-1: a positive integer"):
        _run(mini_sc, tmp_path / "x", cache, num_threads=-1)


def test_noise_csv_lists_segments_at_the_run_rate_and_leaves_the_recordings_alone(fsdd_root, tmp_path, monkeypatch):
    import soundfile as sf

    from ganaug.kws.data import write_noise_csv

    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    noise = tmp_path / "noise"
    noise.mkdir()
    short = sorted(fsdd_root.glob("*.wav"))[:2]            # 8 kHz, under a second: kept whole, resampled
    for f in short:
        shutil.copy(f, noise / f.name)
    data, rate = sf.read(short[0])
    sf.write(noise / "long.wav", np.tile(data, int(4.0 * rate / len(data)) + 1)[: int(4.0 * rate)], rate)   # 4 s
    before = {p.name: p.read_bytes() for p in noise.iterdir()}
    assert write_noise_csv(noise, tmp_path / "out" / "noise.csv", sample_rate=16000) == 2 + 3   # 4 s: 0-1.5 .. 2-3.5
    rows = list(csv.DictReader((tmp_path / "out" / "noise.csv").open()))
    for row in rows:
        info = sf.info(row["wav"])
        assert info.samplerate == 16000 and str(tmp_path / "cache") in row["wav"] and row["wav_format"] == "wav"
        assert float(row["duration"]) == pytest.approx(info.frames / 16000, abs=1e-3)
    assert sorted(float(r["duration"]) for r in rows)[-3:] == [1.5, 1.5, 1.5]
    assert {p.name: p.read_bytes() for p in noise.iterdir()} == before      # only read
    # cut once: a second run finds the segments (same files, same times)
    first = [r["wav"] for r in rows]
    write_noise_csv(noise, tmp_path / "out2.csv", sample_rate=16000)
    assert [r["wav"] for r in csv.DictReader((tmp_path / "out2.csv").open())] == first


def test_kws_beats_chance_on_shared_test_speakers(sc_root, tmp_path, cache, one_thread):
    """A briefly trained classifier (4 keywords, 128 training speakers) hears unseen speakers:
    chance is 0.25; the bound has a margin below what this recipe reaches (~0.8)."""
    results = run_kws("kws", {"data_folder": str(sc_root), "output_folder": str(tmp_path), "cache_dir": cache,
                              "labels": "yes,no,up,down", "number_of_epochs": 6, "batch_size": 16, "channels": 32,
                              "num_blocks": 3, "lr": 0.003, "progress": False})
    assert results["test_speakers"] >= 10 and results["num_test"] >= 60
    assert results["test_acc"] >= 0.6, results["history"]


def test_progress_bar_per_epoch_with_loss_and_valid_accuracy(mini_sc, tmp_path, cache, capsys):
    _run(mini_sc, tmp_path / "bar", cache, number_of_epochs=2, progress=True)
    err = capsys.readouterr().err
    assert "kws" in err and "2/2" in err and "loss=" in err and "valid_acc=" in err


def test_unknown_generator_labels_are_an_error_before_training_or_kept(mini_sc, tmp_path, cache):
    torch.manual_seed(0)
    only_yes = save_generator(tmp_path / "yes_only", WaveGANGenerator(model_dim=8, label_names=["yes"]))
    with pytest.raises(HparamsError, match=r"\['no'\] are not known.*--gan_unknown_labels=keep"):
        _run(mini_sc, tmp_path / "x", cache, gan_ckpt=str(only_yes))
    assert not (tmp_path / "x" / "results.json").exists()
    results = _run(mini_sc, tmp_path / "keep", cache, gan_ckpt=str(only_yes), gan_mode="replace", gan_p=1.0,
                   gan_unknown_labels="keep")
    assert 0 < results["synthetic_rows"] < results["num_train"]              # the "no" rows stayed real
    with pytest.raises(HparamsError, match="gan_min_confidence"):
        _run(mini_sc, tmp_path / "x", cache, gan_min_confidence=1.5)


def test_killed_kws_run_resumes_from_its_newest_epoch_and_ends_as_an_uninterrupted_one(mini_sc, tmp_path, cache,
                                                                                       cond_ckpt, capsys):
    settings = {"number_of_epochs": 3, "classic_augment": True, "noise_folder": "", "progress": True,
                "gan_ckpt": str(cond_ckpt), "gan_p": 0.5}
    whole = _run(mini_sc, tmp_path / "whole", cache, **settings)
    with killed_after_epoch(2), pytest.raises(KeyboardInterrupt):
        _run(mini_sc, tmp_path / "killed", cache, **settings)
    assert not (tmp_path / "killed" / "results.json").exists() and (tmp_path / "killed" / "save").is_dir()
    # a kill while epoch 3 was being saved: SpeechBrain writes the meta first, then the files
    newest = max((tmp_path / "killed" / "save").glob("CKPT+*"))
    cut = newest.with_name(newest.name + "-cut")
    shutil.copytree(newest, cut)
    meta = (cut / "CKPT.yaml").read_text()
    (cut / "CKPT.yaml").write_text(meta.replace("epoch: 2", "epoch: 3").replace("unixtime: ", "unixtime: 1"))
    (cut / "optimizer.ckpt").write_bytes((cut / "optimizer.ckpt").read_bytes()[:200])    # the last file written
    capsys.readouterr()
    with pytest.warns(UserWarning, match=r"CKPT\+.*-cut: an incomplete checkpoint .* set aside as damaged\+"):
        resumed = _run(mini_sc, tmp_path / "killed", cache, **settings)
    assert "kws: resumed after epoch 2 from" in capsys.readouterr().out
    assert [h["epoch"] for h in resumed["history"]] == [1, 2, 3]
    assert resumed["history"] == whole["history"] and resumed["test_acc"] == whole["test_acc"]
    assert resumed["synthetic_rows"] == whole["synthetic_rows"] > 0           # counted over all 3 epochs
    a, b = load_classifier(tmp_path / "whole" / "classifier"), load_classifier(tmp_path / "killed" / "classifier")
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), name
    # a finished run reruns as a test of its best epoch; other settings are refused, naming the folder
    assert _run(mini_sc, tmp_path / "killed", cache, **settings)["history"] == whole["history"]
    with pytest.raises(ValueError, match=r"killed/save: holds the checkpoints of a classifier trained with other"):
        _run(mini_sc, tmp_path / "killed", cache, **{**settings, "lr": 0.01})
