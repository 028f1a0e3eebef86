"""Stateless helpers that the modules wrap (torchaudio-style)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

__all__ = ["sample_latents", "phase_shuffle", "draw_shifts", "resolve_labels", "projection_critic"]


def sample_latents(n: int, latent_dim: int, generator: torch.Generator | None = None,
                   device=None, dtype=torch.float32) -> torch.Tensor:
    """WaveGAN's prior: ``z ~ U(-1, 1)^latent_dim``, shape ``(n, latent_dim)``."""
    source = generator.device if generator is not None else device
    z = torch.rand(n, latent_dim, generator=generator, device=source, dtype=dtype).mul_(2).sub_(1)
    return z.to(device)


def phase_shuffle(x: torch.Tensor, shifts: torch.Tensor, n: int) -> torch.Tensor:
    """Shift each example of ``x`` ``(batch, channels, time)`` by ``shifts[b]`` samples.

    Positive shifts move the signal later in time. The ``|shift|`` samples that enter at an edge
    are filled by reflection (WaveGAN's phase shuffle), so no zeros betray the shift.

    ``n``: the largest ``|shift|`` the caller draws (WaveGAN's phase-shuffle width). Every shape is
    static (reflect-pad by ``n``, then one gather), so the call never reads ``shifts`` on the host and
    ``torch.compile`` captures it whole; ``shifts`` must lie in ``[-n, n]`` (not checked: checking
    would synchronise).
    """
    if n == 0:
        return x
    length = x.shape[-1]
    if n >= length:
        raise ValueError(f"phase shuffle of {n} samples needs more than {n} time steps, got {length}")
    padded = F.pad(x, (n, n), mode="reflect")
    index = torch.arange(length, device=x.device).unsqueeze(0) + n - shifts.to(x.device).view(-1, 1)
    return padded.gather(2, index.unsqueeze(1).expand(-1, x.shape[1], -1))


def draw_shifts(n: int, shape, generator: torch.Generator | None = None, device=None) -> torch.Tensor:
    """Phase-shuffle shifts, uniform integers in ``[-n, n]`` of ``shape``, drawn on ``generator``'s device
    (no host synchronisation) and moved to ``device``."""
    source = generator.device if generator is not None else device
    return torch.randint(-n, n + 1, tuple(shape), generator=generator, device=source).to(device)


def resolve_labels(labels, label_names, n: int | None = None, generator: torch.Generator | None = None,
                   device=None) -> torch.Tensor | None:
    """Label indices for a conditional model from names, indices or ``None`` (uniform draw).

    An unconditional model (``label_names is None``) accepts ``None`` only.
    """
    if label_names is None:
        if labels is not None:
            raise ValueError("this generator is unconditional: call sample(n) without labels")
        return None
    num = len(label_names)
    if labels is None:
        if n is None:
            raise ValueError("labels=None needs n to draw labels uniformly")
        gen_device = generator.device if generator is not None else "cpu"
        return torch.randint(0, num, (n,), generator=generator, device=gen_device).to(device)
    if isinstance(labels, str):
        labels = [labels] * (n if n is not None else 1)
    if isinstance(labels, torch.Tensor):
        index = labels.to(device=device, dtype=torch.long).reshape(-1)
    else:
        labels = list(labels)
        if labels and isinstance(labels[0], str):
            lookup = {name: i for i, name in enumerate(label_names)}
            unknown = sorted({name for name in labels if name not in lookup})
            if unknown:
                raise ValueError(f"labels {unknown} are not known to this generator; it knows {list(label_names)}")
            labels = [lookup[name] for name in labels]
        index = torch.as_tensor(labels, dtype=torch.long, device=device).reshape(-1)
    if index.numel() and (int(index.min()) < 0 or int(index.max()) >= num):
        raise ValueError(f"label indices must be in [0, {num}); this generator knows {list(label_names)}")
    if n is not None and index.numel() != n:
        raise ValueError(f"got {index.numel()} labels for n={n} samples; give one label per sample")
    return index


def projection_critic(h: torch.Tensor, dense, embed, labels: torch.Tensor | None) -> torch.Tensor:
    """A critic's score from its features ``h`` ``(batch, features)``: ``dense(h)``, plus the projection
    ``<embed(y), h>`` (Miyato & Koyama 2018) when ``embed`` is given (a conditional critic)."""
    out = dense(h).squeeze(1)
    if embed is not None:
        if labels is None:
            raise ValueError("a conditional discriminator needs labels")
        out = out + (embed(labels) * h).sum(dim=1)
    return out
