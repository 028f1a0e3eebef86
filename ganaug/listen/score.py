"""Score a listening test: per system, label accuracy and mean opinion scores with 95% intervals.

``score_test(folder)`` merges every ``answers/*.jsonl`` of the test (several listeners: copy their
files into one ``answers/``; file names are listener ids, so they do not collide), joins them with
``key.json`` and writes ``score/results.json``, ``score/results.md`` and
``score/confusion_<system>.png``. Accuracy counts "can't tell" as wrong and has a Wilson score
interval; quality, intelligibility and diversity are means with t-intervals
(:func:`ganaug.ablation.intervals.mean_std_ci`). Every line is checked by the server's rule
(:func:`ganaug.listen.store.check_answer`) against ``key.json``; a line that breaks it is skipped
and reported as ``<file>:<line>: <why>`` (a warning, ``skipped`` in results.json, a list in results.md).
"""

from __future__ import annotations

import re
import warnings
from pathlib import Path

from ganaug.ablation.intervals import mean_std_ci, wilson_interval
from ganaug.io import atomic_write, atomic_write_json
from ganaug.listen.build import ANSWERS_DIR, CANT_TELL, ListenError
from ganaug.listen.store import check_answer, latest, read_answers, read_key

__all__ = ["score_test", "SCORE_DIR"]

SCORE_DIR = "score"


def _mos(values) -> dict | None:
    if not values:
        return None
    mean, std, ci = mean_std_ci(values)
    # the t interval, kept on the rating scale (1-5): a small sample near an end would run past it
    bounds = None if ci is None else [max(1.0, mean - ci), min(5.0, mean + ci)]
    return {"mean": mean, "std": std, "ci95": ci, "ci95_range": bounds, "n": len(values)}


def _fmt_mos(m: dict | None) -> str:
    if m is None:
        return "–"
    return f"{m['mean']:.2f}" + ("" if m["ci95_range"] is None else " [{:.2f}, {:.2f}]".format(*m["ci95_range"]))


def confusion_png(matrix: list[list[int]], labels: list[str], choices: list[str], title: str, path: Path) -> None:
    """Rows: the clip's label; columns: what listeners picked. Cells show counts, colour = row share."""
    import numpy as np
    from matplotlib.figure import Figure

    counts = np.array(matrix, dtype=float)
    share = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    fig = Figure(figsize=(1.2 + 0.45 * len(choices), 1.0 + 0.42 * len(labels)), dpi=100)
    ax = fig.add_subplot()
    ax.imshow(share, cmap="Blues", vmin=0, vmax=1, aspect="auto")
    ax.set_xticks(range(len(choices)), choices, rotation=45, ha="right", fontsize=8)
    ax.set_yticks(range(len(labels)), labels, fontsize=8)
    ax.set_xlabel("heard as", fontsize=8)
    ax.set_ylabel("label", fontsize=8)
    ax.set_title(title, fontsize=9)
    for i in range(len(labels)):
        for j in range(len(choices)):
            if counts[i, j]:
                ax.text(j, i, f"{int(counts[i, j])}", ha="center", va="center", fontsize=7,
                        color="white" if share[i, j] > 0.6 else "black")
    fig.tight_layout()
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))


def _markdown(summary: dict) -> str:
    lines = ["| system | clips | answers | listeners | label accuracy [95% CI] | can't tell | quality | "
             "intelligibility | diversity |",
             "|---|---:|---:|---:|---|---:|---|---|---|"]
    for name, s in summary["systems"].items():
        acc = "–" if s["accuracy"] is None else (f"{100 * s['accuracy']:.1f}% "
                                                 f"[{100 * s['accuracy_ci95'][0]:.1f}, {100 * s['accuracy_ci95'][1]:.1f}]")
        cant = "–" if s["cant_tell"] is None else f"{100 * s['cant_tell']:.1f}%"
        lines.append(f"| {name} | {s['clips']} | {s['answers']} | {s['listeners']} | {acc} | {cant} | "
                     f"{_fmt_mos(s['quality'])} | {_fmt_mos(s['intelligibility'])} | {_fmt_mos(s['diversity'])} |")
    lines += ["", f"{summary['answers']} clip answers and {summary['diversity_answers']} diversity ratings of "
              f"{len(summary['listeners'])} listener(s) ({', '.join(summary['listeners']) or 'none'}). "
              "Accuracy: share of clips heard as their label (\"can't tell\" counts as wrong), 95% Wilson interval. "
              "Quality, intelligibility (per clip) and diversity (per block of ten clips of one system): "
              "mean of 1-5 ratings ± 95% t-interval half-width.", ""]
    for name, s in summary["systems"].items():
        where = s.get("ckpt") or s.get("data") or ""
        lines.append(f"- {name}: {s['kind']}{' ' + where if where else ''}")
    if summary["skipped"]:
        lines += ["", f"Skipped {len(summary['skipped'])} answer line(s) that break the test's rules:", ""]
        lines += [f"- {problem}" for problem in summary["skipped"]]
    return "\n".join(lines) + "\n"


def score_test(folder, out=None) -> dict:
    """Score the answers of the test in ``folder``; writes into ``out`` (default ``folder/score``), returns the summary."""
    folder = Path(folder)
    key = read_key(folder)
    files = sorted((folder / ANSWERS_DIR).glob("*.jsonl"))
    if not files:
        raise ListenError(f"{folder / ANSWERS_DIR}: no answer files yet; serve the test (ganaug listen --serve "
                          f"{folder}) and answer it, or copy listeners' .jsonl files there")
    labels, choices = key["labels"], key["labels"] + [CANT_TELL]
    records, problems = read_answers(files, lambda r: check_answer(r, key["items"], key["blocks"], choices))
    if problems:
        warnings.warn(f"{len(problems)} answer line(s) skipped: {'; '.join(problems[:5])}"
                      f"{' ...' if len(problems) > 5 else ''}", UserWarning, stacklevel=2)
    answers = latest(records)
    per_system = {name: {"clip": [], "diversity": [], "listeners": set()} for name in key["systems"]}
    for (listener, kind, ref), r in answers.items():
        system = key["items"][ref]["system"] if kind == "clip" else key["blocks"][ref]
        per_system[system][kind].append(r)
        per_system[system]["listeners"].add(listener)

    out = Path(out) if out is not None else folder / SCORE_DIR
    systems = {}
    for name, got in per_system.items():
        clips = got["clip"]
        truth = [key["items"][r["id"]]["label"] for r in clips]
        correct = sum(r["label"] == t for r, t in zip(clips, truth))
        matrix = [[0] * len(choices) for _ in labels]
        for r, t in zip(clips, truth):
            matrix[labels.index(t)][choices.index(r["label"])] += 1
        per_label = {}
        for i, label in enumerate(labels):
            n = sum(matrix[i])
            per_label[label] = None if n == 0 else matrix[i][i] / n
        slug = re.sub(r"[^A-Za-z0-9_.+-]+", "-", name)
        png = None
        if clips:
            png = f"confusion_{slug}.png"
            confusion_png(matrix, labels, choices, f"{name}: {correct}/{len(clips)} correct", out / png)
        systems[name] = {
            **{k: v for k, v in key["systems"][name].items() if k in ("kind", "ckpt", "data", "min_confidence")},
            "clips": sum(1 for item in key["items"].values() if item["system"] == name),
            "answers": len(clips), "listeners": len(got["listeners"]), "correct": correct,
            "accuracy": correct / len(clips) if clips else None,
            "accuracy_ci95": list(wilson_interval(correct, len(clips))) if clips else None,
            "cant_tell": sum(r["label"] == CANT_TELL for r in clips) / len(clips) if clips else None,
            "accuracy_per_label": per_label,
            "quality": _mos([r["quality"] for r in clips]),
            "intelligibility": _mos([r["intelligibility"] for r in clips]),
            "diversity": _mos([r["diversity"] for r in got["diversity"]]),
            "confusion": {"labels": labels, "choices": choices, "counts": matrix}, "confusion_png": png,
        }
    summary = {
        "format_version": 1, "test": str(folder.resolve()), "labels": labels,
        "listeners": sorted({k[0] for k in answers}), "answers": sum(len(g["clip"]) for g in per_system.values()),
        "diversity_answers": sum(len(g["diversity"]) for g in per_system.values()), "skipped_lines": len(problems),
        "skipped": problems,
        "systems": systems,
    }
    atomic_write_json(out / "results.json", summary)
    text = _markdown(summary)
    atomic_write(out / "results.md", lambda tmp: Path(tmp).write_text(text))
    return summary
