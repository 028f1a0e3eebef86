"""GanAugment: the transform's contract (labels by name, p, eval, seeds, modes, bad input)."""

from __future__ import annotations

import json

import pytest
import torch
from augment_helpers import conditional_ckpt, per_keyword_run

from ganaug import GanAugment, load_generator
from ganaug.checkpoint import CheckpointError
from ganaug.data import KeywordDataset


@pytest.fixture(scope="module")
def cond(tmp_path_factory):
    return conditional_ckpt(tmp_path_factory.mktemp("aug"))


@pytest.fixture(scope="module")
def aug(cond):
    return GanAugment(cond, p=0.5)


def batch(n=6, t=16000, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, t, generator=g) * 0.2 - 0.1


def test_p1_replaces_every_row_with_a_clip_of_its_own_label(cond):
    aug = GanAugment(cond, p=1.0)
    wavs, labels = batch(4), ["yes", "no", "no", "yes"]
    out, out_labels = aug(wavs, labels, generator=torch.Generator().manual_seed(1))
    assert out_labels == labels and out.shape == wavs.shape and out.dtype == wavs.dtype
    assert not torch.isclose(out, wavs).all(dim=1).any()
    # each row is what G makes for that label: regenerate row by row with the frozen params
    params = aug.draw_params(4, torch.Generator().manual_seed(1))
    G = load_generator(cond)
    from ganaug.augment.source import row_generator
    from ganaug.functional import sample_latents
    for r, name in enumerate(labels):
        z = sample_latents(1, G.latent_dim, row_generator(int(params["seeds"][r])))
        clip = G.synthesize(z, torch.tensor([G.label_names.index(name)]))[0]  # G's one inference path (see test_sampling.py)
        expected = clip[(16384 - 16000) // 2:][:16000]
        torch.testing.assert_close(out[r], expected, atol=1e-5, rtol=1e-4)


def test_batch_and_item_agree_under_a_seed(aug):
    wavs, labels = batch(6), ["yes", "no", "yes", "no", "no", "yes"]
    params = aug.draw_params(6, torch.Generator().manual_seed(1))
    assert params["mask"].any() and not params["mask"].all()
    out, _ = aug(wavs, labels, params=params)
    for r in range(6):
        one = {k: v[r:r + 1] for k, v in params.items()}
        row, _ = aug(wavs[r:r + 1], labels[r:r + 1], params=one)
        torch.testing.assert_close(row[0], out[r], atol=1e-5, rtol=1e-4)


def test_seeded_generator_repeats_and_unseeded_varies(aug):
    wavs, labels = batch(8), ["yes", "no"] * 4
    a, _ = aug(wavs, labels, generator=torch.Generator().manual_seed(5))
    b, _ = aug(wavs, labels, generator=torch.Generator().manual_seed(5))
    c, _ = aug(wavs, labels, generator=torch.Generator().manual_seed(6))
    assert torch.equal(a, b) and not torch.equal(a, c)


def test_eval_and_p0_pass_through(cond, aug):
    wavs, labels = batch(4), ["yes", "no", "yes", "no"]
    aug.eval()
    try:
        out, out_labels = aug(wavs, labels)
        assert out is wavs and out_labels is labels
        o, lens, lab = aug(wavs, labels, lengths=torch.ones(4), mode="append")
        assert o is wavs and lab is labels and lens.shape == (4,)
    finally:
        aug.train()
    zero = GanAugment(cond, p=0.0)
    out, out_labels = zero(wavs, labels, generator=torch.Generator().manual_seed(0))
    assert out is wavs and out_labels is labels


def test_append_mode_adds_rows_with_their_labels(cond):
    aug = GanAugment(cond, p=0.5, mode="append")
    wavs = batch(8)
    labels = torch.tensor([0, 1, 1, 0, 1, 0, 0, 1])
    lens = torch.full((8,), 0.9)
    g = torch.Generator().manual_seed(2)
    params = aug.draw_params(8, torch.Generator().manual_seed(2))
    out, out_lens, out_labels = aug(wavs, labels, lengths=lens, label_names=["yes", "no"], generator=g)
    rows = params["mask"].nonzero().flatten()
    assert out.shape == (8 + len(rows), 16000)
    assert torch.equal(out[:8], wavs) and torch.equal(out_lens[:8], lens)
    assert torch.equal(out_labels, torch.cat([labels, labels[rows]]))
    assert torch.allclose(out_lens[8:], torch.ones(len(rows)))  # 16384 cropped to 16000: full length
    # p=1 appends one twin per row; names travel as a list
    both = GanAugment(cond, p=1.0)
    out, lens, names = both(batch(3), ["no", "yes", "no"], mode="append")
    assert out.shape[0] == 6 and names == ["no", "yes", "no", "no", "yes", "no"] and torch.equal(lens, torch.ones(6))


def test_resamples_pads_and_keeps_dtype(cond):
    aug = GanAugment(cond, p=1.0, sample_rate=8000)
    wavs = batch(2, t=12000).double()
    lens = torch.tensor([12000, 9000])
    out, out_lens, _ = aug(wavs, ["yes", "no"], lengths=lens)
    assert out.dtype == torch.float64 and out.shape == (2, 12000)
    assert out_lens.tolist() == [8192, 8192]  # 16384 samples at 16 kHz = 8192 at 8 kHz, zero-padded after
    assert torch.all(out[:, 8192:] == 0) and out[:, :8192].abs().sum() > 0


def test_unknown_labels_error_or_keep(cond):
    wavs = batch(3)
    with pytest.raises(ValueError, match=r"\['_silence_'\].*unknown_labels='keep'"):
        GanAugment(cond, p=1.0)(wavs, ["yes", "_silence_", "no"])
    keep = GanAugment(cond, p=1.0, unknown_labels="keep")
    out, _ = keep(wavs, ["yes", "_silence_", "no"])
    assert torch.equal(out[1], wavs[1]) and not torch.equal(out[0], wavs[0])


def test_labels_matched_by_name_not_index(tmp_path):
    ckpt = conditional_ckpt(tmp_path, labels=("no", "yes"))  # G's order differs from the dataset's
    aug = GanAugment(ckpt, p=1.0, label_names=["yes", "no"])
    params = aug.draw_params(2, torch.Generator().manual_seed(0))
    by_index, _ = aug(batch(2), torch.tensor([0, 1]), params=params)
    by_name, _ = aug(batch(2), ["yes", "no"], params=params)
    assert torch.equal(by_index, by_name)


def test_per_keyword_run_folder_and_dict(tmp_path):
    run = per_keyword_run(tmp_path)
    a = GanAugment(run, p=1.0)
    b = GanAugment({"yes": run / "yes", "no": run / "no"}, p=1.0)
    assert sorted(a.known_labels) == ["no", "yes"]
    params = a.draw_params(4, torch.Generator().manual_seed(0))
    labels = ["yes", "no", "no", "yes"]
    out_a, _ = a(batch(4), labels, params=params)
    out_b, _ = b(batch(4), labels, params=params)
    torch.testing.assert_close(out_a, out_b)
    assert not torch.allclose(out_a[0], out_a[1])  # yes and no come from different generators


def test_works_with_keyword_dataset_batches(mini_sc, cond):
    real = KeywordDataset(mini_sc, labels=["yes", "no"], num_samples=16000)
    loader = torch.utils.data.DataLoader(real, batch_size=4)
    item = next(iter(loader))
    aug = GanAugment(cond, p=1.0, label_names=real.label_names)
    wavs, labels = aug(item["wav"], item["label"])
    assert torch.equal(labels, item["label"]) and wavs.shape == item["wav"].shape


# -- bad input: each a clear error naming what to fix ------------------------------------------
@pytest.mark.parametrize("p", [-0.1, 1.5, "0.5", True, float("nan")])
def test_bad_p(cond, p):
    with pytest.raises(ValueError, match="p=.*probability in \\[0, 1\\]"):
        GanAugment(cond, p=p)


def test_bad_arguments(cond, tmp_path):
    with pytest.raises(ValueError, match="mode='swap'.*replace"):
        GanAugment(cond, mode="swap")
    with pytest.raises(ValueError, match="unknown_labels='drop'"):
        GanAugment(cond, unknown_labels="drop")
    with pytest.raises(ValueError, match="device='gpu0'"):
        GanAugment(cond, device="gpu0")
    with pytest.raises(ValueError, match="give ckpt="):
        GanAugment(None)


def test_bad_checkpoints(cond, tmp_path):
    with pytest.raises(CheckpointError, match="no such directory"):
        GanAugment(tmp_path / "missing")
    (tmp_path / "empty").mkdir()
    with pytest.raises(CheckpointError, match="not a ganaug checkpoint directory"):
        GanAugment(tmp_path / "empty")
    import shutil
    wrong = tmp_path / "wrong"
    shutil.copytree(cond, wrong)
    config = json.loads((wrong / "config.json").read_text())
    (wrong / "config.json").write_text(json.dumps({**config, "format_version": 99}))
    with pytest.raises(CheckpointError, match="format_version 99"):
        GanAugment(wrong)
    truncated = tmp_path / "truncated"
    shutil.copytree(cond, truncated)
    data = (truncated / "generator.safetensors").read_bytes()
    (truncated / "generator.safetensors").write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match="generator.safetensors.*(truncated|damaged)"):
        GanAugment(truncated)
    from augment_helpers import tiny_generator
    from ganaug.checkpoint import save_generator
    uncond = save_generator(tmp_path / "uncond", tiny_generator(None))
    with pytest.raises(CheckpointError, match="unconditional.*\\{label: dir\\}"):
        GanAugment(uncond)


def test_bad_batches(aug):
    with pytest.raises(ValueError, match="3 entries for a batch of 4 rows"):
        aug(batch(4), ["yes", "no", "yes"])
    with pytest.raises(ValueError, match="dtype torch.int16.*wavs.float\\(\\) / 32768"):
        aug((batch(2) * 32767).to(torch.int16), ["yes", "no"])
    with pytest.raises(ValueError, match="expected \\(batch, time\\) or mono \\(batch, 1, time\\).*wavs.mean\\(1\\)"):
        aug(torch.stack([batch(2), batch(2)], dim=1), ["yes", "no"])  # stereo (batch, 2, time)
    with pytest.raises(ValueError, match="pass label_names="):
        aug(batch(2), torch.tensor([0, 1]))
    with pytest.raises(ValueError, match="label index 5 is outside label_names"):
        aug(batch(2), torch.tensor([0, 5]), label_names=["yes", "no"])
    with pytest.raises(ValueError, match="lengths: expected a tensor of shape \\(2,\\)"):
        aug(batch(2), ["yes", "no"], lengths=torch.ones(3))


def test_eval_and_p0_are_identity_even_for_labels_the_generator_does_not_know(cond, aug):
    """Issue 12.14: identity is the contract, whatever the labels."""
    wavs, labels = batch(3), ["yes", "maybe", "_silence_"]
    aug.eval()
    try:
        out, out_labels = aug(wavs, labels)
        assert out is wavs and out_labels is labels
    finally:
        aug.train()
    out, out_labels = GanAugment(cond, p=0.0)(wavs, labels)
    assert out is wavs and out_labels is labels
    with pytest.raises(ValueError, match=r"\['_silence_', 'maybe'\] are not known"):  # training, p > 0: still an error
        aug(wavs, labels)


def test_float_labels_are_an_error_not_a_class(aug):
    """Issue 12.6: 0.7 is not label 1 (nor 0)."""
    for labels in ([0.7, 1], [1.0, 0.0], [True, False]):
        with pytest.raises(ValueError, match="is not a label index"):
            aug(batch(2), labels, label_names=["yes", "no"])
    with pytest.raises(ValueError, match="integer indices"):
        aug(batch(2), torch.tensor([0.7, 1.0]), label_names=["yes", "no"])
    out, _ = aug(batch(2), [0, 1], label_names=["yes", "no"])  # whole numbers still work
    assert out.shape == (2, 16000)


# -- issue 24: a drop-in for other pipelines -----------------------------------------------------
def test_torchaudio_mono_batches_b_1_t_come_back_in_their_shape(cond):
    aug = GanAugment(cond, p=0.5)
    wavs, labels = batch(6), ["yes", "no", "yes", "no", "no", "yes"]
    params = aug.draw_params(6, torch.Generator().manual_seed(3))
    flat, _ = aug(wavs, labels, params=params)
    out, out_labels = aug(wavs.unsqueeze(1), labels, params=params)
    assert out.shape == (6, 1, 16000) and out_labels is labels
    torch.testing.assert_close(out[:, 0], flat)
    out, lens, labels_out = aug(wavs.unsqueeze(1), labels, params=params, mode="append")
    rows = params["mask"].nonzero().flatten().tolist()
    assert out.shape == (6 + len(rows), 1, 16000) and labels_out == labels + [labels[r] for r in rows]


def test_a_batch_at_another_rate_is_an_error_unless_the_rate_is_given(cond, mini_sc):
    """Issue 24: 8 kHz batches without sample_rate= were filled with 16 kHz clips cropped to half a second."""
    eight_k = KeywordDataset(mini_sc, labels=["yes", "no"], sample_rate=8000, num_samples=8000)
    item = next(iter(torch.utils.data.DataLoader(eight_k, batch_size=4)))
    with pytest.raises(ValueError, match=r"8000 samples per row.*16384 samples at 16000 Hz.*pass sample_rate= "
                                         r"\(e.g. sample_rate=8000.*sample_rate=16000 to crop"):
        GanAugment(cond, p=1.0, label_names=eight_k.label_names)(item["wav"], item["label"])
    aug = GanAugment(cond, p=1.0, label_names=eight_k.label_names, sample_rate=8000)
    wavs, lens, _ = aug(item["wav"], item["label"], lengths=torch.ones(4))
    assert wavs.shape == (4, 8000) and torch.allclose(lens, torch.ones(4))  # 8192 resampled samples, cropped by 192
    out, _ = GanAugment(cond, p=1.0, sample_rate=16000)(batch(2, t=8000), ["yes", "no"])  # said: a crop
    assert out.shape == (2, 8000)
    assert GanAugment(cond, p=1.0)(batch(2, t=16000), ["yes", "no"])[0].shape == (2, 16000)  # 1 s: fits


class SeededCollate:
    """A collate_fn that applies GanAugment with one seeded generator (as a user writes it)."""

    def __init__(self, aug, seed):
        self.aug, self.generator = aug, torch.Generator().manual_seed(seed)

    def __call__(self, items):
        batch = torch.utils.data.default_collate(items)
        return self.aug(batch["wav"], batch["label"], generator=self.generator)[0]


def test_a_seeded_generator_draws_other_clips_in_each_worker_and_repeats(cond, mini_sc):
    """Issue 24: with 2 workers the same seeded generator gave each worker the same clips."""
    real = KeywordDataset(mini_sc, labels=["yes"], num_samples=16000)   # one label: equal seeds = equal clips
    real = torch.utils.data.Subset(real, range(8))
    aug = GanAugment(cond, p=1.0, label_names=["yes"])

    def run():
        loader = torch.utils.data.DataLoader(real, batch_size=2, num_workers=2, collate_fn=SeededCollate(aug, 0),
                                             generator=torch.Generator().manual_seed(1))
        return torch.cat(list(loader))

    first, again = run(), run()
    assert len({tuple(w[::500].tolist()) for w in first}) == 8   # 8 distinct clips over the two workers
    torch.testing.assert_close(first, again)                      # and the same ones on a rerun
    main = SeededCollate(aug, 0)
    assert torch.equal(main([real[0], real[1]]), SeededCollate(aug, 0)([real[0], real[1]]))  # main process unchanged


def test_one_unknown_label_rule_for_every_path(cond, mini_sc):
    """Issue 23.4: check_known is the one rule; GanAugment, GanMixDataset and the HF rows say the same."""
    from ganaug import GanMixDataset
    from ganaug.augment.checks import check_known

    assert check_known(["yes", "maybe", "no"], ["yes", "no"], "keep") == [True, False, True]
    with pytest.raises(ValueError, match=r"labels \['maybe'\] are not known to the generator \(it knows \['no', "
                                         r"'yes'\]\); pass --gan_unknown_labels=keep"):
        check_known(["yes", "maybe"], ["yes", "no"], "error", keep="--gan_unknown_labels=keep")
    messages = []
    for attempt in (lambda: GanAugment(cond, p=1.0)(batch(2), ["yes", "_silence_"]),
                    lambda: GanMixDataset(KeywordDataset(mini_sc, labels=["yes", "_silence_"]), cond),
                    lambda: GanAugment(cond).hf_transform(p=1.0)({"audio": [{"array": batch(1)[0].numpy(),
                                                                              "sampling_rate": 16000}],
                                                                   "label": ["_silence_"]})):
        with pytest.raises(ValueError) as err:
            attempt()
        messages.append(str(err.value))
    assert len(set(messages)) == 1 and "['_silence_'] are not known" in messages[0]
