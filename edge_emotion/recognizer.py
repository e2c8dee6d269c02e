"""The Python API for kiosk and robot apps.

    rec = Recognizer.from_bundle()                      # the default model, best runtime
    for result in rec.analyze("clip.mp4"):              # a lazy iterator of EmotionResult
        print(result.label, result.scores)

    stream = rec.create_stream(hop_ms=500)              # push frames and PCM yourself
    stream.push_video(frame_rgb, timestamp_ms)
    stream.push_audio(pcm, sample_rate, timestamp_ms)
    for result in stream.poll(): ...

    with rec.live(camera=0, mic="default", on_result=print):   # camera + microphone, worker thread
        time.sleep(60)
"""

from __future__ import annotations

import heapq
import logging
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from typing import TYPE_CHECKING

from .errors import BundleError, InputError
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


class Recognizer:
    """A loaded model plus the defaults of the streams it creates.

    ``hop_ms`` defaults to the preset's, ``window_ms`` to the model's window; ``smoothing`` is the
    weight of the previous scores in an exponential moving average (0 disables it).
    """

    def __init__(
        self,
        model: FusionModel,
        *,
        hop_ms: int | None = None,
        window_ms: int | None = None,
        smoothing: float = 0.0,
        face_select: str = "largest",
    ):
        self.model = model
        self.preset = model.preset
        self.labels = tuple(model.labels)
        self.hop_ms = int(self.preset.hop_ms if hop_ms is None else hop_ms)
        self.window_ms = int(self.preset.window_ms if window_ms is None else window_ms)
        self.smoothing = float(smoothing)
        self.face_select = face_select
        StreamConfig(self.window_ms, self.hop_ms, self.smoothing)  # validate early

    @classmethod
    def from_bundle(
        cls,
        path: str | Path | None = None,
        backend: str = "auto",
        *,
        device: str | None = None,
        threads: int | None = None,
        format: str | None = None,  # noqa: A002 - the format key, as on the command line
        **defaults,
    ) -> Recognizer:
        """Load a bundle directory (``None``: the default model shipped in the package) on a
        runtime backend (``"auto"``: the best one installed for this bundle); ``format`` runs
        exactly that format of the bundle (e.g. ``"openvino-int8"``) instead of the best one."""
        from .model.engine import BundleModel

        bundle = Bundle.load(Path(path) if path is not None else default_bundle())
        model = BundleModel.from_bundle(bundle, backend=backend, device=device, threads=threads, format=format)
        return cls(model, **defaults)

    # -- streams -----------------------------------------------------------------------------
    def _face_detector(self, running_mode: str = "video"):
        from .frontend.face import FaceTracker

        return FaceTracker(self.preset.visual, running_mode=running_mode, select=self.face_select)

    def create_stream(
        self,
        *,
        hop_ms: int | None = None,
        window_ms: int | None = None,
        smoothing: float | None = None,
        audio: bool = True,
        video: bool = True,
    ) -> EmotionStream:
        """A new stream with its own state (face tracking, caches, smoothing). ``audio`` /
        ``video``: which modalities will be pushed; a window is emitted when all of them reach
        its end."""
        config = StreamConfig(
            window_ms=int(self.window_ms if window_ms is None else window_ms),
            hop_ms=int(self.hop_ms if hop_ms is None else hop_ms),
            smoothing=self.smoothing if smoothing is None else float(smoothing),
            audio=audio,
            video=video,
        )
        return EmotionStream(self.model, config, self._face_detector() if video else None)

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

        # Audio is resampled to the model's rate while decoding (FFmpeg's resampler), as the
        # training pipeline reads it.
        media = open_media(path, sample_rate=self.preset.audio.sample_rate)
        has_video, has_audio = media.video is not None, media.audio is not None
        if not has_video:
            log.warning("%s has no video track: recognising from audio alone", path)
        if not has_audio:
            log.warning("%s has no audio track: recognising from faces alone", path)
        return self._run_stream(
            media,
            self.create_stream(
                hop_ms=hop_ms, window_ms=window_ms, smoothing=smoothing, audio=has_audio, video=has_video
            ),
        )

    @staticmethod
    def _run_stream(media, stream: EmotionStream) -> Iterator[EmotionResult]:
        """Feed the file's frames and chunks to the stream in timestamp order."""
        try:
            sources = []
            if media.video is not None:
                sources.append((f.timestamp_ms, 0, "video", f) for f in media.video)
            if media.audio is not None:
                sources.append((c.timestamp_ms, 1, "audio", c) for c in media.audio)
            for _, _, kind, item in heapq.merge(*sources, key=lambda entry: entry[:2]):
                if kind == "video":  # the frame itself: the stream converts only the frames it keeps
                    stream.push_video(item, item.timestamp_ms)
                else:
                    stream.push_audio(item.pcm, item.sample_rate, item.timestamp_ms)
                yield from stream.poll()
            yield from stream.flush()
        finally:
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

        if video_source is not None:
            camera = None
        if audio_source is not None:
            mic = None
        if camera is None and mic is None and video_source is None and audio_source is None:
            raise InputError("a live session needs a camera, a microphone or both")
        return LiveSession(self, camera=camera, mic=mic, on_result=on_result, hop_ms=hop_ms,
                           smoothing=smoothing, on_error=on_error, video_source=video_source,
                           audio_source=audio_source)
