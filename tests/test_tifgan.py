"""TiFGAN-M: shapes, conditioning, data statistics, sampling, consistency, checkpoints, `ganaug train`."""

from __future__ import annotations

import pytest
import torch
from spectral_gan_checks import (check_checkpoint_round_trip, check_cli_training, check_conditional,
                                 check_data_and_sampling, check_shapes, speech_clips)

from ganaug.models import TiFGANDiscriminator, TiFGANGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def test_sizes_and_shapes():
    G, D = TiFGANGenerator(model_dim=16), TiFGANDiscriminator(model_dim=16, spectral_norm=False)
    assert G.config()["spectral_norm"] and not D.config()["spectral_norm"]
    assert G.convs[0].parametrizations.weight.original.shape[-2:] == (12, 3)
    check_shapes("tifgan", (256, 128))


def test_conditional():
    check_conditional("tifgan")


def test_statistics_sampling_consistency_and_checkpoint(sc_root, tmp_path):
    wavs = speech_clips(sc_root)
    G = check_data_and_sampling("tifgan", wavs, encode_needs_fit=False)  # per-clip normalised
    assert torch.isclose(G.peak, wavs.abs().amax(dim=1).median(), atol=1e-6).all()
    real = G.encode(wavs)
    assert torch.allclose(real.amax(dim=(1, 2, 3)), torch.ones(len(wavs)))   # per-clip max -> 1
    assert real.min() >= -1
    clips = G.sample(2, ["yes", "no"], generator=torch.Generator().manual_seed(0))
    assert torch.allclose(clips.abs().amax(dim=1), G.peak.expand(2), atol=1e-5)  # the data's level
    # consistency: real spectrograms above the same ones with time frames shuffled
    shuffled = real[..., torch.randperm(128, generator=torch.Generator().manual_seed(0))]
    assert bool((G.consistency(real) > G.consistency(shuffled) + 0.2).all())
    check_checkpoint_round_trip(G, tmp_path)


def test_ganaug_train_per_keyword(mini_sc, tmp_path):
    check_cli_training("tifgan", mini_sc, tmp_path / "run", conditional=False)
