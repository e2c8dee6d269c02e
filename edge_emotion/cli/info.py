"""``edge-emotion info``: versions, available runtimes and their devices, the default bundle."""

from __future__ import annotations

import json
import platform
import sys

import typer

from ..info import collect_info


def register(app: typer.Typer) -> None:
    @app.command()
    def info(as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
        """Show versions, which runtimes are importable with their devices, and the default bundle."""
        report = collect_info()
        if as_json:
            typer.echo(json.dumps(report, indent=2))
            return
        typer.echo(f"edge-emotion {report['version']}")
        typer.echo(f"python       {report['python']} ({platform.machine()}, {sys.platform})")
        typer.echo("runtimes:")
        for name, entry in report["runtimes"].items():
            if entry["available"]:
                devices = ", ".join(entry["devices"]) or "-"
                typer.echo(f"  {name:<12} {entry['version']:<14} devices: {devices}")
            else:
                typer.echo(f"  {name:<12} not installed  ({entry['install']})")
        default = report["default_bundle"]
        typer.echo(f"default model: {default if default else 'none shipped in this install'}")
