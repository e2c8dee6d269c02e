"""One Recognizer serving several streams on several threads: every thread gets the results the
single-threaded run gives, on every backend that runs here (the shipped default bundle, real
CREMA-D clips)."""

from __future__ import annotations

import threading

import numpy as np
import pytest
from edge_emotion.runtimes import is_available

from edge_emotion.info import default_bundle_path
from edge_emotion.recognizer import Recognizer

CLIPS = ("1001_DFA_ANG_XX.flv", "1001_DFA_HAP_XX.flv", "1001_DFA_NEU_XX.flv")
#: Short windows and hops, so that each 2-2.5 s clip gives several windows (and many graph calls).
WINDOW_MS, HOP_MS = 1000, 200
ROUNDS = 2  # each thread runs its clip this many times, all threads at once


def _case(runtime: str, format_key: str):
    reason = f"the {runtime} runtime is not installed here"
    return pytest.param(
        runtime, format_key, marks=pytest.mark.skipif(not is_available(runtime), reason=reason), id=format_key
    )


@pytest.fixture(scope="module")
def clips(shared_data):
    folder = shared_data / "crema-d" / "video"
    paths = [folder / name for name in CLIPS]
    missing = [p.name for p in paths if not p.is_file()]
    if missing:
        pytest.skip(f"real CREMA-D clips {', '.join(missing)} are not in {folder}")
    return paths


@pytest.fixture(scope="module")
def bundle():
    path = default_bundle_path()
    if path is None:
        pytest.skip("this checkout ships no default bundle (edge_emotion/models/default)")
    return path


def _run(recognizer: Recognizer, clip) -> tuple[list[str], np.ndarray]:
    """The labels and the ``(windows, classes)`` scores of one pass over ``clip``."""
    results = list(recognizer.analyze(clip))
    labels = [r.label for r in results]
    scores = np.array([[r.scores[name] for name in recognizer.labels] for r in results], np.float64)
    return labels, scores


@pytest.mark.parametrize(
    ("runtime", "format_key"),
    [
        _case("onnxruntime", "onnx"),
        _case("onnxruntime", "onnx-int8"),
        _case("openvino", "openvino"),
        _case("openvino", "openvino-int8"),
    ],
)
def test_three_threads_share_one_recognizer(bundle, clips, runtime, format_key):
    recognizer = Recognizer.from_bundle(
        bundle, backend=runtime, format=format_key, threads=1, window_ms=WINDOW_MS, hop_ms=HOP_MS
    )
    assert recognizer.model.format_key == format_key
    single = {clip: _run(recognizer, clip) for clip in clips}
    assert all(len(labels) >= 5 for labels, _ in single.values())

    start = threading.Barrier(len(clips))
    got: dict = {clip: [] for clip in clips}
    errors: list[BaseException] = []

    def serve(clip) -> None:
        try:
            start.wait(timeout=60)
            for _ in range(ROUNDS):
                got[clip].append(_run(recognizer, clip))
        except BaseException as exc:  # reported by the main thread
            errors.append(exc)

    threads = [threading.Thread(target=serve, args=(clip,), name=clip.stem) for clip in clips]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a thread did not finish"
    assert not errors, f"a thread raised: {errors[0]!r}"
    for clip in clips:
        want_labels, want_scores = single[clip]
        assert len(got[clip]) == ROUNDS
        for labels, scores in got[clip]:
            wrong = sum(a != b for a, b in zip(labels, want_labels, strict=False))
            assert labels == want_labels, f"{clip.name}: {wrong} of {len(want_labels)} labels differ under threads"
            np.testing.assert_allclose(scores, want_scores, rtol=0, atol=1e-6, err_msg=clip.name)
