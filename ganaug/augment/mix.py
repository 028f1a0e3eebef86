"""GanMixDataset: real and synthetic items in one map-style Dataset, worker-safe."""

from __future__ import annotations

import bisect
import warnings

import torch
from torch.utils.data import Dataset

from ganaug.augment.bank import make_source
from ganaug.augment.checks import check_ratio
from ganaug.augment.source import MAX_ATTEMPTS, fit_clips, mix_seed

__all__ = ["GanMixDataset"]


class GanMixDataset(Dataset):
    """Real items followed by synthetic ones, for a shuffling DataLoader.

    Args:
        real: a :class:`~ganaug.KeywordDataset` (or any dataset with ``label_names``,
            ``label_counts()``, ``sample_rate`` and ``num_samples`` whose items are its dicts).
        ckpt_or_bank: a checkpoint directory, a per-keyword run folder, ``{label: dir}``, a
            :class:`SyntheticBank` or a bank folder.
        ratio: synthetic items per real item, per label (``0.5``: a label with 100 real clips
            gets 50 synthetic ones, so a third of the items are synthetic).
        seed: synthetic item ``i`` is a pure function of ``(seed, epoch, i)``.
        per_label: quotas instead of ``ratio``: ``{label: n}`` or one int for every label.
        unknown_labels: ``"error"`` when a real label is unknown to the generator, or
            ``"keep"`` (that label gets no synthetic items).
        min_confidence, filter_classifier, max_attempts: label-consistency filtering (see
            :func:`ganaug.augment.source.with_filter`); a synthetic item none of whose tries is
            accepted is replaced by a real item of its label (``synthetic=False``), chosen by its seed.

    Items are ``KeywordDataset`` dicts ``{wav, label, label_name, speaker, path}`` plus
    ``synthetic: bool``; synthetic items have ``speaker=""`` and ``path="synthetic:<label>:<i>"``.
    Safe with ``num_workers > 0``: no weights are loaded until a worker first needs a clip, and
    every item has its own random stream, so no two workers draw the same one. ``set_epoch(e)``
    gives fresh synthetic clips per epoch, still deterministic; the epoch lives in shared memory,
    so it reaches DataLoader workers that outlive an epoch (``persistent_workers=True``) as long as
    it is set before the epoch's iterator is made (``for e in ...: ds.set_epoch(e); for b in loader``).

    Synthetic clips are resampled to the real set's rate and fit to its ``num_samples`` by
    :func:`ganaug.augment.source.fit_clips` (crop around the centre, pad at the end), the same
    policy as :class:`GanAugment`.
    """

    def __init__(self, real, ckpt_or_bank, ratio: float = 0.5, seed: int = 0, per_label=None,
                 unknown_labels: str = "error", min_confidence=None, filter_classifier=None,
                 max_attempts: int = MAX_ATTEMPTS):
        ratio = check_ratio(ratio)
        if unknown_labels not in ("error", "keep"):
            raise ValueError(f"unknown_labels={unknown_labels!r}: choose 'error' or 'keep'")
        for attr in ("label_names", "label_counts", "sample_rate"):
            if not hasattr(real, attr):
                raise TypeError(f"real: a {type(real).__name__} has no {attr!r}; pass a ganaug KeywordDataset")
        self.real, self.ratio, self.seed = real, ratio, int(seed)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.source = make_source(ckpt_or_bank, min_confidence=min_confidence, filter_classifier=filter_classifier,
                                  max_attempts=max_attempts)
        counts = real.label_counts()
        known = set(self.source.label_names)
        if per_label is None:
            quotas = {name: int(round(self.ratio * counts[name])) for name in real.label_names}
            starved = sorted(n for n, q in quotas.items() if q == 0 and counts[n] and self.ratio > 0 and n in known)
            if starved:
                warnings.warn(f"ratio={ratio:g} gives labels {starved} no synthetic item (round(ratio * real count) "
                              f"= 0); raise ratio or give per_label={{label: n}}", UserWarning, stacklevel=2)
        elif isinstance(per_label, dict):
            extra = sorted(set(per_label) - set(real.label_names))
            if extra:
                raise ValueError(f"per_label has labels {extra} that the real dataset lacks ({real.label_names})")
            quotas = {name: _count(per_label.get(name, 0), f"per_label[{name!r}]") for name in real.label_names}
        elif isinstance(per_label, int) and not isinstance(per_label, bool):
            quotas = {name: _count(per_label, "per_label") for name in real.label_names}
        else:
            raise ValueError(f"per_label={per_label!r}: give {{label: count}}, one int, or None to use ratio")
        unknown = sorted(name for name, n in quotas.items() if n and name not in known)
        if unknown and unknown_labels == "error":
            raise ValueError(f"labels {unknown} of the real dataset are not known to the generator (it knows "
                             f"{sorted(known)}); pass unknown_labels='keep' to give them no synthetic items, "
                             f"or choose the real labels with KeywordDataset(labels=...)")
        self.quotas = {name: (n if name in known else 0) for name, n in quotas.items()}
        # synthetic item i has label _names[k] for _ends[k-1] <= i < _ends[k]: no per-item list
        self._names = [name for name in real.label_names if self.quotas[name]]
        self._ends = []
        for name in self._names:
            self._ends.append((self._ends[-1] if self._ends else 0) + self.quotas[name])
        self._real_rows = None  # label -> indices of real items, for rejected synthetic items

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @property
    def label_names(self) -> list[str]:
        return list(self.real.label_names)

    @property
    def num_synthetic(self) -> int:
        return self._ends[-1] if self._ends else 0

    def set_epoch(self, epoch: int) -> None:
        """Draw other synthetic clips from now on, in this process and its DataLoader workers."""
        if isinstance(epoch, bool) or int(epoch) != epoch:
            raise ValueError(f"epoch={epoch!r}: give an integer epoch")
        self._epoch.fill_(int(epoch))

    def __getstate__(self):
        state = dict(self.__dict__)
        from multiprocessing.context import get_spawning_popen

        if get_spawning_popen() is None:  # a plain pickle (copy, cache key): the epoch as a value
            state["_epoch"] = int(self._epoch)
        return state

    def __setstate__(self, state):
        if not isinstance(state["_epoch"], torch.Tensor):
            state["_epoch"] = torch.tensor(state["_epoch"], dtype=torch.int64).share_memory_()
        self.__dict__.update(state)

    def __len__(self) -> int:
        return len(self.real) + self.num_synthetic

    def synthetic_item(self, i: int) -> dict:
        """Synthetic item ``i`` (0-based among synthetic items)."""
        name = self._names[bisect.bisect_right(self._ends, i)]
        seed = mix_seed(self.seed, self.epoch, i)
        clips, accepted = self.source.sample([name], [seed])
        if not accepted[0]:
            return self._real_of(name, seed)
        num_samples = getattr(self.real, "num_samples", None)
        clip, _ = fit_clips(clips[:1].cpu(), self.source.sample_rate, self.real.sample_rate,
                            num_samples or clips.shape[-1])
        return {"wav": clip[0].contiguous(), "label": self.real.label_names.index(name), "label_name": name,
                "speaker": "", "path": f"synthetic:{name}:{i}", "synthetic": True}

    def _real_of(self, name: str, seed: int) -> dict:
        """A real item of ``name`` (the stand-in of a synthetic item the filter rejected every time)."""
        if self._real_rows is None:
            rows: dict[str, list[int]] = {}
            for index, label in enumerate(self.real.labels):
                rows.setdefault(self.real.label_names[label], []).append(index)
            self._real_rows = rows
        rows = self._real_rows[name]
        return {**self.real[rows[seed % len(rows)]], "synthetic": False}

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index = index % len(self)
        if index < len(self.real):
            return {**self.real[index], "synthetic": False}
        return self.synthetic_item(index - len(self.real))

    def __repr__(self) -> str:
        return (f"GanMixDataset({len(self.real)} real + {self.num_synthetic} synthetic, "
                f"source={type(self.source).__name__}, seed={self.seed})")


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r}: give a whole number of synthetic items >= 0")
    return value
