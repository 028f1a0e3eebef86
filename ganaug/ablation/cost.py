"""What an ablation will cost, said before it starts: generators, generator steps, classifier runs, time.

The time is an estimate from measured rates (:data:`GAN_RATES`, :data:`KWS_RATES`, each with its
source; docs/performance.md lists the same figures): a generator step costs in proportion to
``model_dim**2 * batch_size * (d_steps_per_g_step + 1)`` from the nearest measured point of that device,
and a classifier run in proportion to its optimizer steps. A device with no measured rate says so
rather than guessing.
"""

from __future__ import annotations

from pathlib import Path

__all__ = ["GAN_RATES", "KWS_RATES", "plan_cost", "describe_cost"]

#: device type -> (generator steps/s, model_dim, batch_size, d_steps_per_g_step, source)
GAN_RATES = {
    "cuda": (5.9, 64, 64, 5, "the paper WaveGAN on one H100, bf16 autocast: 5,000 steps in 14 min "
                             "(shared/generators/README.md)"),
    "cpu": (0.19, 16, 32, 5, "a d=16 conditional WaveGAN, 1 thread, 2-4 runs side by side on a 2-core CPU: "
                             "0.15-0.23 steps/s (docs/results_generators.md, issue 11)"),
}
#: (device type, model) -> (classifier optimizer steps/s at batch 32, source)
KWS_RATES = {
    ("cpu", "ds_cnn"): (5.5, "DS-CNN (64 channels, 4 blocks), batch 32, 1 thread of the 2-core CPU, classic "
                             "augmentation off (docs/performance.md)"),
}


def _generator_steps(hp: dict, key: tuple, output: Path) -> dict | None:
    """The steps a generator of the grid still has to train (None: given, or finished already)."""
    from ganaug.ablation.generators import DONE_MARKER, generator_job, given_checkpoint
    from ganaug.checkpoint import is_checkpoint, read_config
    from ganaug.config import load_hparams, split_labels

    if given_checkpoint(hp, *key[1:4]):
        return None
    folder, name, overrides = generator_job(hp, key, output)
    if (folder / DONE_MARKER).is_file():
        return None
    gan, _ = load_hparams(name, overrides)
    count = len(split_labels(hp["labels"])) if not gan.get("conditional", False) else 1   # one per keyword
    done = read_config(folder).get("step", 0) if count == 1 and is_checkpoint(folder) else 0
    return {"generators": count, "steps": count * max(0, int(gan["max_steps"]) - int(done)),
            "model_dim": int(gan["model_dim"]), "batch_size": int(gan["batch_size"]),
            "d_steps": int(gan.get("d_steps_per_g_step", 5))}


def plan_cost(hp: dict, cells: list[dict], output: Path, kws_steps, finished=()) -> dict:
    """``{"generators", "generator_steps", "gan_seconds"|None, "classifier_runs", "finished", "kws_seconds"|None,
    "sources"}`` of the cells still to run (all but the names in ``finished``); ``kws_steps(cell)`` gives a
    cell's optimizer steps, batch size and model name."""
    device = str(hp["device"]).split(":")[0]
    todo = [c for c in cells if c["name"] not in set(finished)]
    jobs = [job for key in dict.fromkeys(c["generator"] for c in todo if c["generator"])
            if (job := _generator_steps(hp, key, output)) is not None]
    out = {"generators": sum(j["generators"] for j in jobs), "generator_steps": sum(j["steps"] for j in jobs),
           "classifier_runs": len(todo), "finished": len(cells) - len(todo), "device": device, "sources": []}
    if device in GAN_RATES and jobs:
        rate, dim, batch, d_steps, source = GAN_RATES[device]
        cost = lambda j: (j["model_dim"] / dim) ** 2 * (j["batch_size"] / batch) * (j["d_steps"] + 1) / (d_steps + 1)  # noqa: E731
        out["gan_seconds"] = sum(j["steps"] * cost(j) / rate for j in jobs)
        out["sources"].append(f"generators: {rate:g} steps/s at d={dim}, batch {batch}: {source}")
    else:
        out["gan_seconds"] = 0.0 if not jobs else None
    seconds = 0.0
    for cell in todo:
        steps, batch, model = kws_steps(cell)
        rate = KWS_RATES.get((device, model))
        if rate is None:
            seconds = None
            break
        seconds += steps * (batch / 32) / rate[0]
    out["kws_seconds"] = seconds if todo else 0.0
    out["sources"] += sorted({f"classifiers: {r[0]:g} steps/s ({m}): {r[1]}" for (d, m), r in KWS_RATES.items()
                              if d == device and todo})
    return out


def _hours(seconds) -> str:
    if seconds is None:
        return "not estimated (no measured rate on this device)"
    return f"{seconds / 3600:.1f} h" if seconds >= 3600 else f"{seconds / 60:.0f} min"


def describe_cost(cost: dict) -> str:
    """The lines ``ganaug ablate`` prints before it starts."""
    lines = [f"ganaug ablate: {cost['generators']} generator(s) to train ({cost['generator_steps']:,} generator steps), "
             f"{cost['classifier_runs']} classifier run(s) ({cost['finished']} cell(s) finished already)",
             f"  estimated time on {cost['device']}: generators {_hours(cost['gan_seconds'])}, "
             f"classifiers {_hours(cost['kws_seconds'])}"]
    lines += [f"  rate of {s}" for s in cost["sources"]]
    return "\n".join(lines)
