"""The ganaug command and HyperPyYAML handling."""

from __future__ import annotations

import subprocess
import sys

import pytest

from ganaug import __version__
from ganaug.cli import main
from ganaug.config import HparamsError, load_hparams, packaged_hparams, parse_overrides, resolve_hparams_file, split_labels


def test_version_and_help():
    out = subprocess.run([sys.executable, "-m", "ganaug.cli", "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"ganaug {__version__}"
    out = subprocess.run([sys.executable, "-m", "ganaug.cli", "--help"], capture_output=True, text=True, check=True)
    for command in ("train", "generate", "evaluate", "report", "kws", "ablate", "demo"):
        assert command in out.stdout


def test_overrides_parse_as_text():
    assert parse_overrides(["--labels=yes,no", "--max_steps", "3", "--device=cpu"]) == {
        "labels": "yes,no", "max_steps": "3", "device": "cpu"}
    with pytest.raises(HparamsError, match="--key=value"):
        parse_overrides(["stray"])
    with pytest.raises(HparamsError, match="give a value"):
        parse_overrides(["--max_steps"])


def test_load_hparams_applies_overrides_and_placeholders(tmp_path):
    path = tmp_path / "h.yaml"
    path.write_text("data_folder: !PLACEHOLDER\nlabels: yes,no\nmax_steps: 10\nout: !ref <data_folder>/out\n")
    hp, resolved = load_hparams(path, {"data_folder": "/d", "max_steps": "3", "labels": "yes"})
    assert hp["max_steps"] == 3 and hp["out"] == "/d/out" and hp["labels"] == ["yes"]   # labels: always a list
    assert split_labels(hp["labels"]) == ["yes"] and split_labels("yes, no") == ["yes", "no"]
    assert "max_steps: 3" in resolved and "/d/out" in resolved
    with pytest.raises(HparamsError, match="defines no key 'max_stepz'"):
        load_hparams(path, {"data_folder": "/d", "max_stepz": "3"})
    with pytest.raises(HparamsError, match="data_folder"):
        load_hparams(path, {})


def test_bare_names_find_packaged_hparams(tmp_path):
    with pytest.raises(HparamsError, match="no such hparams file"):
        resolve_hparams_file("no_such_config")
    packaged = packaged_hparams()
    assert {"wavegan", "wavegan_conditional", "wavegan_cpu", "wavegan_tiny", "kws", "ablation", "ablation_quick",
            "specgan", "tifgan"} <= set(packaged)
    for name in packaged:  # every packaged config resolves by its bare name
        assert resolve_hparams_file(name).read_text().strip()


def test_cli_rejects_bad_override(capsys):
    assert main(["train", "whatever.yaml", "stray"]) == 2
    err = capsys.readouterr().err
    assert "--key=value" in err and err.count("\n") == 1


def _help(*args) -> str:
    return subprocess.run([sys.executable, "-m", "ganaug.cli", *args, "--help"], capture_output=True, text=True,
                          check=True).stdout


def test_help_lists_the_packaged_presets_and_where_keys_are_documented():
    train = _help("train")
    for name in ("wavegan", "wavegan_conditional", "wavegan_cpu", "wavegan_tiny", "specgan", "tifgan"):
        assert f"\n  {name} " in train, name
    assert "The small CPU run: a d=8 conditional WaveGAN" in train and "kws " not in train
    assert "keys are documented in hparams/wavegan.yaml" in train
    kws = _help("kws")
    assert "\n  kws " in kws and "hparams/kws.yaml" in kws
    ablate = _help("ablate")
    assert "\n  ablation_cpu " in ablate and "hparams/ablation.yaml" in ablate
    demo = " ".join(_help("demo").split())
    assert "train a small" in demo and "conditional WaveGAN, evaluate it, run the quick ablation" in demo


def test_data_and_out_aliases_on_every_command():
    for command in ("generate", "evaluate", "report", "demo"):
        text = _help(command)
        assert "--data_folder" in text or command == "generate", command
        assert "--output_folder" in text, command
    assert "--num-clips" in _help("evaluate") and "--num-samples" not in _help("evaluate")


def test_multiword_flags_take_either_spelling(tmp_path):
    """`--per-label`/`--per_label`, `--min_confidence`/`--min-confidence`, ...: one meaning, both spellings."""
    from ganaug.cli import build_parser

    parser, d = build_parser(), str(tmp_path)   # any existing folder stands for the checkpoint and the classifier
    a = parser.parse_args(["generate", d, "--per-label", "3", "--out", "x", "--min_confidence", "0.8",
                           "--batch-size", "8", "--filter_classifier", d])
    b = parser.parse_args(["generate", d, "--per_label", "3", "--out", "x", "--min-confidence", "0.8",
                           "--batch_size", "8", "--filter-classifier", d])
    assert vars(a) == vars(b) and a.per_label == 3 and a.min_confidence == 0.8 and a.batch_size == 8
    assert parser.parse_args(["evaluate", d, "--data", d, "--num_clips", "5"]).num_clips == 5
