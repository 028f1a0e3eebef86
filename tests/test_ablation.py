"""ganaug ablate: the quick preset end to end on mini_sc, resumability, the new arms and axes, and the statistics."""

from __future__ import annotations

import csv
import json
import math
import re

import pytest
from scipy import stats as scipy_stats

from ganaug.ablation import (markdown_table, mean_std_ci, paired_bootstrap, paired_t, run_ablation, seed_table, summarize,
                             wilson_interval)
from ganaug.ablation.grid import plan_cells
from ganaug.ablation.intervals import t_interval
from ganaug.ablation.stats import TOO_SMALL, html_table
from ganaug.config import HparamsError, load_hparams

BASE = {"data_folder": "d", "output_folder": "o"}


def _rows(values, aug="none", fraction=0.5, num_test=40, correct=None):
    """Rows of one arm, a seed per value; ``correct``: per seed, the 0/1 correctness of each test clip."""
    rows = []
    for s, v in enumerate(values):
        row = {"speaker_fraction": fraction, "augmentation": aug, "seed": s, "test_acc": v, "eval_acc": None,
               "num_test": num_test}
        if correct is not None:
            row["test_targets"] = [i % 4 for i in range(len(correct[s]))]
            row["test_predictions"] = [t if c else (t + 1) % 4 for t, c in zip(row["test_targets"], correct[s])]
            row["test_acc"], row["num_test"] = sum(correct[s]) / len(correct[s]), len(correct[s])
        rows.append(row)
    return rows


def test_interval_math_is_scipys():
    mean, std, ci = mean_std_ci([0.8, 0.9, 1.0])
    assert mean == pytest.approx(0.9) and std == pytest.approx(0.1)
    assert ci == pytest.approx(scipy_stats.t.ppf(0.975, 2) * 0.1 / math.sqrt(3), rel=1e-9)
    assert mean_std_ci([0.7]) == (0.7, None, None)
    lo, hi = wilson_interval(60, 120)
    assert lo == pytest.approx(0.4113, abs=1e-3) and hi == pytest.approx(0.5887, abs=1e-3)
    # paired t: the interval of the per-seed differences, narrower than the two arms' own spreads
    a, b = [0.60, 0.70, 0.80, 0.65], [0.55, 0.66, 0.74, 0.62]
    mean, low, high = paired_t(a, b)
    diff = [x - y for x, y in zip(a, b)]
    half = scipy_stats.t.ppf(0.975, 3) * scipy_stats.tstd(diff) / 2
    assert mean == pytest.approx(sum(diff) / 4) and (low, high) == pytest.approx((mean - half, mean + half))
    assert 0 < low and high < mean_std_ci(a)[2]
    assert paired_t([0.5], [0.4]) is None
    # the bootstrap over clips: B right on every clip A misses costs exactly that share, and is certain
    a_correct = [[1] * 30 + [0] * 10, [1] * 28 + [0] * 12]
    b_correct = [[1] * 40, [1] * 40]
    mean, low, high = paired_bootstrap(a_correct, b_correct)
    assert mean == pytest.approx(-0.275) and low < mean < high < 0
    assert paired_bootstrap(a_correct, [[1] * 39, [1] * 39]) is None          # other clips: not paired


def test_summary_pairs_arms_by_seed_and_clip_and_never_pools_seeds():
    rng = [[(i * 7 + s) % 5 != 0 for i in range(60)] for s in range(3)]               # none: ~80% right
    better = [[c or i % 3 == 0 for i, c in enumerate(seed)] for seed in rng]           # classic fixes some misses
    rows = _rows([0] * 3, "none", correct=rng) + _rows([0] * 3, "classic", correct=better)
    rows += _rows([0] * 3, "gan_conditional", correct=[[True] * 0 + [i % 4 == 0 for i in range(60)]] * 3)
    summary = {s["augmentation"]: s for s in summarize(rows)}
    classic = summary["classic"]
    assert classic["delta_vs_none"]["pairs"] == 3 and classic["delta_vs_none"]["mean"] > 0
    assert classic["delta_vs_none"]["boot_low"] > 0 and classic["delta_vs_classic"] is None
    assert summary["none"]["delta_vs_none"] is None and summary["none"]["delta_vs_classic"]["mean"] < 0
    # each seed's Wilson interval is of its own 60 clips: as wide as one run's, not sqrt(3) narrower
    for p in classic["per_seed"]:
        assert (p["test_wilson_low"], p["test_wilson_high"]) == pytest.approx(
            wilson_interval(round(p["test_acc"] * 60), 60))
    # a classifier that says one class for every clip is degenerate: no difference is shown as a number
    gan = summary["gan_conditional"]
    assert gan["degenerate"] == 0
    one_class = _rows([0] * 3, "gan_per_keyword", correct=[[i % 4 == 0 for i in range(60)]] * 3)
    for r in one_class:
        r["test_predictions"] = [0] * 60
    (deg,) = [s for s in summarize(rows + one_class) if s["augmentation"] == "gan_per_keyword"]
    assert deg["degenerate"] == 3 and deg["delta_vs_none"]["degenerate"]
    table = markdown_table(summarize(rows + one_class), ["none", "classic"])
    assert "degenerate (one class predicted)" in table and "Δ vs classic, paired seeds (t)" in table
    assert "| 50% | gan_per_keyword | 3 (3 degenerate) |" in table
    assert seed_table(summarize(rows)).count("\n") == 2 + 9


def test_intervals_stay_within_0_100_and_say_when_n_is_too_small():
    # the t interval of [0.2, 1.0, 1.0] runs past 100%: clipped and marked
    low, high, clipped = t_interval([0.2, 1.0, 1.0])
    assert 0.0 <= low < 0.5 and high == 1.0 and clipped
    # all seeds equal: the t interval is 0 wide; each seed's Wilson interval is not
    (s,) = summarize(_rows([0.5, 0.5, 0.5], num_test=40))
    assert s["test_acc_ci_low"] == s["test_acc_ci_high"] == 0.5
    assert all(0.0 < p["test_wilson_low"] < 0.5 < p["test_wilson_high"] < 1.0 for p in s["per_seed"])
    assert wilson_interval(120, 120)[1] == 1.0 and wilson_interval(0, 120)[0] == 0.0   # at the bounds, inside [0, 1]
    # one seed: no t interval, said in words
    (one,) = summarize(_rows([0.9]))
    table = markdown_table([one]) + html_table([one])
    assert table.count(TOO_SMALL) >= 2
    clipped_row = summarize(_rows([0.2, 1.0, 1.0]))
    assert "100.00*" in markdown_table(clipped_row)
    assert "<table" in html_table(clipped_row) and "|" not in html_table(clipped_row)
    # a paired difference of one seed has no interval, and says so
    pair = summarize(_rows([0.6]) + _rows([0.7], "classic"))
    assert f"+10.00 ({TOO_SMALL})" in markdown_table(pair)


def test_quick_preset_is_a_small_override_of_the_base():
    hp, resolved = load_hparams("ablation_quick", BASE)
    assert hp["labels"] == ["yes", "no"] and hp["device"] == "cpu"
    assert hp["kws_overrides"]["number_of_epochs"] == 1 and hp["kws_overrides"]["channels"] == 16
    assert hp["gan_overrides"]["model_dim"] == 8 and hp["gan_overrides"]["seed"] == 0  # kept from the base
    assert hp["filter_min_confidence"] == 0.8 and hp["generator_options"] == {}
    with pytest.raises(HparamsError, match="augmentations"):
        run_ablation("ablation_quick", {**BASE, "augmentations": ["mixup"]}, progress=False)
    with pytest.raises(HparamsError, match=r"kws_overrides.num_threads='2': a positive integer"):
        run_ablation("ablation_quick", {**BASE, "kws_overrides": {"num_threads": "2"}}, progress=False)


def test_presets_chain_and_unknown_keys_fail(tmp_path):
    # a preset of a preset of the base (the chain that failed before: base: ablation_cpu with more keys)
    mine = tmp_path / "mine.yaml"
    mine.write_text("base: ablation_cpu\nseeds: [7]\n")
    hp, resolved = load_hparams(mine, {**BASE, "speaker_fractions": "[0.5]"})
    assert hp["seeds"] == [7] and hp["device"] == "cpu" and hp["speaker_fractions"] == [0.5]
    assert hp["gan_overrides"]["max_steps"] == 150 and hp["gan_overrides"]["seed"] == 0      # two layers merged
    assert "seeds:\n- 7" in resolved or "seeds: [7]" in resolved
    bad = tmp_path / "bad.yaml"
    bad.write_text("base: ablation_quick\nseedz: [1]\n")
    with pytest.raises(HparamsError, match=r"bad.yaml: seedz.*ablation.yaml defines no key 'seedz'; known keys: .*seeds"):
        load_hparams(bad, BASE)


def test_full_preset_loads_with_every_arm():
    hp, _ = load_hparams("ablation", {**BASE, "seeds": "[3, 4, 5]"})
    assert hp["seeds"] == [3, 4, 5] and hp["speaker_fractions"] == [0.1, 0.25, 0.5, 1.0] and hp["tstr"] is True
    assert {"gan_filtered", "classic+gan_filtered"} <= set(hp["augmentations"])


def test_filtered_arms_and_generator_options_in_the_plan():
    hp, _ = load_hparams("ablation_quick", {**BASE, "speaker_fractions": "[1.0]", "seeds": "[0]", "tstr": "false",
                                            "augmentations": "[none, gan_filtered, classic+gan_filtered]",
                                            "generator_options": "{base: {}, ema: {ema_decay: 0.999}}"})
    cells = plan_cells(hp)
    assert [(c["augmentation"], c["generator_option"]) for c in cells] == [
        ("none", ""), ("gan_filtered", "base"), ("gan_filtered", "ema"),
        ("classic+gan_filtered", "base"), ("classic+gan_filtered", "ema")]
    assert cells[2]["name"] == "f1_gan_filtered_ema_s0" and cells[2]["generator"] == (1.0, "gan_conditional", "wavegan", "ema", 0, 0)
    with pytest.raises(HparamsError, match="generator_options"):
        run_ablation("ablation_quick", {**BASE, "generator_options": {"bad name": {}}}, progress=False)
    with pytest.raises(HparamsError, match="filter_min_confidence"):
        run_ablation("ablation_quick", {**BASE, "filter_min_confidence": 1.5}, progress=False)


def test_the_full_grid_says_what_it_costs_before_it_starts(sc_root, tmp_path):
    from ganaug.ablation.cost import GAN_RATES, plan_cost
    from ganaug.ablation.grid import _kws_steps

    hp, _ = load_hparams("ablation", {"data_folder": str(sc_root), "output_folder": str(tmp_path), "device": "cpu"})
    hp["device"] = "cuda"                         # priced for a GPU without needing one
    cost = plan_cost(hp, plan_cells(hp), tmp_path, _kws_steps(hp))
    # 4 fractions x 3 seeds x one conditional WaveGAN (gan_per_keyword is opt-in) x 20,000 steps
    assert cost["generators"] == 12 and cost["generator_steps"] == 240_000
    assert cost["gan_seconds"] == pytest.approx(240_000 / GAN_RATES["cuda"][0])
    assert cost["classifier_runs"] == 4 * 7 * 3 and cost["kws_seconds"] is None      # no measured GPU rate: said
    one = {**hp, "data_seed": 0, "generator_seed": 0}          # one speaker subset and generator for all seeds
    assert plan_cost(one, plan_cells(one), tmp_path, _kws_steps(hp))["generator_steps"] == 80_000
    per_keyword = {**one, "augmentations": ["gan_per_keyword"], "tstr": False}
    assert plan_cost(per_keyword, plan_cells(per_keyword), tmp_path, _kws_steps(hp))["generator_steps"] == 4 * 10 * 20_000


def test_quick_ablation_end_to_end_and_resume(mini_sc, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    overrides = {"data_folder": str(mini_sc), "output_folder": str(tmp_path / "abl"), "speaker_fractions": [0.5],
                 "seeds": [0, 1], "augmentations": ["none", "classic+gan"], "tstr": True,
                 "kws_overrides": {"channels": 8, "num_blocks": 1, "synthetic_per_label": 4}}
    out = run_ablation("ablation_quick", overrides, progress=False)
    assert out["ran"] == 6 and out["skipped"] == 0
    printed = capsys.readouterr().out
    # one generator per seed: a seed picks the speaker subset and the generator's seed
    assert printed.startswith("ganaug ablate: 2 generator(s) to train (4 generator steps), 6 classifier run(s) "
                              "(0 cell(s) finished already)\n  estimated time on cpu: generators ")
    with open(out["csv"]) as f:
        rows = list(csv.DictReader(f))
    assert sorted({r["augmentation"] for r in rows}) == ["classic+gan", "none", "tstr"] and len(rows) == 6
    assert all(0.0 <= float(r["test_acc"]) <= 1.0 and int(r["num_test"]) > 0 for r in rows)
    table = open(out["markdown"]).read()
    assert "95% CI, seeds (t)" in table and "Wilson" in table and "| 50% | tstr | 2" in table
    assert "Δ vs none, paired seeds (t)" in table and "## Every cell and seed" in table
    assert "classic+gan: a conditional wavegan trained here" in table      # what each arm used
    for s in out["summary"]:   # every interval inside [0, 1]
        assert 0.0 <= s["test_acc_ci_low"] <= s["test_acc_ci_high"] <= 1.0
        assert all(0.0 <= p["test_wilson_low"] < p["test_wilson_high"] <= 1.0 for p in s["per_seed"])
    assert open(out["plot"], "rb").read(8) == b"\x89PNG\r\n\x1a\n"
    # each seed's generator saw that seed's training speakers, the same ones as its classifier
    for seed in (0, 1):
        gan = json.loads((tmp_path / "abl" / "gans" / "f0.5" / f"conditional_d{seed}s{seed}" / "config.json").read_text())
        cell = json.loads((tmp_path / "abl" / "cells" / f"f0.5_classic_gan_s{seed}" / "results.json").read_text())
        assert gan["data"]["split"] == "train" and gan["data"]["speaker_fraction"] == 0.5
        assert gan["data"]["data_seed"] == seed and gan["training"]["seed"] == seed
        assert gan["data"]["num_speakers"] == cell["train_speakers"] and gan["data"]["num_clips"] == cell["num_train"]
        assert cell["config"]["data_seed"] == seed and cell["synthetic_rows"] > 0 and cell["augmentation"]["classic"]
    again = run_ablation("ablation_quick", overrides, progress=False)
    assert again["ran"] == 0 and again["skipped"] == 6 and again["rows"] == out["rows"]
    assert capsys.readouterr().out.startswith("ganaug ablate: 0 generator(s) to train (0 generator steps), "
                                              "0 classifier run(s) (6 cell(s) finished already)")
    # other generator settings into the same folder: refused, never the old generator served silently
    quick, _ = load_hparams("ablation_quick", {"data_folder": str(mini_sc), "output_folder": str(tmp_path / "abl")})
    changed = {**overrides, "gan_overrides": {**quick["gan_overrides"], "max_steps": 3}}
    with pytest.raises(HparamsError, match=r"conditional_d0s0: holds a generator trained with other settings \(max_steps"):
        run_ablation("ablation_quick", changed, progress=False)


def test_filtered_arm_with_a_generator_option_runs_with_the_generators_own_filter(mini_sc, tmp_path, monkeypatch):
    """gan_filtered sets the kws key gan_min_confidence; the option's generator is trained with its
    override; with no gan_filter_classifier given, the filter is the reference classifier of the
    generator's TRAIN split, found where ensure_reference put it. kws_overrides' num_threads holds for all a
    cell does, finding (or training) its filter included, and the caller's thread count is restored after."""
    import torch

    import ganaug.kws.generate as generate
    from ganaug.env import torch_threads
    from ganaug.kws.reference import ensure_reference

    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    reference = ensure_reference(mini_sc, ["yes", "no"], device="cpu", progress=False,
                                 overrides={"number_of_epochs": 1, "channels": 8, "num_blocks": 1})
    threads_at_filter, real_filter = [], generate.filter_classifier_for
    monkeypatch.setattr(generate, "filter_classifier_for",
                        lambda *a, **kw: threads_at_filter.append(torch.get_num_threads()) or real_filter(*a, **kw))
    out_dir = tmp_path / "abl"
    with torch_threads(2):
        out = run_ablation("ablation_quick", {
            "data_folder": str(mini_sc), "output_folder": str(out_dir), "speaker_fractions": [1.0], "seeds": [0],
            "augmentations": ["none", "gan_filtered"], "tstr": False,
            "generator_options": {"ema": {"ema_decay": 0.5}}, "filter_min_confidence": 0.6,
            "kws_overrides": {"channels": 8, "num_blocks": 1, "num_threads": 1}}, progress=False)
        assert threads_at_filter == [1] and torch.get_num_threads() == 2
    assert [(r["augmentation"], r["generator_option"]) for r in out["rows"]] == [("none", ""), ("gan_filtered", "ema")]
    gan = json.loads((out_dir / "gans" / "f1" / "conditional_ema_d0s0" / "config.json").read_text())
    assert gan["ema"] is True and gan["training"]["ema_decay"] == 0.5
    resolved = (out_dir / "cells" / "f1_gan_filtered_ema_s0" / "hparams.yaml").read_text()
    assert "gan_min_confidence: 0.6" in resolved
    assert re.search(rf"gan_filter_classifier:\s+{re.escape(str(reference))}\s", resolved)
    assert "generator option" in out["table"] and "| ema |" in out["table"]
    assert "posterior >= 0.6" in out["generators"]["gan_filtered [ema]"]


def test_generator_family_axis(mini_sc, tmp_path, monkeypatch):
    hp, _ = load_hparams("ablation_quick", {**BASE, "generator_families": "[wavegan, specgan]",
                                            "augmentations": "[none, classic, gan_per_keyword, gan_conditional, classic+gan]"})
    labels = list(dict.fromkeys(c["augmentation"] for c in plan_cells(hp)))
    assert labels == ["none", "classic", "gan_per_keyword", "gan_per_keyword@specgan", "gan_conditional",
                      "gan_conditional@specgan", "classic+gan", "classic+gan@specgan", "tstr", "tstr@specgan"]
    with pytest.raises(HparamsError, match="generator_families"):
        run_ablation("ablation_quick", {**BASE, "generator_families": ["melgan"]}, progress=False)
    # one real SpecGAN arm: its conditional generator is trained from the specgan config
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    out = run_ablation("ablation_quick", {
        "data_folder": str(mini_sc), "output_folder": str(tmp_path / "abl"), "speaker_fractions": [1.0], "seeds": [0],
        "augmentations": ["gan_conditional"], "tstr": False, "generator_families": ["specgan"],
        "kws_overrides": {"channels": 8, "num_blocks": 1}}, progress=False)
    assert [r["augmentation"] for r in out["rows"]] == ["gan_conditional@specgan"]
    config = json.loads((tmp_path / "abl" / "gans" / "f1" / "conditional_specgan_d0s0" / "config.json").read_text())
    assert config["model"] == "specgan" and config["label_names"] == ["yes", "no"]
    assert out["rows"][0]["synthetic_rows"] > 0
