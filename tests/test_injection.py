"""Which synthetic clips a kws run uses and how they are judged: top-k selection per label, a temperature-scaled
filter with the real VALID clips' acceptance beside the synthetic ones', soft labels, and the ablation's axis."""

from __future__ import annotations

import json
import math

import pytest
import torch

from ganaug.ablation.grid import _cell_overrides, plan_cells
from ganaug.augment import GeneratorSource, LabelFilter
from ganaug.augment.select import SelectedSource
from ganaug.config import HparamsError, load_hparams
from ganaug.kws import run_kws
from ganaug.kws.calibrate import fit_temperature
from ganaug.models import load_classifier

pytestmark = pytest.mark.usefixtures("one_thread")


def test_temperature_recovers_a_known_scale_and_is_what_posteriors_use(filter_classifier_dir):
    torch.manual_seed(0)
    true = torch.randn(4000, 5) * 3.0
    targets = torch.distributions.Categorical(logits=true).sample()
    assert fit_temperature(true * 2.5, targets) == pytest.approx(2.5, rel=0.1)    # over-confident by 2.5
    assert fit_temperature(true / 2.0, targets) == pytest.approx(0.5, rel=0.1)    # under-confident
    model = load_classifier(filter_classifier_dir)
    wavs = 0.1 * torch.randn(3, 16000)
    model.temperature = 2.0
    with torch.no_grad():
        assert torch.allclose(model.posteriors(wavs), torch.softmax(model(wavs) / 2.0, dim=-1))


def test_top_k_keeps_the_most_confident_clips_of_every_label(weak_generator, filter_classifier_dir):
    label_filter = LabelFilter(filter_classifier_dir, 0.5)
    source = SelectedSource(GeneratorSource(weak_generator), label_filter, pool=12, top_k=3, seed=0,
                            labels=["yes", "off", "right"])
    summary = source.summary()
    assert set(summary) == {"yes", "off", "right"} and all(s["kept"] == 3 for s in summary.values())
    # the kept clips are the pool's best: their posterior is at least that of every clip left out
    from ganaug.augment.source import synthesize

    pool, _, _ = synthesize(GeneratorSource(weak_generator), ["off"] * 12, 0, keep_rejected=True)
    scores = label_filter.confidence(pool, ["off"] * 12, 16000)
    assert summary["off"]["min_confidence"] == pytest.approx(float(scores.sort(descending=True).values[2]), abs=1e-6)
    clips, accepted = source.sample(["off", "yes", "off", "off"], [0, 1, 3, 4])
    assert accepted.all() and torch.equal(clips[0], clips[2]) and not torch.equal(clips[0], clips[3])   # seed % top_k
    with pytest.raises(ValueError, match="top_k=5 > pool=4"):
        SelectedSource(GeneratorSource(weak_generator), label_filter, pool=4, top_k=5)


SMALL = {"labels": "yes,no", "number_of_epochs": 1, "steps_per_epoch": 5, "batch_size": 8, "channels": 8,
         "num_blocks": 1, "progress": False, "device": "cpu"}


def test_a_run_reports_its_filter_and_refuses_soft_labels_from_other_speakers(mini_sc, weak_generator,
                                                                             filter_classifier_dir, tmp_path):
    common = {**SMALL, "data_folder": str(mini_sc), "gan_ckpt": str(weak_generator),
              "gan_filter_classifier": str(filter_classifier_dir), "gan_mode": "append", "gan_ratio": 0.5}
    top = run_kws("kws", {**common, "output_folder": str(tmp_path / "top"), "gan_select": "top_k", "gan_pool": 8,
                          "gan_top_k": 2})
    report = top["injection"]
    assert report["select"] == "top_k" and set(report["synthetic"]) == {"yes", "no"}
    assert set(report["real_valid_acceptance"]) == {"yes", "no"} and top["synthetic_rows"] > 0
    thr = run_kws("kws", {**common, "output_folder": str(tmp_path / "thr"), "gan_min_confidence": 0.3})
    assert thr["injection"]["min_confidence"] == 0.3 and set(thr["injection"]["synthetic_acceptance"]) <= {"yes", "no"}
    assert all(0.0 <= v <= 1.0 for v in thr["injection"]["real_valid_acceptance"].values())
    # the fixture classifier was trained on all 128 shared training speakers, not on mini_sc's 10
    with pytest.raises(HparamsError, match="not trained on exactly this run's training speakers"):
        run_kws("kws", {**common, "output_folder": str(tmp_path / "soft"), "soft_labels": True})


def test_soft_labels_from_a_filter_of_the_same_speakers(mini_sc, weak_generator, tmp_path):
    first = run_kws("kws", {**SMALL, "data_folder": str(mini_sc), "output_folder": str(tmp_path / "filter")})
    saved = json.loads((tmp_path / "filter" / "classifier" / "config.json").read_text())
    assert saved["train_speakers_sha1"] == first["train_speakers_sha1"] and math.isfinite(saved["temperature"])
    soft = run_kws("kws", {**SMALL, "data_folder": str(mini_sc), "output_folder": str(tmp_path / "soft"),
                           "gan_ckpt": str(weak_generator), "soft_labels": True,
                           "gan_filter_classifier": str(tmp_path / "filter" / "classifier")})
    assert soft["synthetic_rows"] > 0 and soft["injection"]["temperature"] == pytest.approx(saved["temperature"])


def test_a_bank_of_ganaug_generate_feeds_a_kws_run_and_its_checkpoints(mini_sc, weak_generator, tmp_path):
    """gan_ckpt may be a bank (what `ganaug ablate --conditional_ckpt=BANK` passes down): it is read, its
    contents sign the run's checkpoints, and a bank with other clips is refused on resume."""
    from ganaug.augment import generate_bank
    from ganaug.kws.recipe import inputs_fingerprint

    bank = tmp_path / "bank"
    generate_bank(weak_generator, bank, per_label=4, labels=["yes", "no"], seed=0, progress=False)
    hp = {**SMALL, "data_folder": str(mini_sc), "output_folder": str(tmp_path / "run"), "gan_ckpt": str(bank),
          "gan_mode": "append", "gan_ratio": 0.5}
    out = run_kws("kws", hp)
    assert out["synthetic_rows"] > 0
    signed = inputs_fingerprint({**hp, "noise_folder": "", "classic_augment": False, "gan_filter_classifier": ""})
    other = tmp_path / "other"
    generate_bank(weak_generator, other, per_label=4, labels=["yes", "no"], seed=1, progress=False)
    assert signed.startswith("bank:") and signed != inputs_fingerprint(
        {**hp, "gan_ckpt": str(other), "noise_folder": "", "classic_augment": False, "gan_filter_classifier": ""})


def test_the_ablation_runs_each_gan_arm_once_per_injection_option(tmp_path):
    hp, _ = load_hparams("ablation_quick", {"data_folder": "d", "output_folder": "o", "speaker_fractions": "[1.0]",
                                            "seeds": "[0]", "tstr": "true", "augmentations": "[none, classic+gan]",
                                            "injection_options": "{w05: {synthetic_weight: 0.5}, rep: {gan_mode: replace}}"})
    cells = plan_cells(hp)
    assert [(c["augmentation"], c["generator_option"]) for c in cells] == [
        ("none", ""), ("classic+gan", "w05"), ("classic+gan", "rep"), ("tstr", "")]
    assert cells[1]["name"] == "f1_classic_gan_w05_s0"
    assert cells[1]["generator"] == cells[2]["generator"]                   # one generator serves both options
    over = _cell_overrides(hp, cells[1], tmp_path / "c", None)
    assert over["synthetic_weight"] == 0.5 and over["gan_mode"] == "append" and "gan_p" not in over
    rep = _cell_overrides(hp, cells[2], tmp_path / "c", None)      # the ablation's gan_p, not its gan_ratio
    assert rep["gan_mode"] == "replace" and rep["gan_p"] == hp["gan_p"] and "gan_ratio" not in rep
