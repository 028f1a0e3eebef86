"""The HF row logic of GanAugment: ``Dataset.map`` (cached rows) and ``with_transform``.

Works on the plain ``{column: [values]}`` batches ``datasets`` hands a function (no ``datasets``
import here); :mod:`ganaug.integrations.hf` is the thin adapter users may import instead.

``hf_map`` adds synthetic rows once, cached by a stable fingerprint::

    hf_ds = hf_ds.map(aug.hf_map(ratio=0.5), batched=True, remove_columns=hf_ds.column_names)

``hf_transform`` draws fresh synthetic clips at every access (every epoch)::

    hf_ds = hf_ds.with_transform(aug.hf_transform(p=0.3, features=hf_ds.features))

Audio values may be ``{"array", "sampling_rate"}`` dicts (decoded audio, or a plain struct
column) or ``{"bytes", "path"}`` dicts (``Audio(decode=False)``): synthetic rows use the same
form, at the source row's sample rate and length (wav bytes for ``decode=False``). Labels
may be ``ClassLabel`` indices (names are read from ``features=`` or the batch) or strings.
Columns other than audio and label are ``None`` in synthetic rows; ``synthetic_column`` (a
bool column, default ``"synthetic"``) tells them apart. Multichannel arrays (``Audio(mono=False)``
gives ``(channels, time)``) are downmixed to mono by :func:`ganaug.audio.prepare_audio`, real rows
too, so the column keeps one shape.

Both take ``min_confidence=`` / ``filter_classifier=`` (label-consistency filtering, see
:func:`ganaug.augment.source.with_filter`; default: the GanAugment's own): a row none of whose
tries the filter accepts gets no twin (map) or stays real (transform).

Both take raw audio, before any feature extraction, and belong on the TRAINING split only
(``hf_map`` before ``train_test_split`` would put synthetic rows into the test split).
``hf_transform`` is for ``with_transform``/``set_transform`` only: run inside ``Dataset.map`` it
would be one cached draw, so there it is an error that says how to compose it with the
feature extraction instead.

``Dataset.map(..., num_proc=N)`` forks workers; a forked child that runs torch with the
parent's OpenMP thread pool can block forever in libgomp, so in a child process these functions
set ``torch.set_num_threads(1)`` before any torch work.
"""

from __future__ import annotations

import hashlib
import io
import os
import sys
import warnings

import numpy as np
import soundfile as sf
import torch

from ganaug.audio import prepare_audio
from ganaug.augment.checks import check_known, check_ratio, label_names_of
from ganaug.augment.source import MAX_ATTEMPTS, MAX_SEED, fit_clips, mix_seed, with_filter
from ganaug.augment.rows import DEFAULT_RATIO, InjectionPolicy, draw_params, kept_rows, synthetic_rows

__all__ = ["HFMap", "HFTransform"]

_MAIN_PID = os.getpid()  # the process that imported ganaug: map workers forked from it differ


def _one_thread_in_forked_child() -> None:
    if os.getpid() != _MAIN_PID and torch.get_num_threads() != 1:
        torch.set_num_threads(1)


FEATURE_COLUMNS = {"input_values", "input_features", "attention_mask"}  # what HF feature extractors return


def _inside_dataset_map() -> bool:
    """Whether ``datasets.Dataset.map`` is on the call stack (it applies a dataset's transform to
    its inputs and caches the result). datasets has no public way to tell; this reads frames."""
    frame = sys._getframe(1)
    while frame is not None:
        if frame.f_code.co_name == "_map_single" and frame.f_globals.get("__name__", "").startswith("datasets."):
            return True
        frame = frame.f_back
    return False


def _label_names(batch, label_column, features):
    features = features if features is not None else getattr(getattr(batch, "formatter", None), "features", None)
    feature = None if features is None else features.get(label_column)
    return getattr(feature, "names", None)


def _mono(value, name):
    """``value`` as a mono ``{"array", "sampling_rate"}`` dict when it holds samples (a dict, or
    the torchcodec ``AudioDecoder`` that ``datasets.Audio()`` decodes to); a multichannel array is
    downmixed. ``{"bytes", "path"}`` values are returned unchanged."""
    if hasattr(value, "get_all_samples"):  # datasets >= 4 with torchcodec: Audio() decodes lazily
        samples = value.get_all_samples()
        value = {"array": samples.data.numpy(), "sampling_rate": int(samples.sample_rate)}
    if not isinstance(value, dict) or value.get("array") is None:
        return value
    array = np.asarray(value["array"])
    if array.ndim == 1:
        return value
    if array.ndim == 2 and array.shape[0] < array.shape[1]:  # (channels, time): HF mono=False, torchaudio
        array = array.T
    rate = int(value["sampling_rate"])
    return {**value, "array": prepare_audio(array, rate, rate, name=name).numpy()}


def _audio_info(value, name):
    """(sample_rate, num_samples, kind) of one (mono) audio value, without resampling."""
    if isinstance(value, dict) and value.get("array") is not None:
        return int(value["sampling_rate"]), len(value["array"]), "array"
    if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        info = sf.info(io.BytesIO(value["bytes"]) if value.get("bytes") else value["path"])
        return int(info.samplerate), int(info.frames), "bytes"
    if isinstance(value, (list, tuple, np.ndarray)):
        raise ValueError(f"{name}: holds a bare {type(value).__name__} of numbers, not audio: hf_map/hf_transform work "
                         f"on raw audio (a datasets.Audio column), so apply them before the feature extraction's map")
    raise ValueError(f"{name}: audio values must be {{'array', 'sampling_rate'}} or {{'bytes', 'path'}} dicts "
                     f"(a datasets.Audio() column, or Audio(decode=False)); got {type(value).__name__}")


def _to_value(clip: np.ndarray, kind: str, rate: int, name: str):
    if kind == "array":
        return {"array": clip, "sampling_rate": rate}
    buffer = io.BytesIO()
    sf.write(buffer, clip, rate, format="WAV", subtype="PCM_16")
    return {"bytes": buffer.getvalue(), "path": f"{name}.wav"}


class _Base:
    def __init__(self, aug, audio_column, label_column, features, synthetic_column, min_confidence, filter_classifier,
                 max_attempts):
        self.source = aug.source if min_confidence is None else with_filter(aug.source, min_confidence,
                                                                             filter_classifier, max_attempts)
        self.unknown_labels = aug.unknown_labels
        self.audio_column, self.label_column = audio_column, label_column
        self.synthetic_column = synthetic_column
        self.label_names = _label_names({}, label_column, features) if features is not None else None

    def _names(self, batch):
        _one_thread_in_forked_child()
        for column in (self.audio_column, self.label_column):
            if column not in batch:
                features = sorted(set(batch) & FEATURE_COLUMNS)
                after = (f" (it holds features {features}: hf_map/hf_transform work on raw audio, so apply them "
                         f"before the feature extraction)") if features else ""
                raise ValueError(f"column {column!r} is not in the dataset (columns: {list(batch.keys())}){after}; "
                                 f"pass audio_column= / label_column=")
        if not isinstance(batch[self.label_column], (list, tuple)) and not hasattr(batch[self.label_column], "__array__"):
            raise ValueError(f"{type(self).__name__} got one row, not a batch: call Dataset.map(..., batched=True) "
                             f"(with_transform always passes batches)")
        values = list(batch[self.label_column])
        names = self.label_names or _label_names(batch, self.label_column, None)
        if values and not isinstance(values[0], str) and names is None:
            raise ValueError(f"column {self.label_column!r} holds indices but its names are unknown: cast it to "
                             f"datasets.ClassLabel(names=[...]) or pass features=ds.features")
        return label_names_of(values, names)

    def _known(self, names):
        return check_known(names, self.source.label_names, self.unknown_labels)

    def _audio(self, batch) -> list:
        return [_mono(v, f"{self.audio_column}[{r}]") for r, v in enumerate(batch[self.audio_column])]

    def _synthesize(self, audio, rows, names, seeds):
        """``(values, accepted)``: synthetic audio values for source rows ``rows`` (in each row's
        own form, rate and length) and which of them the filter accepted (all, unfiltered)."""
        if not rows:
            return [], []
        clips, accepted = self.source.sample([names[r] for r in rows], seeds)
        values = []
        for k, r in enumerate(rows):
            rate, length, kind = _audio_info(audio[r], f"{self.audio_column}[{r}]")
            clip, _ = fit_clips(clips[k: k + 1].float().cpu(), self.source.sample_rate, rate, length)
            values.append(_to_value(clip[0].numpy().astype(np.float32), kind, rate,
                                    f"ganaug_{names[r]}_{seeds[k] % 10**8:08d}"))
        return values, accepted.tolist()


class HFMap(_Base):
    """Picklable ``Dataset.map(batched=True)`` function: input rows + ``ratio`` synthetic rows per
    row, each a clip of its row's label (the twins of a row follow the batch).

    Its pickled state holds paths, settings and the checkpoints' fingerprint, never weights,
    so ``datasets`` hashes it the same way in every process: ``map``'s cache is right, and a
    new checkpoint, seed or ratio makes a new fingerprint (also given as :attr:`fingerprint`
    for ``map(new_fingerprint=...)``). Pass ``with_indices=True`` to ``map`` for an exact
    ratio over the whole dataset; without indices it holds per batch (``floor(ratio * rows)``).
    Rows of labels the generator does not know (``unknown_labels="keep"``) get no twins. Needs
    ``batched=True`` (a one-row call is a one-line error).
    """

    def __init__(self, aug, ratio=DEFAULT_RATIO, seed=0, audio_column="audio", label_column="label", features=None,
                 synthetic_column="synthetic", min_confidence=None, filter_classifier=None,
                 max_attempts=MAX_ATTEMPTS):
        ratio = InjectionPolicy("append", ratio=check_ratio(ratio)).ratio    # rows are added, never replaced
        super().__init__(aug, audio_column, label_column, features, synthetic_column, min_confidence,
                         filter_classifier, max_attempts)
        self.ratio, self.seed = ratio, int(seed)
        self.source_fingerprint = self.source.fingerprint()

    @property
    def fingerprint(self) -> str:
        key = (type(self).__name__, self.source_fingerprint, self.ratio, self.seed, self.audio_column,
               self.label_column, self.synthetic_column, self.label_names, self.unknown_labels)
        return hashlib.sha1(repr(key).encode()).hexdigest()[:16]

    def _batch_seed(self, audio, names, indices):
        if indices is not None:
            return mix_seed(self.seed, "rows", int(indices[0]), len(indices))
        h = hashlib.sha1(repr(names).encode())
        for value in audio:
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
        if indices is None and np.floor(self.ratio * n_rows) < self.ratio * n_rows:
            warnings.warn(f"hf_map(ratio={self.ratio}) without with_indices=True holds the ratio per batch as "
                          f"floor(ratio * rows): batches whose ratio * rows is not whole get fewer synthetic rows (at "
                          f"batch_size=1 and ratio < 1, none); pass with_indices=True to Dataset.map for the exact "
                          f"ratio over the whole dataset", UserWarning, stacklevel=2)
        out = {k: list(v) for k, v in batch.items()}
        audio = out[self.audio_column] = self._audio(batch)
        if self.synthetic_column:
            out[self.synthetic_column] = [False] * n_rows
        if not rows:
            return out
        g = torch.Generator().manual_seed(self._batch_seed(audio, names, indices))
        seeds = torch.randint(0, MAX_SEED, (len(rows),), generator=g).tolist()
        values, accepted = self._synthesize(audio, rows, names, seeds)
        kept = kept_rows(accepted)
        for column in out:
            if column == self.audio_column:
                out[column] += [values[k] for k in kept]
            elif column == self.label_column:
                out[column] += [batch[column][rows[k]] for k in kept]
            elif column == self.synthetic_column:
                out[column] += [True] * len(kept)
            else:
                out[column] += [None] * len(kept)
        return out


class HFTransform(_Base):
    """``Dataset.with_transform`` function: each accessed row is replaced with probability ``p``
    by a fresh synthetic clip of its label (new clips at every access, hence every epoch).
    Rows keep their count, so row access, slices and DataLoaders all work."""

    def __init__(self, aug, p=None, audio_column="audio", label_column="label", features=None,
                 synthetic_column="synthetic", generator=None, min_confidence=None, filter_classifier=None,
                 max_attempts=MAX_ATTEMPTS):
        self.policy = InjectionPolicy("replace", aug.p if p is None else p)     # every row keeps its place
        super().__init__(aug, audio_column, label_column, features, synthetic_column, min_confidence,
                         filter_classifier, max_attempts)
        self.p, self.generator = self.policy.p, generator

    def __call__(self, batch):
        if _inside_dataset_map():
            raise ValueError("hf_transform runs inside Dataset.map, which would write one draw of it into its cache "
                             "(no fresh clips per epoch): for fresh clips, do the feature extraction in the transform, "
                             "ds.with_transform(lambda b: prepare(transform(b))); for cached synthetic rows, "
                             "ds.map(aug.hf_map(ratio=...), batched=True) before the feature extraction")
        names = self._names(batch)
        known = self._known(names)
        params = draw_params(len(names), self.policy, self.generator)   # per-worker streams in DataLoader workers
        rows = synthetic_rows(params["mask"], known)
        seeds = params["seeds"][rows].tolist() if rows else []
        out = {k: list(v) for k, v in batch.items()}
        audio = out[self.audio_column] = self._audio(batch)
        values, accepted = self._synthesize(audio, rows, names, seeds)
        replaced = set()
        for k in kept_rows(accepted):
            r = rows[k]
            replaced.add(r)
            out[self.audio_column][r] = values[k]
            for column in out:
                if column not in (self.audio_column, self.label_column):
                    out[column][r] = None
        if self.synthetic_column:
            out[self.synthetic_column] = [r in replaced for r in range(len(names))]
        return out
