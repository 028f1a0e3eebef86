"""SpecGAN: shapes, conditioning, data statistics, sampling, checkpoints, `ganaug train`."""

from __future__ import annotations

import pytest
import torch
from spectral_gan_checks import (check_checkpoint_round_trip, check_cli_training, check_conditional,
                                 check_data_and_sampling, check_shapes, speech_clips)

from ganaug.models import SpecGANDiscriminator, SpecGANGenerator

pytestmark = pytest.mark.usefixtures("one_thread")


def test_paper_sizes_and_shapes():
    G, D = SpecGANGenerator(), SpecGANDiscriminator()
    assert round(sum(p.numel() for p in G.parameters()) / 1e6, 2) == 19.07   # as WaveGAN's, by design
    assert round(sum(p.numel() for p in D.parameters()) / 1e6, 2) == 17.43
    check_shapes("specgan", (128, 128))


def test_conditional():
    check_conditional("specgan")


def test_statistics_sampling_and_checkpoint(sc_root, tmp_path):
    wavs = speech_clips(sc_root)
    G = check_data_and_sampling("specgan", wavs)
    logmag = SpecGANGenerator.log_magnitude(wavs)
    assert torch.allclose(G.mean, logmag.mean(dim=(0, 2)), atol=1e-4)
    assert torch.allclose(G.std, logmag.std(dim=(0, 2), unbiased=False), atol=1e-3)
    assert G.encode(wavs).mean(dim=(0, 1, 3)).abs().max() < 0.2    # per-frequency centred
    check_checkpoint_round_trip(G, tmp_path)


def test_ganaug_train_conditional(mini_sc, tmp_path):
    check_cli_training("specgan", mini_sc, tmp_path / "run", conditional=True)
