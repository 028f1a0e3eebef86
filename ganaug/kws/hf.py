"""The plain-PyTorch + HF ``datasets`` trainer of ``ganaug kws`` (``trainer: hf``).

Shows the ``datasets.map`` route: the training split becomes a ``datasets.Dataset`` of
``{"audio": {"array", "sampling_rate"}, "label", "label_name"}`` rows (no ``Audio()`` decoding
needed), and when ``gan_ckpt`` is set ``GanAugment.hf_map`` adds synthetic rows to it once,
before training. The model, optimizer, schedule, classic augmentation and best-valid selection
are the SpeechBrain trainer's, so the two give the same kind of numbers.
"""

from __future__ import annotations

import copy
import hashlib

import torch
import torch.nn.functional as F
from torch.utils.data import DataLoader

from ganaug.kws.brain import accuracy_report, build_model, make_optimizer, predict, set_epoch_lr

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


def train_hf(hp: dict, data, classic=None, gan_augment=None) -> dict:
    """Train a KWSClassifier over an HF dataset with a plain PyTorch loop."""
    torch.manual_seed(int(hp["seed"]))
    device = torch.device(str(hp["device"]))
    batch_size = int(hp["batch_size"])
    train_ds = to_hf_dataset(*data.train, data.label_names, int(hp["sample_rate"]))
    num_real = len(train_ds)
    if gan_augment is not None:
        train_ds = gan_map(train_ds, gan_augment, hp, data.info.get("train_fingerprint", ""))
    loader = DataLoader(train_ds, batch_size=batch_size, shuffle=True, collate_fn=_collate,
                        generator=torch.Generator().manual_seed(int(hp["seed"])))
    model = build_model(hp, data.label_names).to(device)
    optimizer = make_optimizer(hp)(model.parameters())
    history, best = [], None
    for epoch in range(1, int(hp["number_of_epochs"]) + 1):
        set_epoch_lr(optimizer, hp, epoch)
        model.train()
        total, steps = 0.0, 0
        for wavs, labels in loader:
            wavs, labels = wavs.to(device), labels.to(device)
            if classic is not None:
                wavs, _ = classic(wavs, torch.ones(len(wavs), device=device))
                labels = classic.replicate_labels(labels)
            loss = F.cross_entropy(model(wavs), labels)
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total, steps = total + loss.item(), steps + 1
        valid = accuracy_report(predict(model, data.valid[0], batch_size, device), data.valid[1], data.label_names)
        history.append({"epoch": epoch, "train_loss": total / max(1, steps), "valid_acc": valid["acc"]})
        if best is None or valid["acc"] > best[0]:
            best = (valid["acc"], epoch, copy.deepcopy(model.state_dict()))
    model.load_state_dict(best[2])
    reports = {}
    for name, split in (("test", data.test), ("eval", data.eval)):
        if split is not None:
            reports[name] = accuracy_report(predict(model, split[0], batch_size, device), split[1], data.label_names)
    return {"model": model.to("cpu").eval(), "best_epoch": best[1], "valid_acc": best[0], "history": history,
            "num_train_rows": len(train_ds), "synthetic_rows": len(train_ds) - num_real, **reports}
