"""Fast WaveGAN inference: the path ``WaveGANGenerator.sample()`` and GanAugment's generator source take.

``generate(G, z, labels)`` runs G on latents ``z`` the fastest way that keeps quality (output
within 1e-2 relative error of float32) and returns float32 ``(batch, num_samples)`` in [-1, 1]:

* **CPU with native bf16 (AVX512-BF16 or AMX)**: a *packed* bf16 plan. Each stride-``s``, kernel-25
  ``ConvTranspose1d`` becomes one GEMM in time-major ("channels-last") layout: the ``taps`` input
  positions that reach an output block are gathered into a row (im2col of a ``(batch, time, channels)``
  tensor, one contiguous copy), multiplied by a packed ``(taps * c_in, s * c_out)`` weight whose
  columns are (phase, channel), and the ``(batch, time, s, c_out)`` result *is* the interleaved
  ``(batch, s * time, c_out)`` output, so no interleaving copy is needed. The last layer (one output
  channel) is a GEMM followed by an overlap-add instead, since its im2col would be 7x the activations
  for 1/28 of the work. The dense layer, the label embedding, the sum of the last layer and tanh run in
  float32; the four big layers in bf16 with float32 accumulation (oneDNN). The batch is split into
  chunks of ``CPU_CHUNK`` clips after the second conv so the im2col buffers stay in cache.
* **CUDA**: bf16 autocast around the module itself (cuDNN runs bf16 convolutions at tensor-core rate).
* **anything else** (or ``precision="float32"``): the module's own float32 forward.

Packed plans are cached on the module per (device, dtype) and rebuilt when any parameter changes
(``load_state_dict``, an optimizer step, ``.to()``): the cache key holds every parameter's storage
pointer and in-place version counter.

``precision``: ``"auto"`` (default; :data:`DEFAULT_PRECISION` or the ``GANAUG_PRECISION`` environment
variable can change it), ``"bf16"`` (force the bf16 path, also on CPUs without native bf16, where it is
correct but slow) or ``"float32"`` (the plain forward).
"""

from __future__ import annotations

import functools
import os
from dataclasses import dataclass

import torch
import torch.nn.functional as F

__all__ = ["generate", "pack", "packed_forward", "resolve_precision", "cpu_has_fast_bf16", "PRECISIONS",
           "DEFAULT_PRECISION", "CPU_CHUNK"]

PRECISIONS = ("auto", "bf16", "float32")
#: precision used when a caller passes ``precision=None``; "auto" picks bf16 where the device runs it fast
DEFAULT_PRECISION = os.environ.get("GANAUG_PRECISION", "auto")
#: clips per chunk for the later (long, narrow) layers of the packed CPU path
CPU_CHUNK = 16
#: layers run on the whole batch before it is chunked (short sequences, wide GEMMs)
_FULL_BATCH_LAYERS = 2


@functools.lru_cache(maxsize=1)
def cpu_has_fast_bf16() -> bool:
    """True when the CPU has native bf16 dot products (AVX512-BF16 or AMX-BF16), where a bf16 GEMM runs
    several times faster than float32. Read from /proc/cpuinfo; False where that cannot be read."""
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    flags = set(line.split(":", 1)[1].split())
                    return bool(flags & {"avx512_bf16", "amx_bf16"}) and torch.backends.mkldnn.is_available()
    except OSError:
        pass
    return False


def resolve_precision(precision: str | None, device: torch.device) -> str:
    """``"bf16"`` or ``"float32"``: what ``generate`` will run for ``precision`` on ``device``."""
    precision = DEFAULT_PRECISION if precision is None else precision
    if precision not in PRECISIONS:
        raise ValueError(f"precision={precision!r}: choose one of {PRECISIONS}")
    if precision != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_bf16_supported() else "float32"
    if device.type == "cpu":
        return "bf16" if cpu_has_fast_bf16() else "float32"
    return "float32"


# -- packing ------------------------------------------------------------------------------------
@dataclass
class _Layer:
    weight: torch.Tensor      # (taps * c_in, stride * c_out), rows (tap, c_in), columns (phase, c_out)
    bias: torch.Tensor        # (stride * c_out,) float32 for the last layer, else compute dtype
    taps: int                 # input positions that reach one block of ``stride`` outputs
    left: int                 # zero rows padded before the input (and ``taps - 1 - left`` after)
    stride: int
    c_out: int


@dataclass
class _Plan:
    key: tuple
    dtype: torch.dtype
    dense_weight: torch.Tensor   # (in, 16 * c0) float32, columns in (time, channel) order
    dense_bias: torch.Tensor
    c0: int
    layers: list


def _pack_conv_transpose(conv: torch.nn.ConvTranspose1d, dtype: torch.dtype, last: bool) -> _Layer:
    """Polyphase form of a 1-D transposed conv with ``output_padding`` chosen so length_out = stride * length_in.

    Output ``o = stride * t + r`` takes kernel tap ``k = stride * (t - i) + r + padding`` from input ``i``;
    with ``m = t - i`` in ``[m_lo, m_hi]``, the inputs ``t - m_hi .. t - m_lo`` form the row of output block ``t``.
    """
    w = conv.weight.detach().float()  # (c_in, c_out, K)
    c_in, c_out, kernel = w.shape
    stride, padding = conv.stride[0], conv.padding[0]
    ms = [m for m in range(-kernel, kernel + 1) if any(0 <= stride * m + r + padding < kernel for r in range(stride))]
    m_lo, m_hi = min(ms), max(ms)
    taps = m_hi - m_lo + 1
    packed = w.new_zeros(taps, c_in, stride, c_out)
    for j in range(taps):
        for r in range(stride):
            k = stride * (m_hi - j) + r + padding
            if 0 <= k < kernel:
                packed[j, :, r, :] = w[:, :, k]
    bias = conv.bias.detach().float() if conv.bias is not None else w.new_zeros(c_out)
    bias = bias.repeat(stride)
    if last:  # one output channel: GEMM then overlap-add; weight (taps * stride, c_in), rows (tap, phase)
        if c_out != 1:
            raise ValueError(f"the last layer of a WaveGAN generator has one output channel, got {c_out}")
        weight = packed[..., 0].permute(0, 2, 1).reshape(taps * stride, c_in)
        return _Layer(weight.to(dtype).contiguous(), bias, taps, m_hi, stride, c_out)
    weight = packed.reshape(taps * c_in, stride * c_out)
    return _Layer(weight.to(dtype).contiguous(), bias.to(dtype), taps, m_hi, stride, c_out)


def _cache_key(G, dtype: torch.dtype) -> tuple:
    params = tuple((p.device, p.data_ptr(), p._version) for p in G.parameters())
    return (dtype, params)


def pack(G, dtype: torch.dtype = torch.bfloat16) -> _Plan:
    """The packed plan of a WaveGAN generator ``G`` for ``dtype``, cached on ``G`` while its weights are unchanged."""
    key = _cache_key(G, dtype)
    cache = G.__dict__.setdefault("_fast_plans", {})
    plan = cache.get(dtype)
    if plan is not None and plan.key == key:
        return plan
    with torch.no_grad():
        c0 = G.dense.out_features // 16
        # dense output (c0, 16) -> (16, c0): time-major from the start
        w = G.dense.weight.detach().float().view(c0, 16, -1).transpose(0, 1).reshape(16 * c0, -1)
        b = G.dense.bias.detach().float().view(c0, 16).t().reshape(-1)
        layers = [_pack_conv_transpose(conv, dtype, i == len(G.convs) - 1) for i, conv in enumerate(G.convs)]
        plan = _Plan(key, dtype, w.t().contiguous(), b.contiguous(), c0, layers)
    cache.clear()  # one plan per module: a stale one only holds memory
    cache[dtype] = plan
    return plan


# -- packed forward -----------------------------------------------------------------------------
def _pad_rows(x: torch.Tensor, layer: _Layer, relu: bool) -> torch.Tensor:
    """``x`` (batch, time, c) with ``left`` zero rows before and ``taps - 1 - left`` after, ReLU fused into the copy."""
    batch, length, channels = x.shape
    xp = x.new_empty(batch, length + layer.taps - 1, channels)
    xp[:, :layer.left].zero_()
    xp[:, layer.left + length:].zero_()
    inner = xp[:, layer.left: layer.left + length]
    torch.clamp_min(x, 0, out=inner) if relu else inner.copy_(x)
    return xp


def _conv_layer(x: torch.Tensor, layer: _Layer, relu: bool) -> torch.Tensor:
    """conv_transpose(relu(x)) (ReLU of the layer before, when ``relu``): (batch, time, c_in) ->
    (batch, stride * time, c_out) in x's dtype, as one GEMM over im2col rows."""
    batch, length, c_in = x.shape
    xp = _pad_rows(x, layer, relu)
    rows = xp.as_strided((batch, length, layer.taps * c_in), ((length + layer.taps - 1) * c_in, c_in, 1))
    y = torch.addmm(layer.bias, rows.reshape(batch * length, -1), layer.weight)
    return y.view(batch, length * layer.stride, layer.c_out)


def _last_layer(x: torch.Tensor, layer: _Layer, out: torch.Tensor) -> None:
    """tanh(conv_transpose(relu(x))) with one output channel: (batch, time, c_in) -> ``out`` (batch, stride * time)
    float32. One GEMM gives every tap's contribution in (tap, phase, batch, time) layout; the overlap-add then
    runs over contiguous time in float32."""
    batch, length, c_in = x.shape
    taps, stride = layer.taps, layer.stride
    xr = x.relu().reshape(batch * length, c_in)
    q = torch.mm(layer.weight, xr.t()).float().view(taps, stride, batch, length)
    # phase r of output block t = bias + sum_j q[j, r, :, t - left + j]
    y = layer.bias.view(stride, 1, 1).expand(stride, batch, length + taps - 1).clone()
    for j in range(taps):
        y[:, :, taps - 1 - j: taps - 1 - j + length] += q[j]
    start = taps - 1 - layer.left
    out.view(batch, length, stride).copy_(y[:, :, start: start + length].permute(1, 2, 0))
    out.tanh_()


def packed_forward(G, plan: _Plan, z: torch.Tensor, labels: torch.Tensor | None, chunk: int | None = None) -> torch.Tensor:
    """G's forward on the packed plan: float32 ``(batch, num_samples)`` in [-1, 1] (tanh)."""
    chunk = CPU_CHUNK if chunk is None else chunk
    z = z.float()
    if G.label_names is not None:
        if labels is None:
            raise ValueError("a conditional generator needs labels (indices into label_names)")
        z = torch.cat([z, G.embed(labels).float()], dim=1)
    x = torch.addmm(plan.dense_bias, z, plan.dense_weight).relu_()
    x = x.to(plan.dtype).view(z.shape[0], 16, plan.c0)
    split = min(_FULL_BATCH_LAYERS, len(plan.layers) - 1)
    for i, layer in enumerate(plan.layers[:split]):
        x = _conv_layer(x, layer, relu=i > 0)
    out = torch.empty(z.shape[0], G.num_samples, device=z.device)
    for start in range(0, z.shape[0], chunk):
        xc = x[start: start + chunk]
        for i, layer in enumerate(plan.layers[split:-1]):
            xc = _conv_layer(xc, layer, relu=split + i > 0)
        _last_layer(xc, plan.layers[-1], out[start: start + chunk])
    if G.post_filter is not None:
        n = G.post_filter_len
        y = F.pad(out.unsqueeze(1), ((n - 1) // 2, n // 2)).to(G.post_filter.weight.dtype)
        out = G.post_filter(y).float().squeeze(1)
    return out


def _is_wavegan(G) -> bool:
    return getattr(G, "family", None) == "wavegan" and hasattr(G, "convs") and hasattr(G, "dense")


# -- entry point --------------------------------------------------------------------------------
def generate(G, z: torch.Tensor, labels: torch.Tensor | None = None, precision: str | None = None) -> torch.Tensor:
    """``G(z, labels)`` the fastest way that keeps quality: float32 ``(batch, num_samples)`` clamped to [-1, 1].

    Runs under ``torch.inference_mode``; ``z`` and ``labels`` must be on G's device.
    """
    device = next(G.parameters()).device
    mode = resolve_precision(precision, device)
    if z.shape[0] == 0:
        return torch.empty(0, G.num_samples, device=z.device)
    with torch.inference_mode():
        if mode == "float32" or not _is_wavegan(G):
            out = G(z, labels).float()
        elif device.type == "cpu":
            out = packed_forward(G, pack(G, torch.bfloat16), z, labels)
        else:
            with torch.autocast(device.type, dtype=torch.bfloat16):
                out = G(z, labels).float()
        return out.clamp_(-1, 1)
