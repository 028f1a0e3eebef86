"""``ganaug report``: the page, its players and spectrograms, the metrics table and the ablation plot."""

from __future__ import annotations

import json
from html.parser import HTMLParser
from pathlib import Path

import pytest
import soundfile as sf
import torch

from ganaug.checkpoint import save_generator
from ganaug.io import CheckpointError
from ganaug.cli import main as cli
from ganaug.models import WaveGANGenerator
from ganaug.report import build_report


class _Page(HTMLParser):
    def __init__(self):
        super().__init__()
        self.audio, self.images, self.sections, self.text = [], [], [], []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "audio":
            self.audio.append(attrs)
        elif tag == "img":
            self.images.append(attrs["src"])
        elif tag == "section":
            self.sections.append(attrs["id"])

    def handle_data(self, data):
        self.text.append(data)


def _parse(index: Path) -> _Page:
    page = _Page()
    page.feed(index.read_text())
    return page


def _tiny(path, label_names=None, seed=0):
    torch.manual_seed(seed)
    return save_generator(path, WaveGANGenerator(model_dim=8, label_names=label_names), step=7)


def _ablation_png(path: Path) -> Path:
    """A real ablation output: summary.json + plot written by ganaug.ablation.stats from result rows."""
    from ganaug.ablation.stats import plot, summarize

    rows = [{"speaker_fraction": 0.1, "augmentation": aug, "seed": seed, "test_acc": acc, "num_test": 50}
            for aug, accs in (("none", [0.6, 0.62]), ("classic", [0.7, 0.66])) for seed, acc in enumerate(accs)]
    summary = summarize(rows)
    path.parent.mkdir(parents=True, exist_ok=True)
    (path.parent / "summary.json").write_text(json.dumps({"summary": summary, "order": ["none", "classic"],
                                                          "generators": {}}))
    plot(summary, path, ["none", "classic"])
    return path


def test_report_page_with_players_spectrograms_metrics_and_ablation(mini_sc, tmp_path):
    ckpt = _tiny(tmp_path / "run" / "cond", ["yes", "no"])
    metrics = {"generated": {"is": 1.4, "is_std": 0.1, "fid": 12.5, "label_acc": 0.75,
                             "label_acc_per_label": {"yes": 0.5, "no": 1.0}},
               "real": {"is": 1.9, "is_std": 0.05, "fid": 0.8, "label_acc": 0.95},
               "classifier": {"test_acc": 0.95}, "num_generated": 100, "num_real_test": 40}
    (ckpt / "eval").mkdir()
    (ckpt / "eval" / "metrics.json").write_text(json.dumps(metrics))
    _ablation_png(tmp_path / "run" / "ablation" / "plot.png")          # found beside the checkpoint

    out = tmp_path / "report"
    assert cli(["report", str(ckpt), "--out", str(out), "--data", str(mini_sc), "--per-label", "2"]) == 0
    index = out / "index.html"
    page = _parse(index)
    assert page.sections == ["yes", "no"]
    # per label: 2 generated + 2 real clips, each a player and a spectrogram; plus the ablation plot
    assert len(page.audio) == 8 and all("controls" in a for a in page.audio)
    assert len(page.images) == 8 + 1 and "ablation.png" in page.images
    for src in [a["src"] for a in page.audio] + page.images:
        assert (out / src).is_file() and (out / src).stat().st_size > 0, src
    assert sum("/real_" in a["src"] for a in page.audio) == 4
    for a in page.audio:
        info = sf.info(out / a["src"])
        assert info.samplerate == 16000 and info.frames == 16384
    with open(out / page.images[0], "rb") as f:
        assert f.read(8) == b"\x89PNG\r\n\x1a\n"
    text = " ".join(page.text)
    assert "Inception Score" in text and "12.500" in text and "1.900 ± 0.050" in text
    assert "training step 7" in text
    html_text = index.read_text()
    assert "<pre>" not in html_text and "<table class=ablation>" in html_text     # the table as HTML
    assert "<td>classic</td>" in html_text and "+7.00" in html_text and "Wilson" in html_text

    # re-running replaces the clips (fewer now) and the page stays consistent
    build_report(ckpt, out, per_label=1, progress=False)
    page = _parse(index)
    assert len(page.audio) == 2 and not list(out.glob("audio/*/real_*"))


def test_report_per_keyword_and_unconditional(mini_sc, tmp_path):
    run = tmp_path / "per_keyword"
    _tiny(run / "yes", seed=1)
    _tiny(run / "no", seed=2)
    page = _parse(build_report(run, tmp_path / "r1", per_label=1, progress=False))
    assert page.sections == ["no", "yes"] and len(page.audio) == 2
    assert "No metrics.json found" in " ".join(page.text)

    index = build_report(_tiny(tmp_path / "uncond"), tmp_path / "r2", data=mini_sc, per_label=2, progress=False)
    page = _parse(index)
    assert page.sections == ["all"] and len(page.audio) == 4
    assert all((index.parent / a["src"]).is_file() for a in page.audio)


def test_report_bad_input(tmp_path):
    ckpt = _tiny(tmp_path / "cond", ["yes", "no"])
    with pytest.raises(ValueError, match="--per-label"):
        build_report(ckpt, tmp_path / "r", per_label=0)
    with pytest.raises(FileNotFoundError, match="--data"):
        build_report(ckpt, tmp_path / "r", data=tmp_path / "missing")
    with pytest.raises(FileNotFoundError, match="--ablation"):
        build_report(ckpt, tmp_path / "r", ablation=tmp_path / "missing.png")
    with pytest.raises(CheckpointError, match="nothing.*no such directory"):
        build_report(tmp_path / "nothing", tmp_path / "r")


SHARED_GENERATOR = Path(__file__).resolve().parents[2] / "shared" / "generators" / "wavegan_sc10_h100_5k_ema"


def test_verdicts_on_the_shared_generators_measured_metrics():
    """The weak generator of issue 11 (label accuracy 0.23, |D|self half the real clips')."""
    from ganaug.report.verdict import label_verdicts, verdicts

    result = json.loads((SHARED_GENERATOR / "metrics.json").read_text())
    said = verdicts(result)
    assert said["d_self"].startswith("less varied than real clips (77.9 vs 166.8)")
    assert said["label_acc"].startswith("the intended keyword is heard in 23% of clips (real clips 0.83)")
    assert "mislabelled" in said["label_acc"]
    assert said["fid"].startswith("35x the real clips' distance")
    assert said["d_train"].startswith("no sign of copying")
    assert said["is"].startswith("far below real clips (1.54 vs 2.40")
    assert label_verdicts(result) == ["near chance (0.10): yes, down, right, off, stop, go"]
    # the numbers: |D|self 9.5 against ~200 for real clips, label accuracy 0.00 for "yes"
    collapsed = {**result, "generated": {**result["generated"], "d_self": 9.5, "label_acc": 0.11,
                                         "label_acc_per_label": {**result["generated"]["label_acc_per_label"], "yes": 0.0}},
                 "real": {**result["real"], "d_self": 200.0}}
    said = verdicts(collapsed)
    assert said["d_self"].startswith("mode collapse") and said["label_acc"].startswith("near chance (0.11, chance 0.10")
    assert label_verdicts(collapsed)[0] == "never heard as itself (label accuracy 0): yes"


def test_report_of_the_shared_generator_says_its_verdicts(tmp_path):
    index = build_report(SHARED_GENERATOR, tmp_path / "r", per_label=1, metrics=SHARED_GENERATOR / "metrics.json",
                         progress=False)
    text = " ".join(_parse(index).text)
    assert "less varied than real clips" in text and "Labels near chance (0.10): yes, down" in text
    assert len(_parse(index).audio) == 10


def test_near_chance_scales_with_the_number_of_labels():
    """Two labels (the demo's case): 0.74 is well above chance 0.5, 0.52 is not; ten labels: 0.19 is."""
    from ganaug.report.verdict import label_verdicts, near_chance, verdicts

    assert not near_chance(0.74, 0.5) and near_chance(0.52, 0.5)
    assert near_chance(0.19, 0.1) and not near_chance(0.25, 0.1)
    result = {"labels": ["yes", "no"], "generated": {"label_acc": 0.74, "label_acc_per_label": {"yes": 0.96, "no": 0.52}},
              "real": {"label_acc": 0.9}}
    assert not verdicts(result)["label_acc"].startswith("near chance")
    assert label_verdicts(result) == ["near chance (0.50): no"]


def test_report_says_degenerate_or_too_small_instead_of_a_delta(tmp_path):
    """The demo's page never shows a difference whose classifiers predict one class, or of one seed."""
    from ganaug.ablation.stats import DEGENERATE, TOO_SMALL, summarize
    from ganaug.report.page import _ablation_table_html

    targets = [i % 4 for i in range(40)]
    rows = [{"speaker_fraction": 0.1, "augmentation": aug, "seed": seed, "test_acc": acc, "num_test": 40,
             "test_targets": targets, "test_predictions": preds}
            for aug, accs, preds in (("none", [0.25, 0.25], [0] * 40), ("classic", [0.6, 0.55], targets[:24] + [1] * 16))
            for seed, acc in enumerate(accs)]
    rows.append({"speaker_fraction": 0.25, "augmentation": "none", "seed": 0, "test_acc": 0.5, "num_test": 40})
    rows.append({"speaker_fraction": 0.25, "augmentation": "classic", "seed": 0, "test_acc": 0.7, "num_test": 40})
    plot = tmp_path / "ablation" / "ablation.png"
    plot.parent.mkdir()
    (plot.parent / "summary.json").write_text(json.dumps({"summary": summarize(rows), "order": ["none", "classic"]}))
    html_text = _ablation_table_html(plot)
    classic_rows = [r for r in html_text.split("<tr>") if "<td>classic</td>" in r]
    assert len(classic_rows) == 2
    low, quarter = sorted(classic_rows, key=lambda r: "25%" in r)
    assert DEGENERATE in low and "+32" not in low          # none predicts one class: no number for the delta
    assert TOO_SMALL in quarter and "+20.00 [" not in quarter   # one seed: no interval
