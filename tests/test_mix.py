"""GanMixDataset: ratio, labels, determinism and DataLoader workers."""

from __future__ import annotations

from collections import Counter

import pytest
import torch
from augment_helpers import conditional_ckpt, per_keyword_run

from ganaug import GanMixDataset, KeywordDataset
from ganaug.augment import generate_bank


@pytest.fixture(scope="module")
def real(mini_sc):
    return KeywordDataset(mini_sc, labels=["yes", "no"], split="train")


@pytest.fixture(scope="module")
def cond(tmp_path_factory):
    return conditional_ckpt(tmp_path_factory.mktemp("mix"))


def test_ratio_labels_and_items(real, cond):
    mix = GanMixDataset(real, cond, ratio=0.5, seed=0)
    counts = real.label_counts()
    assert mix.quotas == {k: round(0.5 * v) for k, v in counts.items()}
    assert len(mix) == len(real) + sum(mix.quotas.values())
    synthetic = [mix[i] for i in range(len(real), len(mix))]
    assert Counter(s["label_name"] for s in synthetic) == Counter(mix.quotas)
    for s in synthetic:
        assert s["synthetic"] and s["label"] == real.label_names.index(s["label_name"])
        assert s["wav"].shape == (real.num_samples,) and s["wav"].dtype == torch.float32
    first = mix[0]
    assert not first["synthetic"] and set(first) == {"wav", "label", "label_name", "speaker", "path", "synthetic"}
    assert set(synthetic[0]) == set(first)


def test_item_is_a_pure_function_of_seed_and_index(real, cond):
    a, b = GanMixDataset(real, cond, seed=3), GanMixDataset(real, cond, seed=3)
    n = len(real)
    assert torch.equal(a[n + 2]["wav"], b[n + 2]["wav"])
    assert torch.equal(a[n + 2]["wav"], a[n + 2]["wav"])
    assert not torch.equal(a[n + 2]["wav"], GanMixDataset(real, cond, seed=4)[n + 2]["wav"])
    before = a[n + 2]["wav"]
    a.set_epoch(1)
    assert not torch.equal(before, a[n + 2]["wav"])


def test_dataloader_workers_match_the_main_process(real, cond):
    mix = GanMixDataset(real, cond, per_label={"yes": 3, "no": 2}, seed=1)
    assert mix.num_synthetic == 5
    assert mix.source._models == {}  # nothing loaded in the main process: each worker loads G lazily
    loader = torch.utils.data.DataLoader(mix, batch_size=4, num_workers=2, shuffle=False)
    wavs, synthetic, labels = [], [], []
    for batch in loader:
        wavs.append(batch["wav"]), synthetic.append(batch["synthetic"]), labels.append(batch["label"])
    wavs, synthetic, labels = torch.cat(wavs), torch.cat(synthetic), torch.cat(labels)
    assert int(synthetic.sum()) == 5 and labels[synthetic].tolist() == [0, 0, 0, 1, 1]  # yes=0, no=1
    main = torch.stack([mix[i]["wav"] for i in range(len(real), len(mix))])
    torch.testing.assert_close(wavs[synthetic], main)
    assert len({tuple(w[:64].tolist()) for w in main}) == 5  # no two items share a stream


def test_bank_and_per_keyword_sources(real, cond, tmp_path):
    generate_bank(cond, tmp_path / "bank", per_label=3, progress=False)
    with pytest.warns(UserWarning, match=r"holds fewer clips than one epoch draws \(no 3 for 5, yes 3 for 4\).*"
                                         r"--per-label 5"):
        mix = GanMixDataset(real, tmp_path / "bank", ratio=0.25, seed=0)
    item = mix[len(real)]
    assert item["synthetic"] and item["wav"].shape == (16384,)
    run = per_keyword_run(tmp_path)
    mix = GanMixDataset(real, run, per_label=1)
    assert [mix[i]["label_name"] for i in range(len(real), len(mix))] == real.label_names


def test_unknown_labels_and_bad_arguments(mini_sc, real, cond):
    with_silence = KeywordDataset(mini_sc, labels=["yes", "_silence_"])
    with pytest.raises(ValueError, match=r"\['_silence_'\].*unknown_labels='keep'"):
        GanMixDataset(with_silence, cond)
    mix = GanMixDataset(with_silence, cond, ratio=1.0, unknown_labels="keep")
    assert mix.quotas["_silence_"] == 0 and mix.quotas["yes"] == with_silence.label_counts()["yes"]
    with pytest.raises(ValueError, match="ratio=-1"):
        GanMixDataset(real, cond, ratio=-1)
    with pytest.raises(ValueError, match="per_label has labels \\['maybe'\\]"):
        GanMixDataset(real, cond, per_label={"maybe": 2})
    with pytest.raises(TypeError, match="cannot read the labels of a list.*pass labels="):
        GanMixDataset([1, 2], cond)


def test_end_to_end_from_a_ganaug_train_checkpoint(mini_sc, tmp_path):
    """The three uses from a checkpoint written by `ganaug train` (2 steps, model_dim=8)."""
    import datasets

    from ganaug import GanAugment
    from ganaug.augment.source import mix_seed
    from ganaug.cli import main as cli_main

    ckpt = tmp_path / "cond"
    assert cli_main(["train", "wavegan_conditional", f"--data_folder={mini_sc}", f"--output_folder={ckpt}",
                     "--labels=yes,no", "--model_dim=8", "--max_steps=2", "--batch_size=4", "--device=cpu",
                     "--ckpt_interval_steps=2", "--progress=False", "--tensorboard=False",
                     f"--cache_dir={tmp_path / 'cache'}"]) == 0
    real = KeywordDataset(mini_sc, labels=["yes", "no"], split="train")
    # 1. DataLoader: ratio holds, each synthetic clip is G's clip for its own label
    mix = GanMixDataset(real, ckpt, ratio=0.5, seed=0)
    loader = torch.utils.data.DataLoader(mix, batch_size=8, shuffle=True, num_workers=2,
                                         generator=torch.Generator().manual_seed(0))
    flags = torch.cat([b["synthetic"] for b in loader])
    assert int(flags.sum()) == sum(round(0.5 * n) for n in real.label_counts().values())
    for i in (0, mix.num_synthetic - 1):
        item = mix.synthetic_item(i)
        other = "no" if item["label_name"] == "yes" else "yes"
        seed = mix_seed(0, 0, i)
        assert torch.equal(item["wav"], mix.source.generate([item["label_name"]], [seed])[0])
        assert not torch.allclose(item["wav"], mix.source.generate([other], [seed])[0])
    # 2. GanAugment in append mode: labels travel along
    aug = GanAugment(ckpt, p=1.0, label_names=real.label_names)
    batch = next(iter(torch.utils.data.DataLoader(real, batch_size=4)))
    wavs, lens, labels = aug(batch["wav"], batch["label"], lengths=torch.ones(4), mode="append")
    assert wavs.shape == (8, 16384) and torch.equal(labels, torch.cat([batch["label"], batch["label"]]))
    # 3. datasets.map: synthetic rows with ClassLabel labels, ratio per row
    ds = datasets.Dataset.from_dict({"audio": [{"array": real[i]["wav"].numpy(), "sampling_rate": 16000}
                                               for i in range(6)],
                                     "label": [real[i]["label"] for i in range(6)]})
    ds = ds.cast_column("label", datasets.ClassLabel(names=real.label_names))
    out = ds.map(aug.hf_map(ratio=0.5), batched=True, remove_columns=ds.column_names)
    assert len(out) == 9 and sum(out["synthetic"]) == 3 and out.features["label"] == ds.features["label"]


def test_set_epoch_reaches_persistent_workers(real, cond):
    """Issue 12.3: with persistent_workers=True the workers outlive the epoch; set_epoch must still reach them."""
    mix = GanMixDataset(real, cond, per_label={"yes": 2, "no": 2}, seed=0)
    loader = torch.utils.data.DataLoader(mix, batch_size=4, num_workers=2, persistent_workers=True, shuffle=False)
    epochs = []
    for epoch in range(2):
        mix.set_epoch(epoch)
        batches = list(loader)
        wavs = torch.cat([b["wav"] for b in batches])[torch.cat([b["synthetic"] for b in batches])]
        expected = torch.stack([mix.synthetic_item(i)["wav"] for i in range(mix.num_synthetic)])
        torch.testing.assert_close(wavs, expected)  # the workers used this epoch, as the main process does
        epochs.append(wavs)
    assert not torch.allclose(epochs[0], epochs[1])
    import pickle
    copy = pickle.loads(pickle.dumps(mix))  # a plain pickle carries the epoch as a value
    assert copy.epoch == 1 and torch.equal(copy.synthetic_item(0)["wav"], mix.synthetic_item(0)["wav"])


def test_ratio_bounds_and_starved_labels(real, cond):
    """Issue 12.11 (ratio=1e9 / nan: a clear error before any allocation) and 12.6 (a ratio that
    gives a label no synthetic item is a warning naming it)."""
    for bad in (1e9, float("nan"), float("inf"), -1, True, "0.5"):
        with pytest.raises(ValueError, match="ratio="):
            GanMixDataset(real, cond, ratio=bad)
    small = min(real.label_counts().values())
    with pytest.warns(UserWarning, match=r"gives labels \[.*'no'.*\] no synthetic item"):
        mix = GanMixDataset(real, cond, ratio=0.4 / small)
    assert mix.num_synthetic == 0
    big = GanMixDataset(real, cond, ratio=1000)  # the most allowed: no per-item list is built
    assert big.num_synthetic == 1000 * len(real) and big[len(big) - 1]["label_name"] == real.label_names[-1]
    with pytest.raises(ValueError, match="per_label"):
        GanMixDataset(real, cond, per_label={"yes": 1.5})


def test_padding_policy_is_the_same_in_gan_augment_and_gan_mix_dataset(mini_sc, cond):
    """One crop/pad policy (crop around the centre, pad at the end) on both paths."""
    from ganaug import GanAugment
    from ganaug.augment.source import mix_seed

    for num_samples in (16000, 20000):  # the generator's 16384: cropped, then padded
        real = KeywordDataset(mini_sc, labels=["yes", "no"], split="train", num_samples=num_samples)
        mix = GanMixDataset(real, cond, per_label={"yes": 1, "no": 0}, seed=3)
        item = mix.synthetic_item(0)
        aug = GanAugment(cond, p=1.0)
        params = {"mask": torch.tensor([True]), "seeds": torch.tensor([mix_seed(3, 0, 0)])}
        out, _ = aug(torch.zeros(1, num_samples), ["yes"], params=params)
        torch.testing.assert_close(out[0], item["wav"])
        if num_samples > 16384:
            assert item["wav"][16384:].abs().sum() == 0 and item["wav"][:64].abs().sum() > 0  # zeros at the end


def test_any_map_style_dataset_through_the_adapter_contract(real, cond):
    """Issue 24.3: a Subset, or a dataset of other items (numpy audio under another key, string
    labels), with synthetic items shaped like the real ones so that the default collate stacks both."""
    import numpy as np

    from ganaug.augment.source import fit_clips, mix_seed

    sub = torch.utils.data.Subset(real, list(range(0, len(real), 2)))   # labels, rate and length found through it
    mix = GanMixDataset(sub, cond, ratio=1.0)
    assert mix.quotas == dict(Counter(real.label_names[real.labels[i]] for i in sub.indices))
    assert mix[len(sub)]["wav"].shape == (real.num_samples,) and len(mix.real) == len(sub)
    items = [{"audio": np.full((1, 8000), 0.1, np.float32), "word": word, "id": f"clip{i}"}
             for i, word in enumerate(["yes", "no", "yes"])]
    mix = GanMixDataset(items, cond, ratio=1.0, labels=[it["word"] for it in items], sample_rate=8000, wav_key="audio")
    first = mix[3]
    assert set(first) == {"audio", "word", "id", "synthetic"} and first["synthetic"] and first["id"] == ""
    assert isinstance(first["audio"], np.ndarray) and first["audio"].shape == (1, 8000)
    clip = mix.source.generate([first["word"]], [mix_seed(0, 0, 0)])   # the generator's clip of the item's label
    np.testing.assert_allclose(first["audio"][0], fit_clips(clip, 16000, 8000, 8000)[0][0].numpy(), atol=1e-6)
    batch = torch.utils.data.default_collate([mix[0], first])
    assert batch["audio"].shape == (2, 1, 8000) and batch["synthetic"].tolist() == [False, True]
    with pytest.raises(ValueError, match="dicts without a 'wav' key.*pass wav_key="):
        GanMixDataset(items, cond, ratio=1.0, labels=["yes", "no", "yes"], sample_rate=8000)[3]
    with pytest.raises(ValueError, match="labels has 2 entries for a dataset of 3 items"):
        GanMixDataset(items, cond, labels=["yes", "no"], sample_rate=8000)
