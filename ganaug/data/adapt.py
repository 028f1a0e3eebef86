"""Any map-style dataset as labelled clips: what :class:`ganaug.GanMixDataset` needs from a real
dataset it did not make (the adapter contract).

- **labels**: the label of every item, read without decoding audio from a ``KeywordDataset``
  (``.labels`` + ``.label_names``) or a ``torch.utils.data.Subset`` of one (at any depth), or
  given: ``labels=[...]`` (names, or indices with ``label_names=``), one per item.
- **sample_rate**: the items' rate, from ``.sample_rate`` (through Subsets) or given.
- **item layout**: items are dicts with the audio under ``wav_key`` (default ``"wav"``), or
  tuples/lists with the audio at ``wav_key`` (default ``0``: torchaudio's ``(waveform,
  sample_rate, label, ...)``); audio is a tensor or array, time last: ``(time,)`` or ``(1, time)``.

A synthetic item is shaped like the real items of its label: it is a copy of a real item of
that label (its *template*, the first one) whose audio is replaced by the synthetic clip with
the template's leading dims, length, dtype and type (so default collate stacks both), whose
string fields other than the label name become ``""`` (no speaker), and, for dicts, whose
``"path"`` is ``"synthetic:<label>:<i>"``. The length is ``num_samples=`` when given, else the
dataset's ``.num_samples`` (``None``: the generator's own), else the template's.
"""

from __future__ import annotations

from numbers import Integral

import numpy as np
import torch
from torch.utils.data import Subset

__all__ = ["LabelledView"]

_UNSET = object()


def _through_subsets(dataset, attr: str, default=_UNSET):
    """``dataset.<attr>``, looked up through ``Subset`` wrappers; ``default`` when none has it."""
    while True:
        if hasattr(dataset, attr):
            return getattr(dataset, attr)
        if not isinstance(dataset, Subset):
            return default
        dataset = dataset.dataset


def _own_labels(dataset):
    """``(labels, label_names)`` read without decoding (a KeywordDataset, through Subsets), or None."""
    if isinstance(dataset, Subset):
        found = _own_labels(dataset.dataset)
        return None if found is None else ([found[0][int(i)] for i in dataset.indices], found[1])
    labels, names = getattr(dataset, "labels", None), getattr(dataset, "label_names", None)
    if labels is None or names is None or isinstance(labels, str) or len(labels) != len(dataset):
        return None
    return list(labels), [str(n) for n in names]


def _as_indices(labels, label_names) -> tuple[list[int], list[str]]:
    """Per-item label indices into the label names (given, or the sorted names of ``labels``)."""
    values = labels.reshape(-1).tolist() if isinstance(labels, torch.Tensor) else list(labels)
    if label_names is None:
        if not all(isinstance(v, str) for v in values):
            raise ValueError("labels are indices: pass label_names= (the names in index order) with them")
        label_names = sorted(set(values))
    names = [str(n) for n in getattr(label_names, "names", label_names)]
    index = {n: i for i, n in enumerate(names)}
    out = []
    for v in values:
        if isinstance(v, str):
            if v not in index:
                raise ValueError(f"label {v!r} is not in label_names {names}")
            out.append(index[v])
        elif isinstance(v, Integral) and not isinstance(v, bool) and 0 <= int(v) < len(names):
            out.append(int(v))
        else:
            raise ValueError(f"label {v!r}: give label names, or whole-number indices into label_names (0..{len(names) - 1})")
    return out, names


class LabelledView:
    """A map-style dataset seen as labelled clips (see the module docstring for the contract).

    Args:
        dataset: any map-style dataset (``len`` and ``[i]``).
        labels: the label of every item (names, or indices with ``label_names``); default: read
            from a KeywordDataset or Subsets of one.
        label_names: the label names in index order (default: the dataset's, or the sorted names).
        sample_rate: the items' rate in Hz (default: ``dataset.sample_rate``).
        num_samples: the length of synthetic items (default: see the module docstring).
        wav_key: where the audio is in an item (default ``"wav"`` for dicts, ``0`` for tuples).
    """

    def __init__(self, dataset, labels=None, label_names=None, sample_rate=None, num_samples=None, wav_key=None):
        if not hasattr(dataset, "__getitem__") or not hasattr(dataset, "__len__"):
            raise TypeError(f"real: a {type(dataset).__name__} is not a map-style dataset (needs len() and [i])")
        self.dataset = dataset
        if labels is None:
            found = _own_labels(dataset)
            if found is None:
                raise TypeError(f"real: ganaug cannot read the labels of a {type(dataset).__name__} without decoding "
                                f"it; pass labels=[...] (one label name per item, e.g. labels=[item[2] for item in "
                                f"real] for torchaudio's SPEECHCOMMANDS, or faster from its file paths)")
            labels, label_names = found[0], label_names if label_names is not None else found[1]
        if len(labels) != len(dataset):
            raise ValueError(f"labels has {len(labels)} entries for a dataset of {len(dataset)} items; give one per item")
        self.labels, self.label_names = _as_indices(labels, label_names)
        rate = sample_rate if sample_rate is not None else _through_subsets(dataset, "sample_rate", None)
        if rate is None or isinstance(rate, bool) or not isinstance(rate, Integral) or int(rate) <= 0:
            raise ValueError(f"sample_rate={rate!r}: pass sample_rate= (the real items' rate in Hz, e.g. 16000); "
                             f"synthetic clips are resampled to it")
        self.sample_rate = int(rate)
        self.num_samples = num_samples if num_samples is not None else _through_subsets(dataset, "num_samples", _UNSET)
        self.wav_key = wav_key
        self._templates: dict[str, object] = {}

    def __getstate__(self):  # templates are read again in each worker (a few items)
        return {**self.__dict__, "_templates": {}}

    def __len__(self) -> int:
        return len(self.dataset)

    def label_counts(self) -> dict[str, int]:
        counts = np.bincount(np.asarray(self.labels, dtype=np.int64), minlength=len(self.label_names))
        return {name: int(counts[i]) for i, name in enumerate(self.label_names)}

    def rows_of(self) -> dict[str, list[int]]:
        """Item indices of every label."""
        rows: dict[str, list[int]] = {}
        for index, label in enumerate(self.labels):
            rows.setdefault(self.label_names[label], []).append(index)
        return rows

    def item(self, index: int, synthetic: bool = False):
        """The real item ``index``; a dict gets ``"synthetic"`` (False unless said)."""
        item = self.dataset[index]
        return {**item, "synthetic": synthetic} if isinstance(item, dict) else item

    def _key(self, item):
        if self.wav_key is not None:
            return self.wav_key
        if isinstance(item, dict):
            if "wav" not in item:
                raise ValueError(f"real items are dicts without a 'wav' key (keys {sorted(item)}); pass wav_key=")
            return "wav"
        return 0

    def template(self, name: str):
        """The first real item of label ``name`` (what its synthetic items are shaped like)."""
        if name not in self._templates:
            self._templates[name] = self.dataset[self.labels.index(self.label_names.index(name))]
        return self._templates[name]

    def length(self, name: str) -> int | None:
        """Length of synthetic items of ``name`` (``None``: the generator's own)."""
        if self.num_samples is not _UNSET:
            return None if self.num_samples is None else int(self.num_samples)
        item = self.template(name)
        return int(np.shape(item[self._key(item)])[-1])

    def synthetic(self, name: str, clip: torch.Tensor, path: str):
        """An item like the real ones of ``name`` holding ``clip`` ``(time,)`` (fit already)."""
        template = self.template(name)
        key = self._key(template)
        audio = template[key]
        shape = tuple(np.shape(audio)[:-1]) + (clip.shape[-1],)
        if isinstance(audio, np.ndarray):
            wav = np.ascontiguousarray(np.broadcast_to(clip.numpy().astype(audio.dtype), shape))
        else:
            wav = clip.to(dtype=audio.dtype if isinstance(audio, torch.Tensor) else torch.float32).expand(shape)
            wav = wav.contiguous()
        fields = dict(template) if isinstance(template, dict) else dict(enumerate(template))
        for k, v in fields.items():
            if isinstance(v, str) and v != name:
                fields[k] = ""   # a speaker, a file name: a synthetic clip has none
        fields[key] = wav
        if isinstance(template, dict):
            if "path" in fields:
                fields["path"] = path
            return {**fields, "synthetic": True}
        values = [fields[i] for i in range(len(template))]
        return template._make(values) if hasattr(template, "_make") else type(template)(values)  # namedtuples too
