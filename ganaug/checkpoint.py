"""Portable generator checkpoints: safetensors weights + config.json, no pickle anywhere.

A checkpoint directory holds ``generator.safetensors`` and ``config.json``; ``load_generator``
needs nothing else (no training code, no discriminator). Every write is atomic (temp file,
fsync, rename), so a reader never sees half a file. ``config.json`` records the SHA-256 of the
weights (``weights_sha256``), checked on load; checkpoints written before it existed load
without the check.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganaug.io import (CheckpointError, atomic_save_tensors, atomic_write_json, check_tensors, file_sha256,
                       load_tensors, read_versioned_json)

__all__ = ["CheckpointError", "FORMAT_VERSION", "WEIGHTS_FILE", "CONFIG_FILE",
           "save_generator", "read_config", "load_generator", "is_checkpoint", "find_checkpoints"]

FORMAT_VERSION = 1
WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"
CHECKSUM_KEY = "weights_sha256"
_MIRRORED = ("label_names", "sample_rate", "num_samples")   # top-level copies of constructor kwargs


def save_generator(ckpt_dir: str | Path, generator: torch.nn.Module, **extra) -> Path:
    """Write ``generator``'s weights and config to ``ckpt_dir``.

    ``extra`` (e.g. ``step``, ``data_fingerprint``, ``ema``) is stored in config.json. The
    generator must have a ``family`` name registered in ``ganaug.models.GENERATORS`` and a
    ``config()`` returning its constructor kwargs.
    """
    from ganaug import __version__

    ckpt_dir = Path(ckpt_dir)
    kwargs = generator.config()
    config = {
        "format_version": FORMAT_VERSION,
        "model": generator.family,
        "kwargs": kwargs,
        "label_names": kwargs.get("label_names"),
        "sample_rate": generator.sample_rate,
        "num_samples": generator.num_samples,
        "ganaug_version": __version__,
        **extra,
    }
    atomic_save_tensors(ckpt_dir / WEIGHTS_FILE, generator.state_dict())
    config[CHECKSUM_KEY] = file_sha256(ckpt_dir / WEIGHTS_FILE)
    atomic_write_json(ckpt_dir / CONFIG_FILE, config)
    return ckpt_dir


def is_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def read_config(ckpt_dir: str | Path) -> dict:
    path = Path(ckpt_dir) / CONFIG_FILE
    config = read_versioned_json(path, FORMAT_VERSION, f"{ckpt_dir} is not a ganaug checkpoint directory "
                                 f"(expected {CONFIG_FILE} and {WEIGHTS_FILE}, as written by `ganaug train`)")
    for key in ("model", "kwargs"):
        if key not in config:
            raise CheckpointError(f"{path}: no {key!r} entry; the file is damaged")
    if not isinstance(config["kwargs"], dict):
        raise CheckpointError(f"{path}: 'kwargs' is not an object; the file is damaged")
    _check_mirrored(path, config, config["kwargs"], "kwargs")
    return config


def _check_mirrored(path: Path, config: dict, source: dict, what: str) -> None:
    """The top-level ``label_names``/``sample_rate``/``num_samples`` must equal ``source``'s."""
    differ = [f"{key}: {config[key]!r} at the top, {source[key]!r} in {what}"
              for key in _MIRRORED if key in config and key in source and config[key] != source[key]]
    if differ:
        raise CheckpointError(f"{path}: the file contradicts itself ({'; '.join(differ)}); it was edited by hand "
                              f"or damaged: restore it from the run folder or re-export the checkpoint")


def load_generator(ckpt_dir: str | Path, device=None) -> torch.nn.Module:
    """Rebuild a generator from a checkpoint directory, in eval mode.

    Returns the generator module itself (e.g. a ``WaveGANGenerator``) with ``.label_names``,
    ``.sample_rate``, ``.num_samples`` and ``.sample(n, labels=None, generator=None)``.
    A per-keyword run folder (one checkpoint per label) is not one generator: give
    ``GanAugment`` that folder, or load ``<folder>/<label>`` here.
    """
    from ganaug.models import GENERATORS

    ckpt_dir = Path(ckpt_dir)
    if not (ckpt_dir / CONFIG_FILE).is_file() and find_checkpoints(ckpt_dir):
        raise CheckpointError(
            f"{ckpt_dir} holds one checkpoint per keyword ({', '.join(find_checkpoints(ckpt_dir))}); "
            f"load one of them ({ckpt_dir}/<label>) or pass the folder to GanAugment"
        )
    config = read_config(ckpt_dir)
    family = config["model"]
    if family not in GENERATORS:
        raise CheckpointError(f"{ckpt_dir / CONFIG_FILE}: unknown model {family!r}; this ganaug knows {sorted(GENERATORS)}")
    try:
        generator = GENERATORS[family](**config["kwargs"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{ckpt_dir / CONFIG_FILE}: kwargs do not build a {family} model ({err})") from err
    _check_mirrored(ckpt_dir / CONFIG_FILE, config, {key: getattr(generator, key) for key in _MIRRORED
                                                      if hasattr(generator, key)}, "the model it builds")
    weights_path = ckpt_dir / WEIGHTS_FILE
    expected = config.get(CHECKSUM_KEY)
    if expected is not None and weights_path.is_file() and file_sha256(weights_path) != expected:
        raise CheckpointError(
            f"{weights_path}: checksum does not match {CONFIG_FILE}'s {CHECKSUM_KEY}: the file is damaged or truncated (or a "
            f"save was cut short: rerun the same `ganaug train` command to re-export it)"
        )
    tensors = load_tensors(weights_path)
    check_tensors(weights_path, tensors, generator.state_dict())
    generator.load_state_dict(tensors)
    generator.eval().requires_grad_(False)
    if device is not None:
        generator.to(device)
    return generator


def find_checkpoints(run_dir: str | Path) -> dict[str, Path]:
    """``{label: dir}`` of the per-keyword checkpoints directly under ``run_dir``."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return {}
    return {d.name: d for d in sorted(run_dir.iterdir()) if d.is_dir() and is_checkpoint(d)}
