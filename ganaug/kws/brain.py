"""The one keyword-classifier training loop: a SpeechBrain ``Brain`` + ``Checkpointer``.

:func:`train_classifier` serves ``ganaug kws`` (both trainers: ``speechbrain`` feeds it the
preloaded tensors, ``hf`` rows of a ``datasets.Dataset``), the reference classifier of the
metrics and the label-consistency filter (:mod:`ganaug.kws.reference`). Training batches go
through GanAugment (when ``gan_ckpt`` is set) and then the classic SpeechBrain ``Augmenter``
(when ``classic_augment`` is on); validation and test batches are left alone. Every epoch ends
with a checkpoint whose meta holds ``valid_acc`` and ``valid_loss``; SpeechBrain's ``Checkpointer``
keeps the best one (:func:`best_epoch_key`: accuracy, ties to the lower loss) and the newest, and
testing recovers the best. A tqdm bar counts epochs and
shows the training loss and the validation accuracy.
"""

from __future__ import annotations

import math
import tempfile

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset
from tqdm.auto import tqdm

from ganaug.models.classifier import KWSClassifier

__all__ = ["build_model", "set_epoch_lr", "accuracy_report", "AugmentPipeline", "train_classifier", "tensor_loader"]

BEST_KEY = "valid_acc"


def best_epoch_key(ckpt) -> tuple:
    """The Checkpointer's importance of an epoch: validation accuracy, ties to the lower validation loss."""
    return ckpt.meta[BEST_KEY], -ckpt.meta["valid_loss"]


def build_model(hp: dict, label_names) -> KWSClassifier:
    return KWSClassifier(label_names, sample_rate=int(hp["sample_rate"]), n_mels=int(hp["n_mels"]),
                         channels=int(hp["channels"]), num_blocks=int(hp["num_blocks"]), dropout=float(hp["dropout"]))


def set_epoch_lr(optimizer, hp: dict, epoch: int) -> float:
    """Cosine decay from ``lr`` over ``number_of_epochs`` (``epoch`` counts from 1)."""
    total = max(1, int(hp["number_of_epochs"]))
    lr = float(hp["lr"]) * 0.5 * (1 + math.cos(math.pi * (epoch - 1) / total))
    for group in optimizer.param_groups:
        group["lr"] = lr
    return lr


def make_optimizer(hp: dict):
    return lambda params: torch.optim.AdamW(params, lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]))


def accuracy_report(preds: torch.Tensor, targets: torch.Tensor, label_names) -> dict:
    """``{"acc": float, "per_label_acc": {name: float|None}, "n": int}``."""
    correct = preds == targets
    per_label = {}
    for i, name in enumerate(label_names):
        mask = targets == i
        per_label[name] = float(correct[mask].float().mean()) if mask.any() else None
    return {"acc": float(correct.float().mean()) if len(targets) else None, "per_label_acc": per_label, "n": int(len(targets))}


class AugmentPipeline:
    """GanAugment then the classic augmenter, on training batches ``(wavs, lens, labels)``.

    Counts the rows GanAugment made synthetic (replaced or appended), for results.json.
    """

    def __init__(self, gan_augment=None, classic=None):
        self.gan_augment, self.classic = gan_augment, classic
        self.synthetic_rows = 0

    def __call__(self, wavs, lens, labels):
        if self.gan_augment is not None:
            n = len(wavs)
            out_wavs, lens, labels = self.gan_augment(wavs, lens, labels)
            changed = (out_wavs[:n, : wavs.shape[1]] != wavs[:, : out_wavs.shape[1]]).any(dim=1).sum()
            self.synthetic_rows += int(changed) + max(0, len(out_wavs) - n)
            wavs = out_wavs
        if self.classic is not None:
            wavs, lens = self.classic(wavs, lens)
            labels = self.classic.replicate_labels(labels)
        return wavs, lens, labels


def _brain_class():
    import speechbrain as sb

    class KWSBrain(sb.Brain):
        """Keyword classification Brain: batches are ``(wavs, labels)`` of fixed-length clips."""

        def compute_forward(self, batch, stage):
            wavs, labels = batch[0].to(self.device), batch[1].to(self.device)
            if stage == sb.Stage.TRAIN and self.hparams.augment is not None:
                lens = torch.ones(len(wavs), device=self.device)
                wavs, lens, labels = self.hparams.augment(wavs, lens, labels)
            return self.modules.model(wavs), labels

        def compute_objectives(self, predictions, batch, stage):
            logits, labels = predictions
            if stage != sb.Stage.TRAIN:
                self.preds.append(logits.argmax(dim=1).cpu())
                self.targets.append(labels.cpu())
            return F.cross_entropy(logits, labels)

        def on_evaluate_start(self, max_key=None, min_key=None):
            self.checkpointer.recover_if_possible(importance_key=best_epoch_key)   # the best epoch

        def on_stage_start(self, stage, epoch=None):
            self.preds, self.targets = [], []
            if stage == sb.Stage.TRAIN and epoch is not None:
                set_epoch_lr(self.optimizer, self.hparams.config, epoch)

        def on_stage_end(self, stage, stage_loss, epoch=None):
            if stage == sb.Stage.TRAIN:
                self.train_loss = float(stage_loss)
                return
            self.last_report = accuracy_report(torch.cat(self.preds), torch.cat(self.targets), self.hparams.label_names)
            if stage == sb.Stage.VALID:
                acc = self.last_report["acc"]
                self.history.append({"epoch": epoch, "train_loss": self.train_loss,
                                     "valid_loss": float(stage_loss), "valid_acc": acc})
                self.checkpointer.save_and_keep_only(meta={BEST_KEY: acc, "valid_loss": float(stage_loss), "epoch": epoch},
                                                     importance_keys=[best_epoch_key])
                self.bar.update(1)
                self.bar.set_postfix(loss=f"{self.train_loss:.3f}", valid_acc=f"{acc:.3f}")

    return KWSBrain


def tensor_loader(wavs, labels, batch_size, shuffle=False, seed=0) -> DataLoader:
    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(TensorDataset(wavs, labels), batch_size=batch_size, shuffle=shuffle, generator=gen)


def train_classifier(hp: dict, data, augment=None, train_loader=None, progress: bool = True,
                     desc: str = "kws") -> dict:
    """Train a :class:`KWSClassifier` on ``data`` (a :class:`ganaug.kws.data.KWSData`) and test the best epoch.

    Args:
        hp: the resolved kws hparams (model size, ``number_of_epochs``, ``batch_size``, ``lr``,
            ``weight_decay``, ``device``, ``seed``).
        augment: ``(wavs, lens, labels) -> (wavs, lens, labels)`` for training batches, or None.
        train_loader: batches ``(wavs, labels)`` to train on; default: ``data.train`` shuffled.
        progress: show the per-epoch bar (loss, validation accuracy).
    Returns ``{"model" (CPU, eval mode, best epoch), "best_epoch", "valid_acc", "history", "test", "eval"?}``.
    """
    from speechbrain.utils.checkpoints import Checkpointer
    from speechbrain.utils.epoch_loop import EpochCounter

    batch_size, epochs = int(hp["batch_size"]), int(hp["number_of_epochs"])
    if train_loader is None:
        train_loader = tensor_loader(*data.train, batch_size, True, hp["seed"])
    model = build_model(hp, data.label_names)
    counter = EpochCounter(epochs)
    with tempfile.TemporaryDirectory(prefix="ganaug-kws-checkpoints-") as ckpt_dir, \
            tqdm(total=epochs, desc=desc, unit="epoch", disable=not progress) as bar:
        brain = _brain_class()(
            modules={"model": model},
            opt_class=make_optimizer(hp),
            hparams={"augment": augment, "label_names": data.label_names, "config": hp},
            run_opts={"device": str(hp["device"]), "noprogressbar": True, "ckpt_interval_minutes": 0},
            checkpointer=Checkpointer(ckpt_dir, recoverables={"model": model, "counter": counter}),
        )
        brain.history, brain.train_loss, brain.bar = [], float("nan"), bar
        brain.fit(counter, train_loader, tensor_loader(*data.valid, batch_size))
        best = brain.checkpointer.find_checkpoint(importance_key=best_epoch_key)
        reports = {}
        for name, split in (("test", data.test), ("eval", data.eval)):
            if split is not None:
                brain.evaluate(tensor_loader(*split, batch_size))  # recovers the best epoch first
                reports[name] = brain.last_report
        if not reports:
            brain.checkpointer.recover_if_possible(importance_key=best_epoch_key)
    model = brain.modules.model.to("cpu").eval()
    return {"model": model, "best_epoch": best.meta["epoch"], "valid_acc": best.meta[BEST_KEY],
            "history": brain.history, **reports}
