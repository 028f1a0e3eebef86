"""95% intervals for comparing keyword spotters, all from ``scipy.stats``.

- :func:`wilson_interval`: one classifier's accuracy on its N test clips (``binomtest(...).proportion_ci``,
  Wilson score). It says how far that number moves with the finite test set; it is never pooled across
  seeds, whose predictions share the same clips.
- :func:`mean_std_ci` / :func:`t_interval`: the mean over seeds with Student's t (``scipy.stats.t``). Seeds
  vary what the cell's seed sets (initialisation, batch order, speaker subset, generator).
- :func:`paired_t`: the mean of per-seed differences between two arms that share seeds, speakers and test
  clips (``ttest_rel(...).confidence_interval``): what an arm buys, with the seed-to-seed noise both arms share
  removed.
- :func:`paired_bootstrap`: the same difference with the seeds held fixed and the test clips resampled
  (``scipy.stats.bootstrap`` over clips of the per-clip difference in correctness, averaged over seeds).
"""

from __future__ import annotations

import math

import numpy as np

__all__ = ["wilson_interval", "mean_std_ci", "t_interval", "paired_t", "paired_bootstrap", "CONFIDENCE"]

CONFIDENCE = 0.95


def wilson_interval(correct: float, total: int, confidence: float = CONFIDENCE) -> tuple[float, float] | None:
    """Wilson score interval of ``correct / total`` (inside [0, 1]); None if ``total`` is 0."""
    from scipy.stats import binomtest

    if total <= 0:
        return None
    ci = binomtest(int(round(correct)), int(total)).proportion_ci(confidence_level=confidence, method="wilson")
    return float(ci.low), float(ci.high)


def mean_std_ci(values) -> tuple[float, float | None, float | None]:
    """``(mean, sample std (ddof=1), half-width of the 95% t interval of the mean)``; std and half-width are
    None for one value."""
    from scipy.stats import t

    values = np.asarray([float(v) for v in values])
    if values.size == 0:
        raise ValueError("mean_std_ci: no values")
    mean = float(values.mean())
    if values.size == 1:
        return mean, None, None
    std = float(values.std(ddof=1))
    if std == 0.0:
        return mean, 0.0, 0.0
    low, high = t.interval(CONFIDENCE, values.size - 1, loc=mean, scale=std / math.sqrt(values.size))
    return mean, std, float(high - mean)


def t_interval(values) -> tuple[float, float, bool] | None:
    """The 95% t interval of the mean of accuracies in [0, 1], clipped to [0, 1]: ``(low, high, clipped)``;
    None for fewer than 2 values."""
    mean, _, half = mean_std_ci(values)
    if half is None:
        return None
    low, high = mean - half, mean + half
    return max(low, 0.0), min(high, 1.0), low < 0.0 or high > 1.0


def paired_t(a, b) -> tuple[float, float, float] | None:
    """Mean of ``a[i] - b[i]`` (same seeds) and its 95% t interval ``(mean, low, high)``; None below 2 pairs."""
    from scipy.stats import ttest_rel

    a, b = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if a.shape != b.shape or a.size < 2:
        return None
    diff = a - b
    if np.all(diff == diff[0]):                  # scipy's t is undefined for a zero spread: the interval is a point
        return float(diff[0]), float(diff[0]), float(diff[0])
    ci = ttest_rel(a, b).confidence_interval(CONFIDENCE)
    return float(diff.mean()), float(ci.low), float(ci.high)


def paired_bootstrap(correct_a, correct_b, resamples: int = 4000, seed: int = 0) -> tuple[float, float, float] | None:
    """The mean over seeds of the accuracy difference of two arms and its 95% percentile interval when the
    test clips are resampled. ``correct_a``/``correct_b``: ``(seeds, clips)`` 0/1 arrays of the same clips
    in the same order, seeds paired by row. None when they do not match."""
    from scipy.stats import bootstrap

    a, b = np.asarray(correct_a, dtype=float), np.asarray(correct_b, dtype=float)
    if a.shape != b.shape or a.ndim != 2 or a.shape[1] < 2:
        return None
    per_clip = (a - b).mean(axis=0)              # each clip's difference, averaged over the seeds
    if np.all(per_clip == per_clip[0]):
        return float(per_clip[0]), float(per_clip[0]), float(per_clip[0])
    ci = bootstrap((per_clip,), np.mean, confidence_level=CONFIDENCE, n_resamples=resamples, method="percentile",
                   random_state=np.random.default_rng(seed)).confidence_interval
    return float(per_clip.mean()), float(ci.low), float(ci.high)
