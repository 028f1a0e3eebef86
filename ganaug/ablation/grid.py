"""``ganaug ablate HPARAMS.yaml``: speaker fractions x augmentations x seeds (+ TSTR), resumable.

Every cell is one ``ganaug kws`` run in ``<output_folder>/cells/f<fraction>_<augmentation>_s<seed>/``;
a cell whose ``results.json`` exists is skipped when the command is re-run. The generators a
fraction needs are trained first with ``ganaug.train`` on that fraction's TRAINING speakers
(same ``speaker_fraction`` and ``data_seed`` as the classifier, so never a valid/test speaker),
into ``<output_folder>/gans/f<fraction>/{per_keyword,conditional}``, or taken from the given
``per_keyword_ckpt`` / ``conditional_ckpt`` (``{fraction}`` in the path is replaced).

Augmentations: ``none``, ``classic`` (SpeechBrain noise/shift/speed), ``gan_per_keyword``,
``gan_conditional``, ``classic+gan`` (with ``classic_gan_generator``), and ``tstr`` (train on
synthetic clips only, test on real speakers; added when ``tstr: true``).

Generator families (``generator_families: [wavegan, specgan, tifgan]``): every arm that uses a
generator is run once per family; arms of a family other than WaveGAN are named
``<augmentation>@<family>`` (e.g. ``gan_conditional@specgan``) and their generators are trained
from that family's packaged config (``specgan``/``tifgan``; ``conditional: True`` for the
conditional arm) with the same ``gan_overrides``. Given checkpoints apply to WaveGAN only.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ganaug.hparams import HparamsError, load_hparams, resolve_hparams_file

__all__ = ["AUGMENTATIONS", "load_ablation_hparams", "plan_cells", "run_ablation", "main"]

AUGMENTATIONS = ("none", "classic", "gan_per_keyword", "gan_conditional", "classic+gan", "tstr")
GENERATORS = ("gan_per_keyword", "gan_conditional")
DEFAULT_FAMILY = "wavegan"


def _merge(base: dict, update: dict) -> dict:
    out = dict(base)
    for key, value in update.items():
        out[key] = _merge(out[key], value) if isinstance(value, dict) and isinstance(out.get(key), dict) else value
    return out


def load_ablation_hparams(hparams_file, overrides=None) -> tuple[dict, str]:
    """Like ``load_hparams``, plus presets: a file with a top-level ``base: NAME`` is that base
    file (a sibling ``NAME.yaml`` or a packaged config) with the file's other keys as overrides."""
    from ruamel.yaml import YAML

    import re

    path = resolve_hparams_file(hparams_file)
    text = path.read_text()
    if not re.search(r"^base:", text, re.M):  # a plain HyperPyYAML file (it may hold tags)
        return load_hparams(path, overrides)
    own = YAML(typ="safe").load(text) or {}
    if not isinstance(own, dict):
        raise HparamsError(f"{path}: expected a mapping of keys to values")
    overrides = dict(overrides or {})
    if "base" in own:
        base = str(own.pop("base"))
        sibling = path.parent / f"{base}.yaml"
        base_path = sibling if sibling.is_file() else resolve_hparams_file(base)
        if base_path.resolve() == path.resolve():
            raise HparamsError(f"{path}: base: {base} names the file itself")
        parsed = {}
        for key, value in overrides.items():  # CLI values are YAML text; merge them as values
            if isinstance(value, str) and value.strip():
                loaded = YAML(typ="safe").load(value)
                value = loaded if loaded is not None else value
            parsed[key] = value
        return load_hparams(base_path, _merge(own, parsed))
    return load_hparams(path, overrides)


def _check(hp: dict) -> None:
    from ganaug.hparams import split_labels

    if not split_labels(hp["labels"]):
        raise HparamsError("labels: give the keywords, e.g. --labels=yes,no")
    fractions, augs, seeds = hp["speaker_fractions"], hp["augmentations"], hp["seeds"]
    if not isinstance(fractions, list) or not fractions or not all(isinstance(f, (int, float)) and 0 < f <= 1 for f in fractions):
        raise HparamsError(f"speaker_fractions={fractions!r}: give a list of fractions in (0, 1], e.g. [0.1, 0.5, 1.0]")
    bad = [a for a in (augs or []) if a not in AUGMENTATIONS]
    if not isinstance(augs, list) or not augs or bad:
        raise HparamsError(f"augmentations={augs!r}: choose from {list(AUGMENTATIONS)}")
    if not isinstance(seeds, list) or not seeds or not all(isinstance(s, int) for s in seeds) or len(set(seeds)) != len(seeds):
        raise HparamsError(f"seeds={seeds!r}: give a list of distinct integers, e.g. [0, 1, 2]")
    for key in ("tstr_generator", "classic_gan_generator"):
        if hp[key] not in GENERATORS:
            raise HparamsError(f"{key}={hp[key]!r}: choose one of {GENERATORS}")
    from ganaug.models import GENERATORS as FAMILIES

    families = _families(hp)
    if not families or any(f not in FAMILIES for f in families) or len(set(families)) != len(families):
        raise HparamsError(f"generator_families={families!r}: give distinct names from {sorted(FAMILIES)}")


def _families(hp: dict) -> list[str]:
    return list(hp.get("generator_families") or [DEFAULT_FAMILY])


def plan_cells(hp: dict) -> list[dict]:
    """The grid, in run order: ``{speaker_fraction, augmentation, seed, generator, family, name}``
    per cell; ``generator`` is None or ``(kind, family)``."""
    augs = list(hp["augmentations"]) + (["tstr"] if hp["tstr"] and "tstr" not in hp["augmentations"] else [])
    cells = []
    for fraction in hp["speaker_fractions"]:
        for aug in augs:
            kind = {"gan_per_keyword": "gan_per_keyword", "gan_conditional": "gan_conditional",
                    "classic+gan": hp["classic_gan_generator"], "tstr": hp["tstr_generator"]}.get(aug)
            for family in (_families(hp) if kind else [None]):
                label = aug if family in (None, DEFAULT_FAMILY) else f"{aug}@{family}"
                for seed in hp["seeds"]:
                    name = f"f{float(fraction):g}_{label.replace('+', '_').replace('@', '_')}_s{seed}"
                    cells.append({"speaker_fraction": float(fraction), "augmentation": label, "seed": int(seed),
                                  "generator": (kind, family) if kind else None, "name": name})
    return cells


def _generator_dir(hp: dict, fraction: float, kind: str, family: str, output: Path) -> Path:
    """Given checkpoint, or train one on this fraction's training speakers (resumes/skips if done)."""
    given = str(hp["per_keyword_ckpt" if kind == "gan_per_keyword" else "conditional_ckpt"] or "")
    if family != DEFAULT_FAMILY:
        given = ""
    if given:
        path = Path(given.replace("{fraction}", f"{fraction:g}"))
        if not path.is_dir():
            raise HparamsError(f"{kind}: checkpoint {path} does not exist; train it with `ganaug train` or leave the key empty")
        return path
    from ganaug.train import train

    folder = output / "gans" / f"f{fraction:g}" / ("per_keyword" if kind == "gan_per_keyword" else "conditional")
    if family != DEFAULT_FAMILY:
        folder = folder.with_name(f"{folder.name}_{family}")
    done_marker = folder / ".ablation_done"
    if not done_marker.is_file():
        overrides = _merge(dict(hp["gan_overrides"] or {}), {
            "data_folder": str(hp["data_folder"]), "output_folder": str(folder), "labels": ",".join(_labels(hp)),
            "speaker_fraction": fraction, "data_seed": int(hp["data_seed"]), "device": str(hp["device"])})
        if family == DEFAULT_FAMILY:
            name = hp["gan_per_keyword_hparams" if kind == "gan_per_keyword" else "gan_conditional_hparams"]
        else:  # the family's packaged config; one key makes it conditional
            name, overrides["conditional"] = family, kind == "gan_conditional"
        train(name, overrides)
        done_marker.write_text(json.dumps({"finished": time.time()}))
    return folder


def _labels(hp):
    from ganaug.hparams import split_labels

    return split_labels(hp["labels"])


def _cell_overrides(hp: dict, cell: dict, cell_dir: Path, gan_dir: Path | None) -> dict:
    aug = cell["augmentation"]
    overrides = _merge(dict(hp["kws_overrides"] or {}), {
        "data_folder": str(hp["data_folder"]), "output_folder": str(cell_dir), "eval_folder": str(hp["eval_folder"] or ""),
        "labels": ",".join(_labels(hp)), "speaker_fraction": cell["speaker_fraction"], "data_seed": int(hp["data_seed"]),
        "seed": cell["seed"], "device": str(hp["device"]), "classic_augment": aug in ("classic", "classic+gan"),
        "gan_ckpt": str(gan_dir) if gan_dir is not None else "", "gan_p": float(hp["gan_p"]),
        "train_source": "synthetic" if aug == "tstr" else "real"})
    return overrides


def read_cell(cell_dir: Path) -> dict | None:
    """A finished cell's results, or None (missing or damaged results.json: run it again)."""
    path = cell_dir / "results.json"
    try:
        results = json.loads(path.read_text())
    except (OSError, json.JSONDecodeError):
        return None
    return results if isinstance(results, dict) and "test_acc" in results else None


def run_ablation(hparams_file, overrides=None, progress: bool = True) -> dict:
    """Run (or finish) the grid; returns ``{"rows", "summary", "csv", "markdown", "plot", "ran", "skipped"}``."""
    from tqdm.auto import tqdm

    from ganaug.ablation.stats import markdown_table, plot, summarize, write_csv
    from ganaug.io import atomic_write, atomic_write_json
    from ganaug.kws.recipe import run_kws

    hp, resolved = load_ablation_hparams(hparams_file, overrides)
    _check(hp)
    output = Path(str(hp["output_folder"]))
    output.mkdir(parents=True, exist_ok=True)
    atomic_write(output / "hparams.yaml", lambda tmp: Path(tmp).write_text(resolved))
    cells = plan_cells(hp)
    rows, ran, skipped, generators = [], 0, 0, {}
    bar = tqdm(cells, desc="ablation cells", unit="cell", disable=not progress)
    for cell in bar:
        bar.set_postfix_str(cell["name"])
        cell_dir = output / "cells" / cell["name"]
        results = read_cell(cell_dir)
        if results is None:
            gan_dir = None
            if cell["generator"]:
                key = (cell["speaker_fraction"], *cell["generator"])
                if key not in generators:
                    generators[key] = _generator_dir(hp, *key, output)
                gan_dir = generators[key]
            results = run_kws(hp["kws_hparams"], _cell_overrides(hp, cell, cell_dir, gan_dir))
            ran += 1
        else:
            skipped += 1
        rows.append({**{k: cell[k] for k in ("speaker_fraction", "augmentation", "seed")}, "cell": cell["name"],
                     **{k: results.get(k) for k in ("test_acc", "eval_acc", "valid_acc", "num_train",
                                                    "synthetic_rows", "duration_s")}})
    order = list(dict.fromkeys(c["augmentation"] for c in cells))
    summary = summarize(rows)
    paths = {"csv": output / "results.csv", "markdown": output / "results.md", "plot": output / "ablation.png"}
    write_csv(rows, paths["csv"])
    table = markdown_table(summary, order)
    note = (f"# Ablation: {output}\n\nLabels: {', '.join(_labels(hp))}; seeds {hp['seeds']}; accuracy on speakers "
            f"never seen in training (test split of {hp['data_folder']}). Mean, sample std and 95% CI (t) over seeds.\n\n")
    atomic_write(paths["markdown"], lambda tmp: Path(tmp).write_text(note + table))
    atomic_write_json(output / "summary.json", summary)
    plot(summary, paths["plot"], order)
    return {"rows": rows, "summary": summary, "ran": ran, "skipped": skipped, "table": table,
            **{k: str(v) for k, v in paths.items()}}


def main(hparams_file, overrides=None) -> int:
    """Entry point of ``ganaug ablate``; a configuration problem is one line on stderr, exit code 2."""
    import sys

    try:
        out = run_ablation(hparams_file, overrides)
    except HparamsError as err:
        print(f"ganaug ablate: error: {err}", file=sys.stderr)
        return 2
    print(out["table"])
    print(f"{out['ran']} cells run, {out['skipped']} skipped (already finished)\n"
          f"results: {out['csv']}\ntable:   {out['markdown']}\nplot:    {out['plot']}")
    return 0
