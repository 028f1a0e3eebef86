"""Phase Gradient Heap Integration (Prusa, Balazs, Sondergaard 2017), as TiFGAN inverts its spectrograms.

For a Gaussian window ``exp(-pi t^2 / gamma)`` the STFT phase gradient follows from the
log-magnitude ``s`` (natural log). With hop ``a``, ``M`` channels and ``mu = gamma / (a M)``::

    dphase/dframe = ds/dbin / mu + 2 pi a m / M      (instantaneous frequency; time-invariant phase)
    dphase/dbin   = -mu * ds/dframe + pi * shift     (local group delay)

(derivatives by centred differences in lattice units; ``shift`` is 1 when the window's centre sits
half an FFT length into the frame, as for a Hann window of length ``M``, else 0). The phase is then
integrated from the loudest coefficient outwards, always continuing from the loudest coefficient
already reached (a max-heap), with the trapezoidal rule along each step. Coefficients more than
``tol`` (natural-log units) below the maximum are not integrated and get a random phase.
For other windows ``gamma`` is that of the best-matching Gaussian (Hann of length N: 0.25645 N^2).

Implementation: numpy for the gradients, a Python ``heapq`` loop over flat indices for the
integration (about 30k heap operations for a 256 x 128 spectrogram). We did not use the
``pghipy`` package: its last release (0.1.1) targets Python 3.6-3.8, needs numba, and its default
``istft`` path calls a helper with the wrong number of arguments. See docs/inversion.md for speed.
"""

from __future__ import annotations

import heapq
import math

import numpy as np
import torch

__all__ = ["HANN_GAMMA", "pghi_phase", "pghi"]

#: gamma / N^2 of the Gaussian that best matches a Hann window of length N (Prusa et al., Table I)
HANN_GAMMA = 0.25645


def _phase_steps(logmag: np.ndarray, gamma: float, hop_length: int, channels: int, shift: int):
    mu = gamma / (hop_length * channels)
    bins = np.arange(logmag.shape[0], dtype=np.float64)[:, None]
    ds_dbin, ds_dframe = np.gradient(logmag)
    per_frame = ds_dbin / mu + 2 * math.pi * hop_length * bins / channels
    per_bin = -mu * ds_dframe + math.pi * shift
    return per_frame, per_bin


def pghi_phase(logmag: np.ndarray, gamma: float, hop_length: int, channels: int, tol: float = 10.0,
               shift: int = 0, seed: int = 0) -> np.ndarray:
    """Phase ``(bins, frames)`` for the natural-log magnitude ``logmag`` ``(bins, frames)``.

    Args:
        gamma: the window's Gaussian parameter (``hop_length * channels`` for TiFGAN's window).
        tol: coefficients below ``max(logmag) - tol`` get random phase (10 as in TiFGAN's code).
        shift: 1 if the window is centred ``channels / 2`` samples into its frame (Hann of length
            ``channels``), 0 if centred at a multiple of ``channels`` (TiFGAN's folded Gaussian).
        seed: for the random phase of the quiet coefficients.
    """
    logmag = np.asarray(logmag, dtype=np.float64)
    num_bins, num_frames = logmag.shape
    per_frame, per_bin = _phase_steps(logmag, gamma, hop_length, channels, shift)
    # a one-coefficient border marked done spares the bounds checks; the heap holds loudness ranks
    # (small ints compare faster than (magnitude, index) tuples)
    width = num_frames + 2
    pad = lambda x, value: np.pad(x, 1, constant_values=value).ravel()
    done = pad(logmag < logmag.max() - tol, True)
    order = np.argsort(pad(-logmag, np.inf), kind="stable")
    rank = np.empty_like(order)
    rank[order] = np.arange(order.size)
    step_t, step_f = pad(per_frame, 0.0).tolist(), pad(per_bin, 0.0).tolist()
    rank, order, done = rank.tolist(), order.tolist(), done.tolist()
    phase = [0.0] * len(done)
    push, pop = heapq.heappush, heapq.heappop
    for start in order:
        if done[start]:
            continue
        done[start] = True  # a new island: its loudest coefficient keeps phase 0
        heap = [rank[start]]
        while heap:
            i = order[pop(heap)]
            p, st, sf = phase[i], step_t[i], step_f[i]
            j = i + 1
            if not done[j]:
                phase[j] = p + 0.5 * (st + step_t[j])
                done[j] = True
                push(heap, rank[j])
            j = i - 1
            if not done[j]:
                phase[j] = p - 0.5 * (st + step_t[j])
                done[j] = True
                push(heap, rank[j])
            j = i + width
            if not done[j]:
                phase[j] = p + 0.5 * (sf + step_f[j])
                done[j] = True
                push(heap, rank[j])
            j = i - width
            if not done[j]:
                phase[j] = p - 0.5 * (sf + step_f[j])
                done[j] = True
                push(heap, rank[j])
    phase = np.asarray(phase).reshape(num_bins + 2, width)[1:-1, 1:-1]
    quiet = logmag < logmag.max() - tol
    phase[quiet] = np.random.default_rng(seed).uniform(-math.pi, math.pi, int(quiet.sum()))
    return phase


def pghi(mag: torch.Tensor, gamma: float, hop_length: int, channels: int, tol: float = 10.0,
         shift: int = 0, seed: int = 0) -> torch.Tensor:
    """Complex spectrogram ``mag * exp(i phase)`` with PGHI's phase; ``mag`` ``(batch, bins, frames)``.

    Runs on the CPU (one clip at a time) and returns on ``mag``'s device.
    """
    if mag.dim() != 3:
        raise ValueError(f"expected a magnitude of shape (batch, bins, frames), got {tuple(mag.shape)}")
    logmag = torch.log(mag.detach().double().cpu().clamp_min(1e-30)).numpy()
    phase = np.stack([pghi_phase(s, gamma, hop_length, channels, tol, shift, seed) for s in logmag])
    return torch.polar(mag.float(), torch.from_numpy(phase).float().to(mag.device))
