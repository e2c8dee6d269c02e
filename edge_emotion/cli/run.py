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

from ..results import EmotionResult

log = logging.getLogger(__name__)


class Output(str, Enum):
    text = "text"
    jsonl = "jsonl"


def _display_available() -> bool:
    if sys.platform in ("win32", "darwin"):
        return True
    return bool(os.environ.get("DISPLAY") or os.environ.get("WAYLAND_DISPLAY"))


def _printer(output: Output):
    lock = threading.Lock()

    def emit(result: EmotionResult) -> None:
        line = json.dumps(result.to_dict()) if output is Output.jsonl else str(result)
        with lock:
            typer.echo(line)
            sys.stdout.flush()

    return emit


def _draw(frame_rgb, result: EmotionResult | None):
    import cv2

    image = cv2.cvtColor(frame_rgb, cv2.COLOR_RGB2BGR)
    if result is not None:
        if result.face is not None:
            x, y, w, h = result.face.bbox
            cv2.rectangle(image, (x, y), (x + w, y + h), (0, 200, 0), 2)
        text = f"{result.label} {result.confidence:.2f} ({'+'.join(result.modalities) or '-'})"
        cv2.putText(image, text, (10, 30), cv2.FONT_HERSHEY_SIMPLEX, 0.9, (0, 200, 0), 2)
    return image


def _show_until_done(session) -> None:
    """Show the latest frame with the face box and current emotion until the session ends or the
    user presses q / Esc. Runs in the main thread (OpenCV's GUI needs it)."""
    import cv2

    window = "edge-emotion"
    cv2.namedWindow(window, cv2.WINDOW_NORMAL)
    try:
        while session.running:
            frame = session.latest_frame
            if frame is not None:
                cv2.imshow(window, _draw(frame.image, session.latest_result))
            if cv2.waitKey(30) & 0xFF in (ord("q"), 27):
                break
    finally:
        cv2.destroyWindow(window)


def register(app: typer.Typer) -> None:
    @app.command()
    def run(
        camera: int | None = typer.Option(None, "--camera", help="Camera index (OpenCV)."),
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
            help="Show an OpenCV window with the face box and the emotion "
            "(default: on for a camera when a display exists).",
        ),
        hop_ms: int | None = typer.Option(None, "--hop-ms", help="Milliseconds between successive windows."),
        smoothing: float = typer.Option(0.0, "--smoothing", help="Weight of the previous scores, in [0, 1)."),
        threads: int | None = typer.Option(None, "--threads", help="CPU threads for the runtime."),
        max_faces: int = typer.Option(
            1,
            "--max-faces",
            help="Follow up to N people at once: one result per person per window, with "
            "'person' (its track id) and 'speaking'; the voice goes to the face that speaks.",
        ),
    ) -> None:
        """Recognise emotions from --camera / --mic (live) or --video (a file), printing one result per window."""
        from ..recognizer import Recognizer
        from . import fail

        if camera is not None and video is not None:
            raise fail("give either --camera or --video, not both")
        if camera is None and video is None and mic is None:
            raise fail("nothing to run on: give --camera N, --video PATH and/or --mic NAME")
        if video is not None and not video.exists():
            raise fail(f"no such file: {video}")
        recognizer = Recognizer.from_bundle(
            model,
            backend=backend,
            threads=threads,
            format=format_key,
            hop_ms=hop_ms,
            smoothing=smoothing,
            max_faces=max_faces,
        )
        emit = _printer(output)
        want_display = display if display is not None else (camera is not None and _display_available())
        if want_display and not _display_available():
            log.warning("no display found: running without a window")
            want_display = False

        if video is not None and mic is None and not want_display:
            for result in recognizer.analyze(video):
                emit(result)
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
        with session:
            try:
                if want_display and (camera is not None or video_source is not None):
                    _show_until_done(session)
                else:
                    while not session.wait(0.5):
                        pass
            except KeyboardInterrupt:
                pass
