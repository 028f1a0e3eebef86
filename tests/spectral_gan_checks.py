"""Contract checks shared by tests/test_specgan.py and tests/test_tifgan.py (the generator
interface that ganaug.train, GanAugment and load_generator rely on)."""

from __future__ import annotations

import json

import pytest
import torch

from ganaug.audio import load_audio
from ganaug.checkpoint import load_generator, save_generator
from ganaug.cli import main
from ganaug.models import DISCRIMINATORS, GENERATORS

LABELS = ["yes", "no"]


def speech_clips(sc_root, per_label=4) -> torch.Tensor:
    files = [f for label in LABELS for f in sorted((sc_root / label).glob("*.flac"))[:per_label]]
    return torch.stack([load_audio(f, 16000, 16384) for f in files])


def check_shapes(family, shape, tiny=4):
    G, D = GENERATORS[family](model_dim=tiny), DISCRIMINATORS[family](model_dim=tiny)
    assert G.family == family and G.label_names is None and G.num_samples == 16384 and G.latent_dim == 100
    x = G(torch.rand(3, 100) * 2 - 1)
    assert x.shape == (3, 1, *shape) and x.abs().max() <= 1
    assert D(x).shape == (3,)
    assert json.loads(json.dumps(G.config())) == G.config()
    assert type(G)(**G.config()).config() == G.config() and type(D)(**D.config()).config() == D.config()
    with pytest.raises(ValueError, match="16384"):
        GENERATORS[family](model_dim=tiny, num_samples=32768)
    with pytest.raises(ValueError, match="distinct"):
        GENERATORS[family](model_dim=tiny, label_names=["a", "a"])


def check_conditional(family, tiny=4):
    torch.manual_seed(0)
    G = GENERATORS[family](model_dim=tiny, label_names=LABELS)
    D = DISCRIMINATORS[family](model_dim=tiny, label_names=LABELS).eval()
    z = torch.rand(2, 100).repeat(2, 1)
    y = torch.tensor([0, 0, 1, 1])
    x = G(z, y)
    assert not torch.allclose(x[:2], x[2:])                     # the label changes the output
    with pytest.raises(ValueError, match="needs labels"):
        G(z)
    assert torch.allclose(D(x, y), D(x, 1 - y))                  # projection starts unconditional
    torch.nn.init.normal_(D.embed.weight)
    assert not torch.allclose(D(x, y), D(x, 1 - y))
    with pytest.raises(ValueError, match="needs labels"):
        D(x)
    G.fit_data(torch.randn(4, 16384) * 0.1)
    assert G.sample(2, ["no", "yes"]).shape == (2, 16384)
    with pytest.raises(ValueError, match="not known"):
        G.sample(1, ["maybe"])
    unconditional = GENERATORS[family](model_dim=tiny).fit_data(torch.randn(2, 16384) * 0.1)
    with pytest.raises(ValueError, match="unconditional"):
        unconditional.sample(1, "yes")


def check_data_and_sampling(family, wavs, tiny=4, encode_needs_fit=True):
    G = GENERATORS[family](model_dim=tiny, label_names=LABELS)
    if encode_needs_fit:
        with pytest.raises(RuntimeError, match="fit_data"):
            G.encode(wavs)
    with pytest.raises(RuntimeError, match="fit_data"):
        G.sample(1)
    assert G.fit_data(wavs.split(3)) is G                        # an iterable of batches works too
    real = G.encode(wavs)
    assert real.shape[1:] == G(torch.zeros(1, 100), torch.zeros(1, dtype=torch.long)).shape[1:]
    assert real.shape[0] == len(wavs) and real.abs().max() <= 1
    # the inversion path: decode(encode(x)) lands near x in D's space
    again = G.encode(G.decode(real))
    assert (again - real).abs().mean() < 0.1
    G.train()
    gen = lambda: torch.Generator().manual_seed(3)  # noqa: E731
    a = G.sample(3, generator=gen())
    assert G.training                                            # sample() leaves the mode as it found it
    assert a.dtype == torch.float32 and a.shape == (3, 16384) and a.abs().max() <= 1
    assert torch.equal(a, G.sample(3, generator=gen()))
    # synthesize(z, labels): the waveform path for callers that draw their own latents, row by row
    z, y = torch.rand(3, 100) * 2 - 1, torch.tensor([0, 1, 1])
    rows = G.synthesize(z, y)
    assert rows.shape == (3, 16384) and G.training
    assert torch.allclose(rows[1:2], G.synthesize(z[1:2], y[1:2]), atol=1e-2)  # batched-conv float noise only
    return G


def check_checkpoint_round_trip(G, tmp_path):
    save_generator(tmp_path / "ckpt", G, step=7)
    loaded = load_generator(tmp_path / "ckpt")
    assert type(loaded) is type(G) and loaded.config() == G.config() and not loaded.training
    for name, tensor in G.state_dict().items():
        assert torch.equal(loaded.state_dict()[name], tensor), name
    gen = lambda: torch.Generator().manual_seed(5)  # noqa: E731
    assert torch.equal(loaded.sample(2, ["yes", "no"], generator=gen()), G.sample(2, ["yes", "no"], generator=gen()))


def check_cli_training(family, mini_sc, out, conditional: bool):
    args = ["train", family, f"--data_folder={mini_sc}", f"--output_folder={out}", "--labels=yes,no",
            f"--conditional={conditional}", "--model_dim=4", "--batch_size=4", "--max_steps=2",
            "--ckpt_interval_steps=2", "--d_steps_per_g_step=1", "--samples_per_label=1", "--tensorboard=False",
            "--progress=False", "--device=cpu", f"--cache_dir={out}_cache", "--num_threads=1"]
    assert main(args) == 0
    dirs = [out] if conditional else [out / label for label in LABELS]
    for ckpt in dirs:
        config = json.loads((ckpt / "config.json").read_text())
        assert config["model"] == family and config["step"] == 2
        G = load_generator(ckpt)
        assert type(G) is GENERATORS[family] and bool(G.data_fitted)
        labels = ["yes", "no"] if conditional else None
        wavs = G.sample(2, labels, generator=torch.Generator().manual_seed(0))
        assert wavs.shape == (2, 16384) and torch.isfinite(wavs).all()
        assert list((ckpt / "samples").glob("step_*/*.flac"))
