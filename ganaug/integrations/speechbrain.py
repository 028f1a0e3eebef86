"""GanAugment for SpeechBrain: hparams YAML, ``compute_forward`` and ``Augmenter``.

YAML::

    label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder   # the recipe's, filled by dataio_prep
    gan_augment: !new:ganaug.integrations.speechbrain.GanAugment
        ckpt: !ref <gan_ckpt>
        p: 0.5
        label_names: !ref <label_encoder>     # read at every call: always the encoder's order
        unknown_labels: keep                  # _unknown_/_silence_ rows stay real
        sample_rate: !ref <sample_rate>
        min_confidence: 0.8                   # optional label-consistency filter (0/None: off)

Standalone, in ``compute_forward``::

    wavs, lens, labels = self.hparams.gan_augment(wavs, lens, labels)

Inside ``speechbrain.augment.augmenter.Augmenter`` (which calls ``forward(wavs, lengths)``, with
no labels), give the labels first; :func:`augment` does it and replicates them as Augmenter does::

    wavs, lens, labels = ganaug.integrations.speechbrain.augment(self.hparams.wav_augment, wavs, lens, labels)

An Augmenter that can never select its GanAugment (e.g. the recipe's ``shuffle_augmentations:
False`` with GanAugment after the first ``max_augmentations``) is an error at that call.
"""

from __future__ import annotations

import warnings

import torch

from ganaug.augment.transform import GanAugment as _GanAugment

__all__ = ["GanAugment", "augment", "check_selectable"]


class GanAugment(_GanAugment):
    """:class:`ganaug.GanAugment` with SpeechBrain's argument order ``(wavs, lengths, labels)``.

    ``label_names`` may be a list or a SpeechBrain ``CategoricalEncoder`` (read at call time,
    so an encoder filled after the YAML is loaded works; an empty one, or one that shares no label
    with the generator, is an error). Labels may be ``(batch,)`` or ``(batch, 1)`` index tensors,
    as SpeechBrain's encoders give them.

    ``forward(wavs, lengths, labels)`` returns ``(wavs, lengths, labels)``. ``forward(wavs,
    lengths)`` (how ``Augmenter`` calls it) returns ``(wavs, lengths)`` and takes the labels
    given to :meth:`set_labels` (``augment()`` does this for you).
    """

    def __init__(self, ckpt=None, p=0.5, mode="replace", device=None, bank=None, unknown_labels="error",
                 sample_rate=None, label_names=None, min_confidence=None, filter_classifier=None, ratio=None):
        encoder = label_names if hasattr(label_names, "ind2lab") else None
        super().__init__(ckpt, p, mode, device, bank, unknown_labels, sample_rate,
                         None if encoder is not None else label_names, min_confidence=min_confidence,
                         filter_classifier=filter_classifier, ratio=ratio)
        self.label_encoder = encoder
        self._pending = None
        self._warned_list = False

    def _names(self):
        if self.label_encoder is None:
            return self.label_names
        names = [str(self.label_encoder.ind2lab[i]) for i in range(len(self.label_encoder.ind2lab))]
        if not names:
            raise ValueError("label_names: the CategoricalEncoder is empty; fill it before training (as the recipe's "
                             "dataio_prep does: label_encoder.load_or_create(path, from_didatasets=[train_data], "
                             "output_key=...)) and give GanAugment that same encoder (label_names: !ref <label_encoder>)")
        if not set(names) & set(self.known_labels):
            raise ValueError(f"label_names: the CategoricalEncoder's labels {names} share none with the generator's "
                             f"{self.known_labels}; give the encoder of the labels the generator was trained on")
        return names

    def set_labels(self, labels, augmenter=None) -> None:
        """Labels of the next ``forward(wavs, lengths)`` call; with ``augmenter``, they are the
        labels of the whole batch given to that Augmenter (its start/end indices are applied)."""
        self._pending = None if labels is None else (labels, augmenter)

    def _pending_rows(self, batch_size):
        if self._pending is None:
            raise ValueError("GanAugment was called with (wavs, lengths) but no labels: call it as "
                             "gan_augment(wavs, lens, labels), or inside an Augmenter through "
                             "ganaug.integrations.speechbrain.augment(augmenter, wavs, lens, labels)")
        labels, augmenter = self._pending
        if augmenter is not None:
            if augmenter.parallel_augment and augmenter.parallel_augment_fixed_bs:
                raise ValueError("GanAugment inside an Augmenter with parallel_augment_fixed_bs=True cannot tell "
                                 "which rows it got; use parallel_augment_fixed_bs=False")
            labels = labels[augmenter.augment_start_index: augmenter.augment_end_index_batch]
        if len(labels) != batch_size:
            raise ValueError(f"GanAugment got {batch_size} rows but {len(labels)} pending labels; pass the "
                             f"Augmenter to set_labels (or use ganaug.integrations.speechbrain.augment)")
        return labels

    def forward(self, wavs, lengths=None, labels=None, **kwargs):
        inside_augmenter = labels is None
        if inside_augmenter:
            if (kwargs.get("mode") or self.mode) == "append":
                raise ValueError("mode='append' inside an Augmenter would change the batch size behind its back; "
                                 "use mode='replace' with Augmenter(concat_original=True) to add rows")
            labels = self._pending_rows(wavs.shape[0])
        if lengths is None:
            lengths = torch.ones(wavs.shape[0], device=wavs.device)
        out = super().forward(wavs, labels, lengths, label_names=kwargs.pop("label_names", None) or self._names(),
                              **kwargs)
        return out[:2] if inside_augmenter else out


def augment(augmenter, wavs, lengths, labels):
    """Run a SpeechBrain ``Augmenter`` that may hold ganaug ``GanAugment`` s, keeping labels right.

    Returns ``(wavs, lengths, labels)`` with labels replicated by ``augmenter.replicate_labels``.
    """
    gans = [m for m in augmenter.augmentations.values() if isinstance(m, GanAugment)]
    for gan in gans:
        check_selectable(augmenter, gan)
        if isinstance(labels, torch.Tensor) and gan.label_encoder is None and gan.label_names and not gan._warned_list:
            gan._warned_list = True
            warnings.warn(f"GanAugment's label_names is a fixed list {gan.label_names}: index i must be label i of the "
                          f"recipe's CategoricalEncoder, or rows get clips of another word; give the encoder itself "
                          f"(label_names: !ref <label_encoder>) so the order cannot drift", UserWarning, stacklevel=2)
    for gan in gans:
        gan.set_labels(labels, augmenter)
    try:
        wavs, lengths = augmenter(wavs, lengths)
    finally:
        for gan in gans:
            gan.set_labels(None)
    return wavs, lengths, augmenter.replicate_labels(labels)


def check_selectable(augmenter, gan) -> None:
    """A one-line error when ``augmenter`` can never apply ``gan`` (it would be silently skipped)."""
    if not any(m is gan for m in augmenter.augmentations.values()):
        return
    position = [k for k, m in augmenter.augmentations.items() if m is gan][0]
    index, count = list(augmenter.augmentations).index(position), len(augmenter.augmentations)
    never = None
    if augmenter.augment_prob <= 0 or augmenter.repeat_augment == 0 or augmenter.max_augmentations <= 0:
        never = (f"applies nothing (augment_prob={augmenter.augment_prob}, repeat_augment={augmenter.repeat_augment}, "
                 f"max_augmentations={augmenter.max_augmentations})")
    elif not augmenter.shuffle_augmentations and index >= augmenter.max_augmentations:
        never = (f"applies its first max_augmentations={augmenter.max_augmentations} augmentations in order "
                 f"(shuffle_augmentations: False) and GanAugment is number {index + 1} of {count}; put it first, or "
                 f"raise max_augmentations to {count}, or set shuffle_augmentations: True")
    if never:
        raise ValueError(f"GanAugment is never applied: its Augmenter {never}")
