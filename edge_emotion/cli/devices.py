"""``edge-emotion devices``: the cameras and microphones of this machine, with the names
``run --camera`` / ``--mic`` accept."""

from __future__ import annotations

import json

import typer


def register(app: typer.Typer) -> None:
    @app.command()
    def devices(as_json: bool = typer.Option(False, "--json", help="Print the devices as JSON.")) -> None:
        """List the cameras (for --camera) and the microphones (for --mic) found here."""
        from ..errors import MissingDependencyError
        from ..sources.camera import list_cameras
        from ..sources.microphone import list_microphones

        cameras = list_cameras()
        mic_problem = None
        try:
            mics = list_microphones()
        except MissingDependencyError as exc:
            mics, mic_problem = [], str(exc)
        if as_json:
            typer.echo(
                json.dumps(
                    {
                        "cameras": [{"index": c.index, "name": c.name, "path": c.path} for c in cameras],
                        "microphones": [
                            {
                                "index": m.index,
                                "name": m.name,
                                "channels": m.channels,
                                "default_sample_rate": m.default_sample_rate,
                                "default": m.default,
                            }
                            for m in mics
                        ],
                        "microphones_unavailable": mic_problem,
                    },
                    indent=2,
                )
            )
            return
        typer.echo("cameras (--camera INDEX; a stream URL, a video file or a device path also works):")
        if not cameras:
            typer.echo("  none found")
        for c in cameras:
            typer.echo(f"  {c.index:<3} {c.name}" + (f"  ({c.path})" if c.path else ""))
        typer.echo("microphones (--mic default, an INDEX, or a part of the NAME):")
        if mic_problem:
            typer.echo(f"  cannot list: {mic_problem}")
        elif not mics:
            typer.echo("  none found")
        for m in mics:
            mark = "  [default]" if m.default else ""
            typer.echo(f"  {m.index:<3} {m.name}  ({m.channels} ch, {m.default_sample_rate} Hz){mark}")
