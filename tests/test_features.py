"""The numpy audio front end: mono, resampling, log-mel (against librosa on real speech), VAD."""

from __future__ import annotations

import numpy as np
import pytest

from edge_emotion.config import EDGE, PAPER, AudioConfig
from edge_emotion.frontend import features as F

# Our log-mel against librosa.feature.melspectrogram on real speech, in ln units (measured: 2e-5 to 5e-5).
LIBROSA_LOG_TOLERANCE = 1e-3

RAVDESS_CLIP = "ravdess/audio16k/Actor_01/03-01-05-02-01-01-01.flac"  # angry, strong intensity


def sine(freq_hz: float, rate: int, seconds: float, amplitude: float = 0.5) -> np.ndarray:
    t = np.arange(int(rate * seconds)) / rate
    return (amplitude * np.sin(2 * np.pi * freq_hz * t)).astype(np.float32)


def spectrum_peak(x: np.ndarray, rate: int) -> tuple[float, float]:
    """(frequency of the strongest bin, its amplitude) with a Hann window."""
    w = np.hanning(x.size)
    mag = np.abs(np.fft.rfft(x * w)) * 2 / w.sum()
    k = int(np.argmax(mag))
    return k * rate / x.size, float(mag[k])


def read_sample(path) -> tuple[np.ndarray, int]:
    from edge_emotion.sources import read_audio

    return read_audio(path, 16000)[0], 16000


# --- mono and resampling -------------------------------------------------------------------------


def test_to_mono_scales_int16_and_averages_channels():
    pcm = np.array([[32767, -32768], [16384, 16384], [0, -16384]], dtype=np.int16)
    mono = F.to_mono(pcm)
    assert mono.dtype == np.float32 and mono.shape == (3,)
    np.testing.assert_allclose(mono, [(32767 / 32768 - 1) / 2, 0.5, -0.25], atol=1e-6)
    floats = np.array([0.25, -0.5], dtype=np.float64)
    np.testing.assert_array_equal(F.to_mono(floats), floats.astype(np.float32))
    with pytest.raises(ValueError):
        F.to_mono(np.zeros((2, 2, 2)))


def test_resample_keeps_frequency_and_amplitude():
    x = sine(1000.0, 44100, 1.0, amplitude=0.5)
    y = F.resample(x, 44100, 16000)
    assert y.dtype == np.float32 and y.shape == (16000,)
    freq, amp = spectrum_peak(y[800:-800], 16000)
    assert abs(freq - 1000.0) < 2.0
    assert abs(amp - 0.5) < 0.01


def alias_level_db(y: np.ndarray, amplitude: float) -> float:
    rms = float(np.sqrt(np.mean(y[800:-800] ** 2)))
    return 20 * np.log10(rms / (amplitude / np.sqrt(2)))


def test_resample_does_not_alias_tones_above_the_new_nyquist():
    x = sine(10000.0, 44100, 1.0, amplitude=0.5)  # would fold to 6 kHz at 16 kHz
    assert alias_level_db(F.resample(x, 44100, 16000), 0.5) < -40
    # Linear interpolation, which this test exists to rule out, lets the tone through folded.
    linear = np.interp(np.arange(16000) * 44100 / 16000, np.arange(x.size), x).astype(np.float32)
    assert alias_level_db(linear, 0.5) > -10


def test_resample_is_flat_in_band_and_identity_at_the_same_rate():
    for freq in (300.0, 3000.0, 6000.0):
        y = F.resample(sine(freq, 44100, 1.0), 44100, 16000)
        found, amp = spectrum_peak(y[800:-800], 16000)
        assert abs(found - freq) < 2.0
        assert abs(20 * np.log10(amp / 0.5)) < 0.1, (freq, amp)
    y = F.resample(sine(3000.0, 48000, 0.5), 48000, 16000)
    assert y.shape == (8000,)
    np.testing.assert_array_equal(F.resample(y, 16000, 16000), y)
    with pytest.raises(ValueError):
        F.resample(y, 0, 16000)


# --- log-mel -------------------------------------------------------------------------------------


def test_mel_filterbank_shape_cache_and_scales():
    fb = F.mel_filterbank(EDGE.audio)
    assert fb.shape == (128, EDGE.audio.n_fft // 2 + 1) and fb.dtype == np.float32
    assert F.mel_filterbank(AudioConfig(hop_length=375, n_frames=128)) is fb  # cached per config value
    assert np.all(fb.max(axis=1) > 0.5)  # every band has a filter (peak ~1, no empty bands)
    htk = F.mel_filterbank(AudioConfig(mel_scale="htk"))
    assert not np.allclose(htk, fb)


def test_log_mel_shape_and_frame_convention():
    cfg = EDGE.audio
    for n in (0, 1, cfg.hop_length - 1, cfg.hop_length, 16000):
        out = F.log_mel(np.zeros(n, np.float32), cfg)
        assert out.shape == (cfg.n_mels, 1 + n // cfg.hop_length) and out.dtype == np.float32
    # Silence is the floor exactly.
    np.testing.assert_allclose(F.log_mel(np.zeros(1000, np.float32), cfg), np.log(cfg.log_floor), rtol=1e-6)


def test_log_mel_matches_a_direct_dft_of_one_frame(crema_flv):
    """A literal computation for one centred frame, on a real CREMA-D clip."""
    cfg = EDGE.audio
    pcm, _ = read_sample(crema_flv)
    i = 40
    padded = np.pad(pcm.astype(np.float64), (cfg.n_fft // 2, cfg.n_fft // 2))
    frame = padded[i * cfg.hop_length : i * cfg.hop_length + cfg.n_fft]
    n = np.arange(cfg.win_length)
    window = np.zeros(cfg.n_fft)
    left = (cfg.n_fft - cfg.win_length) // 2
    window[left : left + cfg.win_length] = 0.5 - 0.5 * np.cos(2 * np.pi * n / cfg.win_length)
    k = np.arange(cfg.n_fft // 2 + 1)
    dft = np.exp(-2j * np.pi * np.outer(k, np.arange(cfg.n_fft)) / cfg.n_fft) @ (frame * window)
    expected = np.log(F.mel_filterbank(cfg).astype(np.float64) @ np.abs(dft) ** 2 + cfg.log_floor)
    np.testing.assert_allclose(F.log_mel(pcm, cfg)[:, i], expected, atol=1e-3)


@pytest.mark.slow
@pytest.mark.parametrize(
    "config", [PAPER.audio, EDGE.audio, AudioConfig(mel_scale="htk")], ids=["paper", "edge", "htk"]
)
def test_log_mel_matches_librosa_on_real_speech(shared_data, config):
    librosa = pytest.importorskip("librosa", reason="librosa is the reference (pip install 'edge-emotion[dev]')")
    sf = pytest.importorskip("soundfile", reason="soundfile reads the reference FLAC")
    pcm, rate = sf.read(shared_data / RAVDESS_CLIP, dtype="float32")
    assert rate == config.sample_rate
    ref = librosa.feature.melspectrogram(
        y=pcm,
        sr=rate,
        n_fft=config.n_fft,
        win_length=config.win_length,
        hop_length=config.hop_length,
        window="hann",
        center=True,
        pad_mode="constant",
        power=2.0,
        n_mels=config.n_mels,
        fmin=config.f_min,
        fmax=config.f_max,
        htk=config.mel_scale == "htk",
        norm=None,
    )
    ours = F.log_mel(pcm, config)
    assert ours.shape == ref.shape
    diff = np.abs(ours - np.log(ref + config.log_floor)).max()
    assert diff < LIBROSA_LOG_TOLERANCE, diff


def test_window_log_mel_pads_crops_and_normalises():
    cfg = EDGE.audio
    rng = np.random.default_rng(0)
    long = (0.1 * rng.standard_normal(cfg.window_samples + 5000)).astype(np.float32)
    out = F.window_log_mel(long, cfg)
    assert out.shape == (cfg.n_mels, cfg.n_frames) and out.dtype == np.float32
    exact = F.window_log_mel(long[: cfg.window_samples], cfg)
    np.testing.assert_array_equal(out, exact)
    expected = (F.log_mel(long[: cfg.window_samples], cfg)[:, : cfg.n_frames] - cfg.mean) / cfg.std
    np.testing.assert_allclose(out, expected, rtol=1e-6, atol=1e-6)
    short = F.window_log_mel(long[:1000], cfg)
    assert short.shape == (cfg.n_mels, cfg.n_frames)
    silent = (np.log(cfg.log_floor) - cfg.mean) / cfg.std
    np.testing.assert_allclose(short[:, 10:], silent, rtol=1e-5)  # zero padding beyond the signal


# --- voice activity ------------------------------------------------------------------------------


def test_frame_energy_is_dbfs():
    cfg = EDGE.audio
    level = F.frame_energy_db(sine(440.0, 16000, 1.0, amplitude=1.0), cfg)
    assert level.shape == (1 + 16000 // cfg.hop_length,)
    np.testing.assert_allclose(level[2:-2], -3.01, atol=0.1)
    assert np.all(F.frame_energy_db(np.zeros(4000, np.float32), cfg) == pytest.approx(-100.0))


def test_silence_and_near_silence_are_not_speech():
    cfg = EDGE.audio
    assert not F.speech_frames(np.zeros(cfg.window_samples, np.float32), cfg).any()
    hiss = (10 ** (-70 / 20) * np.random.default_rng(1).standard_normal(cfg.window_samples)).astype(np.float32)
    assert not F.speech_frames(hiss, cfg).any()
    assert not F.window_speech_steps(hiss, EDGE).any()


def test_speech_is_found_in_real_speech_and_not_in_its_pauses(crema_flv):
    cfg = EDGE.audio
    pcm, _ = read_sample(crema_flv)
    speech = F.speech_frames(pcm, cfg)
    level = F.frame_energy_db(pcm, cfg)
    assert 0.3 < speech.mean() < 0.95
    assert level[speech].min() > level[~speech].max() - 1e-3 or level[~speech].max() <= cfg.vad_floor_db
    # The same speech with 1 s of digital silence before it: the silent second is no speech.
    padded = np.concatenate([np.zeros(16000, np.float32), pcm])
    steps = F.window_speech_steps(padded, EDGE)
    step_ms = EDGE.window_ms / EDGE.model.time_steps
    silent_steps = int(1000 // step_ms) - 1
    assert not steps[:silent_steps].any()
    assert steps[silent_steps + 1 :].mean() > 0.5


def test_speech_steps_pools_frames_onto_the_common_steps():
    preset = EDGE
    n = preset.audio.n_frames
    t = preset.model.time_steps
    assert F.speech_steps(np.ones(n, bool), preset).all()
    assert not F.speech_steps(np.zeros(n, bool), preset).any()
    first_half = np.arange(n) < n // 2
    steps = F.speech_steps(first_half, preset)
    assert steps.shape == (t,) and steps[: t // 2 - 1].all() and not steps[t // 2 + 1 :].any()
    # One speech frame in a step of ~4 frames is below the default fraction (0.5), above 0.2.
    one = np.zeros(n, bool)
    one[0] = True
    assert not F.speech_steps(one, preset)[0]
    assert F.speech_steps(one, preset, min_fraction=0.2)[0]
    # An extra frame past the window (1 + S // hop frames) is ignored.
    assert F.speech_steps(np.ones(n + 1, bool), preset).shape == (t,)
    with pytest.raises(ValueError):
        F.speech_steps(np.ones((2, n), bool), preset)
