"""``ganaug train HPARAMS.yaml [--key=value ...]``: read the config, load the clips, train.

``conditional: False`` trains one unconditional generator per listed label, each in its own
checkpoint directory ``output_folder/<label>/``, in one command; ``conditional: True`` trains one
class-conditional generator whose checkpoint directory is ``output_folder`` itself. Rerunning
the same command resumes every directory from its newest intact checkpoint (labels already
trained to ``max_steps`` are skipped). Training reads the TRAIN split only: the speakers of the
valid and test splits are never seen by a generator.

The YAML's ``model`` names the generator family (``ganaug.models.GENERATORS``); the YAML keys
that the family's constructors accept (``model_dim``, ``num_samples``, ...) are passed to them.
"""

from __future__ import annotations

import inspect
import sys
from dataclasses import fields
from pathlib import Path

import torch

from ganaug.io import CheckpointError, atomic_write
from ganaug.config import HparamsError, load_hparams, split_labels
from ganaug.train.distributed import setup
from ganaug.train.loop import TrainOptions, train_gan

__all__ = ["main", "train", "build_models"]

RESOLVED_YAML = "hparams.yaml"
# YAML keys that describe the data rather than the model or the loop
DATA_KEYS = ("data_folder", "output_folder", "labels", "conditional", "model", "speaker_fraction",
             "data_seed", "cache_dir", "device", "sample_rate", "num_samples")


def main(hparams_file, overrides: dict[str, str] | None = None) -> int:
    """Entry point of ``ganaug train``; a configuration problem is one line on stderr, exit code 2."""
    try:
        train(hparams_file, overrides)
    except (HparamsError, CheckpointError) as err:
        print(f"ganaug train: error: {err}", file=sys.stderr)
        return 2
    return 0


def _kwargs_for(cls, hparams: dict, **fixed) -> dict:
    """The YAML entries that ``cls``'s constructor takes by name, plus ``fixed``."""
    accepted = inspect.signature(cls.__init__).parameters
    return {**{k: v for k, v in hparams.items() if k in accepted}, **fixed}


def build_models(hparams: dict, label_names: list[str] | None):
    """``(generator, critic)`` of the family ``hparams["model"]``, seeded by ``hparams["seed"]``."""
    from ganaug.models import DISCRIMINATORS, GENERATORS

    family = hparams.get("model", "wavegan")
    if family not in GENERATORS or family not in DISCRIMINATORS:
        raise HparamsError(f"model={family!r}: trainable generator families are "
                           f"{sorted(set(GENERATORS) & set(DISCRIMINATORS))}")
    torch.manual_seed(int(hparams.get("seed", 0)))
    try:
        G = GENERATORS[family](**_kwargs_for(GENERATORS[family], hparams, label_names=label_names))
        D = DISCRIMINATORS[family](**_kwargs_for(DISCRIMINATORS[family], hparams, label_names=label_names))
    except (TypeError, ValueError) as err:
        raise HparamsError(f"model={family}: {err}") from err
    return G, D


def _options(hparams: dict, **extra) -> TrainOptions:
    names = {f.name for f in fields(TrainOptions)}
    try:
        return TrainOptions(**{k: v for k, v in hparams.items() if k in names}, **extra)
    except (TypeError, ValueError) as err:
        raise HparamsError(f"{err}; fix it in the YAML or with --key=value") from err


def _load_data(hparams: dict, labels: list[str], dist):
    """``(dataset, wavs, label_indices)`` of the TRAIN split, decoded once through the clip cache."""
    from ganaug.data import KeywordDataset
    from ganaug.data.cache import preload

    folder = Path(str(hparams["data_folder"]))
    if not folder.is_dir():
        raise HparamsError(f"data_folder={folder}: no such folder; give --data_folder=DIR "
                           f"(a Speech Commands or FSDD layout folder)")
    try:
        dataset = KeywordDataset(folder, labels=labels, sample_rate=int(hparams["sample_rate"]),
                                 num_samples=int(hparams["num_samples"]), split="train",
                                 speaker_fraction=float(hparams.get("speaker_fraction", 1.0)),
                                 seed=int(hparams.get("data_seed", 0)))
    except ValueError as err:
        raise HparamsError(f"data_folder={folder}: {err}") from err
    empty = [name for name, count in dataset.label_counts().items() if count == 0]
    if empty:
        raise HparamsError(f"data_folder={folder}: no training clips for labels {empty}; remove them from --labels")
    cache_dir = hparams.get("cache_dir")
    cache_dir = False if cache_dir is False else (Path(str(cache_dir)) if cache_dir else None)
    if not dist.main:
        dist.barrier()                      # process 0 fills the cache, the others map it
    wavs, label_index = preload(dataset, cache_dir=cache_dir, progress=dist.main and hparams.get("progress", True))
    if dist.main:
        dist.barrier()
    return dataset, wavs, label_index


def train(hparams_file, overrides: dict | None = None) -> list[Path]:
    """Run ``ganaug train``; returns the checkpoint directories written."""
    hparams, resolved = load_hparams(hparams_file, overrides)
    labels = split_labels(hparams.get("labels"))
    if not labels:
        raise HparamsError(f"{hparams_file}: no labels; give --labels=yes,no (comma-separated label names)")
    conditional = hparams.get("conditional", False)
    if not isinstance(conditional, bool):
        raise HparamsError(f"conditional={conditional!r}: must be True or False")
    output = Path(str(hparams["output_folder"]))
    try:
        dist, device = setup(str(hparams.get("device", "auto")))
    except ValueError as err:
        raise HparamsError(str(err)) from err
    threads = hparams.get("num_threads")
    if threads is not None and (isinstance(threads, bool) or not isinstance(threads, int) or threads < 0):
        raise HparamsError(f"num_threads={threads!r}: a positive integer, or 0 for torch's default")
    previous_threads = torch.get_num_threads()
    if threads:
        torch.set_num_threads(threads)
    try:
        return _train(hparams, resolved, labels, conditional, output, dist, device)
    finally:
        torch.set_num_threads(previous_threads)


def _train(hparams, resolved, labels, conditional, output, dist, device) -> list[Path]:
    dataset, wavs, label_index = _load_data(hparams, labels, dist)
    data_info = {"data_folder": str(hparams["data_folder"]), "split": "train", "labels": labels,
                 "speaker_fraction": dataset.speaker_fraction, "data_seed": dataset.seed,
                 "num_clips": len(dataset), "num_speakers": len(dataset.speakers)}
    training = {k: v for k, v in hparams.items() if k in {f.name for f in fields(TrainOptions)} and k != "progress"}
    training.update(model=hparams.get("model", "wavegan"), world_size=dist.world_size)

    jobs = []   # (ckpt_dir, label_names, wavs, labels, metadata)
    if conditional:
        jobs.append((output, labels, wavs, label_index,
                     {"data_fingerprint": dataset.fingerprint(), "data": {**data_info, "label_counts": dataset.label_counts()}}))
    else:
        for i, label in enumerate(labels):
            rows = label_index == i
            jobs.append((output / label, None, wavs[rows], None,
                         {"keyword": label, "data_fingerprint": f"{dataset.fingerprint()}/{label}",
                          "data": {**data_info, "num_clips": int(rows.sum())}}))
    if dist.main:
        for folder in {output, *(job[0] for job in jobs)}:
            atomic_write(folder / RESOLVED_YAML, lambda tmp: Path(tmp).write_text(resolved))

    done = []
    for ckpt_dir, label_names, job_wavs, job_labels, metadata in jobs:
        G, D = build_models(hparams, label_names)
        name = "conditional" if conditional else metadata["keyword"]
        opts = _options(hparams, name=name, metadata={**metadata, "training": training})
        if dist.main:
            print(f"{name}: {len(job_wavs)} training clips -> {ckpt_dir} "
                  f"({sum(p.numel() for p in G.parameters()):,} G / {sum(p.numel() for p in D.parameters()):,} D "
                  f"parameters, {dist.world_size} process(es) on {device})", file=sys.stderr)
        done.append(train_gan(G, D, job_wavs, job_labels, ckpt_dir, opts, device=device, dist=dist))
    return done
