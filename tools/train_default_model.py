"""Retrain, evaluate and re-export the default model shipped in the package — one command.

    python tools/train_default_model.py --data ../shared/data --out runs/default --cv-fusion \\
        [--jobs 2] [--install edge_emotion/models/default] [--folds 5] [--visual-epochs 75] \\
        [--audio-epochs 60] [--visual-width 16] [--device cpu|cuda]

The recipe (the model card in README.md explains why):
1. ``visual``: the face encoder + a linear head on FER2013 ``train.zip`` (10 % of it held out for
   picking the best epoch); ``public_test.zip`` is only ever tested on.
2. For each of ``--folds`` speaker-independent folds (RAVDESS actors 1–20: 4 test actors per fold,
   the other 16 train; SAVEE, EmoDB and CREMA-D speakers dealt into the same folds):
   ``audio`` (audio encoder + fusion head on audio-only windows of ``--audio-corpora``, by default
   RAVDESS speech alone — SAVEE, EmoDB and CREMA-D audio can be added — with the config's
   augmentation and random window offsets; independent of step 1, so it may run beside it), then
   ``fusion`` (from the visual encoder of step 1 and the audio stage's weights; encoders frozen; the
   fusion head on audio-only windows, face-only FER2013 samples, label-paired audio + face samples
   and the real CREMA-D AV clips, with modality dropout), then ``eval`` on the fold's unseen actors,
   audio only (RAVDESS, and SAVEE / EmoDB where they trained and the fold holds out some of their
   speakers: leave-speakers-out; a corpus left out of training is scored cross-corpus, every
   speaker, by the shipped fold's audio stage). By default (``--refit``) no validation actors are
   held out (16 train) and the audio and fusion stages keep their last epoch; ``--no-refit`` holds
   4 out and keeps the best epoch on them.
   ``--audio-stages-only`` stops here, with the folds' figures in ``OUT/metrics.json``: it measures
   an audio recipe (another ``--audio-corpora``, say) on every fold without a face stage or a bundle.
3. The model of fold ``--ship-fold`` is exported (ONNX FP32 + INT8, OpenVINO FP32 + INT8, calibrated
   on its own training actors' speech and on FER2013 training faces), evaluated (FER2013 public
   test, as ``auto`` runs it and through its ONNX Runtime INT8 graphs; the real AV clips; its fold's
   unseen RAVDESS actors), and its manifest gets the
   provenance: this command, the data, the split and every metric. ``--install`` copies it into
   the package.

Every step is an ``edge-emotion`` command (logged, and recorded in the manifest), so each can be
rerun by hand. Steps whose outputs exist are skipped, so an interrupted run continues: a training
step that was cut off resumes from its ``last.pt`` (every training step runs with ``--resume``, which
starts afresh when there is none), an export that did not finish is redone. ``--jobs N``
runs step 1 and the folds' audio stages N at a time (one thread each on a 2-core CPU with N = 2:
faster than one 2-thread process); the rest runs in order.
"""

from __future__ import annotations

import argparse
import json
import shlex
import shutil
import statistics
import subprocess
import sys
import time
from pathlib import Path

LICENCE_NOTE = (
    "Trained on RAVDESS (CC BY-NC-SA 4.0) and FER2013 (research / non-commercial use): these weights are for "
    "evaluation and non-commercial use only."
)
#: what each further audio corpus adds to the licence note
CORPUS_TERMS = {
    "savee": "SAVEE (free for research use)",
    "emodb": "EmoDB (free for research use)",
    "crema-d-audio": "CREMA-D (ODbL 1.0 / DbCL 1.0)",
}


def licence_note(audio_corpora: list[str]) -> str:
    more = [CORPUS_TERMS[name] for name in audio_corpora if name in CORPUS_TERMS]
    if not more:
        return LICENCE_NOTE
    return (
        f"Trained on RAVDESS (CC BY-NC-SA 4.0), FER2013 (research / non-commercial use), {', '.join(more)}: these "
        "weights are for evaluation and non-commercial research use only."
    )


def _command(args) -> tuple[list[str], str]:
    """The process to run for ``edge-emotion ARGS`` and the line that logs it."""
    return [sys.executable, "-m", "edge_emotion", *map(str, args)], f"$ edge-emotion {shlex.join(map(str, args))}"


def edge_emotion(*args: str, log: Path) -> None:
    command, line = _command(args)
    print(f"\n{line}", flush=True)
    start = time.time()
    with open(log, "a") as fh:
        fh.write(f"\n{line}\n")
        fh.flush()
        proc = subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT)
    print(f"  ({time.time() - start:.0f} s, log: {log})", flush=True)
    if proc.returncode != 0:
        sys.exit(f"step failed with exit code {proc.returncode}; see {log}")


def evaluate_checkpoint(
    model: Path, dataset: str, root: Path, report: Path, log: Path, split: Path | None = None
) -> dict:
    """``edge-emotion eval`` of a training checkpoint on ``dataset`` — the test part of ``split``, or
    every sample without one — into ``report``, unless an earlier run left it there; the report."""
    if not report.exists():
        chosen = ["--split", split] if split is not None else []
        edge_emotion(
            "eval",
            "--model",
            model,
            "--dataset",
            dataset,
            "--root",
            root,
            *chosen,
            "--json",
            report,
            "--no-progress",
            log=log,
        )
    return read_json(report)


def edge_emotion_parallel(steps: list[tuple[str, list]], jobs: int, log_dir: Path) -> None:
    """Run independent ``edge-emotion`` steps ``(name, args)``, at most ``jobs`` at once, each
    process with ``cpu_count // jobs`` threads (several 1-thread processes use a small CPU better
    than one process with several threads) and its own log ``log_dir/NAME.log``."""
    import os

    threads = str(max(1, (os.cpu_count() or 1) // jobs))
    env = {**os.environ, "OMP_NUM_THREADS": threads, "MKL_NUM_THREADS": threads}
    log_dir.mkdir(parents=True, exist_ok=True)
    pending, running, failed = list(steps), [], []
    while pending or running:
        while pending and len(running) < jobs:
            name, args = pending.pop(0)
            command, line = _command(args)
            print(f"\n{line}\n  (in parallel, {threads} thread(s), log: {log_dir / name}.log)", flush=True)
            fh = open(log_dir / f"{name}.log", "a")
            fh.write(line + "\n")
            fh.flush()
            proc = subprocess.Popen(command, stdout=fh, stderr=subprocess.STDOUT, env=env)
            running.append((name, proc, fh, time.time()))
        time.sleep(2)
        for item in list(running):
            name, proc, fh, start = item
            if proc.poll() is None:
                continue
            running.remove(item)
            fh.close()
            print(f"  {name}: exit {proc.returncode} after {time.time() - start:.0f} s", flush=True)
            if proc.returncode != 0:
                failed.append(name)
                pending.clear()  # let the running ones finish, start nothing new
    if failed:
        sys.exit(f"step(s) failed: {', '.join(failed)}; see their logs in {log_dir}")


def epoch_seconds(out: Path) -> float:
    """The summed epoch durations in every run's metrics.csv under ``out``."""
    import csv

    total = 0.0
    for path in out.rglob("metrics.csv"):
        with open(path) as fh:
            total += sum(float(row["seconds"]) for row in csv.DictReader(fh))
    return total


def read_json(path: Path) -> dict:
    with open(path) as fh:
        return json.load(fh)


def summary(report: dict) -> dict:
    return {k: report[k] for k in ("dataset", "n", "weighted_accuracy", "unweighted_accuracy") if k in report}


#: corpus name -> its folder under --data, for the audio stage's corpora
AUDIO_CORPORA = {
    "ravdess-audio": "ravdess",
    "savee": "savee",
    "emodb": "emodb",
    "crema-d-audio": "crema-d",
}
#: corpora scored leave-speakers-out besides RAVDESS (each fold's model on the fold's test speakers)
HELD_OUT_CORPORA = ("savee", "emodb")


def leave_speakers_out(folds: list[dict], corpus: str) -> dict:
    """Per-fold reports of one corpus -> the mean UA / WA over the folds that held out any of its
    speakers, with the per-fold figures."""
    scored = [f[corpus] for f in folds if f.get(corpus, {}).get("n")]
    if not scored:
        return {}
    note = f"each fold's audio-stage model on the {corpus} speakers that fold holds out (never trained on)"
    return {**audio_kfold(scored, note), "n": sum(r["n"] for r in scored)}


def audio_kfold(folds: list[dict], note: str) -> dict:
    """The folds' RAVDESS figures -> their per-fold list, mean and (population) std."""
    was = [f["weighted_accuracy"] for f in folds]
    uas = [f["unweighted_accuracy"] for f in folds]
    return {
        "folds": folds,
        "weighted_accuracy_mean": statistics.mean(was),
        "weighted_accuracy_std": statistics.pstdev(was),
        "unweighted_accuracy_mean": statistics.mean(uas),
        "unweighted_accuracy_std": statistics.pstdev(uas),
        "folds_run": len(folds),
        "note": note,
    }


def other_corpora_metrics(folds: list[dict], cross_corpus: dict) -> dict:
    """The metrics' SAVEE / EmoDB part: ``CORPUS_leave_speakers_out`` where some fold held out its
    speakers, ``CORPUS_cross_corpus`` where no stage trained on it."""
    held_out = {corpus: leave_speakers_out(folds, corpus) for corpus in HELD_OUT_CORPORA}
    return {
        **{f"{corpus}_leave_speakers_out": report for corpus, report in held_out.items() if report},
        **{f"{corpus}_cross_corpus": report for corpus, report in cross_corpus.items()},
    }


def write_audio_stage_metrics(out: Path, folds: list[dict], cross_corpus: dict, corpora: list[str]) -> None:
    """``--audio-stages-only``: the folds' audio-stage figures into ``OUT/metrics.json`` (and printed)."""
    metrics = {
        "command": "python tools/train_default_model.py " + shlex.join(sys.argv[1:]),
        "audio_corpora": corpora,
        "ravdess_audio_only_actor_kfold": audio_kfold(
            folds, "each fold's audio stage (audio encoder + fusion head on audio-only windows) on its unseen actors"
        ),
        **other_corpora_metrics(folds, cross_corpus),
        "epoch_seconds_sum": round(epoch_seconds(out)),
    }
    with open(out / "metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2)
    shown = {k: v for k, v in metrics["ravdess_audio_only_actor_kfold"].items() if k != "folds"}
    for corpus in HELD_OUT_CORPORA:
        if f"{corpus}_leave_speakers_out" in metrics:
            shown[corpus] = {k: v for k, v in metrics[f"{corpus}_leave_speakers_out"].items() if k != "folds"}
    print(json.dumps(shown, indent=2))


def training_provenance(split_paths: list[Path]) -> dict:
    """The manifest's ``training_speakers`` / ``training_images``: the train + validation parts of
    the shipped model's stages (edge_emotion/eval/provenance.py)."""
    from edge_emotion.export.bundle_writer import training_provenance as from_splits

    return from_splits([read_json(p) for p in split_paths if p.exists()])


REFINE_MIN_LR = 1e-5  # where --visual-refine-epochs' cosine ends

# Model-config fields that shape only the face encoder's inside, not its output (the embedding's size)
FACE_ENCODER_INTERNALS = ("visual_stem_pool",)


def trained_fields(model: dict, stage: str) -> dict:
    """The model-config fields that the weights a stage trains depend on: the face encoder's
    (``visual_*``) for the visual stage; all but the face encoder's internals for the audio stage,
    whose fusion head takes the face embedding's size (``visual_width``) as given."""
    if stage == "visual":
        return {k: v for k, v in model.items() if k.startswith("visual_")}
    return {k: v for k, v in model.items() if k not in FACE_ENCODER_INTERNALS}


def image_split_mismatch(visual_split: dict, fusion_split: dict, prefix: str = "fer2013/") -> str | None:
    """Why the fusion stage's face images are not split as the visual stage's were (None: they
    are). The fusion head's face-only validation is only unseen by the face encoder if its
    validation images are the visual stage's, and its training images must not be the visual
    stage's validation images, or the face stage's epoch choice would have been made on them."""
    for part in ("train", "val"):
        visual = {k for k in visual_split.get(part, ()) if k.startswith(prefix)}
        fusion = {k for k in fusion_split.get(part, ()) if k.startswith(prefix)}
        if visual != fusion:
            return (
                f"{part}: {len(fusion - visual)} {prefix}* images of the fusion stage are not in the visual stage's "
                f"{part} part and {len(visual - fusion)} the other way (do both stages filter the images alike, "
                "e.g. the same ferplus setting?)"
            )
    return None


def merge_encoders(visual_ckpt: Path, audio_ckpt: Path, out: Path, visual_width: int | None = None) -> Path:
    """A checkpoint with the visual encoder of the visual stage and the audio encoder + fusion head
    of the audio stage: the fusion stage's starting point. (The two stages train disjoint
    parameters, so they can run at the same time.) ``visual_width``: the recipe's face-encoder
    width (None: the edge preset's)."""
    import torch
    from edge_emotion.train.checkpoint import load_checkpoint, preset_of

    from edge_emotion.config import EDGE, with_visual_width

    visual, audio = load_checkpoint(visual_ckpt), load_checkpoint(audio_ckpt)
    current = (EDGE if visual_width is None else with_visual_width(EDGE, visual_width)).to_dict()
    for name, state in (("visual", visual), ("audio", audio)):
        # Weights carry over when the architecture of what the stage trained (the visual stage: the
        # face encoder; the audio stage: the rest) and the labels are the same; preprocessing the
        # stage did not use (e.g. the face-crop margin, for stages trained on FER crops or speech)
        # may have been refined since. Fields a checkpoint predates take their defaults.
        then = preset_of(state).to_dict()
        if (trained_fields(then["model"], name), then["labels"]) != (
            trained_fields(current["model"], name),
            current["labels"],
        ):
            sys.exit(f"the {name} checkpoint has another architecture or labels than the recipe's edge preset")
    merged = dict(audio)
    merged["preset"] = current
    merged["model"] = {k: (visual["model"][k] if k.startswith("visual.") else v) for k, v in audio["model"].items()}
    merged["heads"] = {**audio.get("heads", {}), **visual.get("heads", {})}
    merged["stage"] = "visual+audio"
    out.parent.mkdir(parents=True, exist_ok=True)
    torch.save(merged, out)
    return out


def calibration_dir(data: Path, split_path: Path, out: Path) -> Path:
    """Links to the shipped fold's training-actor speech plus FER2013's training zip: calibration
    never sees the test actors or the public test faces."""
    split = read_json(split_path)
    train_keys = set(split["train"])
    calib = out / "calib"
    if calib.exists():
        shutil.rmtree(calib)
    calib.mkdir(parents=True)
    audio = sorted((data / "ravdess" / "audio16k").rglob("*.flac"))
    linked = 0
    for path in audio:
        if any(key.endswith(path.name) or path.stem in key for key in train_keys):
            (calib / path.name).symlink_to(path.resolve())
            linked += 1
    (calib / "fer2013-train.zip").symlink_to((data / "fer2013" / "train.zip").resolve())
    print(f"calibration: {linked} training-actor speech files + FER2013 train.zip", flush=True)
    return calib


def measure_window_shift(bundle: Path, data: Path, report: Path, log: Path) -> None:
    """``tools/window_shift.py`` on the bundle (unseen RAVDESS actors, the AV clips) -> ``report``."""
    import os

    command = [
        sys.executable,
        str(Path(__file__).with_name("window_shift.py")),
        "--model",
        str(bundle),
        "--data",
        str(data),
        "--json",
        str(report),
    ]
    print(f"\n$ {shlex.join(command)}", flush=True)
    repo = str(Path(__file__).resolve().parents[1])  # this checkout's edge_emotion, as `python -m` finds it
    env = {**os.environ, "PYTHONPATH": os.pathsep.join(filter(None, [repo, os.environ.get("PYTHONPATH")]))}
    with open(log, "a") as fh:
        fh.write(f"\n$ {shlex.join(command)}\n")
        fh.flush()
        if subprocess.run(command, stdout=fh, stderr=subprocess.STDOUT, env=env).returncode != 0:
            sys.exit(f"the window-shift measurement failed; see {log}")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", type=Path, default=Path("../shared/data"))
    parser.add_argument("--out", type=Path, default=Path("runs/default"))
    parser.add_argument("--install", type=Path, help="copy the finished bundle here (e.g. edge_emotion/models/default)")
    parser.add_argument("--config", type=Path, default=Path("configs/edge.toml"))
    parser.add_argument("--folds", type=int, default=5)
    parser.add_argument("--ship-fold", type=int, default=0)
    parser.add_argument(
        "--audio-corpora",
        nargs="+",
        default=["ravdess-audio"],
        choices=list(AUDIO_CORPORA),
        help="corpora of the audio stage (those whose folder under --data is absent are left out); "
        "default RAVDESS speech alone (README, What was tried: the four corpora scored lower on validation "
        "actors with strong augmentation, and 1.1 points higher with the default one, short of the 2 asked)",
    )
    parser.add_argument("--audio-epochs", type=int, default=60)
    parser.add_argument("--visual-epochs", type=int, default=75)
    parser.add_argument(
        "--visual-width",
        type=int,
        default=None,
        help="the face encoder's width for every stage (default: the edge preset's 16; wider costs more per "
        "face: BENCHMARKS.md)",
    )
    parser.add_argument(
        "--visual-refine-epochs",
        type=int,
        default=0,
        help="then this many more face-stage epochs from its best one, the learning rate falling by a cosine "
        f"from --visual-refine-lr to {REFINE_MIN_LR:g} (a warm restart; 0: none)",
    )
    parser.add_argument("--visual-refine-lr", type=float, default=3e-4)
    parser.add_argument("--fusion-epochs", type=int, default=16)
    parser.add_argument(
        "--cv-fusion",
        action="store_true",
        help="also run the fusion stage on every fold (default: only on the shipped fold; the other folds are "
        "scored after the audio stage, whose audio encoder + fusion head is the same audio-only path)",
    )
    parser.add_argument(
        "--refit",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="the audio and fusion stages train on every non-test speaker (no validation speakers) and keep "
        "their last epoch: the schedule that runs with 4 validation actors chose (60 audio epochs: their "
        "best epochs were 45-59, with validation UA moving by a few points from epoch to epoch), on 16 actors "
        "instead of 12; --no-refit holds 4 validation actors out and keeps the best epoch on them",
    )
    parser.add_argument(
        "--audio-stages-only",
        action="store_true",
        help="train and score the folds' audio stages only (no face stage, fusion stage or export): to measure "
        "an audio recipe (e.g. another --audio-corpora) on every fold; the figures go to OUT/metrics.json",
    )
    parser.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="train the visual stage and the folds' audio stages N at a time (each process with cpu_count/N "
        "threads; 2 on a 2-core CPU; keep 1 on a single GPU)",
    )
    args = parser.parse_args(argv)

    data, out = args.data.resolve(), args.out
    out.mkdir(parents=True, exist_ok=True)
    log = out / "recipe.log"
    cache = out / "cache"
    common = ["--preset", "edge", "--config", args.config, "--cache", cache, "--no-progress"]
    if args.visual_width is not None:  # every stage: the fusion head takes the embedding's size
        common += ["--visual-width", args.visual_width]
    if args.device:
        common += ["--device", args.device]
    ravdess = ["--dataset", "ravdess-audio", "--root", data / "ravdess"]
    fer = ["--dataset", "fer2013", "--root", data / "fer2013"]
    crema = ["--dataset", "crema-d", "--root", data / "crema-d"]
    audio_corpora = [name for name in args.audio_corpora if (data / AUDIO_CORPORA[name]).is_dir()]
    speech = [a for name in audio_corpora for a in ("--dataset", name, "--root", data / AUDIO_CORPORA[name])]
    speakers = ["--val-speakers", 0] if args.refit else []  # the audio and fusion stages'
    started = time.time()

    visual = out / "visual"
    visual_args = [
        "train",
        "--stage",
        "visual",
        *fer,
        "--epochs",
        args.visual_epochs,
        "--out",
        visual,
        "--resume",
        *common,
    ]

    def audio_args(k: int) -> list:
        return [
            "train",
            "--stage",
            "audio",
            *speech,
            "--fold",
            k,
            "--epochs",
            args.audio_epochs,
            "--out",
            out / f"fold{k}" / "audio",
            "--resume",
            *speakers,
            *common,
        ]

    if args.jobs > 1:  # the stages that do not depend on each other, side by side
        steps = [("visual", visual_args)] if not (args.audio_stages_only or (visual / "results.json").exists()) else []
        steps += [
            (f"fold{k}-audio", audio_args(k))
            for k in range(args.folds)
            if not (out / f"fold{k}" / "audio" / "results.json").exists()
        ]
        edge_emotion_parallel(steps, args.jobs, out / "logs")
    if not (args.audio_stages_only or (visual / "results.json").exists()):
        edge_emotion(*visual_args, log=log)
    face_stage = visual  # the face encoder the bundle gets
    if args.visual_refine_epochs > 0 and not args.audio_stages_only:
        face_stage = out / "visual-refine"
        if not (face_stage / "results.json").exists():
            edge_emotion(
                "train",
                "--stage",
                "visual",
                *fer,
                "--init",
                visual / "best.pt",
                "--epochs",
                args.visual_refine_epochs,
                "--learning-rate",
                args.visual_refine_lr,
                "--min-learning-rate",
                REFINE_MIN_LR,
                "--out",
                face_stage,
                "--resume",
                *common,
                log=log,
            )

    folds = []
    cross_corpus: dict[str, dict] = {}
    for k in range(args.folds):
        fold = out / f"fold{k}"
        audio, fusion = fold / "audio", fold / "fusion"
        if not (audio / "results.json").exists():
            edge_emotion(*audio_args(k), log=log)
        scored = audio
        if not args.audio_stages_only and (args.cv_fusion or k == args.ship_fold):
            if not (fusion / "results.json").exists():
                start = merge_encoders(face_stage / "best.pt", audio / "best.pt", fold / "init.pt", args.visual_width)
                # the audio stage's corpora too: the head must not forget the voices the encoder learnt
                extra = [
                    a for i in range(0, len(speech), 4) if speech[i + 1] != "ravdess-audio" for a in speech[i : i + 4]
                ]
                edge_emotion(
                    "train",
                    "--stage",
                    "fusion",
                    *ravdess,
                    *extra,
                    *fer,
                    *crema,
                    "--fold",
                    k,
                    "--init",
                    start,
                    "--epochs",
                    args.fusion_epochs,
                    "--out",
                    fusion,
                    "--resume",
                    *speakers,
                    *common,
                    log=log,
                )
            mismatch = image_split_mismatch(read_json(face_stage / "split.json"), read_json(fusion / "split.json"))
            if mismatch:
                raise SystemExit(f"{fusion}: its face images are split unlike {face_stage}'s: {mismatch}")
            scored = fusion
        for run in {audio, scored}:
            report = fold / f"eval-ravdess-audio-{run.name}.json"
            evaluate_checkpoint(run / "best.pt", "ravdess-audio", data / "ravdess", report, log, run / "split.json")
        split = read_json(audio / "split.json")
        held_out = {}
        for corpus in HELD_OUT_CORPORA:
            if corpus not in audio_corpora or not any(s.startswith(f"{corpus}-") for s in split["test_speakers"]):
                continue
            report = fold / f"eval-{corpus}-audio.json"
            root = data / AUDIO_CORPORA[corpus]
            held_out[corpus] = summary(
                evaluate_checkpoint(audio / "best.pt", corpus, root, report, log, audio / "split.json")
            )
        for corpus in HELD_OUT_CORPORA:  # not trained on at all: cross-corpus, every speaker
            if corpus in audio_corpora or k != args.ship_fold or not (data / AUDIO_CORPORA[corpus]).is_dir():
                continue
            report = fold / f"eval-{corpus}-cross-corpus.json"
            cross_corpus[corpus] = {
                **summary(evaluate_checkpoint(audio / "best.pt", corpus, data / AUDIO_CORPORA[corpus], report, log)),
                "note": f"the shipped fold's audio-stage model, trained without {corpus}, on all its speakers",
            }
        after_audio = read_json(fold / "eval-ravdess-audio-audio.json")
        final = read_json(fold / f"eval-ravdess-audio-{scored.name}.json")
        folds.append(
            {
                "fold": k,
                "test_speakers": split.get("test_speakers"),
                "scored_after": scored.name,
                **summary(final),
                "after_audio_stage": summary(after_audio),
                **held_out,
            }
        )

    if args.audio_stages_only:
        write_audio_stage_metrics(out, folds, cross_corpus, audio_corpora)
        return

    ship = out / f"fold{args.ship_fold}" / "fusion"
    bundle = out / "bundle"
    exported = out / "export.done"  # the bundle's manifest is written first, so it alone proves nothing
    if not exported.exists():
        calib = calibration_dir(data, ship / "split.json", out)
        edge_emotion(
            "export",
            "--checkpoint",
            ship / "best.pt",
            "--format",
            "onnx",
            "--format",
            "openvino",
            "--int8",
            "--calib",
            calib,
            "--out",
            bundle,
            "--overwrite",
            log=log,
        )
        exported.write_text(time.strftime("%Y-%m-%dT%H:%M:%S\n"))

    ship_split = read_json(ship / "split.json")
    ship_test = set(ship_split.get("test_speakers") or [])
    crema_trained = [k for k in ship_split["train"] + ship_split["val"] if k.startswith("crema-d/")]
    seen = {
        "crema_d_av_clips": "crema-d-1001" not in ship_test,
        "ravdess_av_clips": "ravdess-01" not in ship_test,
    }
    evaluations = {}
    fer_test = [*fer, "--split", face_stage / "split.json"]
    for name, extra in {
        "fer2013_public_test": fer_test,
        # the same images through the INT8 graphs, whatever `auto` picks (the face goal is stated for INT8)
        "fer2013_public_test_onnx_int8": [*fer_test, "--format", "onnx-int8"],
        "ravdess_audio_unseen_actors": [
            "--dataset",
            "ravdess-audio",
            "--root",
            data / "ravdess",
            "--split",
            ship / "split.json",
        ],
        "crema_d_av_clips": ["--dataset", "crema-d", "--root", data / "crema-d" / "video"],
        "ravdess_av_clips": ["--dataset", "ravdess", "--root", data / "ravdess" / "av"],
    }.items():
        report = out / f"bundle-eval-{name}.json"
        if not report.exists():
            edge_emotion("eval", "--model", bundle, *extra, "--json", report, "--no-progress", log=log)
        evaluations[name] = read_json(report)

    # The speakers that trained the bundle go into its manifest before the window-shift measurement,
    # which reads them there to score only the unseen actors.
    provenance_ids = training_provenance(
        [visual / "split.json", face_stage / "split.json", ship.parent / "audio" / "split.json", ship / "split.json"]
    )
    manifest_path = bundle / "manifest.json"
    manifest = read_json(manifest_path)
    manifest["provenance"] = {**manifest.get("provenance", {}), **provenance_ids}
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=2)
    shift_report = out / "window-shift.json"
    if not shift_report.exists():
        measure_window_shift(bundle, data, shift_report, log)
    window_shift = {
        name: {k: v for k, v in r.items() if k != "clips"} for name, r in read_json(shift_report)["sets"].items()
    }

    metrics = {
        "ravdess_audio_only_actor_kfold": {
            **audio_kfold(
                folds,
                "each fold's model on its 4 unseen actors, audio only (video masked): after the fusion stage "
                "where it ran (scored_after), else after the audio stage (audio encoder + fusion head trained "
                "on audio-only windows)",
            ),
            "of_folds": read_json(out / "fold0" / "audio" / "split.json").get("folds"),
        },
        **other_corpora_metrics(folds, cross_corpus),
        "window_shift_consistency": window_shift,
        "shipped_model": {
            name: {
                **summary(r),
                "speaker_seen_in_training": seen.get(name, False),
                **(
                    {"caution": "this speaker was in the shipped model's training set: not a held-out result"}
                    if seen.get(name)
                    else {}
                ),
            }
            for name, r in evaluations.items()
        },
        "visual_stage_results": read_json(face_stage / "results.json"),
        **({"visual_stage_refined_from": read_json(visual / "results.json")} if face_stage != visual else {}),
    }
    command = "python tools/train_default_model.py " + shlex.join(sys.argv[1:])
    first_stage_started = min(p.stat().st_mtime for p in out.rglob("split.json"))  # each run writes it first
    manifest = read_json(manifest_path)
    manifest["name"] = "edge-emotion-default-edge"
    manifest["provenance"] = {
        **manifest.get("provenance", {}),
        "command": command,
        "training_data": {
            "faces": "FER2013 train.zip (28,709 48x48 grey faces; 10% held out for validation)",
            "speech": "RAVDESS speech actors 1-20, 16 kHz FLAC (1,200 clips)"
            + "".join(f" + {name}" for name in audio_corpora if name != "ravdess-audio")
            + " (the fold's training and validation speakers)",
            "audio_visual": (
                f"CREMA-D 1001_DFA_{{ANG,HAP,NEU}}_XX.flv: {len(crema_trained)} of 3 real AV clips in the fusion "
                "stage's training/validation data (speaker 1001 is a test speaker of the shipped fold when 0); the "
                "fusion head otherwise learns from RAVDESS audio-only windows, FER2013 face-only samples and "
                "label-paired RAVDESS audio + FER2013 faces"
            ),
        },
        "split_protocol": {
            "ravdess": f"speaker-independent actor {args.folds}-fold; shipped model = fold {args.ship_fold} "
            f"(test actors {read_json(ship / 'split.json').get('test_speakers')}, never trained on)",
            "fer2013": "train.zip for training (90%) and validation (10%); public_test.zip for testing only",
        },
        **provenance_ids,
        "metrics": metrics,
        "licence": licence_note(audio_corpora),
        "compute": {
            "epoch_seconds_sum": round(epoch_seconds(out)),
            "note": "the summed wall duration of every training epoch of every run, without preprocessing, "
            "evaluation and export; runs that shared the CPU (--jobs) each count their own wall time, so "
            "with N runs at once on a CPU this sum overstates the CPU time up to N times",
            "this_invocation_seconds": round(time.time() - started),
            "wall_seconds_since_first_stage": round(time.time() - first_stage_started),
            "wall_note": "from the first training stage's start (its split.json) to the end of this invocation: the "
            "recipe's wall time when it ran in one go, longer when it was resumed later",
        },
    }
    with open(manifest_path, "w") as fh:
        json.dump(manifest, fh, indent=2)
    with open(out / "metrics.json", "w") as fh:
        json.dump(metrics, fh, indent=2)
    print(
        json.dumps(
            {
                "ravdess_audio_only": {
                    k: v for k, v in metrics["ravdess_audio_only_actor_kfold"].items() if k != "folds"
                },
                **metrics["shipped_model"],
            },
            indent=2,
        )
    )
    if args.install:
        if args.install.exists():
            shutil.rmtree(args.install)
        shutil.copytree(bundle, args.install)
        print(f"installed the bundle in {args.install}")


if __name__ == "__main__":
    main()
