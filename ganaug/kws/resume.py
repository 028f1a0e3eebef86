"""What a keyword-classifier run saves besides its weights and optimizer, and whether a checkpoint may be resumed.

SpeechBrain's ``Checkpointer`` keeps an epoch checkpoint of the model, the optimizer, the schedule, the epoch
counter and :class:`RunState` (the history and every RNG the next epoch draws from, JSON, no pickle). A
checkpoint is resumed only when its :func:`run_signature` matches (the same settings, labels and data); one a
kill cut short while saving is set aside (:func:`set_aside_damaged`); checkpoints of another run are refused
with one line (:class:`OtherRunCheckpoints`).
"""

from __future__ import annotations

import hashlib
import json
import random
import warnings
import zipfile
from pathlib import Path

import torch
from speechbrain.utils.checkpoints import mark_as_loader, mark_as_saver, register_checkpoint_hooks

__all__ = ["UNSIGNED_KEYS", "run_signature", "RunState", "set_aside_damaged", "OtherRunCheckpoints", "check_resumable"]

# hparams left out of a run's signature: where it writes, how it shows progress, CPU threads, and the
# paths whose contents are signed instead (the data's, the noise clips', the generator's, the filter's)
UNSIGNED_KEYS = ("output_folder", "device", "num_threads", "progress", "cache_dir", "data_folder", "noise_folder",
                 "eval_folder", "gan_ckpt", "gan_filter_classifier")


def run_signature(hp: dict, data, extra: str = "") -> str:
    """What a checkpoint must agree on to be resumed: the scalar hparams but :data:`UNSIGNED_KEYS`,
    the labels, the training data's fingerprint and ``extra`` (the contents of the noise clips,
    generator and filter, :func:`ganaug.kws.recipe.inputs_fingerprint`)."""
    keys = {k: v for k, v in sorted(hp.items()) if k not in UNSIGNED_KEYS and isinstance(v, (bool, int, float, str, list))}
    keys["_labels"], keys["_train"] = list(data.label_names), str(data.info.get("train_fingerprint", ""))
    keys["_extra"] = extra
    return hashlib.sha1(json.dumps(keys, sort_keys=True, default=str).encode()).hexdigest()[:16]


@register_checkpoint_hooks
class RunState:
    """What an epoch checkpoint adds to the model and optimizer: the history and every RNG the
    next epoch draws from (JSON, no pickle)."""

    def __init__(self, loader, history: list, augment):
        self.loader, self.history, self.augment = loader, history, augment

    @mark_as_saver
    def _save(self, path):
        import numpy as np

        np_state, (version, internal, gauss) = np.random.get_state(), random.getstate()
        state = {"history": self.history, "torch": torch.get_rng_state().tolist(),
                 "synthetic_rows": getattr(self.augment, "synthetic_rows", 0),
                 "cuda": [s.tolist() for s in torch.cuda.get_rng_state_all()] if torch.cuda.is_initialized() else [],
                 "python": [version, list(internal), gauss],
                 "numpy": [np_state[0], np_state[1].tolist(), *map(float, np_state[2:])],
                 "loader": self.loader.generator.get_state().tolist() if self.loader.generator is not None else None}
        Path(path).write_text(json.dumps(state))

    @mark_as_loader
    def _recover(self, path, end_of_epoch):
        import numpy as np

        del end_of_epoch
        state = json.loads(Path(path).read_text())
        self.history[:] = state["history"]
        if hasattr(self.augment, "synthetic_rows"):
            self.augment.synthetic_rows = int(state.get("synthetic_rows", 0))
        torch.set_rng_state(torch.tensor(state["torch"], dtype=torch.uint8))
        if state["cuda"] and torch.cuda.is_available():
            for device, cuda_state in enumerate(state["cuda"][: torch.cuda.device_count()]):
                torch.cuda.set_rng_state(torch.tensor(cuda_state, dtype=torch.uint8), device)
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), int(pos), int(has_gauss), cached))
        if state["loader"] is not None and self.loader.generator is not None:
            self.loader.generator.set_state(torch.tensor(state["loader"], dtype=torch.uint8))


def _intact(ckpt_dir: Path, names) -> bool:
    """Whether every file of a checkpoint folder reads back whole (SpeechBrain writes the meta first,
    so a kill while saving leaves a folder that looks like a checkpoint)."""
    import yaml

    try:
        if not isinstance(yaml.safe_load((ckpt_dir / "CKPT.yaml").read_text()), dict):
            return False
        for name in names:
            path = ckpt_dir / f"{name}.ckpt"
            if zipfile.is_zipfile(path):                  # torch.save
                with zipfile.ZipFile(path) as archive:
                    if archive.testzip() is not None:
                        return False
            elif yaml.safe_load(path.read_text()) is None:  # JSON / YAML / a number
                return False
    except (OSError, ValueError, UnicodeDecodeError, yaml.YAMLError, zipfile.BadZipFile):
        return False
    return True


def set_aside_damaged(checkpointer) -> None:
    """Rename a checkpoint a kill cut short to ``damaged+...`` with a warning naming it, so that the
    newest intact one is resumed."""
    for path in sorted(Path(checkpointer.checkpoints_dir).glob("CKPT+*")):
        if path.is_dir() and not _intact(path, checkpointer.recoverables):
            aside = path.with_name("damaged+" + path.name.split("+", 1)[1])
            path.rename(aside)
            warnings.warn(f"{path}: an incomplete checkpoint (the run was stopped while saving it), set aside as "
                          f"{aside.name}; resuming from the checkpoint before it", stacklevel=3)


class OtherRunCheckpoints(ValueError):
    """The checkpoint folder holds epochs of a classifier trained with other settings."""


def check_resumable(checkpointer, signature: str) -> None:
    ckpt_dir = checkpointer.checkpoints_dir
    for ckpt in checkpointer.list_checkpoints():
        if ckpt.meta.get("signature") != signature:
            raise OtherRunCheckpoints(f"{ckpt_dir}: holds the checkpoints of a classifier trained with other settings "
                             f"(model, recipe or data); rerun with the settings of that run to resume it, or "
                             f"use a new output folder (or delete {ckpt_dir})")
