"""Issue 25, files that must not be trusted: an edited or unsigned config.json, damaged and NaN weights, an
oversize model in a config, a full disk while checkpointing, unsigned 8-bit audio; and one `ganaug kws` per
output folder. Real checkpoints (the shared GPU-trained generator, tiny ones saved here), real processes,
a real full tmpfs where the machine lets the tests mount one."""

from __future__ import annotations

import json
import os
import re
import shutil
import struct
import subprocess
import sys
import time
import warnings
from pathlib import Path

import numpy as np
import pytest
import torch
from test_io import mount_tmpfs, umount

from ganaug import GanAugment
from ganaug.audio import prepare_audio
from ganaug.checkpoint import (CHECKSUM_KEY, CONFIG_CHECKSUM_KEY, CheckpointError, config_checksum, load_generator,
                               read_config, save_generator)
from ganaug.cli import main as cli
from ganaug.models import WaveGANGenerator

REPO = Path(__file__).resolve().parents[1]
SHARED_GENERATOR = REPO.parent / "shared" / "generators" / "wavegan_sc10_h100_5k_ema"
ENV = {**os.environ, "PYTHONPATH": str(REPO), "OMP_NUM_THREADS": "1", "PYTHONWARNINGS": "ignore"}


def ganaug(*argv: str, timeout=600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "ganaug.cli", *argv], capture_output=True, text=True, env=ENV,
                          timeout=timeout)


def assert_error(done: subprocess.CompletedProcess, command: str, *words: str) -> None:
    """Exit 2, no traceback, one error line (a progress bar may share stderr) holding ``words``."""
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
    (line,) = re.findall(rf"ganaug {command}: error: [^\r\n]*", done.stderr)
    for word in words:
        assert word in line, (word, line)


def edit(folder: Path, change) -> None:
    config = json.loads((folder / "config.json").read_text())
    change(config)
    (folder / "config.json").write_text(json.dumps(config, indent=2))


@pytest.fixture
def tiny(tmp_path) -> Path:
    torch.manual_seed(0)
    return save_generator(tmp_path / "ckpt", WaveGANGenerator(model_dim=4, label_names=["yes", "no"]), step=1)


@pytest.fixture
def shared_copy(tmp_path) -> Path:
    """The shared generator (written before checksums existed), copied so that a test may damage it."""
    folder = tmp_path / "shared_gen"
    folder.mkdir()
    for name in ("config.json", "generator.safetensors"):
        shutil.copyfile(SHARED_GENERATOR / name, folder / name)
    return folder


def relabel(config: dict) -> None:
    names = ["up", "down", *config["label_names"][2:]]
    config["label_names"] = config["kwargs"]["label_names"] = names      # consistent with itself: not a contradiction


# -- 2: an edited config.json -------------------------------------------------------------------------------
def test_config_json_carries_its_own_checksum_and_an_edit_is_refused(tiny):
    config = read_config(tiny)
    assert config[CONFIG_CHECKSUM_KEY] == config_checksum(config) and CHECKSUM_KEY in config
    edit(tiny, relabel)                                                    # was: `ganaug generate` wrote up/ and down/
    with pytest.raises(CheckpointError, match=r"config.json: its contents do not match its config_sha256"):
        load_generator(tiny)


def test_deleting_the_weights_checksum_does_not_turn_the_check_off(tiny):
    edit(tiny, lambda config: config.pop(CHECKSUM_KEY))
    with pytest.raises(CheckpointError, match="do not match its config_sha256"):
        load_generator(tiny)


def test_an_unsigned_checkpoint_loads_with_one_warning_and_its_labels_must_be_those_it_was_trained_on(shared_copy,
                                                                                                     tmp_path):
    with pytest.warns(UserWarning, match=f"{shared_copy}: config.json has no weights_sha256/config_sha256"):
        G = load_generator(shared_copy)
    assert G.label_names[:2] == ["yes", "no"]
    edit(shared_copy, relabel)
    with pytest.raises(CheckpointError, match=r"label_names \['up', 'down', .*are not the labels it was trained on"):
        read_config(shared_copy)
    out = tmp_path / "bank"
    done = ganaug("generate", str(shared_copy), "--per-label", "1", "--out", str(out))
    assert_error(done, "generate", "data.labels")
    assert not out.exists()


# -- 3: damaged weights ---------------------------------------------------------------------------------------
def flip_last_bias(folder: Path) -> None:
    """One flipped bit in the exponent of the last layer's float16 bias (a byte a bad copy could flip)."""
    path = folder / "generator.safetensors"
    data = bytearray(path.read_bytes())
    size = struct.unpack("<Q", data[:8])[0]
    start = json.loads(data[8:8 + size])["convs.4.bias"]["data_offsets"][0]
    data[8 + size + start + 1] ^= 0x40
    path.write_bytes(bytes(data))


def test_damaged_unsigned_weights_are_never_served_or_written(shared_copy, tmp_path):
    flip_last_bias(shared_copy)
    aug = GanAugment(shared_copy, p=1.0)
    with pytest.raises(CheckpointError, match="every generated clip is the constant -1"):   # was: constant rows
        aug(torch.zeros(4, 16000), ["yes", "no", "up", "go"])
    out = tmp_path / "bank"
    done = ganaug("generate", str(shared_copy), "--per-label", "2", "--out", str(out))
    assert_error(done, "generate", str(shared_copy), "damaged")
    assert not out.exists() and not [p for p in tmp_path.iterdir() if p.name.startswith(".bank.")]


def test_nan_weights_are_refused_and_nan_clips_never_leave_the_source(tiny, tmp_path):
    G = load_generator(tiny)
    aug = GanAugment(tiny, p=1.0)
    aug.source.model("yes").convs[-1].bias.data.fill_(float("nan"))        # weights gone bad after loading
    with pytest.raises(CheckpointError, match="made NaN or Inf samples"):  # was: NaN rows without a word
        aug(torch.zeros(2, 16384), ["yes", "no"])
    G.convs[-1].bias.data.fill_(float("nan"))
    nan_ckpt = save_generator(tmp_path / "nan", G, step=2)                 # a consistent checksum: only NaN is wrong
    with pytest.raises(CheckpointError, match=r"weights \['convs.4.bias'\] hold NaN or Inf"):
        load_generator(nan_ckpt)
    done = ganaug("generate", str(nan_ckpt), "--per-label", "1", "--out", str(tmp_path / "bank"))
    assert_error(done, "generate", "NaN")                                 # was: soundfile's AssertionError
    assert not (tmp_path / "bank").exists()


# -- 8: an oversize model in config.json ------------------------------------------------------------------------
def test_an_oversize_model_in_config_json_is_one_line_before_any_allocation(tiny, tmp_path):
    def grow(config):
        config["kwargs"]["model_dim"] = 100000
        config[CONFIG_CHECKSUM_KEY] = config_checksum(config)            # even a consistent edit
    edit(tiny, grow)
    with pytest.raises(CheckpointError, match=r"generator.safetensors: tensor 'convs.0.bias' has shape \(32,\), the "
                                              r"config's model expects \(800000,\)"):
        load_generator(tiny)                                              # was: a 128 TB allocation traceback
    done = ganaug("generate", str(tiny), "--per-label", "1", "--out", str(tmp_path / "bank"))
    assert_error(done, "generate", "the config's model expects")


# -- 5: a full disk while checkpointing ------------------------------------------------------------------------
def test_a_full_disk_while_checkpointing_is_one_line_and_leaves_no_temp(mini_sc, tmp_path, monkeypatch, capsys):
    out = tmp_path / "small_fs"
    mounted = mount_tmpfs(out, "1m")                                      # a real full disk: the state is ~4 MB
    argv = ["train", "wavegan", f"--data_folder={mini_sc}", f"--output_folder={out}", "--labels=yes",
            "--model_dim=8", "--batch_size=4", "--max_steps=1", "--device=cpu", "--num_threads=1", "--progress=False",
            "--tensorboard=False", f"--cache_dir={tmp_path / 'cache'}"]
    try:
        if mounted:
            done = ganaug(*argv)
        else:   # no mount here: safetensors reports ENOSPC as a SafetensorError, as it does on a full disk
            from safetensors import SafetensorError

            def full(tensors, path, metadata=None):
                Path(path).write_bytes(b"\0" * 1000)
                raise SafetensorError("Error while serializing: I/O error: No space left on device (os error 28)")
            monkeypatch.setattr("ganaug.io.save_file", full)
            done = subprocess.CompletedProcess(argv, cli(argv), "", capsys.readouterr().err)
        assert_error(done, "train", f"no space left on {out / 'yes' / 'train_state'}: free space there")
        assert not list((out / "yes" / "train_state").iterdir())           # was: an empty .tmp_step_* left
    finally:
        if mounted:
            umount(out)


# -- 8: unsigned integer audio ---------------------------------------------------------------------------------
def test_unsigned_integer_audio_is_scaled_around_its_midpoint(sc_root):
    import soundfile as sf

    speech, rate = sf.read(sorted((sc_root / "yes").glob("*.flac"))[0], dtype="int16")
    as_uint8 = ((speech.astype(np.int32) >> 8) + 128).astype(np.uint8)    # what an 8-bit WAV stores
    as_uint16 = (speech.astype(np.int32) + 32768).astype(np.uint16)
    signed = prepare_audio(speech, rate)
    assert torch.allclose(prepare_audio(as_uint16, rate), signed)           # was: offset by +0.5
    assert (prepare_audio(as_uint8, rate) - signed).abs().max() <= 1 / 128
    tone = 0.5 * np.sin(np.linspace(0, 200 * np.pi, 16000))
    wav = prepare_audio(np.round(tone * 128 + 128).astype(np.uint8), 16000)
    assert abs(wav.min() + 0.5) < 0.01 and abs(wav.max() - 0.5) < 0.01    # was: [0.246, 0.742]


# -- 1: one `ganaug kws` per output folder -------------------------------------------------------------------
def test_a_second_kws_run_on_a_folder_in_use_exits_2_naming_the_first(mini_sc, tmp_path):
    out = tmp_path / "kws"
    argv = ["kws", "kws", f"--data_folder={mini_sc}", f"--output_folder={out}", "--labels=yes,no",
            "--number_of_epochs=200", "--batch_size=16", "--channels=8", "--num_blocks=1", "--progress=False",
            f"--cache_dir={tmp_path / 'cache'}", "--device=cpu", "--num_threads=1"]
    first = subprocess.Popen([sys.executable, "-m", "ganaug.cli", *argv, "--lr=0.003"], stdout=subprocess.DEVNULL,
                             stderr=subprocess.PIPE, text=True, env=ENV)
    try:
        deadline = time.monotonic() + 120
        while not ((out / ".ganaug.lock").is_file() and f"pid {first.pid}" in (out / ".ganaug.lock").read_text()):
            assert first.poll() is None and time.monotonic() < deadline, first.communicate()
            time.sleep(0.05)
        second = ganaug(*argv, "--lr=0.01")                               # was: both ran, sharing save/
        assert_error(second, "kws", f"{out} is in use by pid {first.pid}", "choose another --output_folder")
        assert first.poll() is None                                       # the first trains on, its folder its own
        assert "lr: 0.003" in (out / "hparams.yaml").read_text()
    finally:
        first.kill()
        first.wait()


# -- 8: hf_map without indices ------------------------------------------------------------------------------
def test_hf_map_without_indices_warns_when_a_batch_loses_rows(mini_sc, tmp_path):
    import datasets
    import soundfile as sf

    files = sorted((mini_sc / "yes").glob("*.flac"))[:5]
    ds = datasets.Dataset.from_dict({"audio": [{"array": sf.read(f, dtype="float32")[0], "sampling_rate": 16000}
                                               for f in files], "label": ["yes"] * 5})
    aug = GanAugment(save_generator(tmp_path / "g", WaveGANGenerator(model_dim=4, label_names=["yes", "no"])), p=0.5)
    with pytest.warns(UserWarning, match=r"hf_map\(ratio=0.5\) without with_indices=True .*at batch_size=1 and "
                                         r"ratio < 1, none\); pass with_indices=True"):   # was: 0 of 5 rows, silently
        out = ds.map(aug.hf_map(ratio=0.5), batched=True, batch_size=1, remove_columns=ds.column_names)
    assert sum(out["synthetic"]) == 0
    with warnings.catch_warnings():
        warnings.simplefilter("error")                                    # the exact ratio: no warning
        exact = ds.map(aug.hf_map(ratio=0.5), batched=True, batch_size=1, with_indices=True,
                       remove_columns=ds.column_names, load_from_cache_file=False)
    assert sum(exact["synthetic"]) == 2
