"""The ``edge-emotion`` command line (typer). Each command lives in its own module here and
registers itself with :func:`register`; this file is the app and the list of command modules.

Bad input gets one clear line on stderr and exit code 2, never a traceback (docs/DESIGN.md).
"""

from __future__ import annotations

import importlib
import logging
import os
import sys

# numpy's OpenBLAS would run the per-window matrix products (log-mel) on a second thread that then
# spins between windows, taking a core from decoding and face detection (BENCHMARKS.md, "Files"):
# on a 60-s file, 11-13 CPU s instead of 6-7. Set here, before the command modules below import
# numpy (only the package's config and errors are loaded before this); a value already set is kept.
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")

import typer  # noqa: E402 - after the variable above

from ..errors import EdgeEmotionError  # noqa: E402

app = typer.Typer(
    name="edge-emotion",
    help="On-device audio-visual emotion recognition.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@app.callback()
def _root() -> None:
    """On-device audio-visual emotion recognition: camera + microphone in, emotions out."""


# Modules under edge_emotion.cli; each defines ``register(app: typer.Typer) -> None``.
COMMAND_MODULES = ["info", "devices", "run", "export", "train", "eval", "bench"]

for _name in COMMAND_MODULES:
    importlib.import_module(f"{__name__}.{_name}").register(app)


def fail(message: str, code: int = 2) -> typer.Exit:
    """Print one line on stderr and return the exit to raise: ``raise fail("...")``."""
    typer.echo(f"edge-emotion: error: {message}", err=True)
    return typer.Exit(code)


def main(argv: list[str] | None = None) -> None:
    logging.basicConfig(level=logging.WARNING, format="edge-emotion: %(levelname)s: %(message)s")
    try:
        app(args=argv, prog_name="edge-emotion")
    except EdgeEmotionError as exc:  # anything the library raised on purpose: one line, exit 2
        typer.echo(f"edge-emotion: error: {exc}", err=True)
        sys.exit(2)
    except KeyboardInterrupt:
        sys.exit(130)
