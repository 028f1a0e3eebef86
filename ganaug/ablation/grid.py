"""``ganaug ablate HPARAMS.yaml``: speaker fractions x augmentations x generator options x seeds (+ TSTR), resumable.

Every cell is one ``ganaug kws`` run in ``<output_folder>/cells/f<fraction>_<arm>[_<option>]_s<seed>/``;
a cell whose ``results.json`` exists is skipped when the command is re-run. A cell's seed sets its
classifier's initialisation and batch order, its speaker subset (unless ``data_seed`` fixes one) and the
seed of any generator trained for it (unless ``generator_seed`` fixes one). The generators are trained
with ``ganaug.train`` on the cell's own TRAINING speakers, never a valid/test speaker
(:mod:`ganaug.ablation.generators`), or taken from the given ``per_keyword_ckpt`` / ``conditional_ckpt``
(``{fraction}`` in the path is replaced). Before any work the grid prints what it will cost
(:mod:`ganaug.ablation.cost`).

Arms (:data:`ARMS`): ``none``, ``classic`` (SpeechBrain noise/shift/speed), ``gan_per_keyword``,
``gan_conditional``, ``classic+gan`` (with ``classic_gan_generator``), ``gan_filtered`` and
``classic+gan_filtered`` (the ``classic_gan_generator``'s clips kept only when the label filter gives
their label a posterior >= ``filter_min_confidence``: the kws key ``gan_min_confidence``), and
``tstr`` (train on synthetic clips only, test on real speakers; added when ``tstr: true``).

Generator families (``generator_families: [wavegan, specgan, tifgan]``): every arm that uses a
generator is run once per family; arms of a family other than WaveGAN are named
``<arm>@<family>`` (e.g. ``gan_conditional@specgan``) and their generators are trained from that
family's packaged config (``conditional: True`` for the conditional arm) with the same ``gan_overrides``.
Generator options (``generator_options: {ema: {ema_decay: 0.999}, ...}``): every arm that uses a
generator is run once per option, its generator trained with ``gan_overrides`` plus the option's
``ganaug train`` overrides; the option's name is the ``generator_option`` column of the results.
Given checkpoints apply to WaveGAN without options only.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

from ganaug.ablation.generators import DEFAULT_FAMILY, describe_generators, generator_dir
from ganaug.config import HparamsError, check_threads, deep_merge, load_hparams, split_labels
from ganaug.io import atomic_write, atomic_write_json

__all__ = ["ARMS", "GAN_KINDS", "plan_cells", "run_ablation", "main", "read_cell"]

ARMS = ("none", "classic", "gan_per_keyword", "gan_conditional", "classic+gan", "gan_filtered",
        "classic+gan_filtered", "tstr")
GAN_KINDS = ("gan_per_keyword", "gan_conditional")   # the two kinds of generator an arm can use
CLASSIC_ARMS = ("classic", "classic+gan", "classic+gan_filtered")
FILTERED_ARMS = ("gan_filtered", "classic+gan_filtered")


def _check(hp: dict) -> None:
    if not split_labels(hp["labels"]):
        raise HparamsError("labels: give the keywords, e.g. --labels=yes,no")
    fractions, augs, seeds = hp["speaker_fractions"], hp["augmentations"], hp["seeds"]
    if not isinstance(fractions, list) or not fractions or not all(isinstance(f, (int, float)) and 0 < f <= 1 for f in fractions):
        raise HparamsError(f"speaker_fractions={fractions!r}: give a list of fractions in (0, 1], e.g. [0.1, 0.5, 1.0]")
    bad = [a for a in (augs or []) if a not in ARMS]
    if not isinstance(augs, list) or not augs or bad:
        raise HparamsError(f"augmentations={augs!r}: choose from {list(ARMS)}")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds) or len(set(seeds)) != len(seeds):
        raise HparamsError(f"seeds={seeds!r}: give a list of distinct integers, e.g. [0, 1, 2]")
    for key in ("tstr_generator", "classic_gan_generator"):
        if hp[key] not in GAN_KINDS:
            raise HparamsError(f"{key}={hp[key]!r}: choose one of {GAN_KINDS}")
    for key in ("data_seed", "generator_seed"):
        if hp[key] is not None and (isinstance(hp[key], bool) or not isinstance(hp[key], int)):
            raise HparamsError(f"{key}={hp[key]!r}: null (each cell's seed) or an integer (one for every seed)")
    check_threads(_cell_threads(hp), "kws_overrides.num_threads")
    if not 0.0 < float(hp["filter_min_confidence"]) <= 1.0:
        raise HparamsError(f"filter_min_confidence={hp['filter_min_confidence']!r}: a posterior in (0, 1], e.g. 0.8")
    from ganaug.models import GENERATORS as FAMILIES

    families = _families(hp)
    if not families or any(f not in FAMILIES for f in families) or len(set(families)) != len(families):
        raise HparamsError(f"generator_families={families!r}: give distinct names from {sorted(FAMILIES)}")
    for key, example in (("generator_options", "{ema: {ema_decay: 0.999}}"),
                         ("injection_options", "{w05: {synthetic_weight: 0.5}}")):
        options = hp[key] or {}
        if not isinstance(options, dict) or not all(isinstance(k, str) and re.fullmatch(r"[A-Za-z0-9_-]+", k)
                                                    and isinstance(v, dict) for k, v in options.items()):
            raise HparamsError(f"{key}={options!r}: give {{name: {{key: value}}}}, names of letters, digits, _ and -, "
                               f"e.g. {example}")


def _cell_threads(hp: dict):
    """The cells' torch CPU threads (kws_overrides' num_threads; None: kws.yaml's)."""
    return (hp["kws_overrides"] or {}).get("num_threads")


def _families(hp: dict) -> list[str]:
    return list(hp.get("generator_families") or [DEFAULT_FAMILY])


def _options(hp: dict) -> list[str]:
    return list(hp["generator_options"] or {}) or [""]


def _injections(hp: dict, aug: str) -> list[str]:
    """The injection options (kws keys) a GAN arm runs once each with; TSTR has no real rows to inject into."""
    return ([""] if aug == "tstr" else list(hp["injection_options"] or {}) or [""])


def _kind(hp: dict, aug: str) -> str | None:
    """The generator kind an arm uses, or None."""
    if aug in GAN_KINDS:
        return aug
    if aug in ("classic+gan", *FILTERED_ARMS):
        return hp["classic_gan_generator"]
    return hp["tstr_generator"] if aug == "tstr" else None


def _seeds(hp: dict, fraction: float, seed: int) -> tuple[int, int]:
    """``(data_seed, generator seed)`` of a cell: its own seed unless the grid fixes one (``data_seed``,
    ``generator_seed``); all of the training speakers are the same subset whatever its seed."""
    data_seed = int(seed if hp["data_seed"] is None else hp["data_seed"])
    return (0 if float(fraction) == 1.0 else data_seed), int(seed if hp["generator_seed"] is None else hp["generator_seed"])


def plan_cells(hp: dict) -> list[dict]:
    """The grid, in run order: ``{speaker_fraction, augmentation, generator_option, seed, data_seed, generator,
    name}`` per cell; ``generator`` is None or ``(fraction, kind, family, option, data_seed, generator seed)``."""
    augs = list(hp["augmentations"]) + (["tstr"] if hp["tstr"] and "tstr" not in hp["augmentations"] else [])
    cells = []
    for fraction in hp["speaker_fractions"]:
        for aug in augs:
            kind = _kind(hp, aug)
            for family in (_families(hp) if kind else [None]):
                label = aug if family in (None, DEFAULT_FAMILY) else f"{aug}@{family}"
                for option, injection in [(o, i) for o in (_options(hp) if kind else [""])
                                          for i in (_injections(hp, aug) if kind else [""])]:
                    shown = "+".join(part for part in (option, injection) if part)
                    for seed in hp["seeds"]:
                        name = (f"f{float(fraction):g}_{label.replace('+', '_').replace('@', '_')}"
                                f"{'_' + shown.replace('+', '_') if shown else ''}_s{seed}")
                        data_seed, gen_seed = _seeds(hp, fraction, seed)
                        cells.append({"speaker_fraction": float(fraction), "augmentation": label,
                                      "generator_option": shown, "injection": injection, "seed": int(seed),
                                      "data_seed": data_seed, "name": name,
                                      "generator": (float(fraction), kind, family, option, data_seed, gen_seed)
                                      if kind else None})
    return cells


def _labels(hp) -> list[str]:
    return split_labels(hp["labels"])


def _cell_overrides(hp: dict, cell: dict, cell_dir: Path, gan_dir: Path | None) -> dict:
    from ganaug.kws.recipe import MODE_KEYS

    arm = cell["augmentation"].split("@")[0]
    injection = dict((hp["injection_options"] or {}).get(cell["injection"]) or {})     # may change the policy
    mode = str(injection.get("gan_mode", hp["gan_mode"]))
    policy = {"gan_mode": mode, MODE_KEYS[mode]: float(hp[MODE_KEYS[mode]])}          # only the key the mode reads
    overrides = deep_merge(deep_merge(deep_merge(dict(hp["kws_overrides"] or {}), policy), injection), {
        "data_folder": str(hp["data_folder"]), "output_folder": str(cell_dir), "eval_folder": str(hp["eval_folder"] or ""),
        "noise_folder": str(hp["noise_folder"] or ""),
        "labels": _labels(hp), "speaker_fraction": cell["speaker_fraction"], "data_seed": cell["data_seed"],
        "seed": cell["seed"], "device": str(hp["device"]), "classic_augment": arm in CLASSIC_ARMS,
        "gan_ckpt": str(gan_dir) if gan_dir is not None else "",
        "train_source": "synthetic" if arm == "tstr" else "real"})
    if arm in FILTERED_ARMS:  # kws.yaml's label-consistency filter of the synthetic clips
        overrides["gan_min_confidence"] = float(hp["filter_min_confidence"])
    judged = (float(overrides.get("gan_min_confidence") or 0) > 0 or overrides.get("gan_select") == "top_k"
              or overrides.get("soft_labels"))
    if judged and gan_dir is not None and arm != "tstr":
        if not overrides.get("gan_filter_classifier"):
            from ganaug.kws.generate import filter_classifier_for   # the generator's own, trained once if missing

            overrides["gan_filter_classifier"] = str(filter_classifier_for(gan_dir, str(hp["device"])))
    return overrides


def read_cell(cell_dir: Path) -> dict | None:
    """A finished cell's results, or None (missing or damaged results.json: run it again)."""
    path = cell_dir / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return results if isinstance(results, dict) and "test_acc" in results else None


RESULT_KEYS = ("test_acc", "eval_acc", "valid_acc", "num_test", "num_eval", "num_train", "synthetic_rows", "duration_s",
               "test_predictions", "test_targets")


def _kws_steps(hp: dict):
    """``cell -> (optimizer steps, batch size, model)`` of a cell's classifier run, for the cost estimate."""
    import math

    from ganaug.data import KeywordDataset

    kws, _ = load_hparams(hp["kws_hparams"], deep_merge(dict(hp["kws_overrides"] or {}), {
        "data_folder": str(hp["data_folder"]), "output_folder": str(hp["output_folder"]), "labels": _labels(hp)}))
    sizes: dict[tuple, int] = {}

    def steps(cell: dict) -> tuple[int, int, str]:
        batch = int(kws["batch_size"])
        model = str(kws["model"]) + (f"-{kws['tau']}" if kws["model"] == "bcresnet" else "")
        if kws["steps_per_epoch"] is not None:       # the budget does not depend on the data size
            return int(kws["number_of_epochs"]) * int(kws["steps_per_epoch"]), batch, model
        if cell["augmentation"].split("@")[0] == "tstr":
            n = int(kws["synthetic_per_label"]) * len(_labels(hp))
        else:
            key = (cell["speaker_fraction"], cell["data_seed"])
            if key not in sizes:
                sizes[key] = len(KeywordDataset(hp["data_folder"], labels=_labels(hp), split="train",
                                                speaker_fraction=cell["speaker_fraction"], seed=cell["data_seed"]))
            n = sizes[key]
        return int(kws["number_of_epochs"]) * math.ceil(n / batch), batch, model

    return steps


def _run_cells(hp: dict, bar, output: Path) -> tuple[list[dict], int, int]:
    """Run the cells of ``bar`` (a tqdm over the planned cells) not finished yet, each generator found or
    trained once; ``(rows, ran, skipped)``."""
    from ganaug.kws.recipe import run_kws

    rows, ran, skipped, generators = [], 0, 0, {}
    for cell in bar:
        bar.set_postfix_str(cell["name"])
        cell_dir = output / "cells" / cell["name"]
        results = read_cell(cell_dir)
        if results is None:
            gan_dir = None
            if cell["generator"]:
                if cell["generator"] not in generators:
                    generators[cell["generator"]] = generator_dir(hp, cell["generator"], output)
                gan_dir = generators[cell["generator"]]
            results = run_kws(hp["kws_hparams"], _cell_overrides(hp, cell, cell_dir, gan_dir))
            ran += 1
        else:
            skipped += 1
        rows.append({**{k: cell[k] for k in ("speaker_fraction", "augmentation", "generator_option", "seed")},
                     "cell": cell["name"], **{k: results.get(k) for k in RESULT_KEYS}})
    return rows, ran, skipped


def run_ablation(hparams_file, overrides=None, progress: bool = True) -> dict:
    """Run (or finish) the grid; returns ``{"rows", "summary", "table", "html", "generators", "csv",
    "markdown", "plot", "ran", "skipped"}``."""
    from tqdm.auto import tqdm

    from ganaug.ablation.cost import describe_cost, plan_cost
    from ganaug.ablation.stats import html_table, markdown_table, plot, seed_table, summarize, write_csv
    from ganaug.env import resolve_device, torch_threads

    hp, resolved = load_hparams(hparams_file, overrides)
    _check(hp)
    hp["device"] = resolve_device(hp["device"])
    output = Path(str(hp["output_folder"]))
    output.mkdir(parents=True, exist_ok=True)
    atomic_write(output / "hparams.yaml", lambda tmp: Path(tmp).write_text(resolved))
    cells = plan_cells(hp)
    for key in dict.fromkeys(c["generator"] for c in cells if c["generator"]):
        generator_dir(hp, key, output, train_missing=False)   # finished cells of other generators: refused
    finished = [c["name"] for c in cells if read_cell(output / "cells" / c["name"]) is not None]
    print(describe_cost(plan_cost(hp, cells, output, _kws_steps(hp), finished)), flush=True)
    bar = tqdm(cells, desc="ablation cells", unit="cell", disable=not progress)
    # the cells' thread count also holds for what a cell trains before its classifier (a filter classifier)
    with torch_threads(_cell_threads(hp)):
        rows, ran, skipped = _run_cells(hp, bar, output)
    order = list(dict.fromkeys(c["augmentation"] for c in cells))
    summary = summarize(rows)
    used = describe_generators(hp, cells)
    paths = {"csv": output / "results.csv", "markdown": output / "results.md", "plot": output / "ablation.png"}
    write_csv(rows, paths["csv"])
    table = markdown_table(summary, order)
    note = (f"# Ablation: {output}\n\nLabels: {', '.join(_labels(hp))}; seeds {hp['seeds']}; accuracy on speakers "
            f"never seen in training (test split of {hp['data_folder']}).\n\n")
    arms = "".join(f"- {arm}: {text}\n" for arm, text in used.items())
    per_seed = "\n## Every cell and seed\n\n" + seed_table(summary, order)
    atomic_write(paths["markdown"], lambda tmp: Path(tmp).write_text(
        note + table + (f"\nGenerators used:\n\n{arms}" if arms else "") + per_seed))
    atomic_write_json(output / "summary.json", {"summary": summary, "order": order, "generators": used})
    plot(summary, paths["plot"], order)
    return {"rows": rows, "summary": summary, "ran": ran, "skipped": skipped, "table": table, "generators": used,
            "html": html_table(summary, order), **{k: str(v) for k, v in paths.items()}}


def main(hparams_file, overrides=None) -> int:
    """Entry point of ``ganaug ablate`` (user errors are printed by :mod:`ganaug.cli`)."""
    out = run_ablation(hparams_file, overrides)
    print(out["table"])
    for arm, text in out["generators"].items():
        print(f"{arm}: {text}")
    print(f"{out['ran']} cells run, {out['skipped']} skipped (already finished)\n"
          f"results: {out['csv']}\ntable:   {out['markdown']}\nplot:    {out['plot']}")
    return 0
