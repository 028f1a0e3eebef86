"""Label-consistency filtering on the shared weak generator, judged by a real (small) classifier.

The weak generator's clips are mostly noise to a classifier: at min_confidence 0.3 some labels
("up", "stop") get a few clips through and others ("go") none, which is the case the filter
exists for. Every check recomputes the classifier's posteriors on what came out.
"""

from __future__ import annotations

import json

import pytest
import torch

from ganaug import GanAugment, GanMixDataset, KeywordDataset, SyntheticBank
from ganaug.augment import LabelFilter, default_filter_dir, generate_bank
from ganaug.augment.source import GeneratorSource, attempt_seed, mix_seed
from ganaug.models.classifier import load_classifier, reference_dir

pytestmark = pytest.mark.usefixtures("one_thread")

THRESHOLD = 0.3
LABELS = ["up", "stop", "go"]


def pick(real, per_label: int) -> list[int]:
    """The first ``per_label`` item indices of every label of ``real``."""
    rows = []
    for k in range(len(real.label_names)):
        rows += [i for i, label in enumerate(real.labels) if label == k][:per_label]
    return rows


@pytest.fixture(scope="module")
def label_filter(filter_classifier_dir):
    return LabelFilter(filter_classifier_dir, THRESHOLD)


@pytest.fixture(scope="module")
def bank(weak_generator, filter_classifier_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("filtered") / "bank"
    with pytest.warns(UserWarning, match=r"acceptance 0") as caught:
        generate_bank(weak_generator, out, per_label=3, labels=LABELS, min_confidence=THRESHOLD,
                      filter_classifier=filter_classifier_dir, max_attempts=4, progress=False)
    return out, [str(w.message) for w in caught if "acceptance 0" in str(w.message)]   # not the unsigned-checkpoint one


def test_bank_keeps_only_clips_the_classifier_accepts(bank, label_filter, weak_generator):
    out, warned = bank
    meta = json.loads((out / "bank.json").read_text())
    acceptance, empty = meta["acceptance"], meta["empty_labels"]
    assert sorted(acceptance) == sorted(LABELS) and all(0 <= a <= 1 for a in acceptance.values())
    assert empty == [k for k in LABELS if acceptance[k] == 0] and empty, "expected a label no clip of which passes"
    assert any(acceptance[k] > 0 for k in LABELS), "expected some label to pass at min_confidence 0.3"
    assert all(repr(k) in warned[0] for k in empty) and meta["min_confidence"] == THRESHOLD
    saved = SyntheticBank(out)
    # an emptied label is known to the bank (no error downstream) but never drawn: its rows stay real
    assert sorted(saved.label_names) == sorted(LABELS) and saved.empty_labels == empty
    wavs = torch.randn(2, 16384) * 0.1
    assert torch.equal(GanAugment(bank=out, p=1.0)(wavs, [empty[0]] * 2)[0], wavs)
    source = GeneratorSource(weak_generator)
    for name in (k for k in saved.label_names if k not in empty):
        clips = saved.clips(name)
        assert len(clips) == meta["counts"][name] >= 1
        # 16-bit PCM rounding moves a posterior by far less than 0.01
        assert (label_filter.confidence(clips, [name] * len(clips), 16000) >= THRESHOLD - 0.01).all()
        # each kept clip is the FIRST accepted try of its row: a pure function of (label, seed, filter)
        uids = [int(p.split("_")[-1].split(".")[0]) for p in saved._files[name]]
        for clip, i in zip(clips, uids):
            seed = mix_seed(0, name, i)
            tries = source.generate([name] * 4, [attempt_seed(seed, k) for k in range(4)])
            first = int(label_filter.accept(tries, [name] * 4, 16000).nonzero()[0])
            distance = (tries - clip).abs().amax(dim=1)  # bf16 sampling: batches differ in the last bits
            assert int(distance.argmin()) == first and distance[first] < 5e-3


def test_gan_augment_replaces_only_rows_the_filter_accepts(weak_generator, filter_classifier_dir, sc_root):
    real = KeywordDataset(sc_root, labels=["up", "go"], split="test")  # 16384 samples: no crop, same posteriors
    rows = pick(real, 3)
    batch = torch.stack([real[i]["wav"] for i in rows])
    names = [real[i]["label_name"] for i in rows]
    aug = GanAugment(weak_generator, p=1.0, min_confidence=THRESHOLD, filter_classifier=filter_classifier_dir,
                     max_attempts=3)
    out, labels = aug(batch, names, generator=torch.Generator().manual_seed(0))
    changed = [r for r in range(len(batch)) if not torch.equal(out[r], batch[r])]
    assert labels == names and changed
    model = load_classifier(filter_classifier_dir)
    with torch.no_grad():
        probs = torch.softmax(model(out[changed]), -1)
    for k, r in enumerate(changed):
        assert probs[k, model.label_names.index(names[r])] >= THRESHOLD
    assert all(names[r] != "go" for r in changed)  # "go" never passes at 0.3: its rows stay real
    assert set(aug.source.acceptance()) <= {"up", "go"} and aug.source.acceptance().get("go", 0) == 0


def test_mix_dataset_hf_map_and_tstr_filter(weak_generator, filter_classifier_dir, sc_root, label_filter):
    import datasets

    from ganaug.config import HparamsError
    from ganaug.kws.data import tstr_training_set

    real = KeywordDataset(sc_root, labels=["up", "go"], split="test")
    mix = GanMixDataset(real, weak_generator, per_label={"up": 2, "go": 1}, min_confidence=THRESHOLD,
                        filter_classifier=filter_classifier_dir, max_attempts=4)
    items = [mix[len(real) + i] for i in range(mix.num_synthetic)]
    for item in items:
        if item["synthetic"]:
            assert label_filter.confidence(item["wav"][None], [item["label_name"]], 16000)[0] >= THRESHOLD
        else:  # a rejected synthetic item is a real clip of its label
            assert item["label_name"] == "go" and item["speaker"]
    assert any(i["synthetic"] for i in items)
    # hf_map: only accepted clips become rows
    rows = pick(real, 4)
    ds = datasets.Dataset.from_dict({"audio": [{"array": real[i]["wav"].numpy(), "sampling_rate": 16000}
                                               for i in rows], "label": [real[i]["label_name"] for i in rows]})
    aug = GanAugment(weak_generator, p=0.5)
    mapped = ds.map(aug.hf_map(ratio=1.0, min_confidence=THRESHOLD, filter_classifier=filter_classifier_dir,
                               max_attempts=3), batched=True, remove_columns=ds.column_names)
    synthetic = [r for r in mapped if r["synthetic"]]
    assert 0 < len(synthetic) < 8 and all(r["label"] == "up" for r in synthetic)
    wavs = torch.tensor([r["audio"]["array"] for r in synthetic], dtype=torch.float32)
    assert (label_filter.confidence(wavs, ["up"] * len(wavs), 16000) >= THRESHOLD).all()
    # TSTR: kept clips pass; a label with none is an error naming it
    wavs, labels = tstr_training_set(weak_generator, ["up", "go"][:1], 2, 16000, 16384, min_confidence=THRESHOLD,
                              filter_classifier=filter_classifier_dir)
    assert len(wavs) == len(labels) >= 1 and (label_filter.confidence(wavs, ["up"] * len(wavs), 16000) >= THRESHOLD).all()
    with pytest.raises(HparamsError, match=r"\['go'\].*min_confidence"):
        tstr_training_set(weak_generator, ["up", "go"], 2, 16000, 16384, min_confidence=THRESHOLD,
                   filter_classifier=filter_classifier_dir)


def test_generate_command_prints_acceptance_and_refuses_an_empty_bank(weak_generator, filter_classifier_dir,
                                                                      tmp_path, capsys):
    from ganaug.kws.generate import main

    out = tmp_path / "bank"
    assert main(weak_generator, 2, out, min_confidence=THRESHOLD, filter_classifier=str(filter_classifier_dir),
                labels="up,go", progress=False) == 0
    captured = capsys.readouterr()
    assert "acceptance at min_confidence=0.3" in captured.out and "up " in captured.out
    assert "WARNING" in captured.err and "'go'" in captured.err
    assert json.loads((out / "bank.json").read_text())["acceptance"]["go"] == 0
    empty = tmp_path / "empty"
    assert main(weak_generator, 1, empty, min_confidence=1.0, filter_classifier=str(filter_classifier_dir),
                labels="go", progress=False) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "nothing was written" in err and "--min_confidence" in err
    assert not (empty / "bank.json").exists()


def test_default_filter_and_bad_arguments(weak_generator, filter_classifier_dir, tmp_path, monkeypatch):
    config = json.loads((weak_generator / "config.json").read_text())
    assert default_filter_dir(config) == reference_dir(config["data_fingerprint"], config["label_names"], 16000)
    per_keyword = {**config, "label_names": None, "data_fingerprint": config["data_fingerprint"] + "/up"}
    assert default_filter_dir(per_keyword) == default_filter_dir(config)  # data.labels, fingerprint without /<label>
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    with pytest.raises(FileNotFoundError, match="filter classifier .* does not exist yet.*filter_classifier=DIR"):
        GanAugment(weak_generator, min_confidence=0.8)
    for bad in (1.5, -0.1, float("nan"), "0.8", True):
        with pytest.raises(ValueError, match="min_confidence="):
            GanAugment(weak_generator, min_confidence=bad, filter_classifier=filter_classifier_dir)
    assert GanAugment(weak_generator, min_confidence=0).source.__class__.__name__ == "GeneratorSource"
    with pytest.raises(FileNotFoundError, match="not a classifier folder"):
        LabelFilter(tmp_path, 0.5)
    with pytest.raises(ValueError, match=r"\['maybe'\] are not known to the filter classifier"):
        LabelFilter(filter_classifier_dir, 0.5).accept(torch.zeros(1, 16000), ["maybe"], 16000)
