"""The Speech Commands v2-12 task: 10 keywords + _unknown_ (the other words) + _silence_ (background noise),
on the shared layout (folders of both) and on the official one (a folder per word, long noise recordings)."""

from __future__ import annotations

import json

import pytest

from ganaug.data import KeywordDataset
from ganaug.kws import run_kws

pytestmark = pytest.mark.usefixtures("one_thread")

V2_12 = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "_unknown_", "_silence_"]


def test_the_shared_layout_has_all_twelve_classes_in_every_split(sc_root):
    for split in ("train", "valid", "test"):
        counts = KeywordDataset(sc_root, labels=V2_12, split=split).label_counts()
        assert all(counts[name] > 0 for name in V2_12), (split, counts)


def test_official_layout_unknown_is_the_other_words_and_silence_is_cut_from_the_noise(official_sc, tmp_path,
                                                                                      monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    labels = ["yes", "no", "_unknown_", "_silence_"]
    splits = {s: KeywordDataset(official_sc, labels=labels, split=s) for s in ("train", "valid", "test")}
    words = {c.path.split("/")[-2] for d in splits.values() for c in d.clips if c.label_name == "_unknown_"}
    assert words == {"backward", "bed"}                                 # the word folders that are not keywords
    silence = [c for d in splits.values() for c in d.clips if c.label_name == "_silence_"]
    assert len(silence) == 3 * 20 and all(not c.speaker for c in silence)   # three 20 s recordings, 1 s each
    assert all(splits[s].label_counts()["_silence_"] > 0 for s in splits)   # dealt to every split by a hash
    item = splits["test"][splits["test"].labels.index(3)]
    assert item["label_name"] == "_silence_" and item["wav"].shape == (16384,) and item["wav"].abs().max() > 0
    assert not (official_sc / "_silence_").exists()                          # nothing written into the data
    # the benchmark's cap on the other words: at most unknown_share of the other clips
    thin = KeywordDataset(official_sc, labels=labels, split="train", unknown_share=0.02, seed=1)
    counts = thin.label_counts()
    assert counts["_unknown_"] == round(0.02 * (len(thin) - counts["_unknown_"])) > 0
    assert counts["_unknown_"] < splits["train"].label_counts()["_unknown_"]
    assert KeywordDataset(official_sc, labels=labels, split="train", unknown_share=0.02, seed=1).fingerprint() \
        == thin.fingerprint()                                               # seeded


def test_kws_v2_12_keeps_generated_clips_to_the_keywords(official_sc, weak_generator, tmp_path, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    results = run_kws("kws", {"data_folder": str(official_sc), "output_folder": str(tmp_path / "kws"), "task": "v2-12",
                              "labels": "yes,no", "number_of_epochs": 1, "steps_per_epoch": 4, "batch_size": 16,
                              "channels": 8, "num_blocks": 1, "progress": False, "device": "cpu",
                              "gan_ckpt": str(weak_generator), "gan_p": 1.0, "gan_mode": "append"})
    assert results["label_names"] == ["yes", "no", "_unknown_", "_silence_"]
    assert set(results["per_label_acc"]) == set(results["label_names"]) and results["num_test"] > 0
    # only yes/no rows got synthetic partners: appended rows number the keyword rows of the batches, no more
    assert 0 < results["synthetic_rows"] < 4 * 16
    saved = json.loads((tmp_path / "kws" / "classifier" / "config.json").read_text())
    assert saved["label_names"] == results["label_names"]
    with pytest.raises(ValueError, match="TSTR"):
        run_kws("kws", {"data_folder": str(official_sc), "output_folder": str(tmp_path / "t"), "task": "v2-12",
                        "train_source": "synthetic", "gan_ckpt": str(weak_generator)})
