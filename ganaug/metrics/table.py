"""The metrics of ``ganaug evaluate`` as people read them: ``metrics.md`` (a Markdown table of generated vs
real clips with how to read each row) beside ``metrics.json``; :data:`ROWS` also orders the report's table."""

from __future__ import annotations

import hashlib
import json
import math
from pathlib import Path

from ganaug.io import atomic_write, atomic_write_json

__all__ = ["ROWS", "format_value", "format_table", "write_metrics"]

ROWS = [  # key, name, reading
    ("is", "Inception Score", "higher is better, at most #labels"),
    ("mis", "modified IS", "higher is better"),
    ("fid", "FID vs real train", "lower is better"),
    ("kid", "KID vs real train", "lower is better; unbiased for small sets"),
    ("d_train", "|D|train", "NN distance to train; ~0 = copies"),
    ("d_self", "|D|self", "NN distance within set; small = mode collapse"),
    ("label_acc", "label accuracy", "classifier hears the intended label"),
    ("consistency", "spectrogram consistency", "TiFGAN's measure; real speech ~0.7, noise lower"),
]


def _md(text: str) -> str:
    """A Markdown table cell: ``|`` escaped so that ``|D|train`` stays one cell."""
    return str(text).replace("|", "\\|")


def format_value(values: dict, key: str) -> str:
    """``values[key]`` (± its ``_std``) with 3 decimals; "-" when missing, not a number or NaN."""
    value, std = values.get(key), values.get(f"{key}_std")
    if not isinstance(value, (int, float)) or math.isnan(value):
        return "-"
    return f"{value:.3f} ± {std:.3f}" if isinstance(std, (int, float)) else f"{value:.3f}"


def format_table(result: dict) -> str:
    """Markdown: a table metric | generated | real (test speakers) | how to read it, then notes."""
    lines = ["| metric | generated | real (test speakers) | reading |", "|---|---|---|---|"]
    if result["classifier"].get("trained_against"):
        lines = ["**Not independent:** the generator was trained to please this classifier (`aux: frozen`); "
                 "its label accuracy, IS and FID say how well it fooled it.", "", *lines]
    for key, name, reading in ROWS:
        if key in result["generated"] or key in result["real"]:
            lines.append(f"| {_md(name)} | {_md(format_value(result['generated'], key))} | {_md(format_value(result['real'], key))} "
                         f"| {_md(reading)} |")
    if "filter" in result:
        value = result["label_acc_filtered"]
        reading = ("not independent: the filter IS the scorer, it keeps what the scorer hears right "
                   "(give --data of other speakers, or --classifier)"
                   if result["filter"].get("same_as_scorer") else "the scorer on the clips the filter kept")
        if result["filter"].get("trained_against"):
            reading += "; the generator was trained to please the filter (aux: frozen), so its acceptance is no evidence"
        lines.append(f"| label accuracy, filtered | {'-' if value is None else f'{value:.3f}'} | - | {_md(reading)} |")
    per_label = result["generated"].get("label_acc_per_label")
    if per_label:
        lines.append("")
        lines.append("label accuracy per label: " + ", ".join(f"{k} {v:.2f}" for k, v in per_label.items()))
    if "filter" in result:
        f = result["filter"]
        lines.append("")
        lines.append(f"filter (posterior >= {f['min_confidence']}, {f['folder']}): kept {result['num_accepted']} of "
                     f"{result['num_generated']} clips ({result['acceptance_overall']:.2f}); acceptance per label: "
                     + ", ".join(f"{k} {'-' if v is None else f'{v:.2f}'}" for k, v in result["acceptance"].items()))
    clf = result["classifier"]
    lines.append("")
    lines.append(f"reference classifier: {clf['folder']} (labels {clf['label_names']}, "
                 f"test accuracy {clf['test_acc'] if clf['test_acc'] is None else round(clf['test_acc'], 4)})")
    lines.append("")
    lines.append(f"{result['num_generated']} generated clips, {result['num_real_test']} real test clips, "
                 f"{result['num_real_train']} real train clips")
    return "\n".join(lines)


def _settings_key(result: dict) -> str:
    """Short id of the settings a metrics.json was computed with (older files: from their fields)."""
    settings = result.get("settings") or {k: result.get(k) for k in ("ckpt", "data", "labels", "num_generated",
                                                                         "seed", "metrics", "classifier")}
    return hashlib.sha1(json.dumps(settings, sort_keys=True, default=str).encode()).hexdigest()[:10]


def write_metrics(out, result: dict) -> Path:
    """Write ``OUT/metrics.json`` and ``OUT/metrics.md``. A metrics.json there that was computed with
    other settings is kept, as ``metrics-<settings id>.json`` (+ ``.md``), before it is replaced."""
    out = Path(out)
    path = out / "metrics.json"
    if path.is_file():
        try:
            old = json.loads(path.read_text())
        except ValueError:
            old = None
        key = _settings_key(old) if isinstance(old, dict) else hashlib.sha1(path.read_bytes()).hexdigest()[:10]
        if key != _settings_key(result):
            kept = out / f"metrics-{key}.json"
            if not kept.exists():
                atomic_write(kept, lambda tmp: Path(tmp).write_bytes(path.read_bytes()))
                if (out / "metrics.md").is_file():
                    md = (out / "metrics.md").read_bytes()
                    atomic_write(out / f"metrics-{key}.md", lambda tmp: Path(tmp).write_bytes(md))
            print(f"{path} held metrics of other settings: kept as {kept}")
    atomic_write_json(path, result)
    table = format_table(result)
    atomic_write(out / "metrics.md", lambda tmp: Path(tmp).write_text(table + "\n"))
    return path
