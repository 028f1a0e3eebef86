"""ganaug ablate: the quick preset end to end on mini_sc, resumability, and the statistics."""

from __future__ import annotations

import csv
import json
import math

import pytest

from ganaug.ablation import load_ablation_hparams, markdown_table, mean_std_ci, run_ablation, summarize, t_critical
from ganaug.hparams import HparamsError


def test_ci_math_on_known_numbers():
    mean, std, ci = mean_std_ci([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9) and std == pytest.approx(0.1)
    assert ci == pytest.approx(4.3027 * 0.1 / math.sqrt(3), rel=1e-6)
    assert mean_std_ci([0.7]) == (0.7, None, None)
    assert t_critical(2) == 4.3027 and t_critical(35) == t_critical(30) and t_critical(1000) == 1.96
    rows = [{"speaker_fraction": 0.5, "augmentation": a, "seed": s, "test_acc": v, "eval_acc": None}
            for a, vals in (("none", [0.6, 0.7]), ("gan_conditional", [0.7, 0.8])) for s, v in enumerate(vals)]
    summary = {s["augmentation"]: s for s in summarize(rows)}
    assert summary["gan_conditional"]["delta_vs_none"] == pytest.approx(0.1)
    assert summary["none"]["test_acc_ci95"] == pytest.approx(12.7062 * math.sqrt(0.005) / math.sqrt(2))
    table = markdown_table(list(summary.values()), ["none", "gan_conditional"])
    assert "| 0.5 | none | 2 | 65.00 |" in table and "+10.00" in table


def test_quick_preset_is_a_small_override_of_the_base():
    hp, resolved = load_ablation_hparams("ablation_quick", {"data_folder": "d", "output_folder": "o"})
    assert hp["labels"] == "yes,no" and hp["device"] == "cpu"
    assert hp["kws_overrides"]["number_of_epochs"] == 1 and hp["kws_overrides"]["channels"] == 16
    assert hp["gan_overrides"]["model_dim"] == 8 and hp["gan_overrides"]["seed"] == 0  # kept from the base
    assert hp["augmentations"] == ["none", "classic", "gan_per_keyword", "gan_conditional", "classic+gan"]
    with pytest.raises(HparamsError, match="augmentations"):
        run_ablation("ablation_quick", {"data_folder": "d", "output_folder": "o", "augmentations": ["mixup"]}, progress=False)


def test_quick_ablation_end_to_end_and_resume(mini_sc, tmp_path, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    overrides = {"data_folder": str(mini_sc), "output_folder": str(tmp_path / "abl"), "speaker_fractions": [0.5],
                 "seeds": [0, 1], "augmentations": ["none", "classic+gan"], "tstr": True,
                 "kws_overrides": {"channels": 8, "num_blocks": 1, "synthetic_per_label": 4}}
    out = run_ablation("ablation_quick", overrides, progress=False)
    assert out["ran"] == 6 and out["skipped"] == 0
    with open(out["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert sorted({r["augmentation"] for r in rows}) == ["classic+gan", "none", "tstr"] and len(rows) == 6
    assert all(0.0 <= float(r["test_acc"]) <= 1.0 for r in rows)
    table = open(out["markdown"]).read()
    assert "95% CI" in table and "| 0.5 | tstr | 2 |" in table
    assert open(out["plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # the generator saw this fraction's training speakers, the same ones as the classifier
    gan = json.loads((tmp_path / "abl" / "gans" / "f0.5" / "conditional" / "config.json").read_text())
    cell = json.loads((tmp_path / "abl" / "cells" / "f0.5_classic_gan_s0" / "results.json").read_text())
    assert gan["data"]["split"] == "train" and gan["data"]["speaker_fraction"] == 0.5
    assert gan["data"]["num_speakers"] == cell["train_speakers"] and gan["data"]["num_clips"] == cell["num_train"]
    assert cell["synthetic_rows"] > 0 and cell["augmentation"]["classic"]
    again = run_ablation("ablation_quick", overrides, progress=False)
    assert again["ran"] == 0 and again["skipped"] == 6 and again["rows"] == out["rows"]


def test_full_preset_loads_as_a_plain_file():
    hp, _ = load_ablation_hparams("ablation", {"data_folder": "d", "output_folder": "o", "seeds": "[3, 4, 5]"})
    assert hp["seeds"] == [3, 4, 5] and hp["speaker_fractions"] == [0.1, 0.25, 0.5, 1.0] and hp["tstr"] is True


def test_generator_family_axis(mini_sc, tmp_path, monkeypatch):
    from ganaug.ablation.grid import plan_cells

    hp, _ = load_ablation_hparams("ablation_quick", {"data_folder": "d", "output_folder": "o",
                                                     "generator_families": "[wavegan, specgan]"})
    labels = list(dict.fromkeys(c["augmentation"] for c in plan_cells(hp)))
    assert labels == ["none", "classic", "gan_per_keyword", "gan_per_keyword@specgan", "gan_conditional",
                      "gan_conditional@specgan", "classic+gan", "classic+gan@specgan", "tstr", "tstr@specgan"]
    with pytest.raises(HparamsError, match="generator_families"):
        run_ablation("ablation_quick", {"data_folder": "d", "output_folder": "o", "generator_families": ["melgan"]},
                     progress=False)
    # one real SpecGAN arm: its conditional generator is trained from the specgan config
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    out = run_ablation("ablation_quick", {
        "data_folder": str(mini_sc), "output_folder": str(tmp_path / "abl"), "speaker_fractions": [1.0], "seeds": [0],
        "augmentations": ["gan_conditional"], "tstr": False, "generator_families": ["specgan"],
        "kws_overrides": {"channels": 8, "num_blocks": 1}}, progress=False)
    assert [r["augmentation"] for r in out["rows"]] == ["gan_conditional@specgan"]
    config = json.loads((tmp_path / "abl" / "gans" / "f1" / "conditional_specgan" / "config.json").read_text())
    assert config["model"] == "specgan" and config["label_names"] == ["yes", "no"]
    assert out["rows"][0]["synthetic_rows"] > 0
