"""``edge-emotion bench``: what each runtime and precision of a bundle costs on this machine.

For every (format, runtime) the bundle allows (:func:`plan_rows`, driven by the format table):
p50 / p95 latency per stage (face detection, log-mel, visual encoder, audio encoder, fusion
head), the end-to-end real-time factor over a real clip through ``Recognizer.analyze``, the peak
RSS of a fresh worker process that ran only that row, the size of the format's files, the
accuracy on ``--data`` when given, the thread count, and a status (``ok`` / ``exported but
failed validation`` / ``failed`` / ``skipped``; see :mod:`.rows`).

>>> rows = run_bench("bundles/edge", backend="auto", config=BenchConfig(threads=2))
>>> write_json(rows, "bench.json")

The measurement for BENCHMARKS.md, on a quiet machine (nothing else running), from a source
checkout (it builds fresh-weight ``edge`` and ``paper`` bundles with every format this machine can
export, calibrated on ../shared/data, and benches each, defaults 10 warm-up + 100 timed calls)::

    python tools/bench_presets.py --out bench-results --threads 2

and for one bundle: ``edge-emotion bench --model BUNDLE --threads 2 --json bench.json``.
"""

from __future__ import annotations

from .report import markdown_table, print_report, rich_table, rows_to_json, stage_table, write_json
from .rows import (
    FAILED,
    FAILED_VALIDATION,
    OK,
    SKIPPED,
    STAGES,
    STATUSES,
    VALIDATION_BOUNDS,
    BenchRow,
    StageTiming,
    check_parity,
)
from .runner import BenchConfig, default_clip, default_threads, machine_description, plan_rows, run_bench

__all__ = [
    "BenchConfig",
    "BenchRow",
    "StageTiming",
    "STAGES",
    "STATUSES",
    "OK",
    "FAILED_VALIDATION",
    "FAILED",
    "SKIPPED",
    "VALIDATION_BOUNDS",
    "check_parity",
    "plan_rows",
    "run_bench",
    "default_clip",
    "default_threads",
    "machine_description",
    "rows_to_json",
    "write_json",
    "rich_table",
    "stage_table",
    "print_report",
    "markdown_table",
]
