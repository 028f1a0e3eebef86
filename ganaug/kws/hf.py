"""The HF ``datasets`` trainer of ``ganaug kws`` (``trainer: hf``).

Shows the ``datasets.map`` route: the training split becomes a ``datasets.Dataset`` of
``{"audio": {"array", "sampling_rate"}, "label", "label_name"}`` rows (no ``Audio()`` decoding
needed), and when ``gan_ckpt`` is set ``GanAugment.hf_map`` adds synthetic rows to it once,
before training. Training is the one loop of :func:`ganaug.kws.brain.train_classifier` (model,
optimizer, schedule, classic augmentation, best-valid checkpoint): the two trainers differ only
in where the training rows come from.
"""

from __future__ import annotations

import hashlib

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


def gan_map(ds, gan_augment, hp: dict, fingerprint: str):
    """Add GanAugment's synthetic rows (``gan_p`` per real row) with ``datasets.map``: batched,
    once, with indices (an exact ratio) and a fingerprint of the data, generator, ratio and seed."""
    fn = gan_augment.hf_map(ratio=float(hp["gan_p"]), seed=int(hp["seed"]))
    key = f"{fingerprint}|{getattr(fn, 'fingerprint', hp['gan_ckpt'])}|{hp['gan_p']}|{hp['seed']}"
    return ds.map(fn, batched=True, with_indices=True, remove_columns=ds.column_names,
                  new_fingerprint=hashlib.sha1(key.encode()).hexdigest()[:16], desc="GanAugment.hf_map")


def train_hf(hp: dict, data, augment=None, gan_augment=None, progress: bool = True, **save) -> dict:
    """Train on the rows of an HF dataset (GanAugment's ``hf_map`` rows added once) through the one
    loop of :func:`ganaug.kws.brain.train_classifier`; ``augment`` (the classic augmenter) runs on
    training batches there; ``save``: its ``checkpoint_dir`` and ``signature_extra``."""
    train_ds = to_hf_dataset(*data.train, data.label_names, int(hp["sample_rate"]))
    num_real = len(train_ds)
    if gan_augment is not None:
        train_ds = gan_map(train_ds, gan_augment, hp, data.info.get("train_fingerprint", ""))
    out = train_classifier(hp, data, augment=augment, loader=train_loader(train_ds, hp, collate_fn=_collate),
                           progress=progress, desc="kws (hf)", **save)
    return {**out, "num_train_rows": len(train_ds), "synthetic_rows": len(train_ds) - num_real}
