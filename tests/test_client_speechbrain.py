"""Issue 24.6, client 1: SpeechBrain's own recipe shape (recipes/Google-speech-commands, xvect.yaml):
a Brain, a CategoricalEncoder and an Augmenter in HyperPyYAML, 12 classes, GanAugment inside the
Augmenter, on real shared clips, with the synthetic clips of the shared 10-keyword generator."""

from __future__ import annotations

import pytest
import speechbrain as sb
import torch
import torch.nn.functional as F
from client_data import TWELVE, copy_clips
from hyperpyyaml import load_hyperpyyaml

from ganaug.audio import fit_length
from ganaug.augment import generate_bank
from ganaug.integrations.speechbrain import augment

# The recipe's YAML, cut down (Fbank + a linear layer for the x-vector), plus ganaug's keys.
YAML = """
gan_ckpt: !PLACEHOLDER
max_augmentations: 3
sample_rate: 16000
label_encoder: !new:speechbrain.dataio.encoder.CategoricalEncoder
gan_augment: !new:ganaug.integrations.speechbrain.GanAugment
    ckpt: !ref <gan_ckpt>
    p: 1.0
    label_names: !ref <label_encoder>
    unknown_labels: keep
    sample_rate: !ref <sample_rate>
drop_freq: !new:speechbrain.augment.time_domain.DropFreq
drop_chunk: !new:speechbrain.augment.time_domain.DropChunk
    drop_length_low: 1000
    drop_length_high: 2000
wav_augment: !new:speechbrain.augment.augmenter.Augmenter
    parallel_augment: True
    concat_original: True
    repeat_augment: 1
    shuffle_augmentations: False
    min_augmentations: !ref <max_augmentations>
    max_augmentations: !ref <max_augmentations>
    augment_prob: 1.0
    augmentations: [!ref <drop_freq>, !ref <drop_chunk>, !ref <gan_augment>]
compute_features: !new:speechbrain.lobes.features.Fbank
    n_mels: 24
classifier: !new:torch.nn.Linear [24, 12]
modules:
    compute_features: !ref <compute_features>
    classifier: !ref <classifier>
"""


class KWSBrain(sb.Brain):
    def compute_forward(self, batch, stage):
        batch = batch.to(self.device)
        wavs, lens = batch.sig
        if stage == sb.Stage.TRAIN:   # the one changed line: was wavs, lens = self.hparams.wav_augment(wavs, lens)
            wavs, lens, _ = augment(self.hparams.wav_augment, wavs, lens, batch.command_encoded.data)
            self.seen.append((batch.sig.data.clone(), batch.command_encoded.data.clone(), wavs.detach().clone()))
        feats = self.modules.compute_features(wavs).mean(dim=1)
        return self.modules.classifier(feats).log_softmax(-1)

    def compute_objectives(self, predictions, batch, stage):
        command, _ = batch.command_encoded
        if stage == sb.Stage.TRAIN:   # as the recipe: labels replicated as the Augmenter replicated rows
            command = self.hparams.wav_augment.replicate_labels(command)
        return F.nll_loss(predictions, command.squeeze(1))


def dataio_prep(hparams, files, save_folder):
    """The recipe's dataio_prep, with its one change: the label encoder is the YAML's."""
    data = {f"{label}_{i}": {"wav": str(path), "command": label} for i, (path, label) in enumerate(files)}
    train = sb.dataio.dataset.DynamicItemDataset(data)
    label_encoder = hparams["label_encoder"]   # was: sb.dataio.encoder.CategoricalEncoder()

    @sb.utils.data_pipeline.takes("wav")
    @sb.utils.data_pipeline.provides("sig")
    def audio_pipeline(wav):
        return sb.dataio.dataio.read_audio(wav)

    @sb.utils.data_pipeline.takes("command")
    @sb.utils.data_pipeline.provides("command", "command_encoded")
    def label_pipeline(command):
        yield command
        yield label_encoder.encode_label_torch(command)

    sb.dataio.dataset.add_dynamic_item([train], audio_pipeline)
    sb.dataio.dataset.add_dynamic_item([train], label_pipeline)
    save_folder.mkdir(parents=True, exist_ok=True)
    label_encoder.load_or_create(path=str(save_folder / "label_encoder.txt"), from_didatasets=[train],
                                 output_key="command")
    train.set_output_keys(["id", "sig", "command_encoded"])
    return train


@pytest.fixture(scope="module")
def setup(tmp_path_factory, weak_generator):
    root = tmp_path_factory.mktemp("sb_client")
    files = copy_clips(root / "data", per_label=2)
    bank = generate_bank(weak_generator, root / "bank", per_label=2, progress=False)   # the real generator's clips
    return root, files, bank


def from_bank(bank, wav, name) -> bool:
    clips = fit_length(bank.clips(name), wav.shape[-1], "center")   # as GanAugment crops
    return bool((clips == wav.cpu()).all(dim=1).any())


def test_recipe_brain_trains_with_gan_augment_inside_the_augmenter(setup):
    root, files, bank = setup
    hparams = load_hyperpyyaml(YAML, {"gan_ckpt": str(bank.path)})
    train = dataio_prep(hparams, files, root)
    encoder = hparams["label_encoder"]
    assert len(encoder) == 12 and set(encoder.lab2ind) == set(TWELVE)
    brain = KWSBrain(modules=hparams["modules"], opt_class=lambda p: torch.optim.Adam(p, 1e-3), hparams=hparams,
                     run_opts={"device": "cpu"})
    brain.seen = []
    before = hparams["classifier"].weight.detach().clone()
    brain.fit(range(1), train, train_loader_kwargs={"batch_size": 8, "shuffle": True})
    assert not torch.equal(before, hparams["classifier"].weight) and len(brain.seen) == 3
    synthetic = 0
    for wavs, labels, out in brain.seen:
        n = len(wavs)
        assert out.shape == (4 * n, wavs.shape[1])   # original + DropFreq + DropChunk + GanAugment copies
        assert torch.equal(out[:n], wavs)
        for row, label in zip(out[3 * n:], labels.flatten().tolist()):   # the GanAugment copy, row by row
            name = encoder.ind2lab[label]
            if not name.startswith("_"):
                synthetic += 1
                assert from_bank(bank, row, name), f"a synthetic row of {name!r} is not a clip of {name!r}"
        kept = [r for r, y in enumerate(labels.flatten().tolist()) if encoder.ind2lab[y].startswith("_")]
        assert torch.equal(out[3 * n:][kept], wavs[kept])   # _unknown_, _silence_: unknown_labels: keep
    assert synthetic == 20   # every keyword row of the epoch (2 clips x 10 keywords)


def test_gan_augment_after_max_augmentations_is_an_error_not_a_no_op(setup, weak_generator):
    root, files, _ = setup
    hparams = load_hyperpyyaml(YAML, {"gan_ckpt": str(weak_generator), "max_augmentations": 2})
    train = dataio_prep(hparams, files, root / "late")
    brain = KWSBrain(modules=hparams["modules"], opt_class=lambda p: torch.optim.Adam(p, 1e-3), hparams=hparams,
                     run_opts={"device": "cpu"})
    brain.seen = []
    with pytest.raises(ValueError, match="GanAugment is never applied.*max_augmentations=2.*number 3 of 3"):
        brain.fit(range(1), train, train_loader_kwargs={"batch_size": 8})
    # the real generator itself, inside the recipe's Augmenter (max_augmentations covers it)
    hparams = load_hyperpyyaml(YAML, {"gan_ckpt": str(weak_generator)})
    train = dataio_prep(hparams, files, root / "real_g")
    batch = next(iter(sb.dataio.dataloader.make_dataloader(train, batch_size=24)))   # all 12 classes
    wavs, lens = batch.sig
    out, out_lens, labels = augment(hparams["wav_augment"], wavs, lens, batch.command_encoded.data)
    assert out.shape == (96, wavs.shape[1]) and torch.equal(labels, batch.command_encoded.data.repeat(4, 1))
    known = [not hparams["label_encoder"].ind2lab[y].startswith("_") for y in batch.command_encoded.data.flatten().tolist()]
    assert any(known) and not all(known)
    assert all(torch.equal(out[72 + r], wavs[r]) != k for r, k in enumerate(known))   # keywords replaced, the rest kept
