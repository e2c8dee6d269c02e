"""SteadyLabel on synthetic result sequences (dwell, margin, confirmation, "nobody"), and the kiosk
example on real clips: its mood changes at most once per real change of emotion; on two people side
by side (composites of real clips made at test time by tools/make_composite.py) it greets each of
them and says when the voice comes from nobody in view."""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from edge_emotion.errors import InputError
from edge_emotion.results import UNKNOWN_LABEL, EmotionResult
from edge_emotion.steady import NOBODY, SteadyLabel, SteadyOptions

LABELS = ["neutral", "calm", "happy", "sad", "angry", "fearful", "disgust", "surprised"]
HOP_MS = 500
REPO = Path(__file__).resolve().parents[1]


def _r(
    k: int,
    label: str,
    score: float,
    second: str | None = None,
    second_score: float = 0.0,
    modalities=("audio", "video"),
) -> EmotionResult:
    """The k-th result of a 3 s window at a 500 ms hop: ``label`` at ``score``, optionally a runner-up."""
    rest = 1.0 - score - second_score
    others = [lb for lb in LABELS if lb not in (label, second)]
    scores = {lb: rest / len(others) for lb in others}
    scores[label] = score
    if second:
        scores[second] = second_score
    if not modalities:
        label, scores = UNKNOWN_LABEL, dict.fromkeys(LABELS, 1 / 8)
    return EmotionResult(k * HOP_MS, k * HOP_MS + 3000, label, scores, tuple(modalities))


def _moods(steady: SteadyLabel, results) -> list[str]:
    return [s.mood for s in map(steady.update, results)]


def _changes(moods: list[str]) -> int:
    return sum(a != b for a, b in zip(moods, moods[1:], strict=False))


def test_nobody_before_the_first_result_then_the_first_confident_label():
    steady = SteadyLabel()
    assert steady.state.mood == NOBODY and not steady.state.present
    state = steady.update(_r(0, "happy", 0.7))
    assert (state.mood, state.changed, state.present, state.since_ms) == ("happy", True, True, 3000)


def test_a_flickering_label_never_switches():
    """Raw labels alternating every window, each clearly ahead in its own window: no change, since
    no new label is proposed twice in a row."""
    steady = SteadyLabel(SteadyOptions(min_dwell_ms=0))
    seq = [_r(0, "angry", 0.8)] + [_r(k, "sad" if k % 2 else "fearful", 0.6, "angry", 0.2) for k in range(1, 30)]
    moods = _moods(steady, seq)
    assert set(moods) == {"angry"}
    assert _changes([r.label for r in seq]) == 29  # the raw label changed every time


def test_a_lasting_clear_change_switches_once_after_the_dwell_time():
    opts = SteadyOptions(min_dwell_ms=3000, confirm=2, switch_margin=0.15, min_confidence=0.4)
    steady = SteadyLabel(opts)
    seq = [_r(k, "angry", 0.8) for k in range(3)] + [_r(k, "happy", 0.7, "angry", 0.1) for k in range(3, 20)]
    states = [steady.update(r) for r in seq]
    moods = [s.mood for s in states]
    assert _changes(moods) == 1
    switch = moods.index("happy")
    # confirmed by two results in a row (k = 3, 4), and the angry mood (set at k = 0, 3000 ms) had
    # lasted 3000 ms: the earliest result with t_end_ms >= 6000 is k = 6
    assert seq[switch].t_end_ms - states[0].since_ms >= opts.min_dwell_ms
    assert switch == 6
    assert states[switch].changed and not states[switch + 1].changed


def test_a_new_label_within_the_margin_does_not_switch():
    steady = SteadyLabel(SteadyOptions(min_dwell_ms=0, switch_margin=0.2))
    seq = [_r(0, "angry", 0.8)] + [_r(k, "sad", 0.45, "angry", 0.35) for k in range(1, 10)]
    assert set(_moods(steady, seq)) == {"angry"}  # sad leads by 0.10 < 0.20
    steady = SteadyLabel(SteadyOptions(min_dwell_ms=0, switch_margin=0.05))
    assert _moods(steady, seq)[-1] == "sad"


def test_a_label_below_the_confidence_floor_never_becomes_the_mood():
    steady = SteadyLabel(SteadyOptions(min_confidence=0.5))
    moods = _moods(steady, [_r(k, "fearful", 0.3) for k in range(10)])
    assert set(moods) == {UNKNOWN_LABEL}  # somebody is there, no confident label
    assert _moods(steady, [_r(10, "fearful", 0.6), _r(11, "fearful", 0.6)])[-1] == "fearful"


def test_nobody_after_a_while_without_face_or_voice_and_not_before():
    opts = SteadyOptions(nobody_after_ms=5000)
    steady = SteadyLabel(opts)
    steady.update(_r(0, "happy", 0.8))  # last seen at t_end 3000 ms
    empty = [_r(k, "", 0.0, modalities=()) for k in range(1, 20)]
    states = [steady.update(r) for r in empty]
    gone = next(i for i, s in enumerate(states) if s.mood == NOBODY)
    assert empty[gone].t_end_ms - 3000 >= opts.nobody_after_ms
    assert empty[gone - 1].t_end_ms - 3000 < opts.nobody_after_ms
    assert all(s.mood == "happy" and not s.present for s in states[:gone])
    back = steady.update(_r(40, "sad", 0.9))
    assert back.mood == "sad" and back.changed  # a new arrival is taken at once


def test_options_are_validated_and_frozen():
    with pytest.raises(InputError):
        SteadyOptions(confirm=0)
    with pytest.raises(InputError):
        SteadyOptions(switch_margin=1.5)
    with pytest.raises(InputError):
        SteadyOptions(min_dwell_ms=-1)
    with pytest.raises(AttributeError):
        SteadyOptions().confirm = 3  # type: ignore[misc]


# -- the kiosk example on real clips --------------------------------------------------------------
def _kiosk_says(clip: Path) -> str:
    """What examples/kiosk.py prints for ``clip``."""
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    proc = subprocess.run(
        [sys.executable, str(REPO / "examples" / "kiosk.py"), "--video", str(clip)],
        capture_output=True,
        text=True,
        timeout=600,
        env=env,
    )
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "stopped after" in proc.stdout
    return proc.stdout


def _kiosk(clip: Path) -> list[str]:
    return re.findall(r"^\[kiosk\] mood: (\w+)", _kiosk_says(clip), flags=re.M)


@pytest.fixture(scope="module")
def clips(shared_data, tmp_path_factory) -> dict[str, Path]:
    from clips import concat_clips

    angry = shared_data / "crema-d" / "video" / "1001_DFA_ANG_XX.flv"
    happy = shared_data / "crema-d" / "video" / "1001_DFA_HAP_XX.flv"
    for p in (angry, happy):
        if not p.exists():
            pytest.skip(f"real CREMA-D clip absent: {p}")
    out = tmp_path_factory.mktemp("kiosk")
    made = {"angry": out / "angry4.mp4", "angry_then_happy": out / "angry3_happy3.mp4"}
    concat_clips([angry] * 4, made["angry"])
    concat_clips([angry] * 3 + [happy] * 3, made["angry_then_happy"])
    return made


def test_kiosk_on_one_emotion_never_flips(clips):
    moods = _kiosk(clips["angry"])
    assert len(moods) <= 1, moods  # the arrival's mood, then no change


def test_kiosk_changes_at_most_once_for_one_real_change(clips):
    moods = _kiosk(clips["angry_then_happy"])
    assert 1 <= len(moods) <= 2, moods  # the arrival's mood and at most one change


# -- the kiosk example with two people in view ---------------------------------------------------------
@pytest.fixture(scope="module")
def two_people(shared_data, tmp_path_factory) -> dict[str, Path]:
    """tools/make_composite.py's layouts as MP4: ``left-speaks`` (CREMA-D actor 1001 with his voice on
    the left, a muted RAVDESS actor on the right) and ``off-screen`` (both muted, another actor's
    voice)."""
    spec = importlib.util.spec_from_file_location("make_composite", REPO / "tools" / "make_composite.py")
    composite = importlib.util.module_from_spec(spec)
    sys.modules["make_composite"] = composite  # dataclasses look their module up
    spec.loader.exec_module(composite)
    for rel in (*composite.CREMA_1001, *composite.RAVDESS_AV, *composite.CREMA_1002_AUDIO):
        if not (shared_data / rel).is_file():
            pytest.skip(f"real clip absent: {shared_data / rel}")
    out = tmp_path_factory.mktemp("two_people")
    return {
        layout: composite.write_mp4(composite.make_layout(layout, shared_data), out / f"{layout}.mp4")
        for layout in ("left-speaks", "off-screen")
    }


def _greeted(said: str) -> list[int]:
    return [int(p) for p in re.findall(r"^\[kiosk\] hello, person (\d+)!", said, flags=re.M)]


def test_kiosk_greets_each_of_two_people(two_people):
    said = _kiosk_says(two_people["left-speaks"])
    greeted = _greeted(said)
    assert len(greeted) == 2 and len(set(greeted)) == 2, said  # both, once each: their ids hold
    assert "can't see" not in said, said  # the voice is the left face's
    assert "goodbye" not in said and "idle" not in said  # both stay in view to the end
    ending = said.strip().splitlines()[-1]
    assert all(f"person {p}:" in ending for p in greeted), ending


def test_kiosk_says_when_the_voice_is_off_screen(two_people):
    said = _kiosk_says(two_people["off-screen"])
    assert len(set(_greeted(said))) == 2, said
    # the voice of nobody in view, said once while it goes on
    assert len(re.findall(r"^\[kiosk\] I can hear someone I can't see", said, flags=re.M)) == 1, said
