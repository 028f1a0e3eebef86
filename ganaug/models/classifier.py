"""The keyword classifier: SpeechBrain Fbank features + a DS-CNN or a BC-ResNet.

``KWSClassifier`` takes raw audio ``(batch, time)`` at its ``sample_rate`` and returns logits
``(batch, num_labels)``; ``embed`` returns the penultimate embedding ``(batch, embedding_dim)`` (the
pooled backbone features, used for FID by :mod:`ganaug.metrics`). It owns its features, so a
saved classifier needs nothing but its folder to run::

    model = KWSClassifier(label_names=["yes", "no"], model="bcresnet", tau=3)
    save_classifier("runs/clf", model)
    model = load_classifier("runs/clf")           # eval mode, labels by name

A classifier folder holds ``classifier.safetensors`` and ``config.json`` (format_version, model
name, constructor kwargs, label names, sample rate); loading never unpickles.

Backbones (``model``):

* ``ds_cnn`` (Zhang et al., 2017, "Hello Edge"): a full 3x3 conv (stride 2) then ``num_blocks``
  depthwise-separable blocks (depthwise 3x3 + BN + ReLU, pointwise 1x1 + BN + ReLU) of ``channels``.
* ``bcresnet`` (Kim et al., 2021): BC-ResNet-``tau`` (:mod:`ganaug.models.bcresnet`), 40 mel bands.

Log-mel features are normalised per utterance (mean and variance over time per mel bin), so the model
has no input statistics to carry. Training code may augment the features between :meth:`fbank` and
:meth:`classify` (SpecAugment).
"""

from __future__ import annotations

from pathlib import Path

import torch
from torch import nn

from ganaug.io import (CheckpointError, cache_dir, atomic_save_tensors, atomic_write_json, check_tensors, load_tensors,
                       read_versioned_json)

__all__ = ["KWSClassifier", "save_classifier", "load_classifier", "is_classifier", "reference_dir", "REFERENCE_VERSION",
           "CLASSIFIER_WEIGHTS", "CLASSIFIER_FORMAT_VERSION", "MODELS"]

CLASSIFIER_WEIGHTS = "classifier.safetensors"
CLASSIFIER_CONFIG = "config.json"
CLASSIFIER_FORMAT_VERSION = 1
MODELS = ("ds_cnn", "bcresnet")
# Bumped whenever the reference recipe (hparams of the reference classifier) changes, so that
# classifiers trained by an older recipe are not reused as if they were today's.
REFERENCE_VERSION = 3


def _ds_block(channels: int, stride: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(channels, channels, 3, stride=stride, padding=1, groups=channels, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
        nn.Conv2d(channels, channels, 1, bias=False),
        nn.BatchNorm2d(channels),
        nn.ReLU(inplace=True),
    )


def ds_cnn_layers(channels: int = 64, num_blocks: int = 4) -> tuple[nn.Module, nn.Module, nn.Module, int]:
    """DS-CNN as ``(stem, blocks, tail, embedding_dim)`` on ``(batch, 1, frames, mels)``."""
    stem = nn.Sequential(nn.Conv2d(1, channels, 3, stride=2, padding=1, bias=False), nn.BatchNorm2d(channels),
                         nn.ReLU(inplace=True))
    blocks = nn.Sequential(*[_ds_block(channels, 2 if i == 1 else 1) for i in range(num_blocks)])
    return stem, blocks, nn.Identity(), channels


class KWSClassifier(nn.Module):
    """Log-mel keyword classifier on raw audio.

    Args:
        label_names: class names, in logit order (stored by name in checkpoints).
        sample_rate: rate of the audio given to ``forward``/``embed`` (Hz).
        n_mels: mel bands of the SpeechBrain ``Fbank`` features (25 ms window, 10 ms hop); 40 for BC-ResNet.
        channels: width of the DS-CNN (its embedding size); ``ds_cnn`` only.
        num_blocks: depthwise-separable blocks of the DS-CNN (the 2nd is strided); ``ds_cnn`` only.
        dropout: dropout before the final linear layer (and BC-ResNet's channel dropout).
        model: the backbone, ``"ds_cnn"`` or ``"bcresnet"``.
        tau: BC-ResNet's width multiplier (BC-ResNet-1 has ~9k parameters, -3 ~54k, -8 ~321k); ``bcresnet`` only.

    Shapes: ``forward(wavs (batch, time)) -> logits (batch, len(label_names))``,
    ``embed(wavs) -> (batch, embedding_dim)``. Any clip length of at least 0.1 s works.
    """

    def __init__(self, label_names, sample_rate: int = 16000, n_mels: int = 40, channels: int = 64,
                 num_blocks: int = 4, dropout: float = 0.1, model: str = "ds_cnn", tau: int = 1):
        super().__init__()
        if isinstance(label_names, str) or not label_names or len(set(label_names)) != len(label_names):
            raise ValueError(f"label_names={label_names!r}: give a list of distinct label names, e.g. ['yes', 'no']")
        for name, value, low in (("sample_rate", sample_rate, 1000), ("n_mels", n_mels, 8),
                                 ("channels", channels, 4), ("num_blocks", num_blocks, 1)):
            if int(value) != value or value < low:
                raise ValueError(f"{name}={value!r}: must be an integer >= {low}")
        if not 0.0 <= dropout < 1.0:
            raise ValueError(f"dropout={dropout!r}: must be in [0, 1)")
        if model not in MODELS:
            raise ValueError(f"model={model!r}: choose one of {', '.join(MODELS)}")
        from speechbrain.lobes.features import Fbank

        self.label_names = [str(n) for n in label_names]
        self.sample_rate = int(sample_rate)
        self._kwargs = dict(label_names=self.label_names, sample_rate=self.sample_rate, n_mels=int(n_mels),
                            channels=int(channels), num_blocks=int(num_blocks), dropout=float(dropout), model=model,
                            tau=int(tau))
        self.features = Fbank(n_mels=int(n_mels), sample_rate=self.sample_rate)
        if model == "bcresnet":
            from ganaug.models.bcresnet import bcresnet_layers

            self.stem, self.blocks, self.tail, self._dim = bcresnet_layers(tau, dropout, int(n_mels))
        else:
            self.stem, self.blocks, self.tail, self._dim = ds_cnn_layers(int(channels), int(num_blocks))
        self.dropout = nn.Dropout(dropout)
        self.head = nn.Linear(self._dim, len(self.label_names))
        if model == "ds_cnn":      # oneDNN's channels-last convolutions: 1.55x a DS-CNN step, 0.8x BC-ResNet's
            self.to(memory_format=torch.channels_last)     # (bench/bench_kws.py, docs/performance.md)
        self.temperature = 1.0     # softmax temperature fitted on VALID after training (config.json), for posteriors

    def config(self) -> dict:
        """Constructor kwargs (what ``save_classifier`` stores)."""
        return dict(self._kwargs)

    @property
    def embedding_dim(self) -> int:
        return self._dim

    def fbank(self, wavs: torch.Tensor) -> torch.Tensor:
        """Per-utterance normalised log-mel features ``(batch, frames, n_mels)``."""
        if wavs.dim() == 3 and wavs.shape[1] == 1:
            wavs = wavs[:, 0]
        if wavs.dim() != 2:
            raise ValueError(f"wavs of shape {tuple(wavs.shape)}: expected (batch, time) mono audio at {self.sample_rate} Hz")
        if wavs.shape[1] < self.sample_rate // 10:
            raise ValueError(f"wavs of {wavs.shape[1]} samples: need at least 0.1 s ({self.sample_rate // 10} samples)")
        with torch.autocast(wavs.device.type, enabled=False):
            feats = self.features(wavs.float())
        mean = feats.mean(dim=1, keepdim=True)
        std = feats.std(dim=1, keepdim=True).clamp_min(1e-5)
        return (feats - mean) / std

    def embed_features(self, feats: torch.Tensor) -> torch.Tensor:
        """The embedding of features ``(batch, frames, n_mels)`` (as :meth:`fbank` returns them)."""
        x = feats.unsqueeze(1)                                   # (batch, 1, frames, mels)
        if self._kwargs["model"] == "bcresnet":
            x = x.transpose(2, 3)                                # BC-ResNet convolves (mels, frames)
        return self.tail(self.blocks(self.stem(x))).mean(dim=(2, 3))

    def classify(self, feats: torch.Tensor) -> torch.Tensor:
        """Logits of features ``(batch, frames, n_mels)``."""
        return self.head(self.dropout(self.embed_features(feats)))

    def embed(self, wavs: torch.Tensor) -> torch.Tensor:
        """Penultimate embedding ``(batch, embedding_dim)``: pooled backbone features, before dropout."""
        return self.embed_features(self.fbank(wavs))

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        """Logits ``(batch, num_labels)``."""
        return self.classify(self.fbank(wavs))

    def posteriors(self, wavs: torch.Tensor) -> torch.Tensor:
        """Calibrated label probabilities ``(batch, num_labels)``: the softmax of logits / :attr:`temperature`."""
        return torch.softmax(self(wavs).float() / float(self.temperature), dim=-1)


def _learned(state: dict) -> dict:
    """The trained tensors: everything but the fixed feature-extractor buffers."""
    return {k: v for k, v in state.items() if not k.startswith("features.")}


def is_classifier(path) -> bool:
    path = Path(path)
    return (path / CLASSIFIER_WEIGHTS).is_file() and (path / CLASSIFIER_CONFIG).is_file()


def save_classifier(folder, model: KWSClassifier, **extra) -> Path:
    """Write ``model``'s weights (safetensors) and config.json to ``folder`` (atomic writes).

    ``extra`` (e.g. ``test_acc``, ``data_fingerprint``) is stored in config.json.
    """
    from ganaug import __version__

    folder = Path(folder)
    config = {
        "format_version": CLASSIFIER_FORMAT_VERSION,
        "model": model.config()["model"],
        "kwargs": model.config(),
        "label_names": list(model.label_names),
        "sample_rate": model.sample_rate,
        "ganaug_version": __version__,
        **extra,
    }
    atomic_save_tensors(folder / CLASSIFIER_WEIGHTS, _learned(model.state_dict()))
    atomic_write_json(folder / CLASSIFIER_CONFIG, config)
    return folder


def load_classifier(folder, device=None) -> KWSClassifier:
    """Rebuild a classifier saved by ``save_classifier``, in eval mode."""
    folder = Path(folder)
    cfg_path = folder / CLASSIFIER_CONFIG
    config = read_versioned_json(cfg_path, CLASSIFIER_FORMAT_VERSION, f"{folder} is not a classifier folder "
                                 f"(expected {CLASSIFIER_CONFIG} and {CLASSIFIER_WEIGHTS}, as written by `ganaug kws`)")
    if config.get("model") not in MODELS or "kwargs" not in config:
        raise CheckpointError(f"{cfg_path}: model {config.get('model')!r} is not a ganaug keyword classifier "
                              f"({', '.join(MODELS)})")
    try:
        model = KWSClassifier(**config["kwargs"])
    except (TypeError, ValueError) as err:
        raise CheckpointError(f"{cfg_path}: kwargs do not build a classifier ({err})") from err
    weights = folder / CLASSIFIER_WEIGHTS
    tensors = load_tensors(weights)
    check_tensors(weights, tensors, _learned(model.state_dict()))
    model.load_state_dict(tensors, strict=False)  # the Fbank buffers are fixed, not stored
    model.temperature = float(config.get("temperature", 1.0))
    model.eval()
    if device is not None:
        model.to(device)
    return model


def reference_dir(train_fingerprint: str, label_names, sample_rate: int = 16000) -> Path:
    """Where the reference classifier of one TRAIN split lives: ``$GANAUG_CACHE/classifiers/<key>``.

    ``train_fingerprint`` is ``KeywordDataset(..., split="train").fingerprint()`` of the clips a
    generator was trained on (its config.json ``data_fingerprint``). The scorer of ``ganaug
    evaluate`` and the label-consistency filter both look here, so a classifier is trained once
    per (training clips, labels, rate, recipe version) and shared.
    """
    import hashlib

    key = f"{train_fingerprint}|{','.join(map(str, label_names))}|{int(sample_rate)}|v{REFERENCE_VERSION}"
    return cache_dir() / "classifiers" / hashlib.sha1(key.encode()).hexdigest()[:16]
