"""``ganaug train HPARAMS.yaml [--key=value ...]``: read the config, load the clips, train.

``conditional: False`` trains one unconditional generator per listed label, each in its own
checkpoint directory ``output_folder/<label>/``, in one command; ``conditional: True`` trains one
class-conditional generator whose checkpoint directory is ``output_folder`` itself. Rerunning
the same command resumes every directory from its newest intact checkpoint (labels already
trained to ``max_steps`` are skipped). Training reads the TRAIN split only: the speakers of the
valid and test splits are never seen by a generator.

The YAML's ``model`` names the generator family (``ganaug.models.GENERATORS``); its keys are declared
in :data:`MODEL_KEYS` (``model_dim``, ``num_samples``, ...) and passed to its constructors, those of
:class:`~ganaug.train.loop.TrainOptions` to the loop. Any other key is an error naming it, and so is a
key of another family set by a preset or on the command line (``--spectral_norm=True`` on a WaveGAN run),
before any work.

One run at a time per output folder (``ganaug.io.lock``): a second ``ganaug train`` on a folder in
use exits 2 naming the holder. A run whose saved settings differ is refused before anything is
written (``hparams.yaml`` keeps describing the weights). A finished run says so without writing,
so it works on a read-only folder too.
"""

from __future__ import annotations

import contextlib
import errno
import os
import sys
from dataclasses import fields
from pathlib import Path

import torch

from ganaug.checkpoint import is_checkpoint, read_config
from ganaug.config import HparamsError, chain, check_threads, load_hparams, split_labels
from ganaug.env import torch_threads
from ganaug.io import CheckpointError, FolderLocked, WriteError, atomic_write, lock
from ganaug.train import state as st
from ganaug.train.distributed import setup
from ganaug.train.loop import TrainOptions, train_gan
from ganaug.train.options import check_for_model

__all__ = ["main", "train", "build_models", "preset_models", "MODEL_KEYS"]

RESOLVED_YAML = "hparams.yaml"
# keys the run itself reads (data, placement, output); the model's keys are MODEL_KEYS, the loop's
# TrainOptions' fields
RUN_KEYS = ("data_folder", "output_folder", "labels", "conditional", "model", "speaker_fraction", "data_seed",
            "cache_dir", "device", "num_threads", "progress", "sample_rate", "num_samples",
            "base")   # a preset's parent (ARCHITECTURE: presets are `base: NAME` plus the keys they change)
_SET_BY_RUN = ("name", "metadata")   # TrainOptions fields filled in by the run, never by the YAML
_SHARED = ("model_dim", "num_samples", "latent_dim", "sample_rate", "embedding_dim")
#: family -> (generator keys, critic keys): the YAML keys each constructor takes (``label_names`` is the run's).
#: The root YAML (wavegan.yaml) defines them all; a run refuses another family's key set above it.
MODEL_KEYS = {
    "wavegan": ((*_SHARED, "post_filter_len"), ("model_dim", "num_samples", "phase_shuffle")),
    "specgan": ((*_SHARED, "griffin_lim_iters", "griffin_lim_momentum"), ("model_dim", "num_samples", "phase_shuffle")),
    "tifgan": ((*_SHARED, "dynamic_range", "griffin_lim_iters", "spectral_norm"),
               ("model_dim", "num_samples", "phase_shuffle", "spectral_norm")),
}


def main(hparams_file, overrides: dict[str, str] | None = None) -> int:
    """Entry point of ``ganaug train``; a configuration problem is one line on stderr, exit code 2."""
    from ganaug.errors import run_command

    return run_command("ganaug train", lambda: train(hparams_file, overrides) and 0)


def _option_names() -> set[str]:
    return {f.name for f in fields(TrainOptions)} - set(_SET_BY_RUN)


def _family(hparams: dict):
    """``(name, generator class, critic class)`` of ``hparams["model"]``."""
    from ganaug.models import DISCRIMINATORS, GENERATORS

    family = hparams.get("model", "wavegan")
    if family not in GENERATORS or family not in DISCRIMINATORS:
        raise HparamsError(f"model={family!r}: trainable generator families are "
                           f"{sorted(set(GENERATORS) & set(DISCRIMINATORS))}")
    return family, GENERATORS[family], DISCRIMINATORS[family]


def _family_keys(family: str) -> set[str]:
    generator, critic = MODEL_KEYS[family]
    return set(generator) | set(critic)


def known_keys(hparams: dict) -> set[str]:
    """Every YAML key ``ganaug train`` can read: run keys, TrainOptions, and every family's model keys (the GAN
    presets share one root file); which of the model keys a run may SET is :func:`check_keys`' business."""
    _family(hparams)   # an unknown model is its own error
    return set(RUN_KEYS) | _option_names() | set().union(*map(_family_keys, MODEL_KEYS))


def set_keys(hparams_file, overrides: dict | None) -> dict[str, str]:
    """``{key: where}`` of the keys set above the root file: by a preset of the ``base:`` chain, or on the
    command line (the root file's values are every family's defaults)."""
    from ruamel.yaml import YAML

    where = {}
    for path in chain(hparams_file)[1:]:
        for key in YAML(typ="safe").load(path.read_text()) or {}:
            where[key] = path.name
    where.update({key: "the command line" for key in overrides or {}})
    where.pop("base", None)
    return where


def check_keys(hparams: dict, hparams_file, overrides: dict | None = None) -> None:
    """An unknown key (a typo), or a key of another model family set by a preset or an override, is an error
    naming it and the fix."""
    known = known_keys(hparams)
    unknown = sorted(k for k in hparams if k not in known)
    if unknown:
        raise HparamsError(f"{hparams_file}: unknown keys {unknown}; keys ganaug train takes: {sorted(known)}")
    family = hparams.get("model", "wavegan")
    mine = _family_keys(family)
    for key, where in set_keys(hparams_file, overrides).items():
        owners = [f for f in MODEL_KEYS if key in _family_keys(f)]
        if owners and key not in mine:
            raise HparamsError(f"{key}={hparams[key]!r} (set in {where}) is a key of model {' and '.join(owners)}; "
                               f"model={family} does not take it: remove it, or train --model={owners[0]}")


def _kwargs_for(keys, hparams: dict, **fixed) -> dict:
    """The YAML entries named in ``keys``, plus ``fixed``."""
    return {**{k: hparams[k] for k in keys if k in hparams}, **fixed}


def build_models(hparams: dict, label_names: list[str] | None):
    """``(generator, critic)`` of the family ``hparams["model"]``, initialised from ``hparams["seed"]``.

    The seed drives a private copy of torch's RNG (``fork_rng``): the caller's global RNG is untouched.
    """
    family, generator, critic = _family(hparams)
    g_keys, d_keys = MODEL_KEYS[family]
    try:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(int(hparams.get("seed", 0)))
            G = generator(**_kwargs_for(g_keys, hparams, label_names=label_names))
            D = critic(**_kwargs_for(d_keys, hparams, label_names=label_names))
    except (TypeError, ValueError) as err:
        raise HparamsError(f"model={family}: {err}") from err
    return G, D


def preset_models(preset: str = "wavegan", label_names: list[str] | None = None, **overrides):
    """``(generator, critic)`` as the YAML preset ``preset`` (with ``--key=value`` ``overrides``) builds them:
    ``wavegan`` is the paper's d=64, ``wavegan_cpu`` d=16, ``wavegan_tiny`` d=8 (tests and benches)."""
    hparams, _ = load_hparams(preset, {"data_folder": "", "output_folder": "", **overrides})
    return build_models(hparams, label_names)


#: the model sizes the benches and tests build, as (YAML preset, overrides): one table, so they time and test one model
SIZES = {"paper": ("wavegan", {}), "paper_32k": ("wavegan", {"num_samples": 32768}),
         "small": ("wavegan", {"model_dim": 32}), "tiny": ("wavegan_cpu", {})}


def sized_models(size: str, label_names: list[str] | None = None, **overrides):
    """``(generator, critic)`` of a ``SIZES`` entry: paper = ``wavegan`` (d=64), paper_32k its 32768-sample model,
    small = d=32, tiny = ``wavegan_cpu`` (d=16)."""
    preset, sized = SIZES[size]
    return preset_models(preset, label_names, **sized, **overrides)


def _options(hparams: dict, **extra) -> TrainOptions:
    """The loop's options, checked against the model family and conditioning before any work."""
    names = _option_names()
    try:
        opts = TrainOptions(**{k: v for k, v in hparams.items() if k in names}, **extra)
        check_for_model(opts, hparams.get("model", "wavegan"), hparams.get("conditional") is True)
    except (TypeError, ValueError) as err:
        raise HparamsError(f"{err}; fix it in the YAML or with --key=value") from err
    return opts


def _dataset(hparams: dict, labels: list[str]):
    """The TRAIN split's ``KeywordDataset`` (files found, nothing decoded yet)."""
    from ganaug.data import KeywordDataset

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
    return dataset


def _decode(hparams: dict, dataset, dist):
    """``(wavs, label_indices)`` of ``dataset``, decoded once through the clip cache."""
    from ganaug.data.cache import preload

    cache_dir = hparams.get("cache_dir")
    cache_dir = False if cache_dir is False else (Path(str(cache_dir)) if cache_dir else None)
    if not dist.main:
        dist.barrier()                      # process 0 fills the cache, the others map it
    try:
        wavs, label_index = preload(dataset, cache_dir=cache_dir, progress=dist.main and hparams.get("progress", True))
    finally:
        if dist.main:
            dist.barrier()
    return wavs, label_index


def train(hparams_file, overrides: dict | None = None) -> list[Path]:
    """Run ``ganaug train``; returns the checkpoint directories written."""
    hparams, resolved = load_hparams(hparams_file, overrides)
    check_keys(hparams, hparams_file, overrides)
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
    with torch_threads(check_threads(hparams.get("num_threads"))):
        return _train(hparams, resolved, labels, conditional, output, dist, device)


def _finished(ckpt_dir: Path, hparams: dict, label_names, opts: TrainOptions) -> int | None:
    """The step ``ckpt_dir`` was trained to if it holds this run at ``max_steps`` or beyond, else ``None``.

    A saved run with other settings is refused (``CheckpointError``). Reads only: the answer
    comes before ``hparams.yaml`` is written, and on a read-only folder.
    """
    meta = st.peek_latest(ckpt_dir)
    if meta is None:
        return None
    G, D = build_models(hparams, label_names)
    current = st.run_signature(opts, G, D)
    st.check_signature({k: v for k, v in meta["signature"].items() if k in current}, current, ckpt_dir)
    if meta["step"] < opts.max_steps or not is_checkpoint(ckpt_dir):
        return None
    try:   # the exported generator is the one of that step (not cut short between the two saves)
        return meta["step"] if read_config(ckpt_dir).get("step") == meta["step"] else None
    except CheckpointError:
        return None


def _train(hparams, resolved, labels, conditional, output, dist, device) -> list[Path]:
    dataset = _dataset(hparams, labels)
    data_info = {"data_folder": str(Path(str(hparams["data_folder"])).resolve()), "split": "train", "labels": labels,
                 "speaker_fraction": dataset.speaker_fraction, "data_seed": dataset.seed,
                 "num_clips": len(dataset), "num_speakers": len(dataset.speakers)}
    training = {k: v for k, v in hparams.items() if k in _option_names() and k != "progress"}
    training.update(model=hparams.get("model", "wavegan"), world_size=dist.world_size)

    jobs = []   # (ckpt_dir, label_names, label index or None, metadata)
    if conditional:
        jobs.append((output, labels, None,
                     {"data_fingerprint": dataset.fingerprint(), "data": {**data_info, "label_counts": dataset.label_counts()}}))
    else:
        counts = dataset.label_counts()
        for i, label in enumerate(labels):
            jobs.append((output / label, None, i,
                         {"keyword": label, "data_fingerprint": f"{dataset.fingerprint()}/{label}",
                          "data": {**data_info, "num_clips": counts[label]}}))

    with contextlib.ExitStack() as held:
        not_writable = None
        if dist.main:
            try:
                held.enter_context(lock(output))
            except FolderLocked:
                raise
            except WriteError as err:   # read-only: a finished run can still say so
                not_writable = err
            if not_writable is None and not os.access(output, os.W_OK):
                not_writable = WriteError(errno.EACCES, f"cannot write to {output} (read-only)")
        todo = []
        for ckpt_dir, label_names, index, metadata in jobs:
            name = "conditional" if conditional else metadata["keyword"]
            opts = _options(hparams, name=name, metadata={**metadata, "training": training})
            step = _finished(ckpt_dir, hparams, label_names, opts)
            if step is not None:
                if dist.main:
                    print(f"{ckpt_dir}: already trained to step {step} (max_steps={opts.max_steps}); "
                          f"raise --max_steps to train on", file=sys.stderr)
                continue
            todo.append((ckpt_dir, label_names, index, opts))
        if todo and not_writable is not None:
            raise WriteError(not_writable.errno, f"{not_writable}: choose another --output_folder")
        if not todo:
            return [job[0] for job in jobs]
        if dist.main:
            for folder in {output, *(job[0] for job in todo)}:
                atomic_write(folder / RESOLVED_YAML, lambda tmp: Path(tmp).write_text(resolved))
        wavs, label_index = _decode(hparams, dataset, dist)

        for ckpt_dir, label_names, index, opts in todo:
            rows = label_index == index if index is not None else None
            job_wavs, job_labels = (wavs, label_index) if rows is None else (wavs[rows], None)
            G, D = build_models(hparams, label_names)
            if dist.main:
                print(f"{opts.name}: {len(job_wavs)} training clips -> {ckpt_dir} "
                      f"({sum(p.numel() for p in G.parameters()):,} G / {sum(p.numel() for p in D.parameters()):,} D "
                      f"parameters, {dist.world_size} process(es) on {device})", file=sys.stderr)
            train_gan(G, D, job_wavs, job_labels, ckpt_dir, opts, device=device, dist=dist)
        return [job[0] for job in jobs]
