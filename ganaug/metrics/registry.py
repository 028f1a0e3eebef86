"""Metrics registered by name (StyleGAN2-ADA's ``metric_main`` pattern).

A metric is a function ``fn(ctx: MetricContext, clips: ClipSet) -> dict[str, float]``, run on
the generated clips and, for the real-data reference, on the held-out real TEST clips. Both
are compared with the same real TRAIN clips, through the same reference classifier, so the two
columns of the table read side by side. Add one with::

    @register_metric("my_metric")
    def my_metric(ctx, clips):
        return {"my_metric": float(...)}

IS, FID and KID are torchmetrics' (``InceptionScore``, ``FrechetInceptionDistance``,
``KernelInceptionDistance``) with ``feature=`` the reference classifier (:class:`ClassifierFeature`:
its logits for IS, its penultimate embedding for FID and KID) in place of Inception. Their random
draws (IS's split of the clips into chunks, KID's subsets) are seeded by ``MetricContext.seed``.
"""

from __future__ import annotations

import importlib
import warnings
from dataclasses import dataclass, field

import torch

from ganaug.metrics import functional as F
from ganaug.metrics.classifier import classify

__all__ = ["METRICS", "DEFAULT_METRICS", "register_metric", "ClipSet", "MetricContext", "ClassifierFeature",
           "torchmetric", "run_metrics"]

BATCH = 256  # clips per classifier pass
_TORCHMETRICS = {"FrechetInceptionDistance": "fid", "InceptionScore": "inception", "KernelInceptionDistance": "kid"}

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


def torchmetric(name: str, **kwargs):
    """torchmetrics' ``name`` (a key of ``_TORCHMETRICS``), imported on first use (torchmetrics.image takes
    seconds to import). Its warning that it keeps every feature in memory is moot: so do the clips."""
    cls = getattr(importlib.import_module(f"torchmetrics.image.{_TORCHMETRICS[name]}"), name)
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=r".*will save all extracted features")
        return cls(**kwargs)


class ClassifierFeature(torch.nn.Module):
    """The keyword classifier as a torchmetrics feature extractor: wavs ``(batch, time)`` -> its penultimate
    embedding ``(batch, embedding_dim)`` (``output="embedding"``) or its logits ``(batch, num_labels)``."""

    def __init__(self, classifier: torch.nn.Module, output: str = "embedding"):
        super().__init__()
        if output not in ("embedding", "logits"):
            raise ValueError(f"output={output!r}: 'embedding' or 'logits'")
        self.classifier, self.output = classifier.eval(), output
        self.num_features = classifier.embedding_dim if output == "embedding" else len(classifier.label_names)

    def forward(self, wavs: torch.Tensor) -> torch.Tensor:
        embedding = self.classifier.embed(wavs.float())
        return (embedding if self.output == "embedding" else self.classifier.head(embedding)).float()


@dataclass
class MetricContext:
    classifier: torch.nn.Module
    train: ClipSet                      # real TRAIN clips: FID/KID statistics, |D|train neighbours
    device: torch.device | str = "cpu"
    sample_rate: int = 16000
    splits: int = 10                    # IS chunks (at most; each keeps >= 50 clips)
    self_n: int | None = None           # clips used for |D|self (same for every set: it shrinks with n)
    progress: bool = False
    seed: int = 0                       # IS's chunks and KID's subsets
    kid_subsets: int = 100
    kid_subset_size: int = 1000         # at most; lowered to the smaller set
    against_train: dict = field(default_factory=dict, repr=False)   # FID and KID metrics fed the TRAIN clips

    @property
    def label_names(self) -> list[str]:
        return list(self.classifier.label_names)

    def probs(self, clips: ClipSet) -> torch.Tensor:
        """The classifier's posteriors ``(n, num_labels)`` float64 (one pass per set, cached): mIS, label accuracy."""
        if "logits" not in clips.cache:
            clips.cache["logits"] = classify(self.classifier, clips.wavs, device=self.device,
                                             progress=self.progress, desc=f"classify {clips.name}")[0]
        return torch.softmax(clips.cache["logits"].double(), dim=1)

    def nn_features(self, clips: ClipSet) -> torch.Tensor:
        if "nn" not in clips.cache:
            feats = [F.nn_features(clips.wavs[i:i + BATCH].to(self.device), self.sample_rate).cpu()
                     for i in range(0, len(clips), BATCH)]
            clips.cache["nn"] = torch.cat(feats)
        return clips.cache["nn"]

    @torch.no_grad()
    def feed(self, metric, clips: ClipSet, **kwargs):
        """``metric.update`` with ``clips`` in batches of ``BATCH`` on ``device``; returns ``metric``."""
        for start in range(0, len(clips), BATCH):
            metric.update(clips.wavs[start:start + BATCH].to(self.device), **kwargs)
        return metric

    def compute(self, metric):
        """``metric.compute()`` with torch's RNG seeded by ``seed`` (and restored after). A one-chunk IS has no
        spread (reported as None), so torch's warning about its std is moot."""
        with torch.random.fork_rng(devices=[]), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=r"std\(\): degrees of freedom")
            torch.manual_seed(self.seed)
            return metric.compute()

    def against(self, name: str, **kwargs):
        """torchmetrics' ``name`` on the classifier's embedding, fed the TRAIN clips once as its real set, with
        its other set emptied."""
        if name not in self.against_train:
            metric = torchmetric(name, feature=ClassifierFeature(self.classifier), reset_real_features=False, **kwargs)
            self.against_train[name] = self.feed(metric.to(self.device), self.train, real=True)
        metric = self.against_train[name]
        metric.reset()   # the generated side only: reset_real_features=False keeps the TRAIN clips
        return metric


@register_metric("is")
def inception_score(ctx: MetricContext, clips: ClipSet) -> dict:
    # small chunks bias IS low (their marginal is noisy): keep at least 50 clips per chunk
    splits = max(1, min(ctx.splits, len(clips) // 50))
    metric = torchmetric("InceptionScore", feature=ClassifierFeature(ctx.classifier, "logits"), splits=splits)
    mean, std = ctx.compute(ctx.feed(metric.to(ctx.device), clips))
    # one chunk gives no spread: report no std rather than a misleading 0
    return {"is": float(mean), "is_std": float(std) if splits > 1 else None, "is_splits": splits}


@register_metric("mis")
def modified_inception_score(ctx: MetricContext, clips: ClipSet) -> dict:
    return {"mis": F.modified_inception_score(ctx.probs(clips))}


@register_metric("fid")
def fid(ctx: MetricContext, clips: ClipSet) -> dict:
    """FID of ``clips`` against the real TRAIN clips, on the classifier's embedding."""
    metric = ctx.feed(ctx.against("FrechetInceptionDistance"), clips, real=False)
    return {"fid": float(metric.compute())}


@register_metric("kid")
def kid(ctx: MetricContext, clips: ClipSet) -> dict:
    """KID (Binkowski et al. 2018) of ``clips`` against the real TRAIN clips, on the classifier's embedding:
    unbiased, so sets of different sizes compare (FID is biased upward for small sets)."""
    size = min(ctx.kid_subset_size, len(clips), len(ctx.train))
    metric = ctx.against("KernelInceptionDistance", subsets=ctx.kid_subsets, subset_size=size)
    metric.subset_size = size   # compute() draws subsets of this size from both sets
    mean, std = ctx.compute(ctx.feed(metric, clips, real=False))
    return {"kid": float(mean), "kid_std": float(std), "kid_subset_size": size}


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
