"""Label-consistency filtering: keep a synthetic clip only when a classifier hears its label.

A :class:`LabelFilter` wraps a keyword classifier (:class:`ganaug.models.classifier.KWSClassifier`,
or its folder) and a threshold ``min_confidence``: a clip made for label ``y`` is accepted when the
classifier's posterior of ``y`` is ``>= min_confidence``. The default classifier of a generator is
the reference classifier of the TRAIN split it was trained on (:func:`default_filter_dir`), so the
filter never sees the speakers it is later judged on.
"""

from __future__ import annotations

import hashlib
import math
import os
from numbers import Real
from pathlib import Path

import torch

from ganaug.audio import resample
from ganaug.models.classifier import CLASSIFIER_WEIGHTS, KWSClassifier, is_classifier, load_classifier, reference_dir

__all__ = ["trained_against", "not_independent", "LabelFilter", "default_filter_dir", "check_min_confidence", "filter_config"]


def check_min_confidence(min_confidence) -> float | None:
    """``None`` (filter off) for ``None``/0, else the threshold as a float in (0, 1]."""
    if min_confidence is None:
        return None
    if isinstance(min_confidence, bool) or not isinstance(min_confidence, Real) or not math.isfinite(min_confidence) \
            or not 0.0 <= float(min_confidence) <= 1.0:
        raise ValueError(f"min_confidence={min_confidence!r}: give the classifier posterior a synthetic clip needs "
                         f"for its label, in (0, 1] (e.g. 0.8), or 0/None to keep every clip")
    return float(min_confidence) or None


def filter_config(config: dict) -> dict:
    """The part of a generator's config.json that names its TRAIN split: what the default filter
    depends on (stored in bank.json so a bank finds the same filter)."""
    data = config.get("data") or {}
    return {"data_fingerprint": config.get("data_fingerprint"),
            "label_names": config.get("label_names") or data.get("labels"),
            "sample_rate": config.get("sample_rate", 16000), "data": data}


def default_filter_dir(config: dict) -> Path:
    """Where the filter of a generator lives: the reference classifier of its TRAIN split
    (:func:`ganaug.models.classifier.reference_dir` of the config's ``data_fingerprint``,
    ``label_names`` and ``sample_rate``). Per-keyword checkpoints store ``"<fp>/<label>"``; the
    ``/<label>`` is dropped, so every keyword of one run shares one classifier."""
    fingerprint = config.get("data_fingerprint")
    names = config.get("label_names") or (config.get("data") or {}).get("labels")
    if not fingerprint or not names:
        raise ValueError("the generator's config.json has no data_fingerprint/label_names (made by an older ganaug or "
                         "not by `ganaug train`): pass filter_classifier=DIR (a classifier folder written by `ganaug kws`)")
    return reference_dir(str(fingerprint).split("/")[0], list(names), int(config.get("sample_rate", 16000)))


def trained_against(config: dict) -> Path | None:
    """The classifier a generator was trained to please (``aux: frozen``, ``aux_weight`` > 0), or None.

    Its posteriors on that generator's clips are no evidence that they say their label: the clips
    were optimised to raise them (adversarially, as far as the classifier lets itself be fooled).
    ``aux_classifier`` "" meant the reference classifier of the TRAIN split, the default filter.
    """
    training = config.get("training") or {}
    if training.get("aux") != "frozen" or not float(training.get("aux_weight") or 0):
        return None
    try:
        return Path(training.get("aux_classifier") or default_filter_dir(config)).resolve()
    except ValueError:
        return None


def not_independent(configs, folder) -> list[str]:
    """The configs' checkpoints (``ckpt`` names) among ``configs`` ({ckpt: config}) trained to please
    the classifier in ``folder``."""
    folder = Path(folder).resolve()
    return [str(ckpt) for ckpt, config in configs.items() if trained_against(config) == folder]


class LabelFilter:
    """Posterior of each clip's intended label under a keyword classifier, and a threshold.

    Args:
        classifier: a classifier folder (``classifier.safetensors`` + ``config.json``) or a
            :class:`KWSClassifier` (used in eval mode).
        min_confidence: threshold in (0, 1]: a clip is accepted when the posterior of its label
            is at least this.
        device: where the classifier runs (``None``: the clips' device).

    A folder is loaded on first use, once per process; a pickled filter carries the path only.
    ``confidence``/``accept`` take ``(n, time)`` float clips at ``sample_rate`` (resampled to the
    classifier's rate) and return ``(n,)`` tensors on the CPU. Rows are scored independently
    (eval-mode BatchNorm, per-utterance feature normalisation), so a row's verdict does not
    depend on the batch around it.
    """

    def __init__(self, classifier, min_confidence: float, device=None):
        threshold = check_min_confidence(min_confidence)
        if threshold is None:
            raise ValueError(f"min_confidence={min_confidence!r}: a LabelFilter needs a threshold in (0, 1]")
        self.min_confidence = threshold
        self.device = None if device is None else torch.device(device)
        if isinstance(classifier, KWSClassifier):
            self.path, self._model = None, classifier.eval()
        elif isinstance(classifier, (str, os.PathLike)):
            self.path, self._model = Path(classifier).absolute(), None
            if not is_classifier(self.path):
                raise FileNotFoundError(f"filter_classifier={str(classifier)!r}: not a classifier folder (needs "
                                        f"{CLASSIFIER_WEIGHTS} and config.json, as written by `ganaug kws`)")
        else:
            raise TypeError(f"filter_classifier={classifier!r}: give a classifier folder or a KWSClassifier")

    def __getstate__(self):
        state = dict(self.__dict__)
        if self.path is not None:
            state["_model"] = None
        return state

    @property
    def model(self) -> KWSClassifier:
        if self._model is None:
            self._model = load_classifier(self.path)
        return self._model

    @property
    def label_names(self) -> list[str]:
        return list(self.model.label_names)

    def fingerprint(self) -> str:
        """Stable id of the classifier (folder and weight file, or the module's weights) and threshold."""
        h = hashlib.sha1(f"{self.min_confidence!r}|".encode())
        if self.path is not None:
            st = os.stat(self.path / CLASSIFIER_WEIGHTS)
            h.update(f"{self.path}|{st.st_size}|{st.st_mtime_ns}".encode())
        else:
            for name, tensor in sorted(self.model.state_dict().items()):
                h.update(name.encode())
                h.update(tensor.detach().cpu().contiguous().numpy().tobytes())
        return h.hexdigest()[:16]

    def check_labels(self, names) -> None:
        missing = sorted({n for n in names if n not in self.model.label_names})
        if missing:
            where = self.path or "the given classifier"
            raise ValueError(f"labels {missing} are not known to the filter classifier {where} (it knows "
                             f"{self.model.label_names}); pass filter_classifier= trained on these labels")

    def posteriors(self, wavs: torch.Tensor, sample_rate: int) -> torch.Tensor:
        """``(n, classifier labels)`` float32 calibrated posteriors (the classifier's temperature, fitted on
        VALID when it was trained) of clips ``wavs`` ``(n, time)`` at ``sample_rate``, on the CPU."""
        if wavs.dim() != 2:
            raise ValueError(f"wavs of shape {tuple(wavs.shape)}: expected (n, time)")
        model = self.model
        device = self.device or wavs.device
        if next(model.parameters()).device != device:
            model.to(device)
        x = resample(wavs.to(device).float(), int(sample_rate), model.sample_rate)
        with torch.inference_mode():
            return model.posteriors(x).cpu()

    def confidence(self, wavs: torch.Tensor, names, sample_rate: int) -> torch.Tensor:
        """``(n,)`` float32 posterior of ``names[i]`` for clip ``wavs[i]``, on the CPU."""
        names = list(names)
        if wavs.dim() != 2 or wavs.shape[0] != len(names):
            raise ValueError(f"wavs of shape {tuple(wavs.shape)} for {len(names)} names: expected (n, time), one name per row")
        if not names:
            return torch.empty(0)
        self.check_labels(names)
        index = torch.tensor([self.model.label_names.index(n) for n in names])
        return self.posteriors(wavs, sample_rate).gather(1, index[:, None])[:, 0]

    def accept(self, wavs: torch.Tensor, names, sample_rate: int) -> torch.Tensor:
        """``(n,)`` bool: the posterior of each clip's label is at least ``min_confidence``."""
        return self.confidence(wavs, names, sample_rate) >= self.min_confidence

    def __repr__(self) -> str:
        return f"LabelFilter({str(self.path or 'KWSClassifier')!r}, min_confidence={self.min_confidence})"
