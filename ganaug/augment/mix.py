"""GanMixDataset: real and synthetic items in one map-style Dataset, worker-safe."""

from __future__ import annotations

import bisect
import warnings

import torch
from torch.utils.data import Dataset

from ganaug.augment.bank import SyntheticBank, make_source
from ganaug.augment.checks import check_known, check_policy, check_ratio
from ganaug.augment.rows import DEFAULT_RATIO, InjectionPolicy
from ganaug.augment.source import MAX_ATTEMPTS, FilteredSource, fit_clips, mix_seed
from ganaug.data.adapt import LabelledView

__all__ = ["GanMixDataset"]


class GanMixDataset(Dataset):
    """Real items followed by synthetic ones, for a shuffling DataLoader.

    Args:
        real: any map-style dataset: a :class:`~ganaug.KeywordDataset`, a ``Subset`` of one, or
            another one described by ``labels``/``label_names``/``sample_rate``/``wav_key`` (the
            adapter contract of :class:`ganaug.data.adapt.LabelledView`).
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
        labels, label_names, sample_rate, num_samples, wav_key: how to read ``real`` when it is
            not a KeywordDataset (labels of every item; its rate; synthetic length; where the audio is).

    Synthetic items are shaped like the real items of their label (audio dims, length and dtype;
    the same keys or tuple fields; see :mod:`ganaug.data.adapt`), so the default collate stacks
    them: KeywordDataset dicts ``{wav, label, label_name, speaker, path}`` plus ``synthetic:
    bool`` with ``speaker=""`` and ``path="synthetic:<label>:<i>"``; tuples keep their fields
    (items from ``len(mixed.real)`` on are the synthetic ones).
    Safe with ``num_workers > 0``: no weights are loaded until a worker first needs a clip, and
    every item has its own random stream, so no two workers draw the same one. ``set_epoch(e)``
    gives fresh synthetic clips per epoch, still deterministic; the epoch lives in shared memory,
    so it reaches DataLoader workers that outlive an epoch (``persistent_workers=True``) as long as
    it is set before the epoch's iterator is made (``for e in ...: ds.set_epoch(e); for b in loader``).
    A bank holding fewer clips of a label than one epoch draws is a warning (its clips repeat).

    Synthetic clips are resampled to the real set's rate and fit to the real length by
    :func:`ganaug.augment.source.fit_clips` (crop around the centre, pad at the end), the same
    policy as :class:`GanAugment`.
    """

    def __init__(self, real, ckpt_or_bank, ratio: float = DEFAULT_RATIO, seed: int = 0, per_label=None,
                 unknown_labels: str = "error", min_confidence=None, filter_classifier=None,
                 max_attempts: int = MAX_ATTEMPTS, *, labels=None, label_names=None, sample_rate=None,
                 num_samples=None, wav_key=None):
        ratio = InjectionPolicy("append", ratio=check_ratio(ratio)).ratio     # items are added, never replaced
        check_policy(unknown_labels)
        self.view = LabelledView(real, labels, label_names, sample_rate, num_samples, wav_key)
        self.real, self.ratio, self.seed = real, ratio, int(seed)
        self._epoch = torch.zeros((), dtype=torch.int64).share_memory_()
        self.source = make_source(ckpt_or_bank, min_confidence=min_confidence, filter_classifier=filter_classifier,
                                  max_attempts=max_attempts)
        quotas = self._quotas(per_label)
        check_known([name for name, n in quotas.items() if n], self.source.label_names, unknown_labels)
        known = set(self.source.label_names)
        self.quotas = {name: (n if name in known else 0) for name, n in quotas.items()}
        _warn_small_bank(self.source, self.quotas)
        # synthetic item i has label _names[k] for _ends[k-1] <= i < _ends[k]: no per-item list
        self._names = [name for name in self.view.label_names if self.quotas[name]]
        self._ends = []
        for name in self._names:
            self._ends.append((self._ends[-1] if self._ends else 0) + self.quotas[name])
        self._real_rows = None  # label -> indices of real items, for rejected synthetic items

    def _quotas(self, per_label) -> dict[str, int]:
        counts, names = self.view.label_counts(), self.view.label_names
        if per_label is None:
            quotas = {name: int(round(self.ratio * counts[name])) for name in names}
            known = set(self.source.label_names)
            starved = sorted(n for n, q in quotas.items() if q == 0 and counts[n] and self.ratio > 0 and n in known)
            if starved:
                warnings.warn(f"ratio={self.ratio:g} gives labels {starved} no synthetic item (round(ratio * real "
                              f"count) = 0); raise ratio or give per_label={{label: n}}", UserWarning, stacklevel=3)
            return quotas
        if isinstance(per_label, dict):
            extra = sorted(set(per_label) - set(names))
            if extra:
                raise ValueError(f"per_label has labels {extra} that the real dataset lacks ({names})")
            return {name: _count(per_label.get(name, 0), f"per_label[{name!r}]") for name in names}
        if isinstance(per_label, int) and not isinstance(per_label, bool):
            return {name: _count(per_label, "per_label") for name in names}
        raise ValueError(f"per_label={per_label!r}: give {{label: count}}, one int, or None to use ratio")

    @property
    def epoch(self) -> int:
        return int(self._epoch)

    @property
    def label_names(self) -> list[str]:
        return list(self.view.label_names)

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
        return len(self.view) + self.num_synthetic

    def synthetic_item(self, i: int):
        """Synthetic item ``i`` (0-based among synthetic items)."""
        name = self._names[bisect.bisect_right(self._ends, i)]
        seed = mix_seed(self.seed, self.epoch, i)
        clips, accepted = self.source.sample([name], [seed])
        if not accepted[0]:
            return self._real_of(name, seed)
        rate = self.view.sample_rate
        length = self.view.length(name) or int(round(clips.shape[-1] * rate / self.source.sample_rate))
        clip, _ = fit_clips(clips[:1].float().cpu(), self.source.sample_rate, rate, length)
        return self.view.synthetic(name, clip[0], f"synthetic:{name}:{i}")

    def _real_of(self, name: str, seed: int):
        """A real item of ``name`` (the stand-in of a synthetic item the filter rejected every time)."""
        if self._real_rows is None:
            self._real_rows = self.view.rows_of()
        rows = self._real_rows[name]
        return self.view.item(rows[seed % len(rows)])

    def __getitem__(self, index: int):
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        index = index % len(self)
        if index < len(self.view):
            return self.view.item(index)
        return self.synthetic_item(index - len(self.view))

    def __repr__(self) -> str:
        return (f"GanMixDataset({len(self.view)} real + {self.num_synthetic} synthetic, "
                f"source={type(self.source).__name__}, seed={self.seed})")


def _count(value, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name}={value!r}: give a whole number of synthetic items >= 0")
    return value


def _warn_small_bank(source, quotas: dict[str, int]) -> None:
    """One warning when a bank holds fewer clips of a label than one epoch draws of it."""
    bank = source.source if isinstance(source, FilteredSource) else source
    if not isinstance(bank, SyntheticBank):
        return
    counts = bank.counts()
    short = {name: (n, counts.get(name, 0)) for name, n in quotas.items() if n > counts.get(name, 0) > 0}
    if short:
        worst = max(n / have for n, have in short.values())
        listed = ", ".join(f"{name} {have} for {n}" for name, (n, have) in sorted(short.items()))
        warnings.warn(f"the bank {bank.path} holds fewer clips than one epoch draws ({listed}): each clip is drawn up "
                      f"to {worst:.1f} times per epoch. Generate a bigger bank (ganaug generate --per-label "
                      f"{max(n for n, _ in short.values())}) or lower ratio", UserWarning, stacklevel=3)
