"""A kiosk-style app: camera + microphone in, the current emotion out, from callbacks.

    python examples/kiosk.py                      # camera 0 and the default microphone
    python examples/kiosk.py --camera 1 --mic "USB Audio"
    python examples/kiosk.py --video clip.mp4     # the same code path, fed from a file

The recognizer runs in a worker thread and calls ``on_result`` once per window. The app keeps a
small state machine — greet when someone shows up, react when their mood changes, go idle when
nobody has been seen or heard for a while — which is what a kiosk or a robot does with the results.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time

from edge_emotion.recognizer import Recognizer
from edge_emotion.results import EmotionResult

REACTIONS = {
    "happy": "Glad you're enjoying it!",
    "angry": "Sorry about that - shall I call a member of staff?",
    "sad": "Can I help you find something?",
    "fearful": "Take your time - nothing here is urgent.",
    "surprised": "Surprising, isn't it?",
    "disgust": "Let's try something else.",
}


class KioskState:
    """What the kiosk shows, updated from the recognizer's worker thread."""

    def __init__(self, idle_after_s: float = 10.0):
        self.idle_after_s = idle_after_s
        self.mood: str | None = None
        self.last_seen = 0.0
        self.lock = threading.Lock()

    def on_result(self, result: EmotionResult) -> None:
        with self.lock:
            now = time.monotonic()
            if not result.modalities:  # nobody seen or heard in this window
                if self.mood is not None and now - self.last_seen > self.idle_after_s:
                    print("[kiosk] idle: nobody here")
                    self.mood = None
                return
            if self.mood is None:
                print("[kiosk] hello there!")
            self.last_seen = now
            if result.label != self.mood and result.confidence >= 0.4:
                self.mood = result.label
                print(f"[kiosk] mood: {result.label} ({result.confidence:.2f}, from {'+'.join(result.modalities)})"
                      f" - {REACTIONS.get(result.label, 'Welcome!')}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camera", type=int, default=0)
    parser.add_argument("--mic", default="default")
    parser.add_argument("--video", help="run on a file instead of the camera and microphone")
    parser.add_argument("--model", help="a bundle directory (default: the shipped model)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until Ctrl-C)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.INFO)

    recognizer = Recognizer.from_bundle(args.model, hop_ms=500, smoothing=0.6)
    state = KioskState()
    if args.video:
        from edge_emotion.sources import AudioFileSource, VideoFileSource, open_media

        media = open_media(args.video)
        session = recognizer.live(
            on_result=state.on_result,
            video_source=VideoFileSource(args.video) if media.video else None,
            audio_source=AudioFileSource(args.video, sample_rate=recognizer.preset.audio.sample_rate)
            if media.audio
            else None,
        )
    else:
        session = recognizer.live(camera=args.camera, mic=args.mic, on_result=state.on_result)

    with session:  # opens the devices (a missing one raises DeviceError here), starts the worker
        deadline = time.monotonic() + args.seconds if args.seconds else None
        try:
            while not session.wait(0.2):
                if deadline and time.monotonic() > deadline:
                    break
        except KeyboardInterrupt:
            pass
    print(f"[kiosk] stopped after {session.results_count} results")


if __name__ == "__main__":
    main()
