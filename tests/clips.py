"""Media files made at test time from real clips (never committed): :func:`concat_clips` writes the
clips one after the other into one MP4 (H.264 + AAC), so a test gets a longer clip, or one whose
emotion changes half-way."""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from edge_emotion.sources import open_media, read_audio

SAMPLE_RATE = 16000


def concat_clips(paths: list[Path], out: Path, fps: int = 30) -> list[float]:
    """Write ``paths`` back to back into ``out`` (``fps`` frames per second, every clip resized to
    the first one's size, mono 16 kHz audio); returns each clip's start in seconds."""
    import av
    import cv2

    starts: list[float] = []
    with av.open(str(out), mode="w") as container:
        video = audio = None
        frame_index = 0
        sample_index = 0
        for path in paths:
            start_s = max(frame_index / fps, sample_index / SAMPLE_RATE)
            frame_index, sample_index = round(start_s * fps), round(start_s * SAMPLE_RATE)
            starts.append(start_s)
            frames = list(open_media(path).video)
            pcm, _ = read_audio(path, SAMPLE_RATE)
            if video is None:
                h, w = frames[0].image.shape[:2]
                video = container.add_stream("libx264", rate=fps)
                video.width, video.height, video.pix_fmt = w - w % 2, h - h % 2, "yuv420p"
                audio = container.add_stream("aac", rate=SAMPLE_RATE)
                audio.layout = "mono"
            span_s = max(frames[-1].timestamp_ms / 1000.0 + 1.0 / fps, pcm.size / SAMPLE_RATE)
            for k in range(round(span_s * fps)):  # resample the clip's frames onto the output's grid
                t_ms = 1000.0 * k / fps
                src = min(frames, key=lambda f: abs(f.timestamp_ms - t_ms)).image
                image = (
                    cv2.resize(src, (video.width, video.height))
                    if src.shape[:2] != (video.height, video.width)
                    else src
                )
                vf = av.VideoFrame.from_ndarray(np.ascontiguousarray(image), format="rgb24")
                vf.pts = frame_index
                vf.time_base = Fraction(1, fps)
                container.mux(video.encode(vf))
                frame_index += 1
            for i in range(0, pcm.size, 1024):
                block = (np.clip(pcm[i : i + 1024], -1, 1) * 32767).astype(np.int16)[None]
                af = av.AudioFrame.from_ndarray(block, format="s16", layout="mono")
                af.sample_rate = SAMPLE_RATE
                af.pts = sample_index
                af.time_base = Fraction(1, SAMPLE_RATE)
                container.mux(audio.encode(af))
                sample_index += block.shape[1]
        container.mux(video.encode(None))
        container.mux(audio.encode(None))
    return starts
