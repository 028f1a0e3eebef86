"""Portable generator checkpoints: safetensors weights + config.json, no pickle anywhere.

A checkpoint directory holds ``generator.safetensors`` and ``config.json``; ``load_generator``
needs nothing else (no training code, no discriminator). Every write is atomic (temp file,
fsync, rename), so a reader never sees half a file.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

__all__ = [
    "CheckpointError", "FORMAT_VERSION", "WEIGHTS_FILE", "CONFIG_FILE",
    "atomic_write", "atomic_write_json", "atomic_save_tensors", "load_tensors",
    "save_generator", "read_config", "load_generator", "is_checkpoint", "find_checkpoints",
    "file_sha256", "read_versioned_json", "check_tensors",
]

FORMAT_VERSION = 1
WEIGHTS_FILE = "generator.safetensors"
CONFIG_FILE = "config.json"


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and what is wrong."""


def _fsync_dir(path: Path) -> None:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | Path, write) -> None:
    """Call ``write(tmp_path)`` then move the temp file onto ``path`` (same folder, fsynced)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    try:
        write(tmp)
        with open(tmp, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    _fsync_dir(path.parent)


def atomic_write_json(path: str | Path, obj) -> None:
    def write(tmp):
        with open(tmp, "w") as f:
            json.dump(obj, f, indent=2, sort_keys=True)
            f.write("\n")

    atomic_write(path, write)


def _clean_key(key: str) -> str:
    """Drop wrapper prefixes (torch.compile's ``_orig_mod.``, DDP's ``module.``) from a weight name."""
    key = key.replace("_orig_mod.", "")
    return key[len("module."):] if key.startswith("module.") else key


def atomic_save_tensors(path: str | Path, tensors: dict[str, torch.Tensor], metadata=None) -> None:
    """safetensors file of contiguous CPU copies (no ``_orig_mod.`` prefixes from torch.compile)."""
    clean = {_clean_key(k): v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    atomic_write(path, lambda tmp: save_file(clean, tmp, metadata=metadata))


def load_tensors(path: str | Path, device="cpu") -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing; a checkpoint directory needs {WEIGHTS_FILE} and {CONFIG_FILE}")
    try:
        return load_file(str(path), device=str(device))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{path}: not a complete safetensors file ({err}); it may be truncated") from err


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 22), b""):
            h.update(block)
    return h.hexdigest()


def read_versioned_json(path: str | Path, format_version: int, missing: str = "") -> dict:
    """A JSON object whose ``format_version`` must be ``format_version``; clear errors naming the file.

    ``missing`` completes the message for a missing file (what the folder should be).
    """
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"{path}: missing{'. ' + missing if missing else ''}")
    try:
        config = json.loads(path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as err:
        raise CheckpointError(f"{path}: not valid JSON ({err}); the file is damaged") from err
    version = config.get("format_version") if isinstance(config, dict) else None
    if version != format_version:
        raise CheckpointError(f"{path}: format_version {version!r} is not one this ganaug reads ({format_version}); "
                              f"upgrade ganaug or re-export the file")
    return config


def check_tensors(path: str | Path, tensors: dict, expected: dict) -> None:
    """Every tensor of ``expected`` (a state dict) present in ``tensors`` with its shape, and no other."""
    missing = sorted(set(expected) - set(tensors))
    unexpected = sorted(set(tensors) - set(expected))
    if missing or unexpected:
        raise CheckpointError(f"{path}: missing tensors {missing[:5]}, unexpected tensors {unexpected[:5]}")
    for name, tensor in tensors.items():
        if tensor.shape != expected[name].shape:
            raise CheckpointError(f"{path}: tensor {name!r} has shape {tuple(tensor.shape)}, the config's model "
                                  f"expects {tuple(expected[name].shape)}")


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
    return config


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
    weights_path = ckpt_dir / WEIGHTS_FILE
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
