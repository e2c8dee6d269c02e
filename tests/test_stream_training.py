"""The streaming path feeds the graphs exactly what training's preprocessing produces.

A real clip is pushed through ``Recognizer.create_stream`` in uneven chunks; every graph call of the
stream is recorded. Window by window, the recorded inputs (log-mel, face crops, the aligned steps
and masks given to the fusion head) must equal what :func:`edge_emotion.frontend.preprocess.preprocess_clip`
(the function training's cache and evaluation call) gives for the same window, and the window's
scores must equal the PyTorch model's on those inputs. The stream runs its face detector on every
frame (``detect_every=1``, the default), as training's preprocessing does.
"""

from __future__ import annotations

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="the PyTorch reference needs torch (the train extra)")
pytest.importorskip("onnx", reason="exporting the test bundle needs onnx (the export extra)")

from fakes import fresh_model, make_bundle  # noqa: E402

from edge_emotion.frontend.align import align_encoded  # noqa: E402
from edge_emotion.frontend.preprocess import _read_audio, preprocess_clip  # noqa: E402
from edge_emotion.model.engine import BundleModel  # noqa: E402
from edge_emotion.recognizer import Recognizer  # noqa: E402
from edge_emotion.sources import VideoFileSource  # noqa: E402

CLIPS = ["ravdess/av/01-01-01-01-01-01-01.mp4", "crema-d/video/1001_DFA_ANG_XX.flv"]


class RecordingModel:
    """A :class:`~edge_emotion.stream.FusionModel` that records every graph call of a stream."""

    def __init__(self, model: BundleModel):
        self._model = model
        self.preset, self.labels = model.preset, model.labels
        self.faces: list[np.ndarray] = []
        self.log_mels: list[np.ndarray] = []
        self.fused: list[tuple[np.ndarray, ...]] = []

    def encode_faces(self, faces):
        self.faces.append(np.array(faces))
        return self._model.encode_faces(faces)

    def encode_audio(self, log_mel):
        self.log_mels.append(np.array(log_mel))
        return self._model.encode_audio(log_mel)

    def fuse(self, audio, visual, audio_mask, visual_mask):
        self.fused.append(tuple(np.array(a) for a in (audio, visual, audio_mask, visual_mask)))
        return self._model.fuse(audio, visual, audio_mask, visual_mask)


def push_unevenly(stream, path, preset, seed):
    """The clip's frames at their timestamps and its audio (at the model's rate, from the clip's
    start, as training reads it) in chunks of random length, interleaved by time; polled after each
    push, flushed at the end."""
    rng = np.random.default_rng(seed)
    pcm = _read_audio(path, preset, 0.0)
    rate = preset.audio.sample_rate
    cuts = np.cumsum(rng.integers(rate // 100, rate // 2, size=pcm.size // (rate // 100) + 2))
    cuts = np.concatenate([[0], cuts[cuts < pcm.size], [pcm.size]])
    chunks = [(int(a * 1000 // rate), pcm[a:b]) for a, b in zip(cuts[:-1], cuts[1:], strict=True) if b > a]
    frames = [(f.timestamp_ms, f.image) for f in VideoFileSource(str(path))]
    results, i, j = [], 0, 0
    while i < len(frames) or j < len(chunks):
        if j >= len(chunks) or (i < len(frames) and frames[i][0] <= chunks[j][0]):
            stream.push_video(frames[i][1], frames[i][0])
            i += 1
        else:
            stream.push_audio(chunks[j][1], rate, chunks[j][0])
            j += 1
        results += stream.poll()
    return results + stream.flush()


@pytest.mark.parametrize("clip", CLIPS, ids=["ravdess", "crema-d"])
def test_stream_feeds_the_graphs_what_training_preprocessing_produces(shared_data, tmp_path, clip):
    path = shared_data / clip
    if not path.is_file():
        pytest.skip(f"{clip} is not in the real data folder")
    model_t = fresh_model("edge", 0)
    preset = model_t.preset
    recorder = RecordingModel(BundleModel.from_bundle(make_bundle(tmp_path), backend="onnxruntime", threads=1))
    stream = Recognizer(recorder, detect_every=1).create_stream(hop_ms=preset.hop_ms)
    results = push_unevenly(stream, path, preset, seed=len(clip))
    clip_features = preprocess_clip(preset, video_path=path, audio_in_video=True)

    # Face crops: the stream encoded exactly the crops training stores, in the same order.
    streamed_faces = np.concatenate(recorder.faces) if recorder.faces else np.zeros((0,))
    stored_faces = clip_features.faces[clip_features.face_mask]
    assert streamed_faces.shape == stored_faces.shape and len(stored_faces) >= 10
    np.testing.assert_allclose(streamed_faces, stored_faces, rtol=0, atol=1e-6)

    # Window by window: same windows, same log-mel, same aligned fusion inputs, same scores.
    starts = [r.t_start_ms for r in results]
    assert starts == clip_features.window_start_ms.tolist()
    assert len(recorder.fused) == len(results)  # the actor is seen and heard in every window
    log_mels = iter(recorder.log_mels)
    with torch.no_grad():
        for w, result in enumerate(results):
            assert result.t_end_ms == clip_features.window_end_ms(w, preset)
            speech = clip_features.speech[w]
            if speech.any():
                np.testing.assert_allclose(next(log_mels)[0, 0], clip_features.log_mel[w], rtol=0, atol=1e-6)
            faces, face_mask = clip_features.window_faces(w, preset)
            log_mel_t = torch.from_numpy(clip_features.log_mel[w][None, None])
            audio_seq = model_t.audio(log_mel_t).numpy()
            embeddings = model_t.visual(torch.from_numpy(faces)).numpy()[None]
            want = align_encoded(preset, audio_seq, embeddings, face_mask[None], speech[None])
            got = recorder.fused[w]
            for name, a, b in zip(("audio", "visual", "audio_mask", "visual_mask"), got, want, strict=True):
                np.testing.assert_allclose(a, b, rtol=0, atol=1e-4, err_msg=f"window {w}: {name}")
            np.testing.assert_array_equal(got[2], want[2])  # masks exactly
            np.testing.assert_array_equal(got[3], want[3])
            logits = model_t(
                log_mel_t,
                torch.from_numpy(faces[None]),
                torch.from_numpy(face_mask[None].astype(np.float32)),
                torch.from_numpy(speech[None].astype(np.float32)),
            )
            probs = torch.softmax(logits.double(), dim=1)[0].numpy()
            streamed = np.array([result.raw_scores[label] for label in preset.labels])
            np.testing.assert_allclose(streamed, probs, rtol=0, atol=1e-4, err_msg=f"window {w}: scores")
    assert next(log_mels, None) is None  # no audio was encoded that training would not have
