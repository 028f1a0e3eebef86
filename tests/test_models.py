"""WaveGAN generator and critic: shapes of every length, the paper's sizes (the YAML presets), conditioning,
phase shuffle, the long critic's layer order, the multi-resolution STFT critic."""

from __future__ import annotations

import pytest
import torch

from ganaug.functional import phase_shuffle
from ganaug.models import DISCRIMINATORS, GENERATORS, PhaseShuffle, WaveGANDiscriminator, WaveGANGenerator
from ganaug.train.run import preset_models


def count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())


@pytest.mark.parametrize("num_samples", [16384, 32768, 65536])
@pytest.mark.parametrize("label_names", [None, ["yes", "no", "up"]])
def test_every_length_has_the_right_shapes(num_samples, label_names):
    torch.manual_seed(0)
    G = WaveGANGenerator(model_dim=2, num_samples=num_samples, label_names=label_names)   # small d: shapes only
    D = WaveGANDiscriminator(model_dim=2, num_samples=num_samples, label_names=label_names)
    labels = None if label_names is None else torch.tensor([0, 2])
    wavs = G(torch.rand(2, 100) * 2 - 1, labels)
    assert wavs.shape == (2, num_samples) and wavs.dtype == torch.float32
    assert wavs.abs().max() <= 1
    scores = D(wavs, labels)
    assert scores.shape == (2,) and torch.isfinite(scores).all()
    assert G.encode(wavs) is wavs            # WaveGAN's critic sees waveforms
    assert G.fit_data(wavs) is None


def test_yaml_presets_build_the_published_and_the_cpu_sizes():
    G, D = preset_models("wavegan")                                   # the paper's d=64
    assert count(G) == 19_065_345
    assert count(D) == 17_427_969
    assert preset_models("wavegan_cpu")[0].model_dim == 16 and preset_models("wavegan_tiny")[0].model_dim == 8
    G, D = preset_models("wavegan_cpu", ["yes", "no"], num_samples=32768)
    assert G.label_names == D.label_names == ["yes", "no"] and G.num_samples == D.num_samples == 32768


def test_longer_models_add_a_layer_last_in_g_and_in_d():
    """The authors' code: G's extra layer is its last (stride 2 for 32768, 4 for 65536), and so is D's,
    after the five stride-4 layers; phase shuffle follows every layer but the last."""
    for num_samples, layers, extra in ((16384, 5, 4), (32768, 6, 2), (65536, 6, 4)):
        G = WaveGANGenerator(model_dim=2, num_samples=num_samples)
        D = WaveGANDiscriminator(model_dim=2, num_samples=num_samples)
        assert len(G.convs) == len(D.convs) == layers
        assert [c.stride[0] for c in G.convs] == [4] * (layers - 1) + [extra]
        assert [c.stride[0] for c in D.convs] == [4] * (layers - 1) + [extra]
        assert [c.out_channels for c in D.convs][-1] == (16 if num_samples == 16384 else 32) * 2
        assert D.shuffle_layers == layers - 1


def test_conditional_generator_uses_its_label():
    torch.manual_seed(0)
    G = WaveGANGenerator(model_dim=4, label_names=["yes", "no"]).eval()
    z = (torch.rand(1, 100) * 2 - 1).repeat(2, 1)
    out = G(z, torch.tensor([0, 1]))
    assert not torch.allclose(out[0], out[1])                       # same z, other label: other clip
    assert torch.allclose(G(z[:1], torch.tensor([1]))[0], out[1], atol=1e-6)   # same z, same label: same clip
    with pytest.raises(ValueError, match="labels"):
        G(z)


def test_projection_critic_uses_its_label():
    torch.manual_seed(0)
    D = WaveGANDiscriminator(model_dim=4, label_names=["yes", "no"], phase_shuffle=0)
    x = torch.randn(1, 16384).repeat(2, 1) * 0.1
    out = D(x, torch.tensor([0, 1]))
    # starts unconditional: the two rows differ only by float rounding (batched kernels may differ per row)
    assert abs(float(out[0] - out[1])) < 1e-5 * max(1.0, abs(float(out[0])))
    torch.nn.init.normal_(D.embed.weight)
    out = D(x, torch.tensor([0, 1]))
    assert abs(float(out[0] - out[1])) > 1e-3
    with pytest.raises(ValueError, match="labels"):
        D(x)


def test_sample_gives_labelled_clips_in_range_and_repeats_under_a_seed():
    G = WaveGANGenerator(model_dim=2, label_names=["yes", "no"]).eval()
    a = G.sample(3, ["no", "yes", "no"], generator=torch.Generator().manual_seed(1))
    b = G.sample(3, ["no", "yes", "no"], generator=torch.Generator().manual_seed(1))
    assert a.shape == (3, 16384) and torch.equal(a, b) and a.abs().max() <= 1
    with pytest.raises(ValueError, match="not known"):
        G.sample(1, ["maybe"])


def test_config_rebuilds_the_same_module():
    for cls, registry in ((WaveGANGenerator, GENERATORS), (WaveGANDiscriminator, DISCRIMINATORS)):
        torch.manual_seed(0)
        module = cls(model_dim=2, num_samples=32768, label_names=["a", "b"])
        assert registry[module.family] is cls
        torch.manual_seed(0)
        again = cls(**module.config())
        assert all(torch.equal(a, b) for a, b in zip(module.state_dict().values(), again.state_dict().values()))


def test_bad_sizes_are_clear_errors():
    with pytest.raises(ValueError, match="num_samples=1000"):
        WaveGANGenerator(num_samples=1000)
    with pytest.raises(ValueError, match="model_dim"):
        WaveGANDiscriminator(model_dim=0)
    with pytest.raises(ValueError, match="distinct"):
        WaveGANGenerator(label_names=["yes", "yes"])
    with pytest.raises(ValueError, match="phase shuffle"):
        PhaseShuffle(-1)


# -- phase shuffle ------------------------------------------------------------------------------
def _ramp(batch=1, channels=2, length=12) -> torch.Tensor:
    return torch.arange(batch * channels * length, dtype=torch.float32).view(batch, channels, length)


@pytest.mark.parametrize("shift", [-2, -1, 0, 1, 2])
def test_phase_shuffle_shifts_and_fills_by_reflection(shift):
    x = _ramp()
    out = phase_shuffle(x, torch.tensor([shift]), 2)
    length = x.shape[-1]
    for t in range(length):
        source = t - shift                       # positive shifts move the signal later
        if source < 0:
            source = -source                     # reflect at the left edge (edge sample not repeated)
        elif source >= length:
            source = 2 * (length - 1) - source   # reflect at the right edge
        assert torch.equal(out[..., t], x[..., source]), (shift, t)


def _found_shift(x: torch.Tensor, out: torch.Tensor, n: int) -> int:
    """The shift in [-n, n] that explains ``out`` in its interior."""
    matches = [k for k in range(-n, n + 1) if torch.equal(out[..., n:-n], x[..., n - k:x.shape[-1] - n - k])]
    assert len(matches) == 1, matches
    return matches[0]


def test_phase_shuffle_module_draws_one_shift_per_example_within_n():
    torch.manual_seed(0)
    n = 2
    x = _ramp(channels=3, length=20).repeat(64, 1, 1)
    out = PhaseShuffle(n).train()(x)
    shifts = [_found_shift(x[i], out[i], n) for i in range(len(x))]
    assert set(shifts) <= set(range(-n, n + 1))
    assert len(set(shifts)) > 1                   # drawn per example, not once per batch
    for i, k in enumerate(shifts):               # every channel of an example moves together
        assert torch.equal(out[i], phase_shuffle(x[i:i + 1], torch.tensor([k]), n)[0])


def test_phase_shuffle_is_identity_in_eval_and_for_n0():
    x = torch.randn(4, 3, 16)
    assert torch.equal(PhaseShuffle(2).eval()(x), x)
    assert torch.equal(PhaseShuffle(0).train()(x), x)
    assert torch.equal(phase_shuffle(x, torch.zeros(4, dtype=torch.long), 2), x)
    assert torch.equal(phase_shuffle(x, torch.ones(4, dtype=torch.long), 0), x)


def test_critic_takes_the_shifts_the_loop_draws():
    torch.manual_seed(0)
    D = WaveGANDiscriminator(model_dim=2, label_names=["yes", "no"]).train()
    torch.nn.init.normal_(D.embed.weight)
    x, y = torch.randn(3, 16384) * 0.1, torch.tensor([0, 1, 1])
    assert D.shuffle_layers == 4
    zeros = torch.zeros(4, 3, dtype=torch.long)
    assert torch.allclose(D(x, y, shifts=zeros), D.eval()(x, y), atol=1e-6)        # no shift = no shuffle
    D.train()
    shifts = torch.tensor([[2, -2, 1]] * 4)
    assert torch.equal(D(x, y, shifts=shifts), D(x, y, shifts=shifts))           # given shifts: deterministic
    assert not torch.allclose(D(x, y, shifts=shifts), D(x, y, shifts=zeros))
    assert WaveGANDiscriminator(model_dim=2, phase_shuffle=0).shuffle_layers == 0


# -- multi-resolution STFT critic ---------------------------------------------------------------------------
def test_stft_critic_scores_each_resolution_conditions_and_differentiates_twice():
    from ganaug.models.stft_critic import MultiResolutionSTFTCritic

    torch.manual_seed(0)
    S = MultiResolutionSTFTCritic(["yes", "no"], channels=2)
    x = (torch.randn(2, 16384) * 0.1).requires_grad_(True)
    out = S(x, torch.tensor([0, 1]))
    assert out.shape == (3, 2) and torch.isfinite(out).all()        # one row of scores per resolution
    assert torch.equal(out[1], S.critics[1](x, torch.tensor([0, 1])))
    same_clip = x.detach()[:1].repeat(2, 1)
    a = S(same_clip, torch.tensor([0, 1]))
    assert torch.allclose(a[:, 0], a[:, 1], atol=1e-5)              # projection starts at zero: unconditional
    for c in S.critics:
        torch.nn.init.normal_(c.embed.weight)
    a = S(same_clip, torch.tensor([0, 1]))
    assert not torch.allclose(a[:, 0], a[:, 1], atol=1e-3)
    (g,) = torch.autograd.grad(S(x, torch.tensor([0, 1])).sum(), x, create_graph=True)
    g.square().sum().backward()                                   # the penalty's double backward
    assert all(torch.isfinite(p.grad).all() for p in S.parameters() if p.grad is not None)
    torch.manual_seed(1)
    again = MultiResolutionSTFTCritic(**S.config())
    assert again.config() == S.config() and len(again.critics) == 3
    with pytest.raises(ValueError, match="labels"):
        S(x)
    with pytest.raises(ValueError, match="waveforms"):
        S(x.unsqueeze(1))
