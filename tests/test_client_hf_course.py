"""Issue 24.6, client 3: the HuggingFace audio-course flow: load_dataset("audiofolder") (Audio()
decoded by torchcodec), cast_column(Audio(16000)), train_test_split, synthetic rows on the training
split only, then the feature-extraction map, with num_proc=2; and the per-epoch variant with
with_transform in DataLoader workers. Real shared clips, 12 classes, the shared generator's clips."""

from __future__ import annotations

import datasets
import numpy as np
import pytest
import torch
from client_data import TWELVE, copy_clips

from ganaug import GanAugment
from ganaug.augment import generate_bank

LENGTH = 16000   # the course's max_length: 1 s at 16 kHz


def prepare(batch):
    """The course's feature extraction, written out: Wav2Vec2-style zero-mean unit-variance input
    values, truncated or zero-padded to LENGTH, with an attention mask."""
    values, masks = [], []
    for audio in batch["audio"]:
        x = np.asarray(audio["array"], dtype=np.float32)[:LENGTH]
        x = (x - x.mean()) / np.sqrt(x.var() + 1e-7)
        values.append(np.pad(x, (0, LENGTH - len(x))))
        masks.append(np.pad(np.ones(len(x), np.int32), (0, LENGTH - len(x))))
    return {"input_values": values, "attention_mask": masks}


@pytest.fixture(scope="module")
def course(tmp_path_factory, weak_generator):
    root = tmp_path_factory.mktemp("hf_course")
    copy_clips(root / "data", per_label=3)
    ds = datasets.load_dataset("audiofolder", data_dir=str(root / "data"), split="train", cache_dir=str(root / "hf"))
    ds = ds.cast_column("audio", datasets.Audio(sampling_rate=16000))
    split = ds.train_test_split(test_size=12, seed=0, stratify_by_column="label")   # one clip per class held out
    bank = generate_bank(weak_generator, root / "bank", per_label=3, progress=False)   # the real generator's clips
    return split, bank


def from_bank(bank, array, name, atol=1e-4) -> bool:
    """``array`` is one of the bank's clips of ``name`` (cropped to its length, up to 16-bit storage)."""
    clips = bank.clips(name)
    start = (clips.shape[-1] - len(array)) // 2
    return bool((clips[:, start:start + len(array)] - torch.as_tensor(array)).abs().amax(1).le(atol).any())


def test_synthetic_rows_on_the_train_split_then_features_with_num_proc_2(course):
    split, bank = course
    train, test = split["train"], split["test"]
    names = train.features["label"].names
    assert sorted(names) == sorted(TWELVE) and len(train) == 24
    aug = GanAugment(bank.path, unknown_labels="keep")   # _unknown_, _silence_ get no synthetic rows
    mixed = train.map(aug.hf_map(ratio=0.5, features=train.features), batched=True, batch_size=8, with_indices=True,
                      num_proc=2, remove_columns=train.column_names)
    twins = sum(j % 2 == 1 and not names[y].startswith("_") for j, y in enumerate(train["label"]))  # ratio 0.5: odd rows
    assert twins > 5 and len(mixed) == 24 + twins and sum(mixed["synthetic"]) == twins
    for row in mixed.select(np.flatnonzero(mixed["synthetic"]).tolist()):
        name = names[row["label"]]
        assert not name.startswith("_") and from_bank(bank, row["audio"]["array"], name), name
    encoded = mixed.map(prepare, batched=True, batch_size=8, num_proc=2, remove_columns=["audio"])
    assert encoded["label"] == mixed["label"] and encoded["synthetic"] == mixed["synthetic"]
    assert np.asarray(encoded[len(mixed) - 1]["input_values"]).shape == (LENGTH,)
    assert "synthetic" not in test.column_names and len(test) == 12   # the test split has no synthetic row


def test_hf_transform_inside_map_and_hf_map_after_features_say_where_they_go(course):
    split, bank = course
    train = split["train"]
    aug = GanAugment(bank.path, unknown_labels="keep")
    fresh = train.with_transform(aug.hf_transform(p=0.5, features=train.features))
    with pytest.raises(ValueError, match="hf_transform runs inside Dataset.map.*with_transform\\(lambda b: "
                                         "prepare\\(transform\\(b\\)\\)\\).*hf_map"):
        fresh.map(prepare, batched=True, remove_columns=["audio"])   # would write one draw into the cache
    encoded = train.map(prepare, batched=True, remove_columns=["audio"])
    with pytest.raises(ValueError, match=r"holds features \['attention_mask', 'input_values'\].*apply them before "
                                         r"the feature extraction"):
        encoded.map(aug.hf_map(ratio=0.5), batched=True)


class Prepared:
    """with_transform function of the per-epoch flow: fresh synthetic clips, then the features."""

    def __init__(self, transform):
        self.transform = transform

    def __call__(self, batch):
        batch = self.transform(batch)
        return {**prepare(batch), "label": batch["label"], "synthetic": batch["synthetic"]}


def test_fresh_clips_per_access_differ_between_dataloader_workers(course):
    split, bank = course
    train = split["train"]
    names = train.features["label"].names
    yes = [i for i, y in enumerate(train["label"]) if names[y] == "yes"][0]
    same = train.select([yes] * 8)   # one label: equal seeds would give equal clips
    aug = GanAugment(bank.path, unknown_labels="keep")

    def epoch():
        transform = aug.hf_transform(p=1.0, features=train.features, generator=torch.Generator().manual_seed(0))
        loader = torch.utils.data.DataLoader(same.with_transform(Prepared(transform)), batch_size=2, num_workers=2,
                                             generator=torch.Generator().manual_seed(0))
        return torch.cat([torch.as_tensor(np.asarray(b["input_values"])) for b in loader])

    first, again = epoch(), epoch()
    assert first.shape == (8, LENGTH) and torch.equal(first, again)      # repeatable
    assert len({tuple(row[::400].tolist()) for row in first}) > 2       # not the same few clips in both workers
