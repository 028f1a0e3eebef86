"""Summaries of an ablation grid: per-seed accuracies, means over seeds, paired differences between arms.

A cell is one (speaker fraction, arm, generator option); its seeds are runs whose seed sets the
classifier's initialisation and batch order, the speaker subset and the seed of any generator trained for
it. Every arm of a fraction is scored on the same test clips, so arms are compared *paired*: seed by
seed (a t interval over the per-seed differences) and clip by clip (a bootstrap over the test clips of
the per-clip difference, seeds fixed). The intervals are those of :mod:`ganaug.ablation.intervals`.
A classifier that predicts one class for every test clip is *degenerate*: no difference involving it is
reported as a number.
"""

from __future__ import annotations

import csv
import html
from pathlib import Path

import numpy as np

from ganaug.ablation.intervals import mean_std_ci, paired_bootstrap, paired_t, t_interval, wilson_interval

__all__ = ["summarize", "write_csv", "markdown_table", "seed_table", "html_table", "plot", "TOO_SMALL", "REFERENCES",
           "NOTE"]

CSV_FIELDS = ["speaker_fraction", "augmentation", "generator_option", "seed", "test_acc", "test_wilson_low",
              "test_wilson_high", "num_test", "degenerate", "eval_acc", "valid_acc", "num_eval", "num_train",
              "synthetic_rows", "duration_s", "cell"]
TOO_SMALL = "n too small"
DEGENERATE = "degenerate (one class predicted)"
REFERENCES = ("none", "classic")        # the arms every other arm is compared with


def _number(value):
    return None if value in (None, "") else float(value)


def _correct(row: dict):
    """The row's per-clip correctness (0/1 array) and its targets, or ``(None, None)``."""
    preds, targets = row.get("test_predictions"), row.get("test_targets")
    if not preds or not targets or len(preds) != len(targets):
        return None, None
    return (np.asarray(preds) == np.asarray(targets)).astype(float), tuple(targets)


def _degenerate(row: dict) -> bool:
    preds = row.get("test_predictions")
    return bool(preds) and len(set(preds)) == 1


def _per_seed(row: dict) -> dict:
    acc, n = _number(row.get("test_acc")), int(_number(row.get("num_test")) or 0)
    wilson = wilson_interval(acc * n, n) if acc is not None and n else None
    return {"seed": int(row["seed"]), "test_acc": acc, "num_test": n, "degenerate": _degenerate(row),
            "test_wilson_low": wilson[0] if wilson else None, "test_wilson_high": wilson[1] if wilson else None}


def _paired(members: list[dict], reference: list[dict]) -> dict | None:
    """The paired difference of an arm's seeds against a reference arm's same seeds (same fraction)."""
    ref = {int(r["seed"]): r for r in reference}
    pairs = [(m, ref[int(m["seed"])]) for m in members
             if int(m["seed"]) in ref and _number(m.get("test_acc")) is not None
             and _number(ref[int(m["seed"])].get("test_acc")) is not None]
    if not pairs:
        return None
    out = {"pairs": len(pairs), "degenerate": any(_degenerate(m) or _degenerate(r) for m, r in pairs)}
    a = [_number(m["test_acc"]) for m, _ in pairs]
    b = [_number(r["test_acc"]) for _, r in pairs]
    out["mean"] = float(np.mean(a) - np.mean(b))
    t = paired_t(a, b)
    out["t_low"], out["t_high"] = (t[1], t[2]) if t else (None, None)
    correct = [(_correct(m), _correct(r)) for m, r in pairs]
    same_clips = all(ca is not None and cr is not None and ta == tr for (ca, ta), (cr, tr) in correct)
    boot = paired_bootstrap([ca for (ca, _), _ in correct], [cr for _, (cr, _) in correct]) if same_clips else None
    out["boot_low"], out["boot_high"] = (boot[1], boot[2]) if boot else (None, None)
    return out


def summarize(rows: list[dict], metrics=("test_acc", "eval_acc")) -> list[dict]:
    """One entry per (speaker_fraction, augmentation, generator_option): ``n``, the mean, std and t interval
    over seeds (``<metric>_mean/_std/_ci95/_ci_low/_ci_high/_ci_clipped``), ``per_seed`` (accuracy and its
    Wilson interval on that seed's test clips, never pooled), ``degenerate`` (seeds predicting one class)
    and ``delta_vs_none``/``delta_vs_classic`` (``{mean, t_low, t_high, boot_low, boot_high, pairs,
    degenerate}`` or None)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (float(row["speaker_fraction"]), row["augmentation"], row.get("generator_option") or "")
        groups.setdefault(key, []).append(row)
    out = []
    for (fraction, aug, option), members in groups.items():
        entry = {"speaker_fraction": fraction, "augmentation": aug, "generator_option": option, "n": len(members),
                 "per_seed": [_per_seed(m) for m in members], "degenerate": sum(_degenerate(m) for m in members)}
        for metric in metrics:
            values = [_number(m.get(metric)) for m in members if _number(m.get(metric)) is not None]
            if not values:
                continue
            entry[f"{metric}_mean"], entry[f"{metric}_std"], entry[f"{metric}_ci95"] = mean_std_ci(values)
            interval = t_interval(values)
            if interval is not None:
                entry[f"{metric}_ci_low"], entry[f"{metric}_ci_high"], entry[f"{metric}_ci_clipped"] = interval
        for ref in REFERENCES:
            reference = groups.get((fraction, ref, ""))
            entry[f"delta_vs_{ref}"] = None if reference is None or aug == ref else _paired(members, reference)
        out.append(entry)
    return out


def write_csv(rows: list[dict], path) -> None:
    """One line per cell and seed, with its Wilson interval and whether its classifier is degenerate."""
    from ganaug.io import atomic_write

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                full = {**row, **_per_seed(row)}
                writer.writerow({k: ("" if full.get(k) is None else full.get(k)) for k in CSV_FIELDS})

    atomic_write(path, write)


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _signed(value) -> str:
    return f"{100 * value:+.2f}"


def _interval_text(s: dict, metric: str) -> str:
    if f"{metric}_mean" not in s:
        return "–"
    if f"{metric}_ci_low" not in s:
        return TOO_SMALL
    star = "*" if s[f"{metric}_ci_clipped"] else ""
    return f"{_pct(s[f'{metric}_ci_low'])} – {_pct(s[f'{metric}_ci_high'])}{star}"


def _delta_texts(delta: dict | None) -> tuple[str, str]:
    """``(paired t text, bootstrap text)`` of a difference, in points."""
    if delta is None:
        return "–", "–"
    if delta["degenerate"]:
        return DEGENERATE, DEGENERATE
    t = (f"{_signed(delta['mean'])} [{_signed(delta['t_low'])}, {_signed(delta['t_high'])}]"
         if delta["t_low"] is not None else f"{_signed(delta['mean'])} ({TOO_SMALL})")
    boot = (f"[{_signed(delta['boot_low'])}, {_signed(delta['boot_high'])}]" if delta["boot_low"] is not None
            else "– (no per-clip predictions)")
    return t, boot


def _order(summary: list[dict], order) -> list[dict]:
    order = list(order or [])
    return sorted(summary, key=lambda s: (s["speaker_fraction"], order.index(s["augmentation"]) if s["augmentation"]
                                          in order else len(order), s["augmentation"], s.get("generator_option") or ""))


def _rows(summary: list[dict], order=None) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the results table (shared by markdown and HTML)."""
    has_eval = any("eval_acc_mean" in s for s in summary)
    has_option = any(s.get("generator_option") for s in summary)
    refs = [r for r in REFERENCES if any(s.get(f"delta_vs_{r}") for s in summary)]
    head = ["speaker fraction", "augmentation"] + (["generator option"] if has_option else []) + [
        "n", "test acc %", "std", "95% CI, seeds (t)"]
    for ref in refs:
        head += [f"Δ vs {ref}, paired seeds (t)", f"Δ vs {ref}, 95% CI clips (bootstrap)"]
    if has_eval:
        head += ["eval acc %", "eval 95% CI, seeds (t)"]
    body = []
    for s in _order(summary, order):
        cells = [f"{100 * s['speaker_fraction']:g}%", s["augmentation"]] + (
            [s.get("generator_option") or "–"] if has_option else []) + [
            str(s["n"]) + (f" ({s['degenerate']} degenerate)" if s.get("degenerate") else ""),
            _pct(s.get("test_acc_mean")), _pct(s.get("test_acc_std")), _interval_text(s, "test_acc")]
        for ref in refs:
            cells += list(_delta_texts(s.get(f"delta_vs_{ref}")))
        if has_eval:
            cells += [_pct(s.get("eval_acc_mean")), _interval_text(s, "eval_acc")]
        body.append(cells)
    return head, body


NOTE = ("Accuracy on speakers never seen in training, mean over seeds; a seed sets the classifier's initialisation "
        "and batch order, the training-speaker subset and any generator trained for the cell, and all arms of a "
        "fraction share seeds and test clips. 95% CI, seeds (t): how far the mean moves from seed to seed "
        f"('{TOO_SMALL}' below 2 seeds; * = clipped to 0–100). Δ: the arm minus the reference, paired seed by seed "
        "(t interval of the per-seed differences) and clip by clip (bootstrap over the test clips, seeds fixed). "
        "Each seed's own accuracy and Wilson interval on its test clips are in the per-seed table.")


def markdown_table(summary: list[dict], order=None) -> str:
    """Markdown table, accuracies and differences in percent (points)."""
    head, body = _rows(summary, order)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n\n" + NOTE + "\n"


def seed_table(summary: list[dict], order=None) -> str:
    """Markdown table of every cell and seed: accuracy and the Wilson interval of its own test clips."""
    lines = ["| speaker fraction | augmentation | generator option | seed | test acc % | 95% CI, its test clips "
             "(Wilson) | test clips |", "|---|---|---|---|---|---|---|"]
    for s in _order(summary, order):
        for p in sorted(s["per_seed"], key=lambda p: p["seed"]):
            wilson = (f"{_pct(p['test_wilson_low'])} – {_pct(p['test_wilson_high'])}"
                      if p["test_wilson_low"] is not None else "–")
            lines.append(f"| {100 * s['speaker_fraction']:g}% | {s['augmentation']} | {s.get('generator_option') or '–'} "
                         f"| {p['seed']} | {_pct(p['test_acc'])}{' (degenerate)' if p['degenerate'] else ''} | {wilson} "
                         f"| {p['num_test']} |")
    return "\n".join(lines) + "\n"


def html_table(summary: list[dict], order=None) -> str:
    """The same table as HTML (``<table>`` + a note), for the report page."""
    head, body = _rows(summary, order)
    numeric = {i for i, h in enumerate(head) if h not in ("augmentation", "generator option")}
    rows = "".join("<tr>" + "".join(f"<td{' class=num' if i in numeric else ''}>{html.escape(c)}</td>"
                                    for i, c in enumerate(cells)) + "</tr>" for cells in body)
    return (f"<table class=ablation><tr>{''.join(f'<th>{html.escape(h)}</th>' for h in head)}</tr>{rows}</table>"
            f"<p class=note>{html.escape(NOTE)}</p>")


def _line_name(s: dict) -> str:
    return s["augmentation"] + (f" [{s['generator_option']}]" if s.get("generator_option") else "")


def plot(summary: list[dict], path, order=None, metric="test_acc") -> None:
    """Accuracy (0–100 %) vs. percentage of training speakers, one line per arm, error bars = the
    clipped t interval over seeds; the legend sits outside the axes, so it covers no bar (PNG)."""
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    from ganaug.io import atomic_write

    names = list(dict.fromkeys(_line_name(s) for s in _order(summary, order)))
    fig = Figure(figsize=(8.0, 4.2), dpi=120)
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    for i, name in enumerate(names):
        pts = sorted((s for s in summary if _line_name(s) == name and f"{metric}_mean" in s),
                     key=lambda s: s["speaker_fraction"])
        if not pts:
            continue
        x = [100 * s["speaker_fraction"] * (1 + 0.015 * (i - len(names) / 2)) for s in pts]  # dodge overlapping bars
        y = [100 * s[f"{metric}_mean"] for s in pts]
        low = [100 * (s[f"{metric}_mean"] - s.get(f"{metric}_ci_low", s[f"{metric}_mean"])) for s in pts]
        high = [100 * (s.get(f"{metric}_ci_high", s[f"{metric}_mean"]) - s[f"{metric}_mean"]) for s in pts]
        ax.errorbar(x, y, yerr=[low, high], marker="o", capsize=3, label=name)
    ax.set_xscale("log")
    fractions = sorted({s["speaker_fraction"] for s in summary})
    ax.set_xticks([100 * f for f in fractions], [f"{100 * f:g}%" for f in fractions])
    ax.minorticks_off()
    ax.set_ylim(0, 100)
    ax.set_xlabel("training speakers used (%)")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%), mean ± 95% CI (t, seeds)")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8, loc="upper left", bbox_to_anchor=(1.02, 1.0), borderaxespad=0)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    atomic_write(path, lambda tmp: fig.savefig(tmp, format="png"))
