"""The SpeechBrain trainer of ``ganaug kws``: a ``Brain`` over preloaded speaker-disjoint splits.

Training batches go through GanAugment (when ``gan_ckpt`` is set) and then the classic
SpeechBrain ``Augmenter`` (when ``classic_augment`` is on); validation and test batches are left
alone. The weights of the best validation epoch are kept.
"""

from __future__ import annotations

import copy
import math

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader, TensorDataset

from ganaug.models.classifier import KWSClassifier

__all__ = ["build_model", "set_epoch_lr", "predict", "accuracy_report", "AugmentPipeline", "train_speechbrain"]


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


@torch.no_grad()
def predict(model, wavs: torch.Tensor, batch_size: int, device) -> torch.Tensor:
    """Predicted label indices of ``wavs (N, T)`` (model in eval mode)."""
    model.eval()
    out = [model(wavs[i:i + batch_size].to(device)).argmax(dim=1).cpu() for i in range(0, len(wavs), batch_size)]
    return torch.cat(out) if out else torch.empty(0, dtype=torch.long)


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
            if stage == sb.Stage.TRAIN:
                lens = torch.ones(len(wavs), device=self.device)
                wavs, lens, labels = self.hparams.augment(wavs, lens, labels)
            return self.modules.model(wavs), labels

        def compute_objectives(self, predictions, batch, stage):
            logits, labels = predictions
            if stage != sb.Stage.TRAIN:
                self.preds.append(logits.argmax(dim=1).cpu())
                self.targets.append(labels.cpu())
            return F.cross_entropy(logits, labels)

        def on_stage_start(self, stage, epoch=None):
            self.preds, self.targets = [], []
            if stage == sb.Stage.TRAIN and epoch is not None:
                set_epoch_lr(self.optimizer, self.hparams.config, epoch)

        def on_stage_end(self, stage, stage_loss, epoch=None):
            if stage == sb.Stage.TRAIN:
                self.train_loss = stage_loss
                return
            preds, targets = torch.cat(self.preds), torch.cat(self.targets)
            self.last_report = accuracy_report(preds, targets, self.hparams.label_names)
            if stage == sb.Stage.VALID:
                acc = self.last_report["acc"]
                self.history.append({"epoch": epoch, "train_loss": float(self.train_loss),
                                     "valid_loss": float(stage_loss), "valid_acc": acc})
                if self.best is None or acc > self.best[0]:
                    self.best = (acc, epoch, copy.deepcopy(self.modules.model.state_dict()))

    return KWSBrain


def _loader(wavs, labels, batch_size, shuffle=False, seed=0):
    gen = torch.Generator().manual_seed(int(seed))
    return DataLoader(TensorDataset(wavs, labels), batch_size=batch_size, shuffle=shuffle, generator=gen)


def train_speechbrain(hp: dict, data, augment: AugmentPipeline) -> dict:
    """Train with a SpeechBrain Brain; returns ``{"model", "valid", "test", "eval", "history", ...}``."""
    from speechbrain.utils.epoch_loop import EpochCounter

    batch_size = int(hp["batch_size"])
    model = build_model(hp, data.label_names)
    brain = _brain_class()(
        modules={"model": model},
        opt_class=make_optimizer(hp),
        hparams={"augment": augment, "label_names": data.label_names, "config": hp},
        run_opts={"device": str(hp["device"]), "noprogressbar": True},
    )
    brain.history, brain.best, brain.train_loss = [], None, float("nan")
    brain.fit(EpochCounter(int(hp["number_of_epochs"])), _loader(*data.train, batch_size, True, hp["seed"]),
              _loader(*data.valid, batch_size))
    best_acc, best_epoch, state = brain.best
    brain.modules.model.load_state_dict(state)
    reports = {}
    for name, split in (("test", data.test), ("eval", data.eval)):
        if split is not None:
            brain.evaluate(_loader(*split, batch_size))
            reports[name] = brain.last_report
    model = brain.modules.model.to("cpu").eval()
    return {"model": model, "best_epoch": best_epoch, "valid_acc": best_acc, "history": brain.history, **reports}
