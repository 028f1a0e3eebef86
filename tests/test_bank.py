"""SyntheticBank and `ganaug generate`: files + SpeechBrain CSV, or a saved HF dataset."""

from __future__ import annotations

import csv
import pickle

import pytest
import torch
from augment_helpers import conditional_ckpt, per_keyword_run
from conftest import SHARED_DATA

from ganaug import GanAugment, SyntheticBank
from ganaug.augment import generate_bank
from ganaug.augment.source import GeneratorSource, mix_seed
from ganaug.cli import build_parser
from ganaug.kws.generate import main as generate_main


SHARED_SC = SHARED_DATA / "speech_commands"


def run_generate(argv: list[str]) -> int:
    """`ganaug generate ARGV`: the CLI's parser, then the command's main (ganaug.kws.generate:main)."""
    args = vars(build_parser().parse_args(["generate", *argv]))
    args.pop("command")
    return generate_main(**args, progress=False)


@pytest.fixture(scope="module")
def cond(tmp_path_factory):
    return conditional_ckpt(tmp_path_factory.mktemp("bank"))


def test_cli_generate_flac_bank_with_speechbrain_manifest(cond, tmp_path):
    out = tmp_path / "bank"
    assert run_generate([str(cond), "--per-label", "3", "--out", str(out), "--batch-size", "2"]) == 0
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
    assert (tmp_path / "b" / ".tensors" / mapped.content_key() / "yes.npy").is_file()
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


def test_regenerated_bank_never_serves_the_old_clips(tmp_path):
    """Issue 12.1: the .tensors cache is keyed by the bank's content, not by label only."""
    from augment_helpers import conditional_ckpt

    from augment_helpers import tiny_generator

    from ganaug.checkpoint import save_generator

    first = conditional_ckpt(tmp_path / "a")
    second = save_generator(tmp_path / "b", tiny_generator(["yes", "no"], seed=7), step=0)  # other weights
    out = tmp_path / "bank"
    old = generate_bank(first, out, per_label=2, progress=False)
    old_clips = old.clips("yes").clone()  # writes the cache
    new = generate_bank(second, out, per_label=2, progress=False)
    served_bank = SyntheticBank(out).clips("yes")
    served_aug = GanAugment(bank=out, p=1.0)(torch.zeros(1, 16384), ["yes"])[0][0]
    expected = GeneratorSource(second).generate(["yes"] * 2, [mix_seed(0, "yes", i) for i in range(2)])
    assert (served_bank - expected).abs().max() < 2e-4 and not torch.allclose(served_bank, old_clips)
    assert any((served_aug - c).abs().max() < 2e-4 for c in expected)
    assert [p.name for p in (out / ".tensors").iterdir()] == [new.content_key()]  # the stale cache is gone


def test_a_bank_regenerated_in_the_other_format_serves_the_new_clips(tmp_path):
    """A flac bank regenerated as an HF bank into the same folder (and back): the old index goes."""
    from augment_helpers import conditional_ckpt, tiny_generator

    from ganaug.checkpoint import save_generator

    first = conditional_ckpt(tmp_path / "a")
    second = save_generator(tmp_path / "b", tiny_generator(["yes", "no"], seed=7), step=0)
    out = tmp_path / "bank"
    generate_bank(first, out, per_label=2, progress=False)                 # flac + manifest.csv
    generate_bank(second, out, per_label=2, format="hf", progress=False)   # a saved HF dataset
    expected = GeneratorSource(second).generate(["yes"] * 2, [mix_seed(0, "yes", i) for i in range(2)])
    bank = SyntheticBank(out)
    assert bank.format == "hf" and (bank.clips("yes") - expected).abs().max() < 2e-4
    generate_bank(first, out, per_label=2, progress=False)                 # and back to flac
    assert SyntheticBank(out).format == "csv" and not (out / "dataset_info.json").exists()


def test_relative_bank_path_from_another_working_directory(cond, tmp_path, monkeypatch):
    """Issue 15.1: GanAugment(bank="banks/cond") and GanMixDataset(real, "banks/cond") as the README writes them."""
    from ganaug import GanMixDataset, KeywordDataset

    monkeypatch.chdir(tmp_path)
    generate_bank(cond, "banks/cond", per_label=2, progress=False)
    aug = GanAugment(bank="banks/cond", p=1.0)
    out, _ = aug(torch.zeros(2, 16000), ["yes", "no"])
    assert out.abs().sum(dim=1).min() > 0
    real = KeywordDataset(SHARED_SC, labels=["yes", "no"], split="test")
    mix = GanMixDataset(real, "banks/cond", ratio=0.05, seed=0)
    item = mix[len(real)]
    assert item["synthetic"] and item["wav"].shape == (real.num_samples,) and item["wav"].abs().sum() > 0
    monkeypatch.chdir(tmp_path / "banks")  # the bank folder was made absolute when opened
    assert mix.synthetic_item(0)["wav"].abs().sum() > 0


def test_synthesize_serves_evaluate_report_and_tstr(cond, tmp_path):
    """The one call evaluate/report/listen/TSTR use: clips of given labels, seeded, at a rate and length."""
    from augment_helpers import tiny_generator

    from ganaug.augment import synthesize
    from ganaug.checkpoint import save_generator

    bank = generate_bank(cond, tmp_path / "b", per_label=3, progress=False)
    source = GeneratorSource(cond)
    names = ["yes", "no", "yes", "no", "yes"]
    wavs, kept, accepted = synthesize(source, names, seed=0, batch_size=2)
    assert wavs.shape == (5, 16384) and kept == names and bool(accepted.all())
    # the j-th clip of a label is the bank's clip j (16-bit rounding apart)
    assert (wavs[4] - bank.clips("yes")[2]).abs().max() < 2e-4 and (wavs[3] - bank.clips("no")[1]).abs().max() < 2e-4
    again, _, _ = synthesize(source, names, seed=0, batch_size=5)
    assert (again - wavs).abs().max() < 1e-2  # batch size changes speed, not content (bf16 last bits)
    low, _, _ = synthesize(source, names[:2], seed=0, sample_rate=8000, num_samples=9000)
    assert low.shape == (2, 9000) and low[:, 8192:].abs().sum() == 0  # 16384 @ 16 kHz = 8192 @ 8 kHz, padded at the end
    uncond = save_generator(tmp_path / "uncond", tiny_generator(None), step=0)
    with pytest.raises(Exception, match="unconditional"):
        GeneratorSource(uncond)
    free = GeneratorSource(uncond, unconditional=True)
    clips, kept, _ = synthesize(free, [None] * 3, seed=1)
    assert clips.shape == (3, 16384) and kept == [None] * 3 and free.label_names == [] and free.kind == "unconditional"


def test_generate_user_errors_are_one_line(cond, tmp_path, capsys):
    from ganaug.cli import main as cli

    for argv, needle in (([str(cond), "--per-label", "0", "--out", str(tmp_path / "a")], "--per_label: 0"),
                         ([str(tmp_path / "missing"), "--per-label", "1", "--out", str(tmp_path / "b")], "no such folder"),
                         ([str(cond), "--per-label", "1", "--out", str(tmp_path / "c"), "--device", "gpu"], "gpu")):
        assert cli(["generate", *argv]) == 2             # the CLI's parser: one line, exit 2, before any work
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and needle in err and err.startswith("ganaug generate: error:"), err
    assert generate_main(str(cond), 0, str(tmp_path / "d"), progress=False) == 2      # the library's own check
    assert "per_label=0" in capsys.readouterr().err
    assert not any((tmp_path / n).exists() for n in "abcd")


# -- issue 25, item 6: a bank is written into a new folder and swapped in whole --------------------------
def test_a_bank_regenerated_while_a_reader_decodes_is_never_mixed(tmp_path, monkeypatch):
    from augment_helpers import tiny_generator

    import ganaug.augment.bank as bank_module
    from ganaug.checkpoint import save_generator

    first = conditional_ckpt(tmp_path / "a")
    second = save_generator(tmp_path / "b", tiny_generator(["yes", "no"], seed=7), step=0)
    out = tmp_path / "bank"
    generate_bank(first, out, per_label=8, progress=False)
    reader = SyntheticBank(out)                                   # opened on the first bank's index
    decode, calls = bank_module.load_audio, []

    def decode_while_regenerated(path, *args, **kwargs):
        calls.append(path)
        if len(calls) == 4:                                       # halfway through "yes": 5 other clips replace 8
            generate_bank(second, out, per_label=5, progress=False)
        return decode(path, *args, **kwargs)

    monkeypatch.setattr(bank_module, "load_audio", decode_while_regenerated)
    served = reader.clips("yes")
    expected = GeneratorSource(second).generate(["yes"] * 5, [mix_seed(0, "yes", i) for i in range(5)])
    assert served.shape == (5, 16384) and (served - expected).abs().max() < 2e-4   # was: 4 old + 4 new clips
    assert sorted(p.name for p in (out / "yes").iterdir()) == [f"yes_{i:06d}.flac" for i in range(5)]  # no old extras
    assert [p.name for p in (out / ".tensors").iterdir()] == [reader.content_key()]    # nothing under the old key
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []        # no temp folder left


def test_generate_refuses_an_out_inside_a_checkpoint_or_a_folder_that_is_not_a_bank(cond, tmp_path, capsys):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "notes.txt").write_text("mine")
    before = sorted(p.name for p in cond.iterdir())
    for out, needle in ((cond, f"--out {cond}: inside the checkpoint {cond}"),   # was: a bank written into it
                        (cond / "bank", f"inside the checkpoint {cond}"), (mine, "is not a bank")):
        assert run_generate([str(cond), "--per-label", "1", "--out", str(out)]) == 2
        err = capsys.readouterr().err
        assert err.count("\n") == 1 and err.startswith("ganaug generate: error:") and needle in err, err
    assert sorted(p.name for p in cond.iterdir()) == before and (mine / "notes.txt").read_text() == "mine"


def test_the_temp_folder_of_a_killed_generate_is_removed_by_the_next(cond, tmp_path):
    import subprocess
    import sys

    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"], capture_output=True, text=True)
    stale = tmp_path / f".bank.{int(dead.stdout)}.abcd1234.tmp"
    (stale / "yes").mkdir(parents=True)
    generate_bank(cond, tmp_path / "bank", per_label=1, progress=False)
    assert not stale.exists() and SyntheticBank(tmp_path / "bank").counts() == {"yes": 1, "no": 1}
