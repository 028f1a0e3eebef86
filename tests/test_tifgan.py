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


def test_training_resumes_bit_exact_with_phase_shuffle(mini_sc, tmp_path):
    """TiFGAN's critic phase-shuffles (n=2): its shifts come from the step's saved generator, so a run stopped
    at step 1 and resumed to step 2 equals a run straight to step 2 (issue 22)."""
    from safetensors.torch import load_file

    from ganaug.cli import main

    args = ["train", "tifgan", f"--data_folder={mini_sc}", "--labels=yes,no", "--conditional=True", "--model_dim=2",
            "--batch_size=2", "--d_steps_per_g_step=1", "--ckpt_interval_steps=1", "--samples_per_label=1",
            "--griffin_lim_iters=0", "--tensorboard=False", "--progress=False", "--device=cpu",
            f"--cache_dir={tmp_path / 'cache'}", "--num_threads=1"]
    assert main([*args, f"--output_folder={tmp_path / 'straight'}", "--max_steps=2"]) == 0
    assert main([*args, f"--output_folder={tmp_path / 'resumed'}", "--max_steps=1"]) == 0
    assert main([*args, f"--output_folder={tmp_path / 'resumed'}", "--max_steps=2"]) == 0
    final = "train_state/step_000000002/state.safetensors"
    a, b = load_file(str(tmp_path / "straight" / final)), load_file(str(tmp_path / "resumed" / final))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
