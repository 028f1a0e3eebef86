"""HF datasets: GanAugment.hf_map and hf_transform on a real datasets.Dataset of shared audio.

Audio is a plain {"array", "sampling_rate"} struct, Audio(decode=False) bytes read by ganaug,
or the usual Audio() column of load_dataset("audiofolder") (decoded by torchcodec, the
`hf-audio` extra, with the system FFmpeg).
"""

from __future__ import annotations

from pathlib import Path

import datasets
import numpy as np
import pytest
import soundfile as sf
import torch
from augment_helpers import conditional_ckpt

from ganaug import GanAugment
from ganaug.data import decode_hf_audio, from_hf

LABELS = ["yes", "no", "_silence_"]


def _files(mini_sc, per_label=5):
    return [(f, label) for label in LABELS for f in sorted(Path(mini_sc, label).glob("*.flac"))[:per_label]]


@pytest.fixture(scope="module")
def decoded_ds(mini_sc):
    rows = {"audio": [], "label": [], "speaker": []}
    for f, label in _files(mini_sc):
        data, rate = sf.read(f, dtype="float32")
        rows["audio"].append({"array": data, "sampling_rate": rate})
        rows["label"].append(LABELS.index(label))
        rows["speaker"].append(f.name.split("_nohash_")[0])
    ds = datasets.Dataset.from_dict(rows)
    return ds.cast_column("label", datasets.ClassLabel(names=LABELS))


@pytest.fixture(scope="module")
def bytes_ds(mini_sc):
    rows = {"audio": [], "label": []}
    for f, label in _files(mini_sc):
        rows["audio"].append({"bytes": f.read_bytes(), "path": f.name})
        rows["label"].append(label)
    ds = datasets.Dataset.from_dict(rows).cast_column("audio", datasets.Audio(decode=False))
    return ds.cast_column("label", datasets.ClassLabel(names=LABELS))


@pytest.fixture(scope="module")
def aug(tmp_path_factory):
    return GanAugment(conditional_ckpt(tmp_path_factory.mktemp("hf")), p=0.5, unknown_labels="keep")


def _check_rows(out, n_real, names, ratio):
    synthetic = np.array(out["synthetic"])
    assert int((~synthetic).sum()) == n_real
    real_labels = [names[v] for v, s in zip(out["label"], synthetic) if not s]
    synth_labels = [names[v] for v, s in zip(out["label"], synthetic) if s]
    n_known = sum(1 for v, s in zip(out["label"], synthetic) if not s and names[v] != "_silence_")
    assert synthetic.sum() == round(ratio * n_known)
    assert set(synth_labels) <= {"yes", "no"} and set(real_labels) == set(LABELS)  # _silence_ kept, not synthesised
    return synthetic


def test_map_on_decoded_struct_adds_rows_with_consistent_columns(decoded_ds, aug):
    fn = aug.hf_map(ratio=0.4, seed=0)
    out = decoded_ds.map(fn, batched=True, batch_size=15, remove_columns=decoded_ds.column_names)
    assert out.features["label"] == decoded_ds.features["label"]
    synthetic = _check_rows(out, len(decoded_ds), LABELS, 0.4)
    row = out[int(np.flatnonzero(synthetic)[0])]
    assert row["speaker"] is None and row["audio"]["sampling_rate"] == 16000
    assert len(row["audio"]["array"]) == 16000  # the source row's length
    # the real rows are untouched
    assert out[0]["audio"]["array"] == pytest.approx(decoded_ds[0]["audio"]["array"])
    # a KeywordDataset reads the mixed dataset back: every row decodes, labels by name
    kd = from_hf(out)
    assert len(kd) == len(out) and kd[int(np.flatnonzero(synthetic)[0])]["label_name"] in ("yes", "no")


def test_map_on_audio_decode_false_writes_wav_bytes(bytes_ds, aug):
    out = bytes_ds.map(aug.hf_map(ratio=1.0), batched=True, with_indices=True, batch_size=4)
    assert out.features["audio"] == datasets.Audio(decode=False)
    synthetic = _check_rows(out, len(bytes_ds), LABELS, 1.0)
    for i in np.flatnonzero(synthetic):
        value = out[int(i)]["audio"]
        wav = decode_hf_audio(value)
        assert value["bytes"][:4] == b"RIFF" and wav.shape == (16000,) and wav.abs().max() > 0


def test_with_indices_gives_the_exact_ratio_over_uneven_batches(decoded_ds, aug):
    out = decoded_ds.map(aug.hf_map(ratio=0.5), batched=True, batch_size=4, with_indices=True)
    assert sum(out["synthetic"]) == 0.5 * 10  # 10 rows of known labels, 5 of _silence_


def test_fingerprint_is_stable_and_changes_with_settings(decoded_ds, aug, tmp_path):
    kwargs = dict(batched=True, remove_columns=decoded_ds.column_names)
    a = decoded_ds.map(aug.hf_map(ratio=0.5, seed=1), **kwargs)
    b = decoded_ds.map(GanAugment(aug.source, unknown_labels="keep").hf_map(ratio=0.5, seed=1), **kwargs)
    c = decoded_ds.map(aug.hf_map(ratio=0.5, seed=2), **kwargs)
    assert a._fingerprint == b._fingerprint != c._fingerprint
    assert aug.hf_map(ratio=0.5).fingerprint != aug.hf_map(ratio=0.6).fingerprint
    assert a["audio"][-1]["array"] == pytest.approx(b["audio"][-1]["array"])  # same rows for the same fingerprint
    # a dataset on disk is mapped once: the second map loads the cache file
    decoded_ds.save_to_disk(str(tmp_path / "ds"))
    disk = datasets.load_from_disk(str(tmp_path / "ds"))
    first = disk.map(aug.hf_map(ratio=0.5, seed=1), **kwargs)
    second = disk.map(aug.hf_map(ratio=0.5, seed=1), **kwargs)
    assert first.cache_files == second.cache_files and first.cache_files


def test_with_transform_fresh_rows_and_dataloader(bytes_ds, aug):
    ds = bytes_ds.with_transform(aug.hf_transform(p=1.0, features=bytes_ds.features))
    a, b = ds[0:6], ds[0:6]
    names = bytes_ds.features["label"].names
    assert a["label"] == bytes_ds[0:6]["label"] and all(a["synthetic"][i] == (names[a["label"][i]] != "_silence_")
                                                      for i in range(6))
    assert a["audio"][0]["bytes"] != b["audio"][0]["bytes"]  # fresh clips at every access
    assert ds[0]["synthetic"] is True
    loader = torch.utils.data.DataLoader(ds, batch_size=5, collate_fn=lambda rows: rows)
    rows = [r for batch in loader for r in batch]
    assert len(rows) == len(bytes_ds) and [r["label"] for r in rows] == bytes_ds["label"]


def test_errors(decoded_ds, tmp_path):
    strict = GanAugment(conditional_ckpt(tmp_path), p=0.5)
    with pytest.raises(ValueError, match=r"\['_silence_'\].*unknown_labels='keep'"):
        decoded_ds.map(strict.hf_map(ratio=0.5), batched=True)
    with pytest.raises(ValueError, match="column 'wav' is not in the dataset"):
        decoded_ds.map(strict.hf_map(ratio=0.5, audio_column="wav"), batched=True)
    with pytest.raises(ValueError, match="ratio=-0.5"):
        strict.hf_map(ratio=-0.5)
    plain = decoded_ds.cast_column("label", datasets.Value("int64"))
    with pytest.raises(ValueError, match="ClassLabel"):
        plain.map(strict.hf_map(ratio=0.5), batched=True)


def test_map_rejects_one_row_calls_float_labels_and_runaway_ratios(decoded_ds, aug):
    """Issue 12.15 (batched=False), 12.6 (float labels), 12.11 (ratio=1e9 / nan): one-line errors."""
    with pytest.raises(ValueError, match=r"one row, not a batch: call Dataset.map\(\.\.\., batched=True\)"):
        decoded_ds.map(aug.hf_map(ratio=0.5))
    floats = datasets.Dataset.from_dict({"audio": decoded_ds[:2]["audio"], "label": [0.7, 1.0]})
    with pytest.raises(ValueError, match="label 0.7 is not a label index"):
        floats.map(aug.hf_map(ratio=1.0, features=decoded_ds.features), batched=True)
    for bad in (1e9, float("nan"), float("inf")):
        with pytest.raises(ValueError, match="ratio="):
            aug.hf_map(ratio=bad)


def test_stereo_rows_are_downmixed_not_arrow_errors(mini_sc, aug):
    """Issue 12.15: a (channels, time) row, as Audio(mono=False) gives it, is downmixed by ganaug.audio."""
    files = _files(mini_sc, per_label=2)[:4]
    rows = {"audio": [], "label": []}
    for f, label in files:
        data, rate = sf.read(f, dtype="float32")
        rows["audio"].append({"array": np.stack([data, 0.5 * data]), "sampling_rate": rate})  # (2, time)
        rows["label"].append(label)
    ds = datasets.Dataset.from_dict(rows)
    out = ds.map(aug.hf_map(ratio=1.0), batched=True, remove_columns=ds.column_names)
    assert len(out) == 8 and sum(out["synthetic"]) == 4
    first = np.asarray(out[0]["audio"]["array"])
    expected, _ = sf.read(files[0][0], dtype="float32")
    assert first.ndim == 1 and np.allclose(first, 0.75 * expected, atol=1e-6)
    assert all(np.asarray(r["audio"]["array"]).shape == expected.shape for r in out)


def test_map_with_num_proc_2_after_the_parent_used_threads(tmp_path):
    """Issue 12.8: forked map workers used to block forever in libgomp once the parent had run
    torch on 2 threads. Run in a fresh interpreter (as a user would), with a timeout."""
    import subprocess
    import sys
    import textwrap

    script = textwrap.dedent(f"""
        import sys, numpy as np, torch, datasets
        sys.path.insert(0, {str(Path(__file__).parent)!r})
        from augment_helpers import conditional_ckpt
        from ganaug import GanAugment
        torch.set_num_threads(2)
        a = torch.randn(512, 512); float((a @ a).sum())
        aug = GanAugment(conditional_ckpt({str(tmp_path)!r}), p=1.0)
        aug(torch.randn(4, 16384), ["yes"] * 4)
        ds = datasets.Dataset.from_dict({{"audio": [{{"array": np.zeros(16000, np.float32), "sampling_rate": 16000}}] * 8,
                                          "label": ["yes", "no"] * 4}})
        out = ds.map(aug.hf_map(ratio=1.0), batched=True, batch_size=2, num_proc=2, remove_columns=ds.column_names)
        print("rows", len(out), sum(out["synthetic"]))
    """)
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "rows 16 8" in done.stdout


def test_audiofolder_with_torchcodec_end_to_end(mini_sc, aug, tmp_path):
    """Issue 15.2: load_dataset("audiofolder") (Audio() decoded by torchcodec) through hf_map, and a
    `ganaug generate --format hf` bank read back with datasets' own decoding."""
    from ganaug.augment import generate_bank

    root = tmp_path / "folder"
    for f, label in _files(mini_sc, per_label=3):
        (root / label).mkdir(parents=True, exist_ok=True)
        (root / label / f.name).write_bytes(f.read_bytes())
    ds = datasets.load_dataset("audiofolder", data_dir=str(root), split="train")
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["audio"].decode
    out = ds.map(aug.hf_map(ratio=1.0, features=ds.features), batched=True, remove_columns=ds.column_names)
    names = ds.features["label"].names
    assert len(out) == 15 and sum(out["synthetic"]) == 6  # 3 rows each of yes and no; _silence_ is kept as is
    for row in out:
        samples = row["audio"].get_all_samples()  # torchcodec decodes real and synthetic rows alike
        assert samples.sample_rate == 16000 and samples.data.shape == (1, 16000)
        if row["synthetic"]:
            assert names[row["label"]] in ("yes", "no") and float(samples.data.abs().sum()) > 0
    bank = generate_bank(aug.source.entries["yes"][0], tmp_path / "hf_bank", per_label=2, format="hf", progress=False)
    saved = datasets.load_from_disk(str(tmp_path / "hf_bank"))
    decoded = saved[0]["audio"].get_all_samples()
    label = saved.features["label"].names[saved[0]["label"]]
    assert torch.allclose(decoded.data[0], bank.clips(label)[0], atol=1e-4)
