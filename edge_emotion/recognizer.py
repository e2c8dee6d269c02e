"""The Python API for kiosk and robot apps.

    from edge_emotion import Recognizer

    rec = Recognizer.from_bundle()                      # the default model, best runtime
    for result in rec.analyze("clip.mp4"):              # a lazy iterator of EmotionResult
        print(result.label, result.scores)

    stream = rec.create_stream(hop_ms=500)              # push frames and PCM yourself
    stream.push_video(frame_rgb, timestamp_ms)
    stream.push_audio(pcm, sample_rate, timestamp_ms)
    for result in stream.poll(): ...

    with rec.live(camera=0, mic="default", on_result=print):   # camera + microphone, worker thread
        time.sleep(60)

    rec.close()                                         # or: with Recognizer.from_bundle() as rec: ...

One recognizer may serve several streams on several threads at once; each stream keeps its own state.
"""

from __future__ import annotations

import dataclasses
import logging
import queue
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from .config import half_the_cpus, usable_cpus
from .errors import BundleError, InputError
from .frontend.align import FrameSubsampler
from .frontend.face import DEFAULT_DETECT_EVERY, DEFAULT_DETECTOR
from .model.bundle import Bundle
from .results import EmotionResult
from .stream import EmotionStream, FusionModel, StreamConfig

if TYPE_CHECKING:
    from .live import LiveSession

log = logging.getLogger(__name__)


def default_bundle() -> Path:
    """The bundle shipped in the package; :class:`BundleError` when this install carries none."""
    from .info import default_bundle_path

    path = default_bundle_path()
    if path is None:
        raise BundleError("no default model is shipped in this install; pass a bundle directory (--model)")
    return path


@dataclass(frozen=True)
class RecognizerOptions:
    """The defaults of the streams a :class:`Recognizer` creates.

    ``hop_ms``: distance between successive windows' starts (None: the model's); ``window_ms``: the
    window length, at most the model's (None: the model's); ``smoothing`` in ``[0, 1)``: the weight
    of the previous scores in an exponential moving average (0: none); ``face_select``: which face
    a stream follows, ``"largest"`` or ``"stable"`` (see :class:`~edge_emotion.frontend.face.FaceTracker`);
    ``max_faces``: how many people a stream follows at once, each with its own results (1: one
    person, as the results have always been; see :mod:`edge_emotion.stream`). ``detect_every``:
    the face detector runs on one of the model's frames in N while it finds faces, and the faces
    it found are followed on the frames between (see :class:`~edge_emotion.frontend.face.FaceTracker`;
    1, the default: every frame, as training preprocessed its clips; 3 detects every 300 ms at the
    edge preset's 10 fps, for files processed faster at the cost of some changed labels, which
    BENCHMARKS.md measures). ``face_detector``: what runs the face detector, one of
    :data:`~edge_emotion.frontend.face.DETECTORS` (``"auto"``: the SDK's own BlazeFace on OpenVINO
    when installed, else ONNX Runtime; ``"mediapipe"``: MediaPipe's ``FaceDetector`` task, the same
    network at about 1.6 times the CPU, whose boxes agree within a pixel but for rare outliers).
    ``file_decoder``: where :meth:`Recognizer.analyze` decodes a file, one of :data:`FILE_DECODERS`:
    ``"process"``, a child process started with the recognizer (its start-up overlaps loading the
    model) and kept for every file; ``"thread"``, a reader thread of this process; ``"auto"``, the
    default: a process started at the first file when this process may use at least two CPUs on a
    POSIX system, else a thread (see :mod:`edge_emotion.sources.decoder`). The results are the same.
    """

    hop_ms: int | None = None
    window_ms: int | None = None
    smoothing: float = 0.0
    face_select: str = "largest"
    max_faces: int = 1
    detect_every: int = DEFAULT_DETECT_EVERY
    face_detector: str = DEFAULT_DETECTOR
    file_decoder: str = "auto"

    def __post_init__(self) -> None:
        from .frontend.face import DETECTORS, SELECTIONS, check_detect_every

        for name in ("hop_ms", "window_ms"):
            value = getattr(self, name)
            if value is not None and (isinstance(value, bool) or not isinstance(value, int) or value <= 0):
                raise InputError(f"{name} must be a positive whole number of ms, got {value!r}")
        if isinstance(self.smoothing, bool) or not isinstance(self.smoothing, (int, float)):
            raise InputError(f"smoothing must be a number in [0, 1), got {self.smoothing!r}")
        if not 0.0 <= float(self.smoothing) < 1.0:
            raise InputError(f"smoothing must be in [0, 1), got {self.smoothing}")
        if self.face_select not in SELECTIONS:
            raise InputError(f"face_select must be one of {', '.join(SELECTIONS)}, got {self.face_select!r}")
        if isinstance(self.max_faces, bool) or not isinstance(self.max_faces, int) or self.max_faces < 1:
            raise InputError(f"max_faces must be a whole number of at least 1, got {self.max_faces!r}")
        check_detect_every(self.detect_every)
        if self.face_detector not in DETECTORS:
            raise InputError(f"face_detector must be one of {', '.join(DETECTORS)}, got {self.face_detector!r}")
        if self.file_decoder not in FILE_DECODERS:
            raise InputError(f"file_decoder must be one of {', '.join(FILE_DECODERS)}, got {self.file_decoder!r}")


class Recognizer:
    """A loaded model plus the defaults (:class:`RecognizerOptions`) of the streams it creates.

    ``options`` gives the defaults; the keyword arguments override single fields of it. Close it
    (or use it as a context manager) to release the runtime's sessions; one recognizer may serve
    several streams on several threads.
    """

    def __init__(
        self,
        model: FusionModel,
        options: RecognizerOptions | None = None,
        *,
        hop_ms: int | None = None,
        window_ms: int | None = None,
        smoothing: float | None = None,
        face_select: str | None = None,
        max_faces: int | None = None,
        detect_every: int | None = None,
        face_detector: str | None = None,
        file_decoder: str | None = None,
    ):
        overrides = {
            k: v
            for k, v in (
                ("hop_ms", hop_ms),
                ("window_ms", window_ms),
                ("smoothing", smoothing),
                ("face_select", face_select),
                ("max_faces", max_faces),
                ("detect_every", detect_every),
                ("face_detector", face_detector),
                ("file_decoder", file_decoder),
            )
            if v is not None
        }
        options = dataclasses.replace(options or RecognizerOptions(), **overrides)
        self.model = model
        self.preset = model.preset
        self.labels = tuple(model.labels)
        self.options = options
        self._closed = False
        self._decoder = None  # the DecoderProcess of analyze, when files are decoded in a process
        self._decoder_lock = threading.Lock()
        self._decoder_failed = False
        # validate against the model now, not when the first stream is created
        StreamConfig(self.window_ms, self.hop_ms, self.smoothing)

    @property
    def hop_ms(self) -> int:
        return int(self.preset.hop_ms if self.options.hop_ms is None else self.options.hop_ms)

    @property
    def window_ms(self) -> int:
        return int(self.preset.window_ms if self.options.window_ms is None else self.options.window_ms)

    @property
    def smoothing(self) -> float:
        return float(self.options.smoothing)

    @property
    def face_select(self) -> str:
        return self.options.face_select

    @property
    def max_faces(self) -> int:
        return int(self.options.max_faces)

    @property
    def detect_every(self) -> int:
        return int(self.options.detect_every)

    @property
    def face_detector(self) -> str:
        return self.options.face_detector

    @property
    def file_decoder(self) -> str:
        """Where :meth:`analyze` decodes files: ``"process"`` or ``"thread"`` (``"auto"`` resolved)."""
        return resolve_file_decoder(self.options.file_decoder)

    @classmethod
    def from_bundle(
        cls,
        path: str | Path | None = None,
        backend: str = "auto",
        *,
        device: str | None = None,
        threads: int | None = None,
        format: str | None = None,  # noqa: A002 - the format key, as on the command line
        options: RecognizerOptions | None = None,
        hop_ms: int | None = None,
        window_ms: int | None = None,
        smoothing: float | None = None,
        face_select: str | None = None,
        max_faces: int | None = None,
        detect_every: int | None = None,
        face_detector: str | None = None,
        file_decoder: str | None = None,
    ) -> Recognizer:
        """Load a bundle directory (``None``: the default model shipped in the package) on a
        runtime backend (``"auto"``: the best one installed for this bundle); ``format`` runs
        exactly that format of the bundle (e.g. ``"openvino-int8"``) instead of the best one.
        ``threads``: intra-op threads of each graph; None: :func:`stream_threads`, half of this
        process's CPUs (a stream decodes and finds faces on the other half; on 2 CPUs, one thread
        for the graphs took a 60-s file from 8.9 to 7.3 CPU s, BENCHMARKS.md §4).
        ``options`` and the keywords after it: as for :class:`Recognizer`."""
        from .model.engine import BundleModel

        fields = {
            "hop_ms": hop_ms,
            "window_ms": window_ms,
            "smoothing": smoothing,
            "face_select": face_select,
            "max_faces": max_faces,
            "detect_every": detect_every,
            "face_detector": face_detector,
            "file_decoder": file_decoder,
        }
        options = dataclasses.replace(
            options or RecognizerOptions(), **{k: v for k, v in fields.items() if v is not None}
        )
        bundle = Bundle.load(Path(path) if path is not None else default_bundle())
        if threads is None:
            threads = stream_threads()
        # "process": the decoder starts first, so that its start-up overlaps loading the model
        decoder = _start_decoder() if options.file_decoder == "process" else None
        try:
            model = BundleModel.from_bundle(bundle, backend=backend, device=device, threads=threads, format=format)
            recognizer = cls(model, options)
        except BaseException:
            if decoder is not None:
                decoder.close()
            raise
        recognizer._decoder = decoder
        recognizer._decoder_failed = options.file_decoder == "process" and decoder is None
        return recognizer

    def close(self) -> None:
        """Release the model's runtime sessions. Streams created earlier must not be used
        afterwards; creating a new stream raises :class:`InputError`. Idempotent."""
        if self._closed:
            return
        self._closed = True
        with self._decoder_lock:
            decoder, self._decoder = self._decoder, None
        if decoder is not None:
            decoder.close()
        close = getattr(self.model, "close", None)
        if close is not None:
            close()

    def __enter__(self) -> Recognizer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def _check_open(self) -> None:
        if self._closed:
            raise InputError("this recognizer was closed; load the model again")

    # -- streams -----------------------------------------------------------------------------
    def _face_detector(self, running_mode: str = "video"):
        """One face: a ``FaceTracker``; several: a ``MultiFaceTracker`` whose tracks end after a
        window unseen."""
        from .frontend.face import FaceTracker
        from .frontend.tracks import MultiFaceTracker, TrackConfig

        common = {
            "running_mode": running_mode,
            "select": self.face_select,
            "detect_every": self.detect_every,
            "detector": self.face_detector,
        }
        if self.max_faces == 1:
            return FaceTracker(self.preset.visual, **common)
        tracks = TrackConfig(max_faces=self.max_faces, max_gap_ms=self.window_ms)
        return MultiFaceTracker(self.preset.visual, tracks, **common)

    def create_stream(
        self,
        *,
        hop_ms: int | None = None,
        window_ms: int | None = None,
        smoothing: float | None = None,
        audio: bool = True,
        video: bool = True,
        max_pending_results: int = StreamConfig.max_pending_results,
        face_batch: int = 1,
    ) -> EmotionStream:
        """A new stream with its own state (face tracking, caches, smoothing). ``audio`` /
        ``video``: which modalities will be pushed (a camera-only app passes ``audio=False``); a
        window is emitted when all of them reach its end. ``max_pending_results`` and
        ``face_batch``: see :class:`~edge_emotion.stream.StreamConfig` (for an app that polls
        rarely; for an app that pushes a file's frames and wants them fast rather than each face
        encoded as it comes: :meth:`analyze` uses :data:`FILE_FACE_BATCH` where the model takes
        it)."""
        self._check_open()
        config = StreamConfig(
            window_ms=int(self.window_ms if window_ms is None else window_ms),
            hop_ms=int(self.hop_ms if hop_ms is None else hop_ms),
            smoothing=self.smoothing if smoothing is None else float(smoothing),
            audio=audio,
            video=video,
            max_faces=self.max_faces,
            max_pending_results=max_pending_results,
            face_batch=face_batch,
        )
        return EmotionStream(self.model, config, self._face_detector() if video else None)

    def _file_face_batch(self) -> int:
        """:data:`FILE_FACE_BATCH` for a model whose visual encoder runs on the CPU through ONNX
        Runtime or OpenVINO with a free batch axis (where batching was measured to give the same
        embeddings), else 1: TensorRT engines and GPU providers build for the batch sizes they see,
        static-batch graphs take one size."""
        backends = getattr(self.model, "backends", None) or {}
        graph = backends.get("visual_encoder")
        if graph is None or getattr(self.model, "backend_name", None) not in ("onnxruntime", "openvino"):
            return 1
        if getattr(graph, "device", None) not in ("CPUExecutionProvider", "CPU"):
            return 1
        face = next((spec for spec in graph.input_specs if spec.name == "face"), None)
        return FILE_FACE_BATCH if face is not None and face.shape[0] is None else 1

    def analyze(
        self,
        path: str | Path,
        *,
        hop_ms: int | None = None,
        window_ms: int | None = None,
        smoothing: float | None = None,
    ) -> Iterator[EmotionResult]:
        """Results for a video or audio file, lazily, window by window.

        A file with only one of the two tracks runs on that modality alone (with a warning).
        Raises :class:`~edge_emotion.errors.MediaError` for a missing, empty or corrupt file, or one
        with neither audio nor video.
        """
        from .sources import open_media

        self._check_open()
        # Audio is resampled to the model's rate while decoding (FFmpeg's resampler), as the
        # training pipeline reads it.
        media = open_media(path, sample_rate=self.preset.audio.sample_rate)
        has_video, has_audio = media.video is not None, media.audio is not None
        if not has_video:
            log.warning("%s has no video track: recognising from audio alone", path)
        if not has_audio:
            log.warning("%s has no audio track: recognising from faces alone", path)
        stream = self.create_stream(
            hop_ms=hop_ms,
            window_ms=window_ms,
            smoothing=smoothing,
            audio=has_audio,
            video=has_video,
            face_batch=self._file_face_batch(),
        )
        # the file is claimed (the decoder process, or this process's reader) when the results are
        # first asked for: results dropped unread hold nothing
        return self._run_stream(lambda: self._file_items(media, has_video, has_audio), stream)

    def _file_items(self, media, has_video: bool, has_audio: bool) -> Iterator[tuple[str, object]]:
        """The file's frames and chunks in timestamp order, from the decoder process when there is
        one and it is free, else read here (on :meth:`_run_stream`'s reader thread). Either way the
        frames the stream's subsampler will keep (its twin, fed the same timestamps) are converted
        to RGB ahead of the stream, and the others never are (the stream reads only their luma
        plane, if anything: every frame's with several faces, each kept one's with audio too)."""
        from .sources.decoder import merged_items

        decoder = self._file_decoder_process()
        if decoder is not None:
            size = (media.video.width, media.video.height) if has_video else None
            read = decoder.try_read(
                media.path,
                sample_rate=media.audio.sample_rate if has_audio else None,
                chunk_ms=media.audio.chunk_ms if has_audio else 100,
                kept_preset=self.preset if has_video else None,
                all_luma=has_audio and self.max_faces > 1,
                size=size,
            )
            if read is not None:
                return read
            if decoder.broken:
                self._file_decoder_process()  # forgets it, with a warning
        return merged_items(media, FrameSubsampler(self.preset) if has_video else None, _Reader.CONVERT_AHEAD_PIXELS)

    def _file_decoder_process(self):
        """The decoder process for the next file (started at the first file with ``"auto"``, again
        after one ended), or None where files are decoded in this process."""
        if self.file_decoder != "process":
            return None
        with self._decoder_lock:
            if self._decoder is not None and not self._decoder.alive:
                if self._decoder.broken:  # it could not start: no use starting another
                    log.warning("files are decoded on a thread from here on")
                    self._decoder_failed = True
                self._decoder.close()
                self._decoder = None
            if self._decoder is None and not self._decoder_failed and not self._closed:
                self._decoder = _start_decoder()
                self._decoder_failed = self._decoder is None
            return self._decoder

    @staticmethod
    def _run_stream(
        items: Callable[[], Iterator[tuple[str, object]]], stream: EmotionStream
    ) -> Iterator[EmotionResult]:
        """Feed a file's frames and chunks (``items()``: ``(kind, item)`` in timestamp order) to the
        stream. They are read on a reader thread a little ahead of the stream, so that decoding (here
        or in the decoder process) overlaps face detection and the encoders."""
        try:
            reader = _Reader(items())
        except BaseException:
            close = getattr(stream, "close", None)
            if close is not None:
                close()
            raise
        try:
            for kind, item in reader:
                if kind == "video":  # the frame itself: the stream converts only the frames it keeps
                    stream.push_video(item, item.timestamp_ms)
                else:
                    stream.push_audio(item.pcm, item.sample_rate, item.timestamp_ms)
                yield from stream.poll()
            yield from stream.flush()
        finally:
            reader.close()
            close = getattr(stream, "close", None)
            if close is not None:
                close()

    def live(
        self,
        camera: int | str | None = 0,
        mic: int | str | None = "default",
        on_result: Callable[[EmotionResult], None] | None = None,
        *,
        hop_ms: int | None = None,
        smoothing: float | None = None,
        on_error: Callable[[BaseException], None] | None = None,
        video_source: Iterable | None = None,
        audio_source: Iterable | None = None,
    ) -> LiveSession:
        """A live session over a camera and/or a microphone (``None`` leaves one out), calling
        ``on_result`` from a worker thread. Use it as a context manager, or ``start()`` /
        ``stop()``. ``video_source`` / ``audio_source`` replace the camera / microphone with any
        iterable of ``VideoFrame`` / ``AudioChunk`` (e.g. the file-backed sources)."""
        from .live import LiveSession

        self._check_open()
        if video_source is not None:
            camera = None
        if audio_source is not None:
            mic = None
        if camera is None and mic is None and video_source is None and audio_source is None:
            raise InputError("a live session needs a camera, a microphone or both")
        return LiveSession(
            self,
            camera=camera,
            mic=mic,
            on_result=on_result,
            hop_ms=hop_ms,
            smoothing=smoothing,
            on_error=on_error,
            video_source=video_source,
            audio_source=audio_source,
        )


FILE_DECODERS = ("auto", "process", "thread")
#: How many faces :meth:`Recognizer.analyze` encodes in one call at most (``StreamConfig.face_batch``)
#: with ONNX Runtime or OpenVINO on the CPU; a window encodes what waits, so with one face a call
#: gets about one hop's faces (10 at the edge preset's 10 fps and 1-s hop). On the 60-s benchmark
#: clip's 600 faces, OpenVINO INT8's visual encoder took 1.10 s of CPU called on each frame's face,
#: 0.64 s with at most 8 a call and 0.48 s with at most 16, with the same embeddings (BENCHMARKS.md, §4).
FILE_FACE_BATCH = 16


def resolve_file_decoder(choice: str) -> str:
    """``"auto"`` -> ``"process"`` when this process may use at least two CPUs on a POSIX system
    (the decoder then has a CPU of its own), else ``"thread"``; the others as they are."""
    from .sources.decoder import process_decoding_available

    if choice != "auto":
        return choice
    return "process" if usable_cpus() >= 2 and process_decoding_available() else "thread"


def _start_decoder():
    """A new :class:`~edge_emotion.sources.decoder.DecoderProcess`, or None (with a warning) when
    it cannot start: files are then decoded on a thread."""
    from .sources.decoder import DecoderProcess

    try:
        return DecoderProcess()
    except (OSError, RuntimeError) as exc:
        log.warning("cannot start a decoder process (%s): files are decoded on a thread", exc)
        return None


def stream_threads() -> int:
    """The graphs' intra-op threads a :class:`Recognizer` uses unless told: half of the CPUs this
    process may run on, at least 1 (:func:`~edge_emotion.config.half_the_cpus`). A stream keeps the
    other half busy (a file's reader thread decodes; the face detector runs on one thread), and the
    edge graphs take a millisecond or two a call, too little to gain from more threads than that."""
    return half_the_cpus()


class _Reader:
    """A media file's ``(kind, item)`` in timestamp order, read on a daemon thread up to ``DEPTH *
    BATCH`` items ahead. Iterate it once; errors of the reader (a corrupt file) are raised in the
    iterating thread, after the items read before it; :meth:`close` stops the reader and waits for
    it, which closes ``items`` (and so the file). Read in this process, the kept frames are
    converted to RGB on the reader thread when they have at most :attr:`CONVERT_AHEAD_PIXELS` pixels
    (a queued kept frame then holds its RGB copy: at 1080p about 6 MB, some ten of them at most;
    larger frames are converted by the stream, as they come)."""

    DEPTH = 8  # batches
    BATCH = 8  # items per batch
    CONVERT_AHEAD_PIXELS = 1920 * 1088
    _END = object()

    def __init__(self, items: Iterator[tuple[str, object]]):
        self._items = items
        self._queue: queue.Queue = queue.Queue(maxsize=self.DEPTH)
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._read, name="edge-emotion-file-reader", daemon=True)
        self._thread.start()

    def _read(self) -> None:
        batch = []  # handed over a few at a time: fewer hand-overs between the threads
        try:
            for kind, item in self._items:
                batch.append((kind, item))
                if len(batch) == self.BATCH:
                    if not self._put(batch):
                        return
                    batch = []
            if batch and not self._put(batch):
                return
            self._put(self._END)
        except BaseException as exc:  # handed to the iterating thread, raised there
            if batch and not self._put(batch):  # what was read before the error first
                return
            self._put(exc)
        finally:
            close = getattr(self._items, "close", None)  # closes the file (or stops the decoder), on this thread
            if close is not None:
                close()

    def _put(self, entry) -> bool:
        while not self._stop.is_set():
            try:
                self._queue.put(entry, timeout=0.1)
                return True
            except queue.Full:
                continue
        return False

    def __iter__(self) -> Iterator[tuple[str, object]]:
        while True:
            entry = self._queue.get()
            if entry is self._END:
                return
            if isinstance(entry, BaseException):
                raise entry
            yield from entry

    def close(self) -> None:
        self._stop.set()
        self._thread.join()
