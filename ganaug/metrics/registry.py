"""Metrics registered by name (StyleGAN2-ADA's ``metric_main`` pattern).

A metric is a function ``fn(ctx: MetricContext, clips: ClipSet) -> dict[str, float]``, run on
the generated clips and, for the real-data reference, on the held-out real TEST clips. Both
are compared with the same real TRAIN clips, through the same reference classifier, so the two
columns of the table read side by side. Add one with::

    @register_metric("my_metric")
    def my_metric(ctx, clips):
        return {"my_metric": float(...)}
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch

from ganaug.metrics import functional as F
from ganaug.metrics.classifier import classify

__all__ = ["METRICS", "DEFAULT_METRICS", "register_metric", "ClipSet", "MetricContext", "run_metrics"]

METRICS: dict = {}


def register_metric(name: str):
    def wrap(fn):
        if name in METRICS:
            raise ValueError(f"metric {name!r} is registered twice")
        METRICS[name] = fn
        return fn
    return wrap


@dataclass
class ClipSet:
    """Clips ``(n, time)`` at the context's sample rate, with the label each is meant to carry
    (indices into the classifier's ``label_names``; ``None`` for an unconditional generator)."""

    name: str
    wavs: torch.Tensor
    labels: torch.Tensor | None = None
    cache: dict = field(default_factory=dict, repr=False)

    def __len__(self) -> int:
        return self.wavs.shape[0]


@dataclass
class MetricContext:
    classifier: torch.nn.Module
    train: ClipSet                      # real TRAIN clips: FID statistics, |D|train neighbours
    device: torch.device | str = "cpu"
    sample_rate: int = 16000
    splits: int = 10                    # IS chunks (at most; each keeps >= 50 clips)
    self_n: int | None = None           # clips used for |D|self (same for every set: it shrinks with n)
    progress: bool = False

    @property
    def label_names(self) -> list[str]:
        return list(self.classifier.label_names)

    def _classify(self, clips: ClipSet):
        if "logits" not in clips.cache:
            logits, embeds = classify(self.classifier, clips.wavs, device=self.device,
                                      progress=self.progress, desc=f"classify {clips.name}")
            clips.cache["logits"], clips.cache["embeds"] = logits, embeds
        return clips.cache["logits"], clips.cache["embeds"]

    def probs(self, clips: ClipSet) -> torch.Tensor:
        return torch.softmax(self._classify(clips)[0].double(), dim=1)

    def embeds(self, clips: ClipSet) -> torch.Tensor:
        return self._classify(clips)[1]

    def nn_features(self, clips: ClipSet) -> torch.Tensor:
        if "nn" not in clips.cache:
            feats = [F.nn_features(clips.wavs[i:i + 256].to(self.device), self.sample_rate).cpu()
                     for i in range(0, len(clips), 256)]
            clips.cache["nn"] = torch.cat(feats)
        return clips.cache["nn"]


@register_metric("is")
def inception_score(ctx: MetricContext, clips: ClipSet) -> dict:
    # small chunks bias IS low (their marginal is noisy): keep at least 50 clips per chunk
    splits = max(1, min(ctx.splits, len(clips) // 50))
    mean, std = F.inception_score(ctx.probs(clips), splits=splits)
    # one chunk gives no spread: report no std rather than a misleading 0
    return {"is": mean, "is_std": std if splits > 1 else None, "is_splits": splits}


@register_metric("mis")
def modified_inception_score(ctx: MetricContext, clips: ClipSet) -> dict:
    return {"mis": F.modified_inception_score(ctx.probs(clips))}


@register_metric("fid")
def fid(ctx: MetricContext, clips: ClipSet) -> dict:
    """FID of ``clips`` against the real TRAIN clips, on the classifier's embedding."""
    if "fid_stats" not in ctx.train.cache:
        ctx.train.cache["fid_stats"] = F.feature_stats(ctx.embeds(ctx.train))
    return {"fid": F.frechet_distance(*F.feature_stats(ctx.embeds(clips)), *ctx.train.cache["fid_stats"])}


@register_metric("d_train")
def d_train(ctx: MetricContext, clips: ClipSet) -> dict:
    mean, std = F.nn_distance(ctx.nn_features(clips), ctx.nn_features(ctx.train))
    return {"d_train": mean, "d_train_std": std}


@register_metric("d_self")
def d_self(ctx: MetricContext, clips: ClipSet) -> dict:
    n = len(clips) if ctx.self_n is None else min(ctx.self_n, len(clips))
    mean, std = F.nn_distance(ctx.nn_features(clips)[:n])
    return {"d_self": mean, "d_self_std": std, "d_self_n": n}


@register_metric("label_acc")
def label_acc(ctx: MetricContext, clips: ClipSet) -> dict:
    """How often the classifier hears the label a clip was generated for (conditional / per-keyword)."""
    if clips.labels is None:
        return {}
    probs = ctx.probs(clips)
    out = {"label_acc": F.label_accuracy(probs, clips.labels)}
    per_label = {}
    for index in clips.labels.unique().tolist():
        rows = clips.labels == index
        per_label[ctx.label_names[index]] = F.label_accuracy(probs[rows], clips.labels[rows])
    out["label_acc_per_label"] = per_label
    return out


@register_metric("consistency")
def spectrogram_consistency(ctx: MetricContext, clips: ClipSet) -> dict:
    """TiFGAN's consistency (Marafioti et al. 2019), mean and std over clips, of Gaussian-window
    log-magnitude spectrograms: how close each is to one a real signal can have.

    It scores *spectrograms*: ``clips.cache["logmag"]`` when the caller put a generator's own
    spectrograms there (TiFGAN, before phase reconstruction), else the spectrograms of the clips'
    waveforms (the real-data reference; for waveform generators it says little, since the STFT of
    any signal is consistent).
    """
    from ganaug.spectral.metrics import consistency, gauss_log_magnitude

    logmag = clips.cache.get("logmag")
    if logmag is None:
        logmag = torch.cat([gauss_log_magnitude(clips.wavs[i:i + 256].float().cpu()) for i in range(0, len(clips), 256)])
    values = consistency(logmag)
    return {"consistency": float(values.mean()), "consistency_std": float(values.std()) if len(values) > 1 else None}


DEFAULT_METRICS = ("is", "mis", "fid", "d_train", "d_self", "label_acc", "consistency")


def run_metrics(ctx: MetricContext, clips: ClipSet, metrics=DEFAULT_METRICS) -> dict:
    unknown = [m for m in metrics if m not in METRICS]
    if unknown:
        raise ValueError(f"unknown metrics {unknown}; registered: {sorted(METRICS)}")
    out = {}
    for name in metrics:
        out.update(METRICS[name](ctx, clips))
    return out
