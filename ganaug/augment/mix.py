"""GanMixDataset: real and synthetic items in one map-style Dataset, worker-safe."""

from __future__ import annotations

from numbers import Real

import torch
from torch.utils.data import Dataset

from ganaug.audio import fit_length, resample
from ganaug.augment.source import make_source, mix_seed

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

    Items are ``KeywordDataset`` dicts ``{wav, label, label_name, speaker, path}`` plus
    ``synthetic: bool``; synthetic items have ``speaker=""`` and ``path="synthetic:<label>:<i>"``.
    Safe with ``num_workers > 0``: no weights are loaded until a worker first needs a clip, and
    every item has its own random stream, so no two workers draw the same one. ``set_epoch(e)``
    gives fresh synthetic clips per epoch, still deterministic.
    """

    def __init__(self, real, ckpt_or_bank, ratio: float = 0.5, seed: int = 0, per_label=None,
                 unknown_labels: str = "error"):
        if isinstance(ratio, bool) or not isinstance(ratio, Real) or ratio < 0:
            raise ValueError(f"ratio={ratio!r}: give the number of synthetic items per real item, >= 0 (e.g. 0.5)")
        if unknown_labels not in ("error", "keep"):
            raise ValueError(f"unknown_labels={unknown_labels!r}: choose 'error' or 'keep'")
        for attr in ("label_names", "label_counts", "sample_rate"):
            if not hasattr(real, attr):
                raise TypeError(f"real: a {type(real).__name__} has no {attr!r}; pass a ganaug KeywordDataset")
        self.real, self.ratio, self.seed, self.epoch = real, float(ratio), int(seed), 0
        self.source = make_source(ckpt_or_bank)
        counts = real.label_counts()
        known = set(self.source.label_names)
        if per_label is None:
            quotas = {name: int(round(self.ratio * counts[name])) for name in real.label_names}
        elif isinstance(per_label, dict):
            extra = sorted(set(per_label) - set(real.label_names))
            if extra:
                raise ValueError(f"per_label has labels {extra} that the real dataset lacks ({real.label_names})")
            quotas = {name: int(per_label.get(name, 0)) for name in real.label_names}
        elif isinstance(per_label, int) and not isinstance(per_label, bool):
            quotas = {name: per_label for name in real.label_names}
        else:
            raise ValueError(f"per_label={per_label!r}: give {{label: count}}, one int, or None to use ratio")
        if any(n < 0 for n in quotas.values()):
            raise ValueError(f"per_label={per_label!r}: counts must be >= 0")
        unknown = sorted(name for name, n in quotas.items() if n and name not in known)
        if unknown and unknown_labels == "error":
            raise ValueError(f"labels {unknown} of the real dataset are not known to the generator (it knows "
                             f"{sorted(known)}); pass unknown_labels='keep' to give them no synthetic items, "
                             f"or choose the real labels with KeywordDataset(labels=...)")
        self.quotas = {name: (n if name in known else 0) for name, n in quotas.items()}
        self._synthetic_labels = [name for name in real.label_names for _ in range(self.quotas[name])]

    @property
    def label_names(self) -> list[str]:
        return list(self.real.label_names)

    @property
    def num_synthetic(self) -> int:
        return len(self._synthetic_labels)

    def set_epoch(self, epoch: int) -> None:
        """Draw other synthetic clips from now on (call it in every process, e.g. per epoch)."""
        self.epoch = int(epoch)

    def __len__(self) -> int:
        return len(self.real) + self.num_synthetic

    def is_synthetic(self, index: int) -> bool:
        return index >= len(self.real)

    def synthetic_item(self, i: int) -> dict:
        """Synthetic item ``i`` (0-based among synthetic items)."""
        name = self._synthetic_labels[i]
        seed = mix_seed(self.seed, self.epoch, i)
        clip = self.source.generate([name], [seed])[0].cpu()
        clip = resample(clip, self.source.sample_rate, self.real.sample_rate)
        num_samples = getattr(self.real, "num_samples", None)
        if num_samples is not None:
            clip = fit_length(clip, num_samples, "center")
        return {"wav": clip.contiguous(), "label": self.real.label_names.index(name), "label_name": name,
                "speaker": "", "path": f"synthetic:{name}:{i}", "synthetic": True}

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
