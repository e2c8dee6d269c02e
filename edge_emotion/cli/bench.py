"""``edge-emotion bench``: per-stage latency, real-time factor, memory, size, accuracy and status of
every runtime and precision of a bundle on this machine, as a table and as JSON."""

from __future__ import annotations

from pathlib import Path

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def bench(
        model: Path | None = typer.Option(None, "--model", help="A bundle directory (default: the shipped model)."),
        backend: str = typer.Option(
            "auto",
            "--backend",
            help="auto (every runtime each format lists), onnxruntime, openvino, tensorrt or torch.",
        ),
        json_path: Path | None = typer.Option(None, "--json", help="Write the rows as a JSON list here."),
        data: Path | None = typer.Option(None, "--data", help="A corpus folder: report the accuracy on it."),
        dataset: str | None = typer.Option(
            None, "--dataset", help="The corpus of --data (as edge-emotion eval names it)."
        ),
        data_limit: int | None = typer.Option(
            None, "--data-limit", help="Use at most N samples of --data, spread over it."
        ),
        clip: Path | None = typer.Option(None, "--clip", help="Media file for the end-to-end real-time factor."),
        threads: int | None = typer.Option(None, "--threads", help="Runtime threads (default: the CPUs available)."),
        repeats: int = typer.Option(100, "--repeats", help="Timed calls per stage."),
        warmup: int = typer.Option(
            10, "--warmup", help="Untimed calls per stage first (and one untimed pass of the clip)."
        ),
        rtf_runs: int = typer.Option(3, "--rtf-runs", help="Timed passes over the clip for the real-time factor."),
        formats: list[str] | None = typer.Option(None, "--format", help="Only this format key (repeatable)."),
    ) -> None:
        """Measure each runtime and precision of a bundle: stage latencies, real-time factor, peak memory, size."""
        from rich.console import Console

        from ..bench import BenchConfig, print_report, run_bench, write_json
        from ..info import default_bundle_path
        from . import fail

        if model is None:
            model = default_bundle_path()
            if model is None:
                raise fail("no --model given and this install ships no default bundle yet: pass --model BUNDLE")
        config = BenchConfig(
            clip=clip,
            threads=threads,
            warmup=warmup,
            repeats=repeats,
            rtf_runs=rtf_runs,
            formats=tuple(formats) if formats else None,
            data=data,
            dataset=dataset,
            data_limit=data_limit,
        )
        console = Console(stderr=True)
        status = console.status("", spinner="dots")

        def starting(key: str, runtime: str, index: int, total: int) -> None:
            status.update(f"bench {index}/{total}: {key} on {runtime} ...")

        def done(row) -> None:
            console.print(f"{row.format} on {row.runtime}: {row.status}", style="dim", markup=False, highlight=False)

        with status:
            rows = run_bench(model, backend=backend, config=config, on_row=done, on_start=starting)
        out = Console()
        if not out.is_terminal:  # a pipe or a file: the width the report is laid out for
            out = Console(width=100)
        print_report(out, rows, title=f"edge-emotion bench: {model}")
        if json_path is not None:
            write_json(rows, json_path)
            out.print(f"JSON: {json_path}", markup=False, highlight=False)
