"""``ganaug generate CKPT --per-label N --out DIR [--format flac|wav|hf] [--min_confidence C]
[--filter_classifier DIR]``: write a synthetic bank.

It lives at the kws floor because, with ``--min_confidence`` and no ``--filter_classifier``, the
generator's default filter (the reference classifier of its TRAIN split) is trained here when
missing, by :func:`ganaug.kws.reference.ensure_reference_for`. The bank itself is written by
:func:`ganaug.augment.generate_bank`; this prints the per-label acceptance and warns about labels
none of whose clips the filter accepted.
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from ganaug.augment.bank import generate_bank
from ganaug.augment.filter import check_min_confidence
from ganaug.augment.source import GeneratorSource

__all__ = ["main", "filter_classifier_for"]


def filter_classifier_for(ckpt, device=None, noise_folder=None) -> Path:
    """The default filter of the generator(s) in ``ckpt``: the reference classifier of their TRAIN split,
    found where it lives or trained there first (:func:`ganaug.kws.reference.ensure_reference_for`;
    ``noise_folder``: its classic augmentation's background noise, default ``auto``)."""
    from ganaug.kws.reference import ensure_reference_for, noise_overrides  # contract 2 (clf); only when needed

    return Path(ensure_reference_for(next(iter(GeneratorSource(ckpt).configs.values())), device=device,
                                     overrides=noise_overrides(noise_folder)))


def main(ckpt, per_label, out, format="flac", batch_size=64, device=None, seed=0, min_confidence=None,
         filter_classifier=None, labels=None, progress=True, noise_folder=None) -> int:
    """Returns 0, or 2 after one line on stderr for a user error (nothing written in that case)."""
    from ganaug.errors import run_command

    return run_command("ganaug generate", _generate, ckpt, per_label, out, format, batch_size, device, seed,
                       min_confidence, filter_classifier, labels, progress, noise_folder)


def _generate(ckpt, per_label, out, format, batch_size, device, seed, min_confidence, filter_classifier, labels,
              progress, noise_folder=None) -> int:
    from ganaug.env import resolve_device

    threshold = check_min_confidence(min_confidence)
    device = resolve_device(device)
    if threshold is not None and not filter_classifier:
        filter_classifier = filter_classifier_for(ckpt, device, noise_folder)
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
