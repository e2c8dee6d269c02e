"""``edge-emotion eval``: weighted / unweighted accuracy, per-class precision / recall / F1 and a
confusion-matrix PNG of a bundle (run without torch) or a training checkpoint (torch) on a corpus.

A clip's prediction is the mean of the softmax over its windows. Samples whose label the model
lacks, and clips that fail to decode, are counted in the report (``unmapped``, ``failed``).
"""

from __future__ import annotations

import json
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command(name="eval")
    def eval_command(
        dataset: str = typer.Option(
            ...,
            "--dataset",
            help="ravdess, crema-d, iemocap, ravdess-audio, fer2013 (or crema-d-audio, iemocap-audio).",
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
        json_path: Path | None = typer.Option(None, "--json", help="Write the report as JSON here."),
        png: Path | None = typer.Option(
            None, "--png", help="Confusion-matrix PNG (default: beside --json, or ./confusion-DATASET.png)."
        ),
        split: Path | None = typer.Option(
            None, "--split", help="A training run's split.json: evaluate only its test part."
        ),
        limit: int | None = typer.Option(None, "--limit", help="Evaluate at most N samples (spread over the corpus)."),
        progress: bool = typer.Option(True, "--progress/--no-progress"),
    ) -> None:
        """Evaluate a model on a corpus: WA, UA, per-class P/R/F1 and a confusion-matrix PNG."""
        from ..info import default_bundle_path
        from ..train.datasets import get_dataset
        from ..train.evaluate import evaluate, load_predictor, write_confusion_png
        from . import fail

        if model is None:
            model = default_bundle_path()
            if model is None:
                raise fail("no --model given and this install ships no default bundle")
        if not model.exists():
            raise fail(f"model {model} does not exist")
        if model.is_file() and model.suffix != ".pt":
            raise fail(f"model {model} is neither a bundle directory nor a .pt checkpoint")
        if model.is_file():
            import importlib.util

            if importlib.util.find_spec("torch") is None:
                raise fail(
                    "evaluating a checkpoint needs torch: pip install 'edge-emotion[train]' (or export it to a bundle)"
                )
        index = get_dataset(dataset, root)
        samples = list(index.samples)
        if split is not None:
            from ..train.splits import Split

            if not split.is_file():
                raise fail(f"split file {split} does not exist")
            samples = Split.load(split).part(samples, "test")
        if limit is not None and limit > 0:
            from ..train.prepare import limit_samples

            samples = limit_samples(samples, limit)
        predictor = load_predictor(model, backend)
        result = evaluate(predictor, index, samples, progress=progress)
        if result.n == 0:
            raise fail(
                f"no {dataset} sample could be evaluated ({len(result.failed)} failed, "
                f"{sum(result.unmapped.values())} with labels the model lacks)"
            )
        if png is None:
            png = json_path.with_suffix(".png") if json_path is not None else Path(f"confusion-{dataset}.png")
        write_confusion_png(result, png)
        report = result.to_dict()
        report["model"] = str(model)
        report["confusion_png"] = str(png)
        if json_path is not None:
            json_path.parent.mkdir(parents=True, exist_ok=True)
            json_path.write_text(json.dumps(report, indent=1))
        typer.echo(f"{dataset}: n={result.n}  WA {result.weighted_accuracy:.4f}  UA {result.unweighted_accuracy:.4f}")
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
