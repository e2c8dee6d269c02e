"""Media for tests: the package's sample clip, and what tests derive at test time from it or from the
real clips in ``../shared/data`` (nothing derived is committed).

:func:`make_vfr_offset` writes a clip with a variable frame rate and an audio track that starts late
from a CREMA-D original, so that tests can check that timestamps come from each stream's own time
base. ``tests/conftest.py`` calls it once per session into a temporary folder.
:func:`make_long_clip` writes a synthetic clip of any length, with either track or both.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import numpy as np

#: The package's sample clip, made by ``tools/make_sample_clip.py``: 3.0 s, 320x240 H.264 at 25 fps,
#: AAC 16 kHz mono; one face (a still photograph, slowly zoomed) and synthetic speech from 0.25 s
#: to about 2.5 s.
SAMPLE_CLIP = Path(__file__).resolve().parents[1] / "edge_emotion" / "assets" / "sample_astronaut.mp4"

VFR_END_S = 1.6
VFR_AUDIO_START_S = 0.5
_RATE = 44100


def make_vfr_offset(src: Path, dst: Path) -> Path:
    """The first 1.6 s of ``src`` (a CREMA-D ``.flv``: VP6 480x360 at 29.97 fps, MP3 44.1 kHz mono)
    as an MP4 at ``dst``: video re-encoded as MPEG-4 part 2 with each frame keeping its original
    pts, and from frame 24 on every third frame left out (a variable frame rate: 40 of 48 frames);
    audio re-encoded as AAC 44.1 kHz mono starting at 0.5 s, the first 0.5 s left out (the audio
    track starts late). Content stays in sync with the original. Returns ``dst``."""
    with av.open(str(src)) as container:
        frames = [
            (f.pts, f.to_ndarray(format="rgb24"))
            for f in container.decode(container.streams.video[0])
            if f.time < VFR_END_S
        ]
    with av.open(str(src)) as container:
        pcm = np.concatenate([f.to_ndarray()[0] for f in container.decode(container.streams.audio[0])])
    pcm = pcm[int(VFR_AUDIO_START_S * _RATE) : int(VFR_END_S * _RATE)].astype(np.float32)

    with av.open(str(dst), "w", format="mp4") as out:
        video = out.add_stream("mpeg4", rate=30, options={"b": "200k", "maxrate": "250k", "bufsize": "500k"})
        video.width, video.height, video.pix_fmt = 480, 360, "yuv420p"
        video.time_base = video.codec_context.time_base = Fraction(1, 1000)
        audio = out.add_stream("aac", rate=_RATE)
        audio.layout = "mono"
        audio.bit_rate = 48_000
        for i, (pts, image) in enumerate(frames):
            if i >= 24 and i % 3 == 0:
                continue
            frame = av.VideoFrame.from_ndarray(image, format="rgb24").reformat(format="yuv420p")
            frame.pts, frame.time_base = pts, Fraction(1, 1000)
            out.mux(video.encode(frame))
        out.mux(video.encode(None))
        for i in range(0, pcm.size, 1024):
            frame = av.AudioFrame.from_ndarray(pcm[None, i : i + 1024].copy(), format="flt", layout="mono")
            frame.sample_rate = _RATE
            frame.pts, frame.time_base = int(VFR_AUDIO_START_S * _RATE) + i, Fraction(1, _RATE)
            out.mux(audio.encode(frame))
        out.mux(audio.encode(None))
    return dst


def remux(src: Path, dst: Path) -> Path:
    """``src``'s audio and video packets, unchanged, in the container ``dst``'s suffix names (e.g. an
    ``.mp4`` as ``.flv``, the container of CREMA-D's clips). Returns ``dst``."""
    with av.open(str(src)) as inp, av.open(str(dst), "w") as out:
        streams = {s.index: out.add_stream_from_template(s) for s in inp.streams if s.type in ("audio", "video")}
        for packet in inp.demux(*(inp.streams[i] for i in streams)):
            if packet.dts is None:
                continue
            packet.stream = streams[packet.stream.index]
            out.mux(packet)
    return dst


def make_long_clip(path: Path, seconds: int = 20, *, video: bool = True, audio: bool = True) -> Path:
    """A small synthetic clip (grey frames, a tone; ``video`` / ``audio`` choose the tracks) long
    enough that the reader is still reading when the first window's result comes out."""
    with av.open(str(path), mode="w") as container:
        picture_stream = container.add_stream("mpeg4", rate=30) if video else None
        sound_stream = container.add_stream("aac", rate=16000) if audio else None
        if sound_stream is not None:
            sound_stream.layout = "mono"
        if picture_stream is not None:
            picture_stream.width, picture_stream.height, picture_stream.pix_fmt = 128, 96, "yuv420p"
            frames = []
            for i in range(30 * seconds):
                frame = av.VideoFrame.from_ndarray(np.full((96, 128, 3), i % 256, np.uint8), format="rgb24")
                frame.pts = i
                frames.append(frame)
            encode_all(container, picture_stream, frames)
        if sound_stream is not None:
            tone = (0.1 * np.sin(2 * np.pi * 220 * np.arange(16000 * seconds) / 16000)).astype(np.float32)
            chunks = []
            for at in range(0, tone.size, 1024):
                frame = av.AudioFrame.from_ndarray(tone[None, at : at + 1024].copy(), format="fltp", layout="mono")
                frame.sample_rate, frame.pts = 16000, at
                chunks.append(frame)
            encode_all(container, sound_stream, chunks)
    return path


def encode_all(container, stream, frames) -> None:
    """Encode ``frames`` on ``stream``, flush the encoder, and mux every packet into ``container``."""
    for frame in [*frames, None]:
        container.mux(stream.encode(frame))
