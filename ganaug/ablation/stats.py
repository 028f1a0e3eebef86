"""Summaries of an ablation grid: mean, std and 95% t-interval per cell; CSV, markdown, plot."""

from __future__ import annotations

import csv
import math
from pathlib import Path

__all__ = ["t_critical", "mean_std_ci", "summarize", "write_csv", "markdown_table", "plot"]

# two-sided 95% critical values of Student's t, by degrees of freedom
_T975 = {1: 12.7062, 2: 4.3027, 3: 3.1824, 4: 2.7764, 5: 2.5706, 6: 2.4469, 7: 2.3646, 8: 2.306, 9: 2.2622,
         10: 2.2281, 11: 2.201, 12: 2.1788, 13: 2.1604, 14: 2.1448, 15: 2.1314, 16: 2.1199, 17: 2.1098,
         18: 2.1009, 19: 2.093, 20: 2.086, 21: 2.0796, 22: 2.0739, 23: 2.0687, 24: 2.0639, 25: 2.0595,
         26: 2.0555, 27: 2.0518, 28: 2.0484, 29: 2.0452, 30: 2.0423, 40: 2.0211, 60: 2.0003, 120: 1.9799}

CSV_FIELDS = ["speaker_fraction", "augmentation", "seed", "test_acc", "eval_acc", "valid_acc", "num_train",
              "synthetic_rows", "duration_s", "cell"]


def t_critical(df: int) -> float:
    """Two-sided 95% critical value of t with ``df`` degrees of freedom (conservative between table rows)."""
    if df < 1:
        raise ValueError(f"df={df}: a t-interval needs at least 2 values (df >= 1)")
    if df in _T975:
        return _T975[df]
    below = [d for d in _T975 if d < df]
    return _T975[max(below)] if df <= 120 else 1.96


def mean_std_ci(values) -> tuple[float, float | None, float | None]:
    """``(mean, sample std (ddof=1), 95% CI half-width)``; std and CI are None for one value."""
    values = [float(v) for v in values]
    if not values:
        raise ValueError("mean_std_ci: no values")
    n = len(values)
    mean = sum(values) / n
    if n == 1:
        return mean, None, None
    std = math.sqrt(sum((v - mean) ** 2 for v in values) / (n - 1))
    return mean, std, t_critical(n - 1) * std / math.sqrt(n)


def summarize(rows: list[dict], metrics=("test_acc", "eval_acc")) -> list[dict]:
    """One row per (speaker_fraction, augmentation): n and mean/std/ci95 of each metric present."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        groups.setdefault((float(row["speaker_fraction"]), row["augmentation"]), []).append(row)
    out = []
    for (fraction, aug), members in groups.items():
        entry = {"speaker_fraction": fraction, "augmentation": aug, "n": len(members)}
        for metric in metrics:
            values = [m[metric] for m in members if m.get(metric) not in (None, "")]
            if values:
                entry[f"{metric}_mean"], entry[f"{metric}_std"], entry[f"{metric}_ci95"] = mean_std_ci(values)
        out.append(entry)
    base = {e["speaker_fraction"]: e.get("test_acc_mean") for e in out if e["augmentation"] == "none"}
    for e in out:
        ref = base.get(e["speaker_fraction"])
        e["delta_vs_none"] = None if ref is None or "test_acc_mean" not in e else e["test_acc_mean"] - ref
    return out


def write_csv(rows: list[dict], path) -> None:
    from ganaug.io import atomic_write

    def write(tmp):
        with open(tmp, "w", newline="") as f:
            writer = csv.DictWriter(f, fieldnames=CSV_FIELDS, extrasaction="ignore")
            writer.writeheader()
            for row in rows:
                writer.writerow({k: ("" if row.get(k) is None else row.get(k)) for k in CSV_FIELDS})

    atomic_write(path, write)


def _fmt(value, pct=True) -> str:
    if value is None:
        return "–"
    return f"{100 * value:.2f}" if pct else f"{value:.4f}"


def markdown_table(summary: list[dict], order=None) -> str:
    """Markdown table, accuracies in percent: mean, std, 95% CI (t) and the change vs. ``none``."""
    has_eval = any("eval_acc_mean" in s for s in summary)
    head = ["speaker fraction", "augmentation", "n", "test acc %", "std", "95% CI", "Δ vs none"]
    if has_eval:
        head += ["eval acc %", "eval 95% CI"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    order = list(order or [])
    rank = lambda s: (s["speaker_fraction"], order.index(s["augmentation"]) if s["augmentation"] in order else len(order),  # noqa: E731
                      s["augmentation"])
    for s in sorted(summary, key=rank):
        mean, ci = s.get("test_acc_mean"), s.get("test_acc_ci95")
        ci_text = "–" if ci is None else f"{_fmt(mean - ci)} – {_fmt(mean + ci)}"
        delta = s.get("delta_vs_none")
        cells = [f"{s['speaker_fraction']:g}", s["augmentation"], str(s["n"]), _fmt(mean), _fmt(s.get("test_acc_std")),
                 ci_text, "–" if delta is None or s["augmentation"] == "none" else f"{100 * delta:+.2f}"]
        if has_eval:
            em, eci = s.get("eval_acc_mean"), s.get("eval_acc_ci95")
            cells += [_fmt(em), "–" if eci is None or em is None else f"{_fmt(em - eci)} – {_fmt(em + eci)}"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def plot(summary: list[dict], path, order=None, metric="test_acc") -> None:
    """Accuracy vs. speaker fraction, one line per augmentation, 95% CI error bars (PNG)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    augs = list(order or []) + sorted({s["augmentation"] for s in summary} - set(order or []))
    fig, ax = plt.subplots(figsize=(6.4, 4.2), dpi=120)
    for i, aug in enumerate(a for a in augs if any(s["augmentation"] == a for s in summary)):
        pts = sorted((s for s in summary if s["augmentation"] == aug and f"{metric}_mean" in s),
                     key=lambda s: s["speaker_fraction"])
        if not pts:
            continue
        x = [s["speaker_fraction"] * (1 + 0.015 * (i - len(augs) / 2)) for s in pts]  # dodge overlapping bars
        y = [100 * s[f"{metric}_mean"] for s in pts]
        err = [100 * (s.get(f"{metric}_ci95") or 0.0) for s in pts]
        ax.errorbar(x, y, yerr=err, marker="o", capsize=3, label=aug)
    ax.set_xscale("log")
    fractions = sorted({s["speaker_fraction"] for s in summary})
    ax.set_xticks(fractions, [f"{f:g}" for f in fractions])
    ax.set_xlabel("fraction of training speakers")
    ax.set_ylabel(f"{metric.replace('_', ' ')} (%), mean ± 95% CI")
    ax.grid(alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
