"""Make the benchmark clip for file throughput: a real clip looped to ``--seconds`` (default 60),
640×480 H.264 (libx264, yuv420p, the source's frame rate) with AAC audio, written with PyAV.

    python tools/make_bench_clip.py SOURCE.mp4 /tmp/bench60.mp4

The picture is centre-cropped to 4:3 and scaled to 640×480 (faces are not stretched); the audio is
resampled to 48 kHz stereo and looped with the picture. The clip is derived at run time and is not
meant to be committed. ``tools/profile_file_run.py`` measures ``edge-emotion run`` on it.
Falls back to MPEG-4 Part 2 when this PyAV's FFmpeg has no libx264 (the script says so).
"""

from __future__ import annotations

import argparse
import logging
import sys
from fractions import Fraction
from pathlib import Path

import numpy as np

log = logging.getLogger("make_bench_clip")

WIDTH, HEIGHT = 640, 480
AUDIO_RATE = 48_000


def _read_source(path: Path) -> tuple[list[np.ndarray], Fraction, np.ndarray | None]:
    """The source's frames as ``(480, 640, 3) uint8`` RGB, its frame rate, and its audio as
    ``(2, S) float32`` at 48 kHz (None without an audio track)."""
    import av

    frames: list[np.ndarray] = []
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        rate = stream.average_rate or stream.guessed_rate or Fraction(30)
        for frame in container.decode(stream):
            w, h = frame.width, frame.height
            crop_w = min(w, h * 4 // 3)
            crop_h = min(h, w * 3 // 4)
            rgb = frame.to_ndarray(format="rgb24")
            x0, y0 = (w - crop_w) // 2, (h - crop_h) // 2
            cropped = av.VideoFrame.from_ndarray(
                np.ascontiguousarray(rgb[y0 : y0 + crop_h, x0 : x0 + crop_w]), format="rgb24"
            )
            frames.append(cropped.reformat(width=WIDTH, height=HEIGHT).to_ndarray(format="rgb24"))
    audio = None
    with av.open(str(path)) as container:
        if container.streams.audio:
            resampler = av.AudioResampler(format="fltp", layout="stereo", rate=AUDIO_RATE)
            parts = []
            for frame in container.decode(container.streams.audio[0]):
                parts.extend(f.to_ndarray() for f in resampler.resample(frame))
            parts.extend(f.to_ndarray() for f in resampler.resample(None))
            audio = np.concatenate(parts, axis=1).astype(np.float32) if parts else None
    return frames, Fraction(rate), audio


def make_clip(source: Path, out: Path, seconds: float = 60.0, codec: str | None = None) -> str:
    """Write the looped clip to ``out``; returns the video codec used."""
    import av

    frames, rate, audio = _read_source(source)
    if not frames:
        raise SystemExit(f"{source}: no video frames")
    if codec is None:
        codec = "libx264" if "libx264" in av.codecs_available else "mpeg4"
        if codec != "libx264":
            log.warning("this PyAV's FFmpeg has no libx264: writing MPEG-4 Part 2 instead of H.264")
    n_frames = int(round(seconds * rate))
    with av.open(str(out), mode="w") as container:
        vstream = container.add_stream(codec, rate=rate)
        vstream.width, vstream.height, vstream.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        astream = None
        if audio is not None:
            astream = container.add_stream("aac", rate=AUDIO_RATE)
            astream.layout = "stereo"
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frames[i % len(frames)], format="rgb24")
            frame.pts = i
            frame.time_base = 1 / rate
            for packet in vstream.encode(frame):
                container.mux(packet)
        for packet in vstream.encode(None):
            container.mux(packet)
        if astream is not None:
            total = int(round(seconds * AUDIO_RATE))
            reps = -(-total // audio.shape[1])
            looped = np.ascontiguousarray(np.tile(audio, (1, reps))[:, :total])
            block = 1024
            for at in range(0, total, block):
                piece = np.ascontiguousarray(looped[:, at : at + block])
                frame = av.AudioFrame.from_ndarray(piece, format="fltp", layout="stereo")
                frame.sample_rate = AUDIO_RATE
                frame.pts = at
                frame.time_base = Fraction(1, AUDIO_RATE)
                for packet in astream.encode(frame):
                    container.mux(packet)
            for packet in astream.encode(None):
                container.mux(packet)
    return codec


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("source", type=Path, help="a real clip with a face (e.g. a RAVDESS or CREMA-D video)")
    parser.add_argument("out", type=Path, help="where to write the clip (e.g. /tmp/bench60.mp4)")
    parser.add_argument("--seconds", type=float, default=60.0, help="length of the clip (default 60)")
    parser.add_argument("--codec", default=None, help="video encoder (default libx264, else mpeg4)")
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(message)s")
    codec = make_clip(args.source, args.out, args.seconds, args.codec)
    log.info("%s: %d s, %dx%d, %s", args.out, args.seconds, WIDTH, HEIGHT, codec)
    return 0


if __name__ == "__main__":
    sys.exit(main())
