"""GanAugment for HuggingFace ``datasets``: the thin adapter (the row logic is
:mod:`ganaug.augment.hf_rows`).

``hf_map`` adds synthetic rows once, cached by a stable fingerprint::

    hf_ds = hf_ds.map(hf_map(aug, ratio=0.5), batched=True, remove_columns=hf_ds.column_names)

``hf_transform`` draws fresh synthetic clips at every access (every epoch)::

    hf_ds = hf_ds.with_transform(hf_transform(aug, p=0.3, features=hf_ds.features))

The same functions are ``aug.hf_map(...)`` and ``aug.hf_transform(...)``. Audio columns read with
``datasets.Audio()`` (decoded by torchcodec: install ``ganaug[hf-audio]`` and the system FFmpeg)
or ``Audio(decode=False)`` both work.
"""

from __future__ import annotations

from ganaug.augment.hf_rows import HFMap, HFTransform

__all__ = ["hf_map", "hf_transform", "HFMap", "HFTransform"]


def hf_map(aug, ratio=0.5, **kwargs) -> HFMap:
    """See :class:`~ganaug.augment.hf_rows.HFMap`; ``kwargs``: ``seed``, ``audio_column``,
    ``label_column``, ``features``, ``synthetic_column``, ``min_confidence``, ``filter_classifier``."""
    return aug.hf_map(ratio=ratio, **kwargs)


def hf_transform(aug, p=None, **kwargs) -> HFTransform:
    """See :class:`~ganaug.augment.hf_rows.HFTransform`; ``kwargs``: ``audio_column``,
    ``label_column``, ``features``, ``synthetic_column``, ``generator``, ``min_confidence``,
    ``filter_classifier``."""
    return aug.hf_transform(p=p, **kwargs)
