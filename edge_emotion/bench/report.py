"""Bench rows as JSON (``--json PATH``), as a rich table (the screen) and as a markdown table
(``BENCHMARKS.md``, ``tools/bench_presets.py``)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from .rows import STAGES, BenchRow

_STAGE_TITLES = {
    "face": "face",
    "log_mel": "log-mel",
    "visual_encoder": "visual enc",
    "audio_encoder": "audio enc",
    "fusion": "fusion",
}
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
    "threads",
)


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


def cells(row: BenchRow) -> list[str]:
    """The row's cells in :data:`COLUMNS` order."""
    stages = []
    for stage in STAGES:
        timing = row.stages.get(stage)
        stages.append("-" if timing is None else f"{timing.p50_ms:.2f} / {timing.p95_ms:.2f}")
    return [
        row.runtime,
        row.format,
        row.precision,
        row.status,
        _num(row.size_mb, 2),
        *stages,
        _num(row.rtf, 3),
        _num(row.peak_rss_mb, 0),
        _num(row.metric, 3),
        str(row.threads),
    ]


def notes(rows: Sequence[BenchRow]) -> list[str]:
    """One line per row that did not simply pass: its error or its failed validation."""
    lines = []
    for row in rows:
        if row.error:
            lines.append(f"{row.format} on {row.runtime}: {row.status}: {row.error}")
        elif row.status != "ok" and row.validation:
            lines.append(f"{row.format} on {row.runtime}: {row.status}: {row.validation}")
    return lines


def rich_table(rows: Sequence[BenchRow], title: str | None = None):
    """A :class:`rich.table.Table` of the rows."""
    from rich.table import Table

    table = Table(title=title)
    for column in COLUMNS:
        table.add_column(column, justify="left" if column in ("runtime", "format", "precision", "status") else "right")
    styles = {"ok": None, "skipped": "dim", "failed": "red"}
    for row in rows:
        table.add_row(*cells(row), style=styles.get(row.status, "yellow"))
    return table


def markdown_table(rows: Sequence[BenchRow]) -> str:
    """The rows as a GitHub markdown table, with the notes under it."""
    lines = ["| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    lines += ["| " + " | ".join(cells(row)) + " |" for row in rows]
    extra = notes(rows)
    if extra:
        lines.append("")
        lines += [f"- {line}" for line in extra]
    return "\n".join(lines) + "\n"


__all__ = ["COLUMNS", "rows_to_json", "write_json", "cells", "notes", "rich_table", "markdown_table"]
