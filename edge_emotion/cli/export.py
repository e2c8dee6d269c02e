"""``edge-emotion export --checkpoint CKPT --format onnx|openvino|tensorrt [--fp16] [--int8 --calib DIR] --out BUNDLE``.

The choices come from the format table (:data:`edge_emotion.model.formats.FORMATS`); the work is
:func:`edge_emotion.export.exporter.export_checkpoint`. Needs the ``export`` extra (torch, onnx,
openvino, nncf); ``--format tensorrt`` runs on the target GPU, where TensorRT is installed.
"""

from __future__ import annotations

from pathlib import Path

import typer

from ..errors import EdgeEmotionError
from ..model.bundle import read_manifest


def register(app: typer.Typer) -> None:
    @app.command()
    def export(
        checkpoint: Path = typer.Option(..., "--checkpoint", help="Training checkpoint (.pt)."),
        formats: list[str] = typer.Option(
            ..., "--format", help="onnx, openvino or tensorrt (or an exact format key); repeat for several."
        ),
        out: Path = typer.Option(..., "--out", help="Bundle directory to write (absent or empty)."),
        fp16: bool = typer.Option(False, "--fp16", help="Also write the FP16 variant (OpenVINO IR, TensorRT)."),
        int8: bool = typer.Option(False, "--int8", help="Also write the INT8 variant; needs --calib."),
        calib: Path | None = typer.Option(
            None,
            "--calib",
            help="Real speech (wav/flac/mp3) and face crops (images or zips) for INT8 calibration and parity.",
        ),
        eval_dir: Path | None = typer.Option(
            None, "--eval", help="Labelled speech/face crops: record the accuracy of each format."
        ),
        max_windows: int = typer.Option(
            128, "--max-windows", min=1, help="At most this many audio windows and faces from --calib/--eval."
        ),
        threads: int = typer.Option(2, "--threads", min=1, help="Runtime threads for the parity checks."),
        static_batch: int | None = typer.Option(
            None, "--static-batch", min=1, help="TensorRT: fix the batch axis to this size."
        ),
        overwrite: bool = typer.Option(False, "--overwrite", help="Replace a bundle already at --out."),
    ) -> None:
        """Export a checkpoint into a bundle: ONNX (always), plus OpenVINO IR or TensorRT engines,
        with FP16/INT8 variants, each checked against the PyTorch model and recorded in the manifest."""
        from . import fail

        if not checkpoint.is_file():
            raise fail(f"checkpoint {checkpoint} does not exist")
        if int8 and calib is None:
            raise fail("--int8 needs --calib DIR (real speech and face crops to calibrate on)")
        for directory, option in ((calib, "--calib"), (eval_dir, "--eval")):
            if directory is not None and not directory.is_dir():
                raise fail(f"{option} {directory} is not a directory")
        try:
            from ..export.exporter import ExportSettings, export_checkpoint, needs_calibration, select_formats
        except ImportError as exc:
            raise fail(
                f"export needs the 'export' extra ({exc.name} is missing): pip install 'edge-emotion[export]'"
            ) from None
        keys = select_formats(formats, fp16=fp16, int8=int8)
        if needs_calibration(keys) and calib is None:
            raise fail(f"{', '.join(k for k in keys if k.endswith('int8'))} needs --calib DIR")
        options = {}
        if static_batch is not None:
            from ..export.tensorrt_export import EngineOptions

            options["engine_options"] = EngineOptions(max_batch=static_batch, static_batch=static_batch)
        try:
            bundle = export_checkpoint(
                checkpoint,
                out,
                keys,
                calib_dir=calib,
                eval_dir=eval_dir,
                max_windows=max_windows,
                settings=ExportSettings(threads=threads, overwrite=overwrite, export_options=options),
            )
        except EdgeEmotionError as exc:  # one line, even when a library's message spans several
            raise fail(str(exc).strip().splitlines()[0]) from None
        manifest = read_manifest(bundle)
        typer.echo(f"wrote {bundle}")
        for key in keys:
            entry = manifest["formats"][key]
            size_mb = (
                sum(g["bytes"] + sum(c["bytes"] for c in g.get("companions", ())) for g in entry["graphs"].values())
                / 1e6
            )
            agreement = entry.get("parity", {}).get("end_to_end", {}).get("label_agreement")
            shown = "-" if agreement is None else f"{agreement:.1%}"
            typer.echo(f"  {key:<15} {entry['precision']:<5} {size_mb:7.2f} MB  labels agree with PyTorch: {shown}")
