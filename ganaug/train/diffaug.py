"""Differentiable augmentation of the clips the critic sees (DiffAugment, Zhao et al. 2020; ADA, Karras et al. 2020).

Real AND generated clips pass through the same random, differentiable transforms before every
critic call, so the critic cannot memorise a small training set, while the generator still gets
gradients through the transform. For waveforms ``(batch, time)``, each op is applied to each clip
independently with probability ``p``:

- ``shift``: time shift by up to 1/8 of the clip, zeros entering at the edge;
- ``gain``: gain uniform in [-6, +6] dB;
- ``cutout``: a random 1/8 of the clip set to zero (time cutout);
- ``band``: a random 1/8 of the spectrum's bins set to zero (band cutout, through ``rfft``).

Every random number is drawn by :meth:`DiffAugment.draw` (on the training loop's device generator,
no host synchronisation); :meth:`DiffAugment.apply` is a pure function of the clips and those
draws, with static shapes, so it compiles. :class:`AugmentPipe` holds ``p`` as state: fixed, or
adjusted from the critic's overfitting signal ``r_t = E[sign D(real)]`` as ADA does (nsgan and hinge
critics only: see its docstring). ``p`` is a device tensor, saved in the training state.
"""

from __future__ import annotations

import torch

__all__ = ["DiffAugment", "AugmentPipe"]

SHIFT_FRACTION = 1 / 8
GAIN_DB = 6.0
CUTOUT_FRACTION = 1 / 8
BAND_FRACTION = 1 / 8


class DiffAugment:
    """The augmentations named in ``policy`` (``"shift,gain,cutout,band"``) for clips of ``num_samples``."""

    def __init__(self, policy: str, num_samples: int):
        self.ops = [op.strip() for op in policy.split(",") if op.strip()]
        unknown = [op for op in self.ops if op not in ("shift", "gain", "cutout", "band")]
        if unknown:
            raise ValueError(f"diffaug={policy!r}: unknown {unknown}; choose from shift,gain,cutout,band")
        self.num_samples = num_samples
        self.max_shift = max(1, int(num_samples * SHIFT_FRACTION))
        self.cut = max(1, int(num_samples * CUTOUT_FRACTION))
        self.bins = num_samples // 2 + 1
        self.band = max(1, int(self.bins * BAND_FRACTION))

    def __bool__(self) -> bool:
        return bool(self.ops)

    def draw(self, n: int, p: torch.Tensor, generator: torch.Generator, device) -> dict[str, torch.Tensor]:
        """The random choices for ``n`` clips: per op, whether it applies (prob. ``p``) and its amount."""
        source = generator.device
        u = torch.rand(n, 2 * len(self.ops), generator=generator, device=source).to(device)
        p = p.to(device)
        out = {}
        for i, op in enumerate(self.ops):
            on = u[:, 2 * i] < p
            amount = u[:, 2 * i + 1]
            if op == "shift":
                shift = (amount * (2 * self.max_shift + 1)).floor().long() - self.max_shift
                out["shift"] = torch.where(on, shift, torch.zeros_like(shift))
            elif op == "gain":
                db = (2 * amount - 1) * GAIN_DB
                out["gain"] = torch.where(on, torch.pow(10.0, db / 20), torch.ones_like(db))
            elif op == "cutout":
                start = (amount * (self.num_samples - self.cut + 1)).floor().long()
                out["cutout"] = torch.where(on, start, torch.full_like(start, -self.num_samples))
            elif op == "band":
                start = (amount * (self.bins - self.band + 1)).floor().long()
                out["band"] = torch.where(on, start, torch.full_like(start, -self.bins))
        return out

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        """Augmented clips ``(batch, time)``; differentiable in ``x``."""
        length = x.shape[-1]
        for op in self.ops:
            if op == "shift":
                m = self.max_shift
                padded = torch.nn.functional.pad(x, (m, m))
                index = torch.arange(length, device=x.device).unsqueeze(0) + m - params["shift"].view(-1, 1)
                x = padded.gather(1, index)
            elif op == "gain":
                x = x * params["gain"].to(x.dtype).view(-1, 1)
            elif op == "cutout":
                t = torch.arange(length, device=x.device).unsqueeze(0)
                start = params["cutout"].view(-1, 1)
                x = x * ~((t >= start) & (t < start + self.cut))
            elif op == "band":
                spec = torch.fft.rfft(x.float(), dim=-1)
                f = torch.arange(spec.shape[-1], device=x.device).unsqueeze(0)
                start = params["band"].view(-1, 1)
                spec = spec * ~((f >= start) & (f < start + self.band))
                x = torch.fft.irfft(spec, n=length, dim=-1).to(x.dtype)
        return x


class AugmentPipe:
    """DiffAugment with its probability ``p`` as state: fixed, or adapted by ADA (Karras et al. 2020).

    ``draw``/``apply`` as :class:`DiffAugment` at the current ``p``. With ``ada_target > 0``, ``p``
    starts at 0 and ``observe(real_scores)`` after each critic step moves it, every ``interval``
    observations, by ``sign(mean sign(D(real)) - target) * clips_seen / (kimg * 1000)`` (summed over all
    processes under torchrun), clamped to [0, 1]. ADA's signal assumes scores centred on a decision
    boundary at 0 (logits of ``nsgan``, margins of ``hinge``); a WGAN critic has none (its loss is unchanged
    by ``D + c``), which is why :class:`~ganaug.train.options.TrainOptions` refuses ADA with WGAN losses.
    ``p`` lives on the device: no host synchronisation.
    """

    def __init__(self, policy: str, num_samples: int, device, p: float = 1.0, ada_target: float = 0.0,
                 ada_kimg: float = 100.0, interval: int = 4, reduce=None):
        self.augment = DiffAugment(policy, num_samples)
        self.target, self.kimg, self.interval = ada_target, ada_kimg, interval
        self.adaptive = ada_target > 0
        self.reduce = reduce          # sums a device tensor over processes in place (torchrun); None: one process
        self.p = torch.tensor(0.0 if self.adaptive else float(p), device=device)
        self.sign_sum = torch.zeros((), device=device)
        self.clips = 0
        self.calls = 0

    def draw(self, n: int, generator: torch.Generator, device) -> dict[str, torch.Tensor]:
        return self.augment.draw(n, self.p, generator, device)

    def apply(self, x: torch.Tensor, params: dict[str, torch.Tensor]) -> torch.Tensor:
        return self.augment.apply(x, params)

    def observe(self, real_scores: torch.Tensor) -> None:
        """ADA's update from the critic's scores on (augmented) real clips; nothing when ``p`` is fixed."""
        if not self.adaptive:
            return
        self.sign_sum = self.sign_sum + real_scores.detach().float().sign().sum()
        self.clips += real_scores.shape[0]
        self.calls += 1
        if self.calls % self.interval == 0:
            stats = torch.stack([self.sign_sum, torch.full_like(self.sign_sum, self.clips)])
            if self.reduce is not None:          # every process takes the same p (no host synchronisation)
                self.reduce(stats)
            rt = stats[0] / stats[1]
            self.p = (self.p + (rt - self.target).sign() * (stats[1] / (self.kimg * 1000))).clamp(0.0, 1.0)
            self.sign_sum = torch.zeros_like(self.sign_sum)
            self.clips = 0

    def state(self) -> dict[str, torch.Tensor]:
        """What resume needs (ADA only: a fixed ``p`` comes from the options)."""
        if not self.adaptive:
            return {}
        return {"ada.p": self.p.detach().clone().reshape(1), "ada.sign_sum": self.sign_sum.detach().clone().reshape(1),
                "ada.clips": torch.tensor([self.clips]), "ada.calls": torch.tensor([self.calls])}

    def load(self, tensors: dict) -> None:
        if self.adaptive and "ada.p" in tensors:
            self.p = tensors["ada.p"].reshape(()).to(self.p.device)
            self.sign_sum = tensors["ada.sign_sum"].reshape(()).to(self.p.device)
            self.clips, self.calls = int(tensors["ada.clips"]), int(tensors["ada.calls"])
