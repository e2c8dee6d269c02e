"""``edge-emotion eval``: weighted / unweighted accuracy, per-class precision / recall / F1 and a
confusion-matrix PNG of a bundle (run without torch) or a training checkpoint (torch) on a corpus.

A clip's prediction is the mean of the softmax over its windows. Samples whose label the model
lacks, and clips that fail to decode, are counted in the report (``unmapped``, ``failed``).
Samples of speakers (or image subsets) the model was trained or validated on are counted too
(``training_overlap``, from the bundle's manifest or the ``split.json`` beside a checkpoint), with a
one-line warning on stderr. For FER2013, accuracy against the FER+ majority vote is added when the
votes are there (``--ferplus PATH``, or ``ROOT/ferplus_votes.csv``).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import typer


def _check_writable(path: Path, what: str) -> None:
    """Fail (one line, exit 2) before any work when ``path`` cannot be written: a directory, under
    a file, or in a folder this user may not write."""
    from . import fail

    if path.is_dir():
        raise fail(f"{what} {path} is a directory; give a file path")
    parent = path.parent
    while not parent.exists() and parent != parent.parent:
        parent = parent.parent
    if not parent.is_dir():
        raise fail(f"{what} {path} cannot be written: {parent} is not a directory")
    if not os.access(parent, os.W_OK):
        raise fail(f"{what} {path} cannot be written: {parent} is not writable")


def _load_split(path: Path):
    """The split of a training run's split.json, or fail (one line, exit 2)."""
    from ..eval.splits import Split
    from . import fail

    if not path.is_file():
        raise fail(f"split file {path} does not exist")
    try:
        return Split.load(path)
    except json.JSONDecodeError as exc:
        raise fail(f"split file {path} is not JSON ({exc.msg}, line {exc.lineno})") from None
    except KeyError as exc:
        raise fail(f"split file {path} is not a training run's split.json (no {exc.args[0]!r} key)") from None
    except (TypeError, ValueError, AttributeError) as exc:
        raise fail(f"split file {path} is not a training run's split.json ({exc})") from None
    except OSError as exc:
        raise fail(f"split file {path} cannot be read: {exc.strerror or exc}") from None


def register(app: typer.Typer) -> None:
    @app.command(name="eval")
    def eval_command(
        dataset: str = typer.Option(
            ...,
            "--dataset",
            help="ravdess, crema-d, iemocap, ravdess-audio, fer2013 (or crema-d-audio, iemocap-audio, savee, emodb).",
        ),
        root: Path = typer.Option(..., "--root", help="The corpus's folder."),
        model: Path | None = typer.Option(
            None,
            "--model",
            help="A bundle directory or a checkpoint (.pt); default: the bundle shipped in the package.",
        ),
        backend: str = typer.Option(
            "auto", "--backend", help="Runtime for a bundle: auto, onnxruntime, openvino, tensorrt, torch."
        ),
        format_key: str | None = typer.Option(
            None,
            "--format",
            help="A bundle's format to evaluate (e.g. onnx-int8, openvino-int8); default: the one --backend picks.",
        ),
        json_path: Path | None = typer.Option(None, "--json", help="Write the report as JSON here."),
        png: Path | None = typer.Option(
            None, "--png", help="Confusion-matrix PNG (default: beside --json, or ./confusion-DATASET.png)."
        ),
        split: Path | None = typer.Option(
            None, "--split", help="A training run's split.json: evaluate only its test part."
        ),
        limit: int | None = typer.Option(None, "--limit", help="Evaluate at most N samples (spread over the corpus)."),
        ferplus: Path | None = typer.Option(
            None,
            "--ferplus",
            help="fer2013: FER+ votes CSV; also score against the FER+ majority vote "
            "(default: ROOT/ferplus_votes.csv when it is there).",
        ),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Evaluate a model on a corpus: WA, UA, per-class P/R/F1 and a confusion-matrix PNG."""
        from ..eval.datasets import get_dataset, limit_samples
        from ..eval.evaluate import evaluate, load_predictor, write_confusion_png
        from ..info import default_bundle_path
        from . import fail

        if limit is not None and limit <= 0:
            raise fail(f"--limit must be a positive number of samples, got {limit}")
        if model is None:
            model = default_bundle_path()
            if model is None:
                raise fail("no --model given and this install ships no default bundle")
        if not model.exists():
            raise fail(f"model {model} does not exist")
        if model.is_file() and model.suffix != ".pt":
            raise fail(f"model {model} is neither a bundle directory nor a .pt checkpoint")
        if model.is_file() and format_key is not None:
            raise fail("--format picks a format of a bundle; a .pt checkpoint has none")
        if model.is_file():
            import importlib.util

            if importlib.util.find_spec("torch") is None:
                raise fail(
                    "evaluating a checkpoint needs torch: pip install 'edge-emotion[train]' (or export it to a bundle)"
                )
        if png is None:
            png = json_path.with_suffix(".png") if json_path is not None else Path(f"confusion-{dataset}.png")
        if json_path is not None:
            _check_writable(json_path, "--json")
        _check_writable(png, "--png")
        test_split = _load_split(split) if split is not None else None
        if ferplus is not None and not ferplus.is_file():
            raise fail(f"FER+ votes file {ferplus} does not exist")
        index = get_dataset(dataset, root)
        samples = list(index.samples)
        if test_split is not None:
            samples = test_split.part(samples, "test")
        if limit is not None:
            samples = limit_samples(samples, limit)
        if model.is_file():  # a training checkpoint: the one path of eval that needs the train extra (torch)
            from ..train.predictor import TorchPredictor

            predictor = TorchPredictor(model)
        else:
            predictor = load_predictor(model, backend, format_key)
        result = evaluate(predictor, index, samples, progress=progress)
        if result.n == 0:
            raise fail(
                f"no {dataset} sample could be evaluated ({len(result.failed)} failed, "
                f"{sum(result.unmapped.values())} with labels the model lacks)"
            )
        try:
            write_confusion_png(result, png)
        except OSError as exc:
            raise fail(f"cannot write the confusion matrix to {png}: {exc.strerror or exc}") from None
        report = result.to_dict()
        report["model"] = str(model)
        evaluated = [s for s in samples if s.key in result.predictions]
        overlap = _training_overlap(model, predictor, index, evaluated)
        if overlap is not None:
            report["training_overlap"] = overlap.to_dict()
        votes_path = ferplus
        if votes_path is None and dataset == "fer2013":
            from ..eval.ferplus import default_votes_path

            votes_path = default_votes_path(root)
        if votes_path is not None:
            from ..errors import InputError
            from ..eval.ferplus import majority_accuracy, read_votes

            try:
                votes = read_votes(votes_path)
            except InputError as exc:
                raise fail(str(exc)) from None
            scored = majority_accuracy(result.predictions, result.labels, votes)
            report["ferplus"] = {"votes": str(votes_path), **scored}
        # which graphs produced the numbers: a bundle's format and runtime, or the PyTorch checkpoint
        report["format"] = getattr(predictor, "format_key", "checkpoint")
        report["runtime"] = getattr(predictor, "backend_name", "torch")
        report["confusion_png"] = str(png)
        if json_path is not None:
            try:
                json_path.parent.mkdir(parents=True, exist_ok=True)
                json_path.write_text(json.dumps(report, indent=1))
            except OSError as exc:
                raise fail(f"cannot write the report to {json_path}: {exc.strerror or exc}") from None
        typer.echo(f"{dataset}: n={result.n}  WA {result.weighted_accuracy:.4f}  UA {result.unweighted_accuracy:.4f}")
        if "ferplus" in report:
            fp = report["ferplus"]
            typer.echo(
                f"  FER+ majority vote: n={fp['n']}  accuracy {fp['accuracy']:.4f}  UA {fp['unweighted_accuracy']:.4f}"
                f"  (left out: {fp['excluded']})"
            )
        for name, row in result.per_class.items():
            if row["support"] or row["precision"]:
                typer.echo(
                    f"  {name:<10} P {row['precision']:.3f}  R {row['recall']:.3f}  "
                    f"F1 {row['f1']:.3f}  n={row['support']}"
                )
        if result.unmapped:
            typer.echo(f"  not in the model's labels (skipped): {result.unmapped}")
        if result.failed:
            typer.echo(f"  failed to decode: {len(result.failed)}")
        typer.echo(f"confusion matrix: {png}")
        if overlap is not None and overlap.warning():
            typer.echo(overlap.warning(), err=True)


def _training_overlap(model: Path, predictor, index, evaluated):
    """How many evaluated samples the model saw in training: from a bundle's manifest, or from the
    ``split.json`` beside a checkpoint; None when neither says what trained it."""
    from ..eval.provenance import training_ids, training_ids_from_splits, training_overlap

    if model.is_dir():
        bundle = getattr(predictor, "bundle", None)
        ids = training_ids(bundle.manifest) if bundle is not None else None
    else:
        split_path = model.parent / "split.json"
        try:
            ids = training_ids_from_splits([json.loads(split_path.read_text())], index.samples)
        except (OSError, ValueError):
            ids = None
    return training_overlap(evaluated, ids) if ids is not None else None
