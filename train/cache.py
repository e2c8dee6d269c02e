"""The preprocessing cache: each clip decoded, face-tracked and turned into model windows once.

``build_cache(samples, preset, cache_dir, workers=N)`` runs :func:`edge_emotion.frontend.preprocess.
preprocess_clip` (the SDK's own functions) over the samples in ``N`` processes with a progress bar
and writes one ``.npz`` per clip under ``cache_dir/<preset tag>/<dataset>/``. The preset tag is the
preset's name plus a hash of every parameter that changes preprocessing (audio, visual, T, hop), so
two presets never share files and a changed parameter never reads stale ones. A clip is recomputed
when its source file's size or modification time changed.

A clip file holds ``log_mel (W, n_mels, n_frames) float32``, ``speech (W, T) bool``,
``window_start_ms (W,) int64``, ``faces (F, 3, S, S) float16`` (normalised crops; float16 halves the
disk and memory, ~1e-3 relative error on values within a few units), ``face_mask (F,) bool`` and
the scalars of :class:`~edge_emotion.frontend.preprocess.ClipFeatures`.

Face images (FER2013) are cached differently: all images of a sample list go into one ``.npy``
array ``(N, C, S, S) float16`` of :func:`edge_emotion.frontend.face.face_image_to_input` outputs (``C = 1``
for grayscale presets, whose three channels are equal), memory-mapped when read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import multiprocessing
import os
import re
import zipfile
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from edge_emotion.config import PresetConfig
from edge_emotion.eval.datasets import Sample, features_of
from edge_emotion.frontend.preprocess import ClipFeatures

log = logging.getLogger(__name__)

FORMAT_VERSION = 2  # 2: kept frames with their timestamps (frame_ms)


def preset_tag(preset: PresetConfig) -> str:
    """``"edge-1a2b3c4d5e"``: the preset's name and a hash of its preprocessing parameters."""
    relevant = {
        "audio": preset.to_dict()["audio"],
        "visual": preset.to_dict()["visual"],
        "time_steps": preset.model.time_steps,
        "hop_ms": preset.hop_ms,
        "format": FORMAT_VERSION,
    }
    digest = hashlib.sha1(json.dumps(relevant, sort_keys=True).encode()).hexdigest()[:10]
    return f"{preset.name}-{digest}"


#: What found the faces of a cached video clip: the SDK's BlazeFace (``edge_emotion.frontend.blazeface``,
#: the default of ``FaceTracker``). Clips cached with MediaPipe's own task, whose boxes may differ by a
#: pixel, are made again; audio clips and images are not concerned.
FACE_DETECTOR_TAG = "faces:sdk-blazeface"


def _stamp(sample: Sample) -> str:
    parts = []
    for path in (sample.video_path, sample.audio_path, sample.image_path):
        if path is not None:
            st = os.stat(path)
            parts.append(f"{st.st_size}:{st.st_mtime_ns}")
    if sample.video_path is not None:
        parts.append(FACE_DETECTOR_TAG)
    return f"{'|'.join(parts)}|{sample.start_ms}|{sample.end_ms}"


def clip_path(cache_dir: Path, preset: PresetConfig, sample: Sample) -> Path:
    """Where ``sample``'s features live in the cache."""
    local = sample.key.split("/", 1)[-1]
    safe = re.sub(r"[^A-Za-z0-9._-]+", "_", local)[-80:]
    digest = hashlib.sha1(sample.key.encode()).hexdigest()[:8]
    return Path(cache_dir) / preset_tag(preset) / sample.dataset / f"{safe}-{digest}.npz"


def save_clip(path: Path, features: ClipFeatures, stamp: str) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npz")
    np.savez(
        tmp,
        log_mel=features.log_mel.astype(np.float32),
        speech=features.speech.astype(bool),
        window_start_ms=features.window_start_ms.astype(np.int64),
        faces=features.faces.astype(np.float16),
        face_mask=features.face_mask.astype(bool),
        duration_ms=np.int64(features.duration_ms),
        has_audio=np.bool_(features.has_audio),
        has_video=np.bool_(features.has_video),
        still=np.bool_(features.still),
        frame_ms=np.zeros(0, np.float64) if features.frame_ms is None else features.frame_ms.astype(np.float64),
        stamp=np.str_(stamp),
    )
    os.replace(tmp, path)


def load_clip(path: Path) -> ClipFeatures:
    """Read a cached clip (faces back as float32)."""
    with np.load(path) as z:
        return ClipFeatures(
            log_mel=z["log_mel"],
            speech=z["speech"],
            window_start_ms=z["window_start_ms"],
            faces=z["faces"].astype(np.float32),
            face_mask=z["face_mask"],
            duration_ms=int(z["duration_ms"]),
            has_audio=bool(z["has_audio"]),
            has_video=bool(z["has_video"]),
            still=bool(z["still"]),
            frame_ms=z["frame_ms"],
        )


def _is_fresh(path: Path, stamp: str) -> bool:
    if not path.is_file():
        return False
    try:
        with np.load(path) as z:
            return str(z["stamp"]) == stamp
    except Exception:  # a truncated or foreign file is recomputed
        return False


def _work(job: tuple[Sample, dict, str]) -> tuple[str, str | None, str | None]:
    """Worker: ``(sample, preset dict, cache dir)`` -> ``(key, path or None, error or None)``."""
    sample, preset_dict, cache_dir = job
    preset = PresetConfig.from_dict(preset_dict)
    path = clip_path(Path(cache_dir), preset, sample)
    try:
        stamp = _stamp(sample)
        if not _is_fresh(path, stamp):
            save_clip(path, features_of(sample, preset), stamp)
        return sample.key, str(path), None
    except Exception as exc:  # one broken clip must not stop a corpus; it is reported
        return sample.key, None, f"{type(exc).__name__}: {exc}"


@dataclass(frozen=True)
class CacheResult:
    """``paths``: sample key -> cached clip file; ``failed``: sample key -> error message."""

    paths: dict[str, Path]
    failed: dict[str, str] = field(default_factory=dict)


def build_cache(
    samples: Sequence[Sample],
    preset: PresetConfig,
    cache_dir: str | Path,
    workers: int = 1,
    progress: bool = True,
) -> CacheResult:
    """Preprocess every clip sample not yet cached (``workers`` processes; 1 = in this process).

    Clips that fail to decode are logged and listed in ``failed``, not raised.
    """
    clips = [s for s in samples if s.image_path is None]
    jobs = [(s, preset.to_dict(), str(cache_dir)) for s in clips]
    results: list[tuple[str, str | None, str | None]] = []
    bar = None
    if progress:
        from tqdm.auto import tqdm

        bar = tqdm(total=len(jobs), desc=f"preprocess {preset.name}", unit="clip", leave=False)
    if workers <= 1 or len(jobs) <= 1:
        for job in jobs:
            results.append(_work(job))
            if bar:
                bar.update()
    else:
        with multiprocessing.get_context("spawn").Pool(workers) as pool:
            for result in pool.imap_unordered(_work, jobs, chunksize=4):
                results.append(result)
                if bar:
                    bar.update()
    if bar:
        bar.close()
    paths = {k: Path(p) for k, p, e in results if p is not None}
    failed = {k: e for k, p, e in results if e is not None}
    for key, error in sorted(failed.items())[:10]:
        log.warning("could not preprocess %s: %s", key, error)
    if failed:
        log.warning("%d of %d clips could not be preprocessed", len(failed), len(jobs))
    return CacheResult(paths, failed)


def build_image_cache(
    samples: Sequence[Sample], preset: PresetConfig, cache_dir: str | Path, progress: bool = True
) -> np.ndarray:
    """Face-image samples -> ``(N, C, S, S) float16`` model inputs in sample order (memory-mapped
    from ``cache_dir``; computed on the first call)."""
    from edge_emotion.eval.fer2013 import read_image
    from edge_emotion.frontend.face import face_image_to_input

    images = [s for s in samples if s.image_path is not None]
    digest = hashlib.sha1("\n".join(s.key for s in images).encode()).hexdigest()[:12]
    path = Path(cache_dir) / preset_tag(preset) / "images" / f"{digest}.npy"
    if path.is_file():
        return np.load(path, mmap_mode="r")
    channels = 1 if preset.visual.grayscale else 3
    size = preset.visual.crop_size
    out = np.zeros((len(images), channels, size, size), np.float16)
    archives: dict[Path, zipfile.ZipFile] = {}
    iterator = enumerate(images)
    if progress:
        from tqdm.auto import tqdm

        iterator = tqdm(iterator, total=len(images), desc="face images", unit="img", leave=False)
    try:
        for i, sample in iterator:
            archive = None
            if sample.member is not None:
                archive = archives.get(sample.image_path)
                if archive is None:
                    archive = archives[sample.image_path] = zipfile.ZipFile(sample.image_path)
            face = face_image_to_input(read_image(sample, archive), preset.visual)
            out[i] = face[:channels]
    finally:
        for archive in archives.values():
            archive.close()
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp.npy")
    np.save(tmp, out)
    os.replace(tmp, path)
    return np.load(path, mmap_mode="r")


__all__ = [
    "preset_tag",
    "clip_path",
    "save_clip",
    "load_clip",
    "build_cache",
    "build_image_cache",
    "CacheResult",
]
