"""KeywordDataset: labelled keyword clips with speaker-disjoint splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from ganaug.audio import OFFSETS, load_audio
from ganaug.data.layouts import DIGIT_WORDS, Clip, scan
from ganaug.data.splits import SPLITS, assign_splits, check_fractions, read_list_files, subset_speakers

__all__ = ["KeywordDataset"]


def _label_order(names) -> list[str]:
    """Keywords alphabetically, then Speech Commands' special ``_unknown_``/``_silence_`` labels;
    digit words only (FSDD) in digit order, ``zero`` .. ``nine``, so index i is digit i."""
    names = set(names)
    if names and names <= set(DIGIT_WORDS):
        return [word for word in DIGIT_WORDS if word in names]
    return sorted(names, key=lambda n: (n.startswith("_"), n))


class KeywordDataset(Dataset):
    """Map-style dataset of keyword clips.

    Args:
        root: a Speech Commands-layout folder (``<label>/<speaker>_nohash_<n>.wav|flac``) or an
            FSDD-layout folder (``<digit>_<speaker>_<index>.wav``, labels ``zero`` .. ``nine``).
        labels: label names to keep, in the order that defines label indices; ``None`` keeps all
            (keywords sorted, then ``_unknown_``, ``_silence_``; FSDD's digits in digit order).
        sample_rate: rate of the returned audio (files are resampled).
        num_samples: length of the returned audio (center crop / zero pad); ``None`` keeps lengths.
        split: ``None`` (everything), ``"train"``, ``"valid"`` or ``"test"``. Splits are
            speaker-disjoint: the dataset's own ``validation_list.txt``/``testing_list.txt`` when
            present, otherwise a hash of the speaker id (see :mod:`ganaug.data.splits`).
        split_fractions: (train, valid, test) fractions for the hash split.
        speaker_fraction: keep a seeded subset of this fraction of the training speakers
            (only with ``split="train"``): the low-data regimes of the ablations.
        seed: seed of the speaker subset.
        offset: where to crop clips longer than ``num_samples`` ("center", "start", "random").

    Items are dicts ``{wav: float32 (num_samples,), label: int, label_name: str, speaker: str,
    path: str}``; ``speaker`` is ``""`` for clips without one (``_silence_``).
    """

    def __init__(
        self,
        root: str | Path,
        labels: Sequence[str] | None = None,
        sample_rate: int = 16000,
        num_samples: int | None = 16384,
        split: str | None = None,
        split_fractions=(0.8, 0.1, 0.1),
        speaker_fraction: float = 1.0,
        seed: int = 0,
        offset: str = "center",
    ):
        self.root = Path(root)
        self.layout, clips = scan(self.root)
        list_splits = read_list_files(self.root) if self.layout == "speech_commands" else None
        self._init(clips, labels, sample_rate, num_samples, split, split_fractions,
                   speaker_fraction, seed, offset, list_splits)

    # -- construction shared with the HF and manifest readers ------------------------------
    def _init(self, clips, labels, sample_rate, num_samples, split, split_fractions,
              speaker_fraction, seed, offset, list_splits=None, reader: Callable | None = None):
        if split not in (None, *SPLITS):
            raise ValueError(f"split={split!r}: choose None, 'train', 'valid' or 'test'")
        if offset not in OFFSETS:
            raise ValueError(f"offset={offset!r}: choose one of {OFFSETS}")
        if speaker_fraction != 1.0 and split != "train":
            raise ValueError(f"speaker_fraction={speaker_fraction} only applies to split='train' (got split={split!r})")
        self.sample_rate = int(sample_rate)
        self.num_samples = None if num_samples is None else int(num_samples)
        self.split = split
        self.split_fractions = check_fractions(split_fractions)
        self.speaker_fraction = float(speaker_fraction)
        self.seed = int(seed)
        self.offset = offset
        self._reader = reader

        found = _label_order(c.label_name for c in clips)
        if not found:
            raise ValueError(f"{getattr(self, 'root', 'dataset')}: no audio clips found")
        if labels is None:
            self.label_names = found
        else:
            labels = [labels] if isinstance(labels, str) else list(labels)
            if not labels:
                raise ValueError(f"labels={labels}: give at least one label name (available: {found}), "
                                 f"or labels=None for all of them")
            missing = [name for name in labels if name not in found]
            if missing:
                raise ValueError(f"labels {missing} not in the data; available labels: {found}")
            if len(set(labels)) != len(labels):
                raise ValueError(f"labels={labels}: each label once")
            self.label_names = labels
        if split is not None:
            # Splits are decided on every clip before labels are filtered, so a speaker lands in
            # the same split whichever labels a run asks for; speakerless clips are dealt apart.
            if list_splits is not None:
                which = lambda c: list_splits.get(c.relpath, "train")  # noqa: E731
            else:
                table = assign_splits({c.split_key for c in clips if c.speaker}, self.split_fractions)
                table.update(assign_splits({c.split_key for c in clips if not c.speaker}, self.split_fractions))
                which = lambda c: table[c.split_key]  # noqa: E731
            clips = [c for c in clips if which(c) == split]
            if speaker_fraction != 1.0:  # speakers and speakerless clips are thinned apart
                chosen = subset_speakers({c.split_key for c in clips if c.speaker}, speaker_fraction, seed)
                chosen |= subset_speakers({c.split_key for c in clips if not c.speaker}, speaker_fraction, seed)
                clips = [c for c in clips if c.split_key in chosen]
        keep = set(self.label_names)
        clips = [c for c in clips if c.label_name in keep]
        self.clips: list[Clip] = clips
        self.label_to_index = {name: i for i, name in enumerate(self.label_names)}

    # -- metadata, no decoding -------------------------------------------------------------
    @property
    def speakers(self) -> list[str]:
        """Sorted speaker ids present (clips without a speaker are not counted)."""
        return sorted({c.speaker for c in self.clips if c.speaker})

    @property
    def labels(self) -> list[int]:
        """Label index of every item, in item order."""
        return [self.label_to_index[c.label_name] for c in self.clips]

    def label_counts(self) -> dict[str, int]:
        counts = Counter(c.label_name for c in self.clips)
        return {name: counts.get(name, 0) for name in self.label_names}

    def fingerprint(self) -> str:
        """Stable id of the selected files and audio settings (for caches and checkpoints)."""
        import hashlib

        h = hashlib.sha1()
        h.update(f"{self.sample_rate}|{self.num_samples}|{self.offset}|{self.label_names}".encode())
        for c in self.clips:
            h.update(f"{c.relpath}|{c.label_name}|{c.row}\n".encode())
        return h.hexdigest()[:16]

    def __len__(self) -> int:
        return len(self.clips)

    def load(self, index: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """The audio of item ``index`` only."""
        clip = self.clips[index]
        if self._reader is not None:
            return self._reader(clip, generator)
        return load_audio(clip.path, self.sample_rate, self.num_samples, self.offset, generator)

    def __getitem__(self, index: int) -> dict:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} out of range for {len(self)} items")
        clip = self.clips[index]
        return {
            "wav": self.load(index),
            "label": self.label_to_index[clip.label_name],
            "label_name": clip.label_name,
            "speaker": clip.speaker,
            "path": clip.path,
        }

    def __repr__(self) -> str:
        return (f"KeywordDataset({len(self)} clips, {len(self.label_names)} labels, "
                f"{len(self.speakers)} speakers, split={self.split!r}, {self.sample_rate} Hz)")
