"""Balanced selection: per label, the generated clips a keyword classifier is most sure of.

A threshold on the filter's posterior (:class:`~ganaug.augment.source.FilteredSource`) keeps a different
share of every label, and none at all of a label the generator says badly: with the shared GPU generator,
0.8 keeps 16% of the clips overall and none of ``off`` and ``right``. :class:`SelectedSource` instead
generates a pool of ``pool`` clips per label once (clip ``j`` of label ``y`` is :func:`synthesize`'s clip
``j``, so pools are reproducible), scores them with the filter, and keeps the ``top_k`` most confident of
each label: every label gets clips, the best its generator makes. Rows then draw from the kept clips
(clip ``seed % top_k``), so it is a :class:`~ganaug.augment.source.ClipSource` like any other.
"""

from __future__ import annotations

import hashlib

import torch

from ganaug.augment.filter import LabelFilter
from ganaug.augment.source import synthesize

__all__ = ["SelectedSource"]


class SelectedSource:
    """The ``top_k`` clips of each label, out of ``pool`` generated ones, ranked by ``label_filter``'s
    posterior of the label (see the module docstring).

    Args:
        source: an unfiltered :class:`~ganaug.augment.source.ClipSource` (a generator or a bank).
        label_filter: the :class:`~ganaug.augment.filter.LabelFilter` whose posteriors rank the clips.
        pool: clips generated per label; ``top_k``: clips kept per label (at most ``pool``).
        seed: seed of the pool; ``labels``: the labels to select (default: all of the source's).
    """

    def __init__(self, source, label_filter: LabelFilter, pool: int = 200, top_k: int = 50, seed: int = 0,
                 labels=None, device=None):
        for name, value in (("pool", pool), ("top_k", top_k)):
            if isinstance(value, bool) or int(value) != value or value < 1:
                raise ValueError(f"{name}={value!r}: a positive number of clips per label")
        if top_k > pool:
            raise ValueError(f"top_k={top_k} > pool={pool}: keep at most the clips generated per label")
        self.source, self.filter = source, label_filter
        self.pool, self.top_k, self.seed = int(pool), int(top_k), int(seed)
        self.label_names = list(labels if labels is not None else source.label_names)
        source.check_names(self.label_names)
        label_filter.check_labels(self.label_names)
        self.sample_rate, self.num_samples = source.sample_rate, source.num_samples
        self.clips: dict[str, torch.Tensor] = {}
        self.confidence: dict[str, torch.Tensor] = {}          # of the kept clips, best first
        for name in self.label_names:
            clips, _, _ = synthesize(source, [name] * self.pool, self.seed, device=device, keep_rejected=True)
            scores = label_filter.confidence(clips, [name] * self.pool, self.sample_rate)
            best = torch.argsort(scores, descending=True, stable=True)[: self.top_k]
            self.clips[name], self.confidence[name] = clips[best], scores[best]

    def fingerprint(self) -> str:
        key = f"select|{self.source.fingerprint()}|{self.filter.fingerprint()}|{self.pool}|{self.top_k}|{self.seed}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def check_names(self, names) -> None:
        missing = sorted({n for n in names if n not in self.clips})
        if missing:
            raise ValueError(f"labels {missing} were not selected (selected: {self.label_names})")

    def load(self, device=None) -> "SelectedSource":
        return self

    def filter_config(self) -> dict:
        return self.source.filter_config()

    def generate(self, names, seeds, device=None) -> torch.Tensor:
        self.check_names(names)
        rows = [self.clips[n][int(s) % self.top_k] for n, s in zip(names, seeds)]
        out = torch.stack(rows) if rows else torch.empty(0, self.num_samples or 0)
        return out.to(device) if device is not None else out

    def sample(self, names, seeds, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        return self.generate(names, seeds, device), torch.ones(len(list(names)), dtype=torch.bool)

    def summary(self) -> dict:
        """Per label: the lowest and the median posterior of the kept clips (what ``top_k`` cost in confidence)."""
        return {n: {"kept": int(len(c)), "min_confidence": float(c.min()), "median_confidence": float(c.median())}
                for n, c in self.confidence.items()}

    def __repr__(self) -> str:
        return f"SelectedSource(top {self.top_k} of {self.pool} per label by {self.filter})"
