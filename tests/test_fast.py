"""The fast generation path (ganaug.models.fast) computes what the plain float32 forward does.

Tolerance: relative error ``||fast - f32|| / ||f32|| <= 1e-2`` (the contract of ``sample()``). The
bf16 path is forced with ``precision="bf16"`` so these tests run it on any CPU; ``"auto"`` picks it only
where the CPU has native bf16. No timing here: speed is measured by bench/bench_generate.py.
"""

from __future__ import annotations

import pytest
import torch

from ganaug.functional import sample_latents
from ganaug.models import WaveGANGenerator
from ganaug.train.run import preset_models
from ganaug.models import fast


def wavegan(size: str, label_names=None, **overrides):
    """The generator of a YAML preset: paper = ``wavegan`` (d=64), paper_32k its 32768-sample model,
    small = d=32, tiny = ``wavegan_cpu`` (d=16)."""
    name, sized = {"paper": ("wavegan", {}), "paper_32k": ("wavegan", {"num_samples": 32768}),
                   "small": ("wavegan", {"model_dim": 32}), "tiny": ("wavegan_cpu", {})}[size]
    return preset_models(name, label_names, **sized, **overrides)[0]

TOL = 1e-2


def rel_err(a: torch.Tensor, b: torch.Tensor) -> float:
    return float((a.float() - b.float()).norm() / b.float().norm())


def loud(G: WaveGANGenerator, gain: float = 2.2) -> WaveGANGenerator:
    """Scale the conv weights so the output has a trained model's level (rms 0.1-0.5)
    rather than the ~0.02 of a fresh init, where bf16 rounding matters most."""
    with torch.no_grad():
        for conv in G.convs:
            conv.weight.mul_(gain)
    return G


def reference(G, z, labels=None):
    with torch.no_grad():
        return G(z, labels).float().clamp(-1, 1)


@pytest.mark.parametrize("preset,labels,batch", [
    ("paper", None, 3),                     # paper size, unconditional
    ("paper", ["yes", "no", "up"], 2),      # paper size, conditional
    ("small", ["yes", "no"], 20),           # more rows than one chunk of the CPU path
    ("tiny", None, 5),
    ("paper_32k", None, 2),                 # 32768 samples: a sixth layer of stride 2
])
def test_bf16_path_matches_float32(preset, labels, batch):
    torch.manual_seed(0)
    G = loud(wavegan(preset, label_names=labels)).eval()
    z = sample_latents(batch, G.latent_dim, torch.Generator().manual_seed(1))
    y = None if labels is None else torch.arange(batch) % len(labels)
    ref = reference(G, z, y)
    assert 0.1 < float(ref.square().mean().sqrt()) < 0.9, "weights should make clips of a realistic level"
    out = fast.generate(G, z, y, precision="bf16")
    assert out.shape == ref.shape and out.dtype == torch.float32
    assert rel_err(out, ref) <= TOL
    assert out.abs().max() <= 1


@pytest.mark.parametrize("preset", ["tiny", "paper_32k"])
def test_packed_plan_is_exact_in_float32(preset):
    """The polyphase rewrite itself is exact: in float32 it matches the module to float rounding."""
    torch.manual_seed(0)
    G = loud(wavegan(preset, label_names=["a", "b"])).eval()
    z, y = torch.rand(3, G.latent_dim) * 2 - 1, torch.tensor([0, 1, 1])
    with torch.no_grad():
        out = fast.packed_forward(G, fast.pack(G, torch.float32), z, y, chunk=2)
        torch.testing.assert_close(out, G(z, y), atol=1e-5, rtol=1e-4)


def test_post_filter_model():
    torch.manual_seed(0)
    G = loud(wavegan("tiny", post_filter_len=32)).eval()
    z = torch.rand(2, G.latent_dim) * 2 - 1
    assert rel_err(fast.generate(G, z, precision="bf16"), reference(G, z)) <= TOL


def test_sample_is_repeatable_and_float32_is_plain_forward():
    torch.manual_seed(0)
    G = loud(wavegan("tiny", label_names=["yes", "no"])).eval()
    a = G.sample(6, generator=torch.Generator().manual_seed(3))
    b = G.sample(6, generator=torch.Generator().manual_seed(3))
    c = G.sample(6, generator=torch.Generator().manual_seed(4))
    assert torch.equal(a, b) and not torch.equal(a, c)
    # precision="float32" is exactly the module's own forward on the same latents and labels
    g = torch.Generator().manual_seed(3)
    from ganaug.functional import resolve_labels
    index = resolve_labels(None, G.label_names, 6, g)
    z = sample_latents(6, G.latent_dim, g)
    plain = G.sample(6, generator=torch.Generator().manual_seed(3), precision="float32")
    assert torch.equal(plain, reference(G, z, index))
    assert rel_err(G.sample(6, generator=torch.Generator().manual_seed(3), precision="bf16"), plain) <= TOL
    # batch_size splits do not change the result of the fast path
    d = G.sample(6, generator=torch.Generator().manual_seed(3), batch_size=4)
    assert rel_err(d, a) <= 1e-3


def test_precision_choice(monkeypatch):
    G = wavegan("tiny").eval()
    with pytest.raises(ValueError, match="precision"):
        G.sample(1, precision="fp8")
    cpu = torch.device("cpu")
    assert fast.resolve_precision("float32", cpu) == "float32"
    assert fast.resolve_precision("bf16", cpu) == "bf16"
    assert fast.resolve_precision("auto", cpu) == ("bf16" if fast.cpu_has_fast_bf16() else "float32")
    monkeypatch.setattr(fast, "DEFAULT_PRECISION", "float32")   # a module-wide switch to the plain path
    assert fast.resolve_precision(None, cpu) == "float32"
    z = torch.rand(2, G.latent_dim) * 2 - 1
    assert torch.equal(fast.generate(G, z), reference(G, z))
    assert fast.generate(G, z[:0]).shape == (0, G.num_samples)


def test_plan_cache_follows_weight_changes():
    torch.manual_seed(0)
    G = loud(wavegan("tiny")).eval()
    z = torch.rand(3, G.latent_dim) * 2 - 1
    plan = fast.pack(G)
    assert fast.pack(G) is plan                       # unchanged weights: the cached plan
    first = fast.generate(G, z, precision="bf16")
    # load_state_dict copies new weights in place: the plan must be rebuilt
    other = loud(wavegan("tiny", seed=1)).eval()             # other weights (the preset seeds its init)
    G.load_state_dict(other.state_dict())
    assert fast.pack(G) is not plan
    after_load = fast.generate(G, z, precision="bf16")
    assert rel_err(after_load, reference(other, z)) <= TOL and rel_err(after_load, first) > 0.1
    # an in-place edit (as an optimizer step makes) too
    with torch.no_grad():
        G.convs[-1].bias.add_(0.5)
    assert rel_err(fast.generate(G, z, precision="bf16"), reference(G, z)) <= TOL
    # a fresh parameter tensor (assignment, .to()) too
    G.convs[0].weight = torch.nn.Parameter(G.convs[0].weight.detach() * 0.5)
    assert rel_err(fast.generate(G, z, precision="bf16"), reference(G, z)) <= TOL


def test_source_uses_the_fast_path(tmp_path):
    """GanAugment's generator source makes what G.synthesize makes: the same shared path."""
    from ganaug.augment.source import GeneratorSource, row_generator
    from ganaug.checkpoint import save_generator

    torch.manual_seed(0)
    G = loud(wavegan("tiny", label_names=["yes", "no"])).eval()
    source = GeneratorSource(save_generator(tmp_path / "g", G))
    clips = source.generate(["yes", "no", "no"], [5, 6, 7])
    z = torch.cat([sample_latents(1, G.latent_dim, row_generator(s)) for s in (5, 6, 7)])
    y = torch.tensor([0, 1, 1])
    torch.testing.assert_close(clips, G.synthesize(z, y), atol=1e-5, rtol=1e-4)
    assert rel_err(clips, reference(G, z, y)) <= TOL


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_bf16_matches_float32():
    torch.manual_seed(0)
    G = loud(wavegan("paper", label_names=["a", "b"])).eval().cuda()
    z, y = torch.rand(8, G.latent_dim, device="cuda") * 2 - 1, torch.tensor([0, 1] * 4, device="cuda")
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = False
    assert rel_err(fast.generate(G, z, y, precision="bf16"), reference(G, z, y)) <= TOL
