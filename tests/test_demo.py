"""``ganaug demo`` wiring: the full pipeline with the SMOKE settings on the mini Speech Commands folder."""

from __future__ import annotations

import json

from ganaug.cli import run_command
from ganaug.demo import SMOKE, main, run_demo


def test_demo_smoke_runs_every_stage_and_resumes(mini_sc, tmp_path, capsys):
    out = tmp_path / "demo"
    paths = run_demo(mini_sc, out, "cpu", settings=SMOKE)
    for key in ("generator", "metrics", "report", "ablation_plot", "ablation_table"):
        assert paths[key].exists(), key
    assert (paths["classifier"] / "classifier.safetensors").is_file()
    metrics = json.loads(paths["metrics"].read_text())
    assert metrics["labels"] == ["yes", "no"] and "label_acc" in metrics["generated"]
    page = paths["report"].read_text()
    assert page.count("<audio") == 4 and "ablation.png" in page and "Inception Score" in page
    printed = capsys.readouterr().out
    assert "ganaug demo finished" in printed and str(paths["report"]) in printed
    # the ablation's GAN arm used the demo's own generator (none trained for the ablation), and says so
    cell = json.loads((out / "ablation" / "cells" / "f1_gan_conditional_s0" / "results.json").read_text())
    assert cell["augmentation"]["gan_ckpt"] == str(paths["generator"]) and cell["synthetic_rows"] > 0
    assert not (out / "ablation" / "gans").exists()
    assert f"gan_conditional: the given checkpoint {paths['generator']} (step 2, d=8" in printed

    # a second run skips the finished work
    before = paths["metrics"].stat().st_mtime_ns
    run_demo(mini_sc, out, "cpu", settings=SMOKE)
    printed = capsys.readouterr().out
    assert printed.count("done already") == 2 and "0 cells run, 2 skipped" in printed
    assert paths["metrics"].stat().st_mtime_ns == before


def test_demo_without_data_gives_advice(tmp_path, capsys):
    assert run_command("ganaug demo", main, tmp_path / "missing", tmp_path / "out") == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("ganaug demo: error: --data_folder")
    assert "speech_commands_v2" in err and not (tmp_path / "out").exists()
