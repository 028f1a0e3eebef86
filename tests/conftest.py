"""Shared fixtures: the real corpora in ../shared/data and small audio files written by tests."""

from __future__ import annotations

import contextlib
import os
import shutil
import sys
import tempfile
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf

REPO = Path(__file__).resolve().parents[1]
SHARED_DATA = Path(os.environ.get("GANAUG_SHARED_DATA", REPO.parent / "shared" / "data"))
KEYWORDS = ["yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go"]


def _drop_broken_lazy_modules() -> None:
    """SpeechBrain registers lazy modules for optional integrations (k2, ...) in sys.modules;
    touching one whose dependency is missing raises ImportError, and Hypothesis reads
    ``__file__`` of every module in sys.modules. Drop those placeholders: importing them
    afterwards still fails as it should."""
    importutils = sys.modules.get("speechbrain.utils.importutils")
    if importutils is None:
        return
    for name, module in list(sys.modules.items()):
        if isinstance(module, importutils.LazyModule):
            try:
                getattr(module, "__file__", None)
            except ImportError:
                sys.modules.pop(name, None)


def pytest_configure(config):
    """Every test session gets a cache of its own ($GANAUG_CACHE: decoded clips, reference and filter
    classifiers), inherited by the subprocesses tests start: a classifier trained by an earlier session
    or by hand must never decide whether a test passes."""
    config._ganaug_cache = tempfile.mkdtemp(prefix="ganaug-test-cache-")
    os.environ["GANAUG_CACHE"] = config._ganaug_cache


def pytest_unconfigure(config):
    shutil.rmtree(getattr(config, "_ganaug_cache", ""), ignore_errors=True)


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items):
    _drop_broken_lazy_modules()


@pytest.fixture(autouse=True)
def _no_broken_lazy_modules():
    _drop_broken_lazy_modules()
    yield


@pytest.fixture
def one_thread():
    """Small STFTs run fastest on one thread; on a busy 2-core machine two threads are ~20x slower.
    Modules that need it say ``pytestmark = pytest.mark.usefixtures("one_thread")``."""
    from ganaug.env import torch_threads

    with torch_threads(1):
        yield


@pytest.fixture(scope="session")
def sc_root() -> Path:
    """The shared Speech Commands subset (160 speakers, 10 keywords + _unknown_ + _silence_)."""
    root = SHARED_DATA / "speech_commands"
    assert root.is_dir(), f"shared data missing at {root}; set GANAUG_SHARED_DATA"
    return root


@pytest.fixture(scope="session")
def fsdd_root() -> Path:
    root = SHARED_DATA / "fsdd"
    assert root.is_dir(), f"shared data missing at {root}; set GANAUG_SHARED_DATA"
    return root


@pytest.fixture(scope="session")
def mini_sc(tmp_path_factory, sc_root) -> Path:
    """A small Speech Commands-layout copy (yes/no/_silence_, 12 speakers) written by the test
    session from the shared FLAC files: fast to scan and to train on for a few steps."""
    root = tmp_path_factory.mktemp("mini_sc")
    for label in ("yes", "no"):
        files = sorted((sc_root / label).glob("*.flac"))
        speakers = sorted({f.name.split("_nohash_")[0] for f in files})[:12]
        (root / label).mkdir()
        for f in files:
            if f.name.split("_nohash_")[0] in speakers:
                data, rate = sf.read(f)
                sf.write(root / label / f.name, data, rate)
    (root / "_silence_").mkdir()
    for f in sorted((sc_root / "_silence_").glob("*.flac"))[:6]:
        data, rate = sf.read(f)
        sf.write(root / "_silence_" / f.name, data, rate)
    return root


def _speaker(path: Path) -> str:
    return path.stem.split("_nohash_")[0].split("_")[-1]


@pytest.fixture(scope="session")
def official_sc(tmp_path_factory, sc_root) -> Path:
    """Speech Commands as the official v0.02 archive lays it out, built from the shared FLAC subset at
    smoke size: WAV clips of ``yes``/``no`` (60 speakers) and of two other words (``_unknown_`` unfolded
    into ``<word>/``), ``validation_list.txt``/``testing_list.txt`` (speakers dealt by a SHA-1 of their
    id, about 10% each), ``_background_noise_/`` of three 20-second recordings (the ``_silence_`` clips
    end to end) with its README, ``LICENSE`` and ``README.md`` at the root, and no ``_silence_/``."""
    import hashlib

    root = tmp_path_factory.mktemp("official_sc")
    clips = []                                          # (source, word)
    for word in ("yes", "no"):
        files = sorted((sc_root / word).glob("*.flac"))
        speakers = sorted({_speaker(f) for f in files})[:60]
        clips += [(f, word) for f in files if _speaker(f) in speakers]
    unknown = sorted((sc_root / "_unknown_").glob("*.flac"))
    words = sorted({f.name.split("_")[0] for f in unknown})[:2]
    clips += [(f, f.name.split("_")[0]) for f in unknown if f.name.split("_")[0] in words]
    ranked = sorted({_speaker(f) for f, _ in clips}, key=lambda s: hashlib.sha1(s.encode()).hexdigest())
    tenth = max(1, len(ranked) // 10)
    split_of = {s: "valid" for s in ranked[:tenth]} | {s: "test" for s in ranked[tenth: 2 * tenth]}
    lists = {"valid": [], "test": []}
    for source, word in clips:
        name = f"{_speaker(source)}_nohash_{source.stem.rsplit('_', 1)[1]}.wav"
        data, rate = sf.read(source, dtype="int16")
        (root / word).mkdir(exist_ok=True)
        sf.write(root / word / name, data, rate, subtype="PCM_16")
        if _speaker(source) in split_of:
            lists[split_of[_speaker(source)]].append(f"{word}/{name}")
    (root / "validation_list.txt").write_text("".join(f"{n}\n" for n in sorted(lists["valid"])))
    (root / "testing_list.txt").write_text("".join(f"{n}\n" for n in sorted(lists["test"])))
    noise = root / "_background_noise_"
    noise.mkdir()
    silence = sorted((sc_root / "_silence_").glob("*.flac"))
    for i in range(3):
        parts = [sf.read(f, dtype="int16")[0] for f in silence[20 * i: 20 * (i + 1)]]
        sf.write(noise / f"noise_{i}.wav", np.concatenate(parts), 16000, subtype="PCM_16")
    (noise / "README.md").write_text("Long recordings of background noise.\n")
    (root / "LICENSE").write_text((sc_root / "LICENSE").read_text())
    (root / "README.md").write_text("Speech Commands v0.02 (test fixture built from the shared subset)\n")
    return root


@contextlib.contextmanager
def killed_after_epoch(epoch: int):
    """While the block runs, a classifier run dies (KeyboardInterrupt) right after SpeechBrain has
    saved the checkpoint of ``epoch``: a kill between two epochs."""
    from speechbrain.utils.checkpoints import Checkpointer

    save = Checkpointer.save_and_keep_only

    def save_then_die(self, meta=None, **kw):
        save(self, meta=meta, **kw)
        if meta["epoch"] == epoch:
            raise KeyboardInterrupt
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(Checkpointer, "save_and_keep_only", save_then_die)
        yield


def write_tone(path: Path, sample_rate=16000, seconds=1.0, channels=1, freq=440.0, subtype="PCM_16") -> Path:
    t = np.arange(int(sample_rate * seconds)) / sample_rate
    mono = 0.5 * np.sin(2 * np.pi * freq * t)
    data = np.stack([mono] * channels, axis=1) if channels > 1 else mono
    path.parent.mkdir(parents=True, exist_ok=True)
    sf.write(path, data, sample_rate, subtype=subtype)
    return path


WEAK_GENERATOR = REPO.parent / "shared" / "generators" / "wavegan_sc10_h100_5k_ema"


@pytest.fixture(scope="session")
def weak_generator() -> Path:
    """The shared realistic weak generator: conditional WaveGAN, d=64, 10 keywords, 5k steps with EMA."""
    assert (WEAK_GENERATOR / "generator.safetensors").is_file(), f"shared generator missing at {WEAK_GENERATOR}"
    return WEAK_GENERATOR


@pytest.fixture(scope="session")
def filter_classifier_dir(tmp_path_factory, sc_root) -> Path:
    """A real (small, weak) keyword classifier for label-consistency filtering: a DS-CNN (24
    channels, 3 blocks) trained for 4 epochs on the shared Speech Commands TRAIN split of the 10
    keywords, one thread, fixed seeds. Its test-speaker accuracy is checked above chance. A
    test's few-line loop on purpose: the library's one loop (ganaug.kws) trains the real ones."""
    import torch
    import torch.nn.functional as F

    from ganaug.data import KeywordDataset
    from ganaug.data.cache import preload
    from ganaug.env import torch_threads
    from ganaug.models.classifier import KWSClassifier, save_classifier

    with torch_threads(1):
        common = dict(labels=KEYWORDS, sample_rate=16000, num_samples=16000)
        wavs, labels = preload(KeywordDataset(sc_root, split="train", **common), cache_dir=False, progress=False)
        with torch.random.fork_rng():
            torch.manual_seed(0)
            model = KWSClassifier(KEYWORDS, channels=24, num_blocks=3)
        opt = torch.optim.Adam(model.parameters(), lr=3e-3)
        order = torch.Generator().manual_seed(0)
        for _ in range(4):
            model.train()
            for idx in torch.randperm(len(wavs), generator=order).split(64):
                loss = F.cross_entropy(model(wavs[idx]), labels[idx])
                opt.zero_grad()
                loss.backward()
                opt.step()
        model.eval()
        test_wavs, test_labels = preload(KeywordDataset(sc_root, split="test", **common), cache_dir=False,
                                         progress=False)
        with torch.no_grad():
            acc = float((model(test_wavs).argmax(1) == test_labels).float().mean())
        assert acc > 0.2, f"the filter classifier fixture is at chance ({acc:.2f} on test speakers)"
        return save_classifier(tmp_path_factory.mktemp("filter_classifier"), model, test_acc=acc)
