"""What a KWS run trains and tests on: preloaded speaker-disjoint splits, noise CSV, synthetic sets.

Everything here is shared by the SpeechBrain and the HF ``datasets`` trainers, so the two see
the same clips in the same order.
"""

from __future__ import annotations

import csv
import inspect
from dataclasses import dataclass, field
from pathlib import Path

import torch

from ganaug.config import HparamsError, split_labels

__all__ = ["KWSData", "load_kws_data", "write_noise_csv", "synthesize", "make_gan_augment"]


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


def load_kws_data(hp: dict) -> KWSData:
    """Train (``speaker_fraction`` of its speakers), valid and test splits of ``data_folder``,
    plus every clip of ``eval_folder`` when given. Splits are by speaker, never by file."""
    from ganaug.data import KeywordDataset

    labels = split_labels(hp["labels"])
    if not labels:
        raise HparamsError("labels: give the keywords to classify, e.g. --labels=yes,no")
    data_folder = Path(str(hp["data_folder"]))
    if not data_folder.is_dir():
        raise HparamsError(f"data_folder={data_folder}: no such folder; give a Speech Commands- or FSDD-layout folder")
    common = dict(labels=labels, sample_rate=int(hp["sample_rate"]), num_samples=int(hp["num_samples"]))
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


def write_noise_csv(noise_folder, csv_path) -> int:
    """SpeechBrain ``AddNoise`` CSV (ID, duration, wav, wav_format, wav_opts) of the audio files in
    ``noise_folder`` (e.g. Speech Commands' ``_silence_``); returns the number of rows."""
    from ganaug.audio import audio_info

    folder = Path(noise_folder)
    files = sorted(p for p in folder.glob("*") if p.suffix.lower() in (".wav", ".flac", ".ogg", ".mp3"))
    if not files:
        raise HparamsError(f"noise_folder={folder}: no audio files; point it at background-noise clips "
                           f"(e.g. <data_folder>/_silence_) or set --noise_folder='' for white noise")
    csv_path = Path(csv_path)
    csv_path.parent.mkdir(parents=True, exist_ok=True)
    with open(csv_path, "w", newline="") as f:
        writer = csv.writer(f)
        writer.writerow(["ID", "duration", "wav", "wav_format", "wav_opts"])
        for i, path in enumerate(files):
            frames, rate = audio_info(path)
            writer.writerow([f"noise{i}", f"{frames / rate:.3f}", str(path.resolve()), path.suffix[1:].lower(), ""])
    return len(files)


def synthesize(gan_ckpt, label_names, per_label: int, sample_rate: int, num_samples: int,
               seed: int = 0, device="cpu") -> tuple[torch.Tensor, torch.Tensor]:
    """``per_label`` generated clips of every label (TSTR training set), at the run's rate and length.

    ``gan_ckpt`` is a conditional checkpoint directory or a per-keyword run folder
    (``<folder>/<label>/``). A label the generator does not know is an error.
    """
    from ganaug.audio import fit_length, resample
    from ganaug.checkpoint import find_checkpoints, is_checkpoint, load_generator

    gan_ckpt = Path(gan_ckpt)
    per_keyword = {} if is_checkpoint(gan_ckpt) else find_checkpoints(gan_ckpt)
    conditional = None if per_keyword else load_generator(gan_ckpt, device=device)
    gen = torch.Generator(device=device).manual_seed(int(seed))
    wavs, labels = [], []
    for index, name in enumerate(label_names):
        if conditional is not None:
            if not conditional.label_names or name not in conditional.label_names:
                raise HparamsError(f"gan_ckpt={gan_ckpt}: the generator knows labels {conditional.label_names}, not {name!r}")
            G, cond = conditional, [name] * per_label
        else:
            if name not in per_keyword:
                raise HparamsError(f"gan_ckpt={gan_ckpt}: no checkpoint for {name!r} (has {sorted(per_keyword)})")
            G, cond = load_generator(per_keyword[name], device=device), None
        clips = G.sample(per_label, labels=cond, generator=gen).float().cpu()
        if G.sample_rate != sample_rate:
            clips = resample(clips, G.sample_rate, sample_rate)
        wavs.append(fit_length(clips, num_samples))
        labels.append(torch.full((per_label,), index, dtype=torch.long))
    return torch.cat(wavs), torch.cat(labels)


def make_gan_augment(hp: dict, label_names, integration: str = "speechbrain"):
    """The GanAugment of a run (``gan_ckpt``, ``gan_p``, ``gan_mode``), or None when ``gan_ckpt`` is empty.

    ``integration="speechbrain"`` gives the SpeechBrain adapter (``(wavs, lens, labels)`` in and out);
    ``"core"`` gives ``ganaug.GanAugment`` (whose ``hf_map`` the HF trainer uses).
    """
    ckpt = str(hp.get("gan_ckpt") or "")
    if not ckpt:
        return None
    if not Path(ckpt).is_dir():
        raise HparamsError(f"gan_ckpt={ckpt}: no such checkpoint directory; give one written by `ganaug train` or ''")
    if integration == "speechbrain":
        from ganaug.integrations.speechbrain import GanAugment
    else:
        from ganaug.augment import GanAugment
    wanted = dict(p=float(hp["gan_p"]), mode=str(hp["gan_mode"]), label_names=list(label_names),
                  sample_rate=int(hp["sample_rate"]))
    params = inspect.signature(GanAugment).parameters
    return GanAugment(ckpt, **{k: v for k, v in wanted.items() if k in params})
