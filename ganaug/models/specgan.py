"""SpecGAN (Donahue, McAuley, Puckette, ICLR 2019): a DCGAN on normalised log-magnitude spectrograms.

Representation: ``hann_stft`` (256-point periodic Hann, hop 128, 16 kHz: 16 ms / 8 ms) of 16384
samples -> 128 frames x 129 bins; the top bin is dropped; ``log(|X| + 1e-6)`` is normalised per
frequency bin with the training set's mean and std (``fit_data``; buffers saved with the weights),
divided by 3 (three standard deviations) and clipped to [-1, 1]. Layout ``(batch, 1, 128 bins, 128 frames)``.
Back to audio: undo the normalisation, zero top bin, Griffin-Lim (``griffin_lim_iters``, 16 as
published; zero initial phase as in the authors' code; momentum 0.99 = torchaudio's fast
Griffin-Lim, where the published code used momentum 0).

Generator: z -> dense -> (16d, 4, 4) -> ReLU -> 5 transposed conv2d (5x5, stride 2, "same"):
16d -> 8d -> 4d -> 2d -> d -> 1, 4 -> 128, ReLU between, tanh out; d = 64 in the paper.
Discriminator mirrors it: 5 conv2d (5x5, stride 2), LeakyReLU 0.2, flatten, dense -> 1;
phase shuffle (along time) off by default, as in the authors' SpecGAN.
Conditioning as in ``wavegan.py``: label embedding joined to z; projection discriminator.

``SpectrogramGenerator`` / ``SpectrogramDiscriminator`` are the shared 2-D stacks; TiFGAN-M
(``tifgan.py``) reuses them with its own kernels, shapes and representation.
"""

from __future__ import annotations

import functools

import torch
from torch import nn

from ganaug.functional import draw_shifts, phase_shuffle, projection_critic
from ganaug.models.sampling import Sampling
from ganaug.spectral import SPECGAN_N_FFT, griffin_lim, hann_istft, hann_stft

__all__ = ["SpecGANGenerator", "SpecGANDiscriminator", "SpectrogramGenerator", "SpectrogramDiscriminator"]

LOG_EPS = 1e-6   # added to |X| before the log, as in the authors' code
CLIP_NSTD = 3.0  # normalised log-magnitude is divided by this and clipped to [-1, 1]


def check_labels(label_names):
    if label_names is None:
        return None
    label_names = [str(n) for n in label_names]
    if not label_names or len(set(label_names)) != len(label_names):
        raise ValueError(f"label_names={label_names}: give distinct label names, or None for an unconditional model")
    return label_names


def _same(kernel: tuple[int, int]) -> tuple[tuple[int, int], tuple[int, int]]:
    """(padding, output_padding) making a stride-2 (transposed) conv halve (double) each side."""
    pad = tuple(k // 2 - (1 - k % 2) for k in kernel)  # 5 -> 2, 3 -> 1, 12 -> 5
    out = tuple(k % 2 for k in kernel)                   # odd kernels need one extra output row
    return pad, out


def _maybe_sn(module: nn.Module, spectral_norm: bool) -> nn.Module:
    return nn.utils.parametrizations.spectral_norm(module) if spectral_norm else module


class SpectrogramGenerator(Sampling, nn.Module):
    """z (+ label embedding) -> dense -> ``(widths[0], *start)`` -> stride-2 transposed convs -> tanh,
    giving ``(batch, 1, start[0] * 2^k, start[1] * 2^k)``. Subclasses define the representation and
    ``decode``; ``sample`` runs through :class:`ganaug.models.sampling.Sampling`."""

    family = "spectrogram"
    sample_batch_size = 64

    def __init__(self, widths, start, kernel, latent_dim, label_names, embedding_dim, spectral_norm=False):
        super().__init__()
        self.label_names = check_labels(label_names)
        self.start = tuple(start)
        in_dim = latent_dim
        if self.label_names is not None:
            self.embed = nn.Embedding(len(self.label_names), embedding_dim)
            in_dim += embedding_dim
        self.dense = nn.Linear(in_dim, widths[0] * self.start[0] * self.start[1])
        pad, out = _same(kernel)
        self.convs = nn.ModuleList(
            _maybe_sn(nn.ConvTranspose2d(c_in, c_out, kernel, 2, padding=pad, output_padding=out), spectral_norm)
            for c_in, c_out in zip(widths[:-1], widths[1:])
        )

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, latent_dim)`` -> the representation D sees, ``(batch, 1, bins, frames)`` in [-1, 1]."""
        if self.label_names is not None:
            if labels is None:
                raise ValueError("a conditional generator needs labels (indices into label_names)")
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.dense(z).view(z.shape[0], -1, *self.start).relu()
        for i, conv in enumerate(self.convs):
            x = conv(x)
            x = x.relu() if i < len(self.convs) - 1 else x.tanh()
        return x

    def _check_fitted(self):
        if not bool(self.data_fitted):
            raise RuntimeError(f"{type(self).__name__}: call fit_data(training_wavs) before encode/sample "
                               f"(the representation needs the data statistics)")

    check_ready = _check_fitted

    @staticmethod
    def _batches(wavs, batch_size=256):
        if isinstance(wavs, torch.Tensor):
            wavs = wavs.split(batch_size)
        for batch in wavs:
            yield torch.as_tensor(batch).float()

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        raise NotImplementedError


class SpectrogramDiscriminator(nn.Module):
    """Stride-2 conv2d stack, LeakyReLU 0.2, optional phase shuffle along time after every layer but the last
    (its shifts drawn by the caller, as for ``WaveGANDiscriminator``), flatten, dense -> 1; projection
    conditioning as in ``WaveGANDiscriminator``."""

    def __init__(self, widths, final, kernel, label_names, phase_shuffle=0, spectral_norm=False):
        super().__init__()
        self.label_names = check_labels(label_names)
        if phase_shuffle < 0:
            raise ValueError(f"phase_shuffle={phase_shuffle}: must be >= 0")
        self.phase_shuffle = phase_shuffle
        #: phase-shuffle layers, i.e. rows of the ``shifts`` that ``forward`` takes (0 when off)
        self.shuffle_layers = len(widths) - 2 if phase_shuffle else 0
        pad, _ = _same(kernel)
        self.convs = nn.ModuleList(
            _maybe_sn(nn.Conv2d(c_in, c_out, kernel, 2, padding=pad), spectral_norm)
            for c_in, c_out in zip(widths[:-1], widths[1:])
        )
        features = widths[-1] * final[0] * final[1]
        self.dense = _maybe_sn(nn.Linear(features, 1), spectral_norm)
        if self.label_names is not None:
            self.embed = nn.Embedding(len(self.label_names), features)
            nn.init.zeros_(self.embed.weight)  # starts as the unconditional critic

    def _shuffle(self, x: torch.Tensor, shifts: torch.Tensor | None) -> torch.Tensor:
        if self.phase_shuffle == 0 or not self.training:
            return x
        b, c, f, t = x.shape
        if shifts is None:
            shifts = draw_shifts(self.phase_shuffle, (b,), device=x.device)
        return phase_shuffle(x.reshape(b, c * f, t), shifts, self.phase_shuffle).view(b, c, f, t)

    def features(self, x: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        x = x.unsqueeze(1) if x.dim() == 3 else x
        for i, conv in enumerate(self.convs):
            x = nn.functional.leaky_relu(conv(x), 0.2)
            if i < len(self.convs) - 1:
                x = self._shuffle(x, None if shifts is None else shifts[i])
        return x.flatten(1)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                shifts: torch.Tensor | None = None) -> torch.Tensor:
        """``(batch, 1, bins, frames)`` -> ``(batch,)``. ``shifts``: phase-shuffle shifts along time
        ``(shuffle_layers, batch)`` (training mode); ``None`` draws them from torch's default generator."""
        embed = self.embed if self.label_names is not None else None
        return projection_critic(self.features(x, shifts), self.dense, embed, labels)


def _check_specgan(model_dim: int, num_samples: int):
    if num_samples != 16384:
        raise ValueError(f"num_samples={num_samples}: SpecGAN makes 16384 samples (128 frames of hop 128)")
    if model_dim < 1:
        raise ValueError(f"model_dim={model_dim}: must be a positive channel multiplier (64 in the paper)")


class SpecGANGenerator(SpectrogramGenerator):
    """SpecGAN generator: ``forward(z, labels=None)`` -> ``(batch, 1, 128, 128)`` normalised log-magnitude;
    ``sample(n, labels)`` -> waveforms ``(n, 16384)``.

    Args:
        model_dim: channel multiplier ``d`` (64 in the paper; 16 or 32 for CPU runs).
        num_samples: 16384 (the only length of the published model).
        latent_dim: size of z (100).
        label_names: label names of a conditional model; ``None`` is unconditional.
        sample_rate: rate of the training audio (the STFT is 256 / 128 samples at any rate).
        embedding_dim: size of the label embedding joined to z (conditional only).
        griffin_lim_iters: Griffin-Lim iterations in ``sample`` (16 as published).
        griffin_lim_momentum: 0.99 (fast Griffin-Lim, torchaudio's default); 0 is the original.
    """

    family = "specgan"

    def __init__(self, model_dim=64, num_samples=16384, latent_dim=100, label_names=None, sample_rate=16000,
                 embedding_dim=50, griffin_lim_iters=16, griffin_lim_momentum=0.99):
        _check_specgan(model_dim, num_samples)
        d = model_dim
        super().__init__([16 * d, 8 * d, 4 * d, 2 * d, d, 1], (4, 4), (5, 5), latent_dim, label_names, embedding_dim)
        self.model_dim, self.num_samples, self.latent_dim = model_dim, num_samples, latent_dim
        self.sample_rate, self.embedding_dim = sample_rate, embedding_dim
        self.griffin_lim_iters, self.griffin_lim_momentum = griffin_lim_iters, griffin_lim_momentum
        bins = SPECGAN_N_FFT // 2
        self.register_buffer("mean", torch.zeros(bins))
        self.register_buffer("std", torch.ones(bins))
        self.register_buffer("data_fitted", torch.zeros(1, dtype=torch.bool))

    def config(self) -> dict:
        """Constructor kwargs: with the weights (and data statistics), everything to rebuild the module."""
        return {"model_dim": self.model_dim, "num_samples": self.num_samples, "latent_dim": self.latent_dim,
                "label_names": self.label_names, "sample_rate": self.sample_rate,
                "embedding_dim": self.embedding_dim, "griffin_lim_iters": self.griffin_lim_iters,
                "griffin_lim_momentum": self.griffin_lim_momentum}

    @staticmethod
    def log_magnitude(wavs: torch.Tensor) -> torch.Tensor:
        """``(batch, time)`` -> ``log(|X| + 1e-6)`` ``(batch, 128, frames)`` (top bin dropped)."""
        return torch.log(hann_stft(wavs)[:, :-1].abs() + LOG_EPS)

    @torch.no_grad()
    def fit_data(self, wavs) -> "SpecGANGenerator":
        """Per-frequency mean and std of the log-magnitude over all frames of ``wavs``
        (a ``(N, num_samples)`` tensor or an iterable of ``(B, num_samples)`` batches)."""
        device = self.mean.device
        total, total_sq, count = 0.0, 0.0, 0
        for batch in self._batches(wavs):
            logmag = self.log_magnitude(batch.to(device)).double()
            total = total + logmag.sum(dim=(0, 2))
            total_sq = total_sq + logmag.pow(2).sum(dim=(0, 2))
            count += logmag.shape[0] * logmag.shape[2]
        if count == 0:
            raise ValueError("fit_data got no audio; give the training waveforms (N, num_samples)")
        mean = total / count
        self.mean.copy_(mean.float())
        self.std.copy_((total_sq / count - mean**2).clamp_min(1e-8).sqrt().float())
        self.data_fitted.fill_(True)
        return self

    def encode(self, wavs: torch.Tensor) -> torch.Tensor:
        """Real audio ``(batch, num_samples)`` -> D's input ``(batch, 1, 128, 128)`` in [-1, 1]."""
        self._check_fitted()
        logmag = self.log_magnitude(wavs.to(self.mean.device))
        norm = (logmag - self.mean[:, None]) / self.std[:, None] / CLIP_NSTD
        return norm.clamp(-1, 1).unsqueeze(1)

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """``(batch, 1, 128, 128)`` -> waveforms ``(batch, num_samples)`` by Griffin-Lim."""
        logmag = x.squeeze(1).float() * CLIP_NSTD * self.std[:, None] + self.mean[:, None]
        mag = nn.functional.pad(logmag.exp(), (0, 0, 0, 1))  # the dropped top bin comes back as zero
        istft = functools.partial(hann_istft, length=self.num_samples)
        return griffin_lim(mag, hann_stft, istft, self.griffin_lim_iters, self.griffin_lim_momentum)


class SpecGANDiscriminator(SpectrogramDiscriminator):
    """SpecGAN critic: ``forward(x, labels=None)`` with ``x`` ``(batch, 1, 128, 128)`` -> ``(batch,)``."""

    def __init__(self, model_dim=64, num_samples=16384, phase_shuffle=0, label_names=None):
        _check_specgan(model_dim, num_samples)
        d = model_dim
        super().__init__([1, d, 2 * d, 4 * d, 8 * d, 16 * d], (4, 4), (5, 5), label_names, phase_shuffle)
        self.model_dim, self.num_samples = model_dim, num_samples

    def config(self) -> dict:
        """Constructor kwargs (recorded with the training state, so resume can check them)."""
        return {"model_dim": self.model_dim, "num_samples": self.num_samples,
                "phase_shuffle": self.phase_shuffle, "label_names": self.label_names}
