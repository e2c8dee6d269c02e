"""Training data on tiny real inputs: windows moved to random offsets, FER+ votes as soft targets
or as a filter, the soft-target loss, and short runs of the audio stage on several corpora with
every augmentation and of the visual stage with FER+ soft targets."""

from __future__ import annotations

import csv
import json
import os
import zipfile
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch", reason="training needs torch (the 'train' extra)")

from edge_emotion.train.config import TrainConfig  # noqa: E402
from edge_emotion.train.data import WindowDataset, shifted_window, window_refs  # noqa: E402
from edge_emotion.train.trainer import (  # noqa: E402
    RunSpec,
    consistency_loss,
    pair_views,
    soft_cross_entropy,
    train,
)

from edge_emotion.config import EDGE  # noqa: E402
from edge_emotion.eval.ferplus import CLASSES  # noqa: E402
from edge_emotion.frontend.preprocess import audio_windows, preprocess_clip  # noqa: E402
from edge_emotion.labels import LabelMapper  # noqa: E402
from edge_emotion.sources import read_audio  # noqa: E402

CLIP = "ravdess/audio16k/Actor_06/03-01-05-02-01-01-06.flac"


@pytest.mark.parametrize("window, offset_ms", [(0, 300), (0, 700), (1, -400), (0, -500), (1, 600)])
def test_a_shifted_window_is_close_to_the_window_cut_at_that_place(shared_data, window, offset_ms):
    path = shared_data / CLIP
    clip = preprocess_clip(EDGE, audio_path=path)
    assert clip.n_windows >= 2  # 4.1 s: windows at 0, 1000 (and 2000, which reaches past the end) ms
    pcm = np.asarray(read_audio(str(path), EDGE.audio.sample_rate)[0], np.float32)
    start = int(clip.window_start_ms[window]) + offset_ms
    if start < 0:  # the window starts before the clip: silence first
        pcm, start = np.concatenate([np.zeros(-start * EDGE.audio.sample_rate // 1000, np.float32), pcm]), 0
    want, want_speech = audio_windows(pcm, np.array([start]), EDGE)
    got, speech = shifted_window(clip, window, offset_ms, EDGE)
    assert got.shape == clip.log_mel[window].shape and speech.shape == clip.speech[window].shape
    error = np.abs(got - want[0]).mean()
    unshifted = np.abs(clip.log_mel[window] - want[0]).mean()
    assert error < 0.25 and error < unshifted / 4
    assert (speech == want_speech[0]).mean() >= 0.9


def _cached_window_refs(shared_data: Path, tmp_path: Path) -> list:
    """The windows of CLIP, preprocessed into a cache under ``tmp_path`` as training reads them."""
    from edge_emotion.train.cache import clip_path, save_clip

    from edge_emotion.eval.datasets import Sample

    sample = Sample(key="ravdess-audio/x", dataset="ravdess-audio", label="angry", audio_path=shared_data / CLIP)
    path = clip_path(tmp_path, EDGE, sample)
    save_clip(path, preprocess_clip(EDGE, audio_path=shared_data / CLIP), "stamp")
    return window_refs([path], [4], EDGE)


def test_window_offsets_change_with_the_epoch_and_are_off_for_evaluation(shared_data, tmp_path):
    refs = _cached_window_refs(shared_data, tmp_path)
    fixed = WindowDataset(refs, EDGE, with_faces=False)
    moving = WindowDataset(refs, EDGE, with_faces=False, offset_ms=1000, seed=1)
    first = [moving[i]["log_mel"] for i in range(len(refs))]
    moving.set_epoch(1)
    second = [moving[i]["log_mel"] for i in range(len(refs))]
    assert all(torch.equal(fixed[i]["log_mel"], fixed[i]["log_mel"]) for i in range(len(refs)))
    assert any(not torch.equal(a, b) for a, b in zip(first, second, strict=True))
    assert any(not torch.equal(a, fixed[i]["log_mel"]) for i, a in enumerate(first))
    assert WindowDataset(refs, EDGE, with_faces=True, offset_ms=1000).offset_ms == 0  # faces would not move


def test_paired_windows_keep_the_first_placement_and_draw_a_second_one(shared_data, tmp_path):
    refs = _cached_window_refs(shared_data, tmp_path)
    single = WindowDataset(refs, EDGE, with_faces=False, offset_ms=1000, seed=1)
    paired = WindowDataset(refs, EDGE, with_faces=False, offset_ms=1000, seed=1, pairs=True)
    moved = 0
    for epoch in range(4):
        single.set_epoch(epoch)
        paired.set_epoch(epoch)
        for i in range(len(refs)):
            a, b = single[i], paired[i]
            assert torch.equal(a["log_mel"], b["log_mel"]) and torch.equal(a["audio_mask"], b["audio_mask"])
            assert b["log_mel_b"].shape == b["log_mel"].shape and b["audio_mask_b"].shape == b["audio_mask"].shape
            assert b["label"] == a["label"] and "log_mel_b" not in a
            moved += not torch.equal(b["log_mel_b"], b["log_mel"])
    assert moved >= len(refs) * 2  # the second placement is drawn on its own, not a copy of the first
    assert not WindowDataset(refs, EDGE, with_faces=False, pairs=True).pairs  # no offsets, nothing to pair


def test_pair_views_stacks_the_second_placements_after_the_first():
    g = torch.Generator().manual_seed(0)
    batch = {
        "log_mel": torch.randn(3, 1, 4, 5, generator=g),
        "log_mel_b": torch.randn(3, 1, 4, 5, generator=g),
        "audio_mask": torch.ones(3, 2),
        "audio_mask_b": torch.zeros(3, 2),
        "face_mask": torch.ones(3, 2),
        "label": torch.tensor([0, 4, 2]),
    }
    stacked, n = pair_views(dict(batch))
    assert n == 3 and set(stacked) == {"log_mel", "audio_mask", "face_mask", "label"}
    assert torch.equal(stacked["log_mel"], torch.cat([batch["log_mel"], batch["log_mel_b"]]))
    assert torch.equal(stacked["audio_mask"], torch.cat([batch["audio_mask"], batch["audio_mask_b"]]))
    assert stacked["label"].tolist() == [0, 4, 2, 0, 4, 2] and stacked["face_mask"].shape == (6, 2)
    single = {k: v for k, v in batch.items() if not k.endswith("_b")}
    assert pair_views(single) == (single, 0)


def test_consistency_loss_is_the_symmetric_kl_divergence_of_the_two_placements():
    g = torch.Generator().manual_seed(1)
    a, b = torch.randn(5, 8, generator=g), torch.randn(5, 8, generator=g)
    assert float(consistency_loss(torch.cat([a, a]), 5)) == pytest.approx(0.0, abs=1e-6)
    assert float(consistency_loss(torch.cat([a, a + 3.0]), 5)) == pytest.approx(0.0, abs=1e-6)  # same softmax
    p, q = torch.softmax(a, -1), torch.softmax(b, -1)
    want = 0.5 * ((p * (p / q).log()).sum(-1) + (q * (q / p).log()).sum(-1)).mean()
    assert float(consistency_loss(torch.cat([a, b]), 5)) == pytest.approx(float(want), rel=1e-5)
    assert float(consistency_loss(torch.cat([b, a]), 5)) == pytest.approx(float(want), rel=1e-5)


def test_soft_cross_entropy_equals_cross_entropy_on_one_hot_targets():
    logits = torch.randn(6, 8, generator=torch.Generator().manual_seed(0))
    labels = torch.tensor([0, 3, 7, 2, 2, 5])
    one_hot = torch.nn.functional.one_hot(labels, 8).float()
    for smoothing in (0.0, 0.1):
        want = torch.nn.functional.cross_entropy(logits, labels, label_smoothing=smoothing)
        assert torch.allclose(soft_cross_entropy(logits, one_hot, smoothing), want, atol=1e-6)
    uniform = torch.full((6, 8), 1 / 8)  # the mean negative log-softmax over the classes
    assert torch.allclose(soft_cross_entropy(logits, uniform), -torch.log_softmax(logits, -1).mean(), atol=1e-6)


def _fer_root(shared_data: Path, root: Path, n_train: int = 24, n_test: int = 8) -> list[dict]:
    """A tiny FER2013 root (train.zip, public_test.zip) cut from the real public test images, and
    FER+ votes for its training images: one not-a-face, one doubtful join, the rest votes that
    disagree with the FER2013 label in a known way."""
    root.mkdir(parents=True)
    with zipfile.ZipFile(shared_data / "fer2013/public_test.zip") as zf:
        names = sorted(n for n in zf.namelist() if n.endswith(".jpg"))[::97][: n_train + n_test]
        data = {n: zf.read(n) for n in names}
    rows = []
    train_zip, test_zip = zipfile.ZipFile(root / "train.zip", "w"), zipfile.ZipFile(root / "public_test.zip", "w")
    with train_zip, test_zip:
        for i, (name, image) in enumerate(data.items()):
            if i < n_train:
                member = name.replace("PublicTest_", "Training_")
                train_zip.writestr(member, image)
                votes = [0] * len(CLASSES)
                votes[CLASSES.index("surprise")] = 6
                votes[CLASSES.index("fear")] = 4
                if i == 0:
                    votes = [0] * 9 + [10]  # NF: not a face
                join = {"match_rmse": 9.0 if i == 1 else 1.8, "second_rmse": 40.0}  # row 1: a doubtful join
                counts = dict(zip(CLASSES, votes, strict=True))
                rows.append({"zip": "train.zip", "member": member, "fer2013_row": i, **join, **counts})
            else:
                test_zip.writestr(name, image)
    with (root / "ferplus_votes.csv").open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    return rows


def test_ferplus_filter_and_soft_targets(shared_data, tmp_path):
    from edge_emotion.train.prepare import apply_ferplus

    from edge_emotion.eval.datasets import get_dataset

    rows = _fer_root(shared_data, tmp_path / "fer")
    samples = list(get_dataset("fer2013", tmp_path / "fer").samples)
    for mode in ("filter", "soft"):
        kept, targets, counts = apply_ferplus(samples, tmp_path / "fer", EDGE, TrainConfig(ferplus=mode))
        assert len(kept) == len(samples) - 1 and f"fer2013/train.zip/{rows[0]['member']}" not in {s.key for s in kept}
        assert counts["FER+: unknown / not a face (dropped)"] == 1
        assert counts["FER+: doubtful join (FER2013 label kept)"] == 1
        assert sum(s.subset == "test" for s in kept) == 8  # test images never touched
        if mode == "filter":
            assert targets == {}
        else:
            assert len(targets) == len(rows) - 2
            target = next(iter(targets.values()))
            assert target[EDGE.labels.index("surprised")] == pytest.approx(0.6)
            assert target[EDGE.labels.index("fearful")] == pytest.approx(0.4)
    # half the votes, half the image's own FER2013 label
    blend = TrainConfig(ferplus="soft", ferplus_soft_weight=0.5)
    kept, blended, _ = apply_ferplus(samples, tmp_path / "fer", EDGE, blend)
    by_key = {s.key: s for s in kept}
    assert blended.keys() == targets.keys()
    for key, target in blended.items():
        want = targets[key] * 0.5
        want[LabelMapper(EDGE.labels).index(by_key[key].label)] += 0.5
        assert target.sum() == pytest.approx(1.0) and np.allclose(target, want)
    with pytest.raises(Exception, match="ferplus_soft_weight"):
        TrainConfig(ferplus="soft", ferplus_soft_weight=1.5)
    with pytest.raises(Exception, match="FER\\+ votes"):
        os.remove(tmp_path / "fer/ferplus_votes.csv")
        apply_ferplus(samples, tmp_path / "fer", EDGE, TrainConfig(ferplus="soft"))


QUICK = dict(batch_size=4, workers=0, cache_workers=1, learning_rate=1e-3, min_learning_rate=5e-4, seed=3)


def test_visual_stage_trains_on_ferplus_soft_targets_with_mixup(shared_data, tmp_path):
    _fer_root(shared_data, tmp_path / "fer")
    spec = RunSpec(
        preset=EDGE,
        config=TrainConfig(stage="visual", epochs=1, ferplus="soft", mixup_alpha=0.4, **QUICK),
        corpora=(("fer2013", tmp_path / "fer"),),
        out_dir=tmp_path / "run",
        cache_dir=tmp_path / "cache",
        progress=False,
    )
    result = train(spec)
    data = json.loads((tmp_path / "run/data.json").read_text())
    assert data["soft_targets"] == 22
    assert data["skipped_by_adapter"]["fer2013"]["FER+: unknown / not a face (dropped)"] == 1
    assert result.test["n"] == 8  # accuracy still on the FER2013 labels of the untouched test images
    assert np.isfinite(result.history[0]["train_loss"])


def test_audio_stage_on_several_corpora_with_strong_augmentation_and_offsets(shared_data, tmp_path):
    corpora = (
        ("ravdess-audio", shared_data / "ravdess"),
        ("savee", shared_data / "savee"),
        ("emodb", shared_data / "emodb"),
        ("crema-d-audio", shared_data / "crema-d"),
    )
    config = TrainConfig(
        stage="audio", epochs=1, limit=12, audio_augment="strong", mixup_alpha=0.2, window_offset_ms=1000, **QUICK
    )
    result = train(RunSpec(EDGE, config, corpora, tmp_path / "run", tmp_path / "cache", progress=False))
    split = json.loads((tmp_path / "run/split.json").read_text())
    corpora_seen = {key.split("/", 1)[0] for key in split["train"] + split["val"] + split["test"]}
    assert corpora_seen == {"ravdess-audio", "savee", "emodb", "crema-d-audio"}
    assert not set(split["train_speakers"]) & set(split["test_speakers"])
    assert np.isfinite(result.history[0]["train_loss"])
    data = json.loads((tmp_path / "run/data.json").read_text())
    assert set(data["unmapped_labels"].get("emodb", {})) <= {"boredom"}  # counted, not dropped silently


def test_a_cached_video_clip_names_its_face_detector(tmp_path):
    """A video clip's cache stamp names the face detector that found its faces, so clips cached
    with another detector are made again; audio clips keep their stamps (and their caches)."""
    from edge_emotion.train.cache import FACE_DETECTOR_TAG, _stamp

    from edge_emotion.eval.datasets import Sample

    video, audio = tmp_path / "clip.mp4", tmp_path / "clip.wav"
    video.write_bytes(b"v")
    audio.write_bytes(b"a")
    with_video = Sample("x/1", "x", "happy", video_path=video, audio_path=audio)
    audio_only = Sample("x/2", "x", "happy", audio_path=audio)
    assert FACE_DETECTOR_TAG in _stamp(with_video)
    assert FACE_DETECTOR_TAG not in _stamp(audio_only)
