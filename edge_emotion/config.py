"""Presets: every size and preprocessing parameter of the model, as frozen dataclasses.

The SDK, the training pipeline and the exporter all read the same :class:`PresetConfig`
(docs/DESIGN.md, principle 7: presets, not forks). A bundle's manifest stores ``PresetConfig.to_dict()``
and the SDK rebuilds the config with :meth:`PresetConfig.from_dict`.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from typing import Any

#: The label set of the shipped models: RAVDESS's eight emotions, in RAVDESS's code order (01..08).
DEFAULT_LABELS: tuple[str, ...] = (
    "neutral",
    "calm",
    "happy",
    "sad",
    "angry",
    "fearful",
    "disgust",
    "surprised",
)


def _positive(name: str, value: float) -> None:
    if value <= 0:
        raise ValueError(f"{name} must be positive, got {value!r}")


@dataclass(frozen=True)
class AudioConfig:
    """Log-mel front end. One model window is ``n_frames`` hops long (``window_samples``)."""

    sample_rate: int = 16000
    n_mels: int = 128
    n_fft: int = 1024
    win_length: int = 400  # 25 ms analysis window, zero-padded to n_fft
    hop_length: int = 188
    n_frames: int = 256
    f_min: float = 20.0
    f_max: float = 8000.0
    mel_scale: str = "slaney"  # "slaney" (librosa's default) or "htk"
    log_floor: float = 1e-6  # log-mel = ln(mel_power + log_floor)
    # Normalisation applied after the log: (log_mel - mean) / std. Fitted on real speech (39
    # RAVDESS / CREMA-D clips with this front end: mean -9.9, std 4.1).
    mean: float = -10.0
    std: float = 4.0
    # Voice activity: a frame is speech when its energy is within vad_range_db of the window's
    # loudest frame and above vad_floor_db (dBFS).
    vad_floor_db: float = -55.0
    vad_range_db: float = 40.0

    def __post_init__(self) -> None:
        for name in ("sample_rate", "n_mels", "n_fft", "win_length", "hop_length", "n_frames", "std"):
            _positive(name, getattr(self, name))
        if self.win_length > self.n_fft:
            raise ValueError("win_length must not exceed n_fft")
        if not 0 <= self.f_min < self.f_max <= self.sample_rate / 2:
            raise ValueError("need 0 <= f_min < f_max <= sample_rate / 2")
        if self.mel_scale not in ("slaney", "htk"):
            raise ValueError(f"mel_scale must be 'slaney' or 'htk', got {self.mel_scale!r}")

    @property
    def window_samples(self) -> int:
        """Samples in one model window: ``hop_length * n_frames``."""
        return self.hop_length * self.n_frames

    @property
    def hop_ms(self) -> float:
        return 1000.0 * self.hop_length / self.sample_rate


@dataclass(frozen=True)
class VisualConfig:
    """Face crops: a square around the detected face, resized to ``crop_size``, normalised."""

    crop_size: int = 224
    margin: float = 0.25  # the square side is the face box's longer side times (1 + margin)
    grayscale: bool = False  # True: the crop is converted to grey and repeated on 3 channels
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    fps: float = 30.0  # video frames per second that reach the model
    min_face_px: int = 24  # faces smaller than this (source pixels) are reported but not used
    min_detection_score: float = 0.5

    def __post_init__(self) -> None:
        _positive("crop_size", self.crop_size)
        _positive("fps", self.fps)
        if self.margin < 0:
            raise ValueError("margin must be >= 0")
        if len(self.mean) != 3 or len(self.std) != 3 or min(self.std) <= 0:
            raise ValueError("mean and std need three values, std positive")


@dataclass(frozen=True)
class ModelConfig:
    """Sizes of the three modules (visual encoder, audio encoder, fusion head)."""

    # Visual encoder: ResNet-18; ``visual_width`` is the first stage's channel count (64 in the paper).
    visual_width: int = 64
    # The 3x3/2 max-pool after the 7x7/2 stem (ResNet-18's, so True in the paper). Without it the four
    # stages see a 2x larger grid: on small crops (64x64) the last stage keeps 4x4 cells, not 2x2.
    visual_stem_pool: bool = True
    # Audio encoder: 2-D CNN, one entry per block (two 3x3 conv + BN + ReLU, then a 3x3/2 max-pool).
    audio_channels: tuple[int, ...] = (32, 64, 128, 128)
    # Per block: does its max-pool also halve time? (frequency is always halved.)
    audio_time_pool: tuple[bool, ...] = (True, True, True, False)
    audio_dim: int = 128
    # Fusion head
    time_steps: int = 60  # the common T of the aligned sequences
    d_model: int = 256
    heads: int = 4
    ranks: tuple[int, int, int] = (8, 32, 32)  # (R_T, R_A, R_V) of the Tucker core
    gru_hidden: int = 256
    dropout: float = 0.5

    def __post_init__(self) -> None:
        if len(self.audio_channels) != len(self.audio_time_pool):
            raise ValueError("audio_channels and audio_time_pool need one entry per block")
        if self.audio_channels[-1] != self.audio_dim:
            raise ValueError("the last audio block's channels are the audio output dimension")
        if self.d_model % self.heads:
            raise ValueError("d_model must be divisible by heads")
        if len(self.ranks) != 3:
            raise ValueError("ranks is (R_T, R_A, R_V)")
        if self.ranks[0] > self.time_steps:
            raise ValueError("R_T cannot exceed time_steps")
        if not 0 <= self.dropout < 1:
            raise ValueError("dropout must be in [0, 1)")

    @property
    def visual_dim(self) -> int:
        """ResNet-18's output: 8x the first stage's width (512 in the paper)."""
        return 8 * self.visual_width


@dataclass(frozen=True)
class PresetConfig:
    name: str
    audio: AudioConfig
    visual: VisualConfig
    model: ModelConfig
    labels: tuple[str, ...] = DEFAULT_LABELS
    hop_ms: int = 1000  # default hop between successive windows of the recognizer

    def __post_init__(self) -> None:
        if len(set(self.labels)) != len(self.labels) or len(self.labels) < 2:
            raise ValueError("labels must be at least two distinct names")

    @property
    def window_ms(self) -> int:
        """The length of one model window, set by the audio front end."""
        return round(1000 * self.audio.window_samples / self.audio.sample_rate)

    @property
    def audio_steps(self) -> int:
        """T_a: time steps the audio encoder returns for one window."""
        steps = self.audio.n_frames
        for pooled in self.model.audio_time_pool:
            if pooled:
                steps = (steps - 1) // 2 + 1  # 3x3 max-pool, stride 2, padding 1
        return steps

    @property
    def video_frames(self) -> int:
        """T_v: video frames of one window at ``visual.fps``."""
        return round(self.window_ms * self.visual.fps / 1000)

    def replace(self, **changes: Any) -> PresetConfig:
        return dataclasses.replace(self, **changes)

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> PresetConfig:
        def build(kind, values):
            names = {f.name: f for f in dataclasses.fields(kind)}
            unknown = set(values) - set(names)
            if unknown:
                raise ValueError(f"unknown {kind.__name__} fields: {sorted(unknown)}")
            return kind(**{k: tuple(v) if isinstance(v, list) else v for k, v in values.items()})

        return cls(
            name=data["name"],
            audio=build(AudioConfig, data["audio"]),
            visual=build(VisualConfig, data["visual"]),
            model=build(ModelConfig, data["model"]),
            labels=tuple(data["labels"]),
            hop_ms=int(data.get("hop_ms", 1000)),
        )


# The paper's sizes (appendix A): 224x224 RGB crops through a full ResNet-18 (512-d), 90 video
# frames (3 s at 30 fps), a 128-mel x 256-frame log-mel window (hop 188 samples = 11.75 ms, so the
# window is 3.008 s), a 256-d latent, 4 heads. The common T of 60 steps (50 ms) is the appendix's
# "latent space 60 x 256" of the audio branch.
PAPER = PresetConfig(
    name="paper",
    audio=AudioConfig(hop_length=188, n_frames=256),
    visual=VisualConfig(crop_size=224, fps=30.0),
    model=ModelConfig(),
)

# The edge preset, sized for a 2-core CPU and for training here on CPU:
# - faces: 64x64 grey crops. The face data we can train on (FER2013) is 48x48 greyscale, so colour
#   and resolution beyond that carry nothing the model could have learned; a width-16 ResNet-18
#   (128-d output) costs ~1/16 of the paper's channels and ~1/12 of its pixels. Its stem keeps
#   the 7x7/2 convolution but drops the max-pool, so the stages run on 32, 16, 8 and 4 cells a
#   side rather than 16 .. 2 (README: what that was measured to cost and gain).
# - video at 10 fps: facial expressions change over hundreds of milliseconds, and 10 face
#   detections + encodings per second leave most of a core free.
# - audio: the same 128 mel bands over the same 3 s, at half the time resolution (hop 375 samples =
#   23.4 ms, 128 frames), which the 2-D CNN pools to 32 steps. Channels (8, 16, 32, 128): the first
#   blocks run at full 128x128 resolution, where 16 channels cost 2.7x the training time of 8 on
#   this CPU (measured: 2.3 s vs 0.85 s per batch of 64), while the 128-d output is kept.
# - fusion: d=64, 30 common steps of 100 ms, Tucker ranks (4, 16, 16), GRU of 64.
EDGE = PresetConfig(
    name="edge",
    audio=AudioConfig(hop_length=375, n_frames=128),
    visual=VisualConfig(
        crop_size=64,
        # FER2013's faces are tight crops; BlazeFace's box plus 10 % frames a detected face about as
        # FER does (with the default 25 % the face is 1.3-1.5x smaller than in training).
        margin=0.1,
        grayscale=True,
        mean=(0.5, 0.5, 0.5),
        std=(0.25, 0.25, 0.25),
        fps=10.0,
    ),
    model=ModelConfig(
        visual_width=16,
        visual_stem_pool=False,
        audio_channels=(8, 16, 32, 128),
        audio_time_pool=(True, True, False, False),
        time_steps=30,
        d_model=64,
        ranks=(4, 16, 16),
        gru_hidden=64,
    ),
)

PRESETS: dict[str, PresetConfig] = {p.name: p for p in (PAPER, EDGE)}


def usable_cpus() -> int:
    """How many CPUs this process may run on (its affinity where the OS tells, else the count)."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):  # not on Linux
        return os.cpu_count() or 1


def half_the_cpus() -> int:
    """Threads for one of the two busy halves of a stream (decoding a file; the graphs): half of
    :func:`usable_cpus`, at least 1."""
    return max(1, usable_cpus() // 2)


def with_visual_width(preset: PresetConfig, width: int) -> PresetConfig:
    """``preset`` with a face encoder ``width`` channels wide in its first stage (the embedding:
    8 times that); the preprocessing is the same, so are the preprocessing caches."""
    return dataclasses.replace(preset, model=dataclasses.replace(preset.model, visual_width=int(width)))


def get_preset(name: str) -> PresetConfig:
    try:
        return PRESETS[name]
    except KeyError:
        raise ValueError(f"unknown preset {name!r}; choose one of: {', '.join(PRESETS)}") from None


__all__ = [
    "DEFAULT_LABELS",
    "AudioConfig",
    "VisualConfig",
    "ModelConfig",
    "PresetConfig",
    "PAPER",
    "EDGE",
    "PRESETS",
    "get_preset",
    "with_visual_width",
]
