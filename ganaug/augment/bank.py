"""SyntheticBank: clips generated once, drawn many times (how CPU-only training stays fast).

A bank folder holds ``bank.json`` and either audio files plus a SpeechBrain CSV manifest::

    bank/
      bank.json                 label_names, sample_rate, num_samples, per_label, seed, ckpt,
                                acceptance {label: rate} (when filtered), generator (what finds its filter)
      manifest.csv              ID, duration, wav, spk_id, label   (wav = $data_root/<label>/<ID>.flac)
      <label>/<label>_000000.flac

or a HuggingFace dataset written by ``datasets.Dataset.save_to_disk`` (columns ``id``,
``audio`` as ``Audio``, ``label`` as ``ClassLabel``, ``spk_id``). ``ganaug generate`` writes both.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import shutil
import warnings
from pathlib import Path

import numpy as np
import soundfile as sf
import torch
from tqdm.auto import tqdm

from ganaug.audio import load_audio
from ganaug.augment.source import MAX_ATTEMPTS, ClipSource, FilteredSource, GeneratorSource, mix_seed, with_filter
from ganaug.checkpoint import is_checkpoint
from ganaug.io import atomic_write, atomic_write_json, replace_folder, temp_folder, write_error

__all__ = ["SyntheticBank", "make_source", "generate_bank", "is_bank", "BANK_FILE", "MANIFEST_FILE", "FORMATS",
           "CACHE_DIR"]

BANK_FILE = "bank.json"
MANIFEST_FILE = "manifest.csv"
FORMATS = ("flac", "wav", "hf")
CACHE_DIR = ".tensors"  # <bank>/.tensors/<content key>/<label>.npy
SPEAKER = "ganaug"  # spk_id of synthetic clips in manifests


def is_bank(path) -> bool:
    """A bank folder: its index files, and not a generator checkpoint directory (which is read as one)."""
    path = Path(path)
    return not is_checkpoint(path) and (path / BANK_FILE).is_file() or (path / MANIFEST_FILE).is_file() or (path / "dataset_info.json").is_file()


class SyntheticBank:
    """Pre-generated synthetic clips, one ``(n, num_samples)`` float32 tensor per label.

    Args:
        path: a bank folder (``ganaug generate`` output, a SpeechBrain CSV with ``wav`` and
            ``label`` columns, or a saved HF dataset with ``audio`` and ``label`` columns).
        mmap: keep each label's clips in ``<path>/.tensors/<key>/<label>.npy`` and map it (shared
            by DataLoader workers, decoded once); ``False`` decodes into RAM. ``<key>`` hashes the
            bank's index files (bank.json, manifest.csv or the HF dataset's state), so clips
            regenerated into the same folder never meet the cache of the old ones.

    Tensors load lazily, per label, once per process; pickling drops them (paths travel).
    """

    def __init__(self, path, mmap: bool = True):
        self.path = Path(path).absolute()  # a relative bank stays right after a chdir, and never doubles
        if not self.path.is_dir():
            raise FileNotFoundError(f"bank={str(path)!r}: no such folder; create one with "
                                    f"`ganaug generate CKPT --per-label N --out {path}`")
        self.mmap = bool(mmap)
        self._open()

    def _open(self) -> None:
        """Read the index; the bank is bound to the contents it read (``_key``)."""
        self._key = self.content_key()
        meta = json.loads((self.path / BANK_FILE).read_text()) if (self.path / BANK_FILE).is_file() else {}
        if (self.path / MANIFEST_FILE).is_file():
            self.format, self._files = "csv", self._read_manifest()
        elif (self.path / "dataset_info.json").is_file():
            self.format, self._files = "hf", self._read_hf()
        else:
            raise FileNotFoundError(f"{self.path}: no {MANIFEST_FILE} or saved HF dataset; not a synthetic bank "
                                    f"(create one with `ganaug generate`)")
        # labels the filter emptied when the bank was written: known (their rows stay real), never drawn
        self.empty_labels = [str(n) for n in meta.get("empty_labels") or [] if str(n) not in self._files]
        self.label_names = list(meta.get("label_names") or self._files) + self.empty_labels
        self.sample_rate = int(meta.get("sample_rate", 16000))
        self.num_samples = meta.get("num_samples")
        self.meta = meta
        self._tensors: dict[str, torch.Tensor] = {}

    # -- reading the index -------------------------------------------------------------------
    def _read_manifest(self) -> dict[str, list]:
        files: dict[str, list] = {}
        with open(self.path / MANIFEST_FILE, newline="") as f:
            for row in csv.DictReader(f):
                if "wav" not in row or "label" not in row:
                    raise ValueError(f"{self.path / MANIFEST_FILE}: needs 'wav' and 'label' columns, found {sorted(row)}")
                wav = row["wav"].replace("$data_root", str(self.path))
                files.setdefault(row["label"], []).append(wav if os.path.isabs(wav) else str(self.path / wav))
        if not files:
            raise ValueError(f"{self.path / MANIFEST_FILE}: the manifest has no rows")
        return files

    def _hf_dataset(self):
        import datasets

        ds = datasets.load_from_disk(str(self.path))
        if isinstance(ds.features.get("audio"), datasets.Audio):
            ds = ds.cast_column("audio", datasets.Audio(decode=False))
        return ds

    def _read_hf(self) -> dict[str, list]:
        ds = self._hf_dataset()
        names = getattr(ds.features["label"], "names", None)
        files: dict[str, list] = {}
        for row, value in enumerate(ds["label"]):
            files.setdefault(names[value] if names else str(value), []).append(row)
        return files

    # -- clips -------------------------------------------------------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_tensors"] = {}
        return state

    def __len__(self) -> int:
        return sum(len(v) for v in self._files.values())

    def counts(self) -> dict[str, int]:
        return {name: len(self._files.get(name, [])) for name in self.label_names}

    def content_key(self) -> str:
        """Hash of the bank's index files: changes whenever ``ganaug generate`` rewrites the bank."""
        h = hashlib.sha1()
        for name in (BANK_FILE, MANIFEST_FILE, "dataset_info.json", "state.json"):
            try:
                h.update(name.encode() + b"\0" + (self.path / name).read_bytes() + b"\0")
            except FileNotFoundError:
                continue
        return h.hexdigest()[:16]

    def fingerprint(self) -> str:
        return hashlib.sha1(f"{self.path}|{self.content_key()}".encode()).hexdigest()[:16]

    def filter_config(self) -> dict:
        """The generator config part that finds the default label filter (stored by ``ganaug generate``)."""
        if not self.meta.get("generator"):
            raise ValueError(f"{self.path / BANK_FILE}: holds no generator config (an older or hand-made bank); "
                             f"pass filter_classifier=DIR")
        return dict(self.meta["generator"])

    def _decode(self, label: str) -> np.ndarray:
        if self.format == "csv":
            wavs = [load_audio(f, self.sample_rate) for f in self._files[label]]
        else:
            from ganaug.data import decode_hf_audio

            ds = self._hf_dataset().select(self._files[label])
            wavs = [decode_hf_audio(v, self.sample_rate, name=f"{self.path}[{label}]") for v in ds["audio"]]
        length = int(self.num_samples or max(w.shape[-1] for w in wavs))
        array = np.zeros((len(wavs), length), dtype=np.float32)
        for i, w in enumerate(wavs):
            array[i, : min(length, w.shape[-1])] = w[:length].numpy()
        return array

    def clips(self, label: str) -> torch.Tensor:
        """All clips of ``label``, ``(n, num_samples)`` float32 (memory-mapped when ``mmap``).

        Decoded clips are kept (and cached in ``.tensors/<key>/``) only if the bank's index did not
        change while they were read: a bank regenerated meanwhile is read again, never mixed."""
        tensor = self._tensors.get(label)
        if tensor is None:
            tensor = self._tensors[label] = self._load(label)
        return tensor

    def _load(self, label: str) -> torch.Tensor:
        for _ in range(3):
            if self.content_key() != self._key:   # regenerated since it was opened: read the new index
                self._open()
            if label not in self._files:
                raise ValueError(f"label {label!r} is not in the bank {self.path}; it holds {self.label_names}")
            cache = self._cache_folder() / f"{label}.npy"
            if self.mmap and cache.is_file():
                return torch.from_numpy(np.load(cache, mmap_mode="c"))
            try:
                array = self._decode(label)
            except (OSError, ValueError):
                if self.content_key() == self._key:
                    raise
                continue                          # files replaced under the decoder: read the new bank
            if self.content_key() != self._key:
                continue                          # a mix of two banks: thrown away
            if self.mmap:
                def write(tmp, array=array):
                    with open(tmp, "wb") as f:  # a file object: np.save would add ".npy" to a name
                        np.save(f, array)

                try:
                    atomic_write(cache, write)
                    return torch.from_numpy(np.load(cache, mmap_mode="c"))
                except OSError:
                    pass  # read-only bank: keep it in RAM
            return torch.from_numpy(array)
        raise ValueError(f"{self.path}: the bank was regenerated again and again while it was read; wait for "
                         f"`ganaug generate` to finish, then read it")

    def _cache_folder(self) -> Path:
        root = self.path / CACHE_DIR
        key = self._key
        if root.is_dir():  # caches of earlier contents of this folder: never served, so removed
            for old in root.iterdir():
                if old.name != key:
                    shutil.rmtree(old, ignore_errors=True) if old.is_dir() else old.unlink(missing_ok=True)
        return root / key

    def draw(self, label: str, n: int, generator: torch.Generator | None = None) -> torch.Tensor:
        """``n`` clips of ``label`` drawn uniformly with replacement."""
        clips = self.clips(label)
        return clips[torch.randint(0, clips.shape[0], (n,), generator=generator)].clone()

    def load(self, device=None) -> "SyntheticBank":
        """The source interface: nothing to load ahead (each label's clips load on first use)."""
        return self

    def check_names(self, names) -> None:
        unknown = sorted({str(n) for n in names if n not in self._files})
        if unknown:
            raise ValueError(f"labels {unknown} are not in the bank {self.path}; it holds {self.label_names}")

    def generate(self, names, seeds, device=None) -> torch.Tensor:
        """The source interface: clip ``seeds[i] mod count`` of ``names[i]`` for every row."""
        names, seeds = list(names), [int(s) for s in seeds]
        self.check_names(names)
        rows = [self.clips(name)[seed % self.clips(name).shape[0]] for name, seed in zip(names, seeds)]
        out = torch.stack(rows) if rows else torch.empty(0, int(self.num_samples or 0))
        return out if device is None else out.to(device)

    def sample(self, names, seeds, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clips, accepted)``: :meth:`generate`, and a mask that is False only for rows of the labels the
        filter emptied when the bank was written (zero clips: their rows stay real, as with a filtered G)."""
        names, seeds = list(names), list(seeds)
        accepted = torch.tensor([n not in self.empty_labels for n in names], dtype=torch.bool)
        keep = [i for i, ok in enumerate(accepted.tolist()) if ok]
        found = self.generate([names[i] for i in keep], [seeds[i] for i in keep], device)
        clips = torch.zeros(len(names), found.shape[-1] if keep else int(self.num_samples or 0), device=found.device)
        clips[keep] = found
        return clips, accepted

    def __repr__(self) -> str:
        return f"SyntheticBank({str(self.path)!r}, {len(self)} clips, labels={self.label_names}, {self.sample_rate} Hz)"


# -- the one way to open a source ------------------------------------------------------------
def make_source(ckpt=None, bank=None, min_confidence=None, filter_classifier=None, max_attempts: int = MAX_ATTEMPTS):
    """The source of a GanAugment / GanMixDataset / TSTR run: a :class:`GeneratorSource`, or a
    :class:`SyntheticBank` when ``bank`` is given or ``ckpt`` is one; wrapped in a
    :class:`~ganaug.augment.source.FilteredSource` when ``min_confidence`` is set."""
    if bank is not None:
        source = bank if isinstance(bank, SyntheticBank) else SyntheticBank(bank)
    elif isinstance(ckpt, ClipSource):       # a source made already (e.g. a SelectedSource)
        source = ckpt
    elif ckpt is None:
        raise ValueError("give ckpt= (a checkpoint directory, a per-keyword run folder or {label: dir}) or bank=")
    elif isinstance(ckpt, (str, os.PathLike)) and is_bank(ckpt):
        source = SyntheticBank(ckpt)
    else:
        source = GeneratorSource(ckpt)
    return with_filter(source, min_confidence, filter_classifier, max_attempts)


# -- writing a bank ------------------------------------------------------------------------------
def _audio_bytes(clip: np.ndarray, sample_rate: int, fmt: str) -> bytes:
    buffer = io.BytesIO()
    sf.write(buffer, clip, sample_rate, format=fmt.upper(), subtype="PCM_16")
    return buffer.getvalue()


def _check_out(out: Path) -> None:
    """``out`` is new, empty, or a bank (``bank.json``): regenerating replaces it whole; never a checkpoint's folder."""
    for folder in (out, *out.absolute().parents):
        if is_checkpoint(folder):
            raise ValueError(f"--out {out}: inside the checkpoint {folder}; write the bank to a folder of its own")
    if out.is_dir() and any(out.iterdir()) and not (out / BANK_FILE).is_file():
        raise ValueError(f"--out {out}: exists and is not a bank written by `ganaug generate` (no {BANK_FILE}); "
                         f"regenerating replaces the whole folder, so give a new or empty folder")


def _write_clips(source, folder: Path, labels, per_label: int, batch_size: int, seed: int, device, format: str,
                 progress: bool) -> tuple[list, dict]:
    """Generate and write every clip into ``folder``: ``(rows, kept)``, rows ``(id, label, bytes or path, n)``."""
    rate, ext = source.sample_rate, ("flac" if format == "hf" else format)
    rows, kept = [], {label: 0 for label in labels}
    bar = tqdm(total=per_label * len(labels), desc="generate", unit="clip", disable=not progress)
    for label in labels:
        for start in range(0, per_label, batch_size):
            stop = min(per_label, start + batch_size)
            seeds = [mix_seed(seed, label, i) for i in range(start, stop)]
            clips, accepted = source.sample([label] * len(seeds), seeds, device)
            for i, clip, ok in zip(range(start, stop), clips.cpu().numpy(), accepted.tolist()):
                if not ok:
                    continue
                kept[label] += 1
                uid = f"{label}_{i:06d}"
                if format == "hf":
                    rows.append((uid, label, _audio_bytes(clip, rate, ext), clip.shape[-1]))
                else:   # a new folder: plain writes, fsynced before it is swapped in
                    (folder / label).mkdir(exist_ok=True)
                    sf.write(folder / label / f"{uid}.{ext}", clip, rate, format=ext.upper(), subtype="PCM_16")
                    rows.append((uid, label, f"$data_root/{label}/{uid}.{ext}", clip.shape[-1]))
            bar.update(len(seeds))
    bar.close()
    return rows, kept


def _write_index(folder: Path, rows: list, present: list, format: str, rate: int) -> None:
    if format == "hf":
        import datasets

        ds = datasets.Dataset.from_dict({
            "id": [r[0] for r in rows],
            "audio": [{"bytes": r[2], "path": f"{r[0]}.flac"} for r in rows],
            "label": [present.index(r[1]) for r in rows],
            "spk_id": [SPEAKER] * len(rows),
        })
        ds = ds.cast_column("audio", datasets.Audio(sampling_rate=rate))
        ds = ds.cast_column("label", datasets.ClassLabel(names=present))
        ds.save_to_disk(str(folder))
        return
    with open(folder / MANIFEST_FILE, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["ID", "duration", "wav", "spk_id", "label"])
        for uid, label, wav, n in rows:
            w.writerow([uid, f"{n / rate:.4f}", wav, SPEAKER, label])


def _open_source(ckpt, min_confidence, filter_classifier, max_attempts, device):
    source = make_source(ckpt, min_confidence=min_confidence, filter_classifier=filter_classifier,
                         max_attempts=max_attempts)
    base = source.source if isinstance(source, FilteredSource) else source
    if isinstance(base, SyntheticBank):
        raise ValueError(f"ckpt={str(ckpt)!r} is already a bank; give a checkpoint directory")
    base.load()                       # a damaged checkpoint is one line before anything is generated
    try:
        device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    except (RuntimeError, TypeError) as err:
        raise ValueError(f"device={device!r}: not a torch device; use cpu, cuda or cuda:N") from err
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ValueError(f"device={str(device)!r}: no CUDA GPU here; use --device cpu")
    return source, base, device


def _source_meta(source, base, labels, empty, max_attempts) -> dict:
    """What bank.json records of the source: rate, length, generator, and the filter's acceptance."""
    from ganaug import __version__

    meta = {"sample_rate": source.sample_rate, "num_samples": source.num_samples, "ganaug_version": __version__,
            "ckpt_fingerprint": base.fingerprint(), "generator": base.filter_config()}
    if isinstance(source, FilteredSource):
        acceptance = source.acceptance()
        meta.update(acceptance={label: round(acceptance.get(label, 0.0), 6) for label in labels},
                    empty_labels=empty, min_confidence=source.filter.min_confidence, max_attempts=int(max_attempts),
                    filter_classifier=str(source.filter.path or "KWSClassifier"),
                    filter_fingerprint=source.filter.fingerprint())
    return meta


def generate_bank(ckpt, out, per_label: int, format: str = "flac", batch_size: int = 64, device=None,
                  seed: int = 0, labels=None, progress: bool = True, min_confidence=None, filter_classifier=None,
                  max_attempts: int = MAX_ATTEMPTS) -> SyntheticBank:
    """Generate ``per_label`` clips of every label of ``ckpt`` into the bank folder ``out``.

    Clip ``i`` of label ``y`` is a pure function of ``(seed, y, i)`` (and of the filter): the
    batch size and the device change speed, not content (up to float rounding across devices).
    The bank is written into a new folder beside ``out`` and swapped in whole
    (:func:`ganaug.io.replace_folder`): a reader sees the old bank or the new one, and nothing of
    the old one is left. ``out`` must be new, empty or a bank; inside a checkpoint it is refused.

    With ``min_confidence`` (see :func:`~ganaug.augment.source.with_filter`), clip ``i`` is the
    first of up to ``max_attempts`` tries the filter accepts; a row with none is left out, so a
    label may hold fewer than ``per_label`` clips. ``bank.json`` stores ``acceptance`` (accepted
    share of every clip tried, per label) and ``empty_labels``. Labels with no clip at all get a
    warning naming them and are left out of the bank; if no label has any clip, nothing is
    written and a ValueError says what to do.
    """
    if format not in FORMATS:
        raise ValueError(f"format={format!r}: choose one of {FORMATS}")
    if isinstance(per_label, bool) or not isinstance(per_label, int) or per_label < 1:
        raise ValueError(f"per_label={per_label!r}: give a positive number of clips per label (e.g. --per-label 100)")
    if isinstance(batch_size, bool) or int(batch_size) < 1:
        raise ValueError(f"batch_size={batch_size!r}: must be a positive number of clips")
    out = Path(out)
    _check_out(out)
    source, base, device = _open_source(ckpt, min_confidence, filter_classifier, max_attempts, device)
    labels = list(source.label_names if labels is None else labels)
    base.check_names(labels)
    folder = temp_folder(out)
    try:
        rows, kept = _write_clips(source, folder, labels, per_label, int(batch_size), seed, device, format, progress)
        empty = [label for label in labels if not kept[label]]
        if not rows:
            raise ValueError(f"no clip of labels {empty} reached min_confidence={source.filter.min_confidence} in "
                             f"{max_attempts} tries per clip (acceptance {source.acceptance()}); nothing was written "
                             f"to {out}. Lower --min_confidence, train the generator longer, or check --filter_classifier")
        if empty:
            warnings.warn(f"labels {empty}: acceptance 0, no clip reached min_confidence={source.filter.min_confidence} "
                          f"in {max_attempts} tries per clip; the bank {out} holds no clip of them. Lower "
                          f"--min_confidence or train the generator longer to get them", UserWarning, stacklevel=2)
        present = [label for label in labels if kept[label]]
        _write_index(folder, rows, present, format, source.sample_rate)
        meta = {"format": format, "label_names": present, "per_label": int(per_label), "seed": int(seed),
                "ckpt": str(ckpt), "counts": kept, **_source_meta(source, base, labels, empty, max_attempts)}
        atomic_write_json(folder / BANK_FILE, meta)
        replace_folder(folder, out)
    except BaseException as err:
        shutil.rmtree(folder, ignore_errors=True)
        if isinstance(err, OSError):
            raise write_error(err, out.parent, creating=False) from err
        raise
    return SyntheticBank(out)
