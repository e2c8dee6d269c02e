"""A kiosk-style app: camera + microphone in, a steady mood per person out, from callbacks.

    python examples/kiosk.py                      # camera 0 and the default microphone
    python examples/kiosk.py --camera 1 --mic "USB Audio" --display
    python examples/kiosk.py --video clip.mp4     # the same code path, fed from a file
    python examples/kiosk.py --video clip.mp4 --realtime --display   # ... played at its own rate, shown

The recognizer runs in a worker thread and calls ``on_result`` once per window and person (every
500 ms here, each over the last 3 s), following up to ``--max-faces`` people (4 by default). The raw
label of successive windows flickers; a kiosk reacts to :class:`edge_emotion.steady.SteadyLabel`
instead, one per person, which changes its mood only after a mood has held for a while, when the new
one is clearly ahead for two windows in a row. The app greets each person who arrives (by person id,
the face's track id), reacts when that person's mood changes, says goodbye when a face has not been
seen for a few seconds, says when it hears a voice that no face in view makes, and goes idle when
everybody has left.
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
    """What the kiosk says, driven by each person's steady mood (called from the recognizer's worker
    thread). ``moods``: the :class:`SteadyLabel` of every person in view, by person id."""

    def __init__(self, options: SteadyOptions | None = None):
        self.options = options or SteadyOptions()
        self.moods: dict[int, SteadyLabel] = {}
        self._last_seen: dict[int, int] = {}  # person -> t_end_ms of their last result
        self._window: int | None = None  # t_start_ms of the window being reported
        self._voice_off_screen = False  # an off-screen voice in the window being reported
        self._off_screen_before = 0  # consecutive windows with one, just before this window
        self._idle = True

    def on_result(self, result) -> None:
        if result.t_start_ms != self._window:  # a new window: close the previous one
            if self._window is not None:
                self._off_screen_before = self._off_screen_before + 1 if self._voice_off_screen else 0
            self._window = result.t_start_ms
            self._voice_off_screen = False
        if result.person is None:  # no face: a voice that nobody in view makes, or nothing at all
            if result.speaking and result.modalities == ("audio",):
                # Said once per run of such windows, in its second: one window's speaker decision
                # (e.g. the last, partial window of a clip) is not enough to speak up.
                if self._off_screen_before == 1 and not self._voice_off_screen:
                    self._say("I can hear someone I can't see - come closer!")
                self._voice_off_screen = True
        else:
            self._person(result)
        self._goodbyes(result.t_end_ms)

    def _person(self, result) -> None:
        person = result.person
        mood = self.moods.get(person)
        if mood is None:
            mood = self.moods[person] = SteadyLabel(self.options)
            self._idle = False
            self._say(f"hello, person {person}!")
        self._last_seen[person] = result.t_end_ms
        state = mood.update(result)
        if state.changed and state.mood not in (NOBODY, "unknown"):
            self._say(
                f"mood: {state.mood} (person {person}, {state.confidence:.2f}, from {'+'.join(result.modalities)}, "
                f"at {state.since_ms / 1000:.1f} s) - {REACTIONS.get(state.mood, 'Welcome!')}"
            )

    def _goodbyes(self, now_ms: int) -> None:
        for person, seen in list(self._last_seen.items()):
            if now_ms - seen > self.options.nobody_after_ms:
                del self._last_seen[person], self.moods[person]
                self._say(f"goodbye, person {person}")
        if not self.moods and not self._idle and not self._voice_off_screen:
            self._idle = True
            self._say("idle: nobody here")

    @staticmethod
    def _say(text: str) -> None:
        print(f"[kiosk] {text}", flush=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--camera", default="0", help="a camera index, a stream URL or a video device path")
    parser.add_argument("--mic", default="default")
    parser.add_argument("--video", help="run on a file instead of the camera and microphone")
    parser.add_argument("--realtime", action="store_true", help="play --video at its own rate, as a camera would")
    parser.add_argument("--display", action="store_true", help="show the camera with the overlay")
    parser.add_argument("--model", help="a bundle directory (default: the shipped model)")
    parser.add_argument("--seconds", type=float, default=0, help="stop after this long (0: until Ctrl-C)")
    parser.add_argument("--max-faces", type=int, default=4, help="follow up to this many people at once")
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

    recognizer = Recognizer.from_bundle(args.model, hop_ms=500, smoothing=0.6, max_faces=args.max_faces)
    kiosk = Kiosk()
    if args.video:
        from edge_emotion.sources import AudioFileSource, VideoFileSource, open_media

        media = open_media(args.video)
        video = VideoFileSource(args.video) if media.video else None
        audio = AudioFileSource(args.video, sample_rate=recognizer.preset.audio.sample_rate) if media.audio else None
        if args.realtime:
            video, audio = paced(video, audio)
        session = recognizer.live(
            on_result=kiosk.on_result, camera=None, mic=None, video_source=video, audio_source=audio
        )
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
    moods = ", ".join(f"person {p}: {m.state.mood}" for p, m in sorted(kiosk.moods.items())) or NOBODY
    print(f"[kiosk] stopped after {session.results_count} results; moods at the end: {moods}")


if __name__ == "__main__":
    main()
