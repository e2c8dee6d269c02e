"""The training loop: one stage, one process or many (``torchrun``), CPU or GPU.

``train(spec)`` prepares the data (:mod:`.prepare`), builds the stage (:mod:`.stages`), and runs
``epochs`` epochs of Adam + cross-entropy with a cosine learning-rate decay, augmentation and
modality dropout; mixed precision (``torch.autocast("cuda")`` + ``GradScaler``) on CUDA, and with
``cpu_amp`` channels-last convolutions plus bf16 autocast on CPUs that compute bf16 natively; DDP with a
``DistributedSampler`` when started by ``torchrun``. After every epoch rank 0 validates (clip-level:
the softmax averaged over a clip's windows), logs loss / WA / UA to the console, ``metrics.csv`` and
TensorBoard (when importable), writes ``last.pt`` and, when validation UA improved, ``best.pt``.
At the end the best checkpoint is evaluated on the test part and ``results.json`` is written.

Run directory::

    split.json  data.json  train_config.json  metrics.csv  tensorboard/  last.pt  best.pt  results.json
"""

from __future__ import annotations

import contextlib
import csv
import json
import logging
import math
import time
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn
from torch.utils.data import DataLoader, Dataset, DistributedSampler

from edge_emotion.config import PresetConfig
from edge_emotion.eval.metrics import classification_result, clip_probabilities

from .augment import AudioAugment, AudioAugmentConfig, FaceAugment, mixup, modality_dropout
from .averaging import WeightAverage
from .checkpoint import load_checkpoint, preset_of, save_checkpoint
from .config import TrainConfig
from .distributed import DistContext, barrier, broadcast_value, cleanup, init_distributed, mean_across
from .model import EmotionModel
from .prepare import prepare, stage_data
from .stages import NETS

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RunSpec:
    """What to train: the preset, the config (its ``stage``), the corpora ``(name, root)``, the
    split, where to write, and where to start from (``init``: an earlier stage's checkpoint whose
    weights are loaded; ``resume``: continue ``out_dir/last.pt``)."""

    preset: PresetConfig
    config: TrainConfig
    corpora: tuple[tuple[str, Path], ...]
    out_dir: Path
    cache_dir: Path
    protocol: str = "actor-kfold"
    fold: int = 0
    init: Path | None = None
    resume: bool = False
    device: str | None = None
    progress: bool = True


@dataclass(frozen=True)
class TrainResult:
    out_dir: Path
    best_checkpoint: Path
    last_checkpoint: Path
    best_epoch: int
    best_val_ua: float
    history: tuple[dict, ...]
    test: dict = field(default_factory=dict)


def _loader(ds: Dataset, batch_size: int, shuffle: bool, ctx: DistContext, workers: int, seed: int) -> DataLoader:
    sampler = None
    if ctx.distributed and shuffle:
        sampler = DistributedSampler(
            ds, num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True, seed=seed, drop_last=False
        )
    generator = torch.Generator().manual_seed(seed)
    return DataLoader(
        ds,
        batch_size=batch_size,
        shuffle=shuffle and sampler is None,
        sampler=sampler,
        num_workers=workers,
        pin_memory=ctx.device.type == "cuda",
        drop_last=shuffle and len(ds) > batch_size,
        generator=generator,
        # a dataset that changes with set_epoch (window offsets, fusion pairings) needs workers that
        # are started afresh each epoch: persistent ones keep the copy of epoch 0
        persistent_workers=workers > 0 and not hasattr(ds, "set_epoch"),
    )


def _to(batch: dict, device: torch.device) -> dict:
    return {k: v.to(device, non_blocking=True) for k, v in batch.items()}


class _Augmenter:
    """Applies the stage's augmentations and modality dropout to a training batch on the device."""

    def __init__(self, preset: PresetConfig, config: TrainConfig):
        self.enabled = config.augment
        self.dropout = config.modality_dropout
        self.stage = config.stage
        strong = config.audio_augment == "strong"
        self.audio = AudioAugment(preset.audio, AudioAugmentConfig.strong() if strong else None)
        self.faces = FaceAugment()
        self.mixup_alpha = config.mixup_alpha if config.augment and config.stage != "fusion" else 0.0
        self.n_classes = len(preset.labels)

    def __call__(self, batch: dict) -> dict:
        if self.enabled:
            if "log_mel" in batch:
                batch["log_mel"], batch["audio_mask"] = self.audio(batch["log_mel"], batch["audio_mask"])
            if "faces" in batch:
                batch["faces"] = self.faces(batch["faces"])
            if "face" in batch:
                batch["face"] = self.faces(batch["face"])
        if self.mixup_alpha > 0:
            if "target" not in batch:
                batch["target"] = F.one_hot(batch["label"], self.n_classes).float()
            batch = mixup(batch, self.mixup_alpha)
        if self.stage == "audio" and "face_mask" in batch:  # AudioNet masks video: audio is all there is
            batch["face_mask"] = torch.zeros_like(batch["face_mask"])
        if "audio_mask" in batch and "face_mask" in batch:
            batch["audio_mask"], batch["face_mask"] = modality_dropout(
                batch["audio_mask"], batch["face_mask"], self.dropout
            )
        return batch


def soft_cross_entropy(logits: torch.Tensor, target: torch.Tensor, label_smoothing: float = 0.0) -> torch.Tensor:
    """Cross-entropy against target distributions ``(N, C)`` (FER+ votes, mixup), smoothed like
    ``F.cross_entropy(..., label_smoothing=)``; equal to it for one-hot targets."""
    if label_smoothing > 0:
        target = target * (1 - label_smoothing) + label_smoothing / target.shape[1]
    return -(target * F.log_softmax(logits, dim=-1)).sum(-1).mean()


def pair_views(batch: dict) -> tuple[dict, int]:
    """A batch whose items carry a second placement of their window (``log_mel_b``,
    ``audio_mask_b``: ``TrainConfig.shift_consistency``) -> one batch of ``2N`` windows, the ``N``
    first placements then the ``N`` second ones (labels and the rest repeated), and ``N``; a batch
    without them is returned as it is, with 0."""
    if "log_mel_b" not in batch:
        return batch, 0
    n = int(batch["log_mel"].shape[0])
    second = {"log_mel": batch.pop("log_mel_b"), "audio_mask": batch.pop("audio_mask_b")}
    return {k: torch.cat([v, second.get(k, v)]) for k, v in batch.items()}, n


def consistency_loss(logits: torch.Tensor, n: int) -> torch.Tensor:
    """The symmetric Kullback-Leibler divergence between the predicted distributions of rows
    ``[:n]`` and ``[n:2n]`` (two placements of the same windows), averaged over the pairs."""
    lp, lq = F.log_softmax(logits[:n], dim=-1), F.log_softmax(logits[n : 2 * n], dim=-1)
    return 0.5 * ((lp.exp() * (lp - lq)).sum(-1) + (lq.exp() * (lq - lp)).sum(-1)).mean()


def training_loss(logits: torch.Tensor, batch: dict, label_smoothing: float) -> torch.Tensor:
    """The soft cross-entropy when the batch carries ``target`` distributions, else the usual one
    against ``label``."""
    if "target" in batch:
        return soft_cross_entropy(logits, batch["target"], label_smoothing)
    return F.cross_entropy(logits, batch["label"], label_smoothing=label_smoothing)


@torch.no_grad()
def predict(
    net: nn.Module, ds: Dataset, device: torch.device, batch_size: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray, float]:
    """Softmax per item ``(N, C)``, labels, clip ids, and the mean cross-entropy."""
    net.eval()
    probs, labels, clips, loss_sum = [], [], [], 0.0
    for batch in DataLoader(ds, batch_size=batch_size, shuffle=False):
        batch = _to(batch, device)
        logits = net(batch).float()
        loss_sum += float(F.cross_entropy(logits, batch["label"], reduction="sum"))
        probs.append(torch.softmax(logits, -1).cpu().numpy())
        labels.append(batch["label"].cpu().numpy())
        clips.append(batch["clip"].cpu().numpy())
    if not probs:
        return np.zeros((0, 0)), np.zeros(0, np.int64), np.zeros(0, np.int64), math.nan
    n = sum(len(lb) for lb in labels)
    return np.concatenate(probs), np.concatenate(labels), np.concatenate(clips), loss_sum / n


def cpu_has_native_bf16(cpuinfo: str | None = None) -> bool:
    """Whether this CPU computes bf16 in hardware (AVX-512 BF16 or AMX BF16 among the features
    :func:`edge_emotion.bench.machine.cpu_features` reads from ``cpuinfo``, by default
    ``/proc/cpuinfo``); elsewhere bf16 is emulated and slower than fp32."""
    from edge_emotion.bench.machine import cpu_features

    features = cpu_features(cpuinfo)
    return "avx512_bf16" in features or "amx_bf16" in features


def clip_metrics(net: nn.Module, ds: Dataset, device: torch.device, batch_size: int, labels: tuple[str, ...]) -> dict:
    """Clip-level WA / UA (softmax averaged over a clip's windows) and the window-level loss."""
    probs, y, clips, loss = predict(net, ds, device, batch_size)
    if len(y) == 0:
        return {"loss": math.nan, "wa": math.nan, "ua": math.nan, "n": 0, "report": None}
    ids, clip_p = clip_probabilities(probs, clips)
    first = {c: i for i, c in reversed(list(enumerate(clips)))}
    truth = np.array([y[first[c]] for c in ids])
    predicted = clip_p.argmax(1)
    result = classification_result(truth, predicted, labels)
    out = {
        "loss": loss,
        "wa": result.weighted_accuracy,
        "ua": result.unweighted_accuracy,
        "n": result.n,
        "report": result.to_dict(),
    }
    groups = getattr(ds, "clip_groups", None)  # clip number -> its corpus (window sets of several corpora)
    of_clip = np.array([str(groups[int(c)]) for c in ids]) if groups is not None else np.array([])
    corpora = sorted(set(of_clip.tolist()))  # plain str: checkpoints hold these rows
    if len(corpora) > 1:
        out["by_corpus"] = {}
        for corpus in corpora:
            part = classification_result(truth[of_clip == corpus], predicted[of_clip == corpus], labels)
            out["by_corpus"][corpus] = {
                "n": int(part.n),
                "wa": float(part.weighted_accuracy),
                "ua": float(part.unweighted_accuracy),
            }
    return out


class _Logger:
    """Console + ``metrics.csv`` + TensorBoard (if importable); rank 0 only. A validation set of
    several corpora also gets each corpus's clip WA / UA, in ``metrics_by_corpus.csv``."""

    FIELDS = ("epoch", "lr", "train_loss", "val_loss", "val_wa", "val_ua", "seconds")

    def __init__(self, out_dir: Path, resume: bool):
        self.path = out_dir / "metrics.csv"
        if not (resume and self.path.is_file()):
            with self.path.open("w", newline="") as f:
                csv.writer(f).writerow(self.FIELDS)
        self.by_corpus_path = out_dir / "metrics_by_corpus.csv"
        if not resume:
            self.by_corpus_path.unlink(missing_ok=True)
        try:
            from torch.utils.tensorboard import SummaryWriter

            self.tb = SummaryWriter(str(out_dir / "tensorboard"))
        except Exception as exc:  # tensorboard not installed: the CSV is enough
            log.info("TensorBoard logging off (%s)", exc)
            self.tb = None

    def __call__(self, row: dict) -> None:
        with self.path.open("a", newline="") as f:
            csv.writer(f).writerow([row[k] for k in self.FIELDS])
        if self.tb is not None:
            for k in self.FIELDS[1:-1]:
                if not math.isnan(row[k]):
                    self.tb.add_scalar(k, row[k], row["epoch"])
            self.tb.flush()
        log.info(
            "epoch %d  lr %.2e  train loss %.4f  val loss %.4f  WA %.3f  UA %.3f  (%.1f s)",
            row["epoch"],
            row["lr"],
            row["train_loss"],
            row["val_loss"],
            row["val_wa"],
            row["val_ua"],
            row["seconds"],
        )
        by_corpus = row.get("val_by_corpus") or {}
        if by_corpus:
            new = not self.by_corpus_path.is_file()
            with self.by_corpus_path.open("a", newline="") as f:
                writer = csv.writer(f)
                if new:
                    writer.writerow(("epoch", "corpus", "val_n", "val_wa", "val_ua"))
                for corpus, m in by_corpus.items():
                    writer.writerow((row["epoch"], corpus, m["n"], m["wa"], m["ua"]))
            log.info(
                "  validation by corpus: %s",
                ", ".join(f"{c} UA {m['ua']:.3f} (n={m['n']})" for c, m in by_corpus.items()),
            )

    def close(self) -> None:
        if self.tb is not None:
            self.tb.close()


def _preset_difference(then: PresetConfig, now: PresetConfig) -> str:
    """The preset fields that differ, ``section.field: then -> now`` (for error messages)."""
    a, b = then.to_dict(), now.to_dict()
    diffs = []
    for key in sorted(set(a) | set(b)):
        x, y = a.get(key), b.get(key)
        if isinstance(x, dict) and isinstance(y, dict):
            changed = [k for k in sorted(set(x) | set(y)) if x.get(k) != y.get(k)]
            diffs += [f"{key}.{k}: {x.get(k)!r} -> {y.get(k)!r}" for k in changed]
        elif x != y:
            diffs.append(f"{key}: {x!r} -> {y!r}")
    return "; ".join(diffs) or "none"


def _load_init(model: EmotionModel, path: Path) -> None:
    state = load_checkpoint(path)
    then = preset_of(state)  # a config: fields the checkpoint predates take their defaults
    if then != model.preset:
        from edge_emotion.errors import InputError

        raise InputError(f"{path} was trained with another preset or labels: {_preset_difference(then, model.preset)}")
    model.load_state_dict(state["model"])
    log.info("initialised from %s (stage %s, epoch %d)", path, state["stage"], state["epoch"])


def train(spec: RunSpec) -> TrainResult:
    """Run one stage of training (see the module doc); returns where the checkpoints are."""
    ctx = init_distributed(spec.device)
    try:
        with _run_lock(Path(spec.out_dir), ctx.is_main):
            return _train(spec, ctx)
    finally:
        cleanup(ctx)


@contextlib.contextmanager
def _run_lock(out: Path, held: bool):
    """One training process per run directory: a second one (a recipe step started twice, a resume
    beside the run it resumes) would interleave its checkpoints and metrics with the first's.
    An advisory lock on ``OUT/.lock``, released when the process ends, however it ends; on systems
    without ``fcntl`` nothing is locked."""
    try:
        import fcntl
    except ImportError:  # Windows
        fcntl = None
    if not held or fcntl is None:
        yield
        return
    out.mkdir(parents=True, exist_ok=True)
    with open(out / ".lock", "w") as fh:
        try:
            fcntl.flock(fh, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            from edge_emotion.errors import InputError

            raise InputError(
                f"another training process is writing into {out}; wait for it or choose another --out"
            ) from None
        yield


def _train(spec: RunSpec, ctx: DistContext) -> TrainResult:
    config, preset, out = spec.config, spec.preset, Path(spec.out_dir)
    stage = config.stage
    out.mkdir(parents=True, exist_ok=True)
    torch.manual_seed(config.seed)
    np.random.seed(config.seed)
    if ctx.is_main:
        (out / "train_config.json").write_text(
            json.dumps(
                {
                    "preset": preset.to_dict(),
                    "train": config.to_dict(),
                    "protocol": spec.protocol,
                    "fold": spec.fold,
                    "corpora": [[n, str(r)] for n, r in spec.corpora],
                    "init": str(spec.init) if spec.init else None,
                },
                indent=1,
            )
        )
    model = EmotionModel(preset)
    if spec.init is not None:
        _load_init(model, Path(spec.init))
    model.to(ctx.device)
    data, paths, faces = prepare(
        list(spec.corpora), preset, config, spec.protocol, spec.fold, out, Path(spec.cache_dir), ctx, spec.progress
    )
    sets = stage_data(stage, model, data, paths, faces, config, ctx.device)
    net = NETS[stage](model).to(ctx.device)
    if stage == "fusion":
        model.visual.requires_grad_(False)
        model.audio.requires_grad_(False)
    log.info(
        "stage %s: %d train / %d val / %d test items; %s",
        stage,
        len(sets.train),
        len(sets.val),
        len(sets.test),
        sets.notes,
    )

    optimizer = torch.optim.Adam(
        [p for p in net.parameters() if p.requires_grad], lr=config.learning_rate, weight_decay=config.weight_decay
    )
    scheduler = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimizer, T_max=config.epochs, eta_min=config.min_learning_rate
    )
    use_amp = config.amp and ctx.device.type == "cuda"
    scaler = torch.amp.GradScaler("cuda", enabled=use_amp)
    cpu_bf16 = False
    if config.cpu_amp and ctx.device.type == "cpu":
        net.to(memory_format=torch.channels_last)
        cpu_bf16 = cpu_has_native_bf16()
        log.info("cpu_amp: channels-last convolutions, training forward in %s", "bf16" if cpu_bf16 else "fp32")
    autocast = (
        (lambda: torch.autocast("cpu", dtype=torch.bfloat16))
        if cpu_bf16
        else (lambda: torch.autocast("cuda", dtype=torch.float16, enabled=use_amp))
    )
    heads = (lambda: {"visual_head": net.head.state_dict()}) if stage == "visual" else (lambda: {})

    start_epoch, history, best = 0, [], {"val_ua": -1.0, "epoch": -1}
    resumed_ema = None
    keep_last = config.val_speakers == 0
    last_path, best_path = out / "last.pt", out / "best.pt"
    if spec.resume and last_path.is_file():
        state = load_checkpoint(last_path, ctx.device)
        if state["stage"] != stage or preset_of(state) != preset:
            from edge_emotion.errors import InputError

            raise InputError(
                f"{last_path} is from stage {state['stage']} / preset {state['preset']['name']} "
                f"({_preset_difference(preset_of(state), preset)}); cannot resume {stage}"
            )
        model.load_state_dict(state["model"])
        if stage == "visual" and "visual_head" in state["heads"]:
            net.head.load_state_dict(state["heads"]["visual_head"])
        optimizer.load_state_dict(state["optimizer"])
        scheduler.load_state_dict(state["scheduler"])
        if state["scaler"] is not None and use_amp:
            scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        resumed_ema = state.get("ema")
        start_epoch, history, best = state["epoch"] + 1, list(state["history"]), dict(state["best"])
        log.info(
            "resuming %s at epoch %d (best val UA %.3f at epoch %d)",
            last_path,
            start_epoch,
            best["val_ua"],
            best["epoch"],
        )
    elif spec.resume:
        log.warning("nothing to resume in %s; starting from epoch 0", out)
    ema = WeightAverage(net, config.ema_decay) if config.ema_decay > 0 else None
    if ema is not None and resumed_ema is not None:
        ema.load_state_dict(resumed_ema)
    elif ema is not None and start_epoch > 0:
        log.warning("%s holds no weight average; averaging from the resumed weights", last_path)

    train_net: nn.Module = net
    if ctx.distributed:
        train_net = nn.parallel.DistributedDataParallel(
            net, device_ids=[ctx.local_rank] if ctx.device.type == "cuda" else None
        )
    loader = _loader(sets.train, config.batch_size, True, ctx, config.workers, config.seed)
    augment = _Augmenter(preset, config)
    logger = _Logger(out, spec.resume) if ctx.is_main else None
    labels = preset.labels
    eval_batch = max(config.batch_size, 64)

    for epoch in range(start_epoch, config.epochs):
        t0 = time.time()
        if isinstance(loader.sampler, DistributedSampler):
            loader.sampler.set_epoch(epoch)
        if hasattr(sets.train, "set_epoch"):
            sets.train.set_epoch(epoch)
        torch.manual_seed(config.seed * 1000 + epoch * 10 + ctx.rank)
        train_net.train()
        if stage == "fusion":
            model.visual.eval()
            model.audio.eval()
        total, count = 0.0, 0
        bar = loader
        if spec.progress and ctx.is_main:
            from tqdm.auto import tqdm

            bar = tqdm(loader, desc=f"{stage} epoch {epoch + 1}/{config.epochs}", leave=False, unit="batch")
        for batch in bar:
            batch, pairs = pair_views(_to(batch, ctx.device))
            batch = augment(batch)
            with autocast():
                logits = train_net(batch)
                loss = training_loss(logits.float(), batch, config.label_smoothing)
                if pairs:
                    loss = loss + config.shift_consistency * consistency_loss(logits.float(), pairs)
            optimizer.zero_grad(set_to_none=True)
            scaler.scale(loss).backward()
            if config.grad_clip_norm > 0:
                scaler.unscale_(optimizer)
                nn.utils.clip_grad_norm_(net.parameters(), config.grad_clip_norm)
            scaler.step(optimizer)
            scaler.update()
            if ema is not None:
                ema.update(net)
            n = int(batch["label"].shape[0])
            total += float(loss.detach()) * n
            count += n
            if bar is not loader:
                bar.set_postfix(loss=f"{total / max(count, 1):.4f}")
        lr = optimizer.param_groups[0]["lr"]
        scheduler.step()
        train_loss = mean_across(ctx, total / max(count, 1), count)
        # with ema_decay, the average is what is validated and kept; last.pt holds the trained weights
        with ema.applied(net) if ema is not None else contextlib.nullcontext():
            val = clip_metrics(net, sets.val, ctx.device, eval_batch, labels) if ctx.is_main else {"ua": 0.0}
            val_ua = broadcast_value(ctx, val["ua"] if not math.isnan(val["ua"]) else -1.0)
            if ctx.is_main:
                row = {
                    "epoch": epoch,
                    "lr": lr,
                    "train_loss": train_loss,
                    "val_loss": val["loss"],
                    "val_wa": val["wa"],
                    "val_ua": val["ua"],
                    "seconds": round(time.time() - t0, 2),
                    **({"val_by_corpus": val["by_corpus"]} if "by_corpus" in val else {}),
                }
                history.append(row)
                # val_speakers = 0: a refit on every non-test speaker keeps its last epoch
                improved = keep_last or val_ua > best["val_ua"]
                if improved:
                    best = {"val_ua": val_ua, "epoch": epoch}
                common = dict(
                    train_config=config.to_dict(),
                    stage=stage,
                    epoch=epoch,
                    metrics=row,
                    history=history,
                    best=best,
                )
                if improved or not best_path.is_file():
                    save_checkpoint(best_path, model, heads=heads(), **common)
        if ctx.is_main:
            save_checkpoint(
                last_path,
                model,
                heads=heads(),
                optimizer=optimizer,
                scheduler=scheduler,
                scaler=scaler,
                ema=ema.state_dict() if ema is not None else None,
                **common,
            )
            logger(row)
        else:
            best = {"val_ua": max(best["val_ua"], val_ua), "epoch": epoch}
        barrier(ctx)

    test: dict = {}
    if ctx.is_main:
        logger.close()
        state = load_checkpoint(best_path, ctx.device)
        model.load_state_dict(state["model"])
        if stage == "visual" and "visual_head" in state["heads"]:
            net.head.load_state_dict(state["heads"]["visual_head"])
        test = clip_metrics(net, sets.test, ctx.device, eval_batch, labels) if len(sets.test) else {}
        results = {
            "stage": stage,
            "preset": preset.name,
            "protocol": spec.protocol,
            "fold": spec.fold,
            "world_size": ctx.world_size,
            "training_precision": "bf16 autocast" if cpu_bf16 else ("fp16 autocast" if use_amp else "fp32"),
            "best_epoch": best["epoch"],
            "best_val_ua": best["val_ua"] if best["val_ua"] >= 0 else None,  # None: nothing to validate on
            "epoch_chosen_by": "last epoch (no validation speakers)" if keep_last else "best validation UA",
            "test": test.get("report"),
            "test_loss": test.get("loss"),
            **({"test_by_corpus": test["by_corpus"]} if "by_corpus" in test else {}),
            "unmapped_labels": data.unmapped,
            "failed_preprocessing": len(data.failed),
            "notes": sets.notes,
        }
        (out / "results.json").write_text(json.dumps(results, indent=1, default=float))
    barrier(ctx)
    return TrainResult(
        out, best_path, last_path, int(best["epoch"]), float(best["val_ua"]), tuple(history), test.get("report") or {}
    )


__all__ = [
    "RunSpec",
    "TrainResult",
    "train",
    "predict",
    "clip_metrics",
    "soft_cross_entropy",
    "training_loss",
    "pair_views",
    "consistency_loss",
]
