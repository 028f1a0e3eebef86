"""The metric math that torchmetrics does not have, as stateless functions on tensors (no models, no files).

Shapes: ``probs`` ``(n, num_classes)`` rows summing to 1; ``features`` ``(n, dim)``;
``wavs`` ``(n, time)`` float audio. The modified IS is computed in float64 on the CPU, where
the sums are small and exactness matters more than speed; the spectral features and pairwise
distances run on the tensors' device. IS, FID and KID are torchmetrics' (:mod:`ganaug.metrics.registry`).

References:
  - Modified IS: Gurumurthy et al., 2017, "DeLiGAN": ``mIS = exp(E_{x,x'} KL(p(y|x) || p(y|x')))``
    over all pairs of samples (as DiffWave reports it for SC09); it rewards confident
    predictions that also differ between samples.
  - |D|train and |D|self: Donahue et al., 2019, "Adversarial Audio Synthesis" (WaveGAN), Sec. 6:
    mean Euclidean distance from each clip to its nearest neighbour in the training data, and
    within its own set (a small |D|self flags mode collapse, a small |D|train memorisation).
    Distances are taken, as in the paper's code (``eval/similarity/feats.py``), on flattened
    log-mel magnitude spectrograms: 16384 samples, STFT 2048/128 (Hann), 128 mel bands
    40-7800 Hz, ``log(mel + 1e-6)``: see :func:`nn_features`.
"""

from __future__ import annotations

import torch

__all__ = ["modified_inception_score", "nn_features", "nn_distance", "label_accuracy"]


def _check_probs(probs, name="probs") -> torch.Tensor:
    probs = torch.as_tensor(probs, dtype=torch.float64).cpu()
    if probs.dim() != 2 or probs.shape[0] == 0:
        raise ValueError(f"{name} of shape {tuple(probs.shape)}: expected (n, num_classes) with n >= 1")
    if (probs < -1e-9).any() or not torch.allclose(probs.sum(1), torch.ones(probs.shape[0], dtype=torch.float64), atol=1e-4):
        raise ValueError(f"{name}: rows must be probabilities summing to 1 (apply softmax to logits first)")
    return probs.clamp_min(0)


def modified_inception_score(probs, eps: float = 1e-12, max_rows: int = 2000) -> float:
    """``exp(mean over pairs i, j of KL(p(y|x_i) || p(y|x_j)))`` (Gurumurthy et al., 2017).

    ``p(y|x_j)`` is clamped at ``eps`` so that two confident, different predictions give a large
    but finite KL. Uses the first ``max_rows`` rows (the pair matrix is quadratic).
    """
    probs = _check_probs(probs)[:max_rows]
    neg_entropy = torch.special.xlogy(probs, probs).sum(1)              # sum_y p_i log p_i
    cross = probs @ probs.clamp_min(eps).log().T                        # sum_y p_i log p_j
    kl = neg_entropy[:, None] - cross
    return float(torch.exp(kl.mean()))


_MEL_CACHE: dict = {}


def nn_features(wavs: torch.Tensor, sample_rate: int = 16000) -> torch.Tensor:
    """WaveGAN's similarity features: flattened log-mel magnitude spectrograms ``(n, 128 * 128)``.

    ``wavs`` ``(n, time)`` are cropped or zero-padded to 16384 samples first (as the paper's
    code does), so sets of any clip length compare in one space.
    """
    import torchaudio

    if wavs.dim() != 2:
        raise ValueError(f"wavs of shape {tuple(wavs.shape)}: expected (n, time)")
    length = 16384
    wavs = wavs.float()
    wavs = wavs[:, :length] if wavs.shape[1] >= length else torch.nn.functional.pad(wavs, (0, length - wavs.shape[1]))
    key = (sample_rate, str(wavs.device))
    if key not in _MEL_CACHE:
        _MEL_CACHE[key] = torchaudio.transforms.MelSpectrogram(
            sample_rate=sample_rate, n_fft=2048, hop_length=128, f_min=40.0, f_max=min(7800.0, sample_rate / 2),
            n_mels=128, power=1.0, center=False, norm=None, mel_scale="htk",
        ).to(wavs.device)
    # pad the end so that frames = time / hop, as tf.signal.stft(pad_end=True) does
    padded = torch.nn.functional.pad(wavs, (0, 2048 - 128))
    mel = _MEL_CACHE[key](padded)                      # (n, 128 mels, 128 frames)
    return torch.log(mel + 1e-6).flatten(1)


def nn_distance(query: torch.Tensor, reference: torch.Tensor | None = None, batch_size: int = 256) -> tuple[float, float]:
    """``(mean, std)`` over ``query`` rows of the Euclidean distance to the nearest ``reference`` row.

    ``reference=None`` measures a set against itself, excluding each row's own index (|D|self);
    otherwise every reference row counts (|D|train).
    """
    if query.dim() != 2:
        raise ValueError(f"query of shape {tuple(query.shape)}: expected (n, dim)")
    self_mode = reference is None
    reference = query if self_mode else reference
    if reference.dim() != 2 or reference.shape[1] != query.shape[1]:
        raise ValueError(f"reference of shape {tuple(reference.shape)} does not match query {tuple(query.shape)}")
    if reference.shape[0] < (2 if self_mode else 1):
        raise ValueError("need at least 2 clips for |D|self and 1 reference clip for |D|train")
    query, reference = query.double(), reference.double()
    nearest = []
    for start in range(0, query.shape[0], batch_size):
        dist = torch.cdist(query[start:start + batch_size], reference)
        if self_mode:
            rows = torch.arange(dist.shape[0])
            dist[rows, rows + start] = float("inf")
        nearest.append(dist.min(1).values)
    dist = torch.cat(nearest).cpu().numpy()
    return float(dist.mean()), float(dist.std())


def label_accuracy(probs_or_logits, targets) -> float:
    """Fraction of rows whose arg-max class equals ``targets`` ``(n,)``."""
    scores = torch.as_tensor(probs_or_logits)
    targets = torch.as_tensor(targets).reshape(-1)
    if scores.dim() != 2 or scores.shape[0] != targets.numel():
        raise ValueError(f"scores of shape {tuple(scores.shape)} and {targets.numel()} targets: need (n, C) and n targets")
    return float((scores.argmax(1).cpu() == targets.cpu()).double().mean())
