"""SpeechBrain: GanAugment from hparams YAML, in a real Brain, and inside Augmenter."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import speechbrain as sb
import torch
from augment_helpers import conditional_ckpt
from hyperpyyaml import load_hyperpyyaml
from speechbrain.augment.augmenter import Augmenter

from ganaug.audio import fit_length
from ganaug.augment import generate_bank
from ganaug.data import KeywordDataset
from ganaug.integrations.speechbrain import GanAugment, augment

YAML = Path(__file__).resolve().parents[1] / "hparams" / "sb_gan_augment_example.yaml"


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    root = tmp_path_factory.mktemp("sb")
    return generate_bank(conditional_ckpt(root), root / "bank", per_label=3, progress=False)


def from_bank(bank, wav, label_index, names=("yes", "no")):
    """Whether ``wav`` is one of the bank's clips of that label (so its label is right)."""
    clips = fit_length(bank.clips(names[int(label_index)]), wav.shape[-1], "center")  # as GanAugment crops
    return bool((clips == wav.cpu()).all(dim=1).any())


class TinyKWS(sb.Brain):
    def compute_forward(self, batch, stage):
        wavs, labels = batch["wav"].to(self.device), batch["label"].to(self.device)
        lens = torch.ones(len(wavs), device=self.device)
        if stage == sb.Stage.TRAIN:
            n = len(wavs)
            wavs, lens, labels = self.hparams.gan_augment(wavs, lens, labels, mode="append")  # rows added
            self.seen.append((n, wavs.detach().clone(), labels.clone()))
            wavs, lens, labels = augment(self.hparams.wav_augment, wavs, lens, labels)
            self.seen_augmenter.append((wavs.detach().clone(), labels.clone()))
        return self.modules.model(wavs.unsqueeze(1)), labels

    def compute_objectives(self, predictions, batch, stage):
        logits, labels = predictions
        return torch.nn.functional.cross_entropy(logits, labels)


def test_yaml_brain_trains_with_gan_augment_and_augmenter(mini_sc, bank):
    with open(YAML) as f:
        hp = load_hyperpyyaml(f, {"gan_ckpt": str(bank.path), "gan_p": 1.0})
    assert isinstance(hp["gan_augment"], GanAugment) and hp["gan_augment"].p == 1.0
    real = KeywordDataset(mini_sc, labels=["yes", "no"], num_samples=16000)
    hp["label_encoder"].update_from_iterable(real.label_names)   # as the recipe's dataio_prep fills it
    assert hp["gan_augment"].label_encoder is hp["label_encoder"]
    real = torch.utils.data.Subset(real, list(range(0, len(real), 3)))  # a few steps
    loader = torch.utils.data.DataLoader(real, batch_size=4, shuffle=True, generator=torch.Generator().manual_seed(0))
    model = torch.nn.Sequential(torch.nn.Conv1d(1, 4, 400, stride=160), torch.nn.ReLU(),
                                torch.nn.AdaptiveAvgPool1d(1), torch.nn.Flatten(), torch.nn.Linear(4, 2))
    brain = TinyKWS(modules={"model": model}, opt_class=lambda params: torch.optim.SGD(params, lr=0.01),
                    hparams={"gan_augment": hp["gan_augment"], "wav_augment": hp["wav_augment"]},
                    run_opts={"device": "cpu"})
    brain.seen, brain.seen_augmenter = [], []
    before = [p.detach().clone() for p in model.parameters()]
    brain.fit(range(1), loader)  # one epoch over mini_sc's yes/no clips
    assert any(not torch.equal(a, b) for a, b in zip(before, model.parameters()))
    for (n, wavs, labels), (aug_wavs, aug_labels) in zip(brain.seen, brain.seen_augmenter):
        assert len(wavs) == 2 * n and torch.equal(labels[n:], labels[:n])  # p=1: one twin per row, same label
        assert all(from_bank(bank, w, y) for w, y in zip(wavs[n:], labels[n:]))
        assert len(aug_wavs) == 4 * n and torch.equal(aug_labels, torch.cat([labels, labels]))


def test_inside_augmenter_labels_follow_rows(bank):
    gan = GanAugment(bank=bank, p=1.0, label_names=["yes", "no"])
    labels = torch.tensor([[0], [1], [1], [0], [1]])  # (batch, 1), as SpeechBrain encoders give them
    wavs, lens = torch.zeros(5, 16000), torch.ones(5)
    with pytest.warns(UserWarning, match=r"fixed list \['yes', 'no'\].*label_names: !ref <label_encoder>"):
        augment(Augmenter(augmentations=[gan]), wavs, lens, labels)   # said once per GanAugment
    for kwargs in ({"concat_original": True}, {"concat_original": True, "augment_start_index": 2},
                   {"parallel_augment": True, "concat_original": False, "repeat_augment": 2}):
        augmenter = Augmenter(augmentations=[gan], **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            out, out_lens, out_labels = augment(augmenter, wavs, lens, labels)
        assert len(out) == len(out_labels) == len(out_lens)
        for w, y in zip(out, out_labels.flatten()):
            assert torch.all(w == 0) or from_bank(bank, w, y)
        assert int((out.abs().sum(dim=1) > 0).sum()) == len(out) - (5 if kwargs.get("concat_original") else 0)


def test_standalone_call_forms_and_errors(bank):
    gan = GanAugment(bank=bank, p=1.0, label_names=["yes", "no"])
    wavs, lens, labels = torch.zeros(2, 16000), torch.ones(2), torch.tensor([1, 0])
    out, out_lens, out_labels = gan(wavs, lens, labels)
    assert out_labels is labels and all(from_bank(bank, w, y) for w, y in zip(out, labels))
    with pytest.raises(ValueError, match="no labels.*augment\\(augmenter"):
        gan(wavs, lens)
    with pytest.raises(ValueError, match="parallel_augment_fixed_bs=False"):
        augment(Augmenter(augmentations=[gan], parallel_augment=True, parallel_augment_fixed_bs=True), wavs, lens, labels)
    append = GanAugment(bank=bank, p=1.0, mode="append", label_names=["yes", "no"])
    with pytest.raises(ValueError, match="concat_original=True"):
        augment(Augmenter(augmentations=[append]), wavs, lens, labels)
    gan.eval()
    assert gan(wavs, lens, labels)[0] is wavs


def test_an_augmenter_that_never_selects_gan_augment_is_an_error(bank):
    """Issue 24: appended after max_augmentations with shuffle_augmentations: False (the recipe's
    setting), GanAugment was silently never applied."""
    from speechbrain.augment.time_domain import DropChunk, DropFreq

    gan = GanAugment(bank=bank, p=1.0, label_names=["yes", "no"])
    wavs, lens, labels = torch.rand(4, 16000) - 0.5, torch.ones(4), torch.tensor([0, 1, 0, 1])
    late = Augmenter(parallel_augment=True, concat_original=True, shuffle_augmentations=False, min_augmentations=2,
                     max_augmentations=2, augmentations=[DropFreq(), DropChunk(), gan])
    with pytest.raises(ValueError, match="never applied.*max_augmentations=2.*number 3 of 3.*raise max_augmentations "
                                         "to 3.*shuffle_augmentations: True"):
        augment(late, wavs, lens, labels)
    with pytest.raises(ValueError, match="never applied.*augment_prob=0"):
        augment(Augmenter(augment_prob=0.0, augmentations=[gan]), wavs, lens, labels)
    for fine in (Augmenter(parallel_augment=True, concat_original=True, min_augmentations=3, max_augmentations=3,
                           augmentations=[DropFreq(), DropChunk(), gan]),
                 Augmenter(shuffle_augmentations=True, min_augmentations=1, max_augmentations=1,
                           augmentations=[DropFreq(), gan])):
        out, _, out_labels = augment(fine, wavs, lens, labels)
        assert len(out) == len(out_labels)


def test_the_label_encoder_is_read_at_call_time_and_checked(bank):
    from speechbrain.dataio.encoder import CategoricalEncoder

    encoder = CategoricalEncoder()
    gan = GanAugment(bank=bank, p=1.0, label_names=encoder, unknown_labels="keep")   # as YAML builds it: empty
    wavs, lens = torch.zeros(3, 16000), torch.ones(3)
    with pytest.raises(ValueError, match="CategoricalEncoder is empty; fill it before training.*load_or_create"):
        gan(wavs, lens, torch.tensor([0, 1, 2]))
    encoder.update_from_iterable(["no", "_silence_", "yes"])     # the recipe's order, not the generator's
    out, _, labels = gan(wavs, lens, torch.tensor([[2], [1], [0]]))
    assert from_bank(bank, out[0], 0) and from_bank(bank, out[2], 1) and torch.all(out[1] == 0)  # yes, _silence_, no
    other = CategoricalEncoder()
    other.update_from_iterable(["cat", "dog"])
    with pytest.raises(ValueError, match=r"labels \['cat', 'dog'\] share none with the generator"):
        GanAugment(bank=bank, p=1.0, label_names=other)(wavs[:2], lens[:2], torch.tensor([0, 1]))
