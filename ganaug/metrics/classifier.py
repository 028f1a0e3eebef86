"""The reference classifier: the "Inception network" of ganaug's generator metrics.

A :class:`ganaug.kws.KWSClassifier` (log-mel DS-CNN) trained on the real TRAIN split of the
data only, with the best epoch chosen on the VALID speakers and its accuracy reported on the
TEST speakers (never heard in training). It is saved as a classifier folder
(``classifier.safetensors`` + ``config.json``, see :mod:`ganaug.models.classifier`) whose config also
records the recipe, the data fingerprints and ``test_acc``/``valid_acc``; a folder that is
already there is loaded, not retrained.

Recipe (``REFERENCE_RECIPE``, overridable by keyword): AdamW, one-cycle learning rate, plain
cross-entropy (no label smoothing: it would cap the confidence that IS measures), random time
shifts of up to 100 ms and random gain as augmentation.
"""

from __future__ import annotations

import copy
import hashlib
import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ganaug.models.classifier import KWSClassifier, is_classifier, load_classifier, save_classifier

__all__ = ["REFERENCE_RECIPE", "reference_classifier", "train_reference_classifier", "classify",
           "default_classifier_dir", "real_split"]

REFERENCE_RECIPE = {
    "epochs": 12,            # passes over the training clips
    "batch_size": 64,
    "lr": 3e-3,              # peak of the one-cycle schedule
    "weight_decay": 1e-2,
    "shift_ms": 100.0,       # random time shift, +-, zero filled
    "gain_db": 6.0,          # random gain, +-
    "n_mels": 40,
    "channels": 64,          # DS-CNN width = embedding size used by FID
    "num_blocks": 4,
    "seed": 0,
}


def real_split(data, label_names, split: str, sample_rate: int = 16000, num_samples: int = 16384, cache=None):
    """``(wavs (N, num_samples), labels (N,), dataset)`` of one split of ``data`` (decoded once, cached)."""
    from ganaug.data import KeywordDataset
    from ganaug.data.cache import preload

    dataset = KeywordDataset(data, labels=label_names, sample_rate=sample_rate, num_samples=num_samples, split=split)
    if len(dataset) == 0:
        return torch.zeros(0, num_samples), torch.zeros(0, dtype=torch.long), dataset
    wavs, labels = preload(dataset, cache_dir=cache)
    return wavs, labels, dataset


def default_classifier_dir(data, label_names, recipe: dict | None = None, sample_rate: int = 16000) -> Path:
    """``$GANAUG_CACHE/reference_classifiers/<key>``: one per (data, labels, recipe)."""
    from ganaug.data import KeywordDataset
    from ganaug.io import cache_dir

    train = KeywordDataset(data, labels=label_names, sample_rate=sample_rate, split="train")
    recipe = {**REFERENCE_RECIPE, **(recipe or {})}
    key = hashlib.sha1(f"{train.fingerprint()}|{json.dumps(recipe, sort_keys=True)}".encode()).hexdigest()[:16]
    return cache_dir() / "reference_classifiers" / key


@torch.inference_mode()
def classify(model: KWSClassifier, wavs: torch.Tensor, batch_size: int = 256, device=None,
             progress: bool = False, desc: str = "classify") -> tuple[torch.Tensor, torch.Tensor]:
    """``(logits (n, C), embeddings (n, dim))`` of ``wavs`` ``(n, time)``, on the CPU, float32."""
    device = torch.device(device) if device is not None else next(model.parameters()).device
    model.eval()
    logits, embeds = [], []
    for start in tqdm(range(0, wavs.shape[0], batch_size), desc=desc, unit="batch", disable=not progress, leave=False):
        emb = model.embed(wavs[start:start + batch_size].to(device).float())
        logits.append(model.head(emb).float().cpu())     # = forward() in eval mode, one pass for both
        embeds.append(emb.float().cpu())
    if not logits:
        return torch.zeros(0, len(model.label_names)), torch.zeros(0, model.embedding_dim)
    return torch.cat(logits), torch.cat(embeds)


def _augment(wavs: torch.Tensor, shift: int, gain_db: float, generator: torch.Generator) -> torch.Tensor:
    n, length = wavs.shape
    if shift > 0:
        shifts = torch.randint(-shift, shift + 1, (n,), generator=generator)
        index = torch.arange(length)[None] - shifts[:, None]
        valid = (index >= 0) & (index < length)
        wavs = torch.where(valid, wavs.gather(1, index.clamp(0, length - 1)), torch.zeros(()))
    if gain_db > 0:
        gains = 10 ** ((torch.rand(n, 1, generator=generator) * 2 - 1) * gain_db / 20)
        wavs = (wavs * gains).clamp(-1, 1)
    return wavs


def _accuracy(model, wavs, labels, device) -> float | None:
    if wavs.shape[0] == 0:
        return None
    logits, _ = classify(model, wavs, device=device)
    return float((logits.argmax(1) == labels).float().mean())


def train_reference_classifier(data, label_names, folder, device=None, sample_rate: int = 16000,
                               progress: bool = True, **recipe) -> KWSClassifier:
    """Train the reference classifier on ``data``'s TRAIN split and save it to ``folder``."""
    unknown = set(recipe) - set(REFERENCE_RECIPE)
    if unknown:
        raise ValueError(f"unknown reference-classifier settings {sorted(unknown)}; known: {sorted(REFERENCE_RECIPE)}")
    r = {**REFERENCE_RECIPE, **recipe}
    device = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    train_wavs, train_labels, train_set = real_split(data, label_names, "train", sample_rate)
    valid_wavs, valid_labels, valid_set = real_split(data, label_names, "valid", sample_rate)
    test_wavs, test_labels, test_set = real_split(data, label_names, "test", sample_rate)
    missing = [name for name, count in train_set.label_counts().items() if count == 0]
    if missing:
        raise ValueError(f"{data}: no training clips of {missing}; the reference classifier needs every label "
                         f"in the TRAIN split (check --data and the generator's labels)")

    torch.manual_seed(r["seed"])
    generator = torch.Generator().manual_seed(r["seed"])
    model = KWSClassifier(label_names, sample_rate=sample_rate, n_mels=r["n_mels"],
                          channels=r["channels"], num_blocks=r["num_blocks"]).to(device)
    optimizer = torch.optim.AdamW(model.parameters(), lr=r["lr"], weight_decay=r["weight_decay"])
    steps_per_epoch = -(-train_wavs.shape[0] // r["batch_size"])
    schedule = torch.optim.lr_scheduler.OneCycleLR(optimizer, max_lr=r["lr"], total_steps=r["epochs"] * steps_per_epoch)
    shift = int(r["shift_ms"] * sample_rate / 1000)
    best = (-1.0, None, 0)
    bar = tqdm(range(r["epochs"]), desc="reference classifier", unit="epoch", disable=not progress)
    for epoch in bar:
        model.train()
        order = torch.randperm(train_wavs.shape[0], generator=generator)
        for start in range(0, len(order), r["batch_size"]):
            idx = order[start:start + r["batch_size"]]
            wavs = _augment(train_wavs[idx].float(), shift, r["gain_db"], generator).to(device)
            loss = torch.nn.functional.cross_entropy(model(wavs), train_labels[idx].to(device))
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            schedule.step()
        valid_acc = _accuracy(model, valid_wavs, valid_labels, device)
        score = valid_acc if valid_acc is not None else float(epoch)   # no valid speakers: keep the last
        if score >= best[0]:
            best = (score, copy.deepcopy(model.state_dict()), epoch)
        bar.set_postfix(loss=f"{loss.item():.3f}", valid_acc="-" if valid_acc is None else f"{valid_acc:.3f}")
    model.load_state_dict(best[1])
    model.eval()
    test_acc = _accuracy(model, test_wavs, test_labels, device)
    valid_acc = _accuracy(model, valid_wavs, valid_labels, device)
    save_classifier(folder, model.cpu(), role="reference_classifier", recipe=r, best_epoch=best[2],
                    test_acc=test_acc, valid_acc=valid_acc, num_train=int(train_wavs.shape[0]),
                    num_test=int(test_wavs.shape[0]), train_speakers=len(train_set.speakers),
                    test_speakers=len(test_set.speakers), data=str(Path(data).resolve()),
                    data_fingerprint=train_set.fingerprint())
    return model.to(device)


def reference_classifier(data, label_names, folder=None, device=None, sample_rate: int = 16000,
                         progress: bool = True, **recipe) -> tuple[KWSClassifier, dict, Path]:
    """Load the classifier in ``folder`` or train one there: ``(model, config, folder)``.

    ``folder=None`` uses :func:`default_classifier_dir` (shared by every generator evaluated on
    the same data and labels). An existing classifier must know every name in ``label_names``.
    """
    folder = Path(folder) if folder is not None else default_classifier_dir(data, label_names, recipe, sample_rate)
    if folder.exists() and not is_classifier(folder) and any(folder.iterdir()):
        raise ValueError(f"--classifier {folder}: the folder exists but holds no classifier "
                         f"(classifier.safetensors + config.json); give an empty or new folder to train one there")
    if not is_classifier(folder):
        print(f"training the reference classifier on the TRAIN split of {data} -> {folder}")
        train_reference_classifier(data, label_names, folder, device=device, sample_rate=sample_rate,
                                   progress=progress, **recipe)
    model = load_classifier(folder, device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    config = json.loads((folder / "config.json").read_text())
    missing = [name for name in label_names if name not in model.label_names]
    if missing:
        raise ValueError(f"--classifier {folder} knows {model.label_names}, not {missing}; pass a new folder "
                         f"to train a reference classifier for the generator's labels {list(label_names)}")
    if model.sample_rate != sample_rate:
        raise ValueError(f"--classifier {folder} runs at {model.sample_rate} Hz, the evaluation at {sample_rate} Hz; "
                         f"pass a new folder to train one at {sample_rate} Hz")
    return model, config, folder
