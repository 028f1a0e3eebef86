"""What a KWS run trains and tests on: preloaded speaker-disjoint splits, noise CSV, synthetic sets.

Everything here is shared by the SpeechBrain and the HF ``datasets`` trainers, so the two see
the same clips in the same order.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ganaug.config import HparamsError, split_labels
from ganaug.data.layouts import SILENCE_LABEL, UNKNOWN_LABEL

SPECIAL = (UNKNOWN_LABEL, SILENCE_LABEL)   # the v2-12 task's classes that are not keywords: they stay real

__all__ = ["KWSData", "load_kws_data", "task_labels", "write_noise_csv", "tstr_training_set", "speakers_sha1",
           "SPECIAL"]


@dataclass
class KWSData:
    label_names: list[str]
    train: tuple[torch.Tensor, torch.Tensor]          # (wavs (N, T) float32, labels (N,) long)
    valid: tuple[torch.Tensor, torch.Tensor]
    test: tuple[torch.Tensor, torch.Tensor]
    eval: tuple[torch.Tensor, torch.Tensor] | None = None
    info: dict = field(default_factory=dict)          # speakers and fingerprints, for results.json


def _preload(dataset, cache_dir):
    from ganaug.data.cache import preload

    if len(dataset) == 0:
        raise HparamsError(f"{dataset.root}: the {dataset.split or 'whole'} split holds no clips of labels "
                           f"{dataset.label_names}; check --data_folder, --labels and --speaker_fraction")
    wavs, labels = preload(dataset, cache_dir=cache_dir, progress=False)
    return wavs, labels


def speakers_sha1(speakers) -> str:
    """A short id of a set of speaker ids: what a classifier was trained on, for checks that need the same
    speakers (soft labels) whatever the labels, rate or clip length."""
    import hashlib

    return hashlib.sha1("\n".join(sorted(map(str, speakers))).encode()).hexdigest()[:16]


def task_labels(hp: dict) -> list[str]:
    """The classes of a run: ``labels`` (``task: keywords``), or ``labels`` + ``_unknown_`` + ``_silence_``
    (``task: v2-12``, the Speech Commands v2-12 benchmark: other words and background noise)."""
    labels = split_labels(hp["labels"])
    if not labels:
        raise HparamsError("labels: give the keywords to classify, e.g. --labels=yes,no")
    if hp["task"] == "v2-12":
        labels = [name for name in labels if name not in SPECIAL] + list(SPECIAL)
    return labels


def load_kws_data(hp: dict) -> KWSData:
    """Train (``speaker_fraction`` of its speakers), valid and test splits of ``data_folder``,
    plus every clip of ``eval_folder`` when given. Splits are by speaker, never by file."""
    from ganaug.data import KeywordDataset

    labels = task_labels(hp)
    data_folder = Path(str(hp["data_folder"]))
    if not data_folder.is_dir():
        raise HparamsError(f"data_folder={data_folder}: no such folder; give a Speech Commands- or FSDD-layout folder")
    common = dict(labels=labels, sample_rate=int(hp["sample_rate"]), num_samples=int(hp["num_samples"]),
                  unknown_share=float(hp["unknown_share"]) if UNKNOWN_LABEL in labels else None)
    cache_dir = hp.get("cache_dir")
    try:
        sets = {
            "train": KeywordDataset(data_folder, split="train", speaker_fraction=float(hp["speaker_fraction"]),
                                    seed=int(hp["data_seed"]), **common),
            "valid": KeywordDataset(data_folder, split="valid", **common),
            "test": KeywordDataset(data_folder, split="test", **common),
        }
    except ValueError as err:
        raise HparamsError(f"data_folder={data_folder}: {err}") from err
    data = KWSData(labels, *(_preload(sets[s], cache_dir) for s in ("train", "valid", "test")))
    data.info = {f"{s}_speakers": len(d.speakers) for s, d in sets.items()}
    data.info["train_speaker_ids"] = sets["train"].speakers
    data.info["train_speakers_sha1"] = speakers_sha1(sets["train"].speakers)
    data.info["train_fingerprint"] = sets["train"].fingerprint()
    overlap = set(sets["train"].speakers) & (set(sets["valid"].speakers) | set(sets["test"].speakers))
    if overlap:  # a bug upstream, never a user error: refuse to report a leaky number
        raise RuntimeError(f"speakers {sorted(overlap)[:5]} are in train and in valid/test")
    eval_folder = str(hp.get("eval_folder") or "")
    if eval_folder:
        if not Path(eval_folder).is_dir():
            raise HparamsError(f"eval_folder={eval_folder}: no such folder; give a Speech Commands-layout folder or ''")
        try:
            eval_set = KeywordDataset(eval_folder, split=None, **common)
        except ValueError as err:
            raise HparamsError(f"eval_folder={eval_folder}: {err}") from err
        data.eval = _preload(eval_set, cache_dir)
        data.info["eval_speakers"] = len(eval_set.speakers)
    return data


def write_noise_csv(noise_folder, csv_path, sample_rate: int = 16000) -> int:
    """SpeechBrain ``AddNoise`` CSV (ID, duration, wav, wav_format, wav_opts) of the background noise in
    ``noise_folder`` (Speech Commands' ``_background_noise_`` recordings or ``_silence_`` clips), cut into
    cached segments at ``sample_rate`` (:func:`ganaug.data.noise.noise_segments`); returns the number of rows."""
    from ganaug.audio import audio_info
    from ganaug.data.noise import noise_segments

    try:
        segments = noise_segments(noise_folder, int(sample_rate))
    except ValueError as err:
        raise HparamsError(str(err)) from err
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "duration", "wav", "wav_format", "wav_opts"])
        for i, path in enumerate(segments):
            rate, frames = audio_info(path)
            writer.writerow([f"noise{i}", f"{frames / rate:.3f}", str(path), "wav", ""])
    return len(segments)


def tstr_training_set(gan_ckpt, label_names, per_label: int, sample_rate: int, num_samples: int,
               seed: int = 0, device="cpu", min_confidence=None, filter_classifier=None) -> tuple[torch.Tensor, torch.Tensor]:
    """``per_label`` generated clips of every label (TSTR training set), at the run's rate and length.

    ``gan_ckpt`` is a conditional checkpoint directory or a per-keyword run folder
    (``<folder>/<label>/``). A label the generator does not know is an error. Clips come from
    the one generator source (:func:`ganaug.augment.source.synthesize`: clip ``j`` of a label is
    the bank's clip ``j`` of ``ganaug generate --seed``); with ``min_confidence`` only clips the
    label filter accepts are kept, so a label may get fewer (a label with none is an error).
    """
    from ganaug.augment import make_source, synthesize as synthesize_clips
    from ganaug.checkpoint import CheckpointError

    names = [name for name in label_names for _ in range(int(per_label))]
    try:
        source = make_source(str(gan_ckpt), min_confidence=min_confidence, filter_classifier=filter_classifier or None)
        source.check_names(label_names)
        wavs, kept, _ = synthesize_clips(source, names, seed, sample_rate, num_samples, device)
    except (ValueError, FileNotFoundError, CheckpointError) as err:
        raise HparamsError(f"gan_ckpt={gan_ckpt}: {err}") from err
    empty = sorted(set(label_names) - set(kept))
    if empty:
        raise HparamsError(f"gan_ckpt={gan_ckpt}: no synthetic clip of labels {empty} reached "
                           f"min_confidence={min_confidence}; lower gan_min_confidence or train the generator longer")
    labels = torch.tensor([list(label_names).index(name) for name in kept], dtype=torch.long)
    return wavs, labels
