"""``edge-emotion info``: versions, available runtimes and their devices, the default bundle."""

from __future__ import annotations

import json
import platform
import sys

import typer

from ..info import collect_info


def _bundle_licence(bundle: str | None) -> str | None:
    """The licence of a bundle's weights, as its manifest's ``provenance.licence`` states it."""
    if not bundle:
        return None
    try:
        with open(f"{bundle}/manifest.json", encoding="utf-8") as f:
            licence = json.load(f).get("provenance", {}).get("licence")
    except (OSError, ValueError, AttributeError):
        return None
    return licence if isinstance(licence, str) and licence.strip() else None


def register(app: typer.Typer) -> None:
    @app.command()
    def info(as_json: bool = typer.Option(False, "--json", help="Print the report as JSON.")) -> None:
        """Show versions, which runtimes are importable with their devices, and the default bundle."""
        report = collect_info()
        report["default_bundle_licence"] = _bundle_licence(report["default_bundle"])
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
        detector = report["face_detector"]
        typer.echo(f"face detector: MediaPipe's short-range BlazeFace ({detector['model']}) on {detector['runtime']}")
        typer.echo(f"  licence: {detector['licence']}")
        default = report["default_bundle"]
        typer.echo(f"default model: {default if default else 'none shipped in this install'}")
        if default:
            typer.echo(f"  licence of its weights: {report['default_bundle_licence'] or 'not stated in its manifest'}")
