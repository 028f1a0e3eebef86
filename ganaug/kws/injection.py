"""The synthetic clips of a ``ganaug kws`` run: which generator, which clips, and how they are judged.

:func:`make_injection` builds, from the run's ``gan_*`` keys, the GanAugment that both trainers call on
every training batch (one :class:`~ganaug.augment.rows.InjectionPolicy`: ``gan_mode`` append with
``gan_ratio`` or replace with ``gan_p``), the clips it draws from and the classifier that judges them:

- ``gan_select: threshold``: a clip is kept when the filter's posterior of its label is at least
  ``gan_min_confidence`` (0: no filter); a label the generator says badly may keep none.
- ``gan_select: top_k``: per label, the ``gan_top_k`` clips of ``gan_pool`` the filter is most sure of
  (:class:`~ganaug.augment.select.SelectedSource`): every label gets clips.
- ``soft_labels``: a synthetic row learns the filter's posterior instead of its intended label; allowed only
  when the filter was trained on exactly this run's training speakers (it would otherwise carry other
  speakers' knowledge into the comparison).

The filter is ``gan_filter_classifier``, or the generator's reference classifier (trained once when
missing). Its posteriors are temperature-scaled on VALID (:mod:`ganaug.kws.calibrate`); the share of the
run's real VALID clips that pass the same bar is reported per label beside the synthetic clips' share.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ganaug.config import HparamsError
from ganaug.kws.data import SPECIAL

__all__ = ["make_injection", "Injection"]


class Injection:
    """What a run's GanAugment needs beside the batch: the augment itself, the filter whose posteriors are
    soft targets (or None), and the per-label report for results.json."""

    def __init__(self, augment=None, soft_filter=None, label_names=(), sample_rate=16000, report=None):
        self.augment, self.soft_filter = augment, soft_filter
        self.label_names, self.sample_rate, self.report = list(label_names), int(sample_rate), report or {}

    def soft_targets(self, wavs: torch.Tensor) -> torch.Tensor:
        """The filter's posteriors of ``wavs`` over the run's labels (labels it does not know get 0)."""
        probs = self.soft_filter.posteriors(wavs, self.sample_rate)
        known = self.soft_filter.label_names
        out = torch.zeros(len(wavs), len(self.label_names))
        for j, name in enumerate(self.label_names):
            if name in known:
                out[:, j] = probs[:, known.index(name)]
        return (out / out.sum(dim=1, keepdim=True).clamp_min(1e-12)).to(wavs.device)


def _filter_dir(hp: dict) -> Path:
    """``gan_filter_classifier``, or the generator's own reference classifier, which must exist (``ganaug
    generate --min_confidence`` and ``ganaug ablate`` train it; the kws layer cannot, it is trained by it)."""
    if str(hp["gan_filter_classifier"] or ""):
        return Path(str(hp["gan_filter_classifier"]))
    from ganaug.augment.bank import make_source
    from ganaug.augment.filter import default_filter_dir
    from ganaug.models.classifier import is_classifier

    folder = default_filter_dir(make_source(str(hp["gan_ckpt"])).filter_config())
    if not is_classifier(folder):
        raise HparamsError(f"gan_ckpt={hp['gan_ckpt']}: its filter classifier {folder} does not exist yet; train it "
                           f"with `ganaug generate {hp['gan_ckpt']} --per-label 1 --out /tmp/probe --min_confidence 0.5` "
                           f"or give --gan_filter_classifier=DIR")
    return folder


def _check_soft(hp: dict, folder: Path, data) -> None:
    from ganaug.io import read_versioned_json
    from ganaug.models.classifier import CLASSIFIER_FORMAT_VERSION

    config = read_versioned_json(folder / "config.json", CLASSIFIER_FORMAT_VERSION)
    if config.get("train_speakers_sha1") != data.info.get("train_speakers_sha1"):
        raise HparamsError(f"soft_labels=True: the filter classifier {folder} was not trained on exactly this run's "
                           f"training speakers, so its posteriors would carry other speakers' knowledge into the "
                           f"comparison; train one on them (`ganaug kws` with the same data, fraction and data_seed) "
                           f"and give it as --gan_filter_classifier, or leave soft_labels off")


def _real_acceptance(label_filter, data, bars: dict, sample_rate: int) -> dict:
    """Per label, the share of the real VALID clips whose posterior of their label reaches that label's bar."""
    wavs, labels = data.valid
    names = [data.label_names[i] for i in labels.tolist()]
    rows = [i for i, n in enumerate(names) if n in bars]
    if not rows:
        return {}
    conf = label_filter.confidence(wavs[rows], [names[i] for i in rows], sample_rate)
    out = {}
    for name, bar in bars.items():
        mine = [k for k, i in enumerate(rows) if names[i] == name]
        out[name] = float((conf[mine] >= bar).double().mean()) if mine else None
    return out


def make_injection(hp: dict, data) -> Injection:
    """The run's :class:`Injection` (``augment`` None when ``gan_ckpt`` is empty); one-line errors for a
    missing generator, unknown labels (unless ``gan_unknown_labels=keep``) or a filter soft labels may not use."""
    from ganaug.augment.checks import check_known
    from ganaug.augment.filter import LabelFilter
    from ganaug.augment.bank import make_source
    from ganaug.augment.select import SelectedSource
    from ganaug.integrations.speechbrain import GanAugment

    ckpt, names = str(hp.get("gan_ckpt") or ""), list(data.label_names)
    if not ckpt:
        return Injection(label_names=names)
    if not Path(ckpt).is_dir():
        raise HparamsError(f"gan_ckpt={ckpt}: no such checkpoint directory; give one written by `ganaug train` or ''")
    keywords = [n for n in names if n not in SPECIAL]          # the v2-12 task's _unknown_/_silence_ stay real
    threshold, select = float(hp["gan_min_confidence"] or 0.0), str(hp["gan_select"])
    judged = threshold > 0 or select == "top_k" or bool(hp["soft_labels"])
    folder = _filter_dir(hp) if judged else None
    if hp["soft_labels"]:
        _check_soft(hp, folder, data)
    source, report = ckpt, {}
    try:
        if select == "top_k":
            label_filter = LabelFilter(folder, threshold or 1e-6, hp["device"])
            pool = make_source(ckpt)                         # a generator, or a bank written by `ganaug generate`
            source = SelectedSource(pool, label_filter, int(hp["gan_pool"]), int(hp["gan_top_k"]), int(hp["seed"]),
                                    [n for n in keywords if n in pool.label_names], hp["device"])
            summary = source.summary()
            report = {"select": "top_k", "synthetic": summary, "real_valid_acceptance": _real_acceptance(
                label_filter, data, {n: s["min_confidence"] for n, s in summary.items()}, int(hp["sample_rate"]))}
        augment = GanAugment(source, p=float(hp["gan_p"]), mode=str(hp["gan_mode"]), ratio=float(hp["gan_ratio"]),
                             label_names=names, sample_rate=int(hp["sample_rate"]),
                             unknown_labels="keep" if set(SPECIAL) & set(names) else str(hp["gan_unknown_labels"]),
                             min_confidence=threshold if select == "threshold" and threshold > 0 else None,
                             filter_classifier=str(folder) if select == "threshold" and threshold > 0 else None)
        check_known(keywords, augment.known_labels, str(hp["gan_unknown_labels"]), keep="--gan_unknown_labels=keep")
    except (ValueError, FileNotFoundError) as err:
        raise HparamsError(f"gan_ckpt={ckpt}: {err}") from err
    if select == "threshold" and threshold > 0:
        report = {"select": "threshold", "min_confidence": threshold, "real_valid_acceptance": _real_acceptance(
            LabelFilter(folder, threshold), data, {n: threshold for n in keywords}, int(hp["sample_rate"]))}
    soft = LabelFilter(folder, threshold or 1e-6, hp["device"]) if hp["soft_labels"] else None
    if folder is not None:
        report["filter_classifier"], report["temperature"] = str(folder), LabelFilter(folder, 1e-6).model.temperature
    return Injection(augment, soft, names, int(hp["sample_rate"]), report)
