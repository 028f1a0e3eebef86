"""The parts of the training step, each alone (issue 22): the EMA with ramp-up, the augmentation pipe with ADA's
state, compile with its eager fall-back, the optimizers of lazy R1 and of wgan-clip, the lazy R1 pass, the
STFT critic's per-resolution losses, the spectrogram critics' shifts, and the keys of each model family.
Every step here runs on real keyword clips (the shared Speech Commands TRAIN split)."""

from __future__ import annotations

import inspect

import pytest
import torch

from ganaug.models import DISCRIMINATORS, GENERATORS, TiFGANDiscriminator, TiFGANGenerator
from ganaug.train import losses as L
from ganaug.train.compiled import Compiled
from ganaug.train.diffaug import AugmentPipe
from ganaug.train.ema import EMA
from ganaug.train.options import TrainOptions
from ganaug.train.run import MODEL_KEYS, preset_models
from ganaug.train.step import GanStep

pytestmark = pytest.mark.usefixtures("one_thread")
LABELS = ["yes", "no"]


@pytest.fixture(scope="module")
def clips(sc_root) -> tuple[torch.Tensor, torch.Tensor]:
    from ganaug.data import KeywordDataset

    ds = KeywordDataset(sc_root, labels=LABELS, num_samples=16384, split="train")
    items = [ds[i] for i in range(0, len(ds), max(1, len(ds) // 16))][:16]
    return torch.stack([it["wav"] for it in items]), torch.tensor([it["label"] for it in items])


def step_of(clips, model_dim=4, **options) -> GanStep:
    G, D = preset_models("wavegan_tiny", LABELS, model_dim=model_dim)
    return GanStep(G, D, TrainOptions(batch_size=4, **options), "cpu", clips[0], clips[1], 4, seed=1)


# -- EMA --------------------------------------------------------------------------------------------------------
def test_ema_ramp_up_forgets_the_random_init():
    net = torch.nn.Linear(1, 1, bias=False)
    with torch.no_grad():
        net.weight.fill_(0.0)
    ramped, constant = EMA(net, 0.999, rampup=0.05), EMA(net, 0.999, rampup=0.0)
    assert ramped.beta(0) == 0.0 and ramped.beta(100) == pytest.approx(0.5 ** (1 / 5))   # half-life 0.05 * 100
    assert ramped.beta(10**6) == pytest.approx(0.999) and constant.beta(0) == 0.999
    for t in range(150):                      # the weight walks from its init (0) to 150
        with torch.no_grad():
            net.weight.fill_(float(t + 1))
        ramped.update(net, t)
        constant.update(net, t)
    # without ramp-up 0.999^150 = 86% of the export is still the init; with it the export follows training
    assert float(constant.module.weight) < 0.15 * 150
    assert float(ramped.module.weight) > 0.9 * 150


def test_ema_copies_buffers_and_refuses_bad_settings():
    net = torch.nn.BatchNorm1d(2)
    ema = EMA(net, 0.9)
    net.running_mean.fill_(3.0)
    ema.update(net, 5)
    assert torch.equal(ema.module.running_mean, net.running_mean)
    with pytest.raises(ValueError, match="ema_decay=1.0"):
        EMA(net, 1.0)
    with pytest.raises(ValueError, match="ema_rampup=-1"):
        EMA(net, 0.9, rampup=-1)


# -- augmentation pipe ---------------------------------------------------------------------------------------
def test_fixed_p_is_fixed_and_has_no_state():
    pipe = AugmentPipe("shift,gain", 16384, "cpu", p=0.3)
    pipe.observe(torch.ones(8))
    assert float(pipe.p) == pytest.approx(0.3) and pipe.state() == {}


def test_ada_moves_p_with_the_sign_of_the_real_scores_and_round_trips():
    pipe = AugmentPipe("shift", 16384, "cpu", ada_target=0.6, ada_kimg=0.01, interval=2)   # 10 clips: p 0 -> 1
    assert float(pipe.p) == 0.0
    for _ in range(2):
        pipe.observe(torch.ones(2))           # r_t = 1 > 0.6: overfitting, more augmentation
    assert float(pipe.p) == pytest.approx(0.4)
    again = AugmentPipe("shift", 16384, "cpu", ada_target=0.6, ada_kimg=0.01, interval=2)
    again.load(pipe.state())
    for a in (pipe, again):
        for _ in range(2):
            a.observe(-torch.ones(2))         # r_t = -1 < 0.6: less
    assert float(pipe.p) == float(again.p) == pytest.approx(0.0)
    for _ in range(6):
        pipe.observe(-torch.ones(2))
    assert float(pipe.p) == 0.0               # clamped at 0


# -- compile ------------------------------------------------------------------------------------------------
def _broken_backend(gm, example_inputs):
    raise RuntimeError("aot_autograd does not support double backward")


def test_a_part_that_fails_to_compile_runs_eagerly_with_one_warning():
    torch._dynamo.reset()
    fn = Compiled(lambda x: x.sin() * 2, "the test part", "default", backend=_broken_backend)
    x = torch.randn(5)
    with pytest.warns(RuntimeWarning, match="the test part failed under torch.compile .*runs eagerly") as caught:
        out = fn(x)
    assert torch.equal(out, x.sin() * 2) and len(caught) == 1
    assert fn.compiled is None and torch.equal(fn(x), x.sin() * 2)      # eager from then on


def test_a_step_whose_compile_fails_trains_as_eager(clips, recwarn):
    torch._dynamo.reset()
    eager = step_of(clips)
    broken = step_of(clips, compile="default")
    for part in ("g_forward", "d_scores"):
        getattr(broken, part).compiled = torch.compile(getattr(broken, part).eager, backend=_broken_backend)
    for run in (eager, broken):
        run.critic_step()
        run.generator_step()
    a, b = eager.pop_stats(), broken.pop_stats()
    assert all(torch.allclose(a[k], b[k]) for k in a)
    fell_back = [str(w.message) for w in recwarn if "runs eagerly" in str(w.message)]
    assert len(fell_back) == 2 and "generator" in fell_back[0] and "critic" in fell_back[1]


# -- optimizers, the lazy R1 pass, clipping --------------------------------------------------------------------
def test_lazy_r1_has_its_own_pass_and_rescaled_adam(clips):
    run = step_of(clips, loss="nsgan", r1_gamma=1.0, gp_interval=4, lr=2e-4, betas=(0.0, 0.99))
    group = run.opt_D.param_groups[0]
    assert group["lr"] == pytest.approx(2e-4 * 4 / 5) and group["betas"] == pytest.approx((0.0, 0.99 ** 0.8))
    assert run.opt_G.param_groups[0]["lr"] == pytest.approx(2e-4)
    logged = []
    for _ in range(5):
        run.critic_step()
        logged.append(set(run.pop_stats()))
    assert ["D/r1" in terms for terms in logged] == [True, False, False, False, True]
    assert all("D/gp" not in terms for terms in logged)
    # 5 main passes + 2 R1 passes, each its own optimizer step (biases get no R1 gradient: 5 steps)
    assert float(run.opt_D.state[run.D.convs[0].weight]["step"]) == 7.0
    assert float(run.opt_D.state[run.D.dense.bias]["step"]) == 5.0


def test_wgan_clip_uses_rmsprop_and_clips_the_critic_not_its_class_head(clips):
    run = step_of(clips, loss="wgan-clip", aux="acgan", aux_weight=1.0)
    assert isinstance(run.opt_D, torch.optim.RMSprop) and isinstance(run.opt_G, torch.optim.RMSprop)
    with torch.no_grad():
        run.aux_head.weight.fill_(0.5)
    run.critic_step()
    assert max(float(p.abs().max()) for p in run.D.parameters()) <= 0.01
    assert float(run.aux_head.weight.abs().max()) > 0.4


# -- per-resolution STFT losses -------------------------------------------------------------------------------
def test_stft_critic_losses_are_per_resolution(clips):
    run = step_of(clips, loss="hinge", r1_gamma=1.0, stft_critic=True)
    batch = run.draw_critic_batch(regularize=False)
    _, terms, _ = run.critic_losses(batch, penalties=False)
    with torch.no_grad():
        fake = run.G(batch["z"], batch["y"])
        x, yy = torch.cat([batch["real"], fake]), torch.cat([batch["y"], batch["y"]])
        s = run.stft(x, yy)
    n = run.batch
    per_resolution = sum(L.hinge_critic(r[:n], r[n:]) for r in s)
    summed_first = L.hinge_critic(s.sum(0)[:n], s.sum(0)[n:])
    assert s.shape == (3, 2 * n)
    assert torch.allclose(terms["D/stft"], per_resolution) and not torch.allclose(per_resolution, summed_first)


# -- spectrogram critics: shifts from the step's generator ---------------------------------------------------
def test_tifgan_critic_draws_its_phase_shuffle_from_the_steps_generator(clips):
    torch.manual_seed(0)
    G = TiFGANGenerator(model_dim=2, label_names=LABELS)
    D = TiFGANDiscriminator(model_dim=2, label_names=LABELS, spectral_norm=False)   # deterministic forward
    assert D.phase_shuffle == 2 and D.shuffle_layers == 4
    run = GanStep(G, D, TrainOptions(batch_size=2, d_steps_per_g_step=1), "cpu", clips[0][:4], clips[1][:4], 2, 0)
    G.fit_data(clips[0][:4])
    before = torch.get_rng_state()
    run.critic_step()
    run.generator_step()
    assert torch.equal(torch.get_rng_state(), before)   # every shift came from the step's own generator
    x = G.encode(clips[0][:2])
    shifts = torch.tensor([[2, -2]] * 4)
    assert torch.equal(D(x, clips[1][:2], shifts=shifts), D(x, clips[1][:2], shifts=shifts))
    assert not torch.equal(D(x, clips[1][:2], shifts=shifts), D(x, clips[1][:2], shifts=torch.zeros_like(shifts)))


# -- precision ----------------------------------------------------------------------------------------------
def test_bf16_autocast_on_cpu_warns_that_it_does_nothing(clips):
    with pytest.warns(UserWarning, match="amp=bf16 autocasts on CUDA only"):
        step_of(clips, amp="bf16")
    assert TrainOptions().amp == "none" and TrainOptions().compile == "none"


# -- keys per model family ------------------------------------------------------------------------------------
def test_model_keys_are_what_each_family_constructor_takes():
    for family, (g_keys, d_keys) in MODEL_KEYS.items():
        for cls, keys in ((GENERATORS[family], g_keys), (DISCRIMINATORS[family], d_keys)):
            accepted = set(inspect.signature(cls.__init__).parameters) - {"self", "label_names"}
            assert set(keys) == accepted, (cls.__name__, set(keys) ^ accepted)
