"""The audio front end in numpy: mono mixdown, resampling, log-mel, normalisation, voice activity.

The SDK and the training pipeline both call these functions (docs/DESIGN.md, principle 2). Only numpy
and scipy are used; every parameter comes from :class:`~edge_emotion.config.AudioConfig`.

Conventions (they match ``librosa.feature.melspectrogram(center=True, pad_mode="constant",
power=2.0, window="hann")`` with the same ``n_fft``, ``win_length``, ``hop_length``, ``n_mels``,
``fmin``, ``fmax``, ``htk = (mel_scale == "htk")`` and ``norm=None``):

- frames are centred: the signal is padded with ``n_fft // 2`` **zeros** on each side, so frame
  ``i`` is centred on sample ``i * hop_length`` and a signal of ``S`` samples has
  ``1 + S // hop_length`` frames;
- the analysis window is a periodic Hann window of ``win_length`` samples, zero-padded on both
  sides to ``n_fft`` (centred in the FFT frame);
- the mel filters are triangular on the configured mel scale with a peak of 1 (librosa's
  ``norm=None``; not area-normalised, so the ``log_floor`` sits far below speech in every band);
- ``log_mel = ln(mel_power + log_floor)``.
"""

from __future__ import annotations

import functools
import math

import numpy as np

from ..config import AudioConfig, PresetConfig

#: A step of the common grid holds speech when at least this fraction of the log-mel frames whose
#: centres fall in it are speech frames.
SPEECH_STEP_FRACTION = 0.5

_ENERGY_EPS = 1e-10  # keeps log10 finite on digital silence (-100 dBFS)


def to_mono(pcm: np.ndarray) -> np.ndarray:
    """``(S,)`` or ``(S, C)`` samples -> ``(S,) float32`` mono (the mean of the channels).

    Integer input is scaled to ``[-1, 1]`` (int16 by 1/32768, any integer type by its range);
    float input is kept as is.
    """
    x = np.asarray(pcm)
    if x.ndim not in (1, 2):
        raise ValueError(f"pcm must be (S,) or (S, C), got shape {x.shape}")
    if np.issubdtype(x.dtype, np.integer):
        info = np.iinfo(x.dtype)
        scale = float(-info.min) if info.min < 0 else (info.max + 1) / 2.0
        offset = 0.0 if info.min < 0 else scale  # unsigned: centre on zero
        x = (x.astype(np.float32) - offset) / scale
    elif not np.issubdtype(x.dtype, np.floating):
        raise ValueError(f"pcm must hold integers or floats, got {x.dtype}")
    if x.ndim == 2:
        x = x.mean(axis=1)
    return np.ascontiguousarray(x, dtype=np.float32)


def resample(pcm: np.ndarray, orig_rate: int, target_rate: int) -> np.ndarray:
    """Polyphase resampling of ``(S,) float32`` from ``orig_rate`` to ``target_rate`` Hz.

    ``scipy.signal.resample_poly`` with the reduced ratio ``target/orig`` (e.g. 44100 -> 16000 is
    up 160, down 441) and its default Kaiser-windowed (beta 5) low-pass at the lower Nyquist rate.
    Returns ``(ceil(S * target / orig),) float32``.
    """
    if orig_rate <= 0 or target_rate <= 0:
        raise ValueError(f"sample rates must be positive, got {orig_rate} and {target_rate}")
    x = np.asarray(pcm, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"pcm must be (S,), got shape {x.shape}")
    if orig_rate == target_rate or x.size == 0:
        return x.copy() if orig_rate == target_rate else np.zeros(0, np.float32)
    from scipy.signal import resample_poly

    g = math.gcd(int(orig_rate), int(target_rate))
    return resample_poly(x, int(target_rate) // g, int(orig_rate) // g).astype(np.float32)


def _hz_to_mel(f: np.ndarray, htk: bool) -> np.ndarray:
    f = np.asarray(f, dtype=np.float64)
    if htk:
        return 2595.0 * np.log10(1.0 + f / 700.0)
    # Slaney's Auditory Toolbox: linear below 1 kHz, logarithmic above.
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(f >= min_log_hz, min_log_mel + np.log(np.maximum(f, min_log_hz) / min_log_hz) / logstep, f / f_sp)


def _mel_to_hz(m: np.ndarray, htk: bool) -> np.ndarray:
    m = np.asarray(m, dtype=np.float64)
    if htk:
        return 700.0 * (10.0 ** (m / 2595.0) - 1.0)
    f_sp = 200.0 / 3
    min_log_hz = 1000.0
    min_log_mel = min_log_hz / f_sp
    logstep = math.log(6.4) / 27.0
    return np.where(m >= min_log_mel, min_log_hz * np.exp(logstep * (m - min_log_mel)), f_sp * m)


@functools.lru_cache(maxsize=16)
def _mel_filterbank_cached(config: AudioConfig) -> np.ndarray:
    htk = config.mel_scale == "htk"
    n_bins = config.n_fft // 2 + 1
    fft_hz = np.linspace(0.0, config.sample_rate / 2.0, n_bins)
    mel_points = np.linspace(_hz_to_mel(config.f_min, htk), _hz_to_mel(config.f_max, htk), config.n_mels + 2)
    edges_hz = _mel_to_hz(mel_points, htk)
    widths = np.diff(edges_hz)
    ramps = edges_hz[:, None] - fft_hz[None, :]
    lower = -ramps[:-2] / widths[:-1, None]
    upper = ramps[2:] / widths[1:, None]
    weights = np.maximum(0.0, np.minimum(lower, upper))
    weights = weights.astype(np.float32)
    weights.flags.writeable = False
    return weights


def mel_filterbank(config: AudioConfig) -> np.ndarray:
    """``(n_mels, n_fft // 2 + 1) float32``: triangular mel filters (slaney or htk scale per
    ``config.mel_scale``), peak 1 (no area normalisation). Cached per config; the array is read-only."""
    return _mel_filterbank_cached(config)


@functools.lru_cache(maxsize=16)
def _analysis_window(n_fft: int, win_length: int) -> np.ndarray:
    n = np.arange(win_length)
    hann = 0.5 - 0.5 * np.cos(2.0 * np.pi * n / win_length)  # periodic Hann
    window = np.zeros(n_fft, np.float64)
    left = (n_fft - win_length) // 2
    window[left : left + win_length] = hann
    window = window.astype(np.float32)
    window.flags.writeable = False
    return window


def _check_pcm(pcm: np.ndarray) -> np.ndarray:
    x = np.asarray(pcm, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"pcm must be (S,) mono, got shape {x.shape}; use to_mono first")
    return x


def _frames(pcm: np.ndarray, config: AudioConfig) -> np.ndarray:
    """``(1 + S // hop, n_fft) float32``: centred, zero-padded frames (a strided view)."""
    pad = config.n_fft // 2
    padded = np.pad(pcm, (pad, pad))
    n_frames = 1 + pcm.shape[0] // config.hop_length
    view = np.lib.stride_tricks.sliding_window_view(padded, config.n_fft)
    return view[: n_frames * config.hop_length : config.hop_length]


def mel_power(pcm: np.ndarray, config: AudioConfig) -> np.ndarray:
    """``(S,) float32`` at ``config.sample_rate`` -> ``(n_mels, 1 + S // hop_length) float32`` mel
    power (before the log)."""
    x = _check_pcm(pcm)
    frames = _frames(x, config) * _analysis_window(config.n_fft, config.win_length)
    spectrum = np.fft.rfft(frames, n=config.n_fft, axis=1)
    power = (spectrum.real**2 + spectrum.imag**2).astype(np.float32)
    return mel_filterbank(config) @ power.T


def log_mel(pcm: np.ndarray, config: AudioConfig) -> np.ndarray:
    """``(S,) float32`` at ``config.sample_rate`` -> ``(n_mels, 1 + S // hop_length) float32``
    ``ln(mel_power + log_floor)`` (see the module docstring for framing and filters)."""
    return np.log(mel_power(pcm, config) + np.float32(config.log_floor)).astype(np.float32)


def normalize_log_mel(x: np.ndarray, config: AudioConfig) -> np.ndarray:
    """``(x - config.mean) / config.std`` as float32, any shape."""
    return ((np.asarray(x, dtype=np.float32) - np.float32(config.mean)) / np.float32(config.std)).astype(np.float32)


def fit_window(pcm: np.ndarray, config: AudioConfig) -> np.ndarray:
    """``(S,)`` -> ``(window_samples,) float32``: cropped at the end or padded with zeros at the end."""
    x = _check_pcm(pcm)
    n = config.window_samples
    if x.shape[0] >= n:
        return x[:n]
    return np.pad(x, (0, n - x.shape[0]))


def window_log_mel(pcm_window: np.ndarray, config: AudioConfig) -> np.ndarray:
    """One audio-encoder input: ``(S,) float32`` -> ``(n_mels, n_frames) float32``, normalised.

    The PCM is first cropped or zero-padded (at the end) to exactly ``window_samples``; frame
    ``i`` of the result is centred ``i * hop_length`` samples after the window's first sample
    (the last of the ``1 + window_samples // hop_length`` centred frames is dropped).
    """
    x = fit_window(pcm_window, config)
    return normalize_log_mel(log_mel(x, config)[:, : config.n_frames], config)


def frame_energy_db(pcm: np.ndarray, config: AudioConfig) -> np.ndarray:
    """``(S,) float32`` -> ``(1 + S // hop_length,) float32``: the level of each log-mel frame in dBFS.

    The level is ``10 log10(sum(w² x²) / sum(w²))`` over the same centred frames and Hann window
    as :func:`log_mel` (a mean square, so a constant signal of amplitude 1 is 0 dBFS and a
    full-scale sine is -3 dBFS); digital silence gives -100 dBFS.
    """
    x = _check_pcm(pcm)
    window = _analysis_window(config.n_fft, config.win_length)
    w2 = window.astype(np.float64) ** 2
    mean_square = (_frames(x, config).astype(np.float64) ** 2) @ w2 / w2.sum()
    return (10.0 * np.log10(mean_square + _ENERGY_EPS)).astype(np.float32)


def speech_frames(pcm: np.ndarray, config: AudioConfig) -> np.ndarray:
    """Energy-based voice activity per log-mel frame: ``(S,)`` -> ``(1 + S // hop_length,) bool``.

    A frame is speech when its level (:func:`frame_energy_db`) is above ``config.vad_floor_db``
    **and** within ``config.vad_range_db`` of the loudest frame of ``pcm``. Silence and
    near-silence (everything below the floor) give all False; pass one window at a time so that
    "the loudest frame" is local.
    """
    level = frame_energy_db(pcm, config)
    if level.size == 0:
        return np.zeros(0, bool)
    return (level > config.vad_floor_db) & (level >= level.max() - config.vad_range_db)


def speech_steps(speech: np.ndarray, preset: PresetConfig, min_fraction: float = SPEECH_STEP_FRACTION) -> np.ndarray:
    """Which of a window's ``T`` common steps hold speech: ``(n_frames,) bool`` -> ``(T,) bool``.

    Log-mel frame ``i`` is centred ``i * hop_ms`` after the window start; step ``k`` covers
    ``[k, k + 1) * window_ms / T``. A step holds speech when at least ``min_fraction`` of the
    frames centred in it are speech (frames centred past the window's end are ignored; a step
    with no frame holds no speech).
    """
    flags = np.asarray(speech, dtype=bool)
    if flags.ndim != 1:
        raise ValueError(f"speech must be (n_frames,), got shape {flags.shape}")
    if not 0 < min_fraction <= 1:
        raise ValueError("min_fraction must be in (0, 1]")
    steps = preset.model.time_steps
    step_ms = preset.window_ms / steps
    centres_ms = np.arange(flags.size) * preset.audio.hop_ms
    step_of = np.floor(centres_ms / step_ms + 1e-9).astype(np.int64)
    inside = step_of < steps
    total = np.bincount(step_of[inside], minlength=steps)
    voiced = np.bincount(step_of[inside], weights=flags[inside], minlength=steps)
    return (total > 0) & (voiced >= min_fraction * total - 1e-9)


def window_speech_steps(pcm_window: np.ndarray, preset: PresetConfig) -> np.ndarray:
    """``(S,) float32`` window -> ``(T,) bool``: :func:`speech_frames` then :func:`speech_steps`,
    on the window fitted to ``window_samples`` exactly like :func:`window_log_mel`."""
    x = fit_window(pcm_window, preset.audio)
    return speech_steps(speech_frames(x, preset.audio)[: preset.audio.n_frames], preset)


__all__ = [
    "SPEECH_STEP_FRACTION",
    "to_mono",
    "resample",
    "mel_filterbank",
    "mel_power",
    "log_mel",
    "normalize_log_mel",
    "fit_window",
    "window_log_mel",
    "frame_energy_db",
    "speech_frames",
    "speech_steps",
    "window_speech_steps",
]
