"""The streaming recognizer on real clips: parity with PyTorch, analyze == a chunked stream, the
live session, odd input and wrong input."""

from __future__ import annotations

import logging
import threading
from pathlib import Path

import numpy as np
import pytest

from edge_emotion.errors import InputError, MediaError
from edge_emotion.recognizer import Recognizer
from edge_emotion.results import EmotionResult
from edge_emotion.sources import AudioFileSource, VideoFileSource, open_media

pytest.importorskip("onnx", reason="the fake bundles are written with onnx (export extra)")

from fakes import fresh_model, make_bundle, make_onnx_bundle  # noqa: E402
from media import SAMPLE_CLIP  # noqa: E402

SAMPLE = SAMPLE_CLIP  # 3.0 s, face + speech


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    return make_onnx_bundle(tmp_path_factory.mktemp("rec"), preset="edge", seed=3)


@pytest.fixture(scope="module")
def recognizer(bundle) -> Recognizer:
    return Recognizer.from_bundle(bundle, backend="onnxruntime", hop_ms=500)


class TorchModel:
    """The PyTorch model behind the stream's model protocol: the reference for parity."""

    def __init__(self, model):
        import torch

        self._torch, self._model = torch, model.eval()
        self.preset, self.labels = model.preset, model.preset.labels

    def _run(self, module, *arrays):
        with self._torch.no_grad():
            return module(*(self._torch.from_numpy(np.ascontiguousarray(a)) for a in arrays)).numpy()

    def encode_faces(self, faces):
        return self._run(self._model.visual, faces)

    def encode_audio(self, log_mel):
        return self._run(self._model.audio, log_mel)

    def fuse(self, audio, visual, audio_mask, visual_mask):
        return self._run(self._model.fusion, audio, visual, audio_mask, visual_mask)


def _scores(results: list[EmotionResult]) -> np.ndarray:
    return np.array([[r.raw_scores[label] for label in r.scores] for r in results])


def test_parity_pytorch_model_vs_exported_onnx_through_the_streaming_path(tmp_path):
    """Same clip, same SDK preprocessing and alignment; PyTorch modules vs the bundle's ONNX graphs
    in ONNX Runtime. Tolerance: 1e-4 on the probabilities (FP32 graphs)."""
    pytest.importorskip("torch", reason="the reference is a fresh PyTorch model (train extra)")
    bundle = make_bundle(tmp_path, preset="edge", seed=3)
    recognizer = Recognizer.from_bundle(bundle, backend="onnxruntime", hop_ms=500)
    onnx_results = list(recognizer.analyze(SAMPLE))
    torch_results = list(Recognizer(TorchModel(fresh_model("edge", seed=3)), hop_ms=500).analyze(SAMPLE))
    assert len(onnx_results) == len(torch_results) >= 1
    for a, b in zip(onnx_results, torch_results, strict=True):
        assert (a.t_start_ms, a.t_end_ms, a.modalities) == (b.t_start_ms, b.t_end_ms, b.modalities)
    assert np.abs(_scores(onnx_results) - _scores(torch_results)).max() < 1e-4
    assert [r.label for r in onnx_results] == [r.label for r in torch_results]


def test_analyze_equals_a_stream_fed_chunk_by_chunk(recognizer):
    expected = list(recognizer.analyze(SAMPLE))
    media = open_media(SAMPLE)
    frames = list(media.video)
    chunks = list(AudioFileSource(SAMPLE, sample_rate=16000, chunk_ms=37))  # other chunking than analyze
    stream = recognizer.create_stream()
    got: list[EmotionResult] = []
    # Push in an order unlike analyze's: all video of each second, then that second's audio.
    for second in range(0, 3):
        for f in frames:
            if second * 1000 <= f.timestamp_ms < (second + 1) * 1000:
                stream.push_video(f.image, f.timestamp_ms)
        for c in chunks:
            if second * 1000 <= c.timestamp_ms < (second + 1) * 1000:
                # and split each chunk further into uneven pieces
                cut = c.pcm.size // 3
                stream.push_audio(c.pcm[:cut], c.sample_rate, c.timestamp_ms)
                stream.push_audio(c.pcm[cut:], c.sample_rate, c.timestamp_ms + round(1000 * cut / c.sample_rate))
        got += stream.poll()
    got += stream.flush()
    assert [(r.t_start_ms, r.t_end_ms, r.label, r.modalities) for r in got] == [
        (r.t_start_ms, r.t_end_ms, r.label, r.modalities) for r in expected
    ]
    assert np.abs(_scores(got) - _scores(expected)).max() < 1e-5


def test_results_cover_the_clip_and_use_both_modalities(recognizer):
    media = open_media(SAMPLE)
    first = next(iter(media.video))
    height, width = first.image.shape[:2]
    results = list(recognizer.analyze(SAMPLE))
    # 3.0 s clip, 3 s window: exactly one window.
    assert len(results) == 1
    r = results[0]
    assert r.t_start_ms == 0 and abs(r.t_end_ms - media.duration_ms) <= 100
    assert set(r.modalities) == {"audio", "video"}
    assert abs(sum(r.scores.values()) - 1) < 1e-6 and set(r.scores) == set(recognizer.labels)
    x, y, w, h = r.face.bbox
    assert 0 <= x and 0 <= y and x + w <= width and y + h <= height and w > 40  # source-frame pixels


def test_last_partial_window_is_not_dropped(recognizer, shared_data):
    clip = shared_data / "ravdess" / "av" / "01-01-01-01-01-01-01.mp4"  # 3.4 s
    results = list(recognizer.analyze(clip, hop_ms=1000))
    assert [r.t_start_ms for r in results] == [0, 1000]
    assert results[-1].t_end_ms >= open_media(clip).duration_ms - 100


def test_variable_frame_rate_and_offset_audio_line_up(recognizer, vfr_offset_mp4):
    results = list(recognizer.analyze(vfr_offset_mp4, hop_ms=500))
    assert results and all("video" in r.modalities for r in results)


def test_audio_only_file_runs_on_audio_alone_with_a_warning(recognizer, tmp_path, caplog):
    import soundfile as sf

    pcm, start_ms = __import__("edge_emotion.sources", fromlist=["read_audio"]).read_audio(SAMPLE, 16000)
    path = tmp_path / "speech.wav"
    sf.write(path, pcm, 16000)
    with caplog.at_level(logging.WARNING):
        results = list(recognizer.analyze(path))
    assert "no video track" in caplog.text
    assert results and all(r.modalities == ("audio",) and r.face is None for r in results)


def test_video_only_file_runs_on_faces_alone(recognizer, tmp_path, caplog):
    import av

    path = tmp_path / "silent.mp4"
    with av.open(str(path), "w") as out:
        stream = out.add_stream("mpeg4", rate=30)
        stream.width, stream.height, stream.pix_fmt = 480, 360, "yuv420p"
        for frame in list(open_media(SAMPLE).video)[:30]:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame.image, format="rgb24")):
                out.mux(packet)
        for packet in stream.encode():
            out.mux(packet)
    with caplog.at_level(logging.WARNING):
        results = list(recognizer.analyze(path))
    assert "no audio track" in caplog.text
    assert len(results) == 1 and results[0].modalities == ("video",)


def test_silence_and_no_face_give_an_unknown_result_not_an_error(recognizer):
    stream = recognizer.create_stream()
    grey = np.full((240, 320, 3), 128, np.uint8)
    for i in range(40):
        stream.push_video(grey, i * 100)
    stream.push_audio(np.zeros(16000 * 4, np.float32), 16000, 0)
    results = stream.poll() + stream.flush()
    assert results
    assert all(r.label == "unknown" and r.modalities == () and r.face is None for r in results)
    assert all(abs(v - 1 / 8) < 1e-9 for v in results[0].scores.values())


def test_one_frame_and_a_very_short_clip_still_get_a_result(recognizer):
    frame = next(iter(open_media(SAMPLE).video))
    stream = recognizer.create_stream(audio=False)
    stream.push_video(frame.image, 0)
    results = stream.poll() + stream.flush()
    assert len(results) == 1 and results[0].modalities == ("video",)

    speech, _ = __import__("edge_emotion.sources", fromlist=["read_audio"]).read_audio(SAMPLE, 16000)
    stream = recognizer.create_stream(video=False)
    stream.push_audio(speech[8000:12000], 16000, 0)  # 250 ms of speech
    results = stream.poll() + stream.flush()
    assert len(results) == 1 and results[0].t_end_ms == 250


def test_unusual_sample_rate_and_channels_are_accepted(recognizer):
    t = np.arange(22050 * 3) / 22050
    bursts = np.where((t - 0.15) % 0.3 < 0.06, 0.01, 1.0)[:, None]  # a steady tone is no speech
    stereo = np.stack([np.sin(2 * np.pi * 220 * t), np.sin(2 * np.pi * 330 * t)], axis=1) * 0.3 * bursts
    stream = recognizer.create_stream(video=False)
    stream.push_audio((stereo * 32767).astype(np.int16), 22050, 0)
    results = stream.poll() + stream.flush()
    assert results and results[0].modalities == ("audio",)


def test_non_increasing_timestamps_raise_value_error(recognizer):
    stream = recognizer.create_stream()
    frame = np.zeros((64, 64, 3), np.uint8)
    stream.push_video(frame, 100)
    with pytest.raises(ValueError):
        stream.push_video(frame, 100)
    with pytest.raises(ValueError):
        stream.push_video(frame, 50)
    stream.push_audio(np.zeros(160, np.float32), 16000, 0)
    with pytest.raises(ValueError):
        stream.push_audio(np.zeros(160, np.float32), 16000, 0)


def test_wrong_input_is_refused_clearly(recognizer, tmp_path):
    stream = recognizer.create_stream()
    with pytest.raises(InputError):
        stream.push_video(np.zeros((64, 64), np.uint8), 0)
    with pytest.raises(InputError):
        stream.push_audio(np.zeros(10, np.float32), 0, 0)
    with pytest.raises(InputError):
        recognizer.create_stream(window_ms=10_000)
    with pytest.raises(MediaError):
        list(recognizer.analyze(tmp_path / "missing.mp4"))
    empty = tmp_path / "empty.mp4"
    empty.write_bytes(b"")
    with pytest.raises(MediaError):
        list(recognizer.analyze(empty))
    corrupt = tmp_path / "corrupt.mp4"
    corrupt.write_bytes(b"\x00\x00\x00\x18ftypmp42" + bytes(range(256)) * 20)
    with pytest.raises(MediaError):
        list(recognizer.analyze(corrupt))


def test_visual_encoder_runs_once_per_kept_frame_despite_overlapping_windows(bundle):
    recognizer = Recognizer.from_bundle(bundle, backend="onnxruntime", hop_ms=250, window_ms=1000)
    calls = []
    original = recognizer.model.encode_faces
    recognizer.model.encode_faces = lambda faces: calls.append(len(faces)) or original(faces)
    frames = list(open_media(SAMPLE).video)
    results = list(recognizer.analyze(SAMPLE))
    assert len(results) >= 4  # 1 s windows every 250 ms: each frame lies in up to four windows
    # The sample is 25 fps: at the model's 10 fps the stream keeps every other frame (a frame once
    # 3/4 of the model's frame period has passed since the last kept one).
    kept = (len(frames) + 1) // 2
    assert 0.8 * kept <= sum(calls) <= kept  # once per kept frame (the face is in nearly all), no recompute


def test_smoothing_averages_successive_scores(bundle, shared_data):
    clip = shared_data / "ravdess" / "av" / "01-01-01-01-01-01-01.mp4"
    raw = list(Recognizer.from_bundle(bundle, hop_ms=500).analyze(clip))
    smooth = list(Recognizer.from_bundle(bundle, hop_ms=500, smoothing=0.5).analyze(clip))
    assert len(raw) == len(smooth) >= 2
    expected = 0.5 * _scores(raw)[0] + 0.5 * _scores(raw)[1]
    got = np.array([smooth[1].scores[label] for label in smooth[1].scores])
    assert np.allclose(got, expected, atol=1e-6)


def test_live_session_calls_back_from_a_worker_thread_with_file_backed_sources(recognizer):
    seen: list[tuple[EmotionResult, str]] = []
    done = threading.Event()

    def on_result(result):
        seen.append((result, threading.current_thread().name))
        done.set()

    session = recognizer.live(
        on_result=on_result,
        video_source=VideoFileSource(SAMPLE),
        audio_source=AudioFileSource(SAMPLE, sample_rate=16000),
    )
    with session:
        assert session.wait(60)
    assert seen and all(name == "edge-emotion-worker" for _, name in seen)
    assert [r.to_dict() for r, _ in seen] == [r.to_dict() for r in recognizer.analyze(SAMPLE)]
    session.stop()  # idempotent


def test_live_session_reports_a_missing_camera_at_start(recognizer):
    from edge_emotion.errors import DeviceError

    with pytest.raises(DeviceError):
        recognizer.live(camera=7, mic=None).start()


def _speech_16k() -> np.ndarray:
    from edge_emotion.sources import read_audio

    speech, _ = read_audio(SAMPLE, 16000)
    return speech


def test_audio_longer_than_video_is_covered_to_its_end(recognizer):
    """One modality ending early must not drop the other's later windows."""
    frames = list(open_media(SAMPLE).video)[:25]  # 1 s of video
    speech = np.tile(_speech_16k(), 3)  # 9 s of audio
    stream = recognizer.create_stream(hop_ms=1000)
    for f in frames:
        stream.push_video(f.image, f.timestamp_ms)
    stream.push_audio(speech, 16000, 0)
    results = stream.poll() + stream.flush()
    duration_ms = 1000 * speech.size / 16000
    assert results[-1].t_end_ms >= duration_ms - 100
    assert [r.t_start_ms for r in results] == list(range(0, 1000 * len(results), 1000))
    assert "video" in results[0].modalities and all("video" not in r.modalities for r in results[2:])


def test_end_input_lets_windows_complete_on_the_other_modality(recognizer):
    speech = np.tile(_speech_16k(), 3)
    stream = recognizer.create_stream(hop_ms=1000)
    frame = next(iter(open_media(SAMPLE).video))
    stream.push_video(frame.image, 0)
    stream.end_input("video")
    stream.push_audio(speech, 16000, 0)
    assert len(stream.poll()) >= 2  # no waiting for video that will never come
    with pytest.raises(InputError):
        stream.end_input("smell")


def test_hop_longer_than_the_window_skips_the_gaps_without_error(recognizer):
    speech = np.tile(_speech_16k(), 3)  # 9 s
    stream = recognizer.create_stream(hop_ms=5000, video=False)
    stream.push_audio(speech, 16000, 0)
    results = stream.poll() + stream.flush()
    assert [r.t_start_ms for r in results] == [0, 5000]
    assert all(r.t_end_ms > r.t_start_ms for r in results)


def test_zero_hop_is_refused_not_replaced_by_the_default(bundle):
    with pytest.raises(InputError):
        Recognizer.from_bundle(bundle, hop_ms=0)


def test_graphs_run_on_half_the_cpus_unless_told(monkeypatch):
    import edge_emotion.config as config_module
    import edge_emotion.recognizer as recognizer_module

    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda pid: {0, 1, 2, 3, 4}, raising=False)
    assert recognizer_module.stream_threads() == 2
    monkeypatch.setattr(config_module.os, "sched_getaffinity", lambda pid: {0}, raising=False)
    assert recognizer_module.stream_threads() == 1
    monkeypatch.undo()
    with Recognizer.from_bundle() as rec:
        assert {b.threads for b in rec.model.backends.values()} == {recognizer_module.stream_threads()}
    with Recognizer.from_bundle(threads=2) as rec:
        assert {b.threads for b in rec.model.backends.values()} == {2}
