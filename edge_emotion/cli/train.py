"""``edge-emotion train``: one training stage on one or more corpora (needs the ``train`` extra).

    edge-emotion train --preset edge --stage audio --dataset ravdess-audio --root ../shared/data/ravdess \\
        --config configs/edge.toml --out runs/audio-fold0 --fold 0
    torchrun --nproc_per_node 4 -m edge_emotion.cli train --preset paper --stage full --dataset ravdess --root DIR ...

``--dataset``/``--root`` may be repeated (paired in order) to mix corpora, e.g. the fusion stage's
``--dataset ravdess-audio --root A --dataset fer2013 --root B --dataset ravdess --root C``.
"""

from __future__ import annotations

import importlib.util
import json
import logging
import os
from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def train(
        dataset: list[str] = typer.Option(
            ...,
            "--dataset",
            help="Corpus (repeatable): ravdess(-audio), crema-d(-audio), iemocap(-audio), savee, emodb, fer2013.",
        ),
        root: list[Path] = typer.Option(
            ..., "--root", help="The corpus's folder (repeatable, paired with --dataset in order)."
        ),
        preset: str = typer.Option("edge", "--preset", help="Model preset: paper or edge."),
        visual_width: int | None = typer.Option(
            None,
            "--visual-width",
            help="Override the preset's face-encoder width (the ResNet-18's first stage's channels: 64 in "
            "the paper, 16 in the edge preset); the checkpoints and bundles made from it carry it.",
        ),
        stage: str = typer.Option("full", "--stage", help="visual, audio, fusion or full."),
        protocol: str = typer.Option(
            "actor-kfold", "--protocol", help="actor-kfold (speaker-independent) or random (80:20)."
        ),
        fold: int = typer.Option(0, "--fold", help="Test fold K of --protocol actor-kfold (0-based)."),
        config: Path | None = typer.Option(
            None, "--config", help="Training config TOML (configs/paper.toml, configs/edge.toml)."
        ),
        out: Path = typer.Option(
            Path("runs/train"), "--out", help="Run directory: checkpoints, metrics.csv, split.json, results.json."
        ),
        cache: Path | None = typer.Option(None, "--cache", help="Preprocessing cache folder (default: OUT/../cache)."),
        init: Path | None = typer.Option(
            None, "--init", help="Start from this checkpoint's weights (an earlier stage)."
        ),
        epochs: int | None = typer.Option(None, "--epochs", help="Override the config's epochs."),
        batch_size: int | None = typer.Option(None, "--batch-size", help="Override the config's batch size."),
        learning_rate: float | None = typer.Option(
            None, "--learning-rate", help="Override the config's starting learning rate (the cosine's top)."
        ),
        min_learning_rate: float | None = typer.Option(
            None, "--min-learning-rate", help="Override the config's final learning rate (the cosine's floor)."
        ),
        val_speakers: int | None = typer.Option(
            None,
            "--val-speakers",
            help="Override the config's validation speakers per corpus; 0: every non-test speaker trains and "
            "the last epoch is kept (a refit).",
        ),
        limit: int | None = typer.Option(None, "--limit", help="Use at most N samples per corpus (smoke runs)."),
        resume: bool = typer.Option(False, "--resume", help="Continue OUT/last.pt after an interruption."),
        device: str | None = typer.Option(None, "--device", help="cpu or cuda (default: cuda when available)."),
        progress: bool = typer.Option(True, "--progress/--no-progress", help="Progress bars."),
    ) -> None:
        """Train one stage of the model (see configs/*.toml) and keep the best epoch by validation UA."""
        from . import fail

        if importlib.util.find_spec("torch") is None:
            raise fail("training needs torch: pip install 'edge-emotion[train]'")
        if len(dataset) != len(root):
            raise fail(f"give one --root per --dataset (got {len(dataset)} datasets and {len(root)} roots)")
        from ..config import get_preset, with_visual_width
        from ..train.config import load_train_config
        from ..train.trainer import RunSpec
        from ..train.trainer import train as run_training

        try:
            preset_config = get_preset(preset)
        except ValueError as exc:
            raise fail(str(exc)) from None
        if visual_width is not None:
            if visual_width < 1:
                raise fail(f"--visual-width must be at least 1, got {visual_width}")
            preset_config = with_visual_width(preset_config, visual_width)
        train_config = load_train_config(
            config,
            stage,
            epochs=epochs,
            batch_size=batch_size,
            limit=limit,
            val_speakers=val_speakers,
            learning_rate=learning_rate,
            min_learning_rate=min_learning_rate,
        )
        logging.getLogger("edge_emotion").setLevel(logging.INFO)  # per-epoch lines are INFO
        spec = RunSpec(
            preset=preset_config,
            config=train_config,
            corpora=tuple(zip(dataset, root, strict=True)),
            out_dir=out,
            cache_dir=cache if cache is not None else out.parent / "cache",
            protocol=protocol,
            fold=fold,
            init=init,
            resume=resume,
            device=device,
            progress=progress,
        )
        result = run_training(spec)
        summary = {
            "best_checkpoint": str(result.best_checkpoint),
            "best_epoch": result.best_epoch,
            "best_val_ua": result.best_val_ua,
        }
        if result.test:
            summary["test_wa"] = result.test["weighted_accuracy"]
            summary["test_ua"] = result.test["unweighted_accuracy"]
        if os.environ.get("RANK", "0") == "0":  # one summary per torchrun job
            typer.echo(json.dumps(summary))
