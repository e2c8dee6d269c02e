"""tools/baselines.py: its feature extractors on real files, the peer's label order, the split it
shares with the deep model. Fast (a few files); the full run is the script itself."""

from __future__ import annotations

import importlib.util
import sys
import zipfile
from pathlib import Path

import numpy as np
import pytest

from edge_emotion.config import EDGE

REPO_ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def baselines():
    pytest.importorskip("sklearn")
    spec = importlib.util.spec_from_file_location("baselines", REPO_ROOT / "tools" / "baselines.py")
    module = importlib.util.module_from_spec(spec)
    sys.modules["baselines"] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_fer_peer_class_order_maps_by_name(baselines):
    # the fer package's order (fer.FER._get_labels) onto FER2013's folder names, canonicalised
    assert baselines.FER_PEER_CLASSES == ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
    assert baselines.FER_LABELS == ("angry", "disgust", "fearful", "happy", "sad", "surprised", "neutral")
    to_ours = baselines.fer_peer_to_labels()
    assert [baselines.FER_LABELS[i] for i in to_ours] == list(baselines.FER_LABELS)
    # our eight labels: all of FER's seven are there by name, calm is the one FER lacks
    from edge_emotion.labels import LabelMapper

    ours = LabelMapper(EDGE.labels)
    assert all(ours.index(c) is not None for c in baselines.FER_PEER_CLASSES)
    assert [lab for lab in EDGE.labels if LabelMapper(baselines.FER_LABELS).index(lab) is None] == ["calm"]


def test_fer_peer_preprocessing(baselines):
    img = np.zeros((48, 48), np.uint8)
    img[:, 24:] = 255
    x = baselines.fer_peer_input(img)
    assert x.shape == (1, 64, 64, 1) and x.dtype == np.float32
    assert x.min() == -1.0 and x.max() == 1.0


def test_mfcc_is_dct_of_log_mel(baselines):
    from scipy.fft import idct

    lm = np.random.default_rng(0).normal(size=(EDGE.audio.n_mels, 7)).astype(np.float32)
    full = baselines.mfcc_from_log_mel(lm, n_mfcc=EDGE.audio.n_mels)
    np.testing.assert_allclose(idct(full, type=2, axis=0, norm="ortho"), lm, atol=1e-4)
    ramp = np.tile(np.arange(9, dtype=np.float64), (2, 1))
    np.testing.assert_allclose(baselines.deltas(ramp)[:, 2:-2], 1.0)


def test_audio_features_on_real_clips(baselines, shared_data):
    clips = sorted((shared_data / "ravdess" / "audio16k" / "Actor_01").glob("*.flac"))[:2]
    assert clips, "no RAVDESS clips"
    for path in clips:
        pcm = baselines.read_audio(path, EDGE.audio.sample_rate)
        blocks = baselines.audio_feature_blocks(pcm, EDGE.audio)
        assert blocks["logmel"].shape == (2 * EDGE.audio.n_mels,)
        assert blocks["mfcc"].shape == (4 * baselines.N_MFCC,)
        assert all(np.isfinite(b).all() for b in blocks.values())
        # std over speech frames is positive for speech
        assert (blocks["logmel"][EDGE.audio.n_mels :] > 0).all()


def test_hog_and_pixels_on_real_faces(baselines, shared_data):
    import cv2

    with zipfile.ZipFile(shared_data / "fer2013" / "public_test.zip") as zf:
        names = [n for n in zf.namelist() if n.endswith(".jpg")][:3]
        images = np.stack([cv2.imdecode(np.frombuffer(zf.read(n), np.uint8), cv2.IMREAD_GRAYSCALE) for n in names])
    assert images.shape == (3, 48, 48)
    assert baselines.hog_features(images, 8).shape == (3, 5 * 5 * 4 * 9)
    assert baselines.hog_features(images, 6).shape == (3, 7 * 7 * 4 * 9)
    feats = baselines.FaceFeatures(pca_components=2, hog_cell=8).fit(images)
    assert feats.transform(images, "pixels+hog").shape == (3, 2 + 900)


def test_audio_folds_are_the_deep_models(baselines, shared_data):
    from edge_emotion.eval.datasets import get_dataset
    from edge_emotion.eval.splits import make_split

    settings = baselines.audio_split_settings(REPO_ROOT / "configs" / "edge.toml")
    assert (settings["folds"], settings["seed"], settings["val_speakers"]) == (5, 0, 4)
    samples = get_dataset("ravdess-audio", shared_data / "ravdess" / "audio16k").samples
    tests = [
        set(make_split(samples, "actor-kfold", k, settings["folds"], settings["seed"]).test_speakers)
        for k in range(settings["folds"])
    ]
    assert set().union(*tests) == {f"ravdess-{i:02d}" for i in range(1, 21)}
    assert sum(len(t) for t in tests) == 20  # disjoint, 4 actors each


def test_peer_file_carries_its_licence():
    peer = REPO_ROOT / "tools" / "peers" / "fer_emotion_model_quantized.tflite"
    if not peer.is_file():
        pytest.skip("the peer model is not carried in this checkout")
    licence = (REPO_ROOT / "tools" / "peers" / "LICENSE.fer").read_text()
    assert "MIT License" in licence and "Justin Shenk" in licence


def _synthetic_corpus(baselines, n_speakers: int, per_speaker: int, seed: int, name: str = "synthetic"):
    """Three well separated classes (neutral, happy, sad) in both feature blocks."""
    rng = np.random.default_rng(seed)
    n = n_speakers * per_speaker
    y = np.tile(np.array([0, 2, 3]), n // 3 + 1)[:n]  # EDGE.labels indices: neutral, happy, sad
    centres = rng.normal(size=(8, 4 * baselines.N_MFCC + 2 * EDGE.audio.n_mels)) * 3
    x = (centres[y] + rng.normal(size=(n, centres.shape[1]))).astype(np.float32)
    speakers = np.repeat([f"{name}-{i}" for i in range(n_speakers)], per_speaker)
    return baselines.CorpusFeatures(
        corpus=name,
        root=Path("."),
        samples=[None] * n,
        blocks={"mfcc": x[:, : 4 * baselines.N_MFCC], "logmel": x[:, 4 * baselines.N_MFCC :]},
        y=y,
        speakers=speakers,
        keys=[f"{name}/{i}" for i in range(n)],
        seconds=0.0,
        unmapped={},
    )


def test_fit_and_score_never_looks_at_its_targets(baselines):
    train = _synthetic_corpus(baselines, n_speakers=4, per_speaker=30, seed=0)
    target = _synthetic_corpus(baselines, n_speakers=2, per_speaker=30, seed=0)  # the same class centres
    scrambled = _synthetic_corpus(baselines, n_speakers=2, per_speaker=30, seed=0)
    scrambled.y = np.random.default_rng(1).permutation(scrambled.y)
    tr = np.arange(len(train.y))
    every = np.arange(len(target.y))
    a = baselines.fit_and_score(train, tr, 4, {"t": (target, every)})
    b = baselines.fit_and_score(train, tr, 4, {"t": (scrambled, every)})
    # the choice (and each model's inner-CV score) is the training speakers' alone
    assert a["selected"] == b["selected"]
    assert {k: (m["params"], m["inner_cv_ua"]) for k, m in a["models"].items()} == {
        k: (m["params"], m["inner_cv_ua"]) for k, m in b["models"].items()
    }
    chosen = a["selected"]["model"]
    assert a["selected"]["inner_cv_ua"] > 0.9
    assert a["models"][chosen]["t"]["ua"] > 0.9  # separable classes are learnt ...
    assert b["models"][chosen]["t"]["ua"] < 0.6  # ... and a scrambled target scores by chance
    assert a["models"][chosen]["t"]["result"]["n"] == len(every)


def test_cross_corpus_trains_on_each_folds_non_test_actors(baselines, shared_data, monkeypatch):
    from edge_emotion.eval.datasets import get_dataset
    from edge_emotion.labels import LabelMapper

    mapper = LabelMapper(EDGE.labels)
    ravdess = [s for s in get_dataset("ravdess-audio", shared_data / "ravdess" / "audio16k").samples if mapper(s.label)]
    source = _synthetic_corpus(baselines, n_speakers=1, per_speaker=len(ravdess), seed=0)
    source.samples, source.keys = ravdess, [s.key for s in ravdess]
    source.speakers = np.array([s.speaker for s in ravdess])
    target = _synthetic_corpus(baselines, n_speakers=3, per_speaker=20, seed=1, name="savee")
    monkeypatch.setattr(baselines, "corpus_features", lambda data, c: source if c == "ravdess-audio" else target)
    seen = []

    def fake_fit(train, tr, inner_folds, targets):
        seen.append((set(train.speakers[tr]), {k: idx.tolist() for k, (_, idx) in targets.items()}))
        row = {"wa": 0.5, "ua": 0.5}
        return {"models": {"m": {"params": {}, "inner_cv_ua": 0.5, "savee": row}}, "selected": {"model": "m"}}

    monkeypatch.setattr(baselines, "fit_and_score", fake_fit)
    settings = baselines.audio_split_settings(REPO_ROOT / "configs" / "edge.toml")
    report = baselines.run_audio_cross_corpus(shared_data, None, settings, 4, ["savee"])
    assert len(seen) == settings["folds"]
    all_actors = {f"ravdess-{i:02d}" for i in range(1, 21)}
    held_out = [all_actors - trained for trained, _ in seen]
    assert all(len(h) == 4 for h in held_out) and set().union(*held_out) == all_actors
    assert all(targets == {"savee": list(range(60))} for _, targets in seen)  # every target clip
    assert report["summary"]["savee"]["selected by inner CV"]["ua"]["mean"] == 0.5
