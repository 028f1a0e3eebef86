"""Training state on disk: everything resume needs, as safetensors + JSON (no pickle).

Each checkpoint is a folder ``<ckpt_dir>/train_state/step_<N>/`` with

- ``state.safetensors``: G and D weights, the EMA of G, every tensor of both optimizers
  (flattened to ``opt_G.<param index>.<name>``) and each process's RNG states as uint8 tensors;
- ``state.json``: step, optimizer ``param_groups`` and non-tensor state, the run signature
  (settings that must not change on resume), and the SHA-256 of ``state.safetensors``;
- with both, the stats row in progress (running sums ``stats.<rank>.<term>`` and ``stats_counts``).

The folder is written under a temporary name and renamed when complete, and ``state.json`` is
written last, so a folder named ``step_<N>`` is complete unless something damaged it later;
the checksum catches that. ``load_latest`` walks back from the newest folder to the newest one
that verifies (checksum, and a ``state.json`` whose fields have the types resume needs), and
reports every one it skips. Temp folders carry the writer's pid; ``remove_partial`` deletes
those of writers that are no longer alive.
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
from safetensors.torch import load_file

from ganaug.io import (CheckpointError, atomic_write_json, file_sha256, fsync_dir, fsync_file, read_versioned_json,
                       remove_stale, save_tensors, write_error)

__all__ = ["STATE_DIR", "save_state", "load_latest", "peek_latest", "list_states", "flatten_optimizer",
           "unflatten_optimizer", "prefixed", "unprefixed", "pack_running", "unpack_running", "run_signature",
           "check_signature"]

STATE_DIR = "train_state"
STATE_FORMAT = 1
TENSORS_FILE = "state.safetensors"
META_FILE = "state.json"
_STEP_DIR = re.compile(r"^step_(\d+)$")


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


def pack_running(totals: dict[str, torch.Tensor], counts: dict[str, int], gather) -> tuple[dict, dict]:
    """The stats row in progress, so a resumed run writes the row an uninterrupted one would:
    every process's running sums since the last row as ``stats.<rank>.<term>`` (``gather`` is
    ``Dist.gather`` bound to the device) and ``{"stats_counts": {term: terms summed}}`` for ``state.json``."""
    tensors = {f"stats.{rank}.{key}": total for key in sorted(totals) for rank, total in enumerate(gather(totals[key]))}
    return tensors, {"stats_counts": dict(counts)}


def unpack_running(tensors: dict, meta: dict, rank: int, device) -> tuple[dict, dict]:
    """``(totals, counts)`` of :func:`pack_running` for process ``rank`` (empty for a state saved before them)."""
    totals = {key: value.to(device) for key, value in unprefixed(f"stats.{rank}", tensors).items()}
    counts = dict(meta.get("stats_counts") or {})
    return (totals, counts) if set(totals) == set(counts) else ({}, {})


def run_signature(opts, generator, critic) -> dict:
    """The settings a resumed run must share with the saved one: the options' ``signature()``, the
    model family, both constructors' kwargs and the data fingerprint (as ``train_gan`` records them)."""
    return {**opts.signature(), "family": generator.family, "generator": generator.config(),
            "critic": critic.config(), "data_fingerprint": opts.metadata.get("data_fingerprint")}


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
    final = root / f"step_{step:09d}"
    tmp = root / f".tmp_step_{step:09d}_{os.getpid()}"
    try:
        root.mkdir(parents=True, exist_ok=True)
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir()
        save_tensors(tmp / TENSORS_FILE, tensors)
        fsync_file(tmp / TENSORS_FILE)
        meta = {**meta, "format_version": STATE_FORMAT, "step": step, "saved_at": time.time(),
                "sha256": file_sha256(tmp / TENSORS_FILE)}
        atomic_write_json(tmp / META_FILE, meta)
        fsync_dir(tmp)
    except OSError as err:
        shutil.rmtree(tmp, ignore_errors=True)
        raise write_error(err, root) from err
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
    """Delete temporary folders left by processes killed while saving (their pid is in the name)."""
    root = Path(ckpt_dir) / STATE_DIR
    if root.is_dir():
        remove_stale(root, r"\.(?:tmp|trash)_step_\d+(?:\.damaged)?_(?P<pid>\d+)")


def _check_meta(path: Path, meta: dict, step: int) -> None:
    """The fields resume reads, with the types it needs: a malformed ``state.json`` is a damaged checkpoint."""
    def bad(what):
        raise CheckpointError(f"{path}: {what}; the file is damaged")

    def is_int(value):
        return isinstance(value, int) and not isinstance(value, bool)

    if not is_int(meta.get("step")) or meta["step"] != step:
        bad(f"'step' is {meta.get('step')!r}, expected {step} (the folder's step)")
    if not isinstance(meta.get("sha256"), str):
        bad("no 'sha256' of the tensors")
    if not isinstance(meta.get("signature"), dict):
        bad("no 'signature' (the run's settings)")
    for key in ("opt_G", "opt_D"):
        opt = meta.get(key)
        groups = opt.get("param_groups") if isinstance(opt, dict) else None
        if not isinstance(groups, list) or not groups or not isinstance(opt.get("state"), dict) or not all(
                isinstance(g, dict) and isinstance(g.get("params"), list) and all(map(is_int, g["params"]))
                for g in groups) or not all(isinstance(v, dict) for v in opt["state"].values()):
            bad(f"{key!r} is missing or malformed (optimizer param_groups and state)")
    counts = meta.get("stats_counts", {})
    if not isinstance(counts, dict) or not all(map(is_int, counts.values())):
        bad(f"'stats_counts' is {counts!r}, expected {{term: count}}")
    if "world_size" in meta and (not is_int(meta["world_size"]) or meta["world_size"] < 1):
        bad(f"'world_size' is {meta['world_size']!r}, expected a positive integer")
    if not isinstance(meta.get("train_seconds", 0.0), (int, float)) or isinstance(meta.get("train_seconds"), bool):
        bad(f"'train_seconds' is {meta['train_seconds']!r}, expected a number")


def _load_one(folder: Path, step: int, device) -> tuple[dict, dict]:
    meta_path, tensors_path = folder / META_FILE, folder / TENSORS_FILE
    meta = read_versioned_json(meta_path, STATE_FORMAT, "the save did not complete")
    _check_meta(meta_path, meta, step)
    if not tensors_path.is_file():
        raise CheckpointError(f"{tensors_path}: missing")
    if file_sha256(tensors_path) != meta.get("sha256"):
        raise CheckpointError(f"{tensors_path}: checksum does not match {META_FILE} (truncated or corrupted)")
    try:
        tensors = load_file(str(tensors_path), device=str(device))
    except Exception as err:  # safetensors raises several types for damaged files
        raise CheckpointError(f"{tensors_path}: cannot be read ({err})") from err
    return tensors, meta


def peek_latest(ckpt_dir: str | Path) -> dict | None:
    """``state.json`` of the newest intact checkpoint (checksum verified, tensors not loaded), or ``None``.

    Reads only: nothing is reported, renamed or written (``load_latest`` does that when training starts).
    """
    for step, folder in list_states(ckpt_dir):
        try:
            meta = read_versioned_json(folder / META_FILE, STATE_FORMAT)
            _check_meta(folder / META_FILE, meta, step)
            if (folder / TENSORS_FILE).is_file() and file_sha256(folder / TENSORS_FILE) == meta["sha256"]:
                return meta
        except (CheckpointError, OSError):
            continue
    return None


def load_latest(ckpt_dir: str | Path, device="cpu", quarantine: bool = True) -> tuple[dict, dict] | None:
    """``(tensors, meta)`` of the newest complete, intact checkpoint, or ``None`` if there is none.

    Every damaged folder on the way is reported with a warning naming the file; with
    ``quarantine`` it is renamed ``step_<N>.damaged`` so it is neither loaded nor pruned again.
    """
    damaged = []
    result = None
    for step, folder in list_states(ckpt_dir):
        try:
            result = _load_one(folder, step, device)
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
