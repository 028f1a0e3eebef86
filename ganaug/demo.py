"""``ganaug demo``: the whole job on Speech Commands keywords, small enough for a laptop CPU.

1. train a small class-conditional WaveGAN on the TRAIN speakers  -> OUT/generator/
2. evaluate it (reference classifier, IS, FID, |D|, label accuracy) -> OUT/generator/eval/metrics.json
3. run the quick ablation (speaker fraction x augmentation x seed)   -> OUT/ablation/
4. write the report page (listen, look, tables, plot)                -> OUT/report/index.html

Re-running resumes: training continues from its newest checkpoint (and is skipped once
``max_steps`` is reached), the evaluation is skipped while its metrics.json is newer than the
generator, finished ablation cells are skipped, and the report is rebuilt (seconds).
The settings (:data:`DEMO`) are for 2 CPU cores: the generator is the packaged ``wavegan_tiny``
preset, and the ablation's GAN arms use that generator (the one the report shows), not one of
their own. It is far too small and short to say words (WaveGAN needs ~100k steps at d=64 on a
GPU), but every stage runs for real.
"""

from __future__ import annotations

import time
from pathlib import Path

__all__ = ["DEMO", "SMOKE", "main", "run_demo", "default_data_folder"]

DEMO = {
    "labels": ["yes", "no"],
    "preset": "wavegan_tiny",         # packaged `ganaug train` preset of the demo's generator
    "train": {},                      # its overrides
    "classifier": {"steps_per_epoch": 25},   # kws keys overriding the reference recipe (ganaug.kws.reference):
                                      # 500 steps (20 x 25; 38 passes over 420 yes/no clips) instead of 2,000, so the
                                      # demo's scorer trains in about 2 CPU-minutes
    "num_clips": 500,                 # generated clips scored
    "ablation": "ablation_quick",     # packaged preset; its GAN arms use the demo's generator
    # the demo's generator saw all training speakers, so the ablation compares arms at 100% of them
    "ablation_overrides": {"speaker_fractions": [1.0], "seeds": [0, 1, 2], "tstr": True,
                           "augmentations": ["none", "classic", "gan_conditional", "classic+gan"]},
    "per_label": 4,                   # clips per label on the report page
}

# The same pipeline in seconds, for the smoke test (tests/test_demo.py) only.
SMOKE = {
    "labels": ["yes", "no"],
    "preset": "wavegan_tiny",
    "train": {"batch_size": 8, "max_steps": 2, "ckpt_interval_steps": 2, "d_steps_per_g_step": 1,
              "log_interval_steps": 1, "samples_per_label": 1, "progress": False},
    "classifier": {"number_of_epochs": 2, "steps_per_epoch": None, "batch_size": 8},
    "num_clips": 16,
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


def run_demo(data_folder=None, output_folder="runs/demo", device=None, settings: dict | None = None,
             noise_folder=None) -> dict:
    """Run (or finish) the demo; returns the paths it wrote (``generator``, ``metrics``, ``ablation``, ``report``)."""
    from ganaug.ablation import run_ablation
    from ganaug.checkpoint import WEIGHTS_FILE, is_checkpoint, read_config
    from ganaug.config import load_hparams
    from ganaug.io import atomic_write_json
    from ganaug.metrics.evaluate import evaluate_generator, format_table
    from ganaug.report import build_report
    from ganaug.train import train

    s = settings or DEMO
    data = Path(data_folder) if data_folder is not None else default_data_folder()
    if data is None:
        raise FileNotFoundError(
            "no Speech Commands folder: pass --data_folder=DIR, or download it first with "
            "python -c \"import ganaug.data as d; print(d.download('speech_commands_v2', 'data'))\" "
            "and pass the folder it prints")
    if not data.is_dir():
        raise FileNotFoundError(f"--data_folder {data}: no such folder; give a Speech Commands-layout folder "
                                f"(or download one with ganaug.data.download('speech_commands_v2', root))")
    out = Path(output_folder)
    from ganaug.env import resolve_device
    from ganaug.kws.reference import noise_overrides

    device = resolve_device(device)
    noise = noise_overrides(noise_folder)          # background noise of the classifiers' classic augmentation
    progress = s["train"].get("progress", True)
    train_overrides = {**s["train"], "data_folder": str(data), "labels": s["labels"], "device": device}
    paths = {"generator": out / "generator",
             "metrics": out / "generator" / "eval" / "metrics.json", "ablation": out / "ablation",
             "report": out / "report" / "index.html"}
    started = time.time()
    print(f"ganaug demo: data {data}, labels {s['labels']}, output {out.resolve()}")

    ckpt = paths["generator"]
    train_overrides["output_folder"] = str(ckpt)
    gan, _ = load_hparams(s["preset"], train_overrides)
    t = _step(f"1/4 train a conditional WaveGAN ({s['preset']}: {gan['max_steps']} steps, d={gan['model_dim']})")
    if is_checkpoint(ckpt) and read_config(ckpt).get("step", 0) >= gan["max_steps"]:
        print(f"done already: {ckpt} (step {read_config(ckpt)['step']})")
    else:
        train(s["preset"], train_overrides)
    print(f"generator: {ckpt} ({time.time() - t:.0f} s)")

    t = _step("2/4 evaluate it against real speakers")
    metrics = paths["metrics"]
    if metrics.is_file() and metrics.stat().st_mtime > (ckpt / WEIGHTS_FILE).stat().st_mtime:
        import json

        result = json.loads(metrics.read_text())
        print(f"done already: {metrics}")
    else:
        # the reference classifier of the data's TRAIN split, at its shared place (ganaug.kws.reference):
        # `ganaug evaluate` and the label filter find and reuse it instead of training another
        result = evaluate_generator(ckpt, data, num_clips=s["num_clips"], device=device, progress=progress,
                                    recipe={**s["classifier"], **noise})
        atomic_write_json(metrics, result)
    paths["classifier"] = Path(result["classifier"]["folder"])
    print(format_table(result))
    print(f"metrics: {metrics} ({time.time() - t:.0f} s)")

    t = _step(f"3/4 quick ablation ({s['ablation']}, GAN arms with the generator of step 1)")
    ablation = run_ablation(s["ablation"], {**s["ablation_overrides"], "data_folder": str(data),
                                            "output_folder": str(paths["ablation"]), "labels": s["labels"],
                                            "device": device, "conditional_ckpt": str(ckpt), **noise},
                           progress=progress)
    print(ablation["table"])
    for arm, text in ablation["generators"].items():
        print(f"{arm}: {text}")
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
          f"minutes ({s['preset']}, {gan['max_steps']} steps, d={gan['model_dim']}), used by every GAN arm of the\n"
          f"ablation; classifiers trained for one epoch on two keywords (CIs span chance).\n"
          f"For a measured ablation see docs/results.md; on a GPU run `ganaug ablate ablation`.")
    return {**paths, "ablation_plot": Path(ablation["plot"]), "ablation_table": Path(ablation["markdown"])}


def main(data_folder=None, output_folder="runs/demo", device=None, noise_folder=None) -> int:
    """Entry point of ``ganaug demo`` (a missing data folder is printed by :mod:`ganaug.cli` as one line)."""
    run_demo(data_folder, output_folder, device, noise_folder=noise_folder)
    return 0
