"""WaveGAN (Donahue, McAuley, Puckette, ICLR 2019), unconditional or class-conditional.

Generator: z ~ U(-1,1)^100 -> dense -> (16, 16d) -> ReLU -> 5 transposed conv1d (kernel 25,
stride 4) -> tanh; 16384 samples. 32768 and 65536 add a sixth layer (stride 2 or 4) as in the
authors' code, last in G and last in D (D's five stride-4 layers come first, then the extra one).
Discriminator mirrors it with LeakyReLU(0.2) and phase shuffle (n=2) after every layer but the last.
The sizes a run uses (d=64 paper, d=16 CPU, ...) are the YAML presets of ``hparams/``.

Conditioning (``label_names`` given): G concatenates a learned label embedding to z; D is a
*projection* discriminator (Miyato & Koyama 2018): ``D(x, y) = w.h(x) + <embed(y), h(x)>``.
Projection adds one embedding table to D, keeps its conv stack identical to the unconditional
one (so the published receptive fields and phase shuffle are untouched) and is the
conditioning that works best with Wasserstein critics in the image literature; concatenating
a label map to the waveform would add a channel to every layer for a signal that does not vary
in time.
"""

from __future__ import annotations

import torch
from torch import nn

from ganaug.functional import draw_shifts, phase_shuffle, projection_critic
from ganaug.models.sampling import Sampling

__all__ = ["WaveGANGenerator", "WaveGANDiscriminator", "PhaseShuffle", "SUPPORTED_LENGTHS"]

SUPPORTED_LENGTHS = (16384, 32768, 65536)
KERNEL_SIZE = 25


def _check(model_dim: int, num_samples: int, label_names):
    if num_samples not in SUPPORTED_LENGTHS:
        raise ValueError(f"num_samples={num_samples}: WaveGAN supports {SUPPORTED_LENGTHS} (about 1, 2 or 4 s at 16 kHz)")
    if model_dim < 1:
        raise ValueError(f"model_dim={model_dim}: must be a positive channel multiplier (64 in the paper)")
    if label_names is not None:
        label_names = [str(n) for n in label_names]
        if not label_names or len(set(label_names)) != len(label_names):
            raise ValueError(f"label_names={label_names}: give distinct label names, or None for an unconditional model")
    return label_names


def _strides(num_samples: int) -> list[int]:
    """Stride of each conv layer between length 16 and ``num_samples``, in G's order (D uses the same order:
    in the authors' code the extra layer of a long model is the last of both)."""
    return {16384: [4] * 5, 32768: [4] * 5 + [2], 65536: [4] * 6}[num_samples]


def _same_padding(stride: int) -> int:
    """Padding that makes a kernel-25 conv map length L to L / stride (transposed: L * stride),
    as TensorFlow's "same" padding did in the authors' code."""
    return (KERNEL_SIZE - stride + 1) // 2


def _widths(model_dim: int, num_samples: int) -> list[int]:
    """Channel counts from the dense layer's (16, c) map down to one output channel."""
    top = 16 if num_samples == 16384 else 32
    layers = len(_strides(num_samples))
    return [model_dim * top // 2**i for i in range(layers)] + [1]


class WaveGANGenerator(Sampling, nn.Module):
    """WaveGAN generator: ``forward(z, labels=None)`` -> ``(batch, num_samples)`` in [-1, 1].

    Args:
        model_dim: channel multiplier ``d`` (64 in the paper; 16 or 32 for CPU runs).
        num_samples: output length, 16384, 32768 or 65536.
        latent_dim: size of z (100).
        label_names: label names of a conditional model; ``None`` is unconditional.
        sample_rate: rate the model was trained at (metadata for users of its output).
        embedding_dim: size of the label embedding joined to z (conditional only).
        post_filter_len: length of the learned post-processing filter (0 = off, 512 in the paper).
    """

    family = "wavegan"

    def __init__(self, model_dim=64, num_samples=16384, latent_dim=100, label_names=None,
                 sample_rate=16000, embedding_dim=50, post_filter_len=0):
        super().__init__()
        self.label_names = _check(model_dim, num_samples, label_names)
        self.model_dim, self.num_samples, self.latent_dim = model_dim, num_samples, latent_dim
        self.sample_rate, self.embedding_dim, self.post_filter_len = sample_rate, embedding_dim, post_filter_len
        widths = _widths(model_dim, num_samples)
        in_dim = latent_dim
        if self.label_names is not None:
            self.embed = nn.Embedding(len(self.label_names), embedding_dim)
            in_dim += embedding_dim
        self.dense = nn.Linear(in_dim, 16 * widths[0])
        self.convs = nn.ModuleList(
            nn.ConvTranspose1d(c_in, c_out, KERNEL_SIZE, stride, padding=_same_padding(stride), output_padding=1)
            for c_in, c_out, stride in zip(widths[:-1], widths[1:], _strides(num_samples))
        )
        self.post_filter = nn.Conv1d(1, 1, post_filter_len, bias=False) if post_filter_len else None

    def config(self) -> dict:
        """Constructor kwargs: with the weights, everything needed to rebuild the module."""
        return {"model_dim": self.model_dim, "num_samples": self.num_samples, "latent_dim": self.latent_dim,
                "label_names": self.label_names, "sample_rate": self.sample_rate,
                "embedding_dim": self.embedding_dim, "post_filter_len": self.post_filter_len}

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        if self.label_names is not None:
            if labels is None:
                raise ValueError("a conditional generator needs labels (indices into label_names)")
            z = torch.cat([z, self.embed(labels)], dim=1)
        x = self.dense(z).view(z.shape[0], -1, 16).relu()
        for i, conv in enumerate(self.convs):
            x = conv(x)
            x = x.relu() if i < len(self.convs) - 1 else x.tanh()
        if self.post_filter is not None:
            n = self.post_filter_len
            x = self.post_filter(nn.functional.pad(x, ((n - 1) // 2, n // 2)))
        return x.squeeze(1)

    def encode(self, wavs: torch.Tensor) -> torch.Tensor:
        """Real clips ``(batch, num_samples)`` in the space D sees: for WaveGAN, the waveform itself."""
        return wavs

    def fit_data(self, wavs: torch.Tensor) -> None:
        """Set data statistics before training (families with normalised features); WaveGAN has none."""

    def decode(self, x: torch.Tensor) -> torch.Tensor:
        """G's output ``(batch, num_samples)`` as waveforms: for WaveGAN, itself (``sample`` runs through
        :class:`ganaug.models.sampling.Sampling`)."""
        return x


class PhaseShuffle(nn.Module):
    """Shift each example by a random integer in ``[-n, n]`` with reflect padding (training only).

    ``forward(x, shifts=None)``: ``shifts`` ``(batch,)`` drawn by the caller (the training loop draws
    them on the device from its seeded generator, see :func:`ganaug.functional.draw_shifts`);
    ``None`` draws them here from torch's default generator. Shapes are static either way.
    """

    def __init__(self, n: int = 2):
        super().__init__()
        if n < 0:
            raise ValueError(f"phase shuffle n={n}: must be >= 0 (2 in the paper)")
        self.n = n

    def forward(self, x: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        if self.n == 0 or not self.training:
            return x
        if shifts is None:
            shifts = draw_shifts(self.n, (x.shape[0],), device=x.device)
        return phase_shuffle(x, shifts, self.n)


class WaveGANDiscriminator(nn.Module):
    """WaveGAN critic: ``forward(x, labels=None, shifts=None)`` with ``x`` ``(batch, num_samples)`` -> ``(batch,)``.

    ``shifts``: phase-shuffle shifts ``(shuffle_layers, batch)`` in ``[-phase_shuffle, phase_shuffle]``
    (training mode only); ``None`` draws them from torch's default generator.
    """

    family = "wavegan"

    def __init__(self, model_dim=64, num_samples=16384, phase_shuffle=2, label_names=None):
        super().__init__()
        self.label_names = _check(model_dim, num_samples, label_names)
        self.model_dim, self.num_samples, self.phase_shuffle = model_dim, num_samples, phase_shuffle
        widths = _widths(model_dim, num_samples)[::-1]
        strides = _strides(num_samples)
        self.convs = nn.ModuleList(
            nn.Conv1d(c_in, c_out, KERNEL_SIZE, stride, padding=_same_padding(stride))
            for c_in, c_out, stride in zip(widths[:-1], widths[1:], strides)
        )
        self.shuffle = PhaseShuffle(phase_shuffle)
        #: phase-shuffle layers, i.e. rows of the ``shifts`` that ``forward`` takes (0 when off)
        self.shuffle_layers = len(self.convs) - 1 if phase_shuffle else 0
        features = 16 * widths[-1]
        self.feature_dim = features
        self.dense = nn.Linear(features, 1)
        if self.label_names is not None:
            self.embed = nn.Embedding(len(self.label_names), features)
            nn.init.zeros_(self.embed.weight)  # starts as the unconditional critic

    def config(self) -> dict:
        """Constructor kwargs (recorded with the training state, so resume can check them)."""
        return {"model_dim": self.model_dim, "num_samples": self.num_samples,
                "phase_shuffle": self.phase_shuffle, "label_names": self.label_names}

    def features(self, x: torch.Tensor, shifts: torch.Tensor | None = None) -> torch.Tensor:
        """The flattened last conv map ``(batch, feature_dim)`` that the dense and projection terms read."""
        x = x.unsqueeze(1) if x.dim() == 2 else x
        for i, conv in enumerate(self.convs):
            x = nn.functional.leaky_relu(conv(x), 0.2)
            if i < len(self.convs) - 1:
                x = self.shuffle(x, None if shifts is None else shifts[i])
        return x.flatten(1)

    def head(self, h: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """The score ``(batch,)`` of features ``h``: dense, plus the projection term when conditional."""
        embed = self.embed if self.label_names is not None else None
        return projection_critic(h, self.dense, embed, labels)

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None,
                shifts: torch.Tensor | None = None) -> torch.Tensor:
        return self.head(self.features(x, shifts), labels)
