"""The runtime backends: the registry, the protocol, input checks, device choice, and the errors
for unknown and missing runtimes. TensorRT tests run only where TensorRT and a GPU exist."""

from __future__ import annotations

import sys

import numpy as np
import pytest
from edge_emotion.runtimes import (
    BACKENDS,
    Backend,
    available_backends,
    backend_class,
    is_available,
    load_backend,
)
from edge_emotion.runtimes.onnxruntime_backend import choose_providers
from edge_emotion.runtimes.tensorrt_backend import _device_index as trt_device_index

from edge_emotion.config import EDGE
from edge_emotion.errors import BackendError, InputError, MissingDependencyError
from edge_emotion.model.formats import GRAPHS, graph_tensors
from edge_emotion.model.validation import VALIDATION_BOUNDS

pytest.importorskip("onnx", reason="building a test bundle needs onnx (the 'export' extra)")

from fakes import fresh_model, make_bundle, make_onnx_bundle, random_inputs  # noqa: E402

TOLERANCE = 1e-4


@pytest.fixture(scope="module")
def bundle_dir(tmp_path_factory):
    """A small ONNX bundle of the edge preset (no torch needed)."""
    return make_onnx_bundle(tmp_path_factory.mktemp("rt"))


@pytest.fixture(scope="module")
def torch_bundle_dir(tmp_path_factory):
    """The onnx and torch formats of ``fresh_model("edge", 0)``: graphs with a PyTorch reference."""
    pytest.importorskip("torch", reason="the bundle is exported from a fresh PyTorch model (train extra)")
    return make_bundle(tmp_path_factory.mktemp("rt-torch"), formats=("onnx", "torch"))


def _skip_unless(name: str):
    return pytest.mark.skipif(not is_available(name), reason=f"the {name} runtime is not installed here")


# -- registry ---------------------------------------------------------------------------------------
def test_unknown_backend_lists_the_valid_names(bundle_dir):
    with pytest.raises(
        BackendError, match="unknown backend 'onnxrt'; choose one of: onnxruntime, openvino, tensorrt, torch"
    ):
        load_backend("onnxrt", bundle_dir / "onnx" / "visual_encoder.onnx")


@pytest.mark.parametrize(
    ("name", "module", "extra"),
    [("openvino", "openvino", "openvino"), ("tensorrt", "tensorrt", "tensorrt"), ("torch", "torch", "train")],
)
def test_missing_runtime_names_the_extra(monkeypatch, bundle_dir, tmp_path, name, module, extra):
    monkeypatch.setitem(sys.modules, module, None)  # makes `import <module>` raise ImportError
    assert not is_available(name)
    assert name not in available_backends()
    graph = bundle_dir / "onnx" / "visual_encoder.onnx"
    if name == "torch":  # the missing runtime is found before the file is read
        graph = tmp_path / "visual_encoder.pt2"
        graph.write_bytes(b"not read")
    with pytest.raises(MissingDependencyError, match=rf"pip install 'edge-emotion\[{extra}\]'") as info:
        load_backend(name, graph)
    assert info.value.extra == extra and info.value.package == module


def test_missing_onnxruntime_says_it_is_the_base_install(monkeypatch, bundle_dir):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)
    with pytest.raises(MissingDependencyError, match="part of the base install: pip install edge-emotion"):
        load_backend("onnxruntime", bundle_dir / "onnx" / "visual_encoder.onnx")


def test_available_backends_here():
    available = available_backends()
    assert "onnxruntime" in available  # the base install
    assert set(available) <= set(BACKENDS)
    for name in BACKENDS:
        assert isinstance(backend_class(name), type)  # importing a backend module imports no runtime


def test_missing_graph_file(tmp_path):
    with pytest.raises(BackendError, match="does not exist"):
        load_backend("onnxruntime", tmp_path / "nothing.onnx")


def test_a_file_that_is_not_a_graph(tmp_path):
    path = tmp_path / "junk.onnx"
    path.write_bytes(b"not a model")
    with pytest.raises(BackendError, match="onnxruntime could not load"):
        load_backend("onnxruntime", path)


# -- each backend against PyTorch ---------------------------------------------------------------
ONNX_BACKENDS = [
    pytest.param("onnxruntime", marks=_skip_unless("onnxruntime")),
    pytest.param("openvino", marks=_skip_unless("openvino")),
]


@pytest.mark.parametrize("graph", GRAPHS)
@pytest.mark.parametrize(
    ("name", "folder", "suffix"),
    [
        pytest.param("onnxruntime", "onnx", ".onnx", marks=_skip_unless("onnxruntime")),
        pytest.param("openvino", "onnx", ".onnx", marks=_skip_unless("openvino")),
        pytest.param("torch", "torch", ".pt2", marks=_skip_unless("torch")),
    ],
)
def test_backend_runs_graph_like_pytorch(torch_bundle_dir, name, folder, suffix, graph):
    from edge_emotion.export.onnx_export import example_inputs, torch_outputs

    trust = {"trusted": True} if name == "torch" else {}  # a .pt2 carries code: this test exported it
    backend = load_backend(name, torch_bundle_dir / folder / f"{graph}{suffix}", threads=1, **trust)
    assert isinstance(backend, Backend) and backend.name == name
    model = fresh_model("edge", 0)
    inputs_spec, outputs_spec = graph_tensors(model.preset)[graph]
    assert [s.name for s in backend.input_specs] == [s.name for s in inputs_spec]
    assert [s.name for s in backend.output_specs] == [s.name for s in outputs_spec]
    for got, want in zip(backend.input_specs, inputs_spec, strict=True):
        assert got.dtype == "float32"
        assert got.shape == tuple(None if d == "N" else d for d in want.shape)
    for batch in (1, 3):
        inputs = example_inputs(model.preset, batch=batch, seed=batch)[graph]
        expected = torch_outputs(model, {graph: inputs})[graph]
        outputs = backend.run(inputs)
        assert set(outputs) == set(expected)
        for key, value in outputs.items():
            assert value.dtype == np.float32
            np.testing.assert_allclose(value, expected[key], atol=TOLERANCE, rtol=0)


@pytest.mark.parametrize("name", ONNX_BACKENDS)
def test_bad_inputs_are_refused(bundle_dir, name):
    backend = load_backend(name, bundle_dir / "onnx" / "fusion_head.onnx")
    inputs = random_inputs(EDGE, batch=2)["fusion_head"]
    with pytest.raises(InputError, match="expected inputs"):
        backend.run({k: v for k, v in inputs.items() if k != "visual_mask"})
    with pytest.raises(InputError, match=r"input 'audio' must have shape \('N', 30, 128\)"):
        backend.run({**inputs, "audio": inputs["audio"][:, :10]})
    with pytest.raises(InputError, match="disagree on the batch size"):
        backend.run({**inputs, "audio_mask": inputs["audio_mask"][:1]})
    as_float64 = {k: v.astype(np.float64) for k, v in inputs.items()}  # converted, not refused
    np.testing.assert_allclose(backend.run(as_float64)["logits"], backend.run(inputs)["logits"], atol=1e-6)


# -- devices and options ------------------------------------------------------------------------------
def test_onnxruntime_providers():
    cpu_only = ["CPUExecutionProvider"]
    gpu = ["TensorrtExecutionProvider", "CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers(None, cpu_only) == ["CPUExecutionProvider"]
    assert choose_providers(None, gpu) == ["CUDAExecutionProvider", "CPUExecutionProvider"]
    assert choose_providers("cuda:1", gpu) == [("CUDAExecutionProvider", {"device_id": 1}), "CPUExecutionProvider"]
    assert choose_providers("tensorrt", gpu)[0] == ("TensorrtExecutionProvider", {"device_id": 0})
    assert choose_providers("CPU", gpu) == ["CPUExecutionProvider"]
    with pytest.raises(BackendError, match="needs CUDAExecutionProvider.*install onnxruntime-gpu"):
        choose_providers("cuda", cpu_only)
    with pytest.raises(BackendError, match="unknown device 'npu'"):
        choose_providers("npu", gpu)


@_skip_unless("onnxruntime")
def test_onnxruntime_threads_option(bundle_dir):
    backend = load_backend("onnxruntime", bundle_dir / "onnx" / "audio_encoder.onnx", device="cpu", threads=2)
    assert backend.device == "CPUExecutionProvider"
    assert backend.session.get_session_options().intra_op_num_threads == 2
    with pytest.raises(BackendError, match="threads must be >= 1"):
        load_backend("onnxruntime", bundle_dir / "onnx" / "audio_encoder.onnx", threads=0)


@_skip_unless("openvino")
def test_openvino_devices_and_static_batch(bundle_dir):
    path = bundle_dir / "onnx" / "visual_encoder.onnx"
    with pytest.raises(BackendError, match="device 'NPU7' is not available here; available: CPU"):
        load_backend("openvino", path, device="NPU7")
    auto = load_backend("openvino", path, device="AUTO")
    assert auto.device == "AUTO"
    static = load_backend("openvino", path, batch=2, threads=1)
    assert static.input_specs[0].shape[0] == 2
    inputs = random_inputs(EDGE, batch=2)["visual_encoder"]
    assert static.run(inputs)["embedding"].shape == (2, 128)
    with pytest.raises(InputError, match="must have shape"):
        static.run(random_inputs(EDGE, batch=3)["visual_encoder"])


def test_tensorrt_device_names():
    assert trt_device_index(None) == 0
    assert trt_device_index("cuda:2") == 2
    assert trt_device_index("cuda") == 0
    with pytest.raises(BackendError, match="bad device 'cpu'"):
        trt_device_index("cpu")


# -- TensorRT (a GPU with TensorRT and cuda-python) --------------------------------------------------
def _tensorrt_reason() -> str | None:
    if not is_available("tensorrt"):
        return (
            "tensorrt is not importable here (its Python wheels do not install on CPU-only x86 machines; "
            "it comes with JetPack on a Jetson)"
        )
    try:
        from edge_emotion.runtimes.tensorrt_backend import _import_cudart

        rt = _import_cudart()
        err, count = rt.cudaGetDeviceCount()
        if int(err) != 0 or count == 0:
            return "no CUDA device for TensorRT"
    except Exception as exc:  # no cuda-python, or no driver
        return f"CUDA is not usable for TensorRT: {exc}"
    return None


@pytest.mark.gpu
@pytest.mark.skipif(_tensorrt_reason() is not None, reason=str(_tensorrt_reason()))
@pytest.mark.parametrize("graph", GRAPHS)
def test_tensorrt_engine_runs_graph_like_pytorch(torch_bundle_dir, tmp_path, graph):
    """Build an FP32 engine from the ONNX graph with TensorRT's builder (batch 1..4), load it with
    the backend and compare with PyTorch (TF32 disabled, so FP32 tolerances hold)."""
    import tensorrt as trt
    from edge_emotion.export.onnx_export import example_inputs, torch_outputs

    bundle_dir = torch_bundle_dir
    logger = trt.Logger(trt.Logger.WARNING)
    builder = trt.Builder(logger)
    flags = (
        0 if int(trt.__version__.split(".")[0]) >= 10 else 1 << int(trt.NetworkDefinitionCreationFlag.EXPLICIT_BATCH)
    )
    network = builder.create_network(flags)
    parser = trt.OnnxParser(network, logger)
    assert parser.parse((bundle_dir / "onnx" / f"{graph}.onnx").read_bytes()), parser.get_error(0)
    config = builder.create_builder_config()
    config.clear_flag(trt.BuilderFlag.TF32)
    profile = builder.create_optimization_profile()
    for i in range(network.num_inputs):
        tensor = network.get_input(i)
        rest = tuple(tensor.shape)[1:]
        profile.set_shape(tensor.name, (1, *rest), (2, *rest), (4, *rest))
    config.add_optimization_profile(profile)
    engine_path = tmp_path / f"{graph}.engine"
    engine_path.write_bytes(bytes(builder.build_serialized_network(network, config)))

    backend = load_backend("tensorrt", engine_path, device="cuda:0")
    model = fresh_model("edge", 0)
    for batch in (1, 3):
        inputs = example_inputs(model.preset, batch=batch, seed=batch)[graph]
        expected = torch_outputs(model, {graph: inputs})[graph]
        for key, value in backend.run(inputs).items():
            np.testing.assert_allclose(value, expected[key], atol=1e-3, rtol=0)


@pytest.mark.skipif(
    is_available("tensorrt"), reason="tensorrt is installed here: the missing-runtime path cannot occur"
)
def test_tensorrt_missing_names_the_extra(bundle_dir):
    with pytest.raises(MissingDependencyError, match=r"edge-emotion\[tensorrt\]"):
        load_backend("tensorrt", bundle_dir / "onnx" / "visual_encoder.onnx")


# -- OpenVINO inference precision ---------------------------------------------------------------------
def test_openvino_inference_precision_follows_the_format():
    from edge_emotion.runtimes.openvino_backend import inference_precision_for

    cpu_avx2, cpu_bf16, gpu = ("FP32", "INT8"), ("FP32", "BF16", "INT8"), ("FP32", "FP16", "INT8")
    for caps in (cpu_avx2, cpu_bf16, gpu):
        assert inference_precision_for("fp32", caps) == "f32"
        assert inference_precision_for("int8", caps) == "f32"  # the unquantized layers of an INT8 graph
    assert inference_precision_for("fp16", gpu) == "f16"
    assert inference_precision_for("fp16", cpu_bf16) == "f32"  # never bf16 unless asked for
    assert inference_precision_for("fp16", cpu_avx2) == "f32"
    with pytest.raises(BackendError, match="unknown format precision"):
        inference_precision_for("int4", gpu)


@_skip_unless("openvino")
@pytest.mark.parametrize("precision", ["fp32", "int8", "fp16"])
def test_openvino_compiles_fp32_graphs_in_f32_on_every_cpu(bundle_dir, precision):
    """The CPU plugin's own default is bf16 on CPUs with AVX-512 BF16 or AMX: the backend asks for
    f32 explicitly (FP32 and INT8 formats, and FP16 formats on CPUs without FP16 arithmetic), reads
    it back, and computes like ONNX Runtime's f32 on any CPU. On a CPU with FP16 arithmetic (AVX-512
    FP16 or AMX-FP16) an FP16 format computes in f16, within the FP16 bound of the bundle's validation."""
    import openvino as ov

    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    expected = "f16" if precision == "fp16" and "FP16" in capabilities else "f32"
    path = bundle_dir / "onnx" / "visual_encoder.onnx"
    backend = load_backend("openvino", path, threads=1, precision=precision)
    assert backend.inference_precision == expected
    assert backend.compiled.get_property("INFERENCE_PRECISION_HINT") == getattr(ov.Type, expected)
    inputs = random_inputs(EDGE, batch=2, seed=3)["visual_encoder"]
    want = load_backend("onnxruntime", path, threads=1).run(inputs)["embedding"]
    assert np.abs(want).max() > 0.1  # values large enough for bf16 (3 significant digits) to show
    bound = TOLERANCE if expected == "f32" else VALIDATION_BOUNDS["fp16"].max_abs_diff
    np.testing.assert_allclose(backend.run(inputs)["embedding"], want, atol=bound, rtol=0)


@_skip_unless("openvino")
def test_openvino_explicit_inference_precision(bundle_dir):
    import openvino as ov

    path = bundle_dir / "onnx" / "fusion_head.onnx"
    with pytest.raises(BackendError, match="unknown inference precision 'fp8'"):
        load_backend("openvino", path, inference_precision="fp8")
    capabilities = ov.Core().get_property("CPU", "OPTIMIZATION_CAPABILITIES")
    for wanted, capability in (("bf16", "BF16"), ("f16", "FP16")):
        if capability in capabilities:
            assert load_backend("openvino", path, inference_precision=wanted).inference_precision == wanted
        else:
            with pytest.raises(BackendError, match=f"CPU cannot compute in {wanted}"):
                load_backend("openvino", path, inference_precision=wanted)
    assert load_backend("openvino", path, device="AUTO").inference_precision is None  # AUTO does not report it


def _allowed_cpus(native_id: int) -> str:
    with open(f"/proc/self/task/{native_id}/status") as status:
        return next(line.split(":", 1)[1].strip() for line in status if line.startswith("Cpus_allowed_list"))


def _affinities_while_running(backend, inputs, calls: int = 300) -> tuple[str, set[str]]:
    """The calling thread's allowed CPUs before, and every value a watching thread saw while the
    caller ran ``calls`` inferences."""
    import threading
    import time

    caller = threading.get_native_id()
    before = _allowed_cpus(caller)
    seen: set[str] = set()
    done = threading.Event()

    def watch():
        while not done.is_set():
            seen.add(_allowed_cpus(caller))
            time.sleep(0.0005)

    watcher = threading.Thread(target=watch)
    watcher.start()
    try:
        for _ in range(calls):
            backend.run(inputs)
    finally:
        done.set()
        watcher.join()
    return before, seen


@_skip_unless("openvino")
@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads thread affinities from Linux's /proc")
def test_openvino_leaves_the_callers_thread_free_to_move(bundle_dir):
    """With one inference thread the CPU plugin's default pinning moves the caller's own thread to
    CPU 0 for every inference, so every process using the SDK shares that core. The backend turns it
    off: the compiled graph says so (on the CPU, and through AUTO), and where the plugin does pin
    when asked, a thread watching the caller sees its allowed CPUs unchanged without pinning."""
    import os

    import openvino as ov

    if "ENABLE_CPU_PINNING" not in [str(p) for p in ov.Core().get_property("CPU", "SUPPORTED_PROPERTIES")]:
        pytest.skip("this OpenVINO's CPU plugin has no ENABLE_CPU_PINNING property")
    path = bundle_dir / "onnx" / "visual_encoder.onnx"
    pinned = load_backend("openvino", path, threads=1, cpu_pinning=True)
    assert pinned.cpu_pinning is True
    assert pinned.compiled.get_property("ENABLE_CPU_PINNING") is True
    backend = load_backend("openvino", path, threads=1)
    assert backend.cpu_pinning is False
    assert backend.compiled.get_property("ENABLE_CPU_PINNING") is False
    assert load_backend("openvino", path, device="AUTO", threads=1).cpu_pinning is None  # AUTO does not report

    if len(os.sched_getaffinity(0)) < 2:
        pytest.skip("this process may run on one CPU only: pinning to it changes nothing to watch")
    inputs = random_inputs(EDGE, batch=1)["visual_encoder"]
    before, seen = _affinities_while_running(pinned, inputs)
    if seen == {before}:
        pytest.skip("OpenVINO's CPU plugin does not pin the caller's thread on this machine even when asked")
    before, seen = _affinities_while_running(backend, inputs)
    assert seen == {before}
