"""Make the quickstart's sample clip, ``edge_emotion/assets/sample_astronaut.mp4``, from public-domain
material: a still photograph animated with a slow zoom and drift, and a sentence synthesised by
espeak-ng under it. Rerun it to rebuild the clip; ``edge_emotion/assets/README-sample.md`` says what
the clip is and where its parts come from.

Usage::

    pip install scikit-image          # only to read the photograph; the SDK does not need it
    python tools/make_sample_clip.py [--image PNG] [--out MP4]

The photograph is scikit-image's ``astronaut`` (Eileen Collins, NASA; public domain, see the README
beside the clip). ``--image`` takes any other RGB photograph of one face instead. Needs ``espeak-ng``
on the PATH (Debian/Ubuntu: ``apt-get install espeak-ng``). The output is the same for the same
image, espeak-ng version and encoder build (the encoders run single-threaded).
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import subprocess
import wave
from fractions import Fraction
from pathlib import Path

import av
import cv2
import numpy as np
from scipy.signal import resample_poly

REPO = Path(__file__).resolve().parents[1]
OUT = REPO / "edge_emotion" / "assets" / "sample_astronaut.mp4"

SENTENCE = "We did it! This is wonderful!"
# espeak-ng: US English, a female variant, fast (175 words/min), high pitch (80 of 99), loud: an excited reading.
ESPEAK_ARGS = ["-v", "en-us+f4", "-s", "175", "-p", "80", "-a", "180"]

FPS = 25
WIDTH, HEIGHT = 320, 240
DURATION_MS = 3000
SPEECH_START_MS = 250
SAMPLE_RATE = 16000
# The part of the 512x512 photograph shown: a 4:3 box around the face, (x, y, w, h) in source pixels.
VIEW = (65, 20, 320, 240)
ZOOM = 1.15  # the view shrinks by this factor over the clip (a slow push in)
DRIFT_PX = (14.0, 6.0)  # and its centre moves by this much, source pixels


def load_image(path: Path | None) -> np.ndarray:
    """The photograph, ``(H, W, 3) uint8`` RGB."""
    if path is None:
        from skimage import data  # scikit-image: only this script needs it

        return np.ascontiguousarray(data.astronaut())
    image = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if image is None:
        raise SystemExit(f"cannot read {path}")
    return cv2.cvtColor(image, cv2.COLOR_BGR2RGB)


def synthesise(sentence: str) -> np.ndarray:
    """espeak-ng's reading of ``sentence`` at :data:`SAMPLE_RATE`, ``(samples,) float32`` in [-1, 1]."""
    wav = subprocess.run(["espeak-ng", *ESPEAK_ARGS, "--stdout", sentence], check=True, capture_output=True).stdout
    with wave.open(io.BytesIO(wav)) as reader:
        rate = reader.getframerate()
        pcm = np.frombuffer(reader.readframes(reader.getnframes()), dtype="<i2").astype(np.float32) / 32768.0
    from math import gcd

    g = gcd(SAMPLE_RATE, rate)
    pcm = resample_poly(pcm, SAMPLE_RATE // g, rate // g).astype(np.float32)
    return np.clip(pcm / max(1e-6, float(np.abs(pcm).max())) * 0.9, -1.0, 1.0)


def frame_at(image: np.ndarray, t: float) -> np.ndarray:
    """The view at progress ``t`` in [0, 1]: ``(HEIGHT, WIDTH, 3) uint8``."""
    x, y, w, h = VIEW
    ease = 0.5 - 0.5 * np.cos(np.pi * t)
    scale = 1.0 + (ZOOM - 1.0) * ease  # output pixels per source pixel, times WIDTH / w
    cx, cy = x + w / 2 + DRIFT_PX[0] * ease, y + h / 2 + DRIFT_PX[1] * ease
    s = scale * WIDTH / w
    matrix = np.array([[s, 0.0, WIDTH / 2 - s * cx], [0.0, s, HEIGHT / 2 - s * cy]])
    return cv2.warpAffine(image, matrix, (WIDTH, HEIGHT), flags=cv2.INTER_AREA, borderMode=cv2.BORDER_REFLECT)


def write_clip(image: np.ndarray, pcm: np.ndarray, out: Path) -> None:
    n_samples = SAMPLE_RATE * DURATION_MS // 1000
    track = np.zeros(n_samples, np.float32)
    start = SAMPLE_RATE * SPEECH_START_MS // 1000
    speech = pcm[: n_samples - start]
    track[start : start + speech.size] = speech
    if pcm.size > speech.size:
        raise SystemExit(f"the speech lasts {1000 * pcm.size / SAMPLE_RATE:.0f} ms: too long for {DURATION_MS} ms")

    out.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(out), "w", format="mp4", options={"movflags": "+faststart"}) as container:
        container.metadata["comment"] = "edge-emotion sample: tools/make_sample_clip.py"
        video = container.add_stream("libx264", rate=FPS, options={"crf": "23", "preset": "slow", "threads": "1"})
        video.width, video.height, video.pix_fmt = WIDTH, HEIGHT, "yuv420p"
        audio = container.add_stream("aac", rate=SAMPLE_RATE)
        audio.layout = "mono"
        audio.bit_rate = 32_000
        n_frames = FPS * DURATION_MS // 1000
        for i in range(n_frames):
            frame = av.VideoFrame.from_ndarray(frame_at(image, i / (n_frames - 1)), format="rgb24")
            frame.pts, frame.time_base = i, Fraction(1, FPS)
            container.mux(video.encode(frame.reformat(format="yuv420p")))
        container.mux(video.encode(None))
        for i in range(0, track.size, 1024):
            frame = av.AudioFrame.from_ndarray(track[None, i : i + 1024].copy(), format="flt", layout="mono")
            frame.sample_rate, frame.pts, frame.time_base = SAMPLE_RATE, i, Fraction(1, SAMPLE_RATE)
            container.mux(audio.encode(frame))
        container.mux(audio.encode(None))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--image", type=Path, default=None, help="RGB photograph (default: scikit-image astronaut)")
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    image = load_image(args.image)
    pcm = synthesise(SENTENCE)
    write_clip(image, pcm, args.out)
    espeak = subprocess.run(["espeak-ng", "--version"], check=True, capture_output=True, text=True).stdout.strip()
    record = {
        "out": str(args.out),
        "bytes": args.out.stat().st_size,
        "sha256": hashlib.sha256(args.out.read_bytes()).hexdigest(),
        "image_sha256": hashlib.sha256(image.tobytes()).hexdigest(),
        "image_shape": list(image.shape),
        "sentence": SENTENCE,
        "espeak": espeak,
        "espeak_args": ESPEAK_ARGS,
        "speech_ms": round(1000 * pcm.size / SAMPLE_RATE),
        "pyav": av.__version__,
    }
    print(json.dumps(record, indent=1))


if __name__ == "__main__":
    main()
