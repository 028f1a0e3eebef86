"""KeywordDataset over the shared corpora: layouts, speaker-disjoint splits, readers."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ganaug.data import KeywordDataset, from_hf, from_manifest
from ganaug.data.cache import preload
from conftest import KEYWORDS

DIGITS = ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]


def _split_speakers(root, **kw):
    return {s: set(KeywordDataset(root, split=s, **kw).speakers) for s in ("train", "valid", "test")}


def test_speech_commands_keywords_16384(sc_root):
    ds = KeywordDataset(sc_root, labels=KEYWORDS)
    assert len(ds) == 2696 and ds.label_names == KEYWORDS
    item = ds[0]
    assert set(item) == {"wav", "label", "label_name", "speaker", "path"}
    assert item["wav"].shape == (16384,) and item["wav"].dtype == torch.float32
    assert ds.label_names[item["label"]] == item["label_name"]
    assert item["path"].endswith(".flac") and item["speaker"] in item["path"]
    assert len(ds.speakers) == 160


def test_all_labels_and_counts_without_decoding(sc_root, monkeypatch):
    import ganaug.data.dataset as dataset_module

    def no_decoding(*a, **k):
        raise AssertionError("metadata must not decode audio")

    monkeypatch.setattr(dataset_module, "load_audio", no_decoding)
    ds = KeywordDataset(sc_root)
    assert ds.label_names == sorted(KEYWORDS) + ["_silence_", "_unknown_"]
    counts = ds.label_counts()
    assert counts["_silence_"] == 314 and counts["_unknown_"] == 111
    assert sum(counts.values()) == len(ds) == 2696 + 314 + 111


def test_unknown_clips_keep_their_speaker(sc_root):
    ds = KeywordDataset(sc_root, labels=["_unknown_"])
    first = ds[0]
    word_free = first["path"].rsplit("/", 1)[-1].split("_nohash_")[0].rsplit("_", 1)[-1]
    assert first["speaker"] == word_free
    assert set(ds.speakers) <= set(KeywordDataset(sc_root, labels=KEYWORDS).speakers)


def test_speech_commands_splits_are_speaker_disjoint_and_cover(sc_root):
    speakers = _split_speakers(sc_root, labels=KEYWORDS)
    assert not speakers["train"] & speakers["valid"]
    assert not speakers["train"] & speakers["test"]
    assert not speakers["valid"] & speakers["test"]
    assert sum(len(v) for v in speakers.values()) == 160
    assert len(speakers["train"]) == 128 and len(speakers["valid"]) == len(speakers["test"]) == 16


def test_split_of_a_speaker_does_not_depend_on_labels(sc_root):
    two = _split_speakers(sc_root, labels=["yes", "no"])
    ten = _split_speakers(sc_root, labels=KEYWORDS)
    for split in two:
        assert two[split] <= ten[split]


def test_splits_are_deterministic(sc_root):
    a = KeywordDataset(sc_root, labels=["yes"], split="test")
    b = KeywordDataset(sc_root, labels=["yes"], split="test")
    assert [c.path for c in a.clips] == [c.path for c in b.clips]


def test_silence_has_no_speaker_and_is_split_too(sc_root):
    parts = [KeywordDataset(sc_root, labels=["_silence_"], split=s) for s in ("train", "valid", "test")]
    assert all(len(p) > 0 for p in parts)
    assert sum(len(p) for p in parts) == 314
    assert parts[0][0]["speaker"] == "" and parts[0].speakers == []


def test_speaker_fraction_keeps_a_seeded_subset(sc_root):
    full = KeywordDataset(sc_root, labels=KEYWORDS, split="train")
    quarter = KeywordDataset(sc_root, labels=KEYWORDS, split="train", speaker_fraction=0.25, seed=1)
    again = KeywordDataset(sc_root, labels=KEYWORDS, split="train", speaker_fraction=0.25, seed=1)
    other = KeywordDataset(sc_root, labels=KEYWORDS, split="train", speaker_fraction=0.25, seed=2)
    assert len(quarter.speakers) == 32
    assert set(quarter.speakers) < set(full.speakers)
    assert quarter.speakers == again.speakers and quarter.speakers != other.speakers
    with pytest.raises(ValueError, match="speaker_fraction"):
        KeywordDataset(sc_root, split="test", speaker_fraction=0.5)
    with pytest.raises(ValueError, match="speaker_fraction"):
        KeywordDataset(sc_root, split="train", speaker_fraction=0.0)


def test_uses_the_datasets_own_list_files(mini_sc):
    speakers = sorted({f.name.split("_nohash_")[0] for f in (mini_sc / "yes").glob("*.flac")})
    test_files = sorted((mini_sc / "yes").glob(f"{speakers[0]}_nohash_*"))
    (mini_sc / "testing_list.txt").write_text("".join(f"yes/{f.stem}.wav\n" for f in test_files))
    (mini_sc / "validation_list.txt").write_text("")
    try:
        test = KeywordDataset(mini_sc, labels=["yes"], split="test")
        assert [c.path for c in test.clips] == [str(f) for f in test_files]
    finally:
        (mini_sc / "testing_list.txt").unlink()
        (mini_sc / "validation_list.txt").unlink()


def test_fsdd_layout_16k_speaker_split(fsdd_root):
    ds = KeywordDataset(fsdd_root)
    assert ds.layout == "fsdd" and len(ds) == 3000
    # digit order, as the README promises: index i is digit i (issue 15 item 5; was alphabetical)
    assert ds.label_names == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"]
    assert all(ds.label_names[label] == DIGITS[int(Path(path).name[0])]
               for label, path in zip(ds.labels[::97], [c.path for c in ds.clips][::97]))
    item = ds[0]
    assert item["wav"].shape == (16384,)
    digit = item["path"].rsplit("/", 1)[-1].split("_")[0]
    assert item["label_name"] == ["zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine"][int(digit)]
    speakers = _split_speakers(fsdd_root)
    assert all(speakers.values()) and not (speakers["train"] & (speakers["valid"] | speakers["test"]))
    assert len(set().union(*speakers.values())) == 6


def test_bad_arguments(sc_root, tmp_path):
    with pytest.raises(ValueError, match=r"labels \['yess'\] not in the data"):
        KeywordDataset(sc_root, labels=["yess"])
    with pytest.raises(ValueError, match="split="):
        KeywordDataset(sc_root, split="training")
    with pytest.raises(ValueError, match="split_fractions"):
        KeywordDataset(sc_root, split="train", split_fractions=(0.5, 0.5, 0.5))
    with pytest.raises(FileNotFoundError, match="no such folder"):
        KeywordDataset(tmp_path / "missing")
    with pytest.raises(ValueError, match="neither the Speech Commands layout"):
        KeywordDataset(tmp_path)


def _hf_from(ds, audio_as):
    import datasets

    rows = {"audio": [], "label": [], "speaker": []}
    for clip in ds.clips:
        data, rate = sf.read(clip.path, dtype="float32")
        rows["audio"].append({"array": data, "sampling_rate": rate} if audio_as == "array"
                             else {"bytes": open(clip.path, "rb").read(), "path": clip.path})
        rows["label"].append(ds.label_to_index[clip.label_name])
        rows["speaker"].append(clip.speaker)
    audio = ({"array": datasets.Sequence(datasets.Value("float32")), "sampling_rate": datasets.Value("int32")}
             if audio_as == "array" else {"bytes": datasets.Value("binary"), "path": datasets.Value("string")})
    features = datasets.Features({"audio": audio, "label": datasets.ClassLabel(names=ds.label_names),
                                  "speaker": datasets.Value("string")})
    hf = datasets.Dataset.from_dict(rows, features=features)
    # an Audio(decode=False) column as a user's dataset has it (encoding through Audio needs torchcodec)
    return hf.cast_column("audio", datasets.Audio(decode=False)) if audio_as == "path" else hf


@pytest.mark.parametrize("audio_as", ["array", "path"])
def test_hf_reader_gives_the_same_items(mini_sc, audio_as):
    folder = KeywordDataset(mini_sc, labels=["yes", "no"])
    hf = _hf_from(folder, audio_as)
    if audio_as == "path":
        import datasets

        assert isinstance(hf.features["audio"], datasets.Audio) and not hf.features["audio"].decode
    ds = from_hf(hf)
    assert ds.label_names == ["yes", "no"] and len(ds) == len(folder)
    for i in (0, len(ds) - 1):
        a, b = ds[i], folder[i]
        assert a["label_name"] == b["label_name"] and a["speaker"] == b["speaker"]
        assert torch.allclose(a["wav"], b["wav"], atol=1e-6)
    train = from_hf(hf, split="train")
    test = from_hf(hf, split="test")
    assert len(train) and len(test) and not set(train.speakers) & set(test.speakers)


def test_hf_reader_errors(mini_sc):
    hf = _hf_from(KeywordDataset(mini_sc, labels=["yes"]), "array")
    with pytest.raises(ValueError, match="audio_column='wav' is not a column"):
        from_hf(hf, audio_column="wav")


def test_speechbrain_csv_manifest(mini_sc, tmp_path):
    folder = KeywordDataset(mini_sc, labels=["yes", "no"])
    lines = ["ID,duration,wav,spk_id,command"]
    for i, clip in enumerate(folder.clips):
        rel = clip.path.replace(str(mini_sc), "$data_root")
        lines.append(f"utt{i},1.0,{rel},{clip.speaker},{clip.label_name}")
    manifest = tmp_path / "train.csv"
    manifest.write_text("\n".join(lines) + "\n")
    ds = from_manifest(manifest, data_root=mini_sc, labels=["yes", "no"])
    assert len(ds) == len(folder)
    assert torch.equal(ds[3]["wav"], folder[3]["wav"]) and ds[3]["label"] == folder[3]["label"]
    assert ds.speakers == folder.speakers


def test_preload_matches_items_and_reuses_cache(mini_sc, tmp_path):
    ds = KeywordDataset(mini_sc, labels=["yes", "no"], split="train")
    wavs, labels = preload(ds, cache_dir=tmp_path, progress=False)
    assert wavs.shape == (len(ds), 16384)
    assert torch.equal(wavs[5], ds[5]["wav"]) and labels.tolist() == ds.labels
    files = list((tmp_path / "clips").glob("*.npy"))
    assert len(files) == 1
    mtime = files[0].stat().st_mtime_ns
    again, _ = preload(ds, cache_dir=tmp_path, progress=False)
    assert torch.equal(again, wavs) and files[0].stat().st_mtime_ns == mtime
    again[0] += 1  # copy-on-write: the cache file is untouched
    assert np.array_equal(np.load(files[0], mmap_mode="r")[0], wavs[0].numpy() * 0 + ds[0]["wav"].numpy())
