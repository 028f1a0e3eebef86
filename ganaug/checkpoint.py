"""Portable generator checkpoints: safetensors weights + config.json, no pickle anywhere.

A checkpoint directory holds ``generator.safetensors`` and ``config.json``; ``load_generator``
needs nothing else (no training code, no discriminator). Every write is atomic (temp file,
fsync, rename), so a reader never sees half a file. ``config.json`` records the SHA-256 of the
weights (``weights_sha256``) and of its own contents (``config_sha256``, over the canonical JSON of
every other key), both checked on load: an edited ``config.json`` (relabelled ``label_names``, a
deleted ``weights_sha256``) is refused. Checkpoints written before the checksums existed load
with a warning (once per folder and process), their ``label_names`` cross-checked against
``data.labels``. Before any weight is allocated, the model the kwargs build is checked against
the shapes in the weights file's header (``model_dim: 100000`` is one line, not a 128 TB
allocation); weights holding NaN/Inf are refused.
"""

from __future__ import annotations

import hashlib
import json
import warnings
from pathlib import Path

import torch

from ganaug.io import (CheckpointError, atomic_save_tensors, atomic_write_json, check_tensors, file_sha256,
                       load_tensors, read_versioned_json)

__all__ = ["CheckpointError", "FORMAT_VERSION", "WEIGHTS_FILE", "CONFIG_FILE", "CHECKSUM_KEY", "CONFIG_CHECKSUM_KEY",
           "save_generator", "read_config", "config_checksum", "load_generator", "is_checkpoint", "find_checkpoints"]

FORMAT_VERSION = 1
WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"
CHECKSUM_KEY = "weights_sha256"
CONFIG_CHECKSUM_KEY = "config_sha256"
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
    config[CONFIG_CHECKSUM_KEY] = config_checksum(config)
    atomic_write_json(ckpt_dir / CONFIG_FILE, config)
    return ckpt_dir


def is_checkpoint(path: str | Path) -> bool:
    path = Path(path)
    return (path / CONFIG_FILE).is_file() and (path / WEIGHTS_FILE).is_file()


def config_checksum(config: dict) -> str:
    """SHA-256 of ``config``'s canonical JSON (sorted keys, no spaces) without ``config_sha256`` itself."""
    body = {k: v for k, v in config.items() if k != CONFIG_CHECKSUM_KEY}
    return hashlib.sha256(json.dumps(body, sort_keys=True, separators=(",", ":")).encode()).hexdigest()


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
    expected = config.get(CONFIG_CHECKSUM_KEY)
    if expected is not None and expected != config_checksum(config):
        raise CheckpointError(f"{path}: its contents do not match its {CONFIG_CHECKSUM_KEY}: the file was edited by "
                              f"hand or damaged; restore it from the run folder or re-export the checkpoint")
    trained_on = (config.get("data") or {}).get("labels") if isinstance(config.get("data"), dict) else None
    if config.get("label_names") is not None and trained_on is not None and trained_on != config["label_names"]:
        raise CheckpointError(f"{path}: label_names {config['label_names']} are not the labels it was trained on "
                              f"(data.labels {trained_on}); the file was edited by hand: restore it")
    return config


def _check_mirrored(path: Path, config: dict, source: dict, what: str) -> None:
    """The top-level ``label_names``/``sample_rate``/``num_samples`` must equal ``source``'s."""
    differ = [f"{key}: {config[key]!r} at the top, {source[key]!r} in {what}"
              for key in _MIRRORED if key in config and key in source and config[key] != source[key]]
    if differ:
        raise CheckpointError(f"{path}: the file contradicts itself ({'; '.join(differ)}); it was edited by hand "
                              f"or damaged: restore it from the run folder or re-export the checkpoint")


_UNSIGNED_WARNED: set[str] = set()


def _check_weights(ckpt_dir: Path, config: dict) -> None:
    """The weights file's SHA-256 against ``weights_sha256``; a checkpoint without checksums is a warning."""
    weights_path = ckpt_dir / WEIGHTS_FILE
    expected = config.get(CHECKSUM_KEY)
    if expected is None or config.get(CONFIG_CHECKSUM_KEY) is None:
        if str(ckpt_dir.resolve()) not in _UNSIGNED_WARNED:
            _UNSIGNED_WARNED.add(str(ckpt_dir.resolve()))
            warnings.warn(f"{ckpt_dir}: {CONFIG_FILE} has no {CHECKSUM_KEY}/{CONFIG_CHECKSUM_KEY} (written by an older "
                          f"ganaug, or edited): a damaged {WEIGHTS_FILE} or an edited {CONFIG_FILE} cannot be detected. "
                          f"Re-export it (load_generator + save_generator) to add them", UserWarning, stacklevel=3)
    if expected is not None and weights_path.is_file() and file_sha256(weights_path) != expected:
        raise CheckpointError(
            f"{weights_path}: checksum does not match {CONFIG_FILE}'s {CHECKSUM_KEY}: the file is damaged or truncated (or a "
            f"save was cut short: rerun the same `ganaug train` command to re-export it)"
        )


def _file_shapes(path: Path) -> dict[str, torch.Tensor]:
    """``{name: meta tensor of the stored shape}`` from the safetensors header (no data read)."""
    from safetensors import safe_open

    if not path.is_file():
        raise CheckpointError(f"{path}: missing")
    try:
        with safe_open(str(path), framework="pt") as f:
            return {name: torch.empty(f.get_slice(name).get_shape(), device="meta") for name in f.keys()}
    except Exception as err:  # safetensors raises its own error types for a damaged header
        raise CheckpointError(f"{path}: not a complete safetensors file ({err}); it may be truncated") from err


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
        with torch.device("meta"):   # shapes only: the kwargs are checked against the file before any allocation
            skeleton = GENERATORS[family](**config["kwargs"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{ckpt_dir / CONFIG_FILE}: kwargs do not build a {family} model ({err})") from err
    _check_mirrored(ckpt_dir / CONFIG_FILE, config, {key: getattr(skeleton, key) for key in _MIRRORED
                                                      if hasattr(skeleton, key)}, "the model it builds")
    weights_path = ckpt_dir / WEIGHTS_FILE
    check_tensors(weights_path, _file_shapes(weights_path), skeleton.state_dict())
    _check_weights(ckpt_dir, config)
    tensors = load_tensors(weights_path)
    bad = sorted(name for name, t in tensors.items() if t.is_floating_point() and not torch.isfinite(t).all())
    if bad:
        raise CheckpointError(f"{weights_path}: weights {bad[:3]} hold NaN or Inf; the file is damaged (or training "
                              f"diverged before this export): use an earlier checkpoint or retrain")
    generator = GENERATORS[family](**config["kwargs"])
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
