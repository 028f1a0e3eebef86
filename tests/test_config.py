"""ganaug.config: preset chains, unknown keys and wrong types as one clear error, the packaged YAMLs."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest

from ganaug.config import HparamsError, chain, load_hparams, packaged_dir, packaged_hparams, preset_summaries

REPO = Path(__file__).resolve().parents[1]
PATHS = {"data_folder": "d", "output_folder": "o"}


def test_presets_chain_to_any_depth():
    assert [p.stem for p in chain("wavegan_tiny")] == ["wavegan", "wavegan_conditional", "wavegan_cpu", "wavegan_tiny"]
    hp, resolved = load_hparams("wavegan_tiny", PATHS)
    assert hp["conditional"] is True                      # from wavegan_conditional
    assert hp["num_threads"] == 1 and hp["device"] == "cpu"   # from wavegan_cpu
    assert hp["model_dim"] == 8 and hp["labels"] == ["yes", "no"]   # its own
    assert hp["lr"] == 0.0001 and hp["betas"] == [0.5, 0.9]          # the base's training block
    assert "conditional: true" in resolved.lower() and "model_dim: 8" in resolved and not re.search(r"^base:", resolved, re.M)
    hp, _ = load_hparams("wavegan_tiny", {**PATHS, "model_dim": "4"})   # the command line wins
    assert hp["model_dim"] == 4


def test_one_base_per_family_and_the_training_block_once():
    owners = sorted(p.stem for p in packaged_dir().glob("*.yaml") if re.search(r"^d_steps_per_g_step:", p.read_text(), re.M))
    assert owners == ["wavegan", "wavegan_fast"]          # the base defines it; only the other recipe changes it
    conditional = (packaged_dir() / "wavegan_conditional.yaml").read_text()
    assert [line for line in conditional.splitlines() if line and not line.startswith("#")] == [
        "base: wavegan", "conditional: True"]
    for family in ("specgan", "tifgan"):
        hp, _ = load_hparams(family, PATHS)
        assert hp["model"] == family and hp["conditional"] is False and hp["d_steps_per_g_step"] == 5


def test_labels_are_a_list_in_every_file():
    for name in packaged_hparams():
        text = (packaged_dir() / f"{name}.yaml").read_text()
        for line in re.findall(r"^labels:.*$", text, re.M):
            assert re.match(r"labels: \[", line), f"{name}.yaml: {line}"
        if re.search(r"^labels:", text, re.M) or "base:" in text:
            hp, _ = load_hparams(name, PATHS)
            if "labels" in hp:
                assert isinstance(hp["labels"], list) and all(isinstance(x, str) for x in hp["labels"]), name
    hp, _ = load_hparams("wavegan", {**PATHS, "labels": "yes,no"})      # --labels=yes,no still works
    assert hp["labels"] == ["yes", "no"]
    hp, _ = load_hparams("kws", {**PATHS, "labels": "[up, down]"})
    assert hp["labels"] == ["up", "down"]


def test_unknown_keys_fail_in_presets_and_overrides(tmp_path):
    child = tmp_path / "mine.yaml"
    child.write_text("# my preset\nbase: wavegan_tiny\nmodel_dimm: 4\n")
    with pytest.raises(HparamsError) as err:
        load_hparams(child, PATHS)
    message = str(err.value)
    assert "\n" not in message and f"{child}: model_dimm" in message and "defines no key 'model_dimm'" in message
    assert "known keys:" in message and "model_dim" in message and "wavegan.yaml" in message
    with pytest.raises(HparamsError, match=r"^--max_stepz: .*wavegan.yaml defines no key 'max_stepz'; known keys"):
        load_hparams("wavegan_tiny", {**PATHS, "max_stepz": "3"})
    loop = tmp_path / "loop.yaml"
    loop.write_text("base: loop2\n")
    (tmp_path / "loop2.yaml").write_text("base: loop\n")
    with pytest.raises(HparamsError, match="loop"):
        load_hparams(loop, PATHS)
    tagged = tmp_path / "tagged.yaml"
    tagged.write_text("base: wavegan\noutput_folder: !ref <data_folder>/out\n")
    with pytest.raises(HparamsError, match="plain values"):
        load_hparams(tagged, PATHS)


@pytest.mark.parametrize("key, value, kind", [
    ("seed", "abc", "an integer"), ("lr", "abc", "a number"), ("betas", "0.5", "a list, e.g. [a, b]"),
    ("model_dim", "abc", "an integer"), ("progress", "maybe", "True or False"), ("model_dim", "2.5", "an integer")])
def test_override_types_are_checked_against_the_yaml(key, value, kind):
    with pytest.raises(HparamsError) as err:
        load_hparams("wavegan_conditional", {**PATHS, key: value})
    assert str(err.value).startswith(f"--{key}={value}: {key} is {kind} in ") and "\n" not in str(err.value)


def test_values_are_converted_to_the_yaml_type():
    hp, _ = load_hparams("wavegan", {**PATHS, "lr": "1e-3", "betas": "[0.0, 0.99]", "max_steps": "7",
                                     "progress": "False", "cache_dir": "/tmp/c", "ema_decay": "1"})
    assert hp["lr"] == 0.001 and hp["betas"] == [0.0, 0.99] and hp["max_steps"] == 7 and hp["progress"] is False
    assert hp["cache_dir"] == "/tmp/c" and hp["ema_decay"] == 1.0 and isinstance(hp["ema_decay"], float)


def test_model_dim_range_is_checked_before_anything_is_built(tmp_path):
    huge = tmp_path / "huge.yaml"
    huge.write_text("base: wavegan_tiny\nmodel_dim: 100000\n")
    with pytest.raises(HparamsError, match=r"^model_dim=100000: must be between 1 and 256"):
        load_hparams(huge, PATHS)


def test_broken_yaml_names_the_file_and_line(tmp_path):
    broken = tmp_path / "broken.yaml"
    broken.write_text("base: wavegan\nlr: 0.1\nbetas: [0.5, 0.9\nseed: 1\n")
    with pytest.raises(HparamsError, match=rf"^{re.escape(str(broken))}:\d+: broken YAML"):
        load_hparams(broken, PATHS)
    wav = tmp_path / "text.wav"
    wav.write_bytes(b"RIFF\x00\x00")
    with pytest.raises(HparamsError, match="not a YAML file"):
        load_hparams(wav, PATHS)


def test_presets_have_a_summary_line():
    summaries = dict(preset_summaries())
    assert set(summaries) == set(packaged_hparams()) and all(summaries.values())


def test_the_wheel_ships_the_yamls_and_every_subpackage():
    """pyproject maps hparams/ into the package (no symlink) and lists every subpackage of ganaug."""
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["setuptools"]
    assert config["package-dir"] == {"ganaug.hparams": "hparams"}
    assert config["package-data"]["ganaug.hparams"] == ["*.yaml"]
    found = {".".join(p.parent.relative_to(REPO).parts) for p in (REPO / "ganaug").rglob("__init__.py")}
    assert found | {"ganaug.hparams"} == set(config["packages"])
    assert not (REPO / "ganaug" / "hparams").is_symlink() and not (REPO / "ganaug" / "hparams.py").exists()
