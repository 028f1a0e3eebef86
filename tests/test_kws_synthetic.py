"""How the keyword classifier learns from synthetic rows: weights, soft targets, separate batch norm, a
domain-adversarial head (ganaug.kws.synthetic), and the recipe keys that turn them on."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from ganaug.config import HparamsError
from ganaug.kws import run_kws
from ganaug.kws.synthetic import DomainHead, GradientReversal, running_stats_frozen, synthetic_loss
from ganaug.models import KWSClassifier


def test_synthetic_loss_weighs_and_retargets_the_synthetic_rows():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [1.0, 1.0]])
    labels = torch.tensor([0, 1, 0])
    synthetic = torch.tensor([False, False, True])
    ce = [math.log(1 + math.exp(-2.0)), math.log(1 + math.exp(-1.0)), math.log(2.0)]
    # weight 0.5: (ce0 + ce1 + 0.5 ce2) / 2.5
    assert float(synthetic_loss(logits, labels, synthetic, weight=0.5)) == pytest.approx((ce[0] + ce[1] + 0.5 * ce[2]) / 2.5)
    assert float(synthetic_loss(logits, labels, None)) == pytest.approx(sum(ce) / 3)
    assert float(synthetic_loss(logits, labels, synthetic, weight=1.0)) == pytest.approx(sum(ce) / 3)
    # soft target (0.25, 0.75) on the synthetic row: -(0.25 log p0 + 0.75 log p1), p = (0.5, 0.5)
    soft = torch.tensor([[0.25, 0.75]])
    expected = (ce[0] + ce[1] + math.log(2.0)) / 3
    assert float(synthetic_loss(logits, labels, synthetic, soft_targets=soft)) == pytest.approx(expected)
    soft_wrong = torch.tensor([[0.0, 1.0]])
    assert float(synthetic_loss(logits, labels, synthetic, soft_targets=soft_wrong)) == pytest.approx(expected)
    # label smoothing applies to the hard-labelled rows as F.cross_entropy does it
    smooth = F.cross_entropy(logits[:2], labels[:2], label_smoothing=0.1, reduction="sum")
    got = synthetic_loss(logits, labels, synthetic, weight=0.0, label_smoothing=0.1)
    assert float(got) == pytest.approx(float(smooth) / 2)


def test_gradient_reversal_and_the_domain_head():
    x = torch.randn(4, 3, requires_grad=True)
    GradientReversal()(x).sum().backward()
    assert torch.equal(x.grad, -torch.ones(4, 3))
    torch.manual_seed(0)
    head = DomainHead(3)
    emb = torch.randn(6, 3, requires_grad=True)
    loss = head.loss(emb, torch.tensor([0, 0, 0, 1, 1, 1], dtype=torch.bool))
    loss.backward()
    # the head learns to tell the rows apart; the embedding gets the opposite push
    w_grad = head.net[1].weight.grad.clone()
    emb2 = emb.detach().clone().requires_grad_(True)
    plain = F.binary_cross_entropy_with_logits(head.net[1:](emb2).squeeze(1), torch.tensor([0., 0, 0, 1, 1, 1]))
    plain.backward()
    assert torch.allclose(emb.grad, -emb2.grad) and w_grad.abs().sum() > 0


def test_separate_statistics_leave_the_running_ones_to_real_rows():
    torch.manual_seed(0)
    model = KWSClassifier(["a", "b"], channels=8, num_blocks=1).train()
    wavs = 0.1 * torch.randn(4, 16000)
    norms = [m for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)]
    before = [m.running_mean.clone() for m in norms]
    with running_stats_frozen(model):
        emb = model.embed(wavs * 5)                               # other statistics: normalised by their own
    assert all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))
    assert all(m.momentum == 0.1 for m in norms)                 # restored
    model.eval()
    assert not torch.allclose(emb, model.embed(wavs * 5))         # in training they used the batch's statistics
    model.train()
    model.embed(wavs)
    assert not all(torch.equal(b, m.running_mean) for b, m in zip(before, norms))   # real rows do update them


SMALL = {"labels": "yes,no", "number_of_epochs": 1, "steps_per_epoch": 6, "batch_size": 8, "channels": 8,
         "num_blocks": 1, "progress": False, "device": "cpu"}


def test_the_recipe_keys_train_with_each_option(mini_sc, weak_generator, tmp_path, monkeypatch, one_thread):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    common = {**SMALL, "data_folder": str(mini_sc), "gan_ckpt": str(weak_generator), "gan_p": 0.5}
    runs = {}
    for name, extra in {"weight": {"synthetic_weight": 0.3}, "bn": {"synthetic_bn": "separate"},
                        "dann": {"domain_adversarial": 0.1}}.items():
        runs[name] = run_kws("kws", {**common, **extra, "output_folder": str(tmp_path / name)})
        assert runs[name]["synthetic_rows"] > 0 and 0.0 <= runs[name]["test_acc"] <= 1.0
    assert runs["dann"]["config"]["domain_adversarial"] == 0.1
    for bad, match in (({"synthetic_weight": -1.0}, "synthetic_weight"), ({"synthetic_bn": "own"}, "synthetic_bn"),
                       ({"domain_adversarial": -0.5}, "domain_adversarial")):
        with pytest.raises(HparamsError, match=match):
            run_kws("kws", {**common, **bad, "output_folder": str(tmp_path / "bad")})
