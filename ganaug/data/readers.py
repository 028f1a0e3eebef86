"""KeywordDatasets from a HuggingFace ``datasets.Dataset`` or a SpeechBrain CSV/JSON manifest.

Both give the same items as a folder-backed :class:`KeywordDataset`.
"""

from __future__ import annotations

import io
from pathlib import Path

from ganaug.audio import AudioError, load_audio, prepare_audio
from ganaug.data.dataset import KeywordDataset
from ganaug.data.layouts import Clip

__all__ = ["from_hf", "from_manifest", "decode_hf_audio"]

_LABEL_KEYS = ("label", "command", "class_name", "keyword")
_SPEAKER_KEYS = ("spk_id", "speaker", "speaker_id")


def decode_hf_audio(value, sample_rate=16000, num_samples=None, offset="center", generator=None, name="<hf row>"):
    """Decode one value of a HF audio column, whatever form it has.

    Accepts ``{"array", "sampling_rate"}`` dicts (decoded audio, or a plain struct column),
    ``{"bytes", "path"}`` dicts (``Audio(decode=False)``), and decoder objects with
    ``get_all_samples()`` (datasets >= 4 with torchcodec).
    """
    if isinstance(value, dict) and value.get("array") is not None:
        rate = value.get("sampling_rate")
        if rate is None:
            raise AudioError(f"{name}: audio dict has an 'array' but no 'sampling_rate'")
        return prepare_audio(value["array"], rate, sample_rate, num_samples, offset, generator, name)
    if isinstance(value, dict) and (value.get("bytes") or value.get("path")):
        if value.get("bytes"):
            buffer = io.BytesIO(value["bytes"])
            buffer.name = value.get("path") or name
            return load_audio(buffer, sample_rate, num_samples, offset, generator)
        return load_audio(value["path"], sample_rate, num_samples, offset, generator)
    if hasattr(value, "get_all_samples"):
        samples = value.get_all_samples()
        return prepare_audio(samples.data.mean(0), samples.sample_rate, sample_rate, num_samples, offset, generator, name)
    raise AudioError(
        f"{name}: cannot read audio from a {type(value).__name__}; expected a dict with 'array' and "
        f"'sampling_rate', or with 'bytes'/'path' (Audio(decode=False))"
    )


def _label_name(value, names):
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or (isinstance(value, float) and not value.is_integer()):
        raise ValueError(f"label value {value!r} is neither a name nor a whole index; "
                         f"give label names (str) or ClassLabel indices (int)")
    if names is None:
        raise ValueError(
            f"label value {value!r} is an index but the label column is not a ClassLabel; "
            f"cast it with ds.cast_column(label_column, ClassLabel(names=[...])) or use names"
        )
    return names[int(value)]


def from_hf(hf_dataset, audio_column="audio", label_column="label", speaker_column=None,
            labels=None, sample_rate=16000, num_samples=16384, split=None,
            split_fractions=(0.8, 0.1, 0.1), speaker_fraction=1.0, seed=0, offset="center"):
    """A KeywordDataset over a HF dataset's rows (audio decoded lazily, row by row)."""
    columns = hf_dataset.column_names
    for arg, column in (("audio_column", audio_column), ("label_column", label_column)):
        if column not in columns:
            raise ValueError(f"{arg}={column!r} is not a column of the dataset; columns: {columns}")
    if speaker_column is None:
        speaker_column = next((k for k in _SPEAKER_KEYS if k in columns), None)
    elif speaker_column not in columns:
        raise ValueError(f"speaker_column={speaker_column!r} is not a column of the dataset; columns: {columns}")
    if split is not None and speaker_column is None:
        raise ValueError("a speaker-disjoint split needs speaker ids: pass speaker_column=")
    feature = hf_dataset.features[label_column]
    names = getattr(feature, "names", None)
    label_values = hf_dataset[label_column]
    speakers = hf_dataset[speaker_column] if speaker_column else [""] * len(hf_dataset)
    clips = []
    for row, (value, speaker) in enumerate(zip(label_values, speakers)):
        speaker = "" if speaker is None else str(speaker)
        key = speaker or f"row{row}"
        clips.append(Clip(f"{audio_column}[{row}]", _label_name(value, names), speaker, key, f"row{row}", row))

    def reader(clip, generator, ds=hf_dataset):
        value = ds[clip.row][audio_column]
        return decode_hf_audio(value, ds_.sample_rate, ds_.num_samples, ds_.offset, generator, name=clip.path)

    if labels is None and names is not None:  # keep the ClassLabel's order, so indices agree
        present = {c.label_name for c in clips}
        labels = [name for name in names if name in present]
    ds_ = KeywordDataset.__new__(KeywordDataset)
    ds_.root = Path(".")
    ds_.layout = "hf"
    ds_._init(clips, labels, sample_rate, num_samples, split, split_fractions,
              speaker_fraction, seed, offset, reader=reader)
    return ds_


def _manifest_rows(path: Path, data_root):
    from speechbrain.dataio.dataio import load_data_csv, load_data_json

    replacements = {"data_root": str(data_root)} if data_root is not None else {}
    if path.suffix.lower() == ".csv":
        return load_data_csv(str(path), replacements=replacements)
    if path.suffix.lower() == ".json":
        return load_data_json(str(path), replacements=replacements)
    raise ValueError(f"{path}: a manifest must be a SpeechBrain .csv or .json file")


def from_manifest(path, data_root=None, wav_key="wav", label_key=None, speaker_key=None,
                  labels=None, sample_rate=16000, num_samples=16384, split=None,
                  split_fractions=(0.8, 0.1, 0.1), speaker_fraction=1.0, seed=0, offset="center"):
    """A KeywordDataset over a SpeechBrain CSV/JSON manifest (``$data_root`` is replaced)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such manifest file")
    rows = _manifest_rows(path, data_root)
    if not rows:
        raise ValueError(f"{path}: the manifest has no rows")
    first = next(iter(rows.values()))
    label_key = label_key or next((k for k in _LABEL_KEYS if k in first), None)
    speaker_key = speaker_key or next((k for k in _SPEAKER_KEYS if k in first), None)
    if wav_key not in first or label_key is None or label_key not in first:
        raise ValueError(
            f"{path}: needs a {wav_key!r} column and a label column (one of {_LABEL_KEYS}, or label_key=); "
            f"found {sorted(first)}"
        )
    clips = []
    for uid, row in rows.items():
        speaker = str(row.get(speaker_key, "")) if speaker_key else ""
        clips.append(Clip(str(row[wav_key]), str(row[label_key]), speaker, speaker or uid, uid))
    ds = KeywordDataset.__new__(KeywordDataset)
    ds.root = path.parent
    ds.layout = "manifest"
    ds._init(clips, labels, sample_rate, num_samples, split, split_fractions, speaker_fraction, seed, offset)
    return ds
