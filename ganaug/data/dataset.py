"""KeywordDataset: labelled keyword clips with speaker-disjoint splits."""

from __future__ import annotations

from collections import Counter
from pathlib import Path
from typing import Callable, Sequence

import torch
from torch.utils.data import Dataset

from ganaug.audio import OFFSETS, load_audio
from ganaug.data.layouts import DIGIT_WORDS, SILENCE_LABEL, UNKNOWN_LABEL, Clip, scan
from ganaug.data.splits import SPLITS, assign_splits, check_fractions, read_list_files, subset_speakers

__all__ = ["KeywordDataset"]


def _unknown_and_silence(clips: list[Clip], labels, root: Path | None, sample_rate: int) -> list[Clip]:
    """Speech Commands' two special labels when asked for: ``_unknown_`` = every word not among ``labels``
    (the official archive has one folder per word, no ``_unknown_/``), and ``_silence_`` cut into one-second
    clips from ``_background_noise_/`` when there is no ``_silence_/`` folder (as the dataset's authors did)."""
    import dataclasses

    wanted = set(labels or ())
    if UNKNOWN_LABEL in wanted:
        clips = [c if c.label_name in wanted or c.label_name == SILENCE_LABEL
                 else dataclasses.replace(c, label_name=UNKNOWN_LABEL) for c in clips]
    noise = None if root is None else Path(root) / "_background_noise_"
    if SILENCE_LABEL in wanted and noise is not None and noise.is_dir() and not any(
            c.label_name == SILENCE_LABEL for c in clips):
        from ganaug.data.noise import noise_segments

        for path in noise_segments(noise, sample_rate, segment_seconds=1.0, hop_seconds=1.0):
            relpath = f"{SILENCE_LABEL}/{path.stem}"
            clips.append(Clip(str(path), SILENCE_LABEL, "", relpath, relpath))
    return clips


def _thin_unknown(clips: list[Clip], share: float, seed: int) -> list[Clip]:
    """At most ``share`` x the other clips are ``_unknown_`` (a seeded subset), as the benchmark's
    ``unknown_percentage``: other words would otherwise outnumber the keywords."""
    import random

    unknown = [i for i, c in enumerate(clips) if c.label_name == UNKNOWN_LABEL]
    keep = round(share * (len(clips) - len(unknown)))
    if len(unknown) <= keep:
        return clips
    dropped = set(unknown) - set(random.Random(seed).sample(unknown, keep))
    return [c for i, c in enumerate(clips) if i not in dropped]


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
        unknown_share: with ``_unknown_`` among ``labels``, keep at most this share (of the other clips) of
            ``_unknown_`` clips, a seeded subset (the benchmark's 10%); None keeps them all.

    Asking for ``_unknown_`` gathers every word not among ``labels`` under it; asking for ``_silence_``
    where there is no ``_silence_/`` folder cuts one-second clips from ``_background_noise_/`` (cached).

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
        unknown_share: float | None = None,
    ):
        self.root = Path(root)
        self.layout, clips = scan(self.root)
        list_splits = read_list_files(self.root) if self.layout == "speech_commands" else None
        clips = _unknown_and_silence(clips, labels, self.root, int(sample_rate))
        self._init(clips, labels, sample_rate, num_samples, split, split_fractions,
                   speaker_fraction, seed, offset, list_splits, unknown_share=unknown_share)

    # -- construction shared with the HF and manifest readers ------------------------------
    def _init(self, clips, labels, sample_rate, num_samples, split, split_fractions,
              speaker_fraction, seed, offset, list_splits=None, reader: Callable | None = None,
              unknown_share: float | None = None):
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
            # speakerless clips (_silence_) are dealt by a hash of their file: the list files name none
            table = assign_splits({c.split_key for c in clips if not c.speaker}, self.split_fractions)
            if list_splits is not None:
                which = lambda c: list_splits.get(c.relpath, "train") if c.speaker else table[c.split_key]  # noqa: E731
            else:
                table.update(assign_splits({c.split_key for c in clips if c.speaker}, self.split_fractions))
                which = lambda c: table[c.split_key]  # noqa: E731
            clips = [c for c in clips if which(c) == split]
            if speaker_fraction != 1.0:  # speakers and speakerless clips are thinned apart
                chosen = subset_speakers({c.split_key for c in clips if c.speaker}, speaker_fraction, seed)
                chosen |= subset_speakers({c.split_key for c in clips if not c.speaker}, speaker_fraction, seed)
                clips = [c for c in clips if c.split_key in chosen]
        keep = set(self.label_names)
        clips = [c for c in clips if c.label_name in keep]
        if unknown_share is not None and UNKNOWN_LABEL in keep:
            clips = _thin_unknown(clips, float(unknown_share), seed)
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
