"""The one inference path of every generator family: ``sample()`` and ``synthesize()``.

:class:`Sampling` gives WaveGAN, SpecGAN and TiFGAN the same two methods. Each runs the family's own
``forward(z, labels)`` under ``torch.inference_mode`` in eval mode and, where the device runs bf16
natively, under ``torch.autocast(device, torch.bfloat16)``; then the family's ``decode`` (identity
for waveforms; Griffin-Lim or PGHI for spectrograms) in float32. The output is float32 clamped to
[-1, 1].

Native bf16 (:func:`native_bf16`): a CPU whose ``/proc/cpuinfo`` flags show AVX512-BF16 or AMX-BF16
(oneDNN then runs bf16 convolutions with float32 accumulation at several times the float32 rate), or a
CUDA GPU with native bf16 (Ampere and later). Elsewhere, e.g. AVX2-only CPUs where oneDNN emulates bf16
(slower than float32 and, on the shared WaveGAN, 1.3% off float32 rather than the 0.8% of bf16 with
float32 accumulation), ``"auto"`` runs float32. docs/performance.md has the figures.
"""

from __future__ import annotations

import contextlib
import functools
import os

import torch

from ganaug.functional import resolve_labels, sample_latents

__all__ = ["Sampling", "native_bf16", "inference_dtype", "PRECISIONS"]

PRECISIONS = ("auto", "bf16", "float32")
_CPU_BF16_FLAGS = {"avx512_bf16", "amx_bf16"}


@functools.lru_cache(maxsize=None)
def native_bf16(device_type: str) -> bool:
    """True where bf16 matmuls and convolutions run natively on ``device_type`` ("cpu" or "cuda")."""
    if device_type == "cuda":
        return torch.cuda.is_available() and torch.cuda.is_bf16_supported(including_emulation=False)
    if device_type != "cpu" or not torch.backends.mkldnn.is_available() or not os.path.exists("/proc/cpuinfo"):
        return False
    with open("/proc/cpuinfo") as f:
        flags = next((line.split(":", 1)[1].split() for line in f if line.startswith("flags")), [])
    return bool(_CPU_BF16_FLAGS & set(flags))


def inference_dtype(device: torch.device, precision: str | None = None) -> torch.dtype:
    """``torch.bfloat16`` (run under autocast) or ``torch.float32`` for ``precision`` on ``device``:
    ``None``/"auto" picks bf16 where it is native, "bf16" forces it, "float32" turns it off."""
    precision = precision or "auto"
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {PRECISIONS}")
    if precision == "auto":
        return torch.bfloat16 if native_bf16(device.type) else torch.float32
    return torch.bfloat16 if precision == "bf16" else torch.float32


class Sampling:
    """``sample`` and ``synthesize`` for an ``nn.Module`` generator with ``latent_dim``, ``label_names``,
    ``num_samples``, ``forward(z, labels)`` and ``decode(x)`` -> waveforms ``(batch, num_samples)``.
    ``sample_batch_size``: rows per forward pass (memory)."""

    sample_batch_size = 256

    def check_ready(self) -> None:
        """Raise when the generator cannot sample yet (families with data statistics override it)."""

    @torch.inference_mode()
    def sample(self, n: int, labels=None, generator: torch.Generator | None = None, batch_size: int | None = None,
               precision: str | None = None) -> torch.Tensor:
        """``n`` clips ``(n, num_samples)``, float32 in [-1, 1], on the model's device.

        ``labels``: names, indices, a single name, or ``None`` (uniform over ``label_names``
        for a conditional model). A seeded ``generator`` makes the output repeatable.
        ``precision``: ``None``/"auto" (bf16 autocast where native, see :func:`inference_dtype`), "bf16", "float32".
        """
        self.check_ready()
        device = next(self.parameters()).device
        index = resolve_labels(labels, self.label_names, n, generator, device)
        z = sample_latents(n, self.latent_dim, generator, device)
        return self.synthesize(z, index, batch_size, precision)

    @torch.inference_mode()
    def synthesize(self, z: torch.Tensor, labels: torch.Tensor | None = None, batch_size: int | None = None,
                   precision: str | None = None) -> torch.Tensor:
        """Waveforms ``(len(z), num_samples)`` float32 in [-1, 1] for given latents and label indices; row ``i``
        depends only on ``z[i]`` and ``labels[i]``. Runs in eval mode (spectral norm must not advance its power
        iteration while sampling mid-training)."""
        self.check_ready()
        batch_size = batch_size or self.sample_batch_size
        dtype = inference_dtype(z.device, precision)
        out = torch.empty(z.shape[0], self.num_samples, device=z.device)
        was_training = self.training
        self.eval()
        try:
            for start in range(0, z.shape[0], batch_size):
                stop = start + batch_size
                autocast = torch.autocast(z.device.type, dtype=dtype) if dtype != torch.float32 else contextlib.nullcontext()
                with autocast:
                    x = self(z[start:stop], None if labels is None else labels[start:stop])
                out[start:stop] = self.decode(x.float())
        finally:
            self.train(was_training)
        return out.clamp_(-1, 1)
