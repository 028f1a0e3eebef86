"""What the metrics of ``ganaug evaluate`` say, in plain words: one verdict per metric.

Each verdict compares the generated clips with the real held-out clips scored by the same
classifier (the ``real`` column of ``metrics.json``), so it reads the same whatever the
classifier's scale: e.g. ``|D|self`` far below the real clips' value means mode collapse, a label
accuracy near chance means the generator does not say its keyword.
"""

from __future__ import annotations

__all__ = ["verdicts", "label_verdicts"]


def _num(values: dict, key: str):
    value = values.get(key)
    return float(value) if isinstance(value, (int, float)) else None


def verdicts(result: dict) -> dict[str, str]:
    """``{metric key: sentence}`` for the metrics present in a ``metrics.json`` dict."""
    gen, real = result.get("generated", {}), result.get("real", {})
    labels = result.get("labels") or []
    out = {}

    g, r = _num(gen, "is"), _num(real, "is")
    if g is not None and r is not None and r > 1:
        share = (g - 1) / (r - 1)   # IS is 1 when the classifier cannot tell the clips apart
        out["is"] = (f"about as clearly one keyword each as real clips ({g:.2f} vs {r:.2f})" if share >= 0.8 else
                     f"less clearly one keyword each than real clips ({g:.2f} vs {r:.2f})" if share >= 0.4 else
                     f"far below real clips ({g:.2f} vs {r:.2f}; 1 = the classifier cannot tell the clips apart): "
                     f"most clips do not sound like any one keyword")
    g, r = _num(gen, "fid"), _num(real, "fid")
    if g is not None and r is not None:
        ratio = g / max(r, 1e-9)
        out["fid"] = (f"close to the real clips' statistics ({g:.2f} vs {r:.2f} for held-out real clips)" if ratio <= 2 else
                      f"{ratio:.0f}x the real clips' distance ({g:.2f} vs {r:.2f}): generated clips differ clearly "
                      f"from real speech")
    g, r = _num(gen, "d_train"), _num(real, "d_train")
    if g is not None and r is not None and r > 0:
        out["d_train"] = (f"clips sit much closer to training clips than real unseen clips do ({g:.1f} vs {r:.1f}): "
                          f"the generator may be copying its training data" if g < 0.5 * r else
                          f"no sign of copying: as far from the training clips as unseen real clips ({g:.1f} vs {r:.1f})")
    g, r = _num(gen, "d_self"), _num(real, "d_self")
    if g is not None and r is not None and r > 0:
        out["d_self"] = (f"mode collapse: generated clips are far closer to each other than real clips are "
                         f"({g:.1f} vs {r:.1f}); the generator makes a few sounds over and over" if g < 0.25 * r else
                         f"less varied than real clips ({g:.1f} vs {r:.1f}): partial mode collapse" if g < 0.7 * r else
                         f"as varied as real clips ({g:.1f} vs {r:.1f})")
    g, r = _num(gen, "label_acc"), _num(real, "label_acc")
    if g is not None:
        chance = 1 / len(labels) if labels else None
        real_text = f", real clips {r:.2f}" if r is not None else ""
        if chance is not None and near_chance(g, chance):
            out["label_acc"] = (f"near chance ({g:.2f}, chance {chance:.2f}{real_text}): the generator does not say "
                                f"its keyword; its clips would be mislabelled training data")
        elif r is not None and g < 0.6 * r:
            out["label_acc"] = (f"the intended keyword is heard in {100 * g:.0f}% of clips ({real_text[2:]}): "
                                f"many clips would be mislabelled; filter them (--min_confidence) before use")
        else:
            out["label_acc"] = f"the intended keyword is heard in {100 * g:.0f}% of clips{f' ({real_text[2:]})' if r is not None else ''}"
    g, r = _num(gen, "consistency"), _num(real, "consistency")
    if g is not None and r is not None:
        out["consistency"] = (f"spectrograms as consistent as real speech ({g:.2f} vs {r:.2f})" if g >= r - 0.1 else
                              f"less consistent than real speech ({g:.2f} vs {r:.2f}): noisy or smeared phase")
    return out


def near_chance(accuracy: float, chance: float) -> bool:
    """Within a tenth of the way from chance to perfect (10 labels: <= 0.19; 2 labels: <= 0.55)."""
    return accuracy <= chance + 0.1 * (1.0 - chance)


def label_verdicts(result: dict) -> list[str]:
    """Sentences about single labels: those never heard as themselves, and those near chance."""
    per_label = result.get("generated", {}).get("label_acc_per_label") or {}
    labels = result.get("labels") or list(per_label)
    chance = 1 / len(labels) if labels else 0.0
    scored = [(k, per_label[k]) for k in [*labels, *(k for k in per_label if k not in labels)]
              if isinstance(per_label.get(k), (int, float))]
    never = [k for k, v in scored if v == 0]
    weak = [k for k, v in scored if 0 < v and near_chance(v, chance)]
    out = []
    if never:
        out.append(f"never heard as itself (label accuracy 0): {', '.join(never)}")
    if weak:
        out.append(f"near chance ({chance:.2f}): {', '.join(weak)}")
    return out
