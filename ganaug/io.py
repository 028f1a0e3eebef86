"""Files that never tear: atomic writes, fsync, checksums, and the versioned safetensors/JSON pair.

The floor every writer stands on (checkpoints, classifiers, train state, banks, caches,
downloads, logs). A write goes to a temp file in the target's folder, is fsynced and renamed
over the target, so a reader sees the old file or the new one, never half of either. Reading
never unpickles; a damaged or foreign file is a ``CheckpointError`` that names it.
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

__all__ = ["CheckpointError", "cache_dir", "fsync_dir", "atomic_write", "atomic_write_json", "atomic_save_tensors",
           "load_tensors", "file_sha256", "read_versioned_json", "check_tensors"]


def cache_dir() -> Path:
    """ganaug's cache folder: ``$GANAUG_CACHE``, else ``~/.cache/ganaug`` (downloads, decoded clips, classifiers)."""
    return Path(os.environ.get("GANAUG_CACHE", Path.home() / ".cache" / "ganaug"))


class CheckpointError(ValueError):
    """A checkpoint that cannot be loaded; the message names the file and what is wrong."""


def fsync_dir(path: Path) -> None:
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
    fsync_dir(path.parent)


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
        raise CheckpointError(f"{path}: missing")
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
