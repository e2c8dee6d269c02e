"""Hostile input through the Python API and the command line: huge and empty frames, odd camera
indices, DC offsets and steady noise, mis-scaled or mis-shaped PCM, clock jumps, absurd sample
rates and timestamps, unwritable outputs, and a modality that never arrives. Each gets an
``EdgeEmotionError`` (the API) or one line on stderr and exit 2 (the CLI); nothing aborts, hangs,
floods or grows without bound. What would crash the process runs in a subprocess."""

from __future__ import annotations

import subprocess
import sys
import textwrap
from pathlib import Path

import clitools
import numpy as np
import pytest
from extras import needs_mediapipe
from media import SAMPLE_CLIP

from edge_emotion.errors import InputError
from edge_emotion.frontend import features as F
from edge_emotion.recognizer import Recognizer

REPO_ROOT = Path(__file__).resolve().parents[1]
SAMPLE = SAMPLE_CLIP  # the package's sample: 3.0 s, 320x240, one face, speech from 0.25 s to about 2.5 s
RATE = 16000


def run_python(code: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)], capture_output=True, text=True, timeout=timeout, cwd=REPO_ROOT
    )


def cli(*args: str, timeout: int = 300, **kwargs) -> subprocess.CompletedProcess:
    return clitools.cli(*args, timeout=timeout, cwd=REPO_ROOT, **kwargs)


def assert_one_line_error(proc: subprocess.CompletedProcess, *words: str) -> None:
    clitools.assert_one_line_error(proc, *words)
    assert proc.stderr.strip().startswith("edge-emotion: error:"), proc.stderr


@pytest.fixture(scope="module")
def recognizer() -> Recognizer:
    from edge_emotion.info import default_bundle_path

    path = default_bundle_path()
    if path is None:
        pytest.skip("this checkout ships no default bundle (edge_emotion/models/default)")
    return Recognizer.from_bundle(path, backend="onnxruntime")


@pytest.fixture(scope="module")
def face_frame() -> np.ndarray:
    """The first frame of the sample clip: ``(240, 320, 3) uint8`` with one face."""
    from edge_emotion.sources import VideoFileSource

    return next(iter(VideoFileSource(SAMPLE))).image


def noise(seconds: float, dbfs: float, seed: int = 0) -> np.ndarray:
    n = round(seconds * RATE)
    return (10 ** (dbfs / 20) * np.random.default_rng(seed).standard_normal(n)).astype(np.float32)


def push_audio(stream, pcm: np.ndarray, t0_ms: int, chunk_ms: int = 100, poll: bool = True) -> list:
    """Push ``pcm`` at RATE in ``chunk_ms`` chunks from ``t0_ms``; the results polled on the way."""
    step = RATE * chunk_ms // 1000
    results = []
    for i in range(0, pcm.size, step):
        stream.push_audio(pcm[i : i + step], RATE, t0_ms + i * 1000 // RATE)
        if poll:
            results += stream.poll()
    return results


# -- a frame too large, or without pixels, for the face detector -----------------------------------


@pytest.mark.parametrize(
    "detector",
    [
        "auto",
        pytest.param("mediapipe", marks=needs_mediapipe),
    ],
)
def test_a_frame_with_a_side_of_32767_px_or_more_does_not_abort_the_process(detector):
    # MediaPipe's task aborts the process on such a frame; the SDK shrinks it for either detector
    proc = run_python(
        f"""
        import numpy as np
        from edge_emotion.config import EDGE
        from edge_emotion.frontend.face import FaceTracker
        from edge_emotion.info import default_bundle_path
        from edge_emotion.recognizer import Recognizer

        with FaceTracker(EDGE.visual, running_mode="video", detector={detector!r}) as tracker:
            for i, shape in enumerate([(16, 32800, 3), (32767, 16, 3)]):
                print(tracker.detect(np.zeros(shape, np.uint8), i).status)
        rec = Recognizer.from_bundle(default_bundle_path(), backend="onnxruntime", face_detector={detector!r})
        stream = rec.create_stream(audio=False)
        stream.push_video(np.zeros((16, 40000, 3), np.uint8), 0)
        print(len(stream.flush()), "result")
        """
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.split() == ["no_face", "no_face", "1", "result"]


def test_a_shrunk_frame_gives_the_face_at_its_place_in_the_frame(face_frame, monkeypatch):
    from edge_emotion.config import EDGE
    from edge_emotion.frontend import face as face_module

    with face_module.FaceTracker(EDGE.visual, running_mode="image") as tracker:
        full = tracker.detect(face_frame, 0)
        monkeypatch.setattr(face_module, "MAX_DETECTOR_SIDE", 160)  # the 320 px wide frame is halved
        shrunk = tracker.detect(face_frame, 1)
    assert full.usable and shrunk.usable
    assert np.abs(np.subtract(full.bbox, shrunk.bbox)).max() <= 6, (full.bbox, shrunk.bbox)


def test_cli_on_a_32800x16_video_runs_or_refuses_in_one_line(tmp_path):
    av = pytest.importorskip("av")
    path = tmp_path / "wide.nut"
    with av.open(str(path), "w") as container:
        stream = container.add_stream("rawvideo", rate=10)
        stream.width, stream.height, stream.pix_fmt = 32800, 16, "rgb24"
        for i in range(3):
            frame = av.VideoFrame.from_ndarray(np.full((16, 32800, 3), 60 * i, np.uint8), format="rgb24")
            for packet in stream.encode(frame):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    proc = cli("run", "--video", str(path), "--output", "jsonl")
    if proc.returncode == 2:
        assert_one_line_error(proc)
    else:
        assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
        assert proc.stdout.strip() and "Traceback" not in proc.stderr


@pytest.mark.parametrize("shape", [(0, 0, 3), (0, 16, 3), (16, 0, 3)])
def test_a_frame_without_pixels_is_refused_and_the_detector_stays_usable(recognizer, face_frame, shape):
    stream = recognizer.create_stream(audio=False)
    with pytest.raises(InputError, match="pixels"):
        stream.push_video(np.zeros(shape, np.uint8), 0)
    for i in range(10):
        stream.push_video(face_frame, 100 * (i + 1))
    results = stream.flush()
    assert results and all(r.face is not None and "video" in r.modalities for r in results)


# -- camera indices ------------------------------------------------------------------------------


@pytest.mark.parametrize("index", ["-1", "-7", "2147483648"])
def test_cli_camera_index_out_of_range_is_one_line_and_exit_2(index):
    assert_one_line_error(cli("run", "--camera", index, "--no-display"), "--camera")


def test_camera_source_refuses_an_index_out_of_range_without_crashing():
    proc = run_python(
        """
        from edge_emotion.errors import InputError
        from edge_emotion.sources import CameraSource

        for index in (-1, 2**31):
            try:
                CameraSource(index)
            except InputError as exc:
                print("refused", index)
        """
    )
    assert proc.returncode == 0, (proc.returncode, proc.stderr[-2000:])
    assert proc.stdout.split() == ["refused", "-1", "refused", "2147483648"]


# -- voice activity: DC offset and steady noise are no speech ---------------------------------------


@pytest.mark.parametrize(
    "name, pcm",
    [
        ("dc offset", np.full(4 * RATE, 0.003, np.float32)),
        ("noise at -50 dBFS", noise(4, -50)),
        ("noise at -30 dBFS plus DC", noise(4, -30) + np.float32(0.01)),
    ],
)
def test_dc_offset_and_steady_noise_are_not_speech(recognizer, name, pcm):
    preset = recognizer.preset
    assert not F.speech_frames(F.fit_window(pcm, preset.audio), preset.audio).any(), name
    assert not F.window_speech_steps(pcm, preset).any(), name
    stream = recognizer.create_stream(video=False)
    results = push_audio(stream, pcm, 0) + stream.flush()
    assert results
    for r in results:
        assert r.label == "unknown" and "audio" not in r.modalities, (name, r)


def test_speech_with_a_dc_offset_or_over_steady_noise_is_still_speech(recognizer):
    from edge_emotion.sources import read_audio

    preset = recognizer.preset
    pcm, _ = read_audio(SAMPLE, preset.audio.sample_rate)
    clean = F.window_speech_steps(pcm, preset)
    assert clean.any()
    for variant in (pcm + np.float32(0.003), pcm + noise(pcm.size / RATE, -50, seed=2)):
        steps = F.window_speech_steps(variant, preset)
        assert steps.sum() >= 0.8 * clean.sum()


def test_real_speech_is_still_found_in_every_clip(shared_data, recognizer):
    """The same voice activity decides what training saw: every sampled RAVDESS and CREMA-D clip
    still holds speech steps in its first window, with or without a DC offset or a -50 dBFS hiss."""
    from edge_emotion.sources import read_audio

    preset = recognizer.preset
    clips = sorted((shared_data / "ravdess" / "audio16k").glob("Actor_0[1-2]/*.flac"))[::12]
    clips += sorted((shared_data / "crema-d" / "audio-mp3").glob("*.mp3"))[::400]
    if len(clips) < 6:
        pytest.skip("too few RAVDESS / CREMA-D clips under ../shared/data")
    for path in clips:
        pcm, _ = read_audio(path, preset.audio.sample_rate)
        pcm = pcm[: preset.audio.window_samples]
        for variant in (pcm, pcm + np.float32(0.003), pcm + noise(pcm.size / RATE, -50, seed=3)):
            assert F.window_speech_steps(variant, preset).any(), path.name


def _speech_results(recognizer, pcm: np.ndarray) -> list:
    stream = recognizer.create_stream(video=False)
    return push_audio(stream, pcm, 0) + stream.flush()


@pytest.mark.parametrize("offset", ["none", "dc 0.003", "noise -50 dBFS"])
def test_the_sample_clip_is_still_heard_as_speech_by_the_stream(recognizer, offset):
    from edge_emotion.sources import read_audio

    pcm, _ = read_audio(SAMPLE, RATE)
    if offset == "dc 0.003":
        pcm = pcm + np.float32(0.003)
    elif offset == "noise -50 dBFS":
        pcm = pcm + noise(pcm.size / RATE, -50, seed=4)
    results = _speech_results(recognizer, pcm)
    assert results and all("audio" in r.modalities and r.label != "unknown" for r in results), results


def test_a_ravdess_clip_is_still_heard_as_speech_by_the_stream(shared_data, recognizer):
    from edge_emotion.sources import read_audio

    clips = sorted((shared_data / "ravdess" / "audio16k").glob("Actor_01/*.flac"))
    if not clips:
        pytest.skip("no RAVDESS clips under ../shared/data/ravdess/audio16k")
    pcm, _ = read_audio(clips[len(clips) // 2], RATE)
    results = _speech_results(recognizer, pcm + np.float32(0.003))
    assert any("audio" in r.modalities for r in results), results


# -- PCM in the wrong scale, layout or with non-finite samples ---------------------------------------


def test_float_pcm_at_int16_scale_is_refused_saying_what_was_expected(recognizer):
    stream = recognizer.create_stream(video=False)
    with pytest.raises(InputError, match=r"\[-1, 1\]"):
        stream.push_audio(noise(1, -20) * 32767, RATE, 0)
    stream.push_audio(noise(1, -20), RATE, 1000)  # the same in [-1, 1] is fine


def test_channels_first_stereo_is_refused_and_samples_first_accepted(recognizer):
    stream = recognizer.create_stream(video=False)
    stereo = np.stack([noise(1, -20), noise(1, -20, seed=1)])  # (2, S)
    with pytest.raises(InputError, match=r"pcm\.T"):
        stream.push_audio(stereo, RATE, 0)
    with pytest.raises(InputError, match="channels"):
        F.to_mono(stereo.astype(np.int16))
    stream.push_audio(stereo.T, RATE, 0)
    assert F.to_mono(stereo.T).shape == (RATE,)


@pytest.mark.parametrize("bad", [np.nan, np.inf, -np.inf])
def test_non_finite_samples_are_refused_and_counted(recognizer, bad):
    stream = recognizer.create_stream(video=False)
    pcm = noise(1, -20)
    pcm[[5, 500, 5000]] = bad
    with pytest.raises(InputError, match="3 NaN or infinite"):
        stream.push_audio(pcm, RATE, 0)


# -- sample rates and timestamps out of range; clock jumps ------------------------------------------


@pytest.mark.parametrize("rate", [2**31 - 1, 999, 384_001, 0, -16000, 16000.5, float("nan")])
def test_sample_rates_outside_1_khz_to_384_khz_are_refused(recognizer, rate):
    stream = recognizer.create_stream(video=False)
    with pytest.raises(InputError, match="sample_rate"):
        stream.push_audio(np.zeros(160, np.float32), rate, 0)


def test_sample_rates_at_the_ends_of_the_range_are_accepted(recognizer):
    for rate in (1000, 384_000, 16000.0):
        stream = recognizer.create_stream(video=False)
        stream.push_audio(np.zeros(int(rate) // 10, np.float32), rate, 0)
        assert len(stream.flush()) == 1


@pytest.mark.parametrize("timestamp", [-1, 2**53 + 1, 2**63, float("nan"), float("inf"), "soon"])
def test_timestamps_outside_0_to_2_pow_53_are_refused(recognizer, face_frame, timestamp):
    stream = recognizer.create_stream()
    with pytest.raises(InputError, match="timestamp"):
        stream.push_audio(np.zeros(1600, np.float32), RATE, timestamp)
    with pytest.raises(InputError, match="timestamp"):
        stream.push_video(face_frame, timestamp)


def test_timestamps_that_do_not_increase_are_an_input_error(recognizer, face_frame):
    stream = recognizer.create_stream()
    stream.push_audio(np.zeros(1600, np.float32), RATE, 1000)
    stream.push_video(face_frame, 1000)
    with pytest.raises(InputError, match="strictly increase"):
        stream.push_audio(np.zeros(1600, np.float32), RATE, 1000)
    with pytest.raises(InputError, match="strictly increase"):
        stream.push_video(face_frame, 999)


def test_timestamps_up_to_2_pow_53_work(recognizer):
    stream = recognizer.create_stream(video=False)
    start = 2**53 - 10_000
    results = push_audio(stream, noise(3, -70), start) + stream.flush()
    assert results and results[0].t_start_ms == start


def _outside(results, gap_start_ms: int, gap_end_ms: int) -> bool:
    """Whether every result lies before or after the gap ``(gap_start_ms, gap_end_ms)``."""
    return all(r.t_end_ms <= gap_start_ms or r.t_start_ms >= gap_end_ms for r in results)


@pytest.mark.parametrize("gap_ms", [600_000, 86_400_000])
def test_an_audio_gap_longer_than_a_window_restarts_the_stream(recognizer, gap_ms):
    stream = recognizer.create_stream(video=False)
    results = push_audio(stream, noise(3, -40), 0)
    assert stream.buffered()[0] <= 4 * RATE
    results += push_audio(stream, noise(3, -40, seed=1), 3000 + gap_ms)
    assert stream.buffered()[0] <= 2 * recognizer.preset.window_ms * RATE // 1000
    results += stream.flush()
    assert _outside(results, 3000, 3000 + gap_ms)
    assert any(r.t_start_ms >= 3000 + gap_ms for r in results)  # results resume after the gap
    assert len(results) <= 12


def test_a_30_day_video_gap_gives_no_flood_of_results(recognizer, face_frame):
    gap_ms = 30 * 86_400_000
    stream = recognizer.create_stream(audio=False)
    results = []
    for t in [*range(0, 3000, 100), *range(gap_ms, gap_ms + 3000, 100)]:
        stream.push_video(face_frame, t)
        results += stream.poll()
    results += stream.flush()
    assert 2 <= len(results) <= 12
    assert _outside(results, 3000, gap_ms)
    assert any(r.t_start_ms >= gap_ms and "video" in r.modalities for r in results)


def _push_av(stream, frame, start_ms: int, seconds: int, audio_offset_ms: int = 0) -> list:
    """One second at a time: 10 frames from ``start_ms`` and 1 s of quiet noise from
    ``start_ms + audio_offset_ms``; the results polled on the way."""
    results = []
    for s in range(seconds):
        for i in range(10):
            stream.push_video(frame, start_ms + 1000 * s + 100 * i)
        stream.push_audio(noise(1, -60, seed=s), RATE, start_ms + audio_offset_ms + 1000 * s)
        results += stream.poll()
    return results


@pytest.mark.parametrize(
    "jump",
    ["both switch to epoch ms", "audio jumps a day ahead of video"],
)
def test_clock_jumps_in_an_audio_video_stream_stay_bounded(recognizer, jump):
    frame = np.zeros((64, 64, 3), np.uint8)
    stream = recognizer.create_stream()
    results = _push_av(stream, frame, 0, 4)
    if jump == "both switch to epoch ms":
        epoch = 1_764_547_200_000
        results += _push_av(stream, frame, epoch, 4)
        assert _outside(results, 4000, epoch)
        assert any(r.t_start_ms >= epoch for r in results)
    else:
        results += _push_av(stream, frame, 4000, 70, audio_offset_ms=86_400_000)
    audio_samples, frames = stream.buffered()
    max_lead_s = stream.config.max_lead_ms / 1000
    assert audio_samples <= (max_lead_s + 10) * RATE and frames <= (max_lead_s + 10) * 10
    results += stream.flush()
    assert len(results) <= 100


# -- unwritable outputs ---------------------------------------------------------------------------


def test_run_into_a_full_disk_is_one_line_and_exit_2():
    with open("/dev/full", "w") as full:
        proc = cli("run", "--video", str(SAMPLE), stdout=full)
    assert_one_line_error(proc, "stdout")


def test_run_with_stdout_closed_is_one_line_and_exit_2():
    proc = subprocess.run(
        ["bash", "-c", f'"{sys.executable}" -m edge_emotion run --video "{SAMPLE}" >&-'],
        stderr=subprocess.PIPE,
        text=True,
        timeout=300,
        cwd=REPO_ROOT,
    )
    assert_one_line_error(proc, "stdout")


def test_bench_checks_its_json_path_before_it_runs():
    proc = cli(
        "bench",
        "--json",
        "/proc/nope/x.json",
        "--format",
        "onnx",
        "--repeats",
        "1",
        "--warmup",
        "0",
        "--rtf-runs",
        "1",
    )
    assert_one_line_error(proc, "/proc/nope/x.json")  # one line: no bench row was run before it
    assert not Path("/proc/nope").exists()


# -- a modality that never arrives -------------------------------------------------------------------


def test_ten_minutes_of_audio_without_the_expected_video_keep_the_buffers_bounded(recognizer):
    stream = recognizer.create_stream()  # expects audio and video; no frame ever comes
    limit_s = (stream.config.max_lead_ms + 2 * recognizer.preset.window_ms + 2 * stream.config.hop_ms) / 1000
    results, most = [], 0
    for s in range(600):
        stream.push_audio(noise(1, -60, seed=s % 7), RATE, 1000 * s)
        results += stream.poll()
        most = max(most, stream.buffered()[0])
    assert most <= limit_s * RATE
    assert len(results) >= 500  # windows completed without the video after a bounded wait
    assert all("video" not in r.modalities for r in results)


def test_ten_minutes_of_video_without_the_expected_audio_keep_the_buffers_bounded(recognizer):
    stream = recognizer.create_stream()
    fps = recognizer.preset.visual.fps
    limit_s = (stream.config.max_lead_ms + 2 * recognizer.preset.window_ms + 2 * stream.config.hop_ms) / 1000
    frame = np.zeros((32, 32, 3), np.uint8)
    results, most = [], 0
    for i in range(int(600 * fps)):
        stream.push_video(frame, round(1000 * i / fps))
        if i % 10 == 0:
            results += stream.poll()
        most = max(most, stream.buffered()[1])
    assert most <= limit_s * fps
    assert len(results) >= 500


def test_without_polling_the_buffers_stay_bounded_and_poll_returns_the_windows(recognizer):
    stream = recognizer.create_stream(video=False)
    limit_s = (stream.config.max_lead_ms + 2 * recognizer.preset.window_ms + 2 * stream.config.hop_ms) / 1000
    most = 0
    for s in range(600):
        stream.push_audio(noise(1, -60, seed=s % 7), RATE, 1000 * s)
        most = max(most, stream.buffered()[0])
    assert most <= limit_s * RATE
    results = stream.poll() + stream.flush()
    starts = [r.t_start_ms for r in results]
    assert starts == sorted(starts) and len(results) >= 590
    assert stream.dropped_results == 0


def test_results_nobody_polls_are_capped_keeping_the_newest(recognizer, caplog):
    from edge_emotion.stream import StreamConfig

    stream = recognizer.create_stream(video=False, max_pending_results=5)
    with caplog.at_level("WARNING", logger="edge_emotion.stream"):
        for s in range(150):
            stream.push_audio(noise(1, -60, seed=s % 7), RATE, 1000 * s)
    # windows ending more than max_lead_ms (60 s) + a hop behind the data were computed at push;
    # only the 5 newest of them are kept, the rest counted and warned about once
    warnings = [r for r in caplog.records if "max_pending_results" in r.getMessage()]
    assert len(warnings) == 1
    assert stream.dropped_results > 70
    kept = stream.poll()
    starts = [r.t_start_ms for r in kept]
    assert starts == sorted(starts) and len(set(starts)) == len(starts)
    assert starts[0] == 1000 * stream.dropped_results  # nothing missing after the dropped ones
    rest = stream.flush()
    assert len(kept) + len(rest) + stream.dropped_results >= 148
    with pytest.raises(InputError, match="max_pending_results"):
        StreamConfig(window_ms=1000, hop_ms=1000, max_pending_results=0)
    for bad in (0, -3, True, 2.0, "8"):
        with pytest.raises(InputError, match="face_batch must be a whole number"):
            StreamConfig(window_ms=1000, hop_ms=1000, face_batch=bad)


def test_the_pending_cap_drops_whole_windows_with_several_people(recognizer):
    from types import SimpleNamespace

    stream = recognizer.create_stream(video=False, max_pending_results=4)
    # windows at 0, 1000, 2000 s with two people and the voice alone each: three results a window
    stream._keep_pending([SimpleNamespace(t_start_ms=1000 * w, person=p) for w in range(3) for p in (0, 1, None)])
    kept = stream.poll()
    assert [r.t_start_ms for r in kept] == [2000, 2000, 2000]  # not a window cut in half
    assert stream.dropped_results == 6
