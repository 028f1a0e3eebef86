"""The HF ``datasets`` trainer of ``ganaug kws`` (``trainer: hf``).

The training split becomes a ``datasets.Dataset`` of ``{"audio": {"array", "sampling_rate"}, "label",
"label_name"}`` rows (no ``Audio()`` decoding needed). Training is the one loop of
:func:`ganaug.kws.brain.train_classifier` (model, optimizer, schedule, the injection policy of
GanAugment and classic augmentation on each batch, best-valid checkpoint): the two trainers differ only
in where the training rows come from, so one YAML gives the same experiment with either. (For adding
synthetic rows to a dataset once, outside ganaug's trainer, see ``GanAugment.hf_map``.)
"""

from __future__ import annotations

import torch

from ganaug.kws.brain import train_classifier, train_loader

__all__ = ["to_hf_dataset", "train_hf"]


def to_hf_dataset(wavs: torch.Tensor, labels: torch.Tensor, label_names, sample_rate: int):
    """A ``datasets.Dataset`` of the clips, audio as plain ``{"array", "sampling_rate"}`` structs."""
    import datasets

    features = datasets.Features({
        "audio": {"array": datasets.Sequence(datasets.Value("float32")), "sampling_rate": datasets.Value("int32")},
        "label": datasets.ClassLabel(names=list(label_names)),
        "label_name": datasets.Value("string"),
    })
    rows = {
        "audio": [{"array": w, "sampling_rate": int(sample_rate)} for w in wavs.numpy()],
        "label": labels.tolist(),
        "label_name": [label_names[i] for i in labels.tolist()],
    }
    return datasets.Dataset.from_dict(rows, features=features)


def _collate(rows):
    wavs = torch.stack([torch.as_tensor(r["audio"]["array"], dtype=torch.float32) for r in rows])
    return wavs, torch.tensor([int(r["label"]) for r in rows], dtype=torch.long)


def train_hf(hp: dict, data, augment=None, progress: bool = True, real_batch_size=None, **kw) -> dict:
    """Train on the rows of an HF dataset through the one loop of :func:`ganaug.kws.brain.train_classifier`;
    ``augment`` (GanAugment's injection policy, then the classic augmenter) runs on its training batches as
    in the SpeechBrain trainer, so the same YAML runs the same experiment; ``kw``: ``checkpoint_dir``,
    ``signature_extra``, ``spec_augment``."""
    train_ds = to_hf_dataset(*data.train, data.label_names, int(hp["sample_rate"]))
    loader = train_loader(train_ds, hp, collate_fn=_collate, batch_size=real_batch_size)
    out = train_classifier(hp, data, augment=augment, loader=loader, progress=progress, desc="kws (hf)", **kw)
    return {**out, "num_train_rows": len(train_ds)}
