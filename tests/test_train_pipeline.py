"""Short real training runs on ../shared/data: the loss goes down, checkpoints load with
weights_only, a run resumes, and every stage (visual, audio, fusion, full) runs end to end."""

from __future__ import annotations

import csv
import json
import math
from pathlib import Path

import numpy as np
import pytest
from clitools import assert_one_line_error, cli

torch = pytest.importorskip("torch", reason="training needs torch (the 'train' extra)")

from edge_emotion.train.checkpoint import load_checkpoint, load_model  # noqa: E402
from edge_emotion.train.config import TrainConfig  # noqa: E402
from edge_emotion.train.model import EmotionModel  # noqa: E402
from edge_emotion.train.trainer import RunSpec, train  # noqa: E402

from edge_emotion.config import EDGE  # noqa: E402

QUICK = dict(
    batch_size=4, workers=0, cache_workers=1, augment=False, learning_rate=1e-3, min_learning_rate=5e-4, seed=3
)


def _spec(shared_data: Path, out: Path, cache: Path, stage: str, corpora, **config) -> RunSpec:
    return RunSpec(
        preset=EDGE,
        config=TrainConfig(stage=stage, **{**QUICK, **config}),
        corpora=tuple((name, shared_data / sub) for name, sub in corpora),
        out_dir=out,
        cache_dir=cache,
        progress=False,
    )


@pytest.fixture(scope="module")
def audio_run(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("audio-run")
    spec = _spec(shared_data, root / "run", root / "cache", "audio", [("ravdess-audio", "ravdess")], epochs=3, limit=16)
    return spec, train(spec)


def test_a_short_real_run_lowers_the_training_loss(audio_run):
    spec, result = audio_run
    losses = [row["train_loss"] for row in result.history]
    assert len(losses) == 3
    assert losses[-1] < losses[0] - 0.05, losses
    rows = list(csv.DictReader((spec.out_dir / "metrics.csv").open()))
    assert [int(r["epoch"]) for r in rows] == [0, 1, 2]
    assert set(rows[0]) >= {"train_loss", "val_loss", "val_wa", "val_ua"}


def test_a_validation_set_of_two_corpora_is_also_scored_per_corpus(shared_data, audio_run, tmp_path):
    spec, _ = audio_run
    assert not (spec.out_dir / "metrics_by_corpus.csv").exists()  # one corpus: nothing per corpus
    two = _spec(
        shared_data,
        tmp_path / "two",
        spec.cache_dir,
        "audio",
        [("ravdess-audio", "ravdess"), ("emodb", "emodb")],
        epochs=1,
        limit=24,
    )
    result = train(two)
    split = json.loads((two.out_dir / "split.json").read_text())
    val_corpora = sorted({key.split("/")[0] for key in split["val"]})
    assert val_corpora == ["emodb", "ravdess-audio"], split["val_speakers"]
    rows = list(csv.DictReader((two.out_dir / "metrics_by_corpus.csv").open()))
    assert sorted(r["corpus"] for r in rows) == val_corpora
    assert sum(int(r["val_n"]) for r in rows) == len(split["val"])  # one clip each
    assert result.history[0]["val_by_corpus"].keys() == set(val_corpora)
    results = json.loads((two.out_dir / "results.json").read_text())
    assert sum(m["n"] for m in results["test_by_corpus"].values()) == results["test"]["n"]


def test_run_directory_holds_split_results_and_weights_only_checkpoints(audio_run):
    spec, result = audio_run
    split = json.loads((spec.out_dir / "split.json").read_text())
    assert split["protocol"] == "actor-kfold" and split["test"] and split["val"]
    assert not set(split["test_speakers"]) & set(split["val_speakers"])
    results = json.loads((spec.out_dir / "results.json").read_text())
    assert results["world_size"] == 1 and results["test"]["n"] > 0
    raw = torch.load(result.best_checkpoint, weights_only=True)
    assert raw["preset"] == EDGE.to_dict() and raw["stage"] == "audio"
    assert raw["epoch"] == result.best_epoch and raw["best"]["val_ua"] == pytest.approx(result.best_val_ua)
    state = load_checkpoint(result.last_checkpoint)
    assert state["epoch"] == 2 and state["optimizer"] is not None and len(state["history"]) == 3
    model = load_model(result.best_checkpoint)
    assert isinstance(model, EmotionModel) and not model.training and model.preset == EDGE
    fresh = EmotionModel(EDGE)
    assert not torch.equal(model.audio.blocks[0][0].weight, fresh.audio.blocks[0][0].weight)


def test_resume_continues_after_the_last_finished_epoch(audio_run, tmp_path):
    spec, _ = audio_run
    out = tmp_path / "run"
    first = train(RunSpec(**{**spec.__dict__, "out_dir": out, "config": spec.config.replace(epochs=1)}))
    assert len(first.history) == 1
    resumed = train(
        RunSpec(**{**spec.__dict__, "out_dir": out, "config": spec.config.replace(epochs=2), "resume": True})
    )
    assert [row["epoch"] for row in resumed.history] == [0, 1]
    assert resumed.history[0] == first.history[0]
    assert load_checkpoint(out / "last.pt")["epoch"] == 1
    assert len(list(csv.DictReader((out / "metrics.csv").open()))) == 2


def test_a_refit_without_validation_speakers_keeps_its_last_epoch(audio_run, tmp_path):
    spec, _ = audio_run
    out = tmp_path / "refit"
    result = train(
        RunSpec(**{**spec.__dict__, "out_dir": out, "config": spec.config.replace(epochs=2, val_speakers=0)})
    )
    split = json.loads((out / "split.json").read_text())
    assert not split["val_speakers"] and not split["val"] and split["test"]
    assert result.best_epoch == 1 and load_checkpoint(result.best_checkpoint)["epoch"] == 1
    assert json.loads((out / "results.json").read_text())["epoch_chosen_by"].startswith("last epoch")


def test_a_second_process_cannot_train_into_a_run_directory_in_use(audio_run, tmp_path):
    import fcntl

    from edge_emotion.errors import InputError

    spec, _ = audio_run
    out = tmp_path / "busy"
    out.mkdir()
    with open(out / ".lock", "w") as held:
        fcntl.flock(held, fcntl.LOCK_EX | fcntl.LOCK_NB)  # as the first training process holds it
        with pytest.raises(InputError, match="another training process"):
            train(RunSpec(**{**spec.__dict__, "out_dir": out, "config": spec.config.replace(epochs=1)}))
    assert not (out / "metrics.csv").exists()
    assert (
        len(train(RunSpec(**{**spec.__dict__, "out_dir": out, "config": spec.config.replace(epochs=1)})).history) == 1
    )


@pytest.mark.slow
def test_visual_fusion_and_full_stages_run(shared_data, audio_run, tmp_path):
    spec, audio_result = audio_run
    cache = spec.cache_dir
    visual = train(
        _spec(
            shared_data,
            tmp_path / "visual",
            cache,
            "visual",
            [("fer2013", "fer2013")],
            epochs=1,
            limit=32,
            batch_size=16,
        )
    )
    state = load_checkpoint(visual.best_checkpoint)
    assert "visual_head" in state["heads"] and state["stage"] == "visual"
    assert "visual_head" in load_checkpoint(visual.last_checkpoint)["heads"]  # resuming needs it too

    fusion_spec = _spec(
        shared_data,
        tmp_path / "fusion",
        cache,
        "fusion",
        [("ravdess-audio", "ravdess"), ("fer2013", "fer2013"), ("crema-d", "crema-d")],
        epochs=1,
        limit=8,
        modality_dropout=0.5,
    )
    fusion = train(RunSpec(**{**fusion_spec.__dict__, "init": audio_result.best_checkpoint}))
    views = fusion_spec.config.replace(fusion_face_views=2, fusion_audio_views=3, window_offset_ms=500)
    viewed = train(
        RunSpec(
            **{
                **fusion_spec.__dict__,
                "config": views,
                "out_dir": tmp_path / "fusion-views",
                "init": audio_result.best_checkpoint,
            }
        )
    )
    assert len(viewed.history) == 1 and viewed.last_checkpoint.is_file()
    before, after = (
        load_checkpoint(audio_result.best_checkpoint)["model"],
        load_checkpoint(fusion.last_checkpoint)["model"],
    )
    assert torch.equal(before["audio.blocks.0.0.weight"], after["audio.blocks.0.0.weight"])  # encoders frozen
    assert not torch.equal(before["fusion.classifier.weight"], after["fusion.classifier.weight"])

    full_spec = _spec(
        shared_data, tmp_path / "full", cache, "full", [("crema-d", "crema-d")], epochs=1, batch_size=2, augment=True
    )
    full = train(RunSpec(**{**full_spec.__dict__, "protocol": "random"}))
    assert len(full.history) == 1 and full.best_checkpoint.is_file()


def test_the_command_line_trains_a_wider_face_encoder(shared_data, tmp_path):
    """``--visual-width`` overrides the preset's face-encoder width; the checkpoint carries it."""
    out = tmp_path / "wide"
    common = ["train", "--stage", "visual", "--dataset", "fer2013", "--root", str(shared_data / "fer2013")]
    proc = cli(
        *common,
        "--limit",
        "32",
        "--epochs",
        "1",
        "--batch-size",
        "16",
        "--visual-width",
        "8",
        "--out",
        str(out),
        "--cache",
        str(tmp_path / "cache"),
        "--device",
        "cpu",
        "--no-progress",
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    state = load_checkpoint(out / "last.pt")
    assert state["preset"]["model"]["visual_width"] == 8
    assert state["model"]["visual.conv1.weight"].shape[0] == 8  # the stem's output channels
    assert_one_line_error(cli(*common, "--visual-width", "0", "--out", str(tmp_path / "no")), "--visual-width")


def test_native_bf16_is_read_from_the_cpu_flags():
    from edge_emotion.train.trainer import cpu_has_native_bf16

    avx2 = "processor\t: 0\nflags\t\t: fpu sse2 avx avx2 fma\n"
    assert not cpu_has_native_bf16(avx2)
    assert cpu_has_native_bf16(avx2.replace("avx2", "avx2 avx512f avx512_bf16"))
    assert cpu_has_native_bf16(avx2.replace("avx2", "avx2 amx_bf16 amx_tile"))
    assert not cpu_has_native_bf16("")


@pytest.mark.parametrize("native_bf16", [False, True], ids=["fp32", "bf16"])
def test_cpu_amp_trains_channels_last_and_records_its_precision(audio_run, tmp_path, monkeypatch, native_bf16):
    """With ``cpu_amp`` the training forward runs in bf16 where the CPU has it (forced both ways here:
    emulated bf16 is slow but correct); the checkpoint loads into a plain model and the loss falls."""
    from edge_emotion.train import trainer

    monkeypatch.setattr(trainer, "cpu_has_native_bf16", lambda: native_bf16)
    spec, _ = audio_run
    out = tmp_path / "run"
    result = train(RunSpec(**{**spec.__dict__, "out_dir": out, "config": spec.config.replace(cpu_amp=True)}))
    results = json.loads((out / "results.json").read_text())
    assert results["training_precision"] == ("bf16 autocast" if native_bf16 else "fp32")
    losses = [row["train_loss"] for row in result.history]
    assert all(math.isfinite(v) for v in losses) and losses[-1] < losses[0], losses
    model = load_model(result.best_checkpoint)
    weight = model.audio.blocks[0][0].weight
    assert weight.dtype == torch.float32
    x = torch.zeros(2, 1, EDGE.audio.n_mels, EDGE.audio.n_frames)
    assert torch.isfinite(model.audio(x)).all()


def test_the_fusion_stage_can_draw_its_faces_from_augmented_views():
    """``fusion_face_views``: the plain embeddings first, then views through the face augmentation,
    drawn from the run's seed without touching the run's own random stream; validation faces stay
    plain."""
    from edge_emotion.train.data import FaceImageDataset
    from edge_emotion.train.prepare import _encoded_faces

    torch.manual_seed(0)
    model = EmotionModel(EDGE).eval()
    size = EDGE.visual.crop_size
    images = np.random.default_rng(1).normal(size=(5, 1, size, size)).astype(np.float16)
    faces = FaceImageDataset(images, list(range(5)), [0, 1, 2, 3, 4])
    config = TrainConfig(stage="fusion", fusion_face_views=3, seed=7)
    torch.manual_seed(3)
    _encoded_faces(model, faces, torch.device("cpu"), True, config.replace(fusion_face_views=1))
    state = torch.random.get_rng_state()
    torch.manual_seed(3)
    emb, labels = _encoded_faces(model, faces, torch.device("cpu"), True, config)
    assert torch.equal(torch.random.get_rng_state(), state)  # the run goes on as without the views
    assert emb.shape == (15, EDGE.model.visual_dim) and labels.tolist() == [0, 1, 2, 3, 4] * 3
    plain, plain_labels = _encoded_faces(model, faces, torch.device("cpu"), False, config)  # validation
    assert plain.shape == (5, EDGE.model.visual_dim) and plain_labels.tolist() == [0, 1, 2, 3, 4]
    np.testing.assert_allclose(emb[:5], plain, rtol=1e-5, atol=1e-6)
    assert not np.allclose(emb[5:10], plain, atol=1e-3) and not np.allclose(emb[10:], emb[5:10], atol=1e-3)
    again, _ = _encoded_faces(model, faces, torch.device("cpu"), True, config)
    np.testing.assert_allclose(again, emb, rtol=1e-5, atol=1e-6)  # the views follow the seed
    one, _ = _encoded_faces(model, faces, torch.device("cpu"), True, config.replace(fusion_face_views=1))
    assert one.shape == (5, EDGE.model.visual_dim)


def test_the_fusion_stage_draws_audio_views_for_audio_only_windows():
    """Each epoch, an audio-only window (and its label-paired sample) comes as it is or as one of
    its views; a window with faces always as it is; without views nothing changes."""
    from edge_emotion.train.data import EncodedWindows, FusionMixDataset

    n, t_a, d_a, t_v, d_v = 4, EDGE.audio_steps, EDGE.model.audio_dim, EDGE.video_frames, EDGE.model.visual_dim
    face_mask = np.zeros((n, t_v), np.float32)
    face_mask[3] = 1  # window 3 has faces
    windows = EncodedWindows(
        audio_seq=np.zeros((n, t_a, d_a), np.float32),
        embeddings=np.ones((n, t_v, d_v), np.float32),
        face_mask=face_mask,
        audio_mask=np.ones((n, EDGE.model.time_steps), np.float32),
        label=np.array([0, 1, 2, 0]),
        clip=np.arange(n),
    )
    views = [
        (np.full((n, t_a, d_a), v, np.float32), np.full((n, EDGE.model.time_steps), v / 4, np.float32)) for v in (1, 2)
    ]
    faces, face_labels = np.ones((6, d_v), np.float32), np.array([0, 1, 2, 0, 1, 2])
    plain = FusionMixDataset(windows, faces, face_labels, EDGE, faces_per_window=1.0, seed=5)
    viewed = FusionMixDataset(windows, faces, face_labels, EDGE, faces_per_window=1.0, seed=5, audio_views=views)
    assert len(viewed) == len(plain) == n + 3 + n  # windows, label-paired (audio-only), face-only
    seen = {i: set() for i in range(len(viewed))}
    for epoch in range(12):
        plain.set_epoch(epoch)
        viewed.set_epoch(epoch)
        for i in range(len(viewed)):
            a, b = plain[i], viewed[i]
            assert torch.equal(a["label"], b["label"]) and torch.equal(a["embeddings"], b["embeddings"])
            assert float(a["audio_seq"].abs().max()) == 0.0  # without views: the window as it is
            seen[i].add(float(b["audio_seq"][0, 0]))
            view = float(b["audio_seq"][0, 0])  # a view's mask comes with its sequence
            assert float(b["audio_mask"][0]) == (1.0 if view == 0.0 and i < n + 3 else view / 4 if view else 0.0)
    for i in (0, 1, 2, 4, 5, 6):  # audio-only windows and their label-paired samples
        assert seen[i] == {0.0, 1.0, 2.0}, (i, seen[i])
    assert seen[3] == {0.0}  # the window with faces
    assert all(seen[i] == {0.0} for i in range(7, len(viewed)))  # face-only: silent audio
    # faces given as 3 views of 2 images: at most one face-only sample per image and epoch
    capped = FusionMixDataset(windows, faces, face_labels, EDGE, faces_per_window=1.0, seed=5, face_images=2)
    assert capped.n_face_items == 2 and plain.n_face_items == n
