"""Rebuild ``crema-d_1001_DFA_NEU_XX_vfr_offset.mp4`` from the CREMA-D original (see README.md).

Usage: ``python tests/data/make_samples.py [SHARED_DATA_DIR]`` (default ``../shared/data``).

The first 1.6 s of ``1001_DFA_NEU_XX.flv``: video re-encoded as MPEG-4 part 2 (480x360, ~200 kbit/s)
with each frame keeping its original pts, and from frame 24 on every third frame left out (a
variable frame rate); audio re-encoded as AAC (44.1 kHz mono, 48 kbit/s) starting at 0.5 s, the
first 0.5 s of audio left out (the audio track starts late). Content stays in sync.
"""

from __future__ import annotations

import sys
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

HERE = Path(__file__).resolve().parent
END_S = 1.6
AUDIO_START_S = 0.5
RATE = 44100


def main(data: Path) -> None:
    src_path = str(data / "crema-d" / "video" / "1001_DFA_NEU_XX.flv")
    dst_path = str(HERE / "crema-d_1001_DFA_NEU_XX_vfr_offset.mp4")
    with av.open(src_path) as src:
        frames = [(f.pts, f.to_ndarray(format="rgb24")) for f in src.decode(src.streams.video[0]) if f.time < END_S]
    with av.open(src_path) as src:
        pcm = np.concatenate([f.to_ndarray()[0] for f in src.decode(src.streams.audio[0])])
    pcm = pcm[int(AUDIO_START_S * RATE) : int(END_S * RATE)].astype(np.float32)

    out = av.open(dst_path, "w", format="mp4")
    video = out.add_stream("mpeg4", rate=30, options={"b": "200k", "maxrate": "250k", "bufsize": "500k"})
    video.width, video.height, video.pix_fmt = 480, 360, "yuv420p"
    video.time_base = video.codec_context.time_base = Fraction(1, 1000)
    audio = out.add_stream("aac", rate=RATE)
    audio.layout = "mono"
    audio.bit_rate = 48_000
    kept = [(pts, img) for i, (pts, img) in enumerate(frames) if i < 24 or i % 3 != 0]
    for pts, img in kept:
        frame = av.VideoFrame.from_ndarray(img, format="rgb24").reformat(format="yuv420p")
        frame.pts, frame.time_base = pts, Fraction(1, 1000)
        out.mux(video.encode(frame))
    out.mux(video.encode(None))
    for i in range(0, pcm.size, 1024):
        frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 1024].copy(), format="flt", layout="mono")
        frame.sample_rate = RATE
        frame.pts, frame.time_base = int(AUDIO_START_S * RATE) + i, Fraction(1, RATE)
        out.mux(audio.encode(frame))
    out.mux(audio.encode(None))
    out.close()
    print(f"{dst_path}: {len(kept)} of {len(frames)} frames, audio from {AUDIO_START_S} s")


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else HERE.parents[2] / "shared" / "data")
