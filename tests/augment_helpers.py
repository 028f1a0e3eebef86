"""Tiny generator checkpoints for the augmentation tests (untrained weights, model_dim=4)."""

from __future__ import annotations

from pathlib import Path

import torch

from ganaug.checkpoint import save_generator
from ganaug.models import WaveGANGenerator


def tiny_generator(label_names=None, seed=0, sample_rate=16000) -> WaveGANGenerator:
    torch.manual_seed(seed)
    return WaveGANGenerator(model_dim=4, label_names=label_names, sample_rate=sample_rate)


def conditional_ckpt(root: Path, labels=("yes", "no"), sample_rate=16000) -> Path:
    return save_generator(Path(root) / "cond", tiny_generator(list(labels), sample_rate=sample_rate), step=0)


def per_keyword_run(root: Path, labels=("yes", "no")) -> Path:
    run = Path(root) / "per_kw"
    for i, label in enumerate(labels):
        save_generator(run / label, tiny_generator(None, seed=i + 1), step=0)
    return run
