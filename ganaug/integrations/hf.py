"""GanAugment for HuggingFace ``datasets``: ``Dataset.map`` (cached rows) and ``with_transform``.

``hf_map`` adds synthetic rows once, cached by a stable fingerprint::

    hf_ds = hf_ds.map(aug.hf_map(ratio=0.5), batched=True, remove_columns=hf_ds.column_names)

``hf_transform`` draws fresh synthetic clips at every access (every epoch)::

    hf_ds = hf_ds.with_transform(aug.hf_transform(p=0.3, features=hf_ds.features))

Audio values may be ``{"array", "sampling_rate"}`` dicts (decoded audio, or a plain struct
column) or ``{"bytes", "path"}`` dicts (``Audio(decode=False)``): synthetic rows use the same
form, at the source row's sample rate and length (wav bytes for ``decode=False``). Labels
may be ``ClassLabel`` indices (names are read from ``features=`` or the batch) or strings.
Columns other than audio and label are ``None`` in synthetic rows; ``synthetic_column`` (a
bool column, default ``"synthetic"``) tells them apart.
"""

from __future__ import annotations

import hashlib
import io
from numbers import Real

import numpy as np
import soundfile as sf
import torch

from ganaug.augment.source import MAX_SEED, mix_seed
from ganaug.augment.transform import fit_clips

__all__ = ["hf_map", "hf_transform", "HFMap", "HFTransform"]


def _label_names(batch, label_column, features):
    features = features if features is not None else getattr(getattr(batch, "formatter", None), "features", None)
    feature = None if features is None else features.get(label_column)
    return getattr(feature, "names", None)


def _audio_info(value, name):
    """(sample_rate, num_samples, kind) of one audio value, without resampling."""
    if isinstance(value, dict) and value.get("array") is not None:
        return int(value["sampling_rate"]), len(value["array"]), "array"
    if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        info = sf.info(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"])
        return int(info.samplerate), int(info.frames), "bytes"
    raise ValueError(f"{name}: audio values must be {{'array', 'sampling_rate'}} or {{'bytes', 'path'}} dicts "
                     f"(cast the column with datasets.Audio(decode=False)); got {type(value).__name__}")


def _to_value(clip: np.ndarray, kind: str, rate: int, name: str):
    if kind == "array":
        return {"array": clip, "sampling_rate": rate}
    buffer = io.BytesIO()
    sf.write(buffer, clip, rate, format="WAV", subtype="PCM_16")
    return {"bytes": buffer.getvalue(), "path": f"{name}.wav"}


class _Base:
    def __init__(self, aug, audio_column, label_column, features, synthetic_column):
        self.source = aug.source
        self.unknown_labels = aug.unknown_labels
        self.audio_column, self.label_column = audio_column, label_column
        self.synthetic_column = synthetic_column
        self.label_names = _label_names({}, label_column, features) if features is not None else None

    def _names(self, batch):
        for column in (self.audio_column, self.label_column):
            if column not in batch:
                raise ValueError(f"column {column!r} is not in the dataset (columns: {list(batch.keys())}); "
                                 f"pass audio_column= / label_column=")
        values = list(batch[self.label_column])
        names = self.label_names or _label_names(batch, self.label_column, None)
        if values and not isinstance(values[0], str):
            if names is None:
                raise ValueError(f"column {self.label_column!r} holds indices but its names are unknown: cast it to "
                                 f"datasets.ClassLabel(names=[...]) or pass features=ds.features")
            return [names[int(v)] for v in values]
        return [str(v) for v in values]

    def _known(self, names):
        known = [n in self.source.label_names for n in names]
        if not all(known) and self.unknown_labels == "error":
            unknown = sorted({n for n, k in zip(names, known) if not k})
            raise ValueError(f"labels {unknown} are not known to the generator (it knows {self.source.label_names}); "
                             f"build the GanAugment with unknown_labels='keep' to leave those rows alone")
        return known

    def _synthesize(self, batch, rows, names, seeds):
        """Synthetic audio values for source rows ``rows``, in each row's own form, rate and length."""
        audio = batch[self.audio_column]
        clips = self.source.generate([names[r] for r in rows], seeds) if rows else None
        values = []
        for k, r in enumerate(rows):
            rate, length, kind = _audio_info(audio[r], f"{self.audio_column}[{r}]")
            clip, _ = fit_clips(clips[k: k + 1], self.source.sample_rate, rate, length)
            values.append(_to_value(clip[0].numpy().astype(np.float32), kind, rate,
                                    f"ganaug_{names[r]}_{seeds[k] % 10**8:08d}"))
        return values


class HFMap(_Base):
    """Picklable ``Dataset.map(batched=True)`` function: input rows + ``ratio`` synthetic rows per
    row, each a clip of its row's label (the twins of a row follow the batch).

    Its pickled state holds paths, settings and the checkpoints' fingerprint, never weights,
    so ``datasets`` hashes it the same way in every process: ``map``'s cache is right, and a
    new checkpoint, seed or ratio makes a new fingerprint (also given as :attr:`fingerprint`
    for ``map(new_fingerprint=...)``). Pass ``with_indices=True`` to ``map`` for an exact
    ratio over the whole dataset; without indices it holds per batch (``floor(ratio * rows)``).
    Rows of labels the generator does not know (``unknown_labels="keep"``) get no twins.
    """

    def __init__(self, aug, ratio=0.5, seed=0, audio_column="audio", label_column="label", features=None,
                 synthetic_column="synthetic"):
        if isinstance(ratio, bool) or not isinstance(ratio, Real) or ratio < 0:
            raise ValueError(f"ratio={ratio!r}: give the number of synthetic rows per row, >= 0 (e.g. 0.5)")
        super().__init__(aug, audio_column, label_column, features, synthetic_column)
        self.ratio, self.seed = float(ratio), int(seed)
        self.source_fingerprint = self.source.fingerprint()

    @property
    def fingerprint(self) -> str:
        key = (type(self).__name__, self.source_fingerprint, self.ratio, self.seed, self.audio_column,
               self.label_column, self.synthetic_column, self.label_names, self.unknown_labels)
        return hashlib.sha1(repr(key).encode()).hexdigest()[:16]

    def _batch_seed(self, batch, names, indices):
        if indices is not None:
            return mix_seed(self.seed, "rows", int(indices[0]), len(indices))
        h = hashlib.sha1(repr(names).encode())
        for value in batch[self.audio_column]:
            data = value.get("bytes") or value.get("path") or np.asarray(value.get("array", []), dtype=np.float32)[:512].tobytes()
            h.update(data[-1024:] if isinstance(data, bytes) else str(data).encode())
        return mix_seed(self.seed, h.hexdigest())

    def __call__(self, batch, indices=None):
        names = self._names(batch)
        known = self._known(names)
        n_rows = len(names)
        # row j gets floor(ratio*(j+1)) - floor(ratio*j) twins: ratio per row, spread evenly
        position = [int(i) for i in indices] if indices is not None else list(range(n_rows))
        rows = [r for r, j in enumerate(position) if known[r]
                for _ in range(int(np.floor(self.ratio * (j + 1)) - np.floor(self.ratio * j)))]
        n_new = len(rows)
        out = {k: list(v) for k, v in batch.items()}
        if self.synthetic_column:
            out[self.synthetic_column] = [False] * n_rows
        if n_new == 0:
            return out
        g = torch.Generator().manual_seed(self._batch_seed(batch, names, indices))
        seeds = torch.randint(0, MAX_SEED, (n_new,), generator=g).tolist()
        audio = self._synthesize(batch, rows, names, seeds)
        for column in out:
            if column == self.audio_column:
                out[column] += audio
            elif column == self.label_column:
                out[column] += [batch[column][r] for r in rows]
            elif column == self.synthetic_column:
                out[column] += [True] * n_new
            else:
                out[column] += [None] * n_new
        return out


class HFTransform(_Base):
    """``Dataset.with_transform`` function: each accessed row is replaced with probability ``p``
    by a fresh synthetic clip of its label (new clips at every access, hence every epoch).
    Rows keep their count, so row access, slices and DataLoaders all work."""

    def __init__(self, aug, p=None, audio_column="audio", label_column="label", features=None,
                 synthetic_column="synthetic", generator=None):
        p = aug.p if p is None else p
        if isinstance(p, bool) or not isinstance(p, Real) or not 0 <= p <= 1:
            raise ValueError(f"p={p!r}: must be a probability in [0, 1]")
        super().__init__(aug, audio_column, label_column, features, synthetic_column)
        self.p, self.generator = float(p), generator

    def __call__(self, batch):
        names = self._names(batch)
        known = self._known(names)
        mask = torch.rand(len(names), generator=self.generator) < self.p
        rows = [r for r in range(len(names)) if mask[r] and known[r]]
        seeds = torch.randint(0, MAX_SEED, (len(rows),), generator=self.generator).tolist()
        out = {k: list(v) for k, v in batch.items()}
        for r, value in zip(rows, self._synthesize(batch, rows, names, seeds)):
            out[self.audio_column][r] = value
            for column in out:
                if column not in (self.audio_column, self.label_column):
                    out[column][r] = None
        if self.synthetic_column:
            out[self.synthetic_column] = [r in set(rows) for r in range(len(names))]
        return out


def hf_map(aug, ratio=0.5, **kwargs) -> HFMap:
    """See :class:`HFMap`; ``kwargs``: ``seed``, ``audio_column``, ``label_column``, ``features``, ``synthetic_column``."""
    return HFMap(aug, ratio=ratio, **kwargs)


def hf_transform(aug, p=None, **kwargs) -> HFTransform:
    """See :class:`HFTransform`; ``kwargs``: ``audio_column``, ``label_column``, ``features``,
    ``synthetic_column``, ``generator``."""
    return HFTransform(aug, p=p, **kwargs)
