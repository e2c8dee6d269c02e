"""Calibration and evaluation data for the exporters: real preprocessed windows from ``--calib DIR``.

``DIR`` is searched recursively for

- speech: audio files (``.wav``, ``.flac``, ``.mp3``, ``.ogg``) -> one centred model window per
  file, through the SDK's own front end (:func:`edge_emotion.sources.read_audio`,
  :func:`edge_emotion.frontend.features.window_log_mel` and ``window_speech_steps``);
- faces: face crops, loose (``.jpg``, ``.jpeg``, ``.png``, ``.bmp``) or inside ``.zip`` archives
  (FER2013's ``train.zip``) -> :func:`edge_emotion.frontend.face.face_image_to_input`.

Files are sampled evenly over the sorted list (``max_audio_windows``, ``max_faces``), so a large
corpus gives a deterministic, class-spread subset. Labels come from the file names when the corpus
names them (RAVDESS ``03-01-EE-…``, CREMA-D ``1001_DFA_ANG_XX``, FER2013 ``<emotion>/…``) and are
only used for the accuracy of an eval set. The fusion head's inputs are not read from disk: they
come from running the FP32 encoders on these windows (:func:`fusion_inputs`).
"""

from __future__ import annotations

import logging
import re
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

import numpy as np

from edge_emotion.config import PresetConfig
from edge_emotion.errors import InputError
from edge_emotion.labels import LabelMapper

logger = logging.getLogger(__name__)

AUDIO_SUFFIXES = (".wav", ".flac", ".mp3", ".ogg")
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp")
_RAVDESS = re.compile(r"^\d\d-\d\d-(\d\d)-\d\d-\d\d-\d\d-\d\d$")
_CREMA_D = re.compile(r"^\d{4}_[A-Z]{3}_([A-Z]{3})_[A-Z]{2}$")
_RAVDESS_EMOTIONS = ("neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised")


@dataclass(frozen=True)
class CalibrationSet:
    """Preprocessed model inputs from real data.

    ``log_mel`` ``(N_a, 1, n_mels, n_frames) float32`` normalised windows; ``speech``
    ``(N_a, T) float32`` 1/0 voice activity per common step (the SDK's audio mask);
    ``faces`` ``(N_v, 3, S, S) float32`` normalised crops; ``audio_labels`` ``(N_a,) int64`` and
    ``face_labels`` ``(N_v,) int64`` index the preset's labels, -1 where unknown; ``sources`` the
    files (``archive.zip:member`` inside zips) in the order of the arrays, audio first.
    """

    log_mel: np.ndarray
    speech: np.ndarray
    faces: np.ndarray
    audio_labels: np.ndarray
    face_labels: np.ndarray
    sources: tuple[str, ...]

    def __post_init__(self) -> None:
        if self.log_mel.ndim != 4 or self.faces.ndim != 4:
            raise ValueError("log_mel and faces must be (N, C, H, W)")
        if len(self.speech) != len(self.log_mel) or len(self.audio_labels) != len(self.log_mel):
            raise ValueError("speech and audio_labels need one entry per log-mel window")
        if len(self.face_labels) != len(self.faces):
            raise ValueError("face_labels needs one entry per face")

    @property
    def n_audio(self) -> int:
        return int(self.log_mel.shape[0])

    @property
    def n_faces(self) -> int:
        return int(self.faces.shape[0])

    def summary(self) -> dict[str, int]:
        """Counts for the manifest: windows, faces, and how many of each carry a label."""
        return {
            "audio_windows": self.n_audio,
            "faces": self.n_faces,
            "labelled_audio_windows": int((self.audio_labels >= 0).sum()),
            "labelled_faces": int((self.face_labels >= 0).sum()),
        }


def label_name(path: str) -> str | None:
    """The emotion a corpus file name states: RAVDESS and CREMA-D stems, else the enclosing folder
    (FER2013's ``<emotion>/x.jpg``); None when the name says nothing."""
    pure = PurePosixPath(path.replace("\\", "/"))
    stem = pure.stem
    if m := _RAVDESS.match(stem):
        code = int(m.group(1))
        return _RAVDESS_EMOTIONS[code - 1] if 1 <= code <= len(_RAVDESS_EMOTIONS) else None
    if m := _CREMA_D.match(stem):
        return m.group(1)
    return pure.parent.name or None


def _spread(items: list, limit: int) -> list:
    """At most ``limit`` items taken evenly over ``items`` (all of them when there are fewer)."""
    if limit <= 0 or not items:
        return []
    if len(items) <= limit:
        return list(items)
    picks = np.linspace(0, len(items) - 1, limit).round().astype(int)
    return [items[i] for i in picks]


def _image_members(root: Path) -> list[tuple[Path, str | None]]:
    """Every face image under ``root``: ``(file, None)`` or ``(archive, member)``, sorted."""
    found: list[tuple[Path, str | None]] = []
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        suffix = path.suffix.lower()
        if suffix in IMAGE_SUFFIXES:
            found.append((path, None))
        elif suffix == ".zip":
            try:
                with zipfile.ZipFile(path) as archive:
                    names = sorted(n for n in archive.namelist() if PurePosixPath(n).suffix.lower() in IMAGE_SUFFIXES)
            except zipfile.BadZipFile as exc:
                raise InputError(f"calibration data: {path} is not a readable zip: {exc}") from None
            found.extend((path, name) for name in names)
    return found


def _decode_image(path: Path, member: str | None) -> np.ndarray:
    """``(H, W) uint8`` grey or ``(H, W, 3) uint8`` RGB."""
    from edge_emotion.frontend.face import decode_image

    if member is None:
        data = path.read_bytes()
    else:
        with zipfile.ZipFile(path) as archive:
            data = archive.read(member)
    image = decode_image(data)
    if image is None:
        raise InputError(f"calibration data: cannot decode the image {path}{':' + member if member else ''}")
    return image


def _centred_window(pcm: np.ndarray, window_samples: int) -> np.ndarray:
    """The middle ``window_samples`` of ``pcm`` (all of it, padded later, when it is shorter)."""
    if pcm.shape[0] <= window_samples:
        return pcm
    start = (pcm.shape[0] - window_samples) // 2
    return pcm[start : start + window_samples]


def _audio_windows(files: list[Path], preset: PresetConfig) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    from edge_emotion.frontend.features import window_log_mel, window_speech_steps
    from edge_emotion.sources import read_audio

    for path in files:
        pcm, _ = read_audio(path, preset.audio.sample_rate)
        window = _centred_window(pcm, preset.audio.window_samples)
        yield window_log_mel(window, preset.audio), window_speech_steps(window, preset)


def load_calibration(
    directory: str | Path,
    preset: PresetConfig,
    max_audio_windows: int = 128,
    max_faces: int = 128,
) -> CalibrationSet:
    """Read real speech windows and face crops under ``directory`` (see the module docstring).

    Raises :class:`InputError` when ``directory`` is missing or holds neither audio nor images.
    """
    from edge_emotion.frontend.face import face_image_to_input

    root = Path(directory)
    if not root.is_dir():
        raise InputError(f"calibration data: {root} is not a directory")
    audio_files = _spread(
        sorted(p for p in root.rglob("*") if p.suffix.lower() in AUDIO_SUFFIXES and p.is_file()), max_audio_windows
    )
    images = _spread(_image_members(root), max_faces)
    if not audio_files and not images:
        raise InputError(
            f"calibration data: {root} holds no audio ({', '.join(AUDIO_SUFFIXES)}) and no face images "
            f"({', '.join(IMAGE_SUFFIXES)}, or zips of them)"
        )
    mapper = LabelMapper(preset.labels)
    s, t = preset.visual.crop_size, preset.model.time_steps
    log_mels, speech = [], []
    for log_mel, steps in _audio_windows(audio_files, preset):
        log_mels.append(log_mel[None])
        speech.append(steps.astype(np.float32))
    faces = [face_image_to_input(_decode_image(path, member), preset.visual) for path, member in images]
    names = [str(p) for p in audio_files] + [f"{p}:{m}" if m else str(p) for p, m in images]

    def labels(sources: list[str]) -> np.ndarray:
        found = [label_name(m if ":" not in m else m.rsplit(":", 1)[1]) for m in sources]
        return np.array([-1 if n is None or mapper.index(n) is None else mapper.index(n) for n in found], np.int64)

    calib = CalibrationSet(
        log_mel=np.stack(log_mels).astype(np.float32)
        if log_mels
        else np.zeros((0, 1, preset.audio.n_mels, preset.audio.n_frames), np.float32),
        speech=np.stack(speech) if speech else np.zeros((0, t), np.float32),
        faces=np.stack(faces).astype(np.float32) if faces else np.zeros((0, 3, s, s), np.float32),
        audio_labels=labels(names[: len(audio_files)]),
        face_labels=labels(names[len(audio_files) :]),
        sources=tuple(names),
    )
    logger.info("calibration data from %s: %s", root, calib.summary())
    return calib


@dataclass(frozen=True)
class FusionWindows:
    """Fusion-head inputs built from real windows: ``inputs`` ``{"audio": (N, T, D_a), "visual":
    (N, T, D_v), "audio_mask": (N, T), "visual_mask": (N, T)}`` float32, and ``pattern`` ``(N,)``
    naming which modalities each window carries (``"audio+video"``, ``"audio"``, ``"video"``)."""

    inputs: dict[str, np.ndarray]
    pattern: tuple[str, ...]


def fusion_inputs(
    preset: PresetConfig, audio_steps: np.ndarray, speech: np.ndarray, embeddings: np.ndarray, seed: int = 0
) -> FusionWindows:
    """Pair audio windows with faces and place both on the common steps, as the SDK does.

    ``audio_steps`` ``(N_a, T_a, D_a)`` and ``speech`` ``(N_a, T)`` from the audio windows,
    ``embeddings`` ``(N_v, D_v)`` from the face crops (any of the two may be empty). Window ``i``
    shows face ``i mod N_v`` on every frame (a still face, with a random quarter of the frames
    undetected) and cycles through the modality patterns both / audio only / video only, so that
    the fusion head is calibrated and checked on the masks it meets in use. Alignment is the
    SDK's own (:func:`edge_emotion.frontend.align.align_encoded`).
    """
    from edge_emotion.frontend.align import align_encoded

    n_a, n_v = len(audio_steps), len(embeddings)
    n = max(n_a, n_v)
    if n == 0:
        raise InputError("calibration data holds neither audio windows nor faces")
    rng = np.random.default_rng(seed)
    t, t_a, t_v = preset.model.time_steps, preset.audio_steps, preset.video_frames
    d_a, d_v = preset.model.audio_dim, preset.model.visual_dim
    audio = np.zeros((n, t_a, d_a), np.float32)
    audio_mask = np.zeros((n, t), np.float32)
    frames = np.zeros((n, t_v, d_v), np.float32)
    face_mask = np.zeros((n, t_v), np.float32)
    patterns = []
    for i in range(n):
        pattern = ("audio+video", "audio", "video")[i % 3]
        if n_a == 0:
            pattern = "video"
        elif n_v == 0:
            pattern = "audio"
        if pattern != "video":
            audio[i] = audio_steps[i % n_a]
            audio_mask[i] = speech[i % n_a]
            if not audio_mask[i].any():  # a silent window still counts as audio for calibration
                audio_mask[i] = 1.0
        if pattern != "audio":
            frames[i] = embeddings[i % n_v]
            face_mask[i] = (rng.random(t_v) > 0.25).astype(np.float32)
            face_mask[i, 0] = 1.0
        patterns.append(pattern)
    a, v, a_mask, v_mask = align_encoded(preset, audio, frames, face_mask, audio_mask)
    return FusionWindows(
        inputs={
            "audio": np.ascontiguousarray(a, dtype=np.float32),
            "visual": np.ascontiguousarray(v, dtype=np.float32),
            "audio_mask": np.ascontiguousarray(a_mask, dtype=np.float32),
            "visual_mask": np.ascontiguousarray(v_mask, dtype=np.float32),
        },
        pattern=tuple(patterns),
    )


def batches(inputs: dict[str, np.ndarray], batch_size: int) -> Iterator[dict[str, np.ndarray]]:
    """Split named arrays (one batch axis) into consecutive batches of at most ``batch_size``."""
    n = len(next(iter(inputs.values())))
    for start in range(0, n, batch_size):
        yield {k: v[start : start + batch_size] for k, v in inputs.items()}


__all__ = [
    "AUDIO_SUFFIXES",
    "IMAGE_SUFFIXES",
    "CalibrationSet",
    "FusionWindows",
    "label_name",
    "load_calibration",
    "fusion_inputs",
    "batches",
]
