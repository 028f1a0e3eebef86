"""Summaries of an ablation grid: mean, std and 95% intervals per cell; CSV, markdown, HTML, plot.

Two intervals, both within [0, 100] %:

- **seeds (t)**: the mean over seeds +- ``t.ppf(0.975, n-1) * std / sqrt(n)`` (scipy), clipped to
  [0, 1] (marked ``*`` where clipped). It says how much the result moves with the training seed;
  it needs n >= 2 seeds ("n too small" otherwise) and is 0 wide when every seed scored the same.
- **test clips (Wilson)**: the Wilson score interval of the pooled test counts (correct / clips over
  the seeds). It says how much the accuracy moves with the finite test set and is never 0 wide.
"""

from __future__ import annotations

import csv
import html
import math
from pathlib import Path

__all__ = ["t_critical", "mean_std_ci", "t_interval", "wilson_interval", "summarize", "write_csv",
           "markdown_table", "html_table", "plot", "TOO_SMALL"]

CSV_FIELDS = ["speaker_fraction", "augmentation", "generator_option", "seed", "test_acc", "eval_acc", "valid_acc",
              "num_test", "num_eval", "num_train", "synthetic_rows", "duration_s", "cell"]
TOO_SMALL = "n too small"


def t_critical(df: int, confidence: float = 0.95) -> float:
    """Two-sided critical value of Student's t with ``df`` degrees of freedom (``scipy.stats.t.ppf``)."""
    from scipy.stats import t

    if df < 1:
        raise ValueError(f"df={df}: a t-interval needs at least 2 values (df >= 1)")
    return float(t.ppf(0.5 + confidence / 2, df))


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


def t_interval(values) -> tuple[float, float, bool] | None:
    """95% t-interval of the mean of accuracies in [0, 1], clipped to [0, 1]: ``(low, high, clipped)``;
    None for fewer than 2 values."""
    mean, _, half = mean_std_ci(values)
    if half is None:
        return None
    low, high = mean - half, mean + half
    return max(low, 0.0), min(high, 1.0), low < 0.0 or high > 1.0


def wilson_interval(correct: float, total: int, confidence: float = 0.95) -> tuple[float, float] | None:
    """Wilson score interval of a proportion ``correct / total`` (always inside [0, 1]); None if total is 0."""
    from scipy.stats import norm

    if total <= 0:
        return None
    z = float(norm.ppf(0.5 + confidence / 2))
    p = correct / total
    centre = (p + z * z / (2 * total)) / (1 + z * z / total)
    half = z / (1 + z * z / total) * math.sqrt(p * (1 - p) / total + z * z / (4 * total * total))
    return max(centre - half, 0.0), min(centre + half, 1.0)


def _number(value):
    return None if value in (None, "") else float(value)


def summarize(rows: list[dict], metrics=("test_acc", "eval_acc")) -> list[dict]:
    """One entry per (speaker_fraction, augmentation, generator_option): n, mean/std, the t interval
    over seeds (``<metric>_ci_low/_ci_high/_ci_clipped``, absent when n < 2) and the Wilson interval of
    the pooled test counts (``<metric>_wilson_low/_high``, when the rows carry ``num_test``/``num_eval``)."""
    groups: dict[tuple, list[dict]] = {}
    for row in rows:
        key = (float(row["speaker_fraction"]), row["augmentation"], row.get("generator_option") or "")
        groups.setdefault(key, []).append(row)
    out = []
    for (fraction, aug, option), members in groups.items():
        entry = {"speaker_fraction": fraction, "augmentation": aug, "generator_option": option, "n": len(members)}
        for metric in metrics:
            pairs = [(_number(m.get(metric)), _number(m.get("num_test" if metric == "test_acc" else "num_eval")))
                     for m in members if _number(m.get(metric)) is not None]
            if not pairs:
                continue
            values = [v for v, _ in pairs]
            entry[f"{metric}_mean"], entry[f"{metric}_std"], entry[f"{metric}_ci95"] = mean_std_ci(values)
            interval = t_interval(values)
            if interval is not None:
                entry[f"{metric}_ci_low"], entry[f"{metric}_ci_high"], entry[f"{metric}_ci_clipped"] = interval
            if all(n for _, n in pairs):
                wilson = wilson_interval(sum(v * n for v, n in pairs), int(sum(n for _, n in pairs)))
                entry[f"{metric}_wilson_low"], entry[f"{metric}_wilson_high"] = wilson
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


def _pct(value) -> str:
    return "–" if value is None else f"{100 * value:.2f}"


def _interval_text(s: dict, metric: str) -> str:
    if f"{metric}_mean" not in s:
        return "–"
    if f"{metric}_ci_low" not in s:
        return TOO_SMALL
    star = "*" if s[f"{metric}_ci_clipped"] else ""
    return f"{_pct(s[f'{metric}_ci_low'])} – {_pct(s[f'{metric}_ci_high'])}{star}"


def _wilson_text(s: dict, metric: str) -> str:
    if f"{metric}_wilson_low" not in s:
        return "–"
    return f"{_pct(s[f'{metric}_wilson_low'])} – {_pct(s[f'{metric}_wilson_high'])}"


def _rows(summary: list[dict], order=None) -> tuple[list[str], list[list[str]]]:
    """Header and cells of the results table (shared by markdown and HTML)."""
    has_eval = any("eval_acc_mean" in s for s in summary)
    has_option = any(s.get("generator_option") for s in summary)
    head = ["speaker fraction", "augmentation"] + (["generator option"] if has_option else []) + [
        "n", "test acc %", "std", "95% CI, seeds (t)", "95% CI, test clips (Wilson)", "Δ vs none"]
    if has_eval:
        head += ["eval acc %", "eval 95% CI, seeds (t)"]
    order = list(order or [])
    rank = lambda s: (s["speaker_fraction"], order.index(s["augmentation"]) if s["augmentation"] in order else len(order),  # noqa: E731
                      s["augmentation"], s.get("generator_option") or "")
    body = []
    for s in sorted(summary, key=rank):
        delta = s.get("delta_vs_none")
        cells = [f"{100 * s['speaker_fraction']:g}%", s["augmentation"]] + ([s.get("generator_option") or "–"] if has_option else []) + [
            str(s["n"]), _pct(s.get("test_acc_mean")), _pct(s.get("test_acc_std")), _interval_text(s, "test_acc"),
            _wilson_text(s, "test_acc"), "–" if delta is None or s["augmentation"] == "none" else f"{100 * delta:+.2f}"]
        if has_eval:
            cells += [_pct(s.get("eval_acc_mean")), _interval_text(s, "eval_acc")]
        body.append(cells)
    return head, body


NOTE = ("Accuracy on speakers never seen in training, mean over seeds. 95% CI, seeds (t): how far the mean "
        f"moves with the training seed (scipy t quantile; '{TOO_SMALL}' below 2 seeds; * = clipped to 0–100). "
        "95% CI, test clips (Wilson): how far it moves with the finite test set (pooled test clips).")


def markdown_table(summary: list[dict], order=None) -> str:
    """Markdown table, accuracies in percent (see the module docstring for the two intervals)."""
    head, body = _rows(summary, order)
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    lines += ["| " + " | ".join(cells) + " |" for cells in body]
    return "\n".join(lines) + "\n\n" + NOTE + "\n"


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

    order = list(order or [])
    names = list(dict.fromkeys(_line_name(s) for s in sorted(
        summary, key=lambda s: (order.index(s["augmentation"]) if s["augmentation"] in order else len(order),
                                s.get("generator_option") or ""))))
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
