"""SyntheticBank and `ganaug generate`: files + SpeechBrain CSV, or a saved HF dataset."""

from __future__ import annotations

import csv
import pickle

import pytest
import torch
from augment_helpers import conditional_ckpt, per_keyword_run

from ganaug import GanAugment, SyntheticBank
from ganaug.augment import generate_bank
from ganaug.augment.source import GeneratorSource, mix_seed
from ganaug.cli import main as cli_main


@pytest.fixture(scope="module")
def cond(tmp_path_factory):
    return conditional_ckpt(tmp_path_factory.mktemp("bank"))


def test_cli_generate_flac_bank_with_speechbrain_manifest(cond, tmp_path):
    out = tmp_path / "bank"
    assert cli_main(["generate", str(cond), "--per-label", "3", "--out", str(out), "--batch-size", "2"]) == 0
    rows = list(csv.DictReader(open(out / "manifest.csv")))
    assert list(rows[0]) == ["ID", "duration", "wav", "spk_id", "label"]
    assert [r["label"] for r in rows] == ["yes"] * 3 + ["no"] * 3
    assert rows[0]["wav"] == "$data_root/yes/yes_000000.flac" and (out / "yes" / "yes_000000.flac").is_file()
    bank = SyntheticBank(out)
    assert bank.counts() == {"yes": 3, "no": 3} and bank.sample_rate == 16000
    clips = bank.clips("no")
    assert clips.shape == (3, 16384) and clips.dtype == torch.float32
    # clip i of a label is G's clip for seed (seed, label, i), whatever the batch size (16-bit rounding)
    source = GeneratorSource(cond)
    expected = source.generate(["no"] * 3, [mix_seed(0, "no", i) for i in range(3)])
    assert (clips - expected).abs().max() < 2e-4
    # readable by the KeywordDataset manifest reader as well
    from ganaug.data import from_manifest
    ds = from_manifest(out / "manifest.csv", data_root=out)
    assert sorted(ds.label_names) == ["no", "yes"] and len(ds) == 6


def test_hf_bank_round_trip_and_wav_format(tmp_path):
    run = per_keyword_run(tmp_path)
    hf_bank = generate_bank(run, tmp_path / "hf", per_label=2, format="hf", progress=False)
    wav_bank = generate_bank(run, tmp_path / "wav", per_label=2, format="wav", progress=False)
    import datasets
    ds = datasets.load_from_disk(str(tmp_path / "hf"))
    assert isinstance(ds.features["audio"], datasets.Audio) and ds.features["label"].names == ["no", "yes"]
    assert (tmp_path / "wav" / "yes" / "yes_000001.wav").is_file()
    for label in ("yes", "no"):
        torch.testing.assert_close(hf_bank.clips(label), wav_bank.clips(label), atol=1e-4, rtol=0)  # 16-bit LSB


def test_bank_memory_map_in_ram_and_pickle(cond, tmp_path):
    generate_bank(cond, tmp_path / "b", per_label=4, progress=False)
    mapped, in_ram = SyntheticBank(tmp_path / "b"), SyntheticBank(tmp_path / "b", mmap=False)
    torch.testing.assert_close(mapped.clips("yes"), in_ram.clips("yes"))
    assert (tmp_path / "b" / ".tensors" / "yes.npy").is_file()
    copy = pickle.loads(pickle.dumps(mapped))
    assert copy._tensors == {} and torch.equal(copy.clips("yes"), mapped.clips("yes"))
    drawn = mapped.draw("no", 5, generator=torch.Generator().manual_seed(0))
    assert drawn.shape == (5, 16384)
    assert all(any(torch.equal(d, c) for c in mapped.clips("no")) for d in drawn)


def test_gan_augment_draws_from_a_bank(cond, tmp_path):
    bank = generate_bank(cond, tmp_path / "b", per_label=4, progress=False)
    aug = GanAugment(bank=tmp_path / "b", p=1.0)
    wavs = torch.zeros(4, 16384)
    out, labels = aug(wavs, ["yes", "no", "no", "yes"], generator=torch.Generator().manual_seed(0))
    for row, name in zip(out, labels):
        assert any(torch.equal(row, c) for c in bank.clips(name))
    assert GanAugment(tmp_path / "b", p=1.0).source.label_names == ["yes", "no"]  # a bank folder as ckpt


def test_bank_bad_input(cond, tmp_path):
    with pytest.raises(ValueError, match="format='mp3'"):
        generate_bank(cond, tmp_path / "x", per_label=1, format="mp3")
    with pytest.raises(ValueError, match="per_label=0"):
        generate_bank(cond, tmp_path / "x", per_label=0)
    with pytest.raises(FileNotFoundError, match="ganaug generate"):
        SyntheticBank(tmp_path / "nothing")
    bank = generate_bank(cond, tmp_path / "b", per_label=1, progress=False)
    with pytest.raises(ValueError, match="'maybe' is not in the bank"):
        bank.clips("maybe")
