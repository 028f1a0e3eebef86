"""``ganaug demo``: the whole job on Speech Commands keywords, small enough for a laptop CPU.

1. train a small class-conditional WaveGAN on the TRAIN speakers  -> OUT/generator/
2. evaluate it (reference classifier, IS, FID, |D|, label accuracy) -> OUT/generator/eval/metrics.json
3. run the quick ablation (speaker fraction x augmentation x seed)   -> OUT/ablation/
4. write the report page (listen, look, tables, plot)                -> OUT/report/index.html

Re-running resumes: training continues from its newest checkpoint (and is skipped once
``max_steps`` is reached), the evaluation is skipped while its metrics.json is newer than the
generator, finished ablation cells are skipped, and the report is rebuilt (seconds).
The settings (:data:`DEMO`) are for 2 CPU cores; the generator is far too small and short to say
words (WaveGAN needs ~100k steps at d=64 on a GPU), but every stage runs for real.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

__all__ = ["DEMO", "SMOKE", "main", "run_demo", "default_data_folder"]

DEMO = {
    "labels": "yes,no",
    # ganaug train wavegan_conditional overrides
    "train": {"model_dim": 8, "batch_size": 16, "max_steps": 300, "ckpt_interval_steps": 100,
              "log_interval_steps": 10, "samples_per_label": 2, "tensorboard": False},
    "classifier": {},                 # kws keys overriding the reference recipe (ganaug.kws.reference)
    "num_samples": 500,               # generated clips scored
    "ablation": "ablation_quick",     # packaged preset
    "ablation_overrides": {},
    "per_label": 4,                   # clips per label on the report page
}

# The same pipeline in seconds, for the smoke test (tests/test_demo.py) only.
SMOKE = {
    "labels": "yes,no",
    "train": {"model_dim": 8, "batch_size": 8, "max_steps": 2, "ckpt_interval_steps": 2, "d_steps_per_g_step": 1,
              "log_interval_steps": 1, "samples_per_label": 1, "tensorboard": False, "progress": False},
    "classifier": {"number_of_epochs": 2, "batch_size": 8},
    "num_samples": 16,
    "ablation": "ablation_quick",
    "ablation_overrides": {"speaker_fractions": [1.0], "seeds": [0], "augmentations": ["none", "gan_conditional"],
                           "tstr": False, "kws_overrides": {"batch_size": 8}},
    "per_label": 1,
}

SHARED = Path("shared") / "data" / "speech_commands"


def default_data_folder() -> Path | None:
    """``../shared/data/speech_commands`` relative to the working directory or to ganaug's repository."""
    repo = Path(__file__).resolve().parents[1]
    for base in (Path.cwd(), repo):
        candidate = (base / ".." / SHARED).resolve()
        if candidate.is_dir():
            return candidate
    return None


def _step(title: str) -> float:
    print(f"\n=== {title} ===", flush=True)
    return time.time()


def run_demo(data_folder=None, output_folder="runs/demo", device=None, settings: dict | None = None) -> dict:
    """Run (or finish) the demo; returns the paths it wrote (``generator``, ``metrics``, ``ablation``, ``report``)."""
    from ganaug.ablation import run_ablation
    from ganaug.checkpoint import WEIGHTS_FILE, is_checkpoint, read_config
    from ganaug.io import atomic_write_json
    from ganaug.metrics.evaluate import evaluate_generator, format_table
    from ganaug.report import build_report
    from ganaug.train import train

    s = settings or DEMO
    data = Path(data_folder) if data_folder is not None else default_data_folder()
    if data is None:
        raise FileNotFoundError(
            "no Speech Commands folder: pass --data_folder=DIR, or download it first with\n"
            "  python -c \"import ganaug.data as d; print(d.download('speech_commands_v2', 'data'))\"\n"
            "and pass the folder it prints")
    if not data.is_dir():
        raise FileNotFoundError(f"--data_folder {data}: no such folder; give a Speech Commands-layout folder "
                                f"(or download one with ganaug.data.download('speech_commands_v2', root))")
    out = Path(output_folder)
    device = device or "cpu"
    progress = s["train"].get("progress", True)
    paths = {"generator": out / "generator", "classifier": out / "reference_classifier",
             "metrics": out / "generator" / "eval" / "metrics.json", "ablation": out / "ablation",
             "report": out / "report" / "index.html"}
    started = time.time()
    print(f"ganaug demo: data {data}, labels {s['labels']}, output {out.resolve()}")

    t = _step(f"1/4 train a conditional WaveGAN ({s['train']['max_steps']} steps, d={s['train']['model_dim']})")
    ckpt = paths["generator"]
    if is_checkpoint(ckpt) and read_config(ckpt).get("step", 0) >= s["train"]["max_steps"]:
        print(f"done already: {ckpt} (step {read_config(ckpt)['step']})")
    else:
        train("wavegan_conditional", {**s["train"], "data_folder": str(data), "output_folder": str(ckpt),
                                      "labels": s["labels"], "device": device})
    print(f"generator: {ckpt} ({time.time() - t:.0f} s)")

    t = _step("2/4 evaluate it against real speakers")
    metrics = paths["metrics"]
    if metrics.is_file() and metrics.stat().st_mtime > (ckpt / WEIGHTS_FILE).stat().st_mtime:
        import json

        result = json.loads(metrics.read_text())
        print(f"done already: {metrics}")
    else:
        result = evaluate_generator(ckpt, data, classifier=paths["classifier"], num_clips=s["num_samples"],
                                    device=device, progress=progress, recipe=s["classifier"])
        atomic_write_json(metrics, result)
    print(format_table(result))
    print(f"metrics: {metrics} ({time.time() - t:.0f} s)")

    t = _step(f"3/4 quick ablation ({s['ablation']})")
    ablation = run_ablation(s["ablation"], {**s["ablation_overrides"], "data_folder": str(data),
                                            "output_folder": str(paths["ablation"]), "labels": s["labels"],
                                            "device": device}, progress=progress)
    print(ablation["table"])
    print(f"{ablation['ran']} cells run, {ablation['skipped']} skipped; table {ablation['markdown']} "
          f"({time.time() - t:.0f} s)")

    t = _step("4/4 report")
    build_report(ckpt, paths["report"].parent, data=data, per_label=s["per_label"], metrics=metrics,
                 ablation=ablation["plot"], progress=progress)
    print(f"report: {paths['report']} ({time.time() - t:.0f} s)")

    print(f"\nganaug demo finished in {time.time() - started:.0f} s. Everything is under {out.resolve()}:\n"
          f"  generator     {paths['generator']}  (samples/, logs/stats.jsonl)\n"
          f"  metrics       {paths['metrics']}\n"
          f"  classifier    {paths['classifier']}\n"
          f"  ablation      {ablation['markdown']}, {ablation['plot']}, {ablation['csv']}\n"
          f"  report        {paths['report']}  (open file://{paths['report'].resolve()})\n"
          f"The demo checks the pipeline; its numbers are not a result: a CPU-sized generator trained for\n"
          f"minutes, classifiers trained for one epoch on two keywords, two seeds (CIs span chance).\n"
          f"For a measured ablation see docs/results.md; on a GPU run `ganaug ablate ablation`.")
    return {**paths, "ablation_plot": Path(ablation["plot"]), "ablation_table": Path(ablation["markdown"])}


def main(data_folder=None, output_folder="runs/demo", device=None) -> int:
    """Entry point of ``ganaug demo``; a missing data folder is one line of advice, exit code 2."""
    try:
        run_demo(data_folder, output_folder, device)
    except FileNotFoundError as err:
        print(f"ganaug demo: error: {err}", file=sys.stderr)
        return 2
    return 0
