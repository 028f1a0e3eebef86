"""``ganaug evaluate`` end to end on tiny checkpoints and the mini Speech Commands folder."""

from __future__ import annotations

import json
import re

import pytest
import torch

from ganaug.checkpoint import save_generator
from ganaug.env import torch_threads
from ganaug.io import CheckpointError
from ganaug.kws.reference import ensure_reference, reference_folder
from ganaug.metrics import evaluate_generator, format_table
from ganaug.metrics.evaluate import main as evaluate_main
from ganaug.models import WaveGANGenerator

pytestmark = pytest.mark.usefixtures("one_thread")

TINY = {"number_of_epochs": 3, "batch_size": 8, "lr": 0.01, "channels": 8, "num_blocks": 1,
        "classic_augment": False}   # reference recipe small enough for CI (kws keys)


def _tiny(path, label_names=None, seed=0, **extra):
    torch.manual_seed(seed)
    return save_generator(path, WaveGANGenerator(model_dim=8, label_names=label_names), **extra)


@pytest.fixture(scope="module")
def classifier_dir(mini_sc, tmp_path_factory):
    """A reference classifier trained once and reused by the evaluations."""
    with torch_threads(1):
        return ensure_reference(mini_sc, ["yes", "no"], folder=tmp_path_factory.mktemp("clf"), device="cpu",
                                progress=False, overrides=TINY)


def _md_cells(line: str) -> list[str]:
    """Cells of a Markdown table row: split on the pipes that are not escaped."""
    return [c.strip() for c in re.split(r"(?<!\\)\|", line.strip())[1:-1]]


def test_evaluate_command_writes_metrics_and_table(mini_sc, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))   # the default classifier folder lives here
    ckpt = _tiny(tmp_path / "cond", ["yes", "no"])
    # the demo's way: the reference classifier of the data's TRAIN split is already at reference_dir
    demo_classifier = ensure_reference(mini_sc, ["yes", "no"], device="cpu", progress=False, overrides=TINY)
    assert demo_classifier == reference_folder(mini_sc, ["yes", "no"]) and str(tmp_path / "cache") in str(demo_classifier)
    capsys.readouterr()
    assert evaluate_main(str(ckpt), str(mini_sc), num_clips=24, seed=3, device="cpu") == 0
    table = capsys.readouterr().out
    assert "training the reference classifier" not in table          # found, not retrained
    for name in ("Inception Score", "modified IS", "FID vs real train", r"\|D\|train", r"\|D\|self", "label accuracy"):
        assert name in table
    result = json.loads((ckpt / "eval" / "metrics.json").read_text())
    assert result["classifier"]["folder"] == str(demo_classifier.resolve())
    assert result["kind"] == "conditional" and result["labels"] == ["yes", "no"] and result["num_generated"] == 24
    for column in ("generated", "real"):
        for key in ("is", "mis", "fid", "d_train", "d_self", "label_acc"):
            assert isinstance(result[column][key], float), (column, key)
    assert result["real"]["is_std"] is None and result["real"]["is_splits"] == 1   # 5 test clips: one IS chunk
    assert 1.0 <= result["generated"]["is"] <= 2.0 + 1e-9
    assert set(result["generated"]["label_acc_per_label"]) == {"yes", "no"}
    # metrics.md is valid Markdown: every table row has the header's 4 cells (|D|train escaped)
    md = (ckpt / "eval" / "metrics.md").read_text()
    rows = [line for line in md.splitlines() if line.startswith("|")]
    assert len(rows) >= 8 and all(len(_md_cells(r)) == 4 for r in rows)
    import markdown

    html = markdown.markdown(md, extensions=["tables"])
    assert "<td>|D|train</td>" in html and html.count("<tr>") == len(rows) - 1   # the |---| line is no row
    # seeded: the same numbers in another folder
    assert evaluate_main(str(ckpt), str(mini_sc), out=str(tmp_path / "again"), num_clips=24, seed=3, device="cpu") == 0
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["generated"] == result["generated"]


def test_metrics_of_other_settings_are_kept(mini_sc, tmp_path, classifier_dir, capsys):
    ckpt = _tiny(tmp_path / "cond", ["yes", "no"])
    out = tmp_path / "eval"
    args = dict(classifier=str(classifier_dir), out=str(out), num_clips=8, device="cpu")
    assert evaluate_main(str(ckpt), str(mini_sc), seed=1, **args) == 0
    assert evaluate_main(str(ckpt), str(mini_sc), seed=1, **args) == 0          # same settings: replaced
    assert sorted(p.name for p in out.iterdir()) == ["metrics.json", "metrics.md"]
    first = json.loads((out / "metrics.json").read_text())
    capsys.readouterr()
    assert evaluate_main(str(ckpt), str(mini_sc), seed=2, **args) == 0          # other settings: the old one is kept
    assert "kept as" in capsys.readouterr().out
    kept = sorted(out.glob("metrics-*.json"))
    assert len(kept) == 1 and json.loads(kept[0].read_text()) == first
    assert kept[0].with_suffix(".md").is_file()
    assert json.loads((out / "metrics.json").read_text())["seed"] == 2


def test_filter_adds_acceptance_and_filtered_label_accuracy(mini_sc, tmp_path, classifier_dir):
    from ganaug.data import KeywordDataset
    from ganaug.kws.reference import ensure_reference_for

    # a generator whose config names its TRAIN split, as `ganaug train` writes it
    train = KeywordDataset(mini_sc, labels=["yes", "no"], split="train")
    data = {"data_folder": str(mini_sc), "labels": ["yes", "no"], "speaker_fraction": 1.0, "data_seed": 0}
    ckpt = _tiny(tmp_path / "cond", ["yes", "no"], data_fingerprint=train.fingerprint(), data=data)
    config = json.loads((ckpt / "config.json").read_text())
    own = ensure_reference_for(config, device="cpu", progress=False, overrides={**TINY, "seed": 1})
    assert own != classifier_dir
    result = evaluate_generator(ckpt, mini_sc, classifier=classifier_dir, num_clips=20, device="cpu",
                                progress=False, min_confidence=0.5)
    # the scorer and the filter are separate classifiers: the filter is the generator's own
    assert result["classifier"]["folder"] == str(classifier_dir.resolve())
    assert result["filter"] == {"folder": str(own.resolve()), "min_confidence": 0.5, "label_names": ["yes", "no"]}
    assert set(result["acceptance"]) == {"yes", "no"}
    # the decision is the posterior of the intended label against the threshold, clip by clip
    from ganaug.metrics.evaluate import _generate, _source
    from ganaug.augment.filter import LabelFilter

    source, _ = _source(ckpt)
    names = [["yes", "no"][i % 2] for i in range(20)]
    accepted = LabelFilter(own, 0.5).accept(_generate(source, names, 0, 16000, 16384), names, 16000)
    assert result["num_accepted"] == int(accepted.sum())
    for label in ("yes", "no"):
        rows = torch.tensor([n == label for n in names])
        assert result["acceptance"][label] == pytest.approx(float(accepted[rows].double().mean()))
    assert result["acceptance_overall"] == pytest.approx(float(accepted.double().mean()))
    assert result["label_acc_filtered"] is None or 0.0 <= result["label_acc_filtered"] <= 1.0
    assert "label accuracy, filtered" in format_table(result) and "acceptance per label" in format_table(result)
    assert "same_as_scorer" not in result["filter"] and "not independent" not in format_table(result)
    # threshold 0 keeps every clip: the filtered accuracy is the raw one
    everything = evaluate_generator(ckpt, mini_sc, classifier=classifier_dir, num_clips=20, device="cpu",
                                    progress=False, min_confidence=1e-9, filter_classifier=classifier_dir)
    assert everything["acceptance_overall"] == 1.0
    assert everything["label_acc_filtered"] == pytest.approx(everything["generated"]["label_acc"])
    # the scorer used as the filter: the table says the filtered accuracy is not an independent measure
    assert everything["filter"]["same_as_scorer"] and "not independent" in format_table(everything)


def test_evaluate_per_keyword_and_unconditional(mini_sc, tmp_path, classifier_dir):
    run = tmp_path / "per_keyword"
    _tiny(run / "yes", seed=1)
    _tiny(run / "no", seed=2)
    result = evaluate_generator(run, mini_sc, classifier=classifier_dir, num_clips=10, device="cpu", progress=False)
    assert result["kind"] == "per_keyword" and sorted(result["labels"]) == ["no", "yes"]
    assert set(result["generated"]["label_acc_per_label"]) == {"yes", "no"}
    assert "label accuracy per label" in format_table(result)

    result = evaluate_generator(_tiny(tmp_path / "uncond"), mini_sc, classifier=classifier_dir, num_clips=10,
                                device="cpu", progress=False, metrics=("is", "fid", "label_acc"))
    assert result["kind"] == "unconditional" and result["labels"] == ["no", "yes"]   # the data's keywords
    assert "label_acc" not in result["generated"] and "fid" in result["generated"]


def test_evaluate_bad_input_names_the_argument(mini_sc, tmp_path, classifier_dir, capsys):
    ckpt = _tiny(tmp_path / "cond", ["yes", "no"])
    with pytest.raises(CheckpointError, match="nothing.*no such directory"):
        evaluate_generator(tmp_path / "nothing", mini_sc, classifier=classifier_dir)
    with pytest.raises(FileNotFoundError, match="--data"):
        evaluate_generator(ckpt, tmp_path / "no_data", classifier=classifier_dir)
    with pytest.raises(ValueError, match="--num-clips"):
        evaluate_generator(ckpt, mini_sc, classifier=classifier_dir, num_clips=1)
    if not torch.cuda.is_available():
        with pytest.raises(ValueError, match="--device cuda: CUDA is not available"):
            evaluate_generator(ckpt, mini_sc, classifier=classifier_dir, device="cuda")
    with pytest.raises(ValueError, match="--min_confidence"):
        evaluate_generator(ckpt, mini_sc, classifier=classifier_dir, min_confidence=1.5)
    with pytest.raises(ValueError, match="--classifier"):
        evaluate_generator(_tiny(tmp_path / "other", ["yes", "_silence_"]), mini_sc, classifier=classifier_dir,
                           num_clips=4, progress=False)
    # no data block in the generator's config: the default filter cannot be found
    with pytest.raises(ValueError, match="--filter_classifier"):
        evaluate_generator(ckpt, mini_sc, classifier=classifier_dir, num_clips=4, progress=False, min_confidence=0.8)
    with pytest.raises(ValueError, match="unconditional"):
        evaluate_generator(_tiny(tmp_path / "uncond"), mini_sc, classifier=classifier_dir, num_clips=4,
                           progress=False, min_confidence=0.8)
    # the command: one line, exit code 2, nothing written
    assert evaluate_main(str(tmp_path / "nothing"), str(mini_sc), classifier=str(classifier_dir)) == 2
    err = capsys.readouterr().err
    assert err.startswith("ganaug evaluate: error: ckpt=") and "no such directory" in err and len(err.strip().splitlines()) == 1


def test_tifgan_consistency_scores_its_own_spectrograms(mini_sc, tmp_path, classifier_dir):
    from ganaug.data import KeywordDataset
    from ganaug.data.cache import preload
    from ganaug.metrics.evaluate import _generate, _source
    from ganaug.metrics.registry import METRICS, ClipSet
    from ganaug.models.tifgan import TiFGANGenerator

    torch.manual_seed(0)
    generator = TiFGANGenerator(model_dim=4, label_names=["yes", "no"])
    generator.fit_data(preload(KeywordDataset(mini_sc, labels=["yes", "no"], split="train"), cache_dir=False,
                               progress=False)[0])
    ckpt = save_generator(tmp_path / "tif", generator)
    result = evaluate_generator(ckpt, mini_sc, classifier=classifier_dir, num_clips=8, device="cpu",
                                progress=False, metrics=("consistency",))
    real, generated = result["real"]["consistency"], result["generated"]["consistency"]
    assert 0.3 < real <= 1.0            # real speech spectrograms are consistent
    assert -1.0 <= generated <= 1.0
    # the generator's own spectrograms (before PGHI) were scored, not its waveforms' STFTs
    source, _ = _source(ckpt)
    wavs = _generate(source, [["yes", "no"][i % 2] for i in range(8)], 0, 16000, 16384)
    assert abs(METRICS["consistency"](None, ClipSet("wavs", wavs))["consistency"] - generated) > 1e-3
    assert "spectrogram consistency" in format_table(result)
