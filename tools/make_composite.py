"""Build several-people test clips from real single-person clips: people side by side in one frame,
one of them (or nobody visible) owning the soundtrack.

    python tools/make_composite.py --data ../shared/data --layout left-speaks --out TWO_PEOPLE.mp4
    edge-emotion run --video TWO_PEOPLE.mp4 --max-faces 2 --output jsonl

Every person is a *panel*: a square cut from a clip around the actor's face (the side of the
square is the clip's height, centred on the face the detector finds in the clip's first frame),
scaled to ``side`` pixels, so every face keeps its own clip's size relative to its panel. A panel
plays one or more clips one after the other; a panel whose clips run out before the soundtrack's
owner loops them. Layouts (:data:`LAYOUTS`):

- ``left-speaks``: CREMA-D actor 1001 (three sentences, with their audio) on the left, the RAVDESS
  actor 1 clip muted on the right;
- ``right-speaks``: the mirror image (actor 1001 with his audio on the right);
- ``off-screen``: both faces muted; the soundtrack is another person's voice (CREMA-D actor 1002,
  whose clips have no video), so nobody visible speaks;
- ``speaker-leaves``: ``left-speaks`` where the speaker's panel slides out of the frame to the left
  half-way through, while his voice goes on;
- ``four``: a 2x2 grid of four panels (actor 1001 with his audio top left, RAVDESS actor 1 muted
  top right, and below two muted copies of the actor 1001 panel, mirrored and started a sixth and
  a half of the way in), for the cost of four faces.

Nothing derived from the data is kept anywhere but where ``--out`` says; the test suite builds its
cases into a temporary directory. Decoding uses the SDK's PyAV sources, encoding PyAV
(H.264 + AAC in MP4).
"""

from __future__ import annotations

import argparse
import logging
from dataclasses import dataclass
from pathlib import Path

import numpy as np

log = logging.getLogger(__name__)

CREMA_1001 = tuple(f"crema-d/video/1001_DFA_{e}_XX.flv" for e in ("ANG", "HAP", "NEU"))
RAVDESS_AV = ("ravdess/av/01-01-01-01-01-01-01.mp4",)
CREMA_1002_AUDIO = tuple(f"crema-d/audio-mp3/1002_DFA_{e}_XX.mp3" for e in ("SAD", "HAP", "FEA"))
LAYOUTS = ("left-speaks", "right-speaks", "off-screen", "speaker-leaves", "four")
#: The grey that fills the frame where no panel is.
BACKGROUND = 128


@dataclass(frozen=True)
class Clip:
    """Decoded media on one timeline from 0: ``frames`` ``(N, H, W, 3) uint8`` shown at
    ``timestamps_ms`` ``(N,) int64`` (increasing, the first 0), ``pcm`` ``(S,) float32`` mono at
    ``sample_rate`` from 0, ``duration_ms`` the length (the later of the two tracks' ends)."""

    frames: np.ndarray
    timestamps_ms: np.ndarray
    pcm: np.ndarray
    sample_rate: int
    duration_ms: int

    def frame_at(self, t_ms: float, loop: bool = False) -> np.ndarray:
        """The frame on show at ``t_ms`` (the first before 0, the last after the end unless ``loop``)."""
        if loop:
            t_ms = t_ms % self.duration_ms
        index = int(np.searchsorted(self.timestamps_ms, t_ms, side="right")) - 1
        return self.frames[max(0, min(index, len(self.frames) - 1))]


def _face_centre_x(image: np.ndarray) -> float | None:
    from edge_emotion.config import EDGE
    from edge_emotion.frontend.face import FaceTracker

    with FaceTracker(EDGE.visual, running_mode="image") as tracker:
        obs = tracker.detect(image, 0)
    if obs.bbox is None:
        return None
    return obs.bbox[0] + obs.bbox[2] / 2


def load_panel(paths: list[Path], side: int, sample_rate: int) -> Clip:
    """Clips played one after the other as one square panel ``side`` x ``side``; each clip's audio
    (zeros where it has none) stays in sync with its pictures."""
    import cv2

    from edge_emotion.sources import VideoFileSource, open_media, read_audio

    frames, stamps, pieces = [], [], []
    offset_ms = 0
    for path in paths:
        media = open_media(path)
        video = list(VideoFileSource(path)) if media.video is not None else []
        pcm, audio_start_ms = read_audio(path, sample_rate) if media.audio is not None else (np.zeros(0), 0)
        period_ms = 1000.0 / (media.video.fps or 30.0) if video else 0.0
        video_end = video[-1].timestamp_ms + period_ms if video else 0.0
        audio_end = audio_start_ms + 1000.0 * pcm.size / sample_rate
        duration = int(round(max(video_end, audio_end)))
        if video:
            height, width = video[0].height, video[0].width
            centre = _face_centre_x(video[0].image)
            cut = min(height, width)
            x0 = int(round((width / 2 if centre is None else centre) - cut / 2))
            x0 = max(0, min(width - cut, x0))
            for frame in video:
                square = frame.image[(height - cut) // 2 : (height - cut) // 2 + cut, x0 : x0 + cut]
                frames.append(cv2.resize(square, (side, side), interpolation=cv2.INTER_AREA))
                stamps.append(offset_ms + frame.timestamp_ms)
        track = np.zeros(int(round(duration * sample_rate / 1000)), np.float32)
        first = int(round(audio_start_ms * sample_rate / 1000))
        n = max(0, min(pcm.size, track.size - first))
        track[first : first + n] = pcm[:n]
        pieces.append(track)
        offset_ms += duration
    if not frames:
        frames, stamps = [np.full((side, side, 3), BACKGROUND, np.uint8)], [0]
    return Clip(np.stack(frames), np.asarray(stamps, np.int64), np.concatenate(pieces), sample_rate, offset_ms)


def compose(
    panels: list[Clip],
    audio: Clip | None,
    *,
    grid: tuple[int, int] = (1, 2),
    fps: float = 30.0,
    duration_ms: int | None = None,
    leave_panel: int | None = None,
    leave_from_ms: float | None = None,
    leave_ms: float = 1000.0,
) -> Clip:
    """Panels laid out on a ``grid`` (rows, columns), row by row; the soundtrack is ``audio``'s
    (None: silence). Panels shorter than the composite loop. ``leave_panel``: that panel slides
    left out of the frame over ``leave_ms`` from ``leave_from_ms`` and stays out. Frames at ``fps``
    for ``duration_ms`` (default: the soundtrack's length, else the longest panel's)."""
    rows, cols = grid
    if len(panels) != rows * cols:
        raise ValueError(f"a {rows}x{cols} grid needs {rows * cols} panels, got {len(panels)}")
    side = panels[0].frames.shape[1]
    sample_rate = audio.sample_rate if audio is not None else panels[0].sample_rate
    if duration_ms is None:
        duration_ms = audio.duration_ms if audio is not None else max(p.duration_ms for p in panels)
    stamps = np.arange(0, duration_ms, 1000.0 / fps)
    out = np.full((len(stamps), rows * side, cols * side, 3), BACKGROUND, np.uint8)
    for i, t in enumerate(stamps):
        for k, panel in enumerate(panels):
            r, c = divmod(k, cols)
            x0 = c * side
            if k == leave_panel and leave_from_ms is not None and t >= leave_from_ms:
                x0 -= int(round(min(1.0, (t - leave_from_ms) / leave_ms) * (c + 1) * side))
            a, b = max(0, x0), min(cols * side, x0 + side)
            if b > a:
                out[i, r * side : (r + 1) * side, a:b] = panel.frame_at(t, loop=True)[:, a - x0 : b - x0]
    n = int(round(duration_ms * sample_rate / 1000))
    pcm = np.zeros(n, np.float32)
    if audio is not None:
        m = min(n, audio.pcm.size)
        pcm[:m] = audio.pcm[:m]
    return Clip(out, np.round(stamps).astype(np.int64), pcm, sample_rate, int(duration_ms))


def make_layout(layout: str, data: Path, *, side: int = 360, sample_rate: int = 16000, fps: float = 30.0) -> Clip:
    """One of :data:`LAYOUTS` built from the real clips under ``data`` (``../shared/data``)."""
    if layout not in LAYOUTS:
        raise ValueError(f"layout must be one of {LAYOUTS}, got {layout!r}")
    speaker = load_panel([data / p for p in CREMA_1001], side, sample_rate)
    other = load_panel([data / p for p in RAVDESS_AV], side, sample_rate)
    if layout == "left-speaks":
        return compose([speaker, other], speaker, fps=fps)
    if layout == "right-speaks":
        return compose([other, speaker], speaker, fps=fps)
    if layout == "off-screen":
        voice = load_panel([data / p for p in CREMA_1002_AUDIO], side, sample_rate)
        return compose([speaker, other], voice, fps=fps, duration_ms=min(voice.duration_ms, speaker.duration_ms))
    if layout == "speaker-leaves":
        return compose([speaker, other], speaker, fps=fps, leave_panel=0, leave_from_ms=speaker.duration_ms / 2)
    # The other two: actor 1001's panel mirrored and started a sixth and a half of the way in, so
    # that they talk while the voice pauses and pause while it talks.
    sixth, half = _shifted(speaker, speaker.duration_ms // 6), _shifted(speaker, speaker.duration_ms // 2)
    return compose([speaker, other, sixth, half], speaker, grid=(2, 2), fps=fps)


def _shifted(clip: Clip, offset_ms: int) -> Clip:
    """``clip`` mirrored left-right and started ``offset_ms`` in (looping), muted."""
    stamps = (clip.timestamps_ms - offset_ms) % clip.duration_ms
    order = np.argsort(stamps, kind="stable")
    frames = np.ascontiguousarray(clip.frames[order][:, :, ::-1])
    return Clip(frames, stamps[order], np.zeros_like(clip.pcm), clip.sample_rate, clip.duration_ms)


def write_mp4(clip: Clip, path: Path, fps: float = 30.0) -> Path:
    """Encode ``clip`` as H.264 (yuv420p, CRF 18) + AAC mono in an MP4 at ``path``."""
    import fractions

    import av

    height, width = clip.frames.shape[1:3]
    with av.open(str(path), mode="w") as container:
        video = container.add_stream("libx264", rate=fractions.Fraction(round(fps * 1000), 1000))
        video.width, video.height, video.pix_fmt = width - width % 2, height - height % 2, "yuv420p"
        video.options = {"crf": "18", "preset": "veryfast"}
        audio = container.add_stream("aac", rate=clip.sample_rate)
        audio.layout = "mono"
        for image in clip.frames:
            frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(image[: video.height, : video.width]), "rgb24")
            container.mux(video.encode(frame))
        container.mux(video.encode())
        pcm = np.clip(clip.pcm, -1.0, 1.0)
        block = 1024
        for start in range(0, pcm.size, block):
            piece = pcm[start : start + block].astype(np.float32)[None]
            frame = av.AudioFrame.from_ndarray(piece, format="flt", layout="mono")
            frame.sample_rate = clip.sample_rate
            frame.pts = start
            container.mux(audio.encode(frame))
        container.mux(audio.encode())
    return path


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--data", type=Path, default=Path("../shared/data"), help="the real data folder")
    parser.add_argument("--layout", choices=LAYOUTS, default="left-speaks")
    parser.add_argument("--side", type=int, default=360, help="panel side in pixels")
    parser.add_argument("--out", type=Path, default=Path("TWO_PEOPLE.mp4"))
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    clip = make_layout(args.layout, args.data, side=args.side)
    write_mp4(clip, args.out)
    log.info(
        "%s: %s, %d frames %dx%d, %.2f s",
        args.out,
        args.layout,
        len(clip.frames),
        clip.frames.shape[2],
        clip.frames.shape[1],
        clip.duration_ms / 1000,
    )


if __name__ == "__main__":
    main()
