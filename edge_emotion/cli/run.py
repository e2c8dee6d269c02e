"""``edge-emotion run``: emotions from a camera + microphone, or from a media file."""

from __future__ import annotations

import json
import logging
import os
import sys
import threading
from enum import Enum
from pathlib import Path

import typer

from ..frontend.face import DEFAULT_DETECT_EVERY
from ..results import EmotionResult

log = logging.getLogger(__name__)


class Output(str, Enum):
    text = "text"
    jsonl = "jsonl"


class _Printer:
    """Prints each result as one line on stdout (callable from any thread). A write that fails (a
    full disk, a closed pipe) is kept in :attr:`error`, stdout is pointed at /dev/null so that the
    interpreter's last flush cannot fail again, and later results are dropped."""

    def __init__(self, output: Output):
        self.output = output
        self.error: OSError | ValueError | None = None
        self._lock = threading.Lock()

    def __call__(self, result: EmotionResult) -> None:
        line = json.dumps(result.to_dict()) if self.output is Output.jsonl else str(result)
        with self._lock:
            if self.error is not None:
                return
            try:
                typer.echo(line)
                sys.stdout.flush()
            except (OSError, ValueError) as exc:
                self.error = exc
                _discard_stdout()

    def failure(self) -> str:
        reason = getattr(self.error, "strerror", None) or str(self.error)
        return f"cannot write the results to stdout: {reason}"


def _discard_stdout() -> None:
    try:
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, 1)
        os.close(devnull)
    except OSError:
        pass


def _check_stdout() -> None:
    """Fail (one line, exit 2) before any work when stdout is closed."""
    from . import fail

    if sys.stdout is None:
        raise fail("stdout is closed: nowhere to write the results")
    try:
        fd = sys.stdout.fileno()
    except (OSError, ValueError, AttributeError):  # a stream without a file descriptor (tests capture it)
        return
    try:
        os.fstat(fd)
    except OSError:
        raise fail("stdout is closed: nowhere to write the results") from None


def _open_window():
    """The display window, or None (with a warning) when none can be opened here. Runs before
    anything imports PyAV (see edge_emotion/display.py)."""
    from ..display import Window
    from ..errors import DeviceError

    try:
        window = Window("edge-emotion")
    except DeviceError as exc:
        log.warning("no window: %s; running without one", exc)
        return None
    from ..overlay import splash

    window.show(splash("starting..."))  # while the model loads
    return window


#: The highest camera index accepted (OpenCV takes a C int; V4L2 numbers devices far below this).
MAX_CAMERA_INDEX = 1023


def _camera(text: str) -> int | str:
    """``--camera``: an index (digits), else a URL or a path, passed to OpenCV as it is."""
    from . import fail

    text = text.strip()
    if text.isdigit():
        index = int(text)
        if index > MAX_CAMERA_INDEX:
            raise fail(f"--camera {text}: no such camera index (see `edge-emotion devices`)")
        return index
    if "://" in text or Path(text).exists():
        return text
    raise fail(f"--camera {text!r}: not a camera index, a URL or an existing path (see `edge-emotion devices`)")


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        camera_arg: str | None = typer.Option(
            None,
            "--camera",
            help="A camera index (see `edge-emotion devices`), a stream URL (rtsp://, http://), "
            "a video device path (/dev/video0) or a video file read as a camera.",
        ),
        video: Path | None = typer.Option(None, "--video", help="A media file (video and/or audio)."),
        mic: str | None = typer.Option(
            None,
            "--mic",
            help="Microphone: 'default', a device name or an index. With --video, replaces the file's audio.",
        ),
        model: Path | None = typer.Option(None, "--model", help="A bundle directory (default: the shipped model)."),
        backend: str = typer.Option("auto", "--backend", help="auto, onnxruntime, openvino, tensorrt or torch."),
        format_key: str | None = typer.Option(
            None,
            "--format",
            help="Run exactly this format of the bundle (e.g. onnx, onnx-int8, openvino-int8; "
            "default: the best one for --backend, see README).",
        ),
        output: Output = typer.Option(Output.text, "--output", help="text or jsonl (one JSON object per window)."),
        display: bool | None = typer.Option(
            None,
            "--display/--no-display",
            help="Show a window with every face's box, its emotion and the scores "
            "(default: on for a camera when a display exists); a file then plays at its own frame rate.",
        ),
        hop_ms: int | None = typer.Option(None, "--hop-ms", help="Milliseconds between successive windows."),
        smoothing: float = typer.Option(0.0, "--smoothing", help="Weight of the previous scores, in [0, 1)."),
        threads: int | None = typer.Option(
            None, "--threads", help="CPU threads of each graph (default: half the CPUs, at least 1)."
        ),
        max_faces: int = typer.Option(
            1,
            "--max-faces",
            help="Follow up to N people at once: one result per person per window, with "
            "'person' (its track id) and 'speaking'; the voice goes to the face that speaks.",
        ),
        detect_every: int = typer.Option(
            DEFAULT_DETECT_EVERY,
            "--detect-every",
            help="Run the face detector on one of the model's frames in N while it finds faces (3: every "
            "300 ms at 10 fps) and follow the faces found on the frames between; 1: every frame, as in training.",
        ),
        face_detector: str = typer.Option(
            "auto",
            "--face-detector",
            help="What runs the BlazeFace face detector: auto (OpenVINO when installed, else ONNX Runtime), "
            "openvino, onnxruntime, or mediapipe (MediaPipe's own task, the 'mediapipe' extra: the same "
            "boxes within a pixel, about 1.6 times the CPU).",
        ),
        file_decoder: str = typer.Option(
            "auto",
            "--file-decoder",
            help="Where --video is decoded: process (a child process, beside the recognizer), thread (a "
            "thread of this process), or auto (process when two or more CPUs are usable). Same results.",
        ),
    ) -> None:
        """Recognise emotions from --camera / --mic (live) or --video (a file), printing one result per window."""
        from ..recognizer import Recognizer
        from . import fail

        camera = _camera(camera_arg) if camera_arg is not None else None
        if camera is not None and video is not None:
            raise fail("give either --camera or --video, not both")
        if camera is None and video is None and mic is None:
            raise fail("nothing to run on: give --camera N, --video PATH and/or --mic NAME")
        if video is not None and not video.exists():
            raise fail(f"no such file: {video}")
        _check_stdout()
        window = None
        if (camera is not None or video is not None) and (display or (display is None and camera is not None)):
            from ..display import display_problem

            if display or display_problem() is None:  # the default stays quiet without a display
                window = _open_window()  # before the recognizer and PyAV load
        from ..recognizer import FILE_DECODERS, resolve_file_decoder

        if file_decoder not in FILE_DECODERS:
            raise fail(f"--file-decoder must be one of {', '.join(FILE_DECODERS)}, got {file_decoder!r}")
        analyzing = video is not None and mic is None and window is None  # the file goes through analyze()
        # a file to analyze: the decoder process (if any) starts before the model loads, beside it
        file_decoder = resolve_file_decoder(file_decoder) if analyzing else "thread"
        recognizer = Recognizer.from_bundle(
            model,
            backend=backend,
            threads=threads,
            format=format_key,
            hop_ms=hop_ms,
            smoothing=smoothing,
            max_faces=max_faces,
            detect_every=detect_every,
            face_detector=face_detector,
            file_decoder=file_decoder,
        )
        emit = _Printer(output)

        if analyzing:
            try:
                for result in recognizer.analyze(video):
                    emit(result)
                    if emit.error is not None:
                        raise fail(emit.failure())
            finally:
                recognizer.close()  # and its decoder process
            return

        video_source = audio_source = None
        if video is not None:
            from ..sources import AudioFileSource, VideoFileSource, open_media

            media = open_media(video)
            video_source = VideoFileSource(video) if media.video is not None else None
            if mic is None and media.audio is not None:
                audio_source = AudioFileSource(video, sample_rate=recognizer.preset.audio.sample_rate)
            if video_source is None and audio_source is None and mic is None:
                raise fail(f"{video} has neither audio nor video")
            if window is not None or mic is not None:  # shown, or beside a live microphone: at the file's own rate
                from ..live import paced

                video_source, audio_source = paced(video_source, audio_source)
        mic_device: int | str | None = None
        if mic is not None:
            mic_device = int(mic) if mic.isdigit() else mic
        session = recognizer.live(
            camera=camera,
            mic=mic_device,
            on_result=emit,
            video_source=video_source,
            audio_source=audio_source,
            on_error=lambda exc: log.error("%s", exc),
        )
        try:
            with session:
                if window is not None and (camera is not None or video_source is not None):
                    from ..display import show_session

                    show_session(session, window)
                else:
                    # a file's video with a live microphone: the run ends with the video
                    while not session.wait(0.5) and emit.error is None:
                        if video_source is not None and mic is not None and "video" in session.stats().ended:
                            break
        except KeyboardInterrupt:
            pass
        finally:
            if window is not None:
                window.close()
        if emit.error is not None:
            raise fail(emit.failure())
