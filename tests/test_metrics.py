"""Generator metrics: the math against closed forms, and IS/FID/KID (torchmetrics over the reference
classifier) against their textbook formulas on real audio."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ganaug.metrics import (
    METRICS, ClassifierFeature, ClipSet, MetricContext, label_accuracy, modified_inception_score, nn_distance,
    nn_features, register_metric, run_metrics,
)
from ganaug.env import torch_threads
from ganaug.kws.reference import ensure_reference
from ganaug.metrics.classifier import classify, real_split, reference_classifier

# a small reference recipe (kws keys) for CI
TINY_REFERENCE = {"number_of_epochs": 6, "batch_size": 8, "lr": 0.01, "channels": 16, "classic_augment": False}


# -- modified IS -------------------------------------------------------------------------------
def test_modified_is_of_constant_predictions_is_one():
    probs = torch.tensor([[0.7, 0.2, 0.1]]).repeat(100, 1)
    assert modified_inception_score(probs) == pytest.approx(1.0)


def test_modified_is_closed_form():
    # all pairs: half are (p, q) or (q, p) with KL(p||q) = 0.8 log 9, half are KL 0
    p = torch.tensor([[0.9, 0.1], [0.1, 0.9]]).repeat(10, 1)
    kl = 0.9 * math.log(0.9 / 0.1) + 0.1 * math.log(0.1 / 0.9)
    assert modified_inception_score(p) == pytest.approx(math.exp(kl / 2))


def test_scores_reject_logits():
    with pytest.raises(ValueError, match="softmax"):
        modified_inception_score(torch.randn(10, 3))


# -- nearest-neighbour distances ---------------------------------------------------------------
def test_nn_distance_train_and_self():
    query = torch.tensor([[0.0], [3.0], [10.0]])
    reference = torch.tensor([[1.0], [4.0]])
    mean, std = nn_distance(query, reference)
    assert mean == pytest.approx((1 + 1 + 6) / 3)
    assert std == pytest.approx(np.std([1, 1, 6]))
    # |D|self excludes each point itself, and a duplicate counts as distance 0
    assert nn_distance(torch.tensor([[0.0, 0.0], [0.0, 1.0], [0.0, 5.0]]))[0] == pytest.approx((1 + 1 + 4) / 3)
    assert nn_distance(torch.tensor([[2.0], [2.0]]))[0] == 0.0


def test_nn_distance_equals_brute_force_over_batches():
    g = torch.Generator().manual_seed(0)
    query, reference = torch.randn(37, 5, generator=g).double(), torch.randn(50, 5, generator=g).double()
    brute = ((query[:, None] - reference[None]) ** 2).sum(-1).sqrt().min(1).values
    mean, std = nn_distance(query, reference, batch_size=8)        # several batches
    assert mean == pytest.approx(float(brute.mean()), rel=1e-9) and std == pytest.approx(float(brute.std(unbiased=False)))
    full = ((query[:, None] - query[None]) ** 2).sum(-1).sqrt() + torch.diag(torch.full((37,), float("inf")))
    assert nn_distance(query, batch_size=8)[0] == pytest.approx(float(full.min(1).values.mean()), rel=1e-9)


def test_nn_features_shape_and_length_fit():
    wavs = torch.randn(3, 16000, generator=torch.Generator().manual_seed(0)) * 0.1
    feats = nn_features(wavs)
    assert feats.shape == (3, 128 * 128) and torch.isfinite(feats).all()
    padded = torch.nn.functional.pad(wavs, (0, 384))
    assert torch.allclose(nn_features(padded), feats)
    assert nn_distance(feats, feats)[0] == pytest.approx(0.0, abs=1e-4)


def test_label_accuracy():
    logits = torch.tensor([[2.0, 0.0], [0.0, 1.0], [3.0, 1.0], [0.0, 5.0]])
    assert label_accuracy(logits, torch.tensor([0, 1, 1, 1])) == 0.75


def test_registry_names_and_custom_metric():
    assert {"is", "mis", "fid", "d_train", "d_self", "label_acc"} <= set(METRICS)
    with pytest.raises(ValueError, match="registered twice"):
        register_metric("is")(lambda ctx, clips: {})


# -- the reference classifier on real audio ----------------------------------------------------
@pytest.fixture(scope="module")
def trained_classifier(sc_root, tmp_path_factory):
    """yes/no of the shared Speech Commands (128 training speakers), a small recipe, one thread."""
    folder = tmp_path_factory.mktemp("reference_classifier")
    with torch_threads(1):
        return ensure_reference(sc_root, ["yes", "no"], folder=folder, device="cpu", progress=False,
                                overrides=TINY_REFERENCE)


def test_label_accuracy_of_real_audio_through_trained_classifier(trained_classifier, sc_root, mini_sc):
    model, config, _ = reference_classifier(mini_sc, ["yes", "no"], trained_classifier, device="cpu")
    assert config["role"] == "reference_classifier" and config["best_epoch"] >= 1
    assert config["test_acc"] >= 0.75                    # yes/no on unseen speakers; chance is 0.5
    wavs, labels, dataset = real_split(sc_root, ["yes", "no"], "train")
    assert len(dataset.speakers) >= 100
    logits, embeds = classify(model, wavs)
    assert embeds.shape == (len(wavs), model.embedding_dim)
    # the classifier has learnt its training clips: well above chance (0.5)
    assert label_accuracy(logits, labels) >= 0.8
    # the metrics on those clips, through the registry
    wavs, labels = wavs[::4], labels[::4]               # a quarter of them keeps the NN distances quick
    ctx = MetricContext(classifier=model, train=ClipSet("train", wavs, labels), self_n=10)
    out = run_metrics(ctx, ClipSet("train again", wavs, labels))
    assert out["fid"] == pytest.approx(0.0, abs=1e-6)           # same set as the FID reference
    assert out["d_train"] == pytest.approx(0.0, abs=1e-3)       # every clip is its own neighbour
    assert out["d_self"] > 0 and out["d_self_n"] == 10
    assert 1.0 <= out["is"] <= 2.0 and out["label_acc"] >= 0.8
    assert set(out["label_acc_per_label"]) == {"yes", "no"}


def _is_formula(probs: torch.Tensor) -> float:
    """exp(E_x KL(p(y|x) || p(y))) (Salimans et al. 2016), in float64."""
    probs = probs.double()
    return float(torch.exp((probs * (probs.log() - probs.mean(0, keepdim=True).log())).sum(1).mean()))


def _fid_formula(x: torch.Tensor, y: torch.Tensor) -> float:
    from scipy.linalg import sqrtm

    x, y = x.double().numpy(), y.double().numpy()
    s1, s2 = np.cov(x, rowvar=False), np.cov(y, rowvar=False)
    return float(((x.mean(0) - y.mean(0)) ** 2).sum() + np.trace(s1 + s2 - 2 * sqrtm(s1 @ s2).real))


def _kid_formula(x: torch.Tensor, y: torch.Tensor) -> float:
    """Unbiased MMD^2 with the kernel (x.y / dim + 1)^3 (Binkowski et al. 2018), on whole sets."""
    x, y = x.double(), y.double()
    k = lambda a, b: (a @ b.T / a.shape[1] + 1) ** 3  # noqa: E731
    m = x.shape[0]
    off = lambda kk: (kk.sum() - kk.diagonal().sum()) / (m * (m - 1))  # noqa: E731
    return float(off(k(x, x)) + off(k(y, y)) - 2 * k(x, y).mean())


def test_is_fid_kid_are_their_formulas_on_real_clips(trained_classifier, sc_root):
    """torchmetrics with the classifier as ``feature=`` gives the textbook numbers on the classifier's outputs.
    IS splits the clips in seeded random chunks: the real clips come grouped by label, and chunks in that order
    (ganaug's IS before torchmetrics) each hold one label and score far too low."""
    from ganaug.models.classifier import load_classifier

    model = load_classifier(trained_classifier)
    wavs, labels, _ = real_split(sc_root, ["yes", "no"], "train")
    n = len(wavs) // 2
    a, b = ClipSet("a", wavs[0:2 * n:2], labels[0:2 * n:2]), ClipSet("b", wavs[1:2 * n:2], labels[1:2 * n:2])
    assert int((labels[1:] != labels[:-1]).sum()) == 1          # grouped by label: all of one, then the other
    ctx = MetricContext(classifier=model, train=a, seed=3, kid_subset_size=n)
    out = run_metrics(ctx, b, ("is", "fid", "kid"))
    logits, embeds = classify(model, b.wavs)
    _, train_embeds = classify(model, a.wavs)
    probs = torch.softmax(logits.double(), 1)
    splits = out["is_splits"]
    assert splits == min(10, n // 50) > 1
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(3)
        chunks = probs[torch.randperm(n)].chunk(splits)
    per_chunk = torch.tensor([_is_formula(c) for c in chunks], dtype=torch.float64)
    assert out["is"] == pytest.approx(float(per_chunk.mean()), rel=1e-5)
    assert out["is_std"] == pytest.approx(float(per_chunk.std()), rel=1e-3, abs=1e-6)
    in_order = np.mean([_is_formula(c) for c in probs.chunk(splits)])
    assert out["is"] == pytest.approx(_is_formula(probs), abs=0.1) and out["is"] > in_order + 0.2
    assert out["fid"] == pytest.approx(_fid_formula(embeds, train_embeds), rel=1e-4)
    # subsets as large as both sets: every subset is the whole set, so KID is the whole-set MMD, spread 0
    assert out["kid_subset_size"] == n and out["kid_std"] == pytest.approx(0.0, abs=1e-6)
    assert out["kid"] == pytest.approx(_kid_formula(train_embeds, embeds), rel=1e-4, abs=1e-7)
    with pytest.raises(ValueError, match="'embedding' or 'logits'"):
        ClassifierFeature(model, "probs")


def test_reference_classifier_is_reused_and_checks_labels(trained_classifier, mini_sc, tmp_path):
    before = (trained_classifier / "classifier.safetensors").stat().st_mtime_ns
    reference_classifier(mini_sc, ["no"], trained_classifier, device="cpu")      # a subset is fine
    assert (trained_classifier / "classifier.safetensors").stat().st_mtime_ns == before
    with pytest.raises(ValueError, match="_silence_"):
        reference_classifier(mini_sc, ["yes", "_silence_"], trained_classifier, device="cpu")
    (tmp_path / "junk.txt").write_text("x")
    with pytest.raises(ValueError, match="holds no classifier"):
        reference_classifier(mini_sc, ["yes", "no"], tmp_path, device="cpu")
    with pytest.raises(ValueError, match=r"defines no key 'epoch'"):
        ensure_reference(mini_sc, ["yes", "no"], folder=tmp_path / "new", overrides={"epoch": 1})
    assert not (tmp_path / "new").exists()


def test_consistency_metric_scores_spectrograms(sc_root):
    from ganaug.audio import load_audio
    from ganaug.metrics.registry import METRICS, ClipSet
    from ganaug.spectral.metrics import gauss_log_magnitude

    files = sorted((sc_root / "yes").glob("*.flac"))[:8]
    speech = torch.stack([load_audio(f, num_samples=16384) for f in files])
    real = METRICS["consistency"](None, ClipSet("real", speech))
    # the same spectrograms with their frames shuffled: no signal has them
    logmag = gauss_log_magnitude(speech)
    shuffled = ClipSet("shuffled", speech)
    shuffled.cache["logmag"] = logmag[..., torch.randperm(logmag.shape[-1], generator=torch.Generator().manual_seed(0))]
    fake = METRICS["consistency"](None, shuffled)
    assert real["consistency"] > fake["consistency"] + 0.1
    assert -1 <= fake["consistency"] <= 1 and real["consistency_std"] is not None
