"""``memos dump``: export what a user may read (MemDumper)."""

from __future__ import annotations

from pathlib import Path

import typer

from memos_cli.cli.cube import JSON_OPT, pack_time
from memos_cli.cli.output import out, print_json
from memos_cli.cube import open_cube
from memos_cli.dump import Filter, dump
from memos_cli.governance import current_user


def dump_command(
    cube: Path = typer.Argument(..., help="The .memcube directory to export from."),
    output: Path = typer.Option(..., "--output", "-o", help="OUT.jsonl or OUT.memcube."),
    as_user: str | None = typer.Option(None, "--as", help="Export what this user may read "
                                                         "[default: $MEMOS_USER or login]."),
    filter_: str | None = typer.Option(None, "--filter", help="owner=,tag=,type=,since=,until="),
    fmt: str = typer.Option("jsonl", "--format", help="jsonl (lossless) or memcube."),
    key: Path | None = typer.Option(None, "--key", help="Sign a memcube export."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output."),
    as_json: bool = JSON_OPT,
) -> None:
    """Export the memories a user may read, with their permission metadata (atomic).

    Example: [bold]memos dump team.memcube -o team.jsonl --as ann --filter tag=budget[/bold]
    """
    report = dump(open_cube(cube), output, user=as_user or current_user(),
                  keep=Filter.parse(filter_), fmt=fmt, key=key, force=force, now=pack_time())
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"exported {report.memories} memories to {report.path} ({report.format}); "
              f"{report.withheld} withheld (not readable by the user or filtered out)")


def register(app: typer.Typer) -> None:
    app.command("dump")(dump_command)
