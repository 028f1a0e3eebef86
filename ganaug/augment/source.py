"""Where synthetic clips come from: generator checkpoints, matched to labels by name.

A *source* has ``label_names``, ``sample_rate``, ``num_samples``, ``fingerprint()`` and
``generate(names, seeds, device=None) -> (n, num_samples)`` float32 in [-1, 1]: row ``i`` is a
pure function of ``(names[i], seeds[i])``, whatever the batch around it. :class:`GeneratorSource`
runs G; :class:`ganaug.augment.bank.SyntheticBank` draws pre-generated clips with the same call.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

import torch

from ganaug.checkpoint import (CONFIG_FILE, WEIGHTS_FILE, CheckpointError, find_checkpoints, is_checkpoint,
                               load_generator, read_config)
from ganaug.functional import sample_latents

__all__ = ["GeneratorSource", "make_source", "row_generator", "mix_seed"]

MAX_SEED = 2**62


def mix_seed(*parts) -> int:
    """A 62-bit seed that is a pure function of ``parts`` (ints or strings), stable across runs."""
    digest = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % MAX_SEED


def row_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


class GeneratorSource:
    """Clips of given label names from generator checkpoints.

    Args:
        ckpt: a conditional checkpoint directory, a per-keyword run folder (``<run>/<label>/``),
            or ``{label: checkpoint_dir}``.

    Configs are read (and checked) at once; weights load on first use, once per process: a
    pickled source (e.g. sent to a DataLoader worker) carries paths, never weights.
    """

    def __init__(self, ckpt):
        if isinstance(ckpt, dict):
            if not ckpt:
                raise ValueError("ckpt={}: give at least one {label: checkpoint_dir} entry")
            entries = {str(label): Path(path) for label, path in ckpt.items()}
            self.kind = "per_label"
        elif isinstance(ckpt, (str, os.PathLike)):
            path = Path(ckpt)
            if not path.is_dir():
                raise CheckpointError(f"ckpt={str(ckpt)!r}: no such directory; give a checkpoint directory written "
                                      f"by `ganaug train`, a per-keyword run folder, or {{label: dir}}")
            if (path / CONFIG_FILE).is_file():
                entries, self.kind = {None: path}, "conditional"
            elif find_checkpoints(path):
                entries, self.kind = find_checkpoints(path), "per_label"
            else:
                read_config(path)  # raises: not a checkpoint directory
                raise AssertionError("unreachable")
        else:
            raise TypeError(f"ckpt={ckpt!r}: expected a checkpoint directory (str or Path) or {{label: dir}}, "
                            f"got {type(ckpt).__name__}")
        self.entries: dict[str, tuple[Path, int | None]] = {}  # label -> (dir, index in G or None)
        configs = {}
        for label, path in entries.items():
            config = read_config(path)
            if not (path / WEIGHTS_FILE).is_file():
                raise CheckpointError(f"{path / WEIGHTS_FILE}: missing; the checkpoint is incomplete "
                                      f"(copy the whole directory written by `ganaug train`)")
            configs[str(path)] = config
            names = config.get("label_names")
            if label is None:  # one conditional checkpoint
                if not names:
                    raise CheckpointError(
                        f"{path}: an unconditional generator cannot make clips of a given label; pass "
                        f"{{label: dir}} of per-keyword checkpoints, or train a conditional one")
                for i, name in enumerate(names):
                    self.entries[str(name)] = (path, i)
            elif names is None:
                self.entries[label] = (path, None)
            elif label in names:
                self.entries[label] = (path, names.index(label))
            else:
                raise CheckpointError(f"{path}: a generator of labels {names}, not of {label!r}; "
                                      f"fix the {{label: dir}} mapping")
        rates = {(c.get("sample_rate", 16000), c.get("num_samples")) for c in configs.values()}
        if len(rates) != 1:
            raise CheckpointError(f"ckpt={ckpt!r}: the checkpoints differ in (sample_rate, num_samples) {sorted(rates)}; "
                                  f"use generators trained at one rate and length")
        self.sample_rate, self.num_samples = (int(v) for v in rates.pop())
        self.configs = configs
        self.label_names = list(self.entries)
        self._models: dict[str, torch.nn.Module] = {}

    # -- pickling: paths travel, weights do not --------------------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_models"] = {}
        return state

    def fingerprint(self) -> str:
        """Stable id of the checkpoints' configs and weight files (size, mtime)."""
        h = hashlib.sha1()
        for label, (path, index) in self.entries.items():
            st = os.stat(path / WEIGHTS_FILE)
            h.update(f"{label}|{index}|{st.st_size}|{st.st_mtime_ns}|".encode())
            h.update(json.dumps(self.configs[str(path)], sort_keys=True).encode())
        return h.hexdigest()[:16]

    def load(self, device=None) -> "GeneratorSource":
        """Load every generator now (to surface a bad checkpoint early) onto ``device``."""
        for path, _ in self.entries.values():
            self._model(path, device)
        return self

    def _model(self, path: Path, device) -> torch.nn.Module:
        model = self._models.get(str(path))
        if model is None:
            model = self._models[str(path)] = load_generator(path)
        if device is not None and next(model.parameters()).device != torch.device(device):
            model.to(device)
        return model

    def generate(self, names, seeds, device=None) -> torch.Tensor:
        """``(len(names), num_samples)`` float32 clips on ``device``; row i depends only on (names[i], seeds[i])."""
        names, seeds = list(names), [int(s) for s in seeds]
        if len(names) != len(seeds):
            raise ValueError(f"got {len(names)} names and {len(seeds)} seeds; give one seed per clip")
        unknown = sorted({n for n in names if n not in self.entries})
        if unknown:
            raise ValueError(f"labels {unknown} are not known to this generator; it knows {self.label_names}")
        groups: dict[str, list[int]] = {}
        for row, name in enumerate(names):
            groups.setdefault(str(self.entries[name][0]), []).append(row)
        out = None
        for path_str, rows in groups.items():
            model = self._model(Path(path_str), device)
            model_device = next(model.parameters()).device
            z = torch.cat([sample_latents(1, model.latent_dim, row_generator(seeds[r])) for r in rows]).to(model_device)
            index = [self.entries[names[r]][1] for r in rows]
            labels = None if index[0] is None else torch.tensor(index, device=model_device)
            clips = model.synthesize(z, labels)  # waveforms, whatever the family
            if out is None:
                out = torch.empty(len(names), clips.shape[-1], device=model_device)
            out[torch.tensor(rows, device=model_device)] = clips
        if out is None:
            return torch.empty(0, self.num_samples, device=device)
        return out if device is None else out.to(device)


def make_source(ckpt=None, bank=None):
    """A :class:`GeneratorSource`, or a :class:`SyntheticBank` when ``bank`` is given or ``ckpt`` is one."""
    from ganaug.augment.bank import SyntheticBank, is_bank

    if bank is not None:
        return bank if isinstance(bank, SyntheticBank) else SyntheticBank(bank)
    if isinstance(ckpt, (SyntheticBank, GeneratorSource)):
        return ckpt
    if ckpt is None:
        raise ValueError("give ckpt= (a checkpoint directory, a per-keyword run folder or {label: dir}) or bank=")
    if isinstance(ckpt, (str, os.PathLike)) and is_bank(ckpt) and not is_checkpoint(ckpt):
        return SyntheticBank(ckpt)
    return GeneratorSource(ckpt)
