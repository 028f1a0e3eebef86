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

Synthetic rows carry a mask from the augmentation; how they are learnt from (loss weight, soft targets,
separate batch-norm statistics, a domain-adversarial head) is :mod:`ganaug.kws.synthetic`.

Given a ``checkpoint_dir`` (``ganaug kws`` uses ``<output_folder>/save``), the checkpoints stay
there and a run killed at any moment resumes from its newest epoch when rerun: weights, optimizer,
schedule, epoch counter, the history and the random state the next epoch draws from (torch, CUDA,
Python, NumPy and the training loader's shuffle), so on CPU a resumed run without GAN rows or
background noise ends with the same weights as an uninterrupted one. Checkpoints of another setting
(model, recipe, data) are refused with one line rather than resumed (:mod:`ganaug.kws.resume`).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

import speechbrain as sb
import torch
import torch.nn.functional as F
from speechbrain.utils.checkpoints import Checkpointer
from speechbrain.utils.epoch_loop import EpochCounter
from torch.utils.data import DataLoader, RandomSampler, TensorDataset
from tqdm.auto import tqdm

from ganaug.kws.calibrate import fit_temperature, logits_of
from ganaug.kws.resume import RunState, check_resumable, run_signature, set_aside_damaged
from ganaug.kws.synthetic import DomainHead, running_stats_frozen, synthetic_loss
from ganaug.models.classifier import KWSClassifier

__all__ = ["build_model", "accuracy_report", "AugmentPipeline", "KWSBrain", "train_classifier", "tensor_loader",
           "train_loader"]

BEST_KEY = "valid_acc"


def best_epoch_key(ckpt) -> tuple:
    """The Checkpointer's importance of an epoch: validation accuracy, ties to the lower validation loss."""
    return ckpt.meta[BEST_KEY], -ckpt.meta["valid_loss"]


def build_model(hp: dict, label_names) -> KWSClassifier:
    return KWSClassifier(label_names, sample_rate=int(hp["sample_rate"]), n_mels=int(hp["n_mels"]),
                         channels=int(hp["channels"]), num_blocks=int(hp["num_blocks"]), dropout=float(hp["dropout"]),
                         model=str(hp["model"]), tau=int(hp["tau"]))


def make_optimizer(hp: dict):
    """AdamW; the Brain puts norm and bias parameters in a group without weight decay (SpeechBrain's
    ``remove_vector_weight_decay``)."""
    return lambda params: torch.optim.AdamW(params, lr=float(hp["lr"]), weight_decay=float(hp["weight_decay"]))


def total_steps(hp: dict, loader) -> int:
    return int(hp["number_of_epochs"]) * len(loader)


def make_scheduler(optimizer, hp: dict, steps: int):
    """Linear warmup over ``warmup_fraction`` of the ``steps`` optimizer steps, then a cosine to 0, stepped per batch."""
    from torch.optim.lr_scheduler import CosineAnnealingLR, LinearLR, SequentialLR

    warmup = min(steps - 1, int(round(float(hp["warmup_fraction"]) * steps)))
    cosine = CosineAnnealingLR(optimizer, T_max=max(1, steps - warmup))
    if warmup <= 0:
        return cosine
    return SequentialLR(optimizer, [LinearLR(optimizer, start_factor=1.0 / warmup, total_iters=warmup), cosine],
                        milestones=[warmup])


def accuracy_report(preds: torch.Tensor, targets: torch.Tensor, label_names) -> dict:
    """``{"acc": float, "per_label_acc": {name: float|None}, "n": int, "predictions": [int], "targets": [int]}``
    (the per-clip predictions, in the split's order, for paired comparisons between runs)."""
    correct = preds == targets
    per_label = {}
    for i, name in enumerate(label_names):
        mask = targets == i
        per_label[name] = float(correct[mask].float().mean()) if mask.any() else None
    return {"acc": float(correct.float().mean()) if len(targets) else None, "per_label_acc": per_label,
            "n": int(len(targets)), "predictions": preds.tolist(), "targets": targets.tolist()}


class AugmentPipeline:
    """GanAugment then the classic augmenter, on training batches: ``(wavs, lens, labels) -> (wavs, lens,
    labels, synthetic, soft)``, ``synthetic`` the bool mask of the rows GanAugment made synthetic and ``soft``
    their target distributions (the filter's posteriors of the clean clips, with ``soft_labels``; else None).
    ``injection``: a :class:`ganaug.kws.injection.Injection`. Counts the synthetic rows, for results.json."""

    def __init__(self, injection=None, classic=None):
        self.injection, self.classic = injection, classic
        self.gan_augment = getattr(injection, "augment", None)
        self.synthetic_rows = 0

    def __call__(self, wavs, lens, labels):
        synthetic, soft = torch.zeros(len(wavs), dtype=torch.bool, device=wavs.device), None
        if self.gan_augment is not None:
            wavs, lens, labels, synthetic = self.gan_augment(wavs, lens, labels, return_synthetic=True)
            self.synthetic_rows += int(synthetic.sum())
            if self.injection.soft_filter is not None:
                soft = self.injection.soft_targets(wavs[synthetic])
        if self.classic is not None:
            wavs, lens = self.classic(wavs, lens)
            labels, synthetic = self.classic.replicate_labels(labels), self.classic.replicate_labels(synthetic)
            soft = None if soft is None else self.classic.replicate_labels(soft)
        return wavs, lens, labels, synthetic, soft


class KWSBrain(sb.Brain):
    """Keyword classification Brain: batches are ``(wavs, labels)`` of fixed-length clips; training batches
    go through ``hparams.augment`` (which marks its synthetic rows) and SpecAugment on the features."""

    def compute_forward(self, batch, stage):
        wavs, labels = batch[0].to(self.device), batch[1].to(self.device)
        model, out = self.modules.model, {"synthetic": None, "soft": None}
        if stage == sb.Stage.TRAIN and self.hparams.augment is not None:
            lens = torch.ones(len(wavs), device=self.device)
            wavs, lens, labels, out["synthetic"], out["soft"] = self.hparams.augment(wavs, lens, labels)
        feats = model.fbank(wavs)
        if stage == sb.Stage.TRAIN and self.hparams.spec_augment is not None:
            feats = self.hparams.spec_augment(feats)
        synthetic = out["synthetic"]
        if (stage == sb.Stage.TRAIN and synthetic is not None and bool(synthetic.any())
                and self.hparams.config["synthetic_bn"] == "separate"):
            emb = feats.new_empty((len(feats), model.embedding_dim))
            emb[~synthetic] = model.embed_features(feats[~synthetic])
            with running_stats_frozen(model):        # synthetic rows: their own batch statistics, never the running ones
                emb[synthetic] = model.embed_features(feats[synthetic])
        else:
            emb = model.embed_features(feats)
        return {**out, "logits": model.head(model.dropout(emb)), "labels": labels, "embeddings": emb}

    def compute_objectives(self, predictions, batch, stage):
        logits, labels = predictions["logits"], predictions["labels"]
        if stage != sb.Stage.TRAIN:
            self.preds.append(logits.argmax(dim=1).cpu())
            self.targets.append(labels.cpu())
            return F.cross_entropy(logits, labels)
        config, synthetic = self.hparams.config, predictions["synthetic"]
        loss = synthetic_loss(logits, labels, synthetic, float(config["synthetic_weight"]),
                              float(config["label_smoothing"]), predictions["soft"])
        if "domain_head" in self.modules and synthetic is not None and bool(synthetic.any()):
            loss = loss + float(config["domain_adversarial"]) * self.modules.domain_head.loss(
                predictions["embeddings"], synthetic)
        return loss

    def init_optimizers(self):
        """SpeechBrain's (norm and bias parameters without weight decay) and the per-step schedule, then
        the checks of what it is about to resume from: the optimizer is one of the recoverables from
        now on, and its file is the last one a save writes."""
        super().init_optimizers()
        self.scheduler = make_scheduler(self.optimizer, self.hparams.config, self.hparams.total_steps)
        self.checkpointer.add_recoverable("scheduler", self.scheduler)
        set_aside_damaged(self.checkpointer)
        check_resumable(self.checkpointer, self.hparams.signature)

    def on_fit_batch_end(self, batch, outputs, loss, should_step):
        if should_step:
            self.scheduler.step()

    def on_fit_start(self):
        """SpeechBrain's (which recovers the newest checkpoint), then the bar moved to its epoch."""
        super().on_fit_start()
        if self.history:
            self.bar.update(len(self.history))
            self.bar.write(f"{self.hparams.desc}: resumed after epoch {self.history[-1]['epoch']} from "
                           f"{self.checkpointer.checkpoints_dir}")

    def on_evaluate_start(self, max_key=None, min_key=None):
        self.checkpointer.recover_if_possible(importance_key=best_epoch_key)   # the best epoch

    def on_stage_start(self, stage, epoch=None):
        self.preds, self.targets = [], []

    def on_stage_end(self, stage, stage_loss, epoch=None):
        if stage == sb.Stage.TRAIN:
            self.train_loss = float(stage_loss)
            return
        self.last_report = accuracy_report(torch.cat(self.preds), torch.cat(self.targets), self.hparams.label_names)
        if stage == sb.Stage.VALID:
            acc = self.last_report["acc"]
            self.history.append({"epoch": epoch, "train_loss": self.train_loss,
                                 "valid_loss": float(stage_loss), "valid_acc": acc})
            self.checkpointer.save_and_keep_only(meta={BEST_KEY: acc, "valid_loss": float(stage_loss), "epoch": epoch,
                                                       "signature": self.hparams.signature},
                                                 importance_keys=[best_epoch_key])
            self.bar.update(1)
            self.bar.set_postfix(loss=f"{self.train_loss:.3f}", valid_acc=f"{acc:.3f}")


def tensor_loader(wavs, labels, batch_size) -> DataLoader:
    """Batches of ``(wavs, labels)`` in order (validation and test)."""
    return DataLoader(TensorDataset(wavs, labels), batch_size=batch_size)


def train_loader(dataset, hp: dict, collate_fn=None, batch_size: int | None = None) -> DataLoader:
    """Shuffled training batches. With ``steps_per_epoch`` an epoch is that many batches, drawn from
    successive reshuffles of the data, so a run's number of optimizer steps (``number_of_epochs *
    steps_per_epoch``) does not depend on how many clips it has: 10% of the speakers gets as many
    updates as all of them. ``steps_per_epoch: null`` makes an epoch one pass over the data.
    ``batch_size``: real rows per batch (default ``hp["batch_size"]``)."""
    batch_size = int(batch_size or hp["batch_size"])
    gen = torch.Generator().manual_seed(int(hp["seed"]))
    steps = hp.get("steps_per_epoch")
    sampler = RandomSampler(dataset, num_samples=None if steps is None else int(steps) * batch_size, generator=gen)
    return DataLoader(dataset, batch_size=batch_size, sampler=sampler, generator=gen, collate_fn=collate_fn)


def train_classifier(hp: dict, data, augment=None, loader=None, progress: bool = True, desc: str = "kws",
                     checkpoint_dir=None, signature_extra: str = "", spec_augment=None,
                     real_batch_size: int | None = None) -> dict:
    """Train a :class:`KWSClassifier` on ``data`` (a :class:`ganaug.kws.data.KWSData`) and test the best epoch.

    Args:
        hp: the resolved kws hparams (model size, ``number_of_epochs``, ``batch_size``, ``lr``,
            ``weight_decay``, ``device``, ``seed``).
        augment: ``(wavs, lens, labels) -> (wavs, lens, labels)`` for training batches, or None.
        loader: batches ``(wavs, labels)`` to train on; default: :func:`train_loader` of ``data.train``.
        progress: show the per-epoch bar (loss, validation accuracy).
        checkpoint_dir: keep the epoch checkpoints there and resume from the newest one found
            (default: a temporary folder, removed at the end).
        signature_extra: more of what a checkpoint must agree on to be resumed (the contents of the
            noise clips, generator and filter: :func:`ganaug.kws.recipe.inputs_fingerprint`).
        spec_augment: ``feats -> feats`` on the log-mel features of training batches (SpecAugment), or None.
        real_batch_size: real rows per training batch (default ``batch_size``; fewer when ``augment``
            appends synthetic rows, so that batches keep their size).
    Returns ``{"model" (CPU, eval mode, best epoch, its softmax temperature fitted on VALID), "best_epoch",
    "valid_acc", "history", "temperature", "test", "eval"?}``.
    """
    batch_size, epochs = int(hp["batch_size"]), int(hp["number_of_epochs"])
    if loader is None:
        loader = train_loader(TensorDataset(*data.train), hp, batch_size=real_batch_size)
    model = build_model(hp, data.label_names)
    counter = EpochCounter(epochs)
    history: list = []
    signature = run_signature(hp, data, signature_extra)
    with tempfile.TemporaryDirectory(prefix="ganaug-kws-checkpoints-") as tmp, \
            tqdm(total=epochs, desc=desc, unit="epoch", disable=not progress) as bar:
        ckpt_dir = Path(checkpoint_dir) if checkpoint_dir is not None else Path(tmp)
        modules = {"model": model}
        if float(hp["domain_adversarial"]) > 0:
            modules["domain_head"] = DomainHead(model.embedding_dim)
        checkpointer = Checkpointer(ckpt_dir, recoverables={**modules, "counter": counter,
                                                            "run_state": RunState(loader, history, augment)})
        brain = KWSBrain(
            modules=modules,
            opt_class=make_optimizer(hp),
            hparams={"augment": augment, "spec_augment": spec_augment, "label_names": data.label_names, "config": hp,
                     "signature": signature, "desc": desc, "total_steps": total_steps(hp, loader)},
            run_opts={"device": str(hp["device"]), "noprogressbar": True, "ckpt_interval_minutes": 0,
                      "remove_vector_weight_decay": True},
            checkpointer=checkpointer,
        )
        brain.history, brain.train_loss, brain.bar = history, float("nan"), bar
        brain.fit(counter, loader, tensor_loader(*data.valid, batch_size))
        history = list(history)                  # recovering the best epoch below rewinds the live list
        best = brain.checkpointer.find_checkpoint(importance_key=best_epoch_key)
        reports = {}
        for name, split in (("test", data.test), ("eval", data.eval)):
            if split is not None:
                brain.evaluate(tensor_loader(*split, batch_size))  # recovers the best epoch first
                reports[name] = brain.last_report
        if not reports:
            brain.checkpointer.recover_if_possible(importance_key=best_epoch_key)
    model = brain.modules.model.to("cpu").eval()
    model.temperature = fit_temperature(logits_of(model, data.valid[0], batch_size), data.valid[1])
    return {"model": model, "best_epoch": best.meta["epoch"], "valid_acc": best.meta[BEST_KEY],
            "history": history, "temperature": model.temperature, **reports}
