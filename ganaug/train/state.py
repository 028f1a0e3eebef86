"""Training state on disk: everything resume needs, as safetensors + JSON (no pickle).

Each checkpoint is a folder ``<ckpt_dir>/train_state/step_<N>/`` with

- ``state.safetensors``: G and D weights, the EMA of G, every tensor of both optimizers
  (flattened to ``opt_G.<param index>.<name>``) and each process's RNG states as uint8 tensors;
- ``state.json``: step, optimizer ``param_groups`` and non-tensor state, the run signature
  (settings that must not change on resume), and the SHA-256 of ``state.safetensors``.

The folder is written under a temporary name and renamed when complete, and ``state.json`` is
written last, so a folder named ``step_<N>`` is complete unless something damaged it later;
the checksum catches that. ``load_latest`` walks back from the newest folder to the newest one
that verifies, and reports every one it skips.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import time
import warnings
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ganaug.io import CheckpointError, file_sha256, fsync_dir, read_versioned_json

__all__ = ["STATE_DIR", "save_state", "load_latest", "list_states", "flatten_optimizer",
           "unflatten_optimizer", "prefixed", "unprefixed", "check_signature"]

STATE_DIR = "train_state"
STATE_FORMAT = 1
TENSORS_FILE = "state.safetensors"
META_FILE = "state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


def _fsync(path: Path) -> None:
    with open(path, "rb") as f:
        os.fsync(f.fileno())


# -- packing: module and optimizer state dicts <-> flat tensors + JSON --------------------------
def prefixed(prefix: str, state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    return {f"{prefix}.{k}": v for k, v in state.items()}


def unprefixed(prefix: str, tensors: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    start = len(prefix) + 1
    return {k[start:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}


def flatten_optimizer(optimizer: torch.optim.Optimizer, prefix: str) -> tuple[dict, dict]:
    """``(tensors, meta)``: tensor state as ``<prefix>.<param index>.<name>``, the rest JSON-able."""
    sd = optimizer.state_dict()
    tensors, other = {}, {}
    for index, entry in sd["state"].items():
        for name, value in entry.items():
            if torch.is_tensor(value):
                tensors[f"{prefix}.{index}.{name}"] = value
            else:
                other.setdefault(str(index), {})[name] = value
    return tensors, {"param_groups": sd["param_groups"], "state": other}


def unflatten_optimizer(optimizer: torch.optim.Optimizer, prefix: str, tensors: dict, meta: dict) -> None:
    """Inverse of :func:`flatten_optimizer`, loaded into ``optimizer``."""
    state: dict[int, dict] = {}
    for key, value in unprefixed(prefix, tensors).items():
        index, _, name = key.partition(".")
        state.setdefault(int(index), {})[name] = value
    for index, entry in meta["state"].items():
        state.setdefault(int(index), {}).update(entry)
    groups = []
    for saved, current in zip(meta["param_groups"], optimizer.state_dict()["param_groups"]):
        # JSON turned tuples (Adam's betas) into lists; give them back their type
        groups.append({k: tuple(v) if isinstance(current.get(k), tuple) else v for k, v in saved.items()})
    if len(groups) != len(optimizer.param_groups):
        raise CheckpointError(f"{prefix}: saved {len(groups)} parameter groups, the optimizer has {len(optimizer.param_groups)}")
    optimizer.load_state_dict({"state": state, "param_groups": groups})


def check_signature(saved: dict, current: dict, where: Path) -> None:
    """Resume only into the same run: the settings in ``current`` must equal the saved ones."""
    current = json.loads(json.dumps(current))   # compare as stored: tuples become lists
    changed = sorted(k for k in set(saved) | set(current) if saved.get(k) != current.get(k))
    if changed:
        detail = "; ".join(f"{k}: saved {saved.get(k)!r}, now {current.get(k)!r}" for k in changed)
        raise CheckpointError(
            f"{where} holds a run with other settings ({detail}). Resume with the same settings, or give a "
            f"new --output_folder (max_steps, intervals and device may change between runs)"
        )


# -- folders -----------------------------------------------------------------------------------
def list_states(ckpt_dir: str | Path) -> list[tuple[int, Path]]:
    """``[(step, folder)]`` of the step folders, newest first (complete or not: see ``load_latest``)."""
    root = Path(ckpt_dir) / STATE_DIR
    if not root.is_dir():
        return []
    found = [(int(m.group(1)), d) for d in root.iterdir() if d.is_dir() and (m := _STEP_DIR.match(d.name))]
    return sorted(found, reverse=True)


def save_state(ckpt_dir: str | Path, step: int, tensors: dict[str, torch.Tensor], meta: dict,
               keep: int = 3) -> Path:
    """Write step ``step``'s state atomically and keep the newest ``keep`` folders."""
    root = Path(ckpt_dir) / STATE_DIR
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:09d}"
    tmp = root / f".tmp_step_{step:09d}_{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    clean = {k: v.detach().to("cpu").contiguous() for k, v in tensors.items()}
    save_file(clean, str(tmp / TENSORS_FILE))
    _fsync(tmp / TENSORS_FILE)
    meta = {**meta, "format_version": STATE_FORMAT, "step": step, "saved_at": time.time(),
            "sha256": file_sha256(tmp / TENSORS_FILE)}
    with open(tmp / META_FILE, "w") as f:
        json.dump(meta, f, indent=1, sort_keys=True)
        f.flush()
        os.fsync(f.fileno())
    fsync_dir(tmp)
    if final.exists():  # re-saving a step whose earlier copy was found damaged
        trash = root / f".trash_{final.name}_{os.getpid()}"
        os.replace(final, trash)
        shutil.rmtree(trash, ignore_errors=True)
    os.replace(tmp, final)
    fsync_dir(root)
    for _, old in list_states(ckpt_dir)[max(keep, 1):]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def remove_partial(ckpt_dir: str | Path) -> None:
    """Delete temporary folders left by a process killed while saving."""
    root = Path(ckpt_dir) / STATE_DIR
    if root.is_dir():
        for d in root.iterdir():
            if d.name.startswith((".tmp_step_", ".trash_")):
                shutil.rmtree(d, ignore_errors=True)


def _load_one(folder: Path, device) -> tuple[dict, dict]:
    meta_path, tensors_path = folder / META_FILE, folder / TENSORS_FILE
    meta = read_versioned_json(meta_path, STATE_FORMAT, "the save did not complete")
    if not tensors_path.is_file():
        raise CheckpointError(f"{tensors_path}: missing")
    if file_sha256(tensors_path) != meta.get("sha256"):
        raise CheckpointError(f"{tensors_path}: checksum does not match {META_FILE} (truncated or corrupted)")
    try:
        tensors = load_file(str(tensors_path), device=str(device))
    except Exception as err:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{tensors_path}: cannot be read ({err})") from err
    return tensors, meta


def load_latest(ckpt_dir: str | Path, device="cpu", quarantine: bool = True) -> tuple[dict, dict] | None:
    """``(tensors, meta)`` of the newest complete, intact checkpoint, or ``None`` if there is none.

    Every damaged folder on the way is reported with a warning naming the file; with
    ``quarantine`` it is renamed ``step_<N>.damaged`` so it is neither loaded nor pruned again.
    """
    damaged = []
    result = None
    for step, folder in list_states(ckpt_dir):
        try:
            result = _load_one(folder, device)
            break
        except CheckpointError as err:
            damaged.append(folder)
            warnings.warn(f"checkpoint at step {step} is unusable: {err}; trying an older one", stacklevel=2)
    if result is None and damaged:
        warnings.warn(f"{Path(ckpt_dir) / STATE_DIR}: no intact checkpoint left; training starts from step 0", stacklevel=2)
    elif result is not None and damaged:
        warnings.warn(f"resuming {ckpt_dir} from step {result[1]['step']} (older intact checkpoint)", stacklevel=2)
    if quarantine:
        for folder in damaged:
            target = folder.with_name(folder.name + ".damaged")
            shutil.rmtree(target, ignore_errors=True)
            try:
                os.replace(folder, target)
            except OSError:
                pass
    return result
