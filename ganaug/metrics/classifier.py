"""The reference classifier as the metrics use it: the "Inception network" of ganaug.

It is trained (once per TRAIN split, by the one kws loop) by :mod:`ganaug.kws.reference`;
here it is found or trained (:func:`reference_classifier`), checked against the labels being
scored, and run (:func:`classify`: logits and the penultimate embedding that FID uses).
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from tqdm.auto import tqdm

from ganaug.models.classifier import KWSClassifier, load_classifier

__all__ = ["reference_classifier", "load_reference", "classify", "real_split"]


def real_split(data, label_names, split: str, sample_rate: int = 16000, num_samples: int = 16384, cache=None):
    """``(wavs (N, num_samples), labels (N,), dataset)`` of one split of ``data`` (decoded once, cached)."""
    from ganaug.data import KeywordDataset
    from ganaug.data.cache import preload

    dataset = KeywordDataset(data, labels=label_names, sample_rate=sample_rate, num_samples=num_samples, split=split)
    if len(dataset) == 0:
        return torch.zeros(0, num_samples), torch.zeros(0, dtype=torch.long), dataset
    wavs, labels = preload(dataset, cache_dir=cache, progress=False)
    return wavs, labels, dataset


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


def load_reference(folder, label_names, sample_rate: int = 16000, device=None, option: str = "--classifier"):
    """``(model, config)`` of the classifier in ``folder``; it must know every name in ``label_names``
    and run at ``sample_rate`` (``option`` names the argument in the error)."""
    folder = Path(folder)
    model = load_classifier(folder, device=device)
    config = json.loads((folder / "config.json").read_text())
    missing = [name for name in label_names if name not in model.label_names]
    if missing:
        raise ValueError(f"{option} {folder} knows {model.label_names}, not {missing}; pass a new folder "
                         f"to train a reference classifier for the labels {list(label_names)}")
    if model.sample_rate != sample_rate:
        raise ValueError(f"{option} {folder} runs at {model.sample_rate} Hz, the clips are at {sample_rate} Hz; "
                         f"pass a new folder to train one at {sample_rate} Hz")
    return model, config


def reference_classifier(data, label_names, folder=None, device=None, sample_rate: int = 16000,
                         progress: bool = True, overrides: dict | None = None) -> tuple[KWSClassifier, dict, Path]:
    """Load the classifier in ``folder`` or train one there: ``(model, config, folder)``.

    ``folder=None`` is the reference classifier of ``data``'s whole TRAIN split
    (:func:`ganaug.kws.reference.ensure_reference`, shared with the demo and the filter); it is
    trained with the reference recipe (plus ``overrides``, kws keys) when missing.
    """
    from ganaug.kws.reference import ensure_reference

    try:
        folder = ensure_reference(data, label_names, sample_rate=sample_rate, folder=folder, device=device,
                                  progress=progress, overrides=overrides)
    except ValueError as err:
        raise ValueError(f"--classifier: {err}") from err
    model, config = load_reference(folder, label_names, sample_rate,
                                   device=device or ("cuda" if torch.cuda.is_available() else "cpu"))
    return model, config, folder
