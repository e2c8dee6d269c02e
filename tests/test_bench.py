"""``edge-emotion bench`` on a tiny fake bundle: the JSON rows and their schema, the status of each
row (ok, a tampered parity -> "exported but failed validation", a broken graph -> "failed", a
runtime that is not installed -> "skipped"), the accuracy metric through ``--data``, the table,
and bad input as one line on stderr with exit code 2.

Timings are never checked (the machine is shared): only that they are there and well formed. The
bench runs with 2 timed calls per stage and no warm-up to stay quick.
"""

from __future__ import annotations

import dataclasses
import json
import shutil
import subprocess
import sys
from pathlib import Path

import clitools
import pytest
from clitools import assert_one_line_error
from edge_emotion.runtimes import is_available
from media import SAMPLE_CLIP

from edge_emotion.bench import (
    FAILED,
    FAILED_VALIDATION,
    OK,
    SKIPPED,
    STAGES,
    VALIDATION_BOUNDS,
    BenchConfig,
    BenchRow,
    StageTiming,
    check_parity,
    plan_rows,
)
from edge_emotion.bench.machine import cpu_features
from edge_emotion.errors import BackendError, BundleError, InputError
from edge_emotion.model.bundle import Bundle
from edge_emotion.model.formats import GRAPHS

SAMPLE = SAMPLE_CLIP
OPENVINO = is_available("openvino")  # the 'openvino' extra; the device install has only ONNX Runtime
FAST = ("--repeats", "2", "--warmup", "0", "--rtf-runs", "1", "--threads", "1")
ROW_KEYS = {"runtime", "precision", "status", "size_mb", "stages", "rtf", "peak_rss_mb", "metric"}
EXTRA_KEYS = {
    "format",
    "threads",
    "device",
    "error",
    "validation",
    "machine",
    "metric_info",
    "cpu_isa",
    "inference_precision",
    "parity",
}
PASSING_PARITY = {
    "reference": "the same graphs",
    "runtime": "onnxruntime",
    "inputs": "real windows: written for the test",
    "graphs": {},
    "end_to_end": {"label_agreement": 1.0, "max_abs_diff_logits": 0.0},
}
TAMPERED_PARITY = {
    "reference": "pytorch fp32",
    "runtime": "onnxruntime",
    "inputs": "real windows: tampered for the test",
    "graphs": {},
    "end_to_end": {"label_agreement": 0.5, "max_abs_diff_logits": 0.01},
}


def cli(*args: str, timeout: int = 300) -> subprocess.CompletedProcess:
    return clitools.cli("bench", *args, timeout=timeout)


def _junk_graphs(folder: Path, suffixes: tuple[str, ...]) -> dict[str, Path]:
    folder.mkdir(parents=True)
    files = {}
    for graph in GRAPHS:
        for suffix in suffixes:
            (folder / f"{graph}{suffix}").write_bytes(b"this is not a graph\n" * 256)
        files[graph] = folder / f"{graph}{suffixes[0]}"
    return files


@pytest.fixture(scope="module")
def bundle(tmp_path_factory) -> Path:
    """A fake edge bundle with four formats: ``onnx`` (real graphs, a parity record in bounds),
    ``onnx-int8`` (the same graphs with a parity out of bounds), ``openvino`` (graph files that are
    not graphs, hashes matching) and ``tensorrt-fp16`` (engine files for a runtime not installed here)."""
    pytest.importorskip("onnx", reason="the fake bundle is written with onnx (export extra)")
    from edge_emotion.export.bundle_writer import add_format
    from fakes import make_onnx_bundle

    root = tmp_path_factory.mktemp("bench")
    path = make_onnx_bundle(root, preset="edge", seed=0)
    loaded = Bundle.load(path)
    add_format(path, "onnx", {g: loaded.graph_path("onnx", g) for g in GRAPHS}, {"parity": PASSING_PARITY})
    add_format(path, "onnx-int8", {g: loaded.graph_path("onnx", g) for g in GRAPHS}, {"parity": TAMPERED_PARITY})
    add_format(path, "openvino", _junk_graphs(root / "junk-ir", (".xml", ".bin")))
    add_format(path, "tensorrt-fp16", _junk_graphs(root / "junk-engine", (".engine",)))
    return path


@pytest.fixture(scope="module")
def data_dir(tmp_path_factory) -> Path:
    """A one-clip corpus laid out like CREMA-D: the package's sample clip remuxed into FLV under a
    CREMA-D file name (actor 1001, happy), so that the adapter reads it."""
    from media import remux

    root = tmp_path_factory.mktemp("crema-d")
    remux(SAMPLE, root / "1001_DFA_HAP_XX.flv")
    return root


@pytest.fixture(scope="module")
def bench_run(bundle, data_dir, tmp_path_factory):
    """One ``edge-emotion bench`` over every row of the bundle, with ``--json`` and ``--data``."""
    if is_available("tensorrt"):
        pytest.skip("tensorrt is installed: the row of a runtime that is missing cannot be seen")
    out = tmp_path_factory.mktemp("bench-out") / "rows.json"
    proc = cli(
        "--model",
        str(bundle),
        "--json",
        str(out),
        "--data",
        str(data_dir),
        "--dataset",
        "crema-d",
        "--clip",
        str(SAMPLE),
        *FAST,
    )
    assert proc.returncode == 0, proc.stderr
    return proc, json.loads(out.read_text())


def _row(rows: list[dict], fmt: str, runtime: str) -> dict:
    found = [r for r in rows if r["format"] == fmt and r["runtime"] == runtime]
    assert len(found) == 1, [(r["format"], r["runtime"]) for r in rows]
    return found[0]


def test_json_rows_follow_the_schema(bench_run):
    _, rows = bench_run
    assert [(r["format"], r["runtime"]) for r in rows] == [
        ("onnx", "onnxruntime"),
        ("onnx", "openvino"),
        ("onnx-int8", "onnxruntime"),
        ("openvino", "openvino"),
        ("tensorrt-fp16", "tensorrt"),
    ]
    for row in rows:
        assert ROW_KEYS <= set(row) <= ROW_KEYS | EXTRA_KEYS, set(row) ^ ROW_KEYS
        assert set(row["stages"]) == set(STAGES)
        assert row["size_mb"] > 0 and row["threads"] == 1
        assert row["status"] in (OK, FAILED_VALIDATION, FAILED, SKIPPED)
    for row in rows:
        if row["status"] in (OK, FAILED_VALIDATION):
            for stage in STAGES:
                timing = row["stages"][stage]
                assert set(timing) == {"p50_ms", "p95_ms"}
                assert 0 < timing["p50_ms"] <= timing["p95_ms"]
            assert row["rtf"] > 0 and row["peak_rss_mb"] > 50
            assert row["error"] is None and row["device"]
    assert _row(rows, "onnx", "onnxruntime")["inference_precision"] == "as stored"
    if OPENVINO:
        assert _row(rows, "onnx", "openvino")["inference_precision"] == "f32"  # never the plugin's bf16 default
    assert _row(rows, "tensorrt-fp16", "tensorrt")["inference_precision"] is None  # not loaded
    assert rows[0]["cpu_isa"] == list(cpu_features())


def test_statuses_ok_failed_validation_failed_and_skipped(bench_run):
    _, rows = bench_run
    assert _row(rows, "onnx", "onnxruntime")["status"] == OK
    assert _row(rows, "onnx", "openvino")["status"] == (OK if OPENVINO else SKIPPED)
    assert "labels agree on 100.0%" in _row(rows, "onnx", "onnxruntime")["validation"]

    tampered = _row(rows, "onnx-int8", "onnxruntime")
    assert tampered["status"] == FAILED_VALIDATION
    assert "50.0% < 97%" in tampered["validation"]
    assert tampered["rtf"] > 0  # still measured: its cost stays visible

    broken = _row(rows, "openvino", "openvino")
    if OPENVINO:
        assert broken["status"] == FAILED
        assert broken["error"].startswith("load:") and broken["rtf"] is None
        assert broken["stages"]["visual_encoder"] is None and broken["stages"]["face"] is not None
    else:  # the device install: no openvino, so the junk IR is never loaded
        assert broken["status"] == SKIPPED and "edge-emotion[openvino]" in broken["error"]

    missing = _row(rows, "tensorrt-fp16", "tensorrt")
    assert missing["status"] == SKIPPED
    assert "tensorrt is not installed" in missing["error"] and "edge-emotion[tensorrt]" in missing["error"]
    assert all(t is None for t in missing["stages"].values()) and missing["rtf"] is None


def test_front_end_stages_are_measured_once_and_shared(bench_run):
    _, rows = bench_run
    ran = [r for r in rows if r["status"] in (OK, FAILED_VALIDATION, FAILED)]
    assert len(ran) == (4 if OPENVINO else 2)
    for stage in ("face", "log_mel"):
        assert len({json.dumps(r["stages"][stage]) for r in ran}) == 1


def test_metric_is_the_accuracy_on_data(bench_run):
    _, rows = bench_run
    row = _row(rows, "onnx", "onnxruntime")
    assert row["metric"] in (0.0, 1.0)
    info = row["metric_info"]
    assert info["name"] == "weighted_accuracy" and info["dataset"] == "crema-d" and info["n"] == 1
    assert _row(rows, "tensorrt-fp16", "tensorrt")["metric"] is None


def test_table_on_screen(bench_run):
    proc, _ = bench_run
    for word in ("runtime", "precision", "RTF", "RSS MB", "onnxruntime", "tensorrt-fp16", "skipped", "visual enc"):
        assert word in proc.stdout, word
    assert ("openvino on openvino: failed: load:" if OPENVINO else "openvino on openvino: skipped") in proc.stdout
    if OPENVINO:
        assert "fp32 (f32)" in proc.stdout  # the OpenVINO row names the precision it computed in
    assert max(len(line) for line in proc.stdout.splitlines()) <= 100
    assert "edge-emotion[tensorrt]" in " ".join(proc.stdout.split())  # the install hint, not eaten as markup
    for fmt, runtime in (("onnx", "onnxruntime"), ("tensorrt-fp16", "tensorrt")):  # progress while rows run
        assert f"{fmt} on {runtime}: " in proc.stderr, proc.stderr


PARITY_100 = {"reference": "onnx on onnxruntime", "faces": 40, "label_agreement": 1.0, "max_abs_diff_logits": 123.456}


def _report_rows() -> list[BenchRow]:
    slow = {stage: StageTiming(123.456, 987.654, 100) for stage in STAGES}
    common = {"threads": 2, "machine": "a CPU with a long model name, 64 CPUs, Linux x86_64, Python 3.11.7"}
    return [
        BenchRow(
            runtime="onnxruntime",
            format="onnx",
            precision="fp32",
            status=OK,
            size_mb=1234.5,
            stages=slow,
            rtf=12.345,
            peak_rss_mb=12345.0,
            metric=0.5,
            inference_precision="as stored",
            isa=("avx2", "avx512f", "avx512_vnni", "avx512_bf16", "amx_tile", "amx_int8", "amx_bf16"),
            **common,
        ),
        BenchRow(
            runtime="openvino",
            format="openvino-int8",
            precision="int8",
            status=FAILED_VALIDATION,
            size_mb=2.2,
            stages=slow,
            rtf=1.5,
            peak_rss_mb=1345.0,
            metric=0.5,
            inference_precision="bf16",
            validation="labels agree on 96.1% < 97% (int8 bounds, real windows, end to end)",
            parity=PARITY_100,
            **common,
        ),
        BenchRow(
            runtime="openvino",
            format="openvino-fp16",
            precision="fp16",
            status=SKIPPED,
            size_mb=2.0,
            error="openvino is not installed here (install it with: pip install 'edge-emotion[openvino]')",
            **common,
        ),
    ]


def test_report_fits_100_columns_and_prints_notes_as_plain_text():
    from rich.console import Console

    from edge_emotion.bench import print_report

    console = Console(width=100, record=True)
    print_report(console, _report_rows(), title="edge-emotion bench: /a/bundle/[with brackets]")
    text = console.export_text()
    assert max(len(line) for line in text.splitlines()) <= 100, text
    assert "…" not in text, text  # no cell cut short to fit
    flat = " ".join(text.split())
    assert "pip install 'edge-emotion[openvino]'" in flat, text  # [openvino] is not read as markup
    assert "/a/bundle/[with brackets]" in flat
    for word in ("openvino-int8", "openvino-fp16", "int8 (bf16)", "failed validation", "123/988", "amx_int8", "100.0"):
        assert word in text, word
    assert "labels agree on 96.1% < 97%" in flat


def test_rows_report_their_face_labels_against_the_fp32_onnx_row_on_this_machine(bench_run):
    """Every row that runs after the FP32 ONNX graphs on ONNX Runtime is compared with them on the
    clip's faces; the fake bundle's rows run the same graphs, so they agree."""
    proc, rows = bench_run
    reference = _row(rows, "onnx", "onnxruntime")["parity"]
    assert reference["is_reference"] and reference["label_agreement"] == 1.0
    int8 = _row(rows, "onnx-int8", "onnxruntime")["parity"]  # the same graph files, tampered record
    assert int8["reference"] == "onnx on onnxruntime" and int8["faces"] > 5
    assert int8["label_agreement"] == 1.0 and int8["max_abs_diff_logits"] == 0.0
    if OPENVINO:
        same = _row(rows, "onnx", "openvino")["parity"]  # the same graph on another runtime, in f32
        assert same["faces"] == int8["faces"] and same["max_abs_diff_logits"] < 1e-3
    for fmt, runtime in (("openvino", "openvino"), ("tensorrt-fp16", "tensorrt")):  # did not run
        assert _row(rows, fmt, runtime)["parity"] is None
    assert any(
        line.split()[:2] == ["onnx", "onnxruntime"] and line.split()[-1] == "ref" for line in proc.stdout.splitlines()
    )
    flat = " ".join(proc.stdout.split())
    assert f"agree: % of the clip's {int8['faces']} faces" in flat


def test_parity_with_the_reference():
    from edge_emotion.bench.rows import parity_with

    reference = [[2.0, 0.0, 1.0], [0.0, 3.0, 1.0], [1.0, 0.0, 0.5], [0.0, 0.0, 4.0]]
    moved = [[2.0, 0.1, 1.0], [0.0, 3.0, 1.0], [0.0, 1.5, 0.5], [0.0, 0.0, 4.0]]  # the third changes label
    assert parity_with(reference, moved) == {
        "reference": "onnx on onnxruntime",
        "faces": 4,
        "label_agreement": 0.75,
        "max_abs_diff_logits": 1.5,
    }
    assert parity_with(reference, moved[:3]) is None  # not the same faces
    assert parity_with([], []) is None
    broken = parity_with(reference, [[float("nan"), 0.0, 1.0]] + moved[1:])
    assert broken["max_abs_diff_logits"] is None  # no NaN in --json


def test_parity_note_says_what_was_and_was_not_compared():
    from edge_emotion.bench.report import parity_note

    rows = _report_rows()
    assert parity_note(rows).startswith("agree: % of the clip's 40 faces")
    assert "largest logit change 123 (openvino-int8 on openvino)" in parity_note(rows)
    alone = [r for r in rows if r.format == "onnx"]  # the reference ran, nothing else did
    assert "nothing compared (no face found in the clip, or no other row)" in parity_note(alone)
    others = [dataclasses.replace(r, parity=None) for r in rows if r.format != "onnx"]  # no reference ran
    assert "no row ran the FP32 ONNX graphs on ONNX Runtime" in parity_note(others)


def test_a_named_runtime_that_is_missing_fails_its_row(bundle, tmp_path):
    if is_available("tensorrt"):
        pytest.skip("tensorrt is installed: the row of a runtime that is missing cannot be seen")
    out = tmp_path / "rows.json"
    proc = cli("--model", str(bundle), "--backend", "tensorrt", "--json", str(out), "--clip", str(SAMPLE), *FAST)
    assert proc.returncode == 0, proc.stderr
    (row,) = json.loads(out.read_text())
    # named explicitly, a runtime that is not installed is a failure, not a skip
    assert row["runtime"] == "tensorrt" and row["status"] == FAILED
    assert "tensorrt is not installed" in row["error"]


def test_bad_input_is_one_line_and_exit_2(bundle, tmp_path):
    assert_one_line_error(cli("--model", str(tmp_path / "absent")), "does not exist")
    (tmp_path / "empty").mkdir()
    assert_one_line_error(cli("--model", str(tmp_path / "empty")), "not a bundle")
    assert_one_line_error(cli("--model", str(bundle), "--backend", "caffe"), "unknown backend", "onnxruntime")
    assert_one_line_error(cli("--model", str(bundle), "--clip", str(tmp_path / "none.mp4")), "none.mp4")
    assert_one_line_error(cli("--model", str(bundle), "--data", str(tmp_path)), "--dataset")
    assert_one_line_error(cli("--model", str(bundle), "--repeats", "0"), "--repeats")
    assert_one_line_error(cli("--model", str(bundle), "--format", "openvino-int8"), "no format 'openvino-int8'")


def test_altered_bundle_is_refused(bundle, tmp_path):
    copy = shutil.copytree(bundle, tmp_path / "altered")
    with open(copy / "onnx" / "fusion_head.onnx", "ab") as handle:
        handle.write(b"\0")
    assert_one_line_error(cli("--model", str(copy)), "altered")


def test_without_model_and_without_a_shipped_bundle(monkeypatch, capsys):
    """An install without the default bundle (this one ships it, so it is hidden in-process)."""
    import edge_emotion.info
    from edge_emotion.cli import main

    monkeypatch.setattr(edge_emotion.info, "default_bundle_path", lambda: None)
    with pytest.raises(SystemExit) as exc:
        main(["bench"])
    assert exc.value.code == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and "no --model" in lines[0] and "default bundle" in lines[0], lines


# -- the pieces, without workers ---------------------------------------------------------


def test_plan_rows_follows_the_format_table(bundle):
    loaded = Bundle.load(bundle)
    assert plan_rows(loaded) == [
        ("onnx", "onnxruntime"),
        ("onnx", "openvino"),
        ("onnx-int8", "onnxruntime"),
        ("openvino", "openvino"),
        ("tensorrt-fp16", "tensorrt"),
    ]
    assert plan_rows(loaded, "openvino") == [("onnx", "openvino"), ("openvino", "openvino")]
    assert plan_rows(loaded, "auto", ["onnx-int8"]) == [("onnx-int8", "onnxruntime")]
    with pytest.raises(BackendError, match="unknown backend"):
        plan_rows(loaded, "caffe")
    with pytest.raises(BackendError, match="no format that torch runs"):
        plan_rows(loaded, "torch")
    with pytest.raises(BundleError, match="no format 'openvino-int8'"):
        plan_rows(loaded, "auto", ["openvino-int8"])


def test_check_parity_bounds():
    real = {"end_to_end": {"label_agreement": 1.0, "max_abs_diff_logits": 1e-5}, "graphs": {}}
    assert check_parity({"parity": real}, "fp32").passed is True
    low = {"end_to_end": {"label_agreement": 0.96, "max_abs_diff_logits": 1e-5}}
    result = check_parity({"parity": low}, "int8")
    assert result.passed is False and "96.0% < 97%" in result.note
    far = {"end_to_end": {"label_agreement": 1.0, "max_abs_diff_logits": 0.01}}
    assert check_parity({"parity": far}, "fp32").passed is False
    assert check_parity({"parity": far}, "fp16").passed is True
    random_inputs = {
        "graphs": {"visual_encoder": {"max_abs_diff": 0.2}, "fusion_head": {"max_abs_diff": 0.0}},
        "label_agreement": 1.0,
    }
    assert check_parity({"parity": random_inputs}, "fp32").passed is False
    assert check_parity({"parity": random_inputs}, "int8").passed is True
    unmeasured = check_parity({"parity": {"status": "not measured: none of tensorrt is installed"}}, "fp16")
    assert unmeasured.passed is None and "not measured" in unmeasured.note
    assert check_parity({}, "fp32").passed is None
    assert all(b.min_label_agreement == 0.97 for b in VALIDATION_BOUNDS.values())
    where = {
        **low,
        "inference_precision": "f32",
        "machine": {"cpu": "AMD EPYC", "cpus": 2, "isa": ["avx", "avx2", "avx512f", "avx512vl", "avx512_vnni"]},
    }
    note = check_parity({"parity": where}, "int8").note
    assert "computed f32 on AMD EPYC (avx2 avx512f avx512_vnni)" in note, note


def test_rows_and_config_validate():
    timing = StageTiming.from_seconds([0.001, 0.002, 0.003, 0.010])
    assert timing.p50_ms == 2.5 and 2.5 < timing.p95_ms <= 10.0 and timing.repeats == 4
    with pytest.raises(ValueError, match="needs an error"):
        BenchRow(runtime="onnxruntime", format="onnx", precision="fp32", status=FAILED, size_mb=1.0, threads=1)
    with pytest.raises(ValueError, match="status must be"):
        BenchRow(runtime="onnxruntime", format="onnx", precision="fp32", status="fine", size_mb=1.0, threads=1)
    with pytest.raises(InputError, match="--warmup"):
        BenchConfig(warmup=-1)
    with pytest.raises(InputError, match="go together"):
        BenchConfig(dataset="crema-d")
    with pytest.raises(InputError, match="unknown format"):
        BenchConfig(formats=("caffe",))


@pytest.mark.skipif(not Path("/proc/self/status").is_file(), reason="VmHWM is read from Linux's /proc")
def test_peak_rss_of_a_worker_is_its_own_not_its_parents():
    import numpy as np

    held = np.ones(300_000_000 // 8)  # 300 MB resident in this (the parent) process
    code = "from edge_emotion.bench.measure import peak_rss_mb; print(peak_rss_mb())"
    child = float(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout)
    assert 5 < child < 250, child
    del held


def test_cpu_features_are_read_from_cpuinfo():
    from edge_emotion.bench.machine import cpu_model

    x86 = (
        "processor\t: 0\nmodel name\t: AMD EPYC 9654\nflags\t\t: fpu sse avx avx2 fma avx512f avx512_vnni avx512_bf16\n"
    )
    assert cpu_features(x86) == ("avx", "avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16")
    assert cpu_model(x86) == "AMD EPYC 9654"
    arm = "processor\t: 0\nFeatures\t: fp asimd asimdhp asimddp i8mm bf16 sve\n"
    assert cpu_features(arm) == ("asimd", "asimdhp", "asimddp", "i8mm", "bf16", "sve")
    assert cpu_features("") == ()
