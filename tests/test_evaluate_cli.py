"""``ganaug evaluate`` end to end on tiny checkpoints and the mini Speech Commands folder."""

from __future__ import annotations

import json

import pytest
import torch

from ganaug.checkpoint import save_generator
from ganaug.cli import main as cli
from ganaug.metrics import evaluate_generator, format_table
from ganaug.models import WaveGANGenerator

TINY = dict(epochs=6, batch_size=8, lr=1e-2)   # reference-classifier recipe small enough for CI


def _tiny(path, label_names=None, seed=0):
    torch.manual_seed(seed)
    return save_generator(path, WaveGANGenerator(model_dim=8, label_names=label_names))


@pytest.fixture(scope="module")
def classifier_dir(mini_sc, tmp_path_factory):
    """A reference classifier trained once (by the first evaluation) and reused by the others."""
    from ganaug.metrics import train_reference_classifier

    folder = tmp_path_factory.mktemp("clf")
    train_reference_classifier(mini_sc, ["yes", "no"], folder, device="cpu", progress=False, **TINY)
    return folder


def test_evaluate_command_writes_metrics_and_table(mini_sc, tmp_path, capsys, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))   # the default classifier folder lives here
    ckpt = _tiny(tmp_path / "cond", ["yes", "no"])
    assert cli(["evaluate", str(ckpt), "--data", str(mini_sc), "--num-clips", "24", "--seed", "3"]) == 0
    table = capsys.readouterr().out
    for name in ("Inception Score", "modified IS", "FID vs real train", "|D|train", "|D|self", "label accuracy"):
        assert name in table
    result = json.loads((ckpt / "eval" / "metrics.json").read_text())
    assert (ckpt / "eval" / "metrics.md").is_file()
    assert result["kind"] == "conditional" and result["labels"] == ["yes", "no"] and result["num_generated"] == 24
    for column in ("generated", "real"):
        for key in ("is", "mis", "fid", "d_train", "d_self", "label_acc"):
            assert isinstance(result[column][key], float), (column, key)
    assert result["real"]["is_std"] is None and result["real"]["is_splits"] == 1   # 5 test clips: one IS chunk
    assert 1.0 <= result["generated"]["is"] <= 2.0 + 1e-9
    assert set(result["generated"]["label_acc_per_label"]) == {"yes", "no"}
    # the reference classifier was trained into the cache, on the TRAIN split, and is reused
    folder = result["classifier"]["folder"]
    assert str(tmp_path / "cache") in folder and result["classifier"]["test_acc"] is not None
    assert cli(["evaluate", str(ckpt), "--data", str(mini_sc), "--num-clips", "24", "--seed", "3",
                "--out", str(tmp_path / "again")]) == 0
    assert "training the reference classifier" not in capsys.readouterr().out
    again = json.loads((tmp_path / "again" / "metrics.json").read_text())
    assert again["generated"] == result["generated"]                         # seeded: same numbers


def test_evaluate_per_keyword_and_unconditional(mini_sc, tmp_path, classifier_dir):
    run = tmp_path / "per_keyword"
    _tiny(run / "yes", seed=1)
    _tiny(run / "no", seed=2)
    result = evaluate_generator(run, mini_sc, classifier=classifier_dir, num_samples=10, device="cpu", progress=False)
    assert result["kind"] == "per_keyword" and result["labels"] == ["no", "yes"]
    assert set(result["generated"]["label_acc_per_label"]) == {"yes", "no"}
    assert "label accuracy per label" in format_table(result)

    result = evaluate_generator(_tiny(tmp_path / "uncond"), mini_sc, classifier=classifier_dir, num_samples=10,
                                device="cpu", progress=False, metrics=("is", "fid", "label_acc"))
    assert result["kind"] == "unconditional" and result["labels"] == ["no", "yes"]   # the data's keywords
    assert "label_acc" not in result["generated"] and "fid" in result["generated"]


def test_evaluate_bad_input_names_the_argument(mini_sc, tmp_path, classifier_dir):
    ckpt = _tiny(tmp_path / "cond", ["yes", "no"])
    with pytest.raises(FileNotFoundError, match="CKPT"):
        evaluate_generator(tmp_path / "nothing", mini_sc, classifier=classifier_dir)
    with pytest.raises(FileNotFoundError, match="--data"):
        evaluate_generator(ckpt, tmp_path / "no_data", classifier=classifier_dir)
    with pytest.raises(ValueError, match="--num-samples"):
        evaluate_generator(ckpt, mini_sc, classifier=classifier_dir, num_samples=1)
    with pytest.raises(ValueError, match="--classifier"):
        evaluate_generator(_tiny(tmp_path / "other", ["yes", "_silence_"]), mini_sc, classifier=classifier_dir,
                           num_samples=4, progress=False)


def test_tifgan_consistency_scores_its_own_spectrograms(mini_sc, tmp_path, classifier_dir):
    from ganaug.models.tifgan import TiFGANGenerator

    from ganaug.data import KeywordDataset
    from ganaug.data.cache import preload

    torch.manual_seed(0)
    generator = TiFGANGenerator(model_dim=4, label_names=["yes", "no"])
    generator.fit_data(preload(KeywordDataset(mini_sc, labels=["yes", "no"], split="train"), cache_dir=False,
                               progress=False)[0])
    ckpt = save_generator(tmp_path / "tif", generator)
    result = evaluate_generator(ckpt, mini_sc, classifier=classifier_dir, num_samples=8, device="cpu",
                                progress=False, metrics=("consistency",))
    real, generated = result["real"]["consistency"], result["generated"]["consistency"]
    assert 0.3 < real <= 1.0            # real speech spectrograms are consistent
    assert -1.0 <= generated <= 1.0
    # the generator's own spectrograms (before PGHI) were scored, not its waveforms' STFTs
    from ganaug.metrics.registry import METRICS, ClipSet
    from ganaug.metrics.evaluate import generate_clips, load_generators

    generators, kind = load_generators(ckpt, device="cpu")
    wavs, _ = generate_clips(generators, kind, 8, labels=["yes", "no"])
    assert abs(METRICS["consistency"](None, ClipSet("wavs", wavs))["consistency"] - generated) > 1e-3
    assert "spectrogram consistency" in format_table(result)
