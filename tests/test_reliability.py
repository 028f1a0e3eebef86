"""Issue 12's silent-wrong-data items and bad inputs, on the shared audio: (channels, time) arrays,
clipping, speaker ids with underscores, hidden files, permission denied, labels=[], the generator's
checksum and self-contradicting configs, the clip cache, FSDD's label order, download(url=<folder>)."""

from __future__ import annotations

import json
import os
import shutil
import stat
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch

from ganaug.audio import AudioError, audio_info, load_audio, prepare_audio
from ganaug.checkpoint import CHECKSUM_KEY, CheckpointError, load_generator, read_config, save_generator
from ganaug.data import KeywordDataset, download, from_hf
from ganaug.data.cache import preload
from ganaug.io import WriteError
from ganaug.models import WaveGANGenerator

REPO = Path(__file__).resolve().parents[1]
SHARED_GENERATOR = REPO.parent / "shared" / "generators" / "wavegan_sc10_h100_5k_ema"


@pytest.fixture(scope="module")
def clip(sc_root):
    """A real 1 s keyword clip (16 kHz) and a second, different one: a stereo pair."""
    files = sorted((sc_root / "yes").glob("*.flac"))
    left, rate = sf.read(files[0], dtype="float32")
    right, _ = sf.read(files[1], dtype="float32")
    assert rate == 16000
    return left, right


# -- (channels, time) ----------------------------------------------------------------------------------
def test_channels_first_and_channels_last_arrays_give_the_same_mono_clip(clip):
    left, right = clip
    mono = prepare_audio((left + right) / 2, 16000, num_samples=16384)
    stereo_first = np.stack([left, right])                                  # (2, 16000): HF mono=False, torchaudio
    for data in (stereo_first, stereo_first.T, torch.from_numpy(stereo_first)):
        wav = prepare_audio(data, 16000, num_samples=16384)
        assert torch.allclose(wav, mono, atol=1e-6)                         # was: 2 non-zero samples
    assert torch.allclose(prepare_audio(left[None, :], 16000, num_samples=16384),
                          prepare_audio(left, 16000, num_samples=16384))    # (1, time)


def test_from_hf_reads_a_stereo_row_in_channels_first_layout(clip):
    import datasets

    left, right = clip
    ds = datasets.Dataset.from_dict({
        "audio": [{"array": np.stack([left, right]).tolist(), "sampling_rate": 16000}],
        "label": ["yes"], "speaker": ["s1"]})
    wav = from_hf(ds)[0]["wav"]
    assert torch.allclose(wav, prepare_audio((left + right) / 2, 16000, num_samples=16384), atol=1e-6)
    assert (wav.abs() > 1e-4).sum() > 10000


def test_from_hf_refuses_a_fractional_label(clip):
    import datasets

    ds = datasets.Dataset.from_dict({"audio": [{"array": clip[0].tolist(), "sampling_rate": 16000}], "label": [0.7]})
    with pytest.raises(ValueError, match="label value 0.7 is neither a name nor a whole index"):
        from_hf(ds)


def test_a_stereo_file_is_downmixed(clip, tmp_path):
    left, right = clip
    sf.write(tmp_path / "s.flac", np.stack([left, right], axis=1), 16000)
    assert torch.allclose(load_audio(tmp_path / "s.flac"), prepare_audio((left + right) / 2, 16000, num_samples=None),
                          atol=1e-4)


def test_float_audio_beyond_full_scale_is_clipped(clip, tmp_path):
    loud = clip[0] * 40                                                      # far beyond [-1, 1]
    assert np.abs(loud).max() > 1
    assert prepare_audio(loud, 16000).abs().max() <= 1
    assert prepare_audio(loud, 8000, 16000).abs().max() <= 1                # resampled too
    sf.write(tmp_path / "loud.wav", loud, 16000, subtype="FLOAT")
    wav = load_audio(tmp_path / "loud.wav")
    assert wav.abs().max() == 1.0 and torch.equal(wav, torch.from_numpy(np.clip(loud, -1, 1)))


# -- folders: speaker ids, hidden files, unreadable files, labels=[] -------------------------------------
def copy_as(src: Path, dst: Path) -> None:
    dst.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(src, dst)


def test_speaker_ids_with_underscores_are_kept_whole(sc_root, fsdd_root, tmp_path):
    files = sorted((sc_root / "yes").glob("*.flac"))
    copy_as(files[0], tmp_path / "sc" / "yes" / "a_b_c_nohash_0.flac")
    copy_as(files[1], tmp_path / "sc" / "yes" / "x_b_c_nohash_0.flac")      # was: both speaker "c"
    copy_as(files[2], tmp_path / "sc" / "_unknown_" / "bed_a_b_c_nohash_1.flac")   # "<word>_<speaker>"
    ds = KeywordDataset(tmp_path / "sc")
    assert {(c.label_name, c.speaker) for c in ds.clips} == {("yes", "a_b_c"), ("yes", "x_b_c"), ("_unknown_", "a_b_c")}
    wav = sorted(fsdd_root.glob("3_*.wav"))[0]
    copy_as(wav, tmp_path / "fsdd" / "3_jo_ann_7.wav")
    copy_as(wav, tmp_path / "fsdd" / "4_george_1.wav")
    ds = KeywordDataset(tmp_path / "fsdd")
    assert sorted((c.label_name, c.speaker) for c in ds.clips) == [("four", "george"), ("three", "jo_ann")]


def test_hidden_and_appledouble_files_are_skipped(sc_root, tmp_path):
    root = tmp_path / "sc"
    for f in sorted((sc_root / "no").glob("*.flac"))[:3]:
        copy_as(f, root / "no" / f.name)
        (root / "no" / f"._{f.name}").write_bytes(b"\x00\x05\x16\x07" + b"\0" * 80)   # macOS AppleDouble
    copy_as(f, root / ".hidden" / f.name)
    ds = KeywordDataset(root)
    assert len(ds) == 3 and ds.label_names == ["no"] and all(ds[i]["wav"].shape == (16384,) for i in range(3))
    assert len(preload(ds, cache_dir=False)[0]) == 3


def test_labels_empty_list_is_an_error_with_the_fix(sc_root):
    with pytest.raises(ValueError, match=r"labels=\[\]: give at least one label name .*labels=None"):
        KeywordDataset(sc_root, labels=[])


def test_an_unreadable_file_says_permission_denied(sc_root):
    """chmod 000 as a user the permission applies to: root ignores it, so as root the reads run with
    the effective uid of 'nobody' (the kernel's own check, restored right after)."""
    folder = Path(tempfile.mkdtemp(prefix="ganaug-perm-"))
    try:
        folder.chmod(0o755)
        path = folder / "yes_nohash_0.flac"
        shutil.copyfile(sorted((sc_root / "yes").glob("*.flac"))[0], path)
        path.chmod(0)
        messages = []
        as_root = os.geteuid() == 0
        if as_root:
            os.seteuid(65534)
        try:
            for read in (load_audio, audio_info):
                with pytest.raises(AudioError) as caught:
                    read(path)
                messages.append(str(caught.value))
        finally:
            if as_root:
                os.seteuid(0)
        for message in messages:
            assert message.startswith(f"{path}: permission denied") and "not a readable audio file" not in message
    finally:
        shutil.rmtree(folder)


# -- the generator checkpoint: checksum, self-contradicting config ----------------------------------------
@pytest.fixture
def ckpt(tmp_path):
    torch.manual_seed(0)
    G = WaveGANGenerator(model_dim=4, label_names=["yes", "no"])
    return save_generator(tmp_path / "ckpt", G, step=1), G


def test_generator_weights_carry_a_checksum_and_a_flipped_bit_is_refused(ckpt):
    folder, G = ckpt
    weights = folder / "generator.safetensors"
    assert read_config(folder)[CHECKSUM_KEY] == __import__("hashlib").sha256(weights.read_bytes()).hexdigest()
    assert load_generator(folder).label_names == ["yes", "no"]
    data = bytearray(weights.read_bytes())
    data[-7] ^= 0x10                                                         # one bit of one weight
    weights.write_bytes(bytes(data))
    with pytest.raises(CheckpointError, match=f"{weights}: checksum does not match config.json"):
        load_generator(folder)


def test_a_checkpoint_without_a_checksum_still_loads():
    config = json.loads((SHARED_GENERATOR / "config.json").read_text())
    assert CHECKSUM_KEY not in config                                        # written before checksums existed
    G = load_generator(SHARED_GENERATOR)                                     # float16 weights
    assert G.label_names == config["label_names"] and G.sample(2, generator=torch.Generator().manual_seed(0)).shape \
        == (2, config["num_samples"])


@pytest.mark.parametrize("key, value", [("label_names", ["no", "yes"]), ("sample_rate", 8000), ("num_samples", 32768)])
def test_a_config_whose_top_level_contradicts_its_kwargs_is_refused(ckpt, key, value):
    folder, _ = ckpt
    config = json.loads((folder / "config.json").read_text())
    config[key] = value
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match=rf"config.json: the file contradicts itself \({key}: "):
        read_config(folder)
    with pytest.raises(CheckpointError, match="contradicts itself"):
        load_generator(folder)


def test_checkpoint_files_respect_the_umask(ckpt, tmp_path):
    old = os.umask(0o022)
    try:
        folder = save_generator(tmp_path / "shared", ckpt[1], step=2)
    finally:
        os.umask(old)
    for name in ("generator.safetensors", "config.json"):
        assert stat.S_IMODE((folder / name).stat().st_mode) == 0o644       # was 0600: a colleague could not read it


# -- the clip cache --------------------------------------------------------------------------------------
def test_clip_cache_is_readable_by_others_and_matches_decoding(mini_sc, tmp_path):
    ds = KeywordDataset(mini_sc, labels=["yes"], split="valid")
    old = os.umask(0o022)
    try:
        wavs, labels = preload(ds, cache_dir=tmp_path, progress=False)
    finally:
        os.umask(old)
    (cached,) = (tmp_path / "clips").glob("*.npy")
    assert stat.S_IMODE(cached.stat().st_mode) == 0o644 and not list((tmp_path / "clips").glob(".*"))
    assert torch.equal(wavs, preload(ds, cache_dir=False, progress=False)[0]) and len(labels) == len(ds)


def test_a_read_only_cache_folder_says_where_to_put_the_cache(mini_sc, tmp_path):
    from test_io import read_only_folder

    cache = tmp_path / "cache"
    with read_only_folder(cache):
        with pytest.raises(WriteError) as caught:
            preload(KeywordDataset(mini_sc, labels=["no"], split="test"), cache_dir=cache, progress=False)
        assert str(caught.value) == f"cannot write to {cache / 'clips'} (read-only): set cache_dir/GANAUG_CACHE to a writable folder"


# -- FSDD labels in digit order; download(url=<folder>) ----------------------------------------------------
def test_fsdd_label_index_is_the_digit(fsdd_root):
    ds = KeywordDataset(fsdd_root, split="test")
    assert ds.label_names[0] == "zero" and ds.label_names[9] == "nine"
    item = ds[len(ds) // 2]
    assert item["label"] == int(Path(item["path"]).name[0])


def test_download_accepts_a_local_folder_of_the_extracted_data(fsdd_root, tmp_path, monkeypatch):
    monkeypatch.setenv("GANAUG_CACHE", str(tmp_path / "cache"))
    # the folder itself, its links resolved (../shared may be a symlink)
    assert download("fsdd", tmp_path / "data", url=str(fsdd_root)) == fsdd_root.resolve()
    assert download("fsdd", tmp_path / "data", url=fsdd_root.as_uri()) == fsdd_root.resolve()
    assert not (tmp_path / "data").exists() and not (tmp_path / "cache").exists()     # nothing copied
    with pytest.raises(FileNotFoundError, match="no such file or folder, and not a URL"):
        download("fsdd", tmp_path / "data", url=str(tmp_path / "nowhere"))
    (tmp_path / "empty").mkdir()
    with pytest.raises(ValueError, match="is a folder but not an extracted fsdd dataset"):
        download("fsdd", tmp_path / "data", url=str(tmp_path / "empty"))
    with pytest.raises(ValueError, match="ganaug downloads http"):
        download("fsdd", tmp_path / "data", url="s3://bucket/fsdd.tar.gz")
