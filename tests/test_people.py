"""Several people at once: face tracks with stable ids (edge_emotion.frontend.tracks) and who speaks
(edge_emotion.frontend.speaker), on synthetic cases and on composites of real clips built at test
time by tools/make_composite.py."""

from __future__ import annotations

import importlib.util
import sys
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest

from edge_emotion.config import EDGE
from edge_emotion.frontend.face import FaceObservation, FaceTracker
from edge_emotion.frontend.features import window_speech_steps
from edge_emotion.frontend.speaker import (
    ActiveSpeaker,
    MouthMotion,
    SpeakerConfig,
    decide_speaker,
    mouth_region,
    synchrony,
    voice_levels,
)
from edge_emotion.frontend.tracks import FaceTracks, MultiFaceTracker, TrackConfig
from edge_emotion.sources import VideoFileSource

REPO_ROOT = Path(__file__).resolve().parents[1]
PRESET = EDGE
#: The share of speech windows in which the face owning the voice must be the one flagged.
MIN_SPEAKER_RATE = 0.9


def face(bbox, t=0, score=0.9, status="ok", mouth=None) -> FaceObservation:
    x, y, w, h = bbox
    mouth = mouth if mouth is not None else (x + w / 2, y + 0.75 * h)
    points = ((x + 0.3 * w, y + 0.4 * h), (x + 0.7 * w, y + 0.4 * h), (x + w / 2, y + 0.55 * h), mouth)
    return FaceObservation(t, status, bbox, score, 1, False, points)


# -- tracks: bookkeeping ---------------------------------------------------------------------
def test_ids_follow_moving_faces_and_stay_apart():
    tracks = FaceTracks(TrackConfig(max_faces=2))
    ids = []
    for k in range(20):  # two faces drifting towards each other by 6 px per frame
        left, right = face((100 + 6 * k, 100, 120, 120)), face((500 - 6 * k, 110, 100, 100))
        out = tracks.update([right, left] if k % 2 else [left, right], 100 * k)
        ids.append({"left" if tf.bbox[0] < 300 else "right": tf.track_id for tf in out})
    assert ids[0]["left"] != ids[0]["right"]
    assert all(i == ids[0] for i in ids)


def test_a_face_gone_longer_than_the_gap_gets_a_new_id():
    tracks = FaceTracks(TrackConfig(max_faces=2, max_gap_ms=1000))
    a = face((100, 100, 100, 100))
    first = tracks.update([a], 0)[0].track_id
    assert tracks.update([], 500) == []
    assert tracks.update([a], 900)[0].track_id == first  # back within the gap: same person
    tracks.update([], 1500)
    again = tracks.update([a], 2000)[0].track_id  # 1100 ms unseen: a new track
    assert again != first and tracks.active_ids == [again]


def test_max_faces_keeps_followed_faces_before_larger_newcomers():
    tracks = FaceTracks(TrackConfig(max_faces=2))
    small, medium = face((0, 0, 60, 60)), face((200, 0, 80, 80))
    first = {tf.track_id for tf in tracks.update([small, medium], 0)}
    big = face((400, 0, 150, 150))
    second = tracks.update([small, medium, big], 100)
    assert {tf.track_id for tf in second} == first  # the newcomer waits for a free slot
    assert [tf.bbox for tf in second] == [medium.bbox, small.bbox]  # largest first
    third = tracks.update([big], 200)
    assert len(third) == 1 and third[0].track_id not in first


def test_unusable_faces_are_not_followed_and_time_must_increase():
    tracks = FaceTracks(TrackConfig(max_faces=3))
    tiny = face((0, 0, 10, 10), status="too_small")
    assert tracks.update([tiny], 0) == []
    with pytest.raises(ValueError, match="increase"):
        tracks.update([], 0)
    with pytest.raises(ValueError):
        TrackConfig(max_faces=0)


def test_centre_matching_when_boxes_no_longer_overlap_much():
    tracks = FaceTracks(TrackConfig(max_faces=1, min_iou=0.9, max_centre_shift=0.5))
    tid = tracks.update([face((100, 100, 100, 100))], 0)[0].track_id
    # IoU 0.67 < 0.9 but the centre moved 20 px = 0.2 face sizes
    assert tracks.update([face((120, 100, 100, 100))], 100)[0].track_id == tid
    # 80 px = 0.8 face sizes: someone else
    assert tracks.update([face((200, 100, 100, 100))], 200)[0].track_id != tid


def test_a_face_detected_again_after_carried_frames_may_have_moved_further():
    """With detect_every=3 the detector finds a moving face every 300 ms and carries it between:
    the next detection may lie three steps' worth of shift away and still be the same person;
    detected on every frame, the same jump within 100 ms is someone else."""
    from dataclasses import replace

    carried = FaceTracks(TrackConfig(max_faces=1, min_iou=0.9))
    tid = carried.update([face((100, 100, 100, 100), t=0)], 0)[0].track_id
    for t in (100, 200):  # the face found at 0 ms, carried
        assert carried.update([replace(face((100, 100, 100, 100), t=t), detected_ms=0)], t)[0].track_id == tid
    moved = face((230, 100, 100, 100), t=300)  # 1.3 face sizes in 300 ms
    assert carried.update([moved], 300)[0].track_id == tid
    far = face((230 + 520, 100, 100, 100), t=600)  # 5.2 sizes in 300 ms: too far, whatever the steps
    assert carried.update([far], 600)[0].track_id != tid

    every = FaceTracks(TrackConfig(max_faces=1, min_iou=0.9))
    tid = every.update([face((100, 100, 100, 100), t=0)], 0)[0].track_id
    every.update([face((100, 100, 100, 100), t=200)], 200)
    assert every.update([face((230, 100, 100, 100), t=300)], 300)[0].track_id != tid


# -- speaker: pieces -------------------------------------------------------------------------
def test_synchrony_follows_the_envelope_not_its_scale():
    cfg = SpeakerConfig()
    rng = np.random.default_rng(0)
    level = np.where(np.sin(np.linspace(0, 6 * np.pi, 90)) > 0, -20.0, -55.0) + rng.normal(0, 1, 90)
    talking = np.where(level > -40, 8.0, 1.0) + rng.uniform(0, 1, 90)
    assert synchrony(talking, level, cfg) > 0.8
    assert synchrony(10 * talking, level, cfg) > 0.8
    assert abs(synchrony(rng.uniform(0, 8, 90), level, cfg)) < 0.3
    assert synchrony(np.ones(90), level, cfg) is None  # a still mouth says nothing
    assert synchrony(talking[:5], level[:5], cfg) is None  # too few samples


def test_decide_speaker_needs_speech_and_enough_synchrony():
    cfg = SpeakerConfig(min_synchrony=0.5, keep_synchrony=0.45, min_speech_steps=3)
    assert decide_speaker({1: 0.7, 2: 0.2}, 10, cfg).speaker == 1
    assert decide_speaker({1: 0.7, 2: 0.2}, 2, cfg).speaker is None  # no speech: nobody speaks
    assert decide_speaker({1: 0.4, 2: None}, 10, cfg).speaker is None  # an off-screen voice
    assert decide_speaker({}, 10, cfg).speaker is None
    assert decide_speaker({1: 0.47, 2: 0.2}, 10, cfg, current=1).speaker == 1  # the speaker keeps the turn
    assert decide_speaker({1: 0.47, 2: 0.2}, 10, cfg, current=2).speaker is None  # a newcomer needs more
    assert decide_speaker({1: 0.4, 2: 0.2}, 10, cfg, current=1).speaker is None


def test_voice_levels_are_the_level_of_the_moved_interval():
    audio = PRESET.audio
    pcm = np.zeros(audio.window_samples, np.float32)
    t = np.arange(audio.sample_rate) / audio.sample_rate
    loud = 0.1 * np.sqrt(2) * np.sin(2 * np.pi * 440 * t)  # RMS 0.1 (levels are taken about the DC offset)
    pcm[audio.sample_rate : 2 * audio.sample_rate] = loud  # loud from 1 s to 2 s of the window
    intervals = np.array([[500, 533], [1400, 1433], [2500, 2533], [2990, 3023]], np.float64)
    levels = voice_levels(pcm, 1000, intervals + 1000, PRESET, lead_ms=67)
    assert levels[0] == pytest.approx(audio.vad_floor_db)
    assert levels[1] == pytest.approx(-20.0, abs=0.5)  # an RMS of 0.1 is -20 dBFS
    assert levels[2] == pytest.approx(audio.vad_floor_db)
    assert np.isnan(levels[3])  # moved past the window's end


def test_mouth_motion_sees_a_moving_mouth_and_skips_repeated_frames():
    rng = np.random.default_rng(1)
    base = rng.integers(60, 200, (240, 320, 3), dtype=np.uint8)
    person = face((100, 60, 100, 100))
    motion = MouthMotion()
    assert motion.update(base, {0: person}, 0) == {}  # the first frame has nothing to compare with
    frame = base.copy()
    x, y, w, h = mouth_region(person, motion.config)
    frame[y : y + h, x : x + w] = 255 - frame[y : y + h, x : x + w]
    first = motion.update(frame, {0: person}, 33)
    assert first[0][0] == 0 and first[0][1] > 10
    assert motion.update(frame, {0: person}, 66) == {}  # the same picture again
    second = motion.update(base, {0: person}, 100)
    assert second[0][0] == 33  # compared with the last different picture, per 1/30 s
    assert second[0][1] == pytest.approx(first[0][1] * 33 / 67, rel=0.05)
    blinked = base.copy()
    blinked[60:100, 100:200] = 0  # the upper face changes, the mouth does not
    assert motion.update(blinked, {0: person}, 133)[0][1] == pytest.approx(0.0, abs=1e-6)
    assert motion.update(blinked, {}, 166) == {}  # no face, nothing; and its reference is dropped
    assert motion.update(base, {0: person}, 200) == {}


def test_speaker_config_is_validated():
    with pytest.raises(ValueError):
        SpeakerConfig(min_synchrony=2.0)
    with pytest.raises(ValueError):
        SpeakerConfig(patch_size=(1, 8))


# -- real faces ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def composites():
    spec = importlib.util.spec_from_file_location("make_composite", REPO_ROOT / "tools" / "make_composite.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["make_composite"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


@dataclass
class Run:
    """What the tracks and the speaker decision made of a composite clip."""

    boxes: dict[int, list[tuple[int, tuple[int, int, int, int]]]]  # track -> (timestamp_ms, bbox) per detection
    windows: list[tuple[int, int, int | None, int]]  # (start_ms, length_ms, speaker, speech steps)

    def side(self, track_id: int, width: int) -> str:
        xs = [x + w / 2 for _, (x, _, w, _) in self.boxes[track_id]]
        return "left" if np.median(xs) < width / 2 else "right"


def run_people(clip, max_faces: int, hop_ms: int = 1000, detect_every: int = 3) -> Run:
    """Follow the faces of ``clip`` (detecting on every ``detect_every``-th frame, as the stream
    does at the model's 10 fps from 30 fps video) and decide the speaker per window of the stream's
    grid (full windows, then a last partial one)."""
    speaker = ActiveSpeaker(PRESET)
    boxes: dict[int, list] = {}
    with MultiFaceTracker(PRESET.visual, TrackConfig(max_faces=max_faces)) as tracker:
        for i, (image, t) in enumerate(zip(clip.frames, clip.timestamps_ms, strict=True)):
            faces = None
            if i % detect_every == 0:
                followed, _ = tracker.track(image, int(t))
                faces = {tf.track_id: tf.observation for tf in followed}
                for tf in followed:
                    boxes.setdefault(tf.track_id, []).append((int(t), tf.bbox))
            speaker.push_frame(image, int(t), faces)
    window_ms, rate = PRESET.window_ms, clip.sample_rate
    starts = list(range(0, clip.duration_ms - window_ms + 1, hop_ms))
    if clip.duration_ms - (starts[-1] + window_ms) >= 100:
        starts.append(starts[-1] + hop_ms)
    windows = []
    for start in starts:
        length = min(window_ms, clip.duration_ms - start)
        pcm = np.zeros(PRESET.audio.window_samples, np.float32)
        piece = clip.pcm[start * rate // 1000 : (start + length) * rate // 1000]
        pcm[: piece.size] = piece
        speech = int(window_speech_steps(pcm, PRESET).sum())
        windows.append((start, length, speaker.decide(pcm, start, length, speech).speaker, speech))
    return Run(boxes, windows)


def speech_windows(run: Run) -> list[tuple[int, int, int | None, int]]:
    return [w for w in run.windows if w[3] >= SpeakerConfig().min_speech_steps]


@pytest.mark.parametrize("layout, owner_side", [("left-speaks", "left"), ("right-speaks", "right")])
def test_the_face_whose_clip_owns_the_voice_is_the_speaker(shared_data, composites, layout, owner_side):
    clip = composites.make_layout(layout, shared_data)
    run = run_people(clip, max_faces=2)
    width = clip.frames.shape[2]
    # two people, one id each for the whole clip, each on its own side
    assert len(run.boxes) == 2
    assert {run.side(tid, width) for tid in run.boxes} == {"left", "right"}
    n_detections = len(range(0, len(clip.frames), 3))
    assert all(len(seen) >= 0.9 * n_detections for seen in run.boxes.values())
    owner = next(tid for tid in run.boxes if run.side(tid, width) == owner_side)
    windows = speech_windows(run)
    assert len(windows) >= 4
    hits = sum(w[2] == owner for w in windows)
    assert hits >= MIN_SPEAKER_RATE * len(windows), run.windows
    assert all(w[2] in (owner, None) for w in run.windows)  # the muted face is never given the voice


def test_nobody_visible_speaks_under_another_voice_or_silence(shared_data, composites):
    off_screen = run_people(composites.make_layout("off-screen", shared_data), max_faces=2)
    assert len(off_screen.boxes) == 2
    assert len(speech_windows(off_screen)) >= 4  # there is a voice ...
    assert all(w[2] is None for w in off_screen.windows), off_screen.windows  # ... but not theirs
    clip = composites.make_layout("left-speaks", shared_data)
    silent = replace_pcm(clip, np.zeros_like(clip.pcm))
    run = run_people(silent, max_faces=2)
    assert len(run.boxes) == 2 and all(w[2] is None and w[3] == 0 for w in run.windows)


def replace_pcm(clip, pcm):
    from dataclasses import replace

    return replace(clip, pcm=pcm)


def test_the_speaker_leaves_mid_clip(shared_data, composites):
    clip = composites.make_layout("speaker-leaves", shared_data)
    run = run_people(clip, max_faces=2)
    width = clip.frames.shape[2]
    assert len(run.boxes) == 2  # the one who stays keeps his id; nobody new appears
    stays = next(tid for tid in run.boxes if run.side(tid, width) == "right")
    leaves = next(tid for tid in run.boxes if tid != stays)
    assert len(run.boxes[stays]) == len(range(0, len(clip.frames), 3))
    last_seen = run.boxes[leaves][-1][0]
    assert clip.duration_ms / 2 < last_seen < clip.duration_ms / 2 + 1000  # he slides out over 1 s
    before = [w for w in speech_windows(run) if w[0] + w[1] <= clip.duration_ms / 2]
    after = [w for w in speech_windows(run) if w[0] > last_seen]
    assert before and all(w[2] == leaves for w in before), run.windows
    assert all(w[2] is None for w in after), run.windows  # his voice goes on, off screen
    assert all(w[2] in (leaves, None) for w in run.windows)


def test_four_people_keep_four_ids_and_the_voice_finds_its_face(shared_data, composites):
    clip = composites.make_layout("four", shared_data)
    run = run_people(clip, max_faces=4)
    assert len(run.boxes) == 4
    n_detections = len(range(0, len(clip.frames), 3))
    assert all(len(seen) >= 0.9 * n_detections for seen in run.boxes.values())
    owner = next(tid for tid, seen in run.boxes.items() if seen[0][1][0] < 360 and seen[0][1][1] < 360)
    windows = speech_windows(run)
    assert sum(w[2] == owner for w in windows) >= MIN_SPEAKER_RATE * len(windows), run.windows


def test_one_face_tracking_is_the_primary_face_of_today(shared_data):
    clip = shared_data / "ravdess" / "av" / "01-01-01-01-01-01-01.mp4"
    frames = list(VideoFileSource(clip, max_fps=10))
    with FaceTracker(PRESET.visual) as plain, MultiFaceTracker(PRESET.visual, TrackConfig(max_faces=1)) as multi:
        for frame in frames:
            primary = plain.detect(frame.image, frame.timestamp_ms)
            followed, observed = multi.track(frame.image, frame.timestamp_ms)
            assert observed == primary
            assert [tf.observation for tf in followed] == ([primary] if primary.usable else [])
            assert all(tf.track_id == 0 for tf in followed)
            assert primary.keypoint("mouth") is not None or not primary.usable


def test_detect_all_finds_both_faces_with_their_mouths(shared_data, composites):
    clip = composites.make_layout("left-speaks", shared_data, fps=10.0)
    image = clip.frames[len(clip.frames) // 2]
    with FaceTracker(PRESET.visual, running_mode="image") as tracker:
        faces = tracker.detect_all(image, 0)
        primary = tracker.detect(image, 0)
    assert len(faces) == 2 and all(f.usable and f.n_faces == 2 for f in faces)
    assert faces[0] == primary  # largest first, the primary face of detect
    for f in faces:
        x, y, w, h = f.bbox
        mx, my = f.keypoint("mouth")
        assert x < mx < x + w and y + h / 2 < my < y + h  # the mouth is in the lower half of the box


def test_composite_file_round_trip(shared_data, composites, tmp_path):
    from edge_emotion.sources import open_media, read_audio

    clip = composites.make_layout("left-speaks", shared_data)
    path = composites.write_mp4(clip, tmp_path / "two.mp4")
    media = open_media(path)
    assert media.video is not None and media.audio is not None
    frames = list(media.video)
    assert abs(len(frames) - len(clip.frames)) <= 1 and frames[0].image.shape == clip.frames[0].shape
    pcm, _ = read_audio(path, clip.sample_rate)
    assert abs(pcm.size - clip.pcm.size) < 0.05 * clip.sample_rate
    n = min(pcm.size, clip.pcm.size) - 4096
    lag = int(np.argmax([np.dot(pcm[k : k + n - 4096], clip.pcm[: n - 4096]) for k in range(0, 4096, 16)])) * 16
    assert np.corrcoef(pcm[lag : lag + n - 4096], clip.pcm[: n - 4096])[0, 1] > 0.9  # the voice survives AAC


# -- the stream: one result per person per window ----------------------------------------------
#: A real single-person clip in ../shared/data (CREMA-D actor 1001, angry, 2.3 s).
ANGRY_1001 = "crema-d/video/1001_DFA_ANG_XX.flv"


@pytest.fixture(scope="module")
def recognizers():
    """The shipped model following one face and two faces."""
    from edge_emotion.recognizer import Recognizer

    with Recognizer.from_bundle(max_faces=1) as one, Recognizer.from_bundle(max_faces=2) as two:
        yield {1: one, 2: two}


@pytest.fixture(scope="module")
def composite_files(shared_data, composites, tmp_path_factory):
    """The composite layouts coded as MP4, as a user would run them, plus both faces muted."""
    root = tmp_path_factory.mktemp("people")
    files = {}
    for layout in ("left-speaks", "right-speaks", "off-screen", "speaker-leaves"):
        clip = composites.make_layout(layout, shared_data)
        files[layout] = composites.write_mp4(clip, root / f"{layout}.mp4")
        if layout == "left-speaks":
            files["muted"] = composites.write_mp4(replace_pcm(clip, np.zeros_like(clip.pcm)), root / "muted.mp4")
    return files


def by_window(results) -> dict[tuple[int, int], list]:
    windows: dict[tuple[int, int], list] = {}
    for r in results:
        windows.setdefault((r.t_start_ms, r.t_end_ms), []).append(r)
    return windows


def side_of(results, person: int, width: int) -> str:
    xs = [r.face.bbox[0] + r.face.bbox[2] / 2 for r in results if r.person == person and r.face is not None]
    return "left" if np.median(xs) < width / 2 else "right"


def heard(window) -> bool:
    return any("audio" in r.modalities for r in window)


@pytest.mark.parametrize("layout, owner_side", [("left-speaks", "left"), ("right-speaks", "right")])
def test_stream_gives_the_voice_to_the_face_that_speaks(recognizers, composite_files, layout, owner_side):
    results = list(recognizers[2].analyze(composite_files[layout]))
    persons = {r.person for r in results}
    assert persons == {0, 1}  # two ids, stable over the whole clip, no voice-only result needed ...
    width = 720
    owner = next(p for p in persons if side_of(results, p, width) == owner_side)
    windows = by_window(results)
    speech = [w for w in windows.values() if heard(w)]
    assert len(speech) >= 4
    assert all(len(w) == 2 and {r.person for r in w} == {0, 1} for w in windows.values())
    hits = sum(any(r.person == owner and r.speaking for r in w) for w in speech)
    assert hits >= MIN_SPEAKER_RATE * len(speech), results
    for r in results:
        if r.person != owner:  # ... the muted face is never given the voice, and is seen
            assert not r.speaking and r.modalities == ("video",)
        if r.speaking:
            assert r.modalities == ("audio", "video")


def test_stream_reports_an_off_screen_voice_and_silence(recognizers, composite_files):
    results = list(recognizers[2].analyze(composite_files["off-screen"]))
    assert {r.person for r in results} == {0, 1, None}
    windows = by_window(results)
    speech = [w for w in windows.values() if heard(w)]
    assert len(speech) >= 4
    assert not any(r.speaking for r in results if r.person is not None)
    for w in speech:  # the voice is a result of its own, audio only, said to speak
        voice = [r for r in w if r.person is None]
        assert len(voice) == 1 and voice[0].speaking and voice[0].modalities == ("audio",)
    muted = list(recognizers[2].analyze(composite_files["muted"]))
    assert {r.person for r in muted} == {0, 1}  # both muted: two faces, nobody speaks, no voice
    assert not any(r.speaking or "audio" in r.modalities for r in muted)


def test_stream_speaker_leaves_mid_clip(recognizers, composite_files):
    results = list(recognizers[2].analyze(composite_files["speaker-leaves"]))
    stays = next(p for p in {r.person for r in results} - {None} if side_of(results, p, 720) == "right")
    leaves = ({r.person for r in results} - {None, stays}).pop()
    assert {r.person for r in results} == {stays, leaves, None}  # no new id while he slides out
    windows = sorted(by_window(results).items())
    assert all(any(r.person == stays for r in w) for _, w in windows)  # seen in every window
    (_, first), (_, last) = windows[0], windows[-1]
    assert any(r.person == leaves and r.speaking for r in first)
    assert not any(r.person == leaves for r in last)  # gone ...
    assert [r.speaking for r in last if r.person is None] == [True]  # ... his voice goes on, off screen
    assert not any(r.speaking for r in results if r.person == stays)


def test_a_live_session_keeps_every_person_s_latest_result_and_face(recognizers, composite_files):
    """What a display draws from: the latest result of each person and every followed face."""
    from edge_emotion.sources import AudioFileSource

    clip = composite_files["left-speaks"]
    seen = []
    session = recognizers[2].live(
        camera=None,
        mic=None,
        on_result=seen.append,
        video_source=VideoFileSource(clip),
        audio_source=AudioFileSource(clip, sample_rate=16000),
    )
    with session:
        assert session.wait(300)
    people = {r.person for r in seen if r.person is not None}
    assert len(people) == 2
    assert session.latest_result is seen[-1]
    latest = session.latest_results
    assert set(latest) - {None} == people
    for person in people:  # each person's own last result, not the session's last one
        assert latest[person] is [r for r in seen if r.person == person][-1]
    t_ms, faces = session.latest_faces
    assert set(faces) == people and session.latest_face == (t_ms, next(iter(faces.values())))


def test_one_face_results_unchanged_by_the_people_path(recognizers, shared_data, composites, tmp_path):
    """Single-person clips (a real CREMA-D clip; actor 1001's three sentences in a row) through
    max_faces 1 and 2: the same face and id in every window; where the face speaks, the same scores
    (the same voice and face fused); the voice is given to the face in at least MIN_SPEAKER_RATE of
    the speech windows."""
    alone = composites.load_panel([shared_data / p for p in composites.CREMA_1001], 360, 16000)
    single = shared_data / ANGRY_1001
    if not single.is_file():
        pytest.skip(f"real clip not found: {single}")
    clips = [single, composites.write_mp4(composites.compose([alone], alone, grid=(1, 1)), tmp_path / "one.mp4")]
    for clip in clips:
        one = list(recognizers[1].analyze(clip, hop_ms=500))
        two = list(recognizers[2].analyze(clip, hop_ms=500))
        assert all(r.person == 0 for r in one) and len({(r.t_start_ms, r.t_end_ms) for r in one}) == len(one)
        faces = by_window([r for r in two if r.person is not None])
        assert [(r.t_start_ms, r.t_end_ms, r.face, r.person) for r in one] == [
            (w[0].t_start_ms, w[0].t_end_ms, w[0].face, w[0].person) for w in faces.values()
        ]
        speech = [r for r in one if "audio" in r.modalities]
        assert len(speech) >= (1 if clip == single else 8)
        assert sum(r.speaking for r in speech) >= MIN_SPEAKER_RATE * len(speech), clip
        for r1, (r2,) in zip(one, faces.values(), strict=True):
            if r2.speaking:
                assert r2.modalities == r1.modalities
                assert r2.scores == pytest.approx(r1.scores, abs=1e-6)
            assert r2.speaking == (r1.speaking and "audio" in r1.modalities)
        assert set(one[0].to_dict()) == {
            "t_start_ms",
            "t_end_ms",
            "label",
            "scores",
            "modalities",
            "face",
            "person",
            "speaking",
        }


def test_cli_prints_per_person_lines(composite_files):
    import json
    import subprocess

    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "edge_emotion",
            "run",
            "--video",
            str(composite_files["left-speaks"]),
            "--max-faces",
            "2",
            "--output",
            "jsonl",
        ],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    lines = [json.loads(line) for line in proc.stdout.splitlines()]
    assert {line["person"] for line in lines} == {0, 1}
    speakers = {line["person"] for line in lines if line["speaking"]}
    assert len(speakers) == 1 and all(line["face"]["bbox"][0] < 360 for line in lines if line["speaking"])


def test_batched_face_encoding_keeps_every_person_s_results(recognizers, composite_files, monkeypatch):
    """``analyze`` encodes several frames' faces in one call (``FILE_FACE_BATCH``): with two people
    in view, each person's results are those of encoding every frame's faces as the frame comes."""
    import edge_emotion.recognizer as recognizer_module

    model = type(recognizers[2].model)
    encode, sizes = model.encode_faces, []

    def counting(self, faces):
        sizes.append(len(faces))
        return encode(self, faces)

    monkeypatch.setattr(model, "encode_faces", counting)
    assert recognizers[2]._file_face_batch() == recognizer_module.FILE_FACE_BATCH > 2
    batched = list(recognizers[2].analyze(composite_files["left-speaks"]))
    batched_sizes, sizes[:] = list(sizes), []
    monkeypatch.setattr(recognizer_module, "FILE_FACE_BATCH", 1)
    one_frame_a_call = list(recognizers[2].analyze(composite_files["left-speaks"]))
    assert set(sizes) == {2}  # both faces of a frame in one call
    assert sum(batched_sizes) == sum(sizes) and max(batched_sizes) > 2
    assert len(batched) == len(one_frame_a_call) > 0
    for a, b in zip(batched, one_frame_a_call, strict=True):
        assert (a.t_start_ms, a.person, a.speaking, a.label, a.face, a.modalities) == (
            b.t_start_ms,
            b.person,
            b.speaking,
            b.label,
            b.face,
            b.modalities,
        )
        np.testing.assert_allclose(list(a.scores.values()), list(b.scores.values()), rtol=0, atol=1e-5)
