"""``ganaug generate CKPT --per-label N --out DIR [--format flac|wav|hf] [--min_confidence C]
[--filter_classifier DIR] [--data_folder DIR]``: write a synthetic bank.

It lives at the kws floor because, with ``--min_confidence`` and no ``--filter_classifier``, the
generator's default filter (the reference classifier of its TRAIN split) is trained here when
missing, by :func:`ganaug.kws.reference.ensure_reference_for`. The bank itself is written by
:func:`ganaug.augment.generate_bank`; this prints the per-label acceptance and warns about labels
none of whose clips the filter accepted. ``--data_folder`` says where the generator's training data
is when its ``config.json`` names a folder that is not here (a relative path of an older
checkpoint, another machine): it is used only if its TRAIN split is the one the generator was
trained on (same data fingerprint).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from ganaug.augment.bank import SyntheticBank, generate_bank, is_bank
from ganaug.augment.filter import check_min_confidence, default_filter_dir, filter_config
from ganaug.augment.source import GeneratorSource

__all__ = ["main", "filter_classifier_for", "filter_for_config"]


def filter_classifier_for(ckpt, device=None, data_folder=None, progress: bool = True, noise_folder=None) -> Path:
    """The default filter of the generator(s) in ``ckpt`` (or of the generator a bank of ``ganaug generate``
    came from): the reference classifier of their TRAIN split, found where it lives or trained there first
    (:func:`filter_for_config`; ``noise_folder``: its classic augmentation's background noise, default ``auto``)."""
    from ganaug.kws.reference import noise_overrides

    config = (SyntheticBank(ckpt).filter_config() if is_bank(ckpt)
              else next(iter(GeneratorSource(ckpt).configs.values())))
    return filter_for_config(config, device, data_folder, progress, overrides=noise_overrides(noise_folder))


def filter_for_config(config: dict, device=None, data_folder=None, progress: bool = True, **kw) -> Path:
    """The default filter of the generator of ``config`` (its config.json): found where it lives, or
    trained there (:func:`ganaug.kws.reference.ensure_reference_for`, ``kw``: e.g. ``overrides``) on the
    data folder the config names or, when that one is not here, on ``data_folder`` (checked to hold
    that TRAIN split)."""
    from ganaug.kws.reference import ensure_reference_for  # contract 2 (clf); imported only when needed
    from ganaug.models.classifier import is_classifier

    folder = default_filter_dir(filter_config(config))
    if is_classifier(folder):
        return folder
    stored = str((config.get("data") or {}).get("data_folder") or "")
    if data_folder is not None and not (stored and Path(stored).is_dir()):
        _check_train_split(Path(data_folder), config, folder)
        return Path(ensure_reference_for(config, device=device, progress=progress, data_folder=data_folder, **kw))
    if not (stored and Path(stored).is_dir()):
        raise FileNotFoundError(f"the generator's training data {stored!r} (its config.json) is not here, so its "
                                f"filter classifier cannot be trained: give the folder with --data_folder DIR, or a "
                                f"classifier folder with --filter_classifier DIR")
    return Path(ensure_reference_for(config, device=device, progress=progress, **kw))


def _check_train_split(data_folder: Path, config: dict, expected: Path) -> None:
    """``data_folder`` holds the TRAIN split the generator was trained on, or a one-line error."""
    from ganaug.kws.reference import reference_folder

    if not data_folder.is_dir():
        raise FileNotFoundError(f"--data_folder {data_folder}: no such folder")
    data = config.get("data") or {}
    labels = config.get("label_names") or data.get("labels")
    try:
        found = reference_folder(data_folder, labels, speaker_fraction=float(data.get("speaker_fraction", 1.0)),
                                 data_seed=int(data.get("data_seed", 0)),
                                 sample_rate=int(config.get("sample_rate", 16000)),
                                 num_samples=int(config.get("num_samples", 16384)))
    except ValueError as err:
        raise ValueError(f"--data_folder {data_folder}: {err}") from err
    if found != expected:
        raise ValueError(f"--data_folder {data_folder}: its TRAIN split of {labels} is not the one the generator was "
                         f"trained on (data fingerprint {config.get('data_fingerprint')}, "
                         f"{data.get('num_clips', '?')} clips of {data.get('num_speakers', '?')} speakers): give "
                         f"that folder, or a classifier folder with --filter_classifier DIR")


def main(ckpt, per_label, out, format="flac", batch_size=64, device=None, seed=0, min_confidence=None,
         filter_classifier=None, labels=None, progress=True, data_folder=None, noise_folder=None) -> int:
    """Returns 0, or 2 after one line on stderr for a user error (nothing written in that case)."""
    from ganaug.errors import run_command

    return run_command("ganaug generate", _generate, ckpt, per_label, out, format, batch_size, device, seed,
                       min_confidence, filter_classifier, labels, progress, data_folder, noise_folder)


def _generate(ckpt, per_label, out, format, batch_size, device, seed, min_confidence, filter_classifier, labels,
              progress, data_folder=None, noise_folder=None) -> int:
    from ganaug.env import resolve_device

    threshold = check_min_confidence(min_confidence)
    device = resolve_device(device)
    if data_folder is not None and (threshold is None or filter_classifier):
        raise ValueError(f"--data_folder {data_folder}: only trains the default filter classifier, so it does "
                         f"nothing {'without --min_confidence' if threshold is None else 'with --filter_classifier'}; "
                         f"leave it out")
    if threshold is not None and not filter_classifier:
        filter_classifier = filter_classifier_for(ckpt, device, data_folder, progress, noise_folder)
    if isinstance(labels, str):
        labels = [s.strip() for s in labels.split(",") if s.strip()]
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        bank = generate_bank(ckpt, out, per_label, format, batch_size, device, seed, labels=labels,
                             progress=progress, min_confidence=threshold, filter_classifier=filter_classifier or None)
    meta = bank.meta
    print(f"wrote {len(bank)} clips ({', '.join(f'{k} {v}' for k, v in meta['counts'].items())}) to {out}")
    if "acceptance" in meta:
        print(f"acceptance at min_confidence={meta['min_confidence']} ({meta['filter_classifier']}): "
              + ", ".join(f"{k} {v:.2f}" for k, v in meta["acceptance"].items()))
    for w in caught:
        print(f"WARNING: {w.message}", file=sys.stderr)
    return 0
