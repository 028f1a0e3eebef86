"""The one injection policy: how many synthetic rows a batch gets and where, the same for GanAugment, both
kws trainers, GanMixDataset and the HF adapters."""

from __future__ import annotations

import inspect

import pytest
import torch

from ganaug.augment import GanAugment, GanMixDataset, InjectionPolicy, draw_params
from ganaug.augment.hf_rows import HFMap
from ganaug.augment.rows import DEFAULT_RATIO
from ganaug.config import load_hparams
from ganaug.kws import run_kws


def test_append_draws_exactly_ratio_rows_per_real_row_of_distinct_rows():
    policy = InjectionPolicy("append", ratio=0.25)
    gen = torch.Generator().manual_seed(0)
    counts = [int(draw_params(32, policy, gen)["mask"].sum()) for _ in range(50)]
    assert set(counts) == {8}                                      # 0.25 x 32, no Bernoulli spread
    counts = [int(draw_params(10, InjectionPolicy("append", ratio=0.25), gen)["mask"].sum()) for _ in range(400)]
    assert set(counts) == {2, 3} and sum(counts) / 400 == pytest.approx(2.5, abs=0.15)   # the fraction at random
    replace = [int(draw_params(32, InjectionPolicy("replace", p=0.25), gen)["mask"].sum()) for _ in range(50)]
    assert len(set(replace)) > 3                                    # replace: each row with probability p
    with pytest.raises(ValueError, match="at most one synthetic row per real row"):
        draw_params(8, InjectionPolicy("append", ratio=2.0))
    for bad, match in ((dict(mode="mix"), "mode"), (dict(p=1.5), "p="), (dict(ratio=-0.1), "ratio=")):
        with pytest.raises(ValueError, match=match):
            InjectionPolicy(**bad)


def test_gan_augment_returns_the_mask_of_its_synthetic_rows(weak_generator):
    aug = GanAugment(weak_generator, mode="append", ratio=0.5, label_names=["yes", "no"]).train()
    wavs, labels = 0.01 * torch.randn(6, 16384), torch.tensor([0, 1, 0, 1, 0, 1])
    out, lens, out_labels, synthetic = aug(wavs, labels, return_synthetic=True, generator=torch.Generator().manual_seed(0))
    assert out.shape[0] == 9 and synthetic.tolist() == [False] * 6 + [True] * 3
    assert torch.equal(out[:6], wavs) and len(out_labels) == 9
    replace = GanAugment(weak_generator, p=1.0, label_names=["yes", "no"]).train()
    out, out_labels, synthetic = replace(wavs, labels, return_synthetic=True)
    assert synthetic.all() and not torch.equal(out, wavs)
    assert GanAugment(weak_generator, p=0.3, mode="append").policy == InjectionPolicy("append", 0.3, 0.3)
    assert GanAugment(weak_generator, p=0.3, mode="append").eval()(wavs, labels, return_synthetic=True)[-1].sum() == 0


def test_append_keeps_the_classifiers_batch_size(mini_sc, weak_generator, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    results = run_kws("kws", {"data_folder": str(mini_sc), "output_folder": str(tmp_path / "kws"), "labels": "yes,no",
                              "number_of_epochs": 1, "steps_per_epoch": 10, "batch_size": 15, "channels": 8,
                              "num_blocks": 1, "progress": False, "device": "cpu", "gan_ckpt": str(weak_generator),
                              "gan_mode": "append", "gan_ratio": 0.5})
    # 10 batches of 10 real rows (15 / 1.5) and exactly 5 synthetic ones: every batch holds 15 rows
    assert results["synthetic_rows"] == 10 * 5
    assert results["augmentation"]["gan_mode"] == "append" and results["augmentation"]["gan_ratio"] == 0.5


def test_append_is_the_default_and_the_other_modes_key_is_a_warning(mini_sc, weak_generator, tmp_path, monkeypatch):
    """kws.yaml's default policy appends gan_ratio synthetic rows per real row (issue 21); --gan_p, which only
    replace reads, would silently do nothing there, so it is a warning."""
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    hp, _ = load_hparams("kws", {"data_folder": str(mini_sc), "output_folder": str(tmp_path)})
    ablation, _ = load_hparams("ablation", {"data_folder": "d", "output_folder": "o"})
    assert hp["gan_mode"] == ablation["gan_mode"] == "append"
    # one default share wherever appending is the default: both YAMLs, GanMixDataset and hf_map
    defaults = [inspect.signature(f).parameters["ratio"].default for f in (GanMixDataset, GanAugment.hf_map, HFMap)]
    assert hp["gan_ratio"] == ablation["gan_ratio"] == InjectionPolicy().ratio == DEFAULT_RATIO
    assert defaults == [DEFAULT_RATIO] * 3
    small = {"labels": "yes,no", "number_of_epochs": 1, "steps_per_epoch": 2, "batch_size": 8, "channels": 8,
             "num_blocks": 1, "progress": False, "device": "cpu", "data_folder": str(mini_sc),
             "gan_ckpt": str(weak_generator)}
    with pytest.warns(UserWarning, match=r"--gan_p=0.3 does nothing with gan_mode=append .* --gan_mode=replace"):
        results = run_kws("kws", {**small, "output_folder": str(tmp_path / "a"), "gan_p": 0.3})
    assert results["synthetic_rows"] > 0 and results["augmentation"]["gan_mode"] == "append"
