"""Bench the ``edge`` and ``paper`` presets: what the small shipped model and the full paper model
cost on this machine, in every format this machine can export.

    python tools/bench_presets.py --out bench-results [--threads 2] [--presets edge paper]

For each preset: a fresh, seeded model whose BatchNorm statistics are re-estimated on real windows
(so activations have a trained model's ranges; the weights are not trained) is exported with
``export_model`` into ``OUT/<preset>/bundle`` with the formats of the format table that this
machine can produce (onnx, onnx-int8, openvino, openvino-fp16, openvino-int8), INT8 calibrated on
real windows from ../shared/data (RAVDESS speech of actors 1-10, FER2013 ``train.zip`` faces). Then
``edge-emotion bench`` runs on it (``OUT/<preset>/bench.json``), and two of the project's targets are
measured, not asserted:

- the INT8 encoders' speedup over FP32 on the same runtime (p50 of the bench's encoder stages:
  onnx -> onnx-int8 on ONNX Runtime, openvino -> openvino-int8 on OpenVINO);
- the agreement of the INT8 formats' labels with the FP32 PyTorch model on *held-out* real windows
  (RAVDESS actors 11-20, FER2013 ``public_test.zip``), end to end
  (:func:`edge_emotion.export.parity.measure_parity`).

Writes ``OUT/summary.json`` and ``OUT/BENCHMARKS-presets.md`` (the tables, the machine, the
command). Needs the ``export`` extra (torch, onnx, openvino, nncf). Run it on a quiet machine:
timings taken while other work runs are not worth publishing.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import shlex
import sys
import tempfile
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
#: (FP32 format, INT8 format, runtime) pairs whose encoder speedup is reported.
INT8_PAIRS: tuple[tuple[str, str, str], ...] = (
    ("onnx", "onnx-int8", "onnxruntime"),
    ("openvino", "openvino-int8", "openvino"),
)
ENCODERS = ("visual_encoder", "audio_encoder")
log = logging.getLogger("bench_presets")


def default_data_root() -> Path | None:
    env = os.environ.get("EDGE_EMOTION_DATA")
    for path in ([Path(env)] if env else []) + [REPO_ROOT.parent / "shared" / "data"]:
        if path.is_dir():
            return path
    return None


def local_formats() -> list[str]:
    """The format table's rows this machine can export (the torch reference left out)."""
    from edge_emotion.model.formats import FORMATS

    return [k for k, spec in FORMATS.items() if spec.exportable_here and spec.layout != "torch-export"]


def real_windows_dir(data_root: Path, out: Path, actors: range, faces_zip: str) -> Path:
    """A folder of links: RAVDESS speech of ``actors`` and one FER2013 zip, for ``load_calibration``."""
    out.mkdir(parents=True, exist_ok=True)
    for actor in actors:  # links to files: the calibration reader's rglob does not enter linked folders
        for source in sorted((data_root / "ravdess" / "audio16k" / f"Actor_{actor:02d}").glob("*.flac")):
            (out / source.name).symlink_to(source)
    (out / faces_zip).symlink_to(data_root / "fer2013" / faces_zip)
    return out


def calibrated_model(preset: str, calibration, seed: int = 0):
    """``build_model(preset)``, seeded, with BatchNorm statistics re-estimated on real windows
    (as tests/test_export_formats.py does)."""
    import torch
    from edge_emotion.train.model import build_model

    torch.manual_seed(seed)
    model = build_model(preset)
    model.train()
    with torch.no_grad():
        for _ in range(3):
            for start in range(0, max(calibration.n_faces, calibration.n_audio), 16):
                if start < calibration.n_faces:
                    model.visual(torch.from_numpy(calibration.faces[start : start + 16]))
                if start < calibration.n_audio:
                    model.audio(torch.from_numpy(calibration.log_mel[start : start + 16]))
    return model.eval()


def encoder_speedups(rows) -> list[dict[str, Any]]:
    """FP32 p50 / INT8 p50 per encoder, for each pair of :data:`INT8_PAIRS` both benched ok."""
    by_key = {(r.format, r.runtime): r for r in rows if r.status in ("ok", "exported but failed validation")}
    found = []
    for fp32, int8, runtime in INT8_PAIRS:
        a, b = by_key.get((fp32, runtime)), by_key.get((int8, runtime))
        if a is None or b is None:
            continue
        entry: dict[str, Any] = {"runtime": runtime, "fp32": fp32, "int8": int8}
        for stage in ENCODERS:
            entry[stage] = {
                "fp32_p50_ms": a.stages[stage].p50_ms,
                "int8_p50_ms": b.stages[stage].p50_ms,
                "speedup": round(a.stages[stage].p50_ms / b.stages[stage].p50_ms, 2),
            }
        found.append(entry)
    return found


def held_out_agreement(model, bundle_dir: Path, keys: list[str], held_out, threads: int) -> dict[str, Any]:
    """End-to-end and per-encoder label agreement with FP32 PyTorch on held-out windows."""
    from edge_emotion.export.exporter import parity_runtime
    from edge_emotion.export.parity import measure_parity

    from edge_emotion.model.bundle import Bundle
    from edge_emotion.model.formats import GRAPHS

    bundle = Bundle.load(bundle_dir)
    report = {}
    for key in keys:
        runtime = parity_runtime(key)
        if runtime is None:
            continue
        parity = measure_parity(
            model,
            {g: bundle.graph_path(key, g) for g in GRAPHS},
            runtime,
            held_out,
            threads=threads,
            precision=bundle.format_info(key)["precision"],
        )
        report[key] = {
            "runtime": runtime,
            "end_to_end_label_agreement": parity["end_to_end"]["label_agreement"],
            "visual_encoder_label_agreement": parity["graphs"].get("visual_encoder", {}).get("label_agreement"),
            "audio_encoder_label_agreement": parity["graphs"].get("audio_encoder", {}).get("label_agreement"),
            "windows": parity["end_to_end"]["windows"],
        }
    return report


def bench_preset(preset: str, args: argparse.Namespace, data_root: Path, work: Path) -> dict[str, Any]:
    from edge_emotion.export.calibration import load_calibration
    from edge_emotion.export.exporter import ExportSettings, export_model

    from edge_emotion.bench import BenchConfig, markdown_table, run_bench, write_json
    from edge_emotion.config import get_preset

    config = get_preset(preset)
    calib_dir = real_windows_dir(data_root, work / f"{preset}-calib", range(1, 11), "train.zip")
    held_dir = real_windows_dir(data_root, work / f"{preset}-held-out", range(11, 21), "public_test.zip")
    log.info("%s: reading real windows", preset)
    calibration = load_calibration(calib_dir, config, args.windows, args.windows)
    held_out = load_calibration(held_dir, config, args.windows, args.windows)
    model = calibrated_model(preset, calibration, args.seed)
    keys = args.formats or local_formats()
    log.info("%s: exporting %s", preset, ", ".join(keys))
    bundle_dir = export_model(
        model,
        args.out / preset / "bundle",
        keys,
        calibration=calibration,
        provenance={
            "training_data": f"none: fresh weights (seed {args.seed}), BatchNorm statistics from real windows",
            "calibration_data": {"directory": "RAVDESS actors 1-10 + FER2013 train.zip", **calibration.summary()},
            "command": "tools/bench_presets.py",
        },
        settings=ExportSettings(threads=args.threads, overwrite=True),
    )
    log.info("%s: label agreement on held-out windows", preset)
    agreement = held_out_agreement(model, bundle_dir, keys, held_out, args.threads)
    log.info("%s: bench", preset)
    rows = run_bench(
        bundle_dir,
        backend="auto",
        config=BenchConfig(clip=args.clip, threads=args.threads, warmup=args.warmup, repeats=args.repeats),
        on_row=lambda row: log.info("%s: %s on %s: %s", preset, row.format, row.runtime, row.status),
    )
    write_json(rows, args.out / preset / "bench.json")
    return {
        "preset": preset,
        "bundle": str(bundle_dir),
        "rows": [row.to_dict() for row in rows],
        "markdown": markdown_table(rows),
        "int8_encoder_speedup": encoder_speedups(rows),
        "int8_label_agreement_held_out": {k: v for k, v in agreement.items() if k.endswith("int8")},
        "label_agreement_held_out": agreement,
        "held_out_windows": held_out.summary(),
    }


def markdown(results: list[dict[str, Any]], machine: str, command: str) -> str:
    lines = [
        "# edge-emotion bench: the edge and paper presets",
        "",
        f"Machine: {machine}. Command: `{command}`.",
        "",
        "Weights are fresh (seeded, BatchNorm statistics re-estimated on real windows), not trained: the",
        "latencies, sizes and memory are those of the real architectures; the label agreements are of an",
        "untrained model, whose logits lie close together, so they are expected to understate a trained",
        "model's (the targets: INT8 encoders >= 2x faster than FP32, labels agreeing on >= 97% of",
        "real windows).",
        "",
    ]
    for result in results:
        lines += [f"## {result['preset']}", "", result["markdown"], "### INT8 encoders vs FP32 (p50)", ""]
        lines += ["| runtime | formats | visual encoder speedup | audio encoder speedup |", "|---|---|---|---|"]
        for s in result["int8_encoder_speedup"]:
            cells = [
                f"{s[g]['fp32_p50_ms']:.2f} -> {s[g]['int8_p50_ms']:.2f} ms ({s[g]['speedup']:.2f}x)" for g in ENCODERS
            ]
            lines.append(f"| {s['runtime']} | {s['fp32']} -> {s['int8']} | {cells[0]} | {cells[1]} |")
        lines += ["", "### Labels vs FP32 PyTorch on held-out real windows", ""]
        lines += ["| format | runtime | end to end | via visual encoder | via audio encoder |", "|---|---|---|---|---|"]
        for key, a in result["label_agreement_held_out"].items():
            pct = [
                "-" if v is None else f"{v:.1%}"
                for v in (
                    a["end_to_end_label_agreement"],
                    a["visual_encoder_label_agreement"],
                    a["audio_encoder_label_agreement"],
                )
            ]
            lines.append(f"| {key} | {a['runtime']} | {pct[0]} | {pct[1]} | {pct[2]} |")
        lines.append("")
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, required=True, help="Folder for the bundles, JSON and markdown.")
    parser.add_argument("--presets", nargs="+", default=["edge", "paper"])
    parser.add_argument("--formats", nargs="+", default=None, help="Format keys (default: all exportable here).")
    parser.add_argument("--data-root", type=Path, default=None, help="../shared/data (default: found beside the repo).")
    parser.add_argument("--windows", type=int, default=64, help="Real audio windows and faces, each, per set.")
    parser.add_argument("--threads", type=int, default=None, help="Runtime threads (default: the CPUs available).")
    parser.add_argument("--repeats", type=int, default=100)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--clip", type=Path, default=None, help="Clip for the real-time factor (default: bench's).")
    parser.add_argument("--seed", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s: %(message)s")
    data_root = args.data_root or default_data_root()
    if data_root is None or not (data_root / "ravdess").is_dir() or not (data_root / "fer2013").is_dir():
        parser.error("real data not found: pass --data-root (../shared/data with ravdess/ and fer2013/)")
    from edge_emotion.bench import default_threads, machine_description

    args.threads = args.threads or default_threads()
    args.out.mkdir(parents=True, exist_ok=True)
    results = []
    with tempfile.TemporaryDirectory(prefix="bench-presets-") as work:
        for preset in args.presets:
            results.append(bench_preset(preset, args, data_root, Path(work)))
    machine = machine_description()
    command = shlex.join(
        [Path(sys.argv[0]).name if argv is None else "bench_presets.py", *(sys.argv[1:] if argv is None else argv)]
    )
    summary = {"machine": machine, "command": command, "threads": args.threads, "presets": results}
    (args.out / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    (args.out / "BENCHMARKS-presets.md").write_text(markdown(results, machine, command), encoding="utf-8")
    log.info("wrote %s and %s", args.out / "summary.json", args.out / "BENCHMARKS-presets.md")
    return 0


if __name__ == "__main__":
    sys.exit(main())
