"""The measurements of ``edge-emotion bench``, run in a fresh worker process per row so that rows do
not share a runtime's thread pools, caches or memory (peak RSS is the worker's own).

    python -m edge_emotion.bench.measure SPEC.json RESULT.json

``SPEC.json`` is a :class:`WorkerSpec` as a dict; ``RESULT.json`` gets ``{"stages": {stage:
{"p50_ms", "p95_ms", "repeats"}}, "rtf", "clip_duration_ms", "peak_rss_mb", "device",
"inference_precision", "metric", "metric_info", "outputs", "outputs_error", "error"}`` (the keys measured;
``outputs``: the row's face-only logits on the clip's faces, :func:`face_only_logits`, which the
runner compares across rows). A failure is recorded in ``error`` with what was measured before it;
the worker exits 0 whenever it wrote its result.

Two modes: ``front_end`` times the runtime-independent stages (face detection + crop per frame,
log-mel per window) once per bench run; ``row`` loads one format on one runtime and times its
three graphs at batch 1 with real inputs from the clip, then the end-to-end real-time factor
through :meth:`edge_emotion.recognizer.Recognizer.analyze`, then (``--data``) the accuracy.
"""

from __future__ import annotations

import itertools
import json
import logging
import sys
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from ..config import PresetConfig
from .machine import AS_STORED
from .rows import StageTiming

log = logging.getLogger(__name__)

#: Frames decoded from the clip for the face stage (cycled through for more repetitions).
MAX_FRAMES = 150


@dataclass(frozen=True)
class WorkerSpec:
    """One worker's job. ``mode``: ``front_end`` or ``row``; ``format`` / ``runtime`` for a row;
    ``threads``: the runtime's intra-op threads; ``warmup`` untimed calls then ``repeats`` timed
    calls per stage; ``rtf_runs`` timed passes over ``clip`` (after one untimed pass when
    ``warmup``); ``data`` / ``dataset`` / ``data_limit``: the accuracy set (None: no metric)."""

    mode: str
    bundle: str
    clip: str
    threads: int
    warmup: int
    repeats: int
    rtf_runs: int
    format: str | None = None
    runtime: str | None = None
    data: str | None = None
    dataset: str | None = None
    data_limit: int | None = None

    def __post_init__(self) -> None:
        if self.mode not in ("front_end", "row"):
            raise ValueError(f"mode must be front_end or row, got {self.mode!r}")
        if self.mode == "row" and (self.format is None or self.runtime is None):
            raise ValueError("a row needs a format and a runtime")
        if self.warmup < 0 or self.repeats < 1 or self.rtf_runs < 1 or self.threads < 1:
            raise ValueError("warmup >= 0, repeats >= 1, rtf_runs >= 1 and threads >= 1")


def time_calls(fn: Callable[[], Any], warmup: int, repeats: int) -> StageTiming:
    """``warmup`` untimed calls of ``fn``, then ``repeats`` timed ones."""
    for _ in range(warmup):
        fn()
    samples = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        samples.append(time.perf_counter() - start)
    return StageTiming.from_seconds(samples)


def peak_rss_mb() -> float | None:
    """Peak resident set size of this process so far, in MB (10^6 bytes).

    On Linux this is ``VmHWM`` of ``/proc/self/status``, the high-water mark of this program's
    own address space: ``ru_maxrss`` would not do, as Linux carries it over from the parent
    through fork and exec, so every worker of a large parent would report the parent's size."""
    status = Path("/proc/self/status")
    if status.is_file():
        for line in status.read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) * 1024 / 1e6, 1)  # the value is in kB (KiB)
    try:
        import resource
    except ImportError:  # Windows
        import psutil

        peak = getattr(psutil.Process().memory_info(), "peak_wset", None)
        return round(peak / 1e6, 1) if peak else None
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    scale = 1 if sys.platform == "darwin" else 1024  # macOS reports bytes, Linux KiB
    return round(peak * scale / 1e6, 1)


@dataclass(frozen=True)
class ClipInputs:
    """Real inputs from the clip: ``frames`` RGB ``(H, W, 3) uint8`` (at most :data:`MAX_FRAMES`),
    ``pcm`` ``(S,) float32`` mono at the model's rate, ``duration_ms`` of the container."""

    frames: tuple[np.ndarray, ...]
    pcm: np.ndarray
    duration_ms: float


def load_clip(path: str | Path, preset: PresetConfig) -> ClipInputs:
    from ..sources import open_media, read_audio

    media = open_media(path)
    frames = tuple(f.image for f in itertools.islice(media.video, MAX_FRAMES)) if media.video else ()
    pcm = read_audio(path, preset.audio.sample_rate)[0] if media.audio else np.zeros(0, np.float32)
    duration_ms = float(media.duration_ms or 0) or 1000.0 * pcm.size / preset.audio.sample_rate
    return ClipInputs(frames, pcm, duration_ms)


def face_input(clip: ClipInputs, preset: PresetConfig) -> np.ndarray:
    """``(1, 3, S, S) float32``: the first face found in the clip's frames, cropped as the SDK
    crops it; the central square of the first frame when no face is found; zeros without video."""
    from ..frontend.face import FaceTracker, crop_face

    s = preset.visual.crop_size
    if not clip.frames:
        return np.zeros((1, 3, s, s), np.float32)
    with FaceTracker(preset.visual, running_mode="image") as tracker:
        for frame in clip.frames[:30]:
            observation = tracker.detect(frame, 0)
            if observation.usable:
                return crop_face(frame, observation.bbox, preset.visual)[None].astype(np.float32)
    h, w = clip.frames[0].shape[:2]
    side = min(h, w)
    return crop_face(clip.frames[0], ((w - side) // 2, (h - side) // 2, side, side), preset.visual)[None]


def audio_window(clip: ClipInputs, preset: PresetConfig) -> np.ndarray:
    """``(window_samples,) float32``: the clip's first window of audio (zero-padded)."""
    from ..frontend.features import fit_window

    return fit_window(clip.pcm, preset.audio)


def measure_front_end(spec: WorkerSpec, preset: PresetConfig, result: dict[str, Any]) -> None:
    """Face detection + crop per frame, and one window's log-mel; into ``result["stages"]``."""
    from ..frontend.face import FaceTracker, crop_face
    from ..frontend.features import window_log_mel

    clip = load_clip(spec.clip, preset)
    if clip.frames:
        period_ms = max(1, round(1000 / preset.visual.fps))
        counter = itertools.count()
        with FaceTracker(preset.visual, running_mode="video") as tracker:

            def face_step() -> None:
                i = next(counter)
                frame = clip.frames[i % len(clip.frames)]
                observation = tracker.detect(frame, i * period_ms)
                if observation.usable:
                    crop_face(frame, observation.bbox, preset.visual)

            result["stages"]["face"] = asdict(time_calls(face_step, spec.warmup, spec.repeats))
    window = audio_window(clip, preset)
    result["stages"]["log_mel"] = asdict(
        time_calls(lambda: window_log_mel(window, preset.audio), spec.warmup, spec.repeats)
    )


#: Faces of the clip whose face-only logits a row reports (every third frame with a usable face).
MAX_PARITY_FACES = 40


def clip_faces(clip: ClipInputs, preset: PresetConfig) -> np.ndarray:
    """``(N, 3, S, S) float32``: the usable faces of every third frame of the clip (at most
    :data:`MAX_PARITY_FACES`), cropped as the SDK crops them. The same frames, detector and crops in
    every row of a bench run, so rows differ only by what their graphs compute."""
    from ..frontend.face import FaceTracker, crop_face

    crops = []
    with FaceTracker(preset.visual, running_mode="image") as tracker:
        for frame in clip.frames[::3]:
            observation = tracker.detect(frame, 0)
            if observation.usable:
                crops.append(crop_face(frame, observation.bbox, preset.visual))
            if len(crops) == MAX_PARITY_FACES:
                break
    s = preset.visual.crop_size
    return np.stack(crops).astype(np.float32) if crops else np.zeros((0, 3, s, s), np.float32)


def one_face_window(preset: PresetConfig, embedding: np.ndarray, audio_seq: np.ndarray | None = None) -> tuple:
    """The fusion head's inputs for one window whose every video step shows the face of
    ``embedding`` ``(1, D_v)``, with the audio ``audio_seq`` ``(1, T_a, D_a)`` on every step or,
    when None, masked (a face-only window)."""
    from ..frontend.align import align_encoded

    heard = audio_seq is not None
    if not heard:
        audio_seq = np.zeros((1, preset.audio_steps, preset.model.audio_dim), np.float32)
    return align_encoded(
        preset,
        audio_seq,
        np.repeat(embedding[:, None], preset.video_frames, axis=1),
        np.ones((1, preset.video_frames), np.float32),
        np.full((1, preset.model.time_steps), 1.0 if heard else 0.0, np.float32),
    )


def face_only_logits(model, faces: np.ndarray, preset: PresetConfig) -> np.ndarray:
    """``(N, C)``: each face alone through the visual encoder and the fusion head (its embedding on
    every video step, the audio masked), as a face-only window is computed."""
    if not len(faces):
        return np.zeros((0, len(preset.labels)), np.float32)
    # one face a call, as a stream encodes it (and within any engine's batch bound)
    rows = [model.fuse(*one_face_window(preset, model.encode_faces(face[None])))[0] for face in faces]
    return np.stack(rows).astype(np.float32)


def _spread(items: list, limit: int | None) -> list:
    if limit is None or limit <= 0 or len(items) <= limit:
        return list(items)
    return [items[i] for i in np.linspace(0, len(items) - 1, limit).round().astype(int)]


def measure_metric(model, spec: WorkerSpec) -> tuple[float | None, dict[str, Any]]:
    """Weighted accuracy of ``model`` on ``spec.data`` through ``edge-emotion eval``'s own loop
    (:func:`edge_emotion.eval.evaluate.evaluate`: numpy only, no torch)."""
    from ..eval.datasets import get_dataset
    from ..eval.evaluate import evaluate

    index = get_dataset(spec.dataset, spec.data)
    samples = _spread(list(index.samples), spec.data_limit)
    result = evaluate(model, index, samples)
    info = {
        "name": "weighted_accuracy",
        "dataset": spec.dataset,
        "n": result.n,
        "weighted_accuracy": result.weighted_accuracy if result.n else None,
        "unweighted_accuracy": result.unweighted_accuracy if result.n else None,
        "n_failed": len(result.failed),
        "n_unmapped": int(sum(result.unmapped.values())),
        "clip_prediction": result.clip_prediction,
        "evaluated_by": "edge_emotion.eval.evaluate.evaluate (as edge-emotion eval)",
    }
    return (float(result.weighted_accuracy) if result.n else None), info


def _analyze_s(recognizer, clip_path: str) -> float:
    start = time.perf_counter()
    for _ in recognizer.analyze(clip_path):
        pass
    return time.perf_counter() - start


def measure_row(spec: WorkerSpec, result: dict[str, Any]) -> None:
    """Load the format on the runtime and measure it; fills ``result`` as it goes."""
    from ..model.bundle import Bundle
    from ..model.engine import BundleModel
    from ..recognizer import Recognizer

    bundle = Bundle.load(spec.bundle)
    preset = bundle.preset
    result["phase"] = "load"
    model = BundleModel.from_bundle(bundle, backend=spec.runtime, format=spec.format, threads=spec.threads)
    result["device"] = model.device
    result["inference_precision"] = model.inference_precision or AS_STORED
    result["phase"] = "inputs"
    clip = load_clip(spec.clip, preset)
    faces = face_input(clip, preset)
    from ..frontend.features import window_log_mel

    log_mel = window_log_mel(audio_window(clip, preset), preset.audio)[None, None]
    result["phase"] = "visual encoder"
    stages = result["stages"]
    stages["visual_encoder"] = asdict(time_calls(lambda: model.encode_faces(faces), spec.warmup, spec.repeats))
    result["phase"] = "audio encoder"
    stages["audio_encoder"] = asdict(time_calls(lambda: model.encode_audio(log_mel), spec.warmup, spec.repeats))
    result["phase"] = "fusion head"
    fused = one_face_window(preset, model.encode_faces(faces), model.encode_audio(log_mel))
    stages["fusion"] = asdict(time_calls(lambda: model.fuse(*fused), spec.warmup, spec.repeats))
    result["phase"] = "end to end (Recognizer.analyze)"
    recognizer = Recognizer(model)
    if spec.warmup:
        _analyze_s(recognizer, spec.clip)
    seconds = [_analyze_s(recognizer, spec.clip) for _ in range(spec.rtf_runs)]
    result["clip_duration_ms"] = clip.duration_ms
    result["rtf"] = round(float(np.median(seconds)) * 1000.0 / clip.duration_ms, 5)
    result["peak_rss_mb"] = peak_rss_mb()  # before the accuracy run, which holds whole clips
    try:  # the row's own measurements stand whatever happens here
        result["outputs"] = {"face_logits": face_only_logits(model, clip_faces(clip, preset), preset).tolist()}
    except Exception as exc:
        result["outputs_error"] = " ".join(str(exc).split()) or type(exc).__name__
        log.debug("parity outputs failed", exc_info=True)
    if spec.data is not None:
        result["phase"] = "accuracy"
        result["metric"], result["metric_info"] = measure_metric(model, spec)
    del result["phase"]


def run(spec: WorkerSpec) -> dict[str, Any]:
    """Measure ``spec``; errors are recorded in ``error``, prefixed with the phase they hit."""
    result: dict[str, Any] = {"stages": {}}
    try:
        if spec.mode == "front_end":
            from ..model.bundle import Bundle

            measure_front_end(spec, Bundle.load(spec.bundle, verify=False).preset, result)
        else:
            measure_row(spec, result)
    except Exception as exc:  # the row reports it; the bench goes on with the next row
        phase = result.pop("phase", None)
        message = " ".join(str(exc).split()) or type(exc).__name__
        result["error"] = f"{phase}: {message}" if phase else message
        log.debug("worker failed", exc_info=True)
    return result


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if len(args) != 2:
        sys.stderr.write("usage: python -m edge_emotion.bench.measure SPEC.json RESULT.json\n")
        return 2
    logging.basicConfig(level=logging.WARNING, format="edge-emotion bench worker: %(levelname)s: %(message)s")
    spec = WorkerSpec(**json.loads(Path(args[0]).read_text(encoding="utf-8")))
    result = run(spec)
    Path(args[1]).write_text(json.dumps(result), encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
