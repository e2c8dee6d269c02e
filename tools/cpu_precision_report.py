"""What the CPU's instruction set does to the shipped bundle's numbers and speed — the measurements
behind BENCHMARKS.md §4. One run, one JSON; ratios are measured in one process with interleaved
calls, so that a busy machine slows every variant alike.

    python tools/cpu_precision_report.py --data ../shared/data --out runs/cpu-precision.json [--only NAME ...]

Measurements (``--only`` picks some):

- ``openvino-precision``: parity of the bundle's ``openvino`` and ``openvino-int8`` formats with
  f32 inference (what the SDK asks for) and with the CPU plugin's own default (bf16 on CPUs with
  AVX-512 BF16 or AMX).
- ``nncf-variants``: the OpenVINO INT8 visual encoder quantized with NNCF presets / bias
  correction / overflow fix variants, labels agreeing end to end on the calibration windows and on
  held-out windows.
- ``ort-reduce-range``: ONNX Runtime INT8 with 7-bit weights (``reduce_range``, the shipped choice
  for CPUs without VNNI) vs 8-bit: labels (visual and audio encoder) and visual encoder speed.
- ``threads``: the OpenVINO backend's per-thread InferRequest vs one request behind a lock.

Labels are compared with the bundle's FP32 ONNX graphs on ONNX Runtime (:class:`GraphReference`;
their own parity with PyTorch is in the manifest) on the calibration windows
``tools/requantize_openvino_int8.py`` builds (the shipped fold's training actors + FER2013 train),
and on held-out windows (the fold's test actors' speech + FER2013 public test faces, 128 of each).
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path

import numpy as np

REPO = Path(__file__).resolve().parents[1]
for entry in (REPO, REPO / "tools"):
    if str(entry) not in sys.path:
        sys.path.insert(0, str(entry))

MEASUREMENTS = ("openvino-precision", "nncf-variants", "ort-reduce-range", "threads")


def held_out_set(data: Path, preset, test_actors: list[str]):
    """128 speech windows of the fold's test actors and 128 FER2013 public test faces."""
    from edge_emotion.export.calibration import load_calibration

    with tempfile.TemporaryDirectory(prefix="held-out-") as work:
        folder = Path(work)
        for actor in test_actors:
            number = actor.rsplit("-", 1)[1]
            for path in sorted((data / "ravdess" / "audio16k" / f"Actor_{number}").glob("*.flac")):
                (folder / path.name).symlink_to(path.resolve())
        (folder / "public_test.zip").symlink_to((data / "fer2013" / "public_test.zip").resolve())
        return load_calibration(folder, preset, 128, 128)


def _summary(parity: dict, graph: str | None = None) -> dict:
    found = {
        "end_to_end_label_agreement": parity["end_to_end"]["label_agreement"],
        "max_abs_diff_logits": round(parity["end_to_end"]["max_abs_diff_logits"], 4),
        "inference_precision": parity["inference_precision"],
    }
    if graph is not None:
        found[f"{graph}_label_agreement"] = parity["graphs"][graph]["label_agreement"]
    return found


def ir_files(bundle, key: str, folder: Path) -> dict:
    """The OpenVINO IR graphs of format ``key`` as ``{graph: .xml path}`` with each ``.bin`` beside
    its ``.xml`` (a bundle's formats may share one ``.bin``: :meth:`Bundle.load_options`), copied
    into ``folder`` where they are shared."""
    import shutil

    from edge_emotion.model.formats import GRAPHS

    files = {}
    for graph in GRAPHS:
        xml = bundle.graph_path(key, graph)
        weights = bundle.load_options(key, graph, "openvino").get("weights_path")
        if weights is None:
            files[graph] = xml
            continue
        target = folder / key / xml.name
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(xml, target)
        shutil.copyfile(weights, target.with_suffix(".bin"))
        files[graph] = target
    return files


def openvino_precision(bundle, reference, sets: dict, threads: int) -> dict:
    """Parity with the SDK's explicit f32, and with the precision the CPU plugin picks by itself
    (read from the plugin: ``INFERENCE_PRECISION_HINT`` of the device before any compile)."""
    from edge_emotion._offline import keep_runtimes_offline

    keep_runtimes_offline()  # OpenVINO sends a usage event on import otherwise
    import edge_emotion.runtimes as runtimes
    import openvino as ov
    from edge_emotion.export.parity import measure_parity

    plugin_default = ov.Core().get_property("CPU", "INFERENCE_PRECISION_HINT").to_string()
    sdk_options = runtimes.format_options
    result: dict = {"cpu plugin default": plugin_default}

    def plugin_default_options(runtime: str, precision: str) -> dict:
        return {**sdk_options(runtime, precision), "inference_precision": plugin_default}

    with tempfile.TemporaryDirectory(prefix="ir-") as work:  # formats sharing a .bin, copied apart
        for key in ("openvino", "openvino-int8"):
            files = ir_files(bundle, key, Path(work))
            precision = bundle.format_info(key)["precision"]
            for mode, options in (
                ("sdk", sdk_options),
                ("plugin default", plugin_default_options),
            ):
                runtimes.format_options = options  # measure_parity's backends take their options from here
                try:
                    for name, windows in sets.items():
                        found = measure_parity(
                            reference, files, "openvino", windows, threads=threads, precision=precision
                        )
                        result[f"{key}, {mode}, {name}"] = _summary(found, "visual_encoder")
                finally:
                    runtimes.format_options = sdk_options
    return result


def nncf_variants(bundle, reference, calibration, sets: dict, threads: int) -> dict:
    from edge_emotion._offline import keep_runtimes_offline

    keep_runtimes_offline()  # OpenVINO and NNCF send usage events on import otherwise
    import nncf
    import openvino as ov
    from edge_emotion.export.parity import measure_parity
    from edge_emotion.export.quantize_onnx import calibration_batches
    from nncf.quantization.advanced_parameters import AdvancedQuantizationParameters, OverflowFix

    items = calibration_batches(reference, calibration, batch_size=1)["visual_encoder"]
    no_fix = AdvancedQuantizationParameters(overflow_fix=OverflowFix.DISABLE)
    variants = {
        "performance preset, full bias correction (shipped)": {
            "preset": nncf.QuantizationPreset.PERFORMANCE,
            "fast_bias_correction": False,
        },
        "performance preset, fast bias correction": {"preset": nncf.QuantizationPreset.PERFORMANCE},
        "performance preset, overflow fix off": {
            "preset": nncf.QuantizationPreset.PERFORMANCE,
            "advanced_parameters": no_fix,
        },
        "mixed preset": {"preset": nncf.QuantizationPreset.MIXED},
        "mixed preset, full bias correction": {"preset": nncf.QuantizationPreset.MIXED, "fast_bias_correction": False},
        "mixed preset, overflow fix off": {"preset": nncf.QuantizationPreset.MIXED, "advanced_parameters": no_fix},
    }
    result = {}
    with tempfile.TemporaryDirectory(prefix="nncf-variants-") as work:
        for i, (name, options) in enumerate(variants.items()):
            ir = ov.convert_model(str(bundle.graph_path("onnx", "visual_encoder")))
            quantized = nncf.quantize(ir, nncf.Dataset(items), subset_size=len(items), **options)
            target = Path(work) / str(i) / "visual_encoder.xml"
            ov.save_model(quantized, str(target), compress_to_fp16=False)
            files = {**ir_files(bundle, "openvino-int8", Path(work) / "shared"), "visual_encoder": target}
            for set_name, windows in sets.items():
                found = measure_parity(reference, files, "openvino", windows, threads=threads, precision="int8")
                result[f"{name}, {set_name}"] = _summary(found, "visual_encoder")
    return result


def _median_ms(sessions: dict, feed: dict, warmup: int, repeats: int) -> dict[str, float]:
    """Interleaved calls: each round runs every session once, in turn."""
    for session in sessions.values():
        for _ in range(warmup):
            session.run(None, feed)
    times: dict[str, list[float]] = {k: [] for k in sessions}
    for _ in range(repeats):
        for key, session in sessions.items():
            start = time.perf_counter()
            session.run(None, feed)
            times[key].append(time.perf_counter() - start)
    return {k: float(np.median(v)) * 1000.0 for k, v in times.items()}


def ort_reduce_range(bundle, reference, calibration, sets: dict, threads: int, repeats: int) -> dict:
    import onnxruntime as ort
    from edge_emotion.export.parity import measure_parity
    from edge_emotion.export.quantize_onnx import calibration_batches, quantize_graph

    from edge_emotion.model.formats import GRAPHS

    onnx_files = {g: bundle.graph_path("onnx", g) for g in GRAPHS}
    per_graph = calibration_batches(reference, calibration)  # batch 8, as quantize_onnx.export
    result: dict = {}
    quantized = {}
    with tempfile.TemporaryDirectory(prefix="reduce-range-") as work:
        for graph in ("visual_encoder", "audio_encoder"):
            for reduce_range in (True, False):
                path = Path(work) / f"{graph}-{int(reduce_range)}.onnx"
                quantize_graph(onnx_files[graph], path, per_graph[graph], reduce_range=reduce_range)
                quantized[(graph, reduce_range)] = path
                files = {**onnx_files, graph: path}
                bits = "7-bit" if reduce_range else "8-bit"
                for set_name, windows in sets.items():
                    found = measure_parity(reference, files, "onnxruntime", windows, threads=threads, precision="int8")
                    result[f"{graph} int8 {bits} weights, {set_name}"] = _summary(found, graph)

        def session(path: Path, intra: int):
            options = ort.SessionOptions()
            options.intra_op_num_threads, options.inter_op_num_threads = intra, 1
            return ort.InferenceSession(str(path), sess_options=options, providers=["CPUExecutionProvider"])

        feed = {"face": calibration.faces[:1]}
        for intra in sorted({1, threads}):
            sessions = {
                "fp32": session(onnx_files["visual_encoder"], intra),
                "int8 7-bit": session(quantized[("visual_encoder", True)], intra),
                "int8 8-bit": session(quantized[("visual_encoder", False)], intra),
            }
            ms = _median_ms(sessions, feed, warmup=20, repeats=repeats)
            result[f"visual_encoder speed, batch 1, {intra} thread(s)"] = {
                "p50_ms": {k: round(v, 4) for k, v in ms.items()},
                "8-bit time / 7-bit time": round(ms["int8 8-bit"] / ms["int8 7-bit"], 3),
                "fp32 time / 7-bit time": round(ms["fp32"] / ms["int8 7-bit"], 3),
                "fp32 time / 8-bit time": round(ms["fp32"] / ms["int8 8-bit"], 3),
            }
    return result


def thread_cost(bundle, calibration, repeats: int) -> dict:
    from edge_emotion.runtimes import load_backend

    face = calibration.faces[:1]
    path = bundle.graph_path("openvino", "visual_encoder")
    result: dict = {}
    for intra in (1, 2):
        backend = load_backend("openvino", path, threads=intra, precision="fp32")
        lock, shared = threading.Lock(), backend.compiled.create_infer_request()

        def locked(face=face, lock=lock, shared=shared):
            with lock:
                return shared.infer({"face": face})

        variants = {
            "per-thread request (the backend)": lambda b=backend: b.run({"face": face}),
            "one request + lock": locked,
        }
        for _ in range(2):  # twice, alternating, so that a burst of load does not favour one variant
            for name, call in variants.items():
                for n_threads in (1, 3):
                    for _ in range(20):
                        call()
                    barrier = threading.Barrier(n_threads)

                    def work(call=call, barrier=barrier):
                        barrier.wait()
                        for _ in range(repeats):
                            call()

                    workers = [threading.Thread(target=work) for _ in range(n_threads)]
                    start = time.perf_counter()
                    for worker in workers:
                        worker.start()
                    for worker in workers:
                        worker.join()
                    per_call = (time.perf_counter() - start) / (repeats * n_threads) * 1000.0
                    key = f"{intra} intra-op thread(s), {n_threads} calling thread(s), {name}: wall ms per call"
                    result.setdefault(key, []).append(round(per_call, 4))
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--bundle", type=Path, default=REPO / "edge_emotion" / "models" / "default")
    parser.add_argument("--data", type=Path, default=REPO.parent / "shared" / "data")
    parser.add_argument("--config", type=Path, default=REPO / "configs" / "edge.toml")
    parser.add_argument("--out", type=Path, default=Path("runs/cpu-precision.json"))
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=300, help="timed calls per variant")
    parser.add_argument("--only", action="append", choices=MEASUREMENTS)
    args = parser.parse_args()

    import requantize_openvino_int8 as requantize
    from edge_emotion.export.bundle_writer import tool_versions
    from edge_emotion.export.calibration import load_calibration
    from edge_emotion.export.reference import GraphReference

    from edge_emotion.bench.machine import machine_record
    from edge_emotion.model.bundle import Bundle
    from edge_emotion.model.formats import GRAPHS

    wanted = args.only or list(MEASUREMENTS)
    bundle = Bundle.load(args.bundle)
    reference = GraphReference(
        bundle.preset,
        {g: bundle.graph_path("onnx", g) for g in GRAPHS},
        "onnx fp32 on onnxruntime",
        threads=args.threads,
        short_name="onnx fp32",
    )
    speech, left_out = requantize.training_actors(args.data, args.config, 0)
    with tempfile.TemporaryDirectory(prefix="calib-") as work:
        calibration = load_calibration(
            requantize.calibration_dir(args.data, speech, Path(work) / "calib"), bundle.preset, 128, 128
        )
    test_actors = [a for a in left_out if a in ("ravdess-06", "ravdess-11", "ravdess-16", "ravdess-18")]
    sets = {"calibration windows": calibration, "held-out windows": held_out_set(args.data, bundle.preset, test_actors)}
    report: dict = {"machine": machine_record(), "tool_versions": tool_versions(), "threads": args.threads}
    if "openvino-precision" in wanted:
        report["openvino-precision"] = openvino_precision(bundle, reference, sets, args.threads)
    if "nncf-variants" in wanted:
        report["nncf-variants"] = nncf_variants(bundle, reference, calibration, sets, args.threads)
    if "ort-reduce-range" in wanted:
        report["ort-reduce-range"] = ort_reduce_range(bundle, reference, calibration, sets, args.threads, args.repeats)
    if "threads" in wanted:
        report["threads"] = thread_cost(bundle, calibration, args.repeats)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=1) + "\n", encoding="utf-8")
    print(json.dumps(report, indent=1))


if __name__ == "__main__":
    main()
