"""From corpora on disk to a stage's train / val / test datasets.

1. index each corpus with its adapter (:func:`.datasets.get_dataset`), optionally limited;
2. map labels onto the model's labels by name; samples the model lacks are counted and reported;
   with ``ferplus`` on, FER2013 training images FER+ calls unknown / not a face are dropped (and
   counted) and, in ``soft`` mode, the others get the FER+ votes as soft targets;
3. split (:func:`.splits.make_split`), the split saved as ``split.json`` in the run directory;
4. preprocess into the cache (clips in parallel; face images into one array), on rank 0 first;
5. build the stage's datasets (:mod:`.stages`).
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch

from edge_emotion.config import PresetConfig
from edge_emotion.eval.datasets import DatasetLayoutError, Sample, get_dataset, limit_samples
from edge_emotion.eval.splits import Split, make_split
from edge_emotion.labels import LabelMapper

from .cache import build_cache, build_image_cache
from .config import TrainConfig
from .data import FaceImageDataset, FusionMixDataset, WindowDataset, window_refs
from .distributed import DistContext, barrier
from .model import EmotionModel
from .stages import StageData, drop_empty, encode_faces, encode_windows

log = logging.getLogger(__name__)


@dataclass
class PreparedData:
    """Samples with their model label index, the split and what was left out."""

    samples: list[Sample]
    labels: dict[str, int]
    split: Split
    unmapped: dict[str, dict[str, int]] = field(default_factory=dict)  # corpus -> {label: count}
    skipped: dict[str, dict[str, int]] = field(default_factory=dict)  # corpus -> {reason: count}
    failed: dict[str, str] = field(default_factory=dict)  # sample key -> preprocessing error
    targets: dict[str, np.ndarray] = field(default_factory=dict)  # sample key -> (C,) soft target


def apply_ferplus(
    samples: list[Sample], root: Path, preset: PresetConfig, config: TrainConfig
) -> tuple[list[Sample], dict[str, np.ndarray], dict[str, int]]:
    """FER+ on FER2013's training / validation images (``config.ferplus``: ``filter`` or
    ``soft``; test images untouched): the samples kept, their soft targets (``soft`` mode; only
    trusted joins; ``config.ferplus_soft_weight`` of the votes, the rest on the image's FER2013
    label) and the counts of what was dropped or left with its FER2013 label."""
    from edge_emotion.errors import InputError
    from edge_emotion.eval.ferplus import default_votes_path, read_votes

    path = Path(config.ferplus_votes) if config.ferplus_votes else default_votes_path(root)
    if path is None:
        raise InputError(f"ferplus = {config.ferplus!r} needs FER+ votes: none at {root}/ferplus_votes.csv")
    votes = read_votes(path)
    mapper = LabelMapper(preset.labels)
    kept, targets, counts = [], {}, {}

    def count(reason: str) -> None:
        counts[reason] = counts.get(reason, 0) + 1

    for s in samples:
        row = votes.get(s.key)
        if s.subset == "test" or s.dataset != "fer2013":
            kept.append(s)
        elif row is None:
            count("FER+: no votes (FER2013 label kept)")
            kept.append(s)
        elif not row.trusted(config.ferplus_max_match_rmse, config.ferplus_min_rmse_gap):
            count("FER+: doubtful join (FER2013 label kept)")
            kept.append(s)
        elif row.not_a_face():
            count("FER+: unknown / not a face (dropped)")
        else:
            kept.append(s)
            target = row.soft_target(preset.labels) if config.ferplus == "soft" else None
            own = mapper.index(s.label)
            if target is not None and own is not None and config.ferplus_soft_weight < 1:
                target = target * config.ferplus_soft_weight
                target[own] += 1 - config.ferplus_soft_weight
            if target is not None:
                targets[s.key] = target
            elif config.ferplus == "soft":
                count("FER+: no vote on the model's labels (FER2013 label kept)")
    log.info("FER+ (%s, %s): %d soft targets; %s", config.ferplus, path, len(targets), counts)
    return kept, targets, counts


def index_corpora(
    corpora: list[tuple[str, Path]], preset: PresetConfig, config: TrainConfig
) -> tuple[list[Sample], dict[str, int], dict, dict, dict[str, np.ndarray]]:
    samples: list[Sample] = []
    labels: dict[str, int] = {}
    unmapped: dict[str, dict[str, int]] = {}
    skipped: dict[str, dict[str, int]] = {}
    targets: dict[str, np.ndarray] = {}
    for name, root in corpora:
        index = get_dataset(name, root)
        if index.skipped:
            skipped[name] = dict(index.skipped)
        chosen = limit_samples(list(index.samples), config.limit)
        if name == "fer2013" and config.ferplus != "off":
            chosen, soft, dropped = apply_ferplus(chosen, Path(root), preset, config)
            targets.update(soft)
            if dropped:
                skipped[name] = {**skipped.get(name, {}), **dropped}
        mapper = LabelMapper(preset.labels)
        for s in chosen:
            idx = mapper(s.label)
            if idx is not None:
                samples.append(s)
                labels[s.key] = idx
        if mapper.unmapped:
            unmapped[name] = mapper.report()
            log.warning(
                "%s: %d samples have labels the model lacks: %s", name, sum(mapper.unmapped.values()), mapper.report()
            )
    return samples, labels, unmapped, skipped, targets


def prepare(
    corpora: list[tuple[str, Path]],
    preset: PresetConfig,
    config: TrainConfig,
    protocol: str,
    fold: int,
    out_dir: Path,
    cache_dir: Path,
    ctx: DistContext,
    progress: bool = True,
) -> tuple[PreparedData, dict[str, Path], np.ndarray | None]:
    """Steps 1-4: returns the prepared samples, the cached clip files and the face-image array."""
    samples, labels, unmapped, skipped, targets = index_corpora(corpora, preset, config)
    split = make_split(samples, protocol, fold, config.folds, config.seed, config.val_speakers)
    if ctx.is_main:
        split.save(out_dir / "split.json")
    clips = [s for s in samples if s.image_path is None]
    images = [s for s in samples if s.image_path is not None]
    face_array = None
    if ctx.is_main:
        result = build_cache(clips, preset, cache_dir, workers=config.cache_workers, progress=progress)
        if images:
            build_image_cache(images, preset, cache_dir, progress=progress)
    barrier(ctx)
    result = build_cache(clips, preset, cache_dir, workers=1, progress=False) if not ctx.is_main else result
    if images:
        face_array = build_image_cache(images, preset, cache_dir, progress=False)
    data = PreparedData(samples, labels, split, unmapped, skipped, dict(result.failed), targets)
    if ctx.is_main:
        (out_dir / "data.json").write_text(
            json.dumps(
                {
                    "corpora": [[n, str(r)] for n, r in corpora],
                    "samples": len(samples),
                    "unmapped_labels": unmapped,
                    "skipped_by_adapter": skipped,
                    "failed_preprocessing": data.failed,
                    "soft_targets": len(targets),
                },
                indent=1,
            )
        )
    return data, result.paths, face_array


def _parts(data: PreparedData, paths: dict[str, Path], part: str) -> tuple[list[Sample], list[Sample]]:
    chosen = data.split.part(data.samples, part)
    clips = [s for s in chosen if s.image_path is None and s.key in paths]
    images = [s for s in chosen if s.image_path is not None]
    return clips, images


def _window_set(
    data, paths, clips, preset, with_faces, first_clip, train: bool, notes: dict, part: str, config=None
) -> WindowDataset:
    refs = window_refs([paths[s.key] for s in clips], [data.labels[s.key] for s in clips], preset, first_clip)
    if train:
        refs, dropped = drop_empty(refs, need_face=with_faces)
        notes[f"{part}_windows_without_speech_or_face"] = dropped
    offset = config.window_offset_ms if (train and config is not None) else 0
    seed = config.seed if config is not None else 0
    pairs = offset > 0 and config.shift_consistency > 0
    windows = WindowDataset(refs, preset, with_faces=with_faces, offset_ms=offset, seed=seed, pairs=pairs)
    # clip number -> corpus, for per-corpus validation figures (window_refs numbers the clips in order)
    windows.clip_groups = {first_clip + i: s.dataset for i, s in enumerate(clips)}
    return windows


def _image_set(data, face_array, images, all_images, first_clip, soft: bool = False) -> FaceImageDataset:
    """Face images; with ``soft`` (training with FER+ targets) each carries a target
    distribution: its FER+ votes, or the one-hot FER2013 label where it has none."""
    position = {s.key: i for i, s in enumerate(all_images)}
    labels = [data.labels[s.key] for s in images]
    targets = None
    if soft and data.targets:
        n_classes = next(iter(data.targets.values())).shape[0]
        targets = np.zeros((len(images), n_classes), np.float32)
        for i, (s, label) in enumerate(zip(images, labels, strict=True)):
            if s.key in data.targets:
                targets[i] = data.targets[s.key]
            else:
                targets[i, label] = 1.0
    return FaceImageDataset(face_array, [position[s.key] for s in images], labels, first_clip, targets)


def _own_random(device):
    """Draws inside leave the run's random streams (CPU, and the GPU's when training on one) as
    they were."""
    device = torch.device(device)
    return torch.random.fork_rng(devices=[device] if device.type == "cuda" else [])


def _encoded_faces(model, images: FaceImageDataset, device, train: bool, config: TrainConfig):
    """The fusion stage's face embeddings and labels. For training, ``config.fusion_face_views``
    views of every image: the image as it is, then views through the visual stage's augmentation
    (flip, rotation, crop, erasing; drawn from ``config.seed``). The frozen encoder trained on
    these very images, so their plain embeddings are cleaner than those of faces it never saw; the
    views were meant to be closer to what the head meets at run time (on validation faces they did
    worse: README, *What was tried*)."""
    from .augment import FaceAugment

    views = [encode_faces(model, images, device)]
    if train and config.fusion_face_views > 1:
        with _own_random(device):  # the run's own random streams stay as they were
            torch.manual_seed(config.seed)
            augment = FaceAugment()
            views += [encode_faces(model, images, device, augment=augment) for _ in range(config.fusion_face_views - 1)]
        log.info("fusion stage: %d views of each of %d training faces", len(views), len(images))
    return np.concatenate([v[0] for v in views]), np.concatenate([v[1] for v in views])


def _audio_views(model, windows: WindowDataset, device, config: TrainConfig) -> list[tuple[np.ndarray, np.ndarray]]:
    """``config.fusion_audio_views - 1`` more encodings of the fusion stage's training windows,
    ``(audio_seq, audio_mask)`` each, in the windows' order: each window moved by up to
    ``config.window_offset_ms`` either way and through the audio augmentation (``config.audio_augment``:
    pitch, stretch, noise by default), the fusion stage's settings of what the audio stage trains
    with. The frozen audio encoder trained on these very
    windows, so their plain encodings are cleaner than those of a voice it never heard."""
    from .augment import AudioAugment, AudioAugmentConfig

    views = []
    for v in range(1, config.fusion_audio_views):
        moved = WindowDataset(
            windows.refs, model.preset, with_faces=False, offset_ms=config.window_offset_ms, seed=config.seed
        )
        moved.set_epoch(v)
        strong = AudioAugmentConfig.strong() if config.audio_augment == "strong" else None
        with _own_random(device):  # the run's own random streams stay as they were
            torch.manual_seed(config.seed * 1000 + v)
            encoded = encode_windows(model, moved, device, augment_audio=AudioAugment(model.preset.audio, strong))
        views.append((encoded.audio_seq, encoded.audio_mask))
    if views:
        log.info("fusion stage: %d views of each of %d training windows", len(views) + 1, len(windows))
    return views


def stage_data(
    stage: str,
    model: EmotionModel,
    data: PreparedData,
    paths: dict[str, Path],
    face_array: np.ndarray | None,
    config: TrainConfig,
    device: torch.device,
) -> StageData:
    """Step 5: the datasets of ``stage`` for its train, val and test parts."""
    preset = model.preset
    all_images = [s for s in data.samples if s.image_path is not None]
    notes: dict[str, int] = {}
    sets = {}
    for part in ("train", "val", "test"):
        clips, images = _parts(data, paths, part)
        train = part == "train"
        if stage == "visual":
            if not all_images:
                raise DatasetLayoutError("the visual stage needs a face-image corpus (--dataset fer2013)")
            sets[part] = _image_set(data, face_array, images, all_images, 0, soft=train)
        elif stage in ("audio", "full"):
            if not clips and train:
                raise DatasetLayoutError(f"the {stage} stage needs clips (e.g. --dataset ravdess-audio / ravdess)")
            sets[part] = _window_set(data, paths, clips, preset, stage == "full", 0, train, notes, part, config)
        else:  # fusion: encoders frozen, their outputs computed once
            window_set = _window_set(data, paths, clips, preset, True, 0, train, notes, part)
            windows = encode_windows(model, window_set, device)
            audio_views = _audio_views(model, window_set, device, config) if train else []
            faces = (
                _encoded_faces(model, _image_set(data, face_array, images, all_images, 0), device, train, config)
                if images
                else (np.zeros((0, preset.model.visual_dim), np.float32), np.zeros(0, np.int64))
            )
            sets[part] = FusionMixDataset(
                windows,
                faces[0],
                faces[1],
                preset,
                faces_per_window=config.fusion_faces_per_audio if train else 1.0,
                pair=train,
                seed=config.seed,
                audio_views=audio_views,
                face_images=len(images),
            )
            if not train and len(windows) == 0:  # only faces to validate on: use them all
                sets[part].n_face_items = len(faces[0])
    return StageData(sets["train"], sets["val"], sets["test"], notes)


__all__ = ["PreparedData", "apply_ferplus", "prepare", "stage_data", "index_corpora"]
