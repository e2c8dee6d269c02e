"""Files decoded in a separate process (``edge_emotion/sources/decoder.py``): the child hands over
the frames, pictures and chunks that reading the file here gives, so ``Recognizer.analyze`` gives
the same results; a file it cannot read raises in the caller and leaves the process ready for the
next; a caller that stops early, a child that dies and a parent that dies are handled; the process
ends with its recognizer; ``auto`` picks the process only where there is a CPU for it."""

from __future__ import annotations

import subprocess
import sys
import textwrap
import threading
import time
import wave
from pathlib import Path

import numpy as np
import pytest
from media import make_long_clip

import edge_emotion.recognizer as recognizer_module
from edge_emotion.errors import BundleError, InputError, MediaError
from edge_emotion.frontend.align import FrameSubsampler
from edge_emotion.recognizer import Recognizer, RecognizerOptions, resolve_file_decoder
from edge_emotion.sources import decoder as decoder_module
from edge_emotion.sources import open_media
from edge_emotion.sources.decoder import DecoderProcess, merged_items, process_decoding_available

pytest.importorskip("av")
pytestmark = pytest.mark.skipif(
    not process_decoding_available(), reason="decoding in a separate process needs a POSIX system"
)

CREMA = "crema-d/video/1001_DFA_HAP_XX.flv"  # 2.0 s, VP6 480x360 + MP3, one face, speech


@pytest.fixture(scope="module")
def recognizers():
    try:
        here = Recognizer.from_bundle(backend="onnxruntime", file_decoder="thread")
    except BundleError as exc:
        pytest.skip(f"the shipped model is not in this install ({exc})")
    there = Recognizer.from_bundle(backend="onnxruntime", file_decoder="process")
    yield here, there
    here.close()
    there.close()


@pytest.fixture(params=["sample", "crema-d"])
def clip(request, sample_clip) -> Path:
    if request.param == "sample":
        return sample_clip
    from conftest import shared_data_dir

    data = shared_data_dir()
    if data is None or not (data / CREMA).is_file():
        pytest.skip("real clip not found: ../shared/data/crema-d is absent")
    return data / CREMA


def _dicts(results) -> list[dict]:
    return [r.to_dict() for r in results]


def _through_process(recognizer: Recognizer, path, **kwargs) -> list[dict]:
    """``analyze`` results, checking that the recognizer's decoder process read the file."""
    decoder = recognizer._file_decoder_process()
    assert decoder is not None and decoder.alive
    before = decoder.files_read
    results = _dicts(recognizer.analyze(path, **kwargs))
    assert recognizer._decoder is decoder and decoder.files_read == before + 1
    return results


@pytest.fixture(autouse=True)
def _no_hang():
    """A protocol that waits on both sides would hang the suite: end the run with every thread's
    traceback instead (pytest-timeout is not a dependency)."""
    import faulthandler

    faulthandler.dump_traceback_later(300, exit=True)
    yield
    faulthandler.cancel_dump_traceback_later()


@pytest.mark.parametrize(
    ("all_luma", "slots"),
    [(False, "many"), (True, "many"), (True, "few"), (True, "too small")],
    ids=["kept-luma", "all-luma", "4-slots", "pictures-pickled"],
)
def test_the_process_hands_over_what_reading_here_gives(recognizers, clip, all_luma, slots, monkeypatch):
    """Slots: as many as fit the buffer; the fewest (4, fewer than a message's items: the child
    sends what it has before it waits for a slot); slots too small for the pictures, which then go
    pickled through the socket (a video whose frames grow)."""
    _, there = recognizers
    preset = there.preset
    media = open_media(clip, sample_rate=preset.audio.sample_rate)
    here = list(merged_items(media, FrameSubsampler(preset)))
    size = (media.video.width, media.video.height)
    if slots == "few":
        monkeypatch.setattr(decoder_module, "BUFFER_BYTES", 1)
    elif slots == "too small":
        size = (8, 8)
    decoder = there._file_decoder_process()
    handed = list(decoder.read(clip, preset.audio.sample_rate, media.audio.chunk_ms, preset, all_luma, size))
    assert [(kind, item.timestamp_ms) for kind, item in handed] == [(kind, item.timestamp_ms) for kind, item in here]
    kept = 0
    for (kind, mine), (_, theirs) in zip(here, handed, strict=True):
        if kind == "audio":
            assert theirs.sample_rate == mine.sample_rate
            np.testing.assert_array_equal(theirs.pcm, mine.pcm)
            continue
        assert (theirs.width, theirs.height) == (mine.width, mine.height)
        assert theirs.converted == mine.converted  # RGB for exactly the frames the subsampler keeps
        if mine.converted:
            kept += 1
            np.testing.assert_array_equal(theirs.image, mine.image)
            np.testing.assert_array_equal(theirs.luma(), mine.luma())
        elif all_luma:
            np.testing.assert_array_equal(theirs.luma(), mine.luma())
        else:
            with pytest.raises(RuntimeError, match="not converted"):
                theirs.image  # noqa: B018
    assert 0 < kept < sum(kind == "video" for kind, _ in here)


@pytest.mark.parametrize("max_faces", [1, 2])
def test_analyze_gives_the_same_results_from_the_process(recognizers, clip, max_faces):
    here, there = recognizers
    if max_faces > 1:  # several people: every frame's luma goes over too
        here = Recognizer.from_bundle(backend="onnxruntime", file_decoder="thread", max_faces=max_faces)
        there = Recognizer.from_bundle(backend="onnxruntime", file_decoder="process", max_faces=max_faces)
    try:
        assert (here.file_decoder, there.file_decoder) == ("thread", "process")
        expected = _dicts(here.analyze(clip))
        assert expected
        assert _through_process(there, clip) == expected
        assert there._decoder is not None and there._decoder.alive
    finally:
        if max_faces > 1:
            here.close()
            there.close()


def test_files_with_one_track_go_through_the_process(recognizers, tmp_path):
    here, there = recognizers
    video_only = make_long_clip(tmp_path / "video.mp4", seconds=4, audio=False)
    sound = tmp_path / "sound.wav"
    tone = (3000 * np.sin(2 * np.pi * 180 * np.arange(16000 * 4) / 16000)).astype("<i2")
    with wave.open(str(sound), "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(16000)
        out.writeframes(tone.tobytes())
    for path in (video_only, sound):
        expected = _dicts(here.analyze(path))
        assert expected
        assert _through_process(there, path) == expected


def test_a_file_the_child_cannot_read_raises_here_and_the_process_goes_on(recognizers, sample_clip, tmp_path):
    _, there = recognizers
    decoder = there._file_decoder_process()
    broken = tmp_path / "broken.mp4"
    broken.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 40)
    with pytest.raises(MediaError, match="broken.mp4"):
        list(decoder.read(broken, 16000, 100, there.preset, False, (320, 240)))
    assert decoder.alive
    assert there._file_decoder_process() is decoder
    assert _through_process(there, sample_clip)  # the next file is read by the same process


def test_a_caller_that_stops_early_leaves_the_process_ready(recognizers, sample_clip, tmp_path):
    here, there = recognizers
    results = there.analyze(make_long_clip(tmp_path / "long.mp4"), hop_ms=500)
    first = next(results)
    assert first.t_start_ms == 0
    decoder = there._decoder
    results.close()  # 20 s of input: the child is stopped mid-file
    assert decoder.alive and there._decoder is decoder
    assert _through_process(there, sample_clip) == _dicts(here.analyze(sample_clip))


def test_a_child_that_dies_mid_file_raises_and_a_new_one_reads_the_next(recognizers, sample_clip, tmp_path):
    here, there = recognizers
    results = there.analyze(make_long_clip(tmp_path / "long.mp4"), hop_ms=500)
    next(results)
    dead = there._decoder
    dead._process.kill()
    with pytest.raises(MediaError, match="decoder process ended unexpectedly"):
        list(results)
    assert not dead.alive
    assert _through_process(there, sample_clip) == _dicts(here.analyze(sample_clip))
    assert there._decoder is not dead


def test_a_second_file_at_once_is_read_here(recognizers, sample_clip, tmp_path):
    here, there = recognizers
    first = there.analyze(make_long_clip(tmp_path / "long.mp4"), hop_ms=500)
    next(first)  # the process is busy with this file
    try:
        assert there._decoder.try_read(sample_clip, 16000, 100, None, False, (320, 240)) is None
        before = there._decoder.files_read
        assert _dicts(there.analyze(sample_clip)) == _dicts(here.analyze(sample_clip))
        assert there._decoder.files_read == before  # read here, on a thread
    finally:
        first.close()


def test_the_process_ends_with_its_recognizer_and_is_started_with_it(sample_clip):
    try:
        recognizer = Recognizer.from_bundle(backend="onnxruntime", file_decoder="process")
    except BundleError as exc:
        pytest.skip(f"the shipped model is not in this install ({exc})")
    decoder = recognizer._decoder
    assert decoder is not None and decoder.alive  # started before the first file
    list(recognizer.analyze(sample_clip))
    recognizer.close()
    assert decoder._process.poll() is not None
    assert recognizer._decoder is None


def test_the_child_ends_when_its_parent_dies():
    parent = subprocess.run(
        [
            sys.executable,
            "-c",
            textwrap.dedent(
                """
                import os
                from edge_emotion.sources.decoder import DecoderProcess
                decoder = DecoderProcess()
                print(decoder.pid, flush=True)
                os._exit(0)  # no close, no clean-up
                """
            ),
        ],
        capture_output=True,
        text=True,
        timeout=60,
        check=True,
    )
    pid = int(parent.stdout.split()[0])
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline and _running(pid):
        time.sleep(0.1)
    assert not _running(pid)


def _running(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text().split(")")[-1].split()[0]
    except (FileNotFoundError, ProcessLookupError):
        return False
    return state != "Z"  # a zombie has ended (its parent, init, reaps it)


def test_decoder_processes_read_files_from_several_threads(recognizers, sample_clip):
    here, there = recognizers
    expected = _dicts(here.analyze(sample_clip))
    outcomes: list = []

    def work() -> None:
        try:
            outcomes.append(_dicts(there.analyze(sample_clip)))
        except BaseException as exc:  # noqa: BLE001 - reported below
            outcomes.append(exc)

    decoder = there._file_decoder_process()
    before = decoder.files_read
    threads = [threading.Thread(target=work) for _ in range(3)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert outcomes == [expected] * 3
    assert 1 <= decoder.files_read - before <= 3


def test_auto_picks_the_process_where_a_cpu_is_free_for_it(monkeypatch):
    monkeypatch.setattr(recognizer_module, "usable_cpus", lambda: 1)
    assert resolve_file_decoder("auto") == "thread"
    monkeypatch.setattr(recognizer_module, "usable_cpus", lambda: 2)
    assert resolve_file_decoder("auto") == "process"
    assert resolve_file_decoder("thread") == "thread"
    with pytest.raises(InputError, match="file_decoder"):
        RecognizerOptions(file_decoder="fork")


def test_a_decoder_that_cannot_start_leaves_files_to_a_thread(recognizers, sample_clip, monkeypatch):
    here, _ = recognizers

    def cannot_start(*args, **kwargs):
        raise OSError("no processes here")

    monkeypatch.setattr(DecoderProcess, "__init__", cannot_start)
    with Recognizer.from_bundle(backend="onnxruntime", file_decoder="process") as fallback:
        assert _dicts(fallback.analyze(sample_clip)) == _dicts(here.analyze(sample_clip))
        assert fallback._decoder is None


def test_a_child_that_cannot_start_leaves_files_to_a_thread(recognizers, sample_clip, monkeypatch, caplog):
    """A Python that cannot run the child (here: a program that exits at once)."""
    here, _ = recognizers
    with Recognizer.from_bundle(backend="onnxruntime", file_decoder="process") as broken:
        broken._decoder.close()
        broken._decoder = None
        monkeypatch.setattr(sys, "executable", "/bin/false")
        with caplog.at_level("WARNING", logger="edge_emotion"):
            assert _dicts(broken.analyze(sample_clip)) == _dicts(here.analyze(sample_clip))
        assert "did not start" in caplog.text
        assert broken._decoder is None and broken._decoder_failed
        monkeypatch.undo()
        assert _dicts(broken.analyze(sample_clip))  # still on a thread, without trying again
        assert broken._decoder is None


def test_ctrl_c_is_left_to_the_parent():
    """Ctrl-C in a terminal reaches the whole process group; the parent closes its child."""
    import os
    import signal

    with DecoderProcess() as decoder:
        assert decoder._await_ready()
        os.kill(decoder.pid, signal.SIGINT)
        time.sleep(0.5)
        assert decoder.alive
    assert decoder._process.poll() == 0  # closed: it ended on its own, not by a signal


def test_results_dropped_unread_hold_nothing(recognizers, sample_clip):
    _, there = recognizers
    unread = there.analyze(sample_clip)
    del unread
    assert _through_process(there, sample_clip)


def test_a_read_closed_before_it_is_iterated_frees_the_process(recognizers, sample_clip):
    _, there = recognizers
    decoder = there._file_decoder_process()
    read = decoder.read(sample_clip, 16000, 100, there.preset, False, (320, 240))
    read.close()
    assert decoder.alive
    assert _through_process(there, sample_clip)


def test_a_relative_path_is_the_callers_after_a_change_of_folder(recognizers, sample_clip, tmp_path, monkeypatch):
    """The child started in another working folder: it is given the absolute path."""
    here, there = recognizers
    there._file_decoder_process()  # started in this folder
    (tmp_path / "clip.mp4").write_bytes(sample_clip.read_bytes())
    monkeypatch.chdir(tmp_path)
    assert _through_process(there, "clip.mp4") == _dicts(here.analyze(sample_clip))


def test_no_room_for_the_shared_buffer_leaves_the_file_to_a_thread(recognizers, sample_clip, monkeypatch, caplog):
    here, there = recognizers
    decoder = there._file_decoder_process()
    before = decoder.files_read

    def no_room(size_bytes):
        raise decoder_module._NoBuffer("/dev/shm: no space left (simulated)")

    monkeypatch.setattr(decoder_module, "_buffer_file", no_room)
    with caplog.at_level("WARNING", logger="edge_emotion"):
        assert _dicts(there.analyze(sample_clip)) == _dicts(here.analyze(sample_clip))
    assert "no shared buffer" in caplog.text
    assert decoder.files_read == before and decoder.alive  # read here; the process waits for the next
    monkeypatch.undo()
    assert _through_process(there, sample_clip)


def test_closing_the_recognizer_while_a_file_is_read_ends_that_read(sample_clip, tmp_path):
    try:
        recognizer = Recognizer.from_bundle(backend="onnxruntime", file_decoder="process")
    except BundleError as exc:
        pytest.skip(f"the shipped model is not in this install ({exc})")
    results = recognizer.analyze(make_long_clip(tmp_path / "long.mp4"), hop_ms=500)
    next(results)
    decoder = recognizer._decoder
    recognizer.close()
    with pytest.raises(MediaError):
        list(results)
    assert decoder._process.poll() is not None
    assert decoder._conn.closed


def test_a_child_that_ended_before_its_first_file_is_broken(monkeypatch):
    monkeypatch.setattr(sys, "executable", "/bin/false")
    decoder = DecoderProcess()
    monkeypatch.undo()
    decoder._process.wait(timeout=30)  # gone before anything was asked of it
    assert decoder.try_read("clip.mp4", 16000, 100, None, False, None) is None
    assert decoder.broken and not decoder.alive
