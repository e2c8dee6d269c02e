"""Plan and run a bench: which (format, runtime) rows a bundle gives, one fresh worker process per
row (:mod:`.measure`), and the rows' statuses.

Rows come from the format table (:data:`edge_emotion.model.formats.FORMATS`): every format the bundle
carries, on every runtime its row lists (``backend="auto"``) or on the one named. The front-end
stages (face, log-mel) do not depend on the runtime: they are measured once per bench, in a
worker of their own, and the same numbers appear in every row that ran.
"""

from __future__ import annotations

import json
import logging
import subprocess
import sys
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from ..errors import BackendError, BundleError, InputError
from ..model.bundle import Bundle
from ..model.formats import FORMATS
from .machine import cpu_count, cpu_features, machine_description
from .measure import WorkerSpec
from .rows import (
    FAILED,
    FAILED_VALIDATION,
    FRONT_END_STAGES,
    OK,
    PARITY_REFERENCE,
    SKIPPED,
    BenchRow,
    StageTiming,
    check_parity,
    parity_with,
)

log = logging.getLogger(__name__)

#: The clip ``bench`` runs end to end when no ``--clip`` is given: the sample shipped in the package
#: (the quickstart's clip; 3.0 s, a face and speech; ``edge_emotion/assets/README-sample.md``).
DEFAULT_CLIP_CANDIDATES: tuple[Path, ...] = (Path(__file__).resolve().parents[1] / "assets" / "sample_astronaut.mp4",)


def default_clip() -> Path | None:
    """The first of :data:`DEFAULT_CLIP_CANDIDATES` present in this install, or None."""
    return next((p for p in DEFAULT_CLIP_CANDIDATES if p.is_file()), None)


def default_threads() -> int:
    """The CPUs this process may run on."""
    return cpu_count()


@dataclass(frozen=True)
class BenchConfig:
    """How to bench. ``clip``: the media file for the end-to-end real-time factor (None:
    :func:`default_clip`); ``threads``: runtime intra-op threads (None: :func:`default_threads`);
    ``warmup`` untimed then ``repeats`` timed calls per stage; ``rtf_runs`` timed passes over the
    clip; ``formats``: only these format keys (None: all the bundle carries); ``data`` +
    ``dataset`` (+ ``data_limit`` samples spread over it): the accuracy metric; ``timeout_s`` per
    worker."""

    clip: Path | None = None
    threads: int | None = None
    warmup: int = 10
    repeats: int = 100
    rtf_runs: int = 3
    formats: tuple[str, ...] | None = None
    data: Path | None = None
    dataset: str | None = None
    data_limit: int | None = None
    timeout_s: float = 1800.0

    def __post_init__(self) -> None:
        if self.warmup < 0:
            raise InputError(f"--warmup must be >= 0, got {self.warmup}")
        if self.repeats < 1:
            raise InputError(f"--repeats must be >= 1, got {self.repeats}")
        if self.rtf_runs < 1:
            raise InputError(f"rtf_runs must be >= 1, got {self.rtf_runs}")
        if self.threads is not None and self.threads < 1:
            raise InputError(f"--threads must be >= 1, got {self.threads}")
        if (self.data is None) != (self.dataset is None):
            raise InputError("--data DIR and --dataset NAME go together (the metric needs both)")
        if self.formats is not None:
            unknown = [k for k in self.formats if k not in FORMATS]
            if unknown:
                raise InputError(f"unknown format {unknown[0]!r}; choose one of: {', '.join(FORMATS)}")


def plan_rows(bundle: Bundle, backend: str = "auto", formats: Sequence[str] | None = None) -> list[tuple[str, str]]:
    """The (format, runtime) pairs to bench, in the format table's order: every format of the
    bundle (or of ``formats``) on every runtime its row lists, or only on ``backend``."""
    from ..runtimes import BACKENDS

    if backend != "auto" and backend not in BACKENDS:
        raise BackendError(f"unknown backend {backend!r}; choose one of: auto, {', '.join(BACKENDS)}")
    if formats is not None:
        absent = [k for k in formats if k not in bundle.formats]
        if absent:
            raise BundleError(f"bundle {bundle.root} has no format {absent[0]!r}; it has: {', '.join(bundle.formats)}")
    keys = [k for k in FORMATS if k in bundle.formats and (formats is None or k in formats)]
    pairs = [(k, r) for k in keys for r in FORMATS[k].runtimes if backend in ("auto", r)]
    if not pairs:
        raise BackendError(
            f"bundle {bundle.root} has no format that {backend} runs (it has: {', '.join(bundle.formats)})"
        )
    return pairs


def _not_installed(runtime: str) -> str | None:
    """Why ``runtime`` cannot run here (None: it imports)."""
    from ..runtimes import BACKENDS, is_available

    if is_available(runtime):
        return None
    extra = BACKENDS[runtime].extra
    hint = f"pip install 'edge-emotion[{extra}]'" if extra else "pip install edge-emotion"
    if runtime == "tensorrt":
        hint += " or JetPack on a Jetson"
    return f"{runtime} is not installed here (install it with: {hint})"


def _last_line(text: str) -> str:
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    return lines[-1] if lines else ""


def run_worker(spec: WorkerSpec, work_dir: Path, timeout_s: float) -> dict[str, Any]:
    """Run :mod:`.measure` for ``spec`` in a fresh Python process; its result dict (with
    ``error`` when the worker failed, crashed or timed out)."""
    name = f"{spec.mode}-{spec.format or 'all'}-{spec.runtime or 'none'}"
    spec_path, out_path = work_dir / f"{name}.spec.json", work_dir / f"{name}.result.json"
    spec_path.write_text(json.dumps(asdict(spec)), encoding="utf-8")
    command = [sys.executable, "-m", "edge_emotion.bench.measure", str(spec_path), str(out_path)]
    try:
        proc = subprocess.run(command, capture_output=True, text=True, timeout=timeout_s)
    except subprocess.TimeoutExpired:
        return {"stages": {}, "error": f"the worker timed out after {timeout_s:g} s"}
    if proc.stderr.strip():
        log.debug("%s worker stderr:\n%s", name, proc.stderr)
    if proc.returncode != 0 or not out_path.is_file():
        detail = _last_line(proc.stderr) or "no output"
        return {"stages": {}, "error": f"the worker exited with code {proc.returncode}: {detail}"}
    return json.loads(out_path.read_text(encoding="utf-8"))


def _timings(stages: dict[str, Any]) -> dict[str, StageTiming]:
    return {name: StageTiming(**values) for name, values in stages.items()}


def _front_end(spec: WorkerSpec, work_dir: Path, timeout_s: float) -> dict[str, StageTiming]:
    """The runtime-independent stages (face, log-mel), measured once in a worker of their own."""
    result = run_worker(spec, work_dir, timeout_s)
    if result.get("error"):
        log.warning("front-end stages (face, log-mel): %s", result["error"])
    return _timings(result.get("stages", {}))


def run_bench(
    model: str | Path,
    backend: str = "auto",
    config: BenchConfig = BenchConfig(),
    on_row: Callable[[BenchRow], None] | None = None,
    on_start: Callable[[str, str, int, int], None] | None = None,
) -> list[BenchRow]:
    """Bench the bundle at ``model``: one :class:`BenchRow` per (format, runtime) of
    :func:`plan_rows`, each measured in a fresh worker process, in order. Each row after the FP32
    ONNX graphs on ONNX Runtime (the first row where that pair runs) gets its ``parity`` with them:
    face-only labels on the clip's faces, computed on this machine. ``on_start`` is called
    as ``on_start(format, runtime, index, total)`` (index from 1) before each row, ``on_row``
    with each row as it is done. Raises :class:`~edge_emotion.errors.EdgeEmotionError` subclasses
    for bad input (a missing or altered bundle, a missing clip or data set, an unknown backend)
    before any measurement."""
    from ..sources import open_media

    bundle = Bundle.load(model)
    clip = config.clip if config.clip is not None else default_clip()
    if clip is None:
        raise InputError("no default benchmark clip in this install: pass --clip PATH (a video with a face and speech)")
    open_media(clip)  # a missing or corrupt clip is bad input, not a failed row
    if config.data is not None:
        from ..eval.datasets import get_dataset

        get_dataset(config.dataset, config.data)  # an unknown name or an empty root fails here
    pairs = plan_rows(bundle, backend, config.formats)
    threads = config.threads or default_threads()
    machine = machine_description()
    isa = cpu_features()
    common = {
        "bundle": str(bundle.root),
        "clip": str(Path(clip).resolve()),
        "threads": threads,
        "warmup": config.warmup,
        "repeats": config.repeats,
        "rtf_runs": config.rtf_runs,
    }
    rows = []
    # the reference row's face-only logits: every later row is compared with them on this machine
    reference: list | None = None
    with tempfile.TemporaryDirectory(prefix="edge-emotion-bench-") as work:
        work_dir = Path(work)
        front_stages: dict[str, StageTiming] | None = None  # measured before the first row that runs
        for index, (key, runtime) in enumerate(pairs, start=1):
            if on_start is not None:
                on_start(key, runtime, index, len(pairs))
            spec = FORMATS[key]
            size_mb = round(bundle.size_bytes(key) / 1e6, 3)
            base = {
                "runtime": runtime,
                "format": key,
                "precision": spec.precision,
                "size_mb": size_mb,
                "threads": threads,
                "machine": machine,
                "isa": isa,
            }
            missing = _not_installed(runtime)
            if missing is not None:
                row = BenchRow(status=SKIPPED if backend == "auto" else FAILED, error=missing, **base)
            else:
                if front_stages is None:
                    front_stages = _front_end(WorkerSpec(mode="front_end", **common), work_dir, config.timeout_s)
                result = run_worker(
                    WorkerSpec(
                        mode="row",
                        format=key,
                        runtime=runtime,
                        data=_str(config.data),
                        dataset=config.dataset,
                        data_limit=config.data_limit,
                        **common,
                    ),
                    work_dir,
                    config.timeout_s,
                )
                validation = check_parity(bundle.format_info(key), spec.precision)
                if result.get("error"):
                    status = FAILED
                elif validation.passed is False:
                    status = FAILED_VALIDATION
                else:
                    status = OK
                stages = {s: t for s, t in front_stages.items() if s in FRONT_END_STAGES}
                stages.update(_timings(result.get("stages", {})))
                logits = (result.get("outputs") or {}).get("face_logits")
                if (key, runtime) == PARITY_REFERENCE and logits:
                    reference = logits
                parity = parity_with(reference, logits) if reference is not None and logits is not None else None
                if parity is not None and (key, runtime) == PARITY_REFERENCE:
                    parity["is_reference"] = True
                row = BenchRow(
                    status=status,
                    stages=stages,
                    rtf=result.get("rtf"),
                    peak_rss_mb=result.get("peak_rss_mb"),
                    metric=result.get("metric"),
                    metric_info=result.get("metric_info"),
                    device=result.get("device"),
                    inference_precision=result.get("inference_precision"),
                    error=result.get("error"),
                    validation=validation.note,
                    parity=parity,
                    **base,
                )
            rows.append(row)
            if on_row is not None:
                on_row(row)
    return rows


def _str(path: Path | None) -> str | None:
    return None if path is None else str(Path(path).resolve())


__all__ = [
    "DEFAULT_CLIP_CANDIDATES",
    "default_clip",
    "default_threads",
    "machine_description",
    "BenchConfig",
    "plan_rows",
    "run_worker",
    "run_bench",
]
