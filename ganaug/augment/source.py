"""The one generator source: load, sample, resample, fit length, filter.

A *source* is a :class:`ClipSource` (a ``typing.Protocol``): row ``i`` of ``generate`` and
``sample`` is a pure function of ``(names[i], seeds[i])`` (and, filtered, of the filter and its
threshold), whatever the batch around it. :class:`GeneratorSource` runs G; :class:`ganaug.augment.bank.SyntheticBank` draws
pre-generated clips with the same calls; :class:`FilteredSource` wraps either with a
label-consistency filter (rejection sampling). :func:`fit_clips` is the one resample/crop/pad
policy and :func:`synthesize` the one "clips of these labels, seeded, at this rate and length"
call that every user of generated audio (GanAugment, GanMixDataset, banks, TSTR, evaluate,
report, listen) goes through.
"""

from __future__ import annotations

import hashlib
import json
import os
import warnings
from pathlib import Path
from typing import Protocol, runtime_checkable

import torch

from ganaug.audio import fit_length, resample
from ganaug.augment.filter import (LabelFilter, check_min_confidence, default_filter_dir, filter_config,
                                   not_independent)
from ganaug.checkpoint import (CONFIG_FILE, WEIGHTS_FILE, CheckpointError, find_checkpoints, load_generator,
                               read_config)
from ganaug.functional import sample_latents
from ganaug.models.family import GeneratorFamily

__all__ = ["ClipSource", "GeneratorSource", "FilteredSource", "with_filter", "synthesize", "fit_clips", "row_generator", "mix_seed",
           "attempt_seed", "check_clips", "MAX_SEED", "MAX_ATTEMPTS"]

MAX_SEED = 2**62
MAX_ATTEMPTS = 8     # clips tried per filtered row before the row is given up
WARN_AFTER = 32      # tries of a label with no accepted clip before the "acceptance 0" warning


def mix_seed(*parts) -> int:
    """A 62-bit seed that is a pure function of ``parts`` (ints or strings), stable across runs."""
    digest = hashlib.blake2b(":".join(str(p) for p in parts).encode(), digest_size=8).digest()
    return int.from_bytes(digest, "little") % MAX_SEED


def attempt_seed(seed: int, attempt: int) -> int:
    """Seed of the ``attempt``-th try of a filtered row (attempt 0 is the row's own seed, so an
    accepted first clip is the unfiltered clip)."""
    return int(seed) if attempt == 0 else mix_seed(seed, "attempt", attempt)


def row_generator(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(int(seed))


@runtime_checkable
class ClipSource(Protocol):
    """What GanAugment, GanMixDataset, the HF rows, banks and metrics need from synthetic clips.

    Implemented by :class:`GeneratorSource` (runs G), :class:`ganaug.augment.bank.SyntheticBank`
    (pre-generated clips) and :class:`FilteredSource` (either, behind a label filter).
    """

    label_names: list[str]      # the labels it can make clips of
    sample_rate: int            # of its clips
    num_samples: int | None     # length of its clips (None: a hand-made bank of mixed lengths)

    def fingerprint(self) -> str:
        """Stable id of what the clips are made from (for caches: HF map's fingerprint)."""

    def check_names(self, names) -> None:
        """A one-line ValueError naming the labels of ``names`` it cannot make."""

    def load(self, device=None) -> "ClipSource":
        """Load what it needs now (a damaged checkpoint fails here, not mid-epoch); returns itself."""

    def filter_config(self) -> dict:
        """What its default label filter is found from (:func:`ganaug.augment.filter.default_filter_dir`)."""

    def generate(self, names, seeds, device=None) -> torch.Tensor:
        """``(len(names), num_samples)`` float32 clips in [-1, 1], unfiltered."""

    def sample(self, names, seeds, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clips, accepted)``: clips as :meth:`generate` and an ``(n,)`` bool mask (False: no
        clip of that row passed the filter; the caller keeps the row real)."""


def fit_clips(clips: torch.Tensor, orig_sample_rate: int, sample_rate: int, num_samples: int) -> tuple[torch.Tensor, int]:
    """Resample ``(n, time)`` clips to ``sample_rate`` and fit them to ``num_samples``: the one
    length policy of every generated clip.

    Longer clips are cropped around their centre (a keyword sits mid-clip; WaveGAN's 16384
    samples lose 192 at each end for a 16000-sample batch). Shorter clips are zero-padded AT
    THE END, so the audio is a prefix of the row: that is what the relative ``lengths`` of
    SpeechBrain and the absolute lengths of HF collators describe (``valid / num_samples``),
    and a centred clip would make those lengths lie. Returns the clips and ``valid``, the
    number of samples of audio before padding.
    """
    clips = resample(clips, orig_sample_rate, sample_rate)
    valid = min(clips.shape[-1], num_samples)
    offset = "center" if clips.shape[-1] > num_samples else "start"
    return fit_length(clips, num_samples, offset), valid


def check_clips(clips: torch.Tensor, ckpt_dir: Path) -> torch.Tensor:
    """``clips`` ``(n, time)`` unless they hold NaN/Inf, or all ``n > 1`` of them are one constant value
    (a damaged generator: every clip -1.0): never served or written, a ``CheckpointError`` naming the checkpoint."""
    if not torch.isfinite(clips).all():
        raise CheckpointError(f"{ckpt_dir}: the generator made NaN or Inf samples; its {WEIGHTS_FILE} is damaged or "
                              f"training diverged: use an earlier checkpoint or retrain")
    if clips.shape[0] > 1 and clips.numel() and bool((clips == clips.reshape(-1)[0]).all()):
        raise CheckpointError(f"{ckpt_dir}: every generated clip is the constant {clips.reshape(-1)[0].item():.3g}; its "
                              f"{WEIGHTS_FILE} is damaged: restore it or use an earlier checkpoint")
    return clips


class GeneratorSource:
    """Clips of given label names from generator checkpoints.

    Args:
        ckpt: a conditional checkpoint directory, a per-keyword run folder (``<run>/<label>/``),
            or ``{label: checkpoint_dir}``.
        unconditional: accept one unconditional checkpoint (``label_names == []``; rows are asked
            for with the name ``None``). For metrics and listening pages; augmentation needs labels.

    Configs are read (and checked) at once; weights load on first use, once per process: a
    pickled source (e.g. sent to a DataLoader worker) carries paths, never weights.
    """

    def __init__(self, ckpt, unconditional: bool = False):
        if isinstance(ckpt, dict):
            if not ckpt:
                raise ValueError("ckpt={}: give at least one {label: checkpoint_dir} entry")
            entries = {str(label): Path(path).absolute() for label, path in ckpt.items()}
            self.kind = "per_label"
        elif isinstance(ckpt, (str, os.PathLike)):
            path = Path(ckpt).absolute()
            if not path.is_dir():
                raise CheckpointError(f"ckpt={str(ckpt)!r}: no such directory; give a checkpoint directory written "
                                      f"by `ganaug train`, a per-keyword run folder, or {{label: dir}}")
            if (path / CONFIG_FILE).is_file():
                entries, self.kind = {None: path}, "conditional"
            elif find_checkpoints(path):
                entries, self.kind = find_checkpoints(path), "per_label"
            else:
                read_config(path)  # raises: not a checkpoint directory
                raise AssertionError("unreachable")
        else:
            raise TypeError(f"ckpt={ckpt!r}: expected a checkpoint directory (str or Path) or {{label: dir}}, "
                            f"got {type(ckpt).__name__}")
        self.entries: dict = {}  # label -> (dir, index in G or None); None -> an unconditional G
        configs = {}
        for label, path in entries.items():
            config = read_config(path)
            if not (path / WEIGHTS_FILE).is_file():
                raise CheckpointError(f"{path / WEIGHTS_FILE}: missing; the checkpoint is incomplete "
                                      f"(copy the whole directory written by `ganaug train`)")
            configs[str(path)] = config
            names = config.get("label_names")
            if label is None and not names:  # one unconditional checkpoint
                if not unconditional:
                    raise CheckpointError(
                        f"{path}: an unconditional generator cannot make clips of a given label; pass "
                        f"{{label: dir}} of per-keyword checkpoints, or train a conditional one")
                self.kind = "unconditional"
                self.entries[None] = (path, None)
            elif label is None:  # one conditional checkpoint
                for i, name in enumerate(names):
                    self.entries[str(name)] = (path, i)
            elif names is None:
                self.entries[label] = (path, None)
            elif label in names:
                self.entries[label] = (path, names.index(label))
            else:
                raise CheckpointError(f"{path}: a generator of labels {names}, not of {label!r}; "
                                      f"fix the {{label: dir}} mapping")
        rates = {(c.get("sample_rate", 16000), c.get("num_samples")) for c in configs.values()}
        if len(rates) != 1:
            raise CheckpointError(f"ckpt={ckpt!r}: the checkpoints differ in (sample_rate, num_samples) {sorted(rates)}; "
                                  f"use generators trained at one rate and length")
        self.sample_rate, self.num_samples = (int(v) for v in rates.pop())
        self.configs = configs
        self.label_names = [n for n in self.entries if n is not None]
        self._models: dict[str, GeneratorFamily] = {}

    # -- pickling: paths travel, weights do not --------------------------------------------
    def __getstate__(self):
        state = dict(self.__dict__)
        state["_models"] = {}
        return state

    def fingerprint(self) -> str:
        """Stable id of the checkpoints' configs and weight files (size, mtime)."""
        h = hashlib.sha1()
        for label, (path, index) in self.entries.items():
            st = os.stat(path / WEIGHTS_FILE)
            h.update(f"{label}|{index}|{st.st_size}|{st.st_mtime_ns}|".encode())
            h.update(json.dumps(self.configs[str(path)], sort_keys=True).encode())
        return h.hexdigest()[:16]

    def filter_config(self) -> dict:
        """What the default label filter is found from (see :func:`default_filter_dir`)."""
        config = filter_config(next(iter(self.configs.values())))
        if self.kind == "per_label" and len(self.configs) > 1 and not config["label_names"]:
            config["label_names"] = self.label_names
        return config

    def load(self, device=None) -> "GeneratorSource":
        """Load every generator now (to surface a bad checkpoint early) onto ``device``."""
        for path, _ in self.entries.values():
            self._model(path, device)
        return self

    def model(self, name=None) -> GeneratorFamily:
        """The generator module that makes clips of ``name`` (``None``: an unconditional one)."""
        return self._model(self.entries[name][0], None)

    def _model(self, path: Path, device) -> GeneratorFamily:
        model = self._models.get(str(path))
        if model is None:
            model = self._models[str(path)] = load_generator(path)
        if device is not None and next(model.parameters()).device != torch.device(device):
            model.to(device)
        return model

    def check_names(self, names) -> None:
        unknown = sorted({str(n) for n in names if n not in self.entries})
        if unknown:
            raise ValueError(f"labels {unknown} are not known to this generator; it knows "
                             f"{self.label_names or 'no labels (it is unconditional: ask for None)'}")

    def generate(self, names, seeds, device=None) -> torch.Tensor:
        """``(len(names), num_samples)`` float32 clips on ``device``; row i depends only on (names[i], seeds[i])."""
        names, seeds = list(names), [int(s) for s in seeds]
        if len(names) != len(seeds):
            raise ValueError(f"got {len(names)} names and {len(seeds)} seeds; give one seed per clip")
        self.check_names(names)
        groups: dict[str, list[int]] = {}
        for row, name in enumerate(names):
            groups.setdefault(str(self.entries[name][0]), []).append(row)
        out = None
        for path_str, rows in groups.items():
            model = self._model(Path(path_str), device)
            model_device = next(model.parameters()).device
            z = torch.cat([sample_latents(1, model.latent_dim, row_generator(seeds[r])) for r in rows]).to(model_device)
            index = [self.entries[names[r]][1] for r in rows]
            labels = None if index[0] is None else torch.tensor(index, device=model_device)
            clips = check_clips(model.synthesize(z, labels), Path(path_str))  # waveforms, whatever the family
            if out is None:
                out = torch.empty(len(names), clips.shape[-1], device=model_device)
            out[torch.tensor(rows, device=model_device)] = clips
        if out is None:
            return torch.empty(0, self.num_samples, device=device)
        return out if device is None else out.to(device)

    def sample(self, names, seeds, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        """``(clips, accepted)``: :meth:`generate` and an all-True ``(n,)`` mask (no filter)."""
        clips = self.generate(names, seeds, device)
        return clips, torch.ones(clips.shape[0], dtype=torch.bool)


class FilteredSource:
    """A source whose clips a :class:`LabelFilter` accepts: rejection sampling, row by row.

    Row ``i`` tries the seeds ``attempt_seed(seeds[i], k)`` for ``k = 0 .. max_attempts - 1`` and
    keeps the first clip the filter accepts, so it is a pure function of (label, seed, filter,
    threshold, max_attempts). A row none of whose tries is accepted is returned with
    ``accepted=False`` (callers keep the real row or drop it). :meth:`acceptance` gives the
    accepted share of every clip tried, per label, in this process; a label none of whose first
    ``WARN_AFTER`` tries is accepted gives one warning naming it.
    """

    def __init__(self, source, label_filter: LabelFilter, max_attempts: int = MAX_ATTEMPTS):
        if isinstance(max_attempts, bool) or int(max_attempts) != max_attempts or max_attempts < 1:
            raise ValueError(f"max_attempts={max_attempts!r}: give a positive number of clips to try per row")
        self.source, self.filter, self.max_attempts = source, label_filter, int(max_attempts)
        self.label_names = list(source.label_names)
        self.sample_rate, self.num_samples = source.sample_rate, source.num_samples
        label_filter.check_labels(self.label_names)
        pleased = not_independent(getattr(source, "configs", {}), label_filter.path) if label_filter.path else []
        if pleased:
            warnings.warn(f"filter_classifier {label_filter.path}: generator {pleased[0]} was trained to please it "
                          f"(aux: frozen), so it accepts clips made to fool it; filter with a classifier trained another "
                          f"way (e.g. `ganaug kws` with another seed or recipe)", UserWarning, stacklevel=2)
        self.tried: dict[str, int] = {}
        self.accepted: dict[str, int] = {}
        self._warned: set[str] = set()

    def check_names(self, names) -> None:
        self.source.check_names(names)

    def load(self, device=None) -> "FilteredSource":
        self.source.load(device)
        return self

    def filter_config(self) -> dict:
        return self.source.filter_config()

    def __getstate__(self):  # settings travel, counters do not (a stable pickle: HF map's cache key)
        return {**self.__dict__, "tried": {}, "accepted": {}, "_warned": set()}

    def fingerprint(self) -> str:
        key = f"{self.source.fingerprint()}|{self.filter.fingerprint()}|{self.max_attempts}"
        return hashlib.sha1(key.encode()).hexdigest()[:16]

    def generate(self, names, seeds, device=None) -> torch.Tensor:
        """Unfiltered clips (the wrapped source's): the filter acts in :meth:`sample`."""
        return self.source.generate(names, seeds, device)

    def sample(self, names, seeds, device=None) -> tuple[torch.Tensor, torch.Tensor]:
        names, seeds = list(names), [int(s) for s in seeds]
        clips = self.source.generate(names, seeds, device)
        ok = torch.zeros(len(names), dtype=torch.bool)
        pending = list(range(len(names)))
        for attempt in range(self.max_attempts):
            if not pending:
                break
            if attempt:
                tries = self.source.generate([names[r] for r in pending],
                                             [attempt_seed(seeds[r], attempt) for r in pending], device)
            else:
                tries = clips
            verdict = self.filter.accept(tries, [names[r] for r in pending], self.sample_rate)
            for k, r in enumerate(pending):
                self.tried[names[r]] = self.tried.get(names[r], 0) + 1
                if verdict[k]:
                    self.accepted[names[r]] = self.accepted.get(names[r], 0) + 1
                    ok[r] = True
                    if attempt:
                        clips[r] = tries[k]
            pending = [r for r in pending if not ok[r]]
        self._warn_empty()
        return clips, ok

    def acceptance(self) -> dict[str, float]:
        """``{label: accepted clips / clips tried}`` over the labels tried so far."""
        return {name: self.accepted.get(name, 0) / n for name, n in self.tried.items() if n}

    def _warn_empty(self) -> None:
        empty = sorted(n for n, t in self.tried.items()
                       if t >= WARN_AFTER and not self.accepted.get(n) and n not in self._warned)
        if empty:
            self._warned.update(empty)
            warnings.warn(f"labels {empty}: none of {WARN_AFTER}+ synthetic clips each reached "
                          f"min_confidence={self.filter.min_confidence} under {self.filter}; their rows stay real. "
                          f"Lower min_confidence, train the generator longer, or leave these labels out",
                          UserWarning, stacklevel=3)


def with_filter(source, min_confidence=None, filter_classifier=None, max_attempts: int = MAX_ATTEMPTS,
                device=None):
    """``source`` itself when ``min_confidence`` is None/0, else a :class:`FilteredSource`.

    ``filter_classifier``: a classifier folder or a KWSClassifier; ``None`` takes the generator's
    default filter (:func:`default_filter_dir` of its config), which must exist already
    (``ganaug generate --min_confidence`` trains it when missing).
    """
    threshold = check_min_confidence(min_confidence)
    if threshold is None:
        return source
    if isinstance(source, FilteredSource):
        source = source.source
    if filter_classifier is None or filter_classifier == "":
        if not hasattr(source, "filter_config"):
            raise ValueError(f"{source!r} cannot name its default filter: pass filter_classifier=DIR")
        folder = default_filter_dir(source.filter_config())
        if not folder.is_dir():
            raise FileNotFoundError(
                f"min_confidence={threshold}: the generator's filter classifier {folder} does not exist yet; train it "
                f"with `ganaug generate CKPT --per-label 1 --out /tmp/probe --min_confidence {threshold}` (or "
                f"ganaug.kws.reference.ensure_reference_for(config)), or pass filter_classifier=DIR")
        filter_classifier = folder
    return FilteredSource(source, LabelFilter(filter_classifier, threshold, device), max_attempts)


def synthesize(source, names, seed: int = 0, sample_rate: int | None = None, num_samples: int | None = None,
               device=None, batch_size: int = 64, keep_rejected: bool = False) -> tuple[torch.Tensor, list, torch.Tensor]:
    """Clips of the labels ``names`` (one row per entry; ``None`` for an unconditional source).

    The ``j``-th clip of label ``y`` in ``names`` is made from ``mix_seed(seed, y, j)`` (the
    seeds ``ganaug generate`` uses, so a bank's clip ``j`` is the same clip), resampled and fit
    to ``(sample_rate, num_samples)`` (default: the source's) by :func:`fit_clips`.

    Returns ``(clips (n', num_samples) float32 on the CPU, their names, accepted (n,) bool)``:
    with a filtered source, rows no try of which was accepted are dropped (``n' <= n``), or kept
    when ``keep_rejected``.
    """
    names = list(names)
    rate = int(sample_rate or source.sample_rate)
    length = int(num_samples or source.num_samples)
    if int(batch_size) < 1:
        raise ValueError(f"batch_size={batch_size!r}: must be a positive number of clips")
    seen: dict = {}
    seeds = []
    for name in names:
        seeds.append(mix_seed(seed, "" if name is None else name, seen.get(name, 0)))
        seen[name] = seen.get(name, 0) + 1
    out = torch.empty(len(names), length)
    ok = torch.ones(len(names), dtype=torch.bool)
    for start in range(0, len(names), int(batch_size)):
        stop = min(len(names), start + int(batch_size))
        clips, accepted = source.sample(names[start:stop], seeds[start:stop], device)
        out[start:stop] = fit_clips(clips.float().cpu(), source.sample_rate, rate, length)[0]
        ok[start:stop] = accepted
    if keep_rejected:
        return out, names, ok
    return out[ok], [n for n, a in zip(names, ok.tolist()) if a], ok
