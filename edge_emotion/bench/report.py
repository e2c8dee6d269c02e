"""Bench rows as JSON (``--json PATH``), on the screen (two tables that fit 100 columns: one row per
run, one row of stage latencies per run) and as a markdown table (``BENCHMARKS.md``,
``tools/bench_presets.py``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .machine import AS_STORED
from .rows import FAILED_VALIDATION, OK, PARITY_REFERENCE, STAGES, BenchRow

_STAGE_TITLES = {
    "face": "face",
    "log_mel": "log-mel",
    "visual_encoder": "visual enc",
    "audio_encoder": "audio enc",
    "fusion": "fusion",
}
#: The markdown table's columns (one line per row; as wide as it needs).
COLUMNS: tuple[str, ...] = (
    "runtime",
    "format",
    "precision",
    "status",
    "size MB",
    *(f"{_STAGE_TITLES[s]} p50/p95 ms" for s in STAGES),
    "RTF",
    "peak RSS MB",
    "metric",
    "agree",
    "threads",
)
#: The screen's first table: what ran, how it did and what it cost as a whole.
RUN_COLUMNS: tuple[str, ...] = (
    "format",
    "runtime",
    "precision",
    "status",
    "size MB",
    "RTF",
    "RSS MB",
    "metric",
    "agree",
)
#: The screen's second table: p50 / p95 latency per stage.
STAGE_COLUMNS: tuple[str, ...] = ("format", "runtime", *(_STAGE_TITLES[s] for s in STAGES))
#: Short status words for the screen (the notes under the tables give the full reason).
_SHORT_STATUS = {FAILED_VALIDATION: "failed validation"}


def rows_to_json(rows: Sequence[BenchRow]) -> list[dict[str, Any]]:
    return [row.to_dict() for row in rows]


def write_json(rows: Sequence[BenchRow], path: str | Path) -> Path:
    """Write the rows as a JSON list to ``path`` (its folder is created)."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(rows_to_json(rows), indent=2) + "\n", encoding="utf-8")
    return out


def _num(value: float | None, digits: int) -> str:
    return "-" if value is None else f"{value:.{digits}f}"


def precision_cell(row: BenchRow) -> str:
    """The format's precision, with the arithmetic precision the runtime reported when it has one:
    ``"fp32 (f32)"``, ``"int8 (f32)"``; ``"fp32"`` for runtimes that compute what the files store."""
    computed = row.inference_precision
    return row.precision if computed in (None, AS_STORED) else f"{row.precision} ({computed})"


def _stage_cells(row: BenchRow) -> list[str]:
    return [
        "-" if (timing := row.stages.get(stage)) is None else f"{timing.p50_ms:.2f} / {timing.p95_ms:.2f}"
        for stage in STAGES
    ]


def _ms(value: float) -> str:
    """Three or four significant digits: ``0.42``, ``12.3``, ``456``."""
    return f"{value:.2f}" if value < 10 else f"{value:.1f}" if value < 100 else f"{value:.0f}"


def _short_stage_cells(row: BenchRow) -> list[str]:
    return [
        "-" if (timing := row.stages.get(stage)) is None else f"{_ms(timing.p50_ms)}/{_ms(timing.p95_ms)}"
        for stage in STAGES
    ]


def cells(row: BenchRow) -> list[str]:
    """The row's cells in :data:`COLUMNS` order."""
    return [
        row.runtime,
        row.format,
        precision_cell(row),
        row.status,
        _num(row.size_mb, 2),
        *_stage_cells(row),
        _num(row.rtf, 3),
        _num(row.peak_rss_mb, 0),
        _num(row.metric, 3),
        agree_cell(row),
        str(row.threads),
    ]


def agree_cell(row: BenchRow) -> str:
    """The row's face-only label agreement with the reference row on this machine, in %
    (``BenchRow.parity``); "ref" for the reference row itself, "-" without one."""
    parity = row.parity
    if not parity:
        return "-"
    return "ref" if parity.get("is_reference") else f"{100.0 * parity['label_agreement']:.1f}"


def notes(rows: Sequence[BenchRow]) -> list[str]:
    """One line per row that did not simply pass: its error or its failed validation."""
    lines = []
    for row in rows:
        if row.error:
            lines.append(f"{row.format} on {row.runtime}: {row.status}: {row.error}")
        elif row.status != "ok" and row.validation:
            lines.append(f"{row.format} on {row.runtime}: {row.status}: {row.validation}")
    return lines


def _table(columns: Sequence[str], left: int, title: str | None = None):
    from rich import box
    from rich.table import Table

    table = Table(title=title, box=box.SIMPLE_HEAD, pad_edge=False, collapse_padding=True, title_justify="left")
    for i, column in enumerate(columns):
        table.add_column(column, justify="left" if i < left else "right", no_wrap=True)
    return table


_STYLES = {"ok": None, "skipped": "dim", "failed": "red"}


def rich_table(rows: Sequence[BenchRow], title: str | None = None):
    """The runs as a :class:`rich.table.Table`: one line per (format, runtime) with its precision,
    status, size, real-time factor, peak memory and metric (about 90 columns wide)."""
    from rich.markup import escape

    table = _table(RUN_COLUMNS, left=4, title=escape(title) if title else None)
    for row in rows:
        table.add_row(
            row.format,
            row.runtime,
            precision_cell(row),
            _SHORT_STATUS.get(row.status, row.status),
            _num(row.size_mb, 2),
            _num(row.rtf, 3),
            _num(row.peak_rss_mb, 0),
            _num(row.metric, 3),
            agree_cell(row),
            style=_STYLES.get(row.status, "yellow"),
        )
    return table


def stage_table(rows: Sequence[BenchRow], title: str | None = "latency per call, p50 / p95 ms"):
    """The stage latencies as a :class:`rich.table.Table`, one line per run that measured any."""
    table = _table(STAGE_COLUMNS, left=2, title=title)
    for row in rows:
        if any(row.stages.get(s) is not None for s in STAGES):
            table.add_row(row.format, row.runtime, *_short_stage_cells(row), style=_STYLES.get(row.status, "yellow"))
    return table


def print_report(console, rows: Sequence[BenchRow], title: str) -> None:
    """Print the bench to a :class:`rich.console.Console`: a heading (title, machine, CPU
    features, threads), the runs table, the stage table and the notes. Every text that comes from
    outside (paths, errors, install hints such as ``pip install 'edge-emotion[openvino]'``) is
    printed as plain text, never read as rich markup."""
    console.print(title, markup=False, highlight=False)
    if rows:
        first = rows[0]
        isa = " ".join(first.isa) or "not reported"
        console.print(f"machine: {first.machine}; threads: {first.threads}", markup=False, highlight=False)
        console.print(f"CPU features: {isa}", markup=False, highlight=False)
    console.print(rich_table(rows))
    console.print(stage_table(rows))
    explained = parity_note(rows)
    if explained:
        console.print(explained, markup=False, highlight=False)
    for line in notes(rows):
        console.print(line, markup=False, highlight=False)


def parity_note(rows: Sequence[BenchRow]) -> str | None:
    """What the "agree" column measures, and the largest logit change behind it; None when no row
    was compared."""
    ran = [row for row in rows if row.status in (OK, FAILED_VALIDATION)]
    compared = [row for row in ran if row.parity and not row.parity.get("is_reference")]
    if not compared:
        if not any((row.format, row.runtime) == PARITY_REFERENCE for row in ran):
            return "agree: nothing compared (no row ran the FP32 ONNX graphs on ONNX Runtime)" if ran else None
        return "agree: nothing compared (no face found in the clip, or no other row)"
    faces = compared[0].parity["faces"]
    diffs = [(row.parity.get("max_abs_diff_logits"), row.format, row.runtime) for row in compared]
    unknown = [d for d in diffs if d[0] is None]
    worst = unknown[0] if unknown else max(diffs)
    change = "not finite" if worst[0] is None else f"{worst[0]:.3g}"
    return (
        f"agree: % of the clip's {faces} faces that each row labels (face only) as the FP32 ONNX graphs "
        f"on ONNX Runtime (ref) do, computed on this machine; largest logit change {change} "
        f"({worst[1]} on {worst[2]})."
    )


def markdown_table(rows: Sequence[BenchRow]) -> str:
    """The rows as a GitHub markdown table, with the notes under it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    explained = parity_note(rows)
    extra = ([explained] if explained else []) + notes(rows)
    if extra:
        lines.append("")
        lines += [f"- {line}" for line in extra]
    return "\n".join(lines) + "\n"


__all__ = [
    "COLUMNS",
    "RUN_COLUMNS",
    "STAGE_COLUMNS",
    "rows_to_json",
    "write_json",
    "precision_cell",
    "cells",
    "notes",
    "rich_table",
    "stage_table",
    "print_report",
    "markdown_table",
]
