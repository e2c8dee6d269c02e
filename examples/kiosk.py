"""A kiosk-style app: camera + microphone in, a steady mood out, from callbacks.

    python examples/kiosk.py                      # camera 0 and the default microphone
    python examples/kiosk.py --camera 1 --mic "USB Audio" --display
    python examples/kiosk.py --video clip.mp4     # the same code path, fed from a file
    python examples/kiosk.py --video clip.mp4 --realtime --display   # ... played at its own rate, shown

The recognizer runs in a worker thread and calls ``on_result`` once per window (every 500 ms here,
each over the last 3 s). The raw label of successive windows flickers; a kiosk reacts to
:class:`edge_emotion.steady.SteadyLabel` instead, which changes its mood only after a mood has held
for a while, when the new one is clearly ahead for two windows in a row, and goes to "nobody" when
nobody has been seen or heard for a few seconds. The app greets whoever arrives, reacts when the
mood changes and goes idle when they leave.
"""

from __future__ import annotations

import argparse
import logging

from edge_emotion.steady import NOBODY, SteadyLabel, SteadyOptions

REACTIONS = {
    "happy": "Glad you're enjoying it!",
    "angry": "Sorry about that - shall I call a member of staff?",
    "sad": "Can I help you find something?",
    "fearful": "Take your time - nothing here is urgent.",
    "surprised": "Surprising, isn't it?",
    "disgust": "Let's try something else.",
}


class Kiosk:
    """What the kiosk says, driven by the steady mood (called from the recognizer's worker thread)."""

    def __init__(self, options: SteadyOptions | None = None):
        self.mood = SteadyLabel(options)

    def on_result(self, result) -> None:
        state = self.mood.update(result)
        if not state.changed:
            return
        if state.mood == NOBODY:
            print("[kiosk] idle: nobody here", flush=True)
        elif state.mood == "unknown":
            print("[kiosk] hello there!", flush=True)
        else:
            print(f"[kiosk] mood: {state.mood} ({state.confidence:.2f}, from {'+'.join(result.modalities)}, "
                  f"at {state.since_ms / 1000:.1f} s) - {REACTIONS.get(state.mood, 'Welcome!')}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camera", default="0", help="a camera index, a stream URL or a video device path")
    parser.add_argument("--mic", default="default")
    parser.add_argument("--video", help="run on a file instead of the camera and microphone")
    parser.add_argument("--realtime", action="store_true", help="play --video at its own rate, as a camera would")
    parser.add_argument("--display", action="store_true", help="show the camera with the overlay")
    parser.add_argument("--model", help="a bundle directory (default: the shipped model)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until Ctrl-C)")
    args = parser.parse_args()
    logging.basicConfig(level=logging.WARNING)

    window = None
    if args.display:  # before anything loads PyAV (see edge_emotion/display.py)
        from edge_emotion.display import Window
        from edge_emotion.errors import DeviceError

        try:
            window = Window("kiosk")
        except DeviceError as exc:
            print(f"[kiosk] no window: {exc}")

    from edge_emotion.live import paced
    from edge_emotion.recognizer import Recognizer

    recognizer = Recognizer.from_bundle(args.model, hop_ms=500, smoothing=0.6)
    kiosk = Kiosk()
    if args.video:
        from edge_emotion.sources import AudioFileSource, VideoFileSource, open_media

        media = open_media(args.video)
        video = VideoFileSource(args.video) if media.video else None
        audio = AudioFileSource(args.video, sample_rate=recognizer.preset.audio.sample_rate) if media.audio else None
        if args.realtime:
            video, audio = paced(video, audio)
        session = recognizer.live(on_result=kiosk.on_result, camera=None, mic=None, video_source=video,
                                  audio_source=audio)
    else:
        camera = int(args.camera) if args.camera.isdigit() else args.camera
        session = recognizer.live(camera=camera, mic=args.mic, on_result=kiosk.on_result)

    import time

    try:
        with session:  # opens the devices (a missing one raises DeviceError here), starts the worker
            deadline = time.monotonic() + args.seconds if args.seconds else None
            if window is not None:
                from edge_emotion.display import show_session

                show_session(session, window)
            else:
                while not session.wait(0.2):
                    if deadline and time.monotonic() > deadline:
                        break
    except KeyboardInterrupt:
        pass
    finally:
        if window is not None:
            window.close()
    print(f"[kiosk] stopped after {session.results_count} results; mood at the end: {kiosk.mood.state.mood}")


if __name__ == "__main__":
    main()
