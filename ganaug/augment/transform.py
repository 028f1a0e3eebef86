"""GanAugment: replace (or add) rows of a batch with synthetic clips of the same label.

The work is done by stateless functions (:func:`draw_params`, :func:`gan_augment`, and the
source's :func:`~ganaug.augment.source.fit_clips`); :class:`GanAugment` is the thin ``nn.Module`` that validates arguments,
owns the source and passes through in ``eval()``.
"""

from __future__ import annotations

from numbers import Real

import torch
from torch import nn

from ganaug.augment.bank import make_source
from ganaug.augment.checks import UNKNOWN_LABELS, check_known, check_policy, label_names_of
from ganaug.augment.rows import DEFAULT_RATIO, MODES, InjectionPolicy, draw_params, kept_rows, synthetic_rows
from ganaug.augment.source import MAX_ATTEMPTS, fit_clips

__all__ = ["GanAugment", "draw_params", "label_names_of", "gan_augment", "MODES", "UNKNOWN_LABELS"]
SHORT = 0.9  # a batch shorter than this share of the generator's clip (at the batch's rate) crops it: say the rate


def gan_augment(wavs, names, source, params, mode="replace", lengths=None, sample_rate=None, known=None, device=None):
    """Apply frozen ``params`` (see :func:`draw_params`) to ``wavs`` ``(batch, time)``.

    Returns ``(wavs, lengths, rows)``: ``rows`` are the batch rows that got a synthetic clip
    (replaced in place of a copy, or appended after the batch in that order); with a filtered
    source, rows none of whose tries the filter accepted are left out of ``rows``.
    """
    rows = torch.tensor(synthetic_rows(params["mask"], known), dtype=torch.long)
    if rows.numel() == 0:
        return wavs, lengths, rows
    work_device = device if device is not None else wavs.device
    clips, accepted = source.sample([names[r] for r in rows.tolist()], params["seeds"][rows].tolist(), work_device)
    kept = torch.tensor(kept_rows(accepted), dtype=torch.long)
    rows, clips = rows[kept], clips[kept.to(clips.device)]
    if rows.numel() == 0:
        return wavs, lengths, rows
    clips, valid = fit_clips(clips, source.sample_rate, sample_rate or source.sample_rate, wavs.shape[-1])
    clips = clips.to(device=wavs.device, dtype=wavs.dtype)
    new_lens = None
    if lengths is not None:
        value = valid / wavs.shape[-1] if lengths.is_floating_point() else valid  # relative or in samples
        new_lens = torch.full((rows.numel(),), value, dtype=lengths.dtype, device=lengths.device)
    if mode == "replace":
        wavs = wavs.clone()
        wavs[rows.to(wavs.device)] = clips
        if lengths is not None:
            lengths = lengths.clone()
            lengths[rows.to(lengths.device)] = new_lens
        return wavs, lengths, rows
    wavs = torch.cat([wavs, clips])
    if lengths is not None:
        lengths = torch.cat([lengths, new_lens])
    return wavs, lengths, rows


def _select(labels, rows: torch.Tensor):
    if isinstance(labels, torch.Tensor):
        return labels[rows.to(labels.device)]
    return [labels[r] for r in rows.tolist()]


def _concat(labels, extra):
    if isinstance(labels, torch.Tensor):
        return torch.cat([labels, extra])
    return type(labels)(list(labels) + list(extra)) if isinstance(labels, (list, tuple)) else list(labels) + list(extra)


class GanAugment(nn.Module):
    """Synthetic keyword clips as a data augmentation, torchaudio style.

    ``aug(wavs, labels)`` replaces each row of ``wavs`` ``(batch, time)`` (or torchaudio's
    ``(batch, 1, time)``, returned in that shape) with probability ``p``
    by a synthetic clip *of that row's own label*; ``mode="append"`` adds ``ratio`` synthetic rows per
    real row (exactly, of distinct rows' labels; default ``ratio=p``) and returns ``(wavs, lengths, labels)``.
    The choice is an :class:`~ganaug.augment.rows.InjectionPolicy` (``aug.policy``), the one every
    trainer and dataset adapter uses; ``return_synthetic=True`` also returns the mask of the synthetic rows.

    Args:
        ckpt: a conditional checkpoint directory, a per-keyword run folder, ``{label: dir}``,
            or a bank folder. May be ``None`` when ``bank`` is given.
        p: probability that a row gets a synthetic clip, in [0, 1].
        mode: ``"replace"`` (default) or ``"append"``; a call may override it.
        device: where G runs (``None``: the input's device). Output is on the input's device.
        bank: a :class:`SyntheticBank` or its folder: draw pre-generated clips instead of running G.
        unknown_labels: ``"error"`` (a label G does not know raises) or ``"keep"`` (such rows pass through).
        sample_rate: rate of the batches (default: the generator's); synthetic clips are resampled to it.
            Left out, a batch much shorter than the generator's clip (e.g. 8000 samples of an 8 kHz
            pipeline against 16384 at 16 kHz) is an error that asks for it, never a silent crop.
        label_names: the dataset's label names in index order, for labels given as indices.
        min_confidence: label-consistency filter (None/0: off): a row gets a synthetic clip only
            if a classifier gives the row's label a posterior >= this; up to ``max_attempts``
            clips are tried per row, and a row with none accepted stays real (not appended).
        filter_classifier: the filter's classifier folder or module (None: the generator's
            default, see :func:`ganaug.augment.filter.default_filter_dir`).
        ratio: synthetic rows per real row in append mode, in [0, 1] (None: ``p``).

    Labels are matched by *name*. Synthetic clips are fit to the batch's length by
    :func:`~ganaug.augment.source.fit_clips` (crop around the centre, zero-pad at the end) and
    cast to its dtype and device. In ``eval()`` and at ``p=0`` input passes through unchanged,
    whatever its labels (even ones the generator does not know). A seeded ``generator=`` makes a call repeatable; the random
    choices come from :meth:`draw_params` and can be frozen with ``params=``. G is not a
    submodule: its weights stay out of ``state_dict()`` and optimizers.
    """

    def __init__(self, ckpt=None, p: float = 0.5, mode: str = "replace", device=None, bank=None,
                 unknown_labels: str = "error", sample_rate: int | None = None, label_names=None,
                 min_confidence=None, filter_classifier=None, max_attempts: int = MAX_ATTEMPTS, ratio=None):
        super().__init__()
        if isinstance(p, bool) or not isinstance(p, Real) or not 0.0 <= float(p) <= 1.0:
            raise ValueError(f"p={p!r}: must be a probability in [0, 1] (e.g. p=0.5)")
        self.policy = InjectionPolicy(mode, float(p), float(p if ratio is None else ratio))
        check_policy(unknown_labels)
        if sample_rate is not None and (isinstance(sample_rate, bool) or int(sample_rate) <= 0):
            raise ValueError(f"sample_rate={sample_rate!r}: give the batches' rate in Hz (e.g. 16000) or None")
        try:
            self.device = None if device is None else torch.device(device)
        except (RuntimeError, TypeError) as err:
            raise ValueError(f"device={device!r}: not a torch device; use 'cpu', 'cuda', 'cuda:0' or None") from err
        self.p, self.mode, self.unknown_labels = float(p), mode, unknown_labels
        self.source = make_source(ckpt, bank, min_confidence, filter_classifier, max_attempts)
        if self.policy.rate > 0:
            self.source.load(self.device)  # a damaged checkpoint fails here, not mid-epoch
        self.sample_rate = int(sample_rate) if sample_rate is not None else self.source.sample_rate
        self.rate_given = sample_rate is not None  # else a batch that does not fit the generator's rate is an error
        self.label_names = None if label_names is None else list(getattr(label_names, "names", label_names))

    @property
    def known_labels(self) -> list[str]:
        """Label names this augmentation can synthesise."""
        return list(self.source.label_names)

    def draw_params(self, batch_size: int, generator: torch.Generator | None = None, mode: str | None = None) -> dict:
        return draw_params(batch_size, self.policy.with_mode(mode), generator)

    def _check_wavs(self, wavs) -> None:
        if not isinstance(wavs, torch.Tensor):
            raise TypeError(f"wavs: expected a float tensor (batch, time), got {type(wavs).__name__}")
        if not wavs.is_floating_point():
            raise ValueError(f"wavs has dtype {wavs.dtype}: GanAugment needs float audio in [-1, 1]; "
                             f"convert with wavs.float() / 32768 for 16-bit PCM")
        if wavs.dim() != 2 and not (wavs.dim() == 3 and wavs.shape[1] == 1):
            raise ValueError(f"wavs has shape {tuple(wavs.shape)}: expected (batch, time) or mono (batch, 1, time); "
                             f"downmix multichannel audio first, e.g. wavs.mean(1)")

    def _check(self, wavs, labels, label_names):
        names = label_names_of(labels, label_names if label_names is not None else self.label_names, wavs.shape[0])
        return names, check_known(names, self.source.label_names, self.unknown_labels)

    def _check_rate(self, num_samples: int, sample_rate: int | None) -> None:
        """A batch much shorter than the generator's clip at the batch's rate, with no rate given: most
        likely a pipeline at another rate (8 kHz), where a crop would be a fraction of the word, sped up."""
        length = self.source.num_samples
        if sample_rate is not None or self.rate_given or not length:
            return
        seconds = int(length) / self.source.sample_rate
        if num_samples < SHORT * seconds * self.sample_rate:
            rate = self.sample_rate
            raise ValueError(
                f"wavs has {num_samples} samples per row, but the generator's clips are {int(length)} samples at "
                f"{rate} Hz ({seconds:.2f} s): if the batches are at another rate pass sample_rate= (e.g. "
                f"sample_rate=8000; clips are resampled to it); if they really are {num_samples / rate:.2f} s at "
                f"{rate} Hz, pass sample_rate={rate} to crop clips to their middle")

    def forward(self, wavs: torch.Tensor, labels, lengths: torch.Tensor | None = None, *, label_names=None,
                mode: str | None = None, generator: torch.Generator | None = None, params: dict | None = None,
                sample_rate: int | None = None, return_synthetic: bool = False):
        """Args: ``wavs`` float ``(batch, time)`` or ``(batch, 1, time)``; ``labels`` names or indices (with ``label_names``);
        ``lengths`` relative (float, SpeechBrain) or absolute (int) lengths ``(batch,)``.

        Returns ``(wavs, labels)``, ``(wavs, lengths, labels)`` when ``lengths`` is given, and
        always ``(wavs, lengths, labels)`` in append mode (relative lengths when none came in); with
        ``return_synthetic``, one more element: the bool mask ``(rows,)`` of the synthetic rows of the output
        (the batch's own mask, so no one has to compare values to count them).
        """
        mode = self.mode if mode is None else mode
        if mode not in MODES:
            raise ValueError(f"mode={mode!r}: choose one of {MODES}")
        self._check_wavs(wavs)
        if lengths is not None and (not isinstance(lengths, torch.Tensor) or lengths.shape != (wavs.shape[0],)):
            raise ValueError(f"lengths: expected a tensor of shape ({wavs.shape[0]},), one length per row")
        if mode == "append" and lengths is None:
            lengths = torch.ones(wavs.shape[0], device=wavs.device)
        if not self.training or (self.policy.with_mode(mode).rate == 0 and params is None):   # identity
            out = (wavs, labels) if lengths is None else (wavs, lengths, labels)
            return (*out, torch.zeros(wavs.shape[0], dtype=torch.bool, device=wavs.device)) if return_synthetic else out
        names, known = self._check(wavs, labels, label_names)
        self._check_rate(wavs.shape[-1], sample_rate)
        params = self.draw_params(wavs.shape[0], generator, mode) if params is None else params
        out, out_lengths, rows = gan_augment(wavs.flatten(0, -2) if wavs.dim() == 3 else wavs, names, self.source,
                                             params, mode, lengths, sample_rate or self.sample_rate, known, self.device)
        if wavs.dim() == 3:  # torchaudio's mono (batch, 1, time) goes back as it came
            out = out.unsqueeze(1)
        if mode == "append" and rows.numel():
            labels = _concat(labels, _select(labels, rows))
        result = (out, labels) if out_lengths is None else (out, out_lengths, labels)
        if not return_synthetic:
            return result
        synthetic = torch.zeros(out.shape[0], dtype=torch.bool, device=out.device)
        synthetic[rows.to(out.device) if mode == "replace" else slice(wavs.shape[0], None)] = True
        return (*result, synthetic)

    # -- HuggingFace datasets -----------------------------------------------------------------
    def hf_map(self, ratio: float = DEFAULT_RATIO, **kwargs):
        """A function for ``Dataset.map(batched=True)`` that adds ``ratio`` synthetic rows per row
        (see :class:`ganaug.augment.hf_rows.HFMap`)."""
        from ganaug.augment.hf_rows import HFMap

        return HFMap(self, ratio=ratio, **kwargs)

    def hf_transform(self, p: float | None = None, **kwargs):
        """A function for ``Dataset.with_transform``: fresh synthetic rows at every access
        (see :class:`ganaug.augment.hf_rows.HFTransform`)."""
        from ganaug.augment.hf_rows import HFTransform

        return HFTransform(self, p=p, **kwargs)

    def extra_repr(self) -> str:
        return (f"{self.policy}, labels={self.known_labels}, sample_rate={self.sample_rate}, "
                f"unknown_labels={self.unknown_labels!r}, source={type(self.source).__name__}")
