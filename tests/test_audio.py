"""ganaug.audio: the door audio comes in by."""

from __future__ import annotations

import io

import numpy as np
import pytest
import soundfile as sf
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from ganaug.audio import AudioError, fit_length, load_audio, prepare_audio
from conftest import write_tone


def test_reads_shared_flac_as_float32_mono(sc_root):
    path = next((sc_root / "yes").glob("*.flac"))
    wav = load_audio(path)
    ref, rate = sf.read(path, dtype="float32")
    assert rate == 16000 and wav.dtype == torch.float32 and wav.shape == (16000,)
    assert torch.allclose(wav, torch.from_numpy(ref))
    assert 0 < wav.abs().max() <= 1


def test_fsdd_wav_resampled_to_16k_and_padded(fsdd_root):
    path = fsdd_root / "7_jackson_32.wav"
    frames = sf.info(path).frames
    wav = load_audio(path, sample_rate=16000)
    assert abs(wav.shape[0] - 2 * frames) <= 1
    fixed = load_audio(path, sample_rate=16000, num_samples=16384)
    assert fixed.shape == (16384,)
    # centre padding keeps the whole utterance: the unpadded samples appear in the middle
    start = (16384 - wav.shape[0]) // 2
    assert torch.allclose(fixed[start : start + wav.shape[0]], wav)
    assert fixed[:start].abs().sum() == 0


@pytest.mark.parametrize("rate", [8000, 22050, 44100, 48000])
def test_other_rates_resample_to_a_tone_of_the_same_pitch(tmp_path, rate):
    path = write_tone(tmp_path / f"tone_{rate}.wav", sample_rate=rate, freq=1000.0)
    wav = load_audio(path, sample_rate=16000)
    assert abs(wav.shape[0] - 16000) <= 1
    spectrum = torch.fft.rfft(wav).abs()
    assert abs(int(spectrum.argmax()) - 1000) <= 2  # 1 Hz bins over 1 s


def test_stereo_is_averaged_to_mono(tmp_path):
    left = np.linspace(-0.5, 0.5, 16000, dtype=np.float32)
    path = tmp_path / "stereo.flac"
    sf.write(path, np.stack([left, np.zeros_like(left)], axis=1), 16000)
    wav = load_audio(path)
    assert torch.allclose(wav, torch.from_numpy(left / 2), atol=1e-4)


def test_offsets_crop_where_asked(tmp_path):
    ramp = np.arange(20000, dtype=np.float32) / 40000
    path = tmp_path / "ramp.wav"
    sf.write(path, ramp, 16000, subtype="FLOAT")
    assert load_audio(path, num_samples=16000, offset="start")[0] == 0
    assert load_audio(path, num_samples=16000, offset="center")[0] == pytest.approx(2000 / 40000)
    g1, g2 = torch.Generator().manual_seed(3), torch.Generator().manual_seed(3)
    a = load_audio(path, num_samples=16000, offset="random", generator=g1)
    b = load_audio(path, num_samples=16000, offset="random", generator=g2)
    assert torch.equal(a, b)


def test_bytes_input(sc_root):
    path = next((sc_root / "no").glob("*.flac"))
    assert torch.equal(load_audio(io.BytesIO(path.read_bytes())), load_audio(path))


def test_missing_file_names_it(tmp_path):
    with pytest.raises(AudioError, match="nothere.wav: no such file"):
        load_audio(tmp_path / "nothere.wav")


def test_not_audio_names_it(tmp_path):
    path = tmp_path / "notes.wav"
    path.write_text("this is not audio")
    with pytest.raises(AudioError, match="notes.wav: not a readable audio file"):
        load_audio(path)


def test_zero_samples(tmp_path):
    path = tmp_path / "empty.wav"
    sf.write(path, np.zeros(0, dtype=np.float32), 16000)
    with pytest.raises(AudioError, match="empty.wav: holds zero samples"):
        load_audio(path)


def test_nan_samples(tmp_path):
    path = tmp_path / "nan.wav"
    data = np.zeros(1600, dtype=np.float32)
    data[10] = np.nan
    sf.write(path, data, 16000, subtype="FLOAT")
    with pytest.raises(AudioError, match="nan.wav: holds NaN or Inf"):
        load_audio(path)


def test_rate_it_cannot_resample_from(tmp_path):
    path = tmp_path / "slow.wav"
    sf.write(path, np.zeros(500, dtype=np.float32), 500)
    with pytest.raises(AudioError, match="slow.wav: cannot resample 500 Hz"):
        load_audio(path)


def test_bad_arguments():
    with pytest.raises(ValueError, match="offset"):
        fit_length(torch.zeros(10), 5, offset="middle")
    with pytest.raises(ValueError, match="num_samples"):
        fit_length(torch.zeros(10), 0)


def test_fit_length_batches():
    wavs = torch.randn(3, 100)
    assert fit_length(wavs, 64).shape == (3, 64)
    padded = fit_length(wavs, 120, offset="start")
    assert torch.equal(padded[:, :100], wavs) and padded[:, 100:].abs().sum() == 0


def test_prepare_audio_scales_int_pcm():
    pcm = np.array([0, 16384, -32768], dtype=np.int16)
    out = prepare_audio(pcm, 16000, 16000)
    assert torch.allclose(out, torch.tensor([0.0, 0.5, -1.0]))


@settings(max_examples=25, deadline=None)
@given(
    frames=st.integers(min_value=1, max_value=12000),
    rate=st.sampled_from([8000, 11025, 16000, 22050, 44100, 48000]),
    channels=st.integers(min_value=1, max_value=4),
    num_samples=st.one_of(st.none(), st.integers(min_value=1, max_value=20000)),
    offset=st.sampled_from(["center", "random", "start"]),
)
def test_property_any_length_rate_channels(tmp_path_factory, frames, rate, channels, num_samples, offset):
    rng = np.random.default_rng(frames)
    data = rng.uniform(-0.9, 0.9, size=(frames, channels)).astype(np.float32)
    path = tmp_path_factory.mktemp("prop") / "x.wav"
    sf.write(path, data, rate, subtype="FLOAT")
    wav = load_audio(path, sample_rate=16000, num_samples=num_samples, offset=offset)
    assert wav.dtype == torch.float32 and wav.dim() == 1
    expected = num_samples if num_samples is not None else None
    if expected is not None:
        assert wav.shape[0] == expected
    else:
        assert abs(wav.shape[0] - frames * 16000 / rate) <= 1
    assert torch.isfinite(wav).all()
