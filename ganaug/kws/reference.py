"""The reference classifier: ``ganaug kws`` with the reference recipe, one per TRAIN split.

The metrics of :mod:`ganaug.metrics` (IS, FID, label accuracy) and the label-consistency
filter of :mod:`ganaug.augment` judge generated clips with a keyword classifier trained on the
real TRAIN split a generator was trained on. It is the kws recipe (``hparams/kws.yaml``) with
:data:`REFERENCE_OVERRIDES` (classic augmentation on, enough epochs, best validation epoch),
trained by the one loop of :func:`ganaug.kws.brain.train_classifier`, tested on the TEST
speakers, and saved as a classifier folder at
:func:`ganaug.models.classifier.reference_dir` (shared by every generator of that split)::

    from ganaug.kws.reference import ensure_reference, ensure_reference_for
    folder = ensure_reference("data/speech_commands", ["yes", "no"])      # trains once, then reuses
    folder = ensure_reference_for(json.load(open("runs/cond/config.json")))

Its ``config.json`` records ``role: "reference_classifier"``, ``reference_version``, the
recipe overrides, ``test_acc``, ``valid_acc``, ``best_epoch`` and the data fingerprint.
"""

from __future__ import annotations

import shutil
from pathlib import Path

import torch

__all__ = ["REFERENCE_OVERRIDES", "ensure_reference", "ensure_reference_for", "reference_folder", "noise_overrides"]

# The reference recipe = hparams/kws.yaml (its defaults are the best recipe measured, docs/results.md) + these
# keys. Change them together with ganaug.models.classifier.REFERENCE_VERSION, so that older classifiers are
# not reused.
REFERENCE_OVERRIDES = {
    "classic_augment": True,      # speed, background noise, time shift and SpecAugment (as `ganaug kws`)
    "task": "keywords",           # scores generated keywords: no _unknown_/_silence_ classes
}


def noise_overrides(noise_folder=None) -> dict:
    """The recipe overrides that give a classifier trained here ``noise_folder`` (None: the recipe's ``auto``)."""
    return {} if noise_folder is None else {"noise_folder": str(noise_folder)}


def reference_folder(data_folder, label_names, *, speaker_fraction: float = 1.0, data_seed: int = 0,
                     sample_rate: int = 16000, num_samples: int = 16384) -> Path:
    """The default folder of the reference classifier of that TRAIN split (``reference_dir``)."""
    from ganaug.data import KeywordDataset
    from ganaug.models.classifier import reference_dir

    train = KeywordDataset(data_folder, labels=list(label_names), split="train", speaker_fraction=speaker_fraction,
                           seed=data_seed, sample_rate=sample_rate, num_samples=num_samples)
    return reference_dir(train.fingerprint(), list(label_names), sample_rate)


def ensure_reference(data_folder, label_names, *, speaker_fraction: float = 1.0, data_seed: int = 0,
                     sample_rate: int = 16000, num_samples: int = 16384, folder=None, device=None,
                     progress: bool = True, overrides: dict | None = None) -> Path:
    """The classifier folder of the reference classifier of ``data_folder``'s TRAIN split.

    A classifier already in ``folder`` (default :func:`reference_folder`) is reused as it is;
    otherwise one is trained there with the reference recipe (``overrides``: more kws keys, e.g.
    a small recipe for tests) on the TRAIN split (``speaker_fraction``/``data_seed`` as the
    generator's), its best epoch chosen on the VALID speakers and tested on the TEST speakers.
    Its epoch checkpoints live in ``<folder>.training`` until it is saved, so a run killed while
    training resumes from its newest epoch when called again.
    """
    from ganaug.config import HparamsError, load_hparams
    from ganaug.io import lock
    from ganaug.kws.resume import OtherRunCheckpoints
    from ganaug.kws.recipe import check_hparams, train_kws
    from ganaug.models.classifier import REFERENCE_VERSION, is_classifier, save_classifier

    label_names = [str(n) for n in label_names]
    data_folder = Path(data_folder)
    if not data_folder.is_dir():
        raise FileNotFoundError(f"data_folder {data_folder}: no such folder; the reference classifier trains on the "
                                f"TRAIN split of a Speech Commands- or FSDD-layout folder")
    if folder is None:
        folder = reference_folder(data_folder, label_names, speaker_fraction=speaker_fraction, data_seed=data_seed,
                                  sample_rate=sample_rate, num_samples=num_samples)
    folder = Path(folder)
    work = folder.with_name(folder.name + ".training")   # its epoch checkpoints: a killed run resumes from them
    if is_classifier(folder):
        shutil.rmtree(work, ignore_errors=True)          # left by a kill after saving
        return folder
    if folder.is_dir() and any(folder.iterdir()):
        raise ValueError(f"classifier folder {folder}: exists but holds no classifier (classifier.safetensors + "
                         f"config.json); give an empty or new folder to train the reference classifier there")
    recipe = {**REFERENCE_OVERRIDES, **(overrides or {})}
    device = str(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    with lock(work, wait=True):          # one process trains it; the others wait, then find it
        if is_classifier(folder):
            return folder
        print(f"training the reference classifier of {label_names} on the TRAIN split of {data_folder} -> {folder}",
              flush=True)
        try:
            hp, _ = load_hparams("kws", {**recipe, "data_folder": str(data_folder), "output_folder": str(work),
                                         "labels": label_names, "speaker_fraction": float(speaker_fraction),
                                         "data_seed": int(data_seed), "sample_rate": int(sample_rate),
                                         "num_samples": int(num_samples), "device": device})
            check_hparams(hp)
            try:
                results, model = train_kws(hp, work, progress=progress, desc="reference classifier")
            except OtherRunCheckpoints:      # a killed run of another recipe: this folder is a cache, start over
                shutil.rmtree(work / "save")
                results, model = train_kws(hp, work, progress=progress, desc="reference classifier")
        except HparamsError as err:
            raise ValueError(f"reference classifier: {err}") from err
        save_classifier(folder, model, role="reference_classifier", reference_version=REFERENCE_VERSION,
                        recipe=recipe, test_acc=results["test_acc"], valid_acc=results["valid_acc"],
                        best_epoch=results["best_epoch"], per_label_acc=results["per_label_acc"],
                        temperature=results["temperature"], train_speakers_sha1=results["train_speakers_sha1"],
                        num_train=results["num_train"], num_test=results["num_test"],
                        train_speakers=results["train_speakers"], test_speakers=results["test_speakers"],
                        data=str(data_folder.resolve()), data_fingerprint=results["train_fingerprint"],
                        speaker_fraction=float(speaker_fraction), data_seed=int(data_seed))
        shutil.rmtree(work, ignore_errors=True)
    print(f"reference classifier: test accuracy {results['test_acc']:.4f} on {results['num_test']} clips of "
          f"{results['test_speakers']} unseen speakers -> {folder}", flush=True)
    return folder


def ensure_reference_for(ckpt_config: dict, **kw) -> Path:
    """:func:`ensure_reference` for the TRAIN split a generator was trained on, read from its
    ``config.json`` (``data`` block, ``label_names``, ``sample_rate``, ``num_samples``,
    ``data_fingerprint``). ``kw``: ``folder``, ``device``, ``progress``, ``overrides``, or
    ``data_folder`` where the generator's data folder has moved."""
    from ganaug.models.classifier import is_classifier, reference_dir

    data = ckpt_config.get("data") or {}
    labels = ckpt_config.get("label_names") or data.get("labels")
    if not labels or "data_fingerprint" not in ckpt_config:
        raise ValueError("generator config: no label_names/data.labels or data_fingerprint; pass the config.json of "
                         "a generator trained by `ganaug train` (or give the classifier folder yourself)")
    sample_rate = int(ckpt_config.get("sample_rate", 16000))
    fingerprint = str(ckpt_config["data_fingerprint"]).split("/")[0]   # per-keyword: "<fp>/<label>"
    if kw.get("folder") is None:
        kw["folder"] = reference_dir(fingerprint, labels, sample_rate)
    if is_classifier(kw["folder"]):          # trained already: the data need not be here
        return Path(kw["folder"])
    data_folder = Path(str(kw.pop("data_folder", None) or data.get("data_folder") or ""))
    if not data_folder.is_dir():
        raise FileNotFoundError(f"the generator's training data {str(data_folder)!r} (its config.json) is not here, "
                                f"so its filter classifier cannot be trained: run from the folder it was trained in, "
                                f"or give a classifier folder (--filter_classifier DIR)")
    return ensure_reference(data_folder, labels, speaker_fraction=float(data.get("speaker_fraction", 1.0)),
                            data_seed=int(data.get("data_seed", 0)), sample_rate=sample_rate,
                            num_samples=int(ckpt_config.get("num_samples", 16384)), **kw)
