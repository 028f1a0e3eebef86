"""Issue 24.6, client 2: a plain PyTorch loop in the style of torchaudio's "Speech Command
Classification" tutorial: torchaudio's own SPEECHCOMMANDS (tuple items, string labels), a Subset,
a padding collate_fn giving (B, 1, T), a Resample to 8 kHz on the batch, and an M5-style 1-d CNN,
on real shared clips with the shared 10-keyword generator."""

from __future__ import annotations

import pytest
import torch
import torch.nn.functional as F
import torchaudio
from client_data import copy_clips
from conftest import KEYWORDS
from torch import nn
from torch.utils.data import DataLoader, Subset

from ganaug import GanAugment, GanMixDataset
from ganaug.augment.source import fit_clips, mix_seed


class M5Like(nn.Module):
    """A small 1-d CNN on raw 8 kHz waveforms (B, 1, T) -> log-probabilities (B, classes)."""

    def __init__(self, classes: int, width: int = 8):
        super().__init__()
        self.body = nn.Sequential(
            nn.Conv1d(1, width, 80, stride=16), nn.BatchNorm1d(width), nn.ReLU(), nn.MaxPool1d(4),
            nn.Conv1d(width, 2 * width, 3), nn.BatchNorm1d(2 * width), nn.ReLU(), nn.MaxPool1d(4),
            nn.AdaptiveAvgPool1d(1), nn.Flatten())
        self.head = nn.Linear(2 * width, classes)

    def forward(self, x):
        return self.head(self.body(x)).log_softmax(-1)


class Collate:
    """The tutorial's collate: pad the (1, T) waveforms to (B, 1, T_max), labels to indices."""

    def __init__(self, labels):
        self.labels = labels

    def __call__(self, items):
        waves = torch.nn.utils.rnn.pad_sequence([w[0] for w, *_ in items], batch_first=True).unsqueeze(1)
        return waves, torch.tensor([self.labels.index(item[2]) for item in items])


@pytest.fixture(scope="module")
def speechcommands(tmp_path_factory):
    from torchaudio.datasets import SPEECHCOMMANDS

    root = tmp_path_factory.mktemp("torchaudio")
    copy_clips(root / "SpeechCommands" / "speech_commands_v0.02", per_label=4, labels=KEYWORDS, ext="wav")
    return SPEECHCOMMANDS(str(root), download=False)


def test_gan_mix_dataset_over_a_subset_of_torchaudio_items(speechcommands, weak_generator):
    base = speechcommands
    train = Subset(base, list(range(0, len(base), 2)))    # 2 clips of each keyword
    labels = [base.get_metadata(i)[2] for i in train.indices]   # read without decoding audio
    mixed = GanMixDataset(train, weak_generator, ratio=0.5, seed=0, labels=labels, sample_rate=16000)
    assert len(mixed) == 20 + 10 and mixed.quotas == {k: 1 for k in sorted(KEYWORDS)}
    real, synthetic = mixed[0], mixed[20]
    assert isinstance(synthetic, tuple) and len(synthetic) == len(real) == 5
    assert synthetic[0].shape == real[0].shape == (1, 16000) and synthetic[0].dtype == real[0].dtype
    assert synthetic[1] == 16000 and synthetic[3] == "" and real[3] != ""   # the rate stays, no speaker
    for i in range(10):   # each synthetic item is the generator's clip of the item's own label
        item = mixed[20 + i]
        clip = mixed.source.generate([item[2]], [mix_seed(0, 0, i)])
        torch.testing.assert_close(item[0], fit_clips(clip, 16000, 16000, 16000)[0])
    batch = torch.utils.data.default_collate([real, synthetic])   # the default collate stacks them as they are
    assert batch[0].shape == (2, 1, 16000) and list(batch[2]) == [real[2], synthetic[2]]
    with pytest.raises(ValueError, match="pass sample_rate="):
        GanMixDataset(train, weak_generator, labels=labels)   # torchaudio's dataset has no .sample_rate
    with pytest.raises(TypeError, match="pass labels="):
        GanMixDataset(train, weak_generator, sample_rate=16000)


def test_m5_loop_at_8khz_with_b_1_t_batches(speechcommands, weak_generator):
    base = speechcommands
    labels = sorted({base.get_metadata(i)[2] for i in range(len(base))})
    train = Subset(base, list(range(0, len(base), 2)))
    mixed = GanMixDataset(train, weak_generator, ratio=0.5, seed=0,
                          labels=[base.get_metadata(i)[2] for i in train.indices], sample_rate=16000)
    loader = DataLoader(mixed, batch_size=10, shuffle=True, collate_fn=Collate(labels), num_workers=2,
                        generator=torch.Generator().manual_seed(0))
    resample = torchaudio.transforms.Resample(orig_freq=16000, new_freq=8000)
    model = M5Like(len(labels))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    aug = GanAugment(weak_generator, p=0.5, label_names=labels, sample_rate=8000)
    seen = 0
    for data, target in loader:
        data = resample(data)                                        # (B, 1, 8000) at 8 kHz
        if not seen:   # the silent case of issue 24: no sample_rate= on 8 kHz batches
            with pytest.raises(ValueError, match=r"8000 samples per row.*sample_rate=8000"):
                GanAugment(weak_generator, p=0.5, label_names=labels)(data, target)
            params = aug.draw_params(len(data), torch.Generator().manual_seed(1))
            out, out_target = aug(data, target, params=params)
            assert out.shape == data.shape and out_target is target
            for r in params["mask"].nonzero().flatten().tolist():   # a clip of the row's own label, at 8 kHz
                clip = aug.source.generate([labels[int(target[r])]], [int(params["seeds"][r])])
                torch.testing.assert_close(out[r, 0], fit_clips(clip, 16000, 8000, 8000)[0][0], atol=1e-5, rtol=1e-4)
        data, target = aug(data, target)
        loss = F.nll_loss(model(data), target)
        optimizer.zero_grad()
        loss.backward()
        optimizer.step()
        seen += len(target)
    assert seen == len(mixed) == 30 and torch.isfinite(loss)
