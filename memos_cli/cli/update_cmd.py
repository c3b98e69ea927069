"""``memos add``, ``memos rm-memories`` and ``memos diff``: keep a cube up to date and see what
changed (for CI pipelines; see ``memos_cli.lifecycle.update``)."""

from __future__ import annotations

import json
from pathlib import Path

import typer

from memos_cli import config
from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT, load_embedder
from memos_cli.cli.output import err, out, print_json, warn_unsigned
from memos_cli.cli.source_opts import (
    BASE_OPT,
    EXTENSIONLESS_OPT,
    OWNER_OPT,
    SHARE_OPT,
    TAG_OPT,
    TTL_OPT,
    VISIBILITY_OPT,
    source_defaults,
)
from memos_cli.errors import UsageError
from memos_cli.lifecycle.dump import Filter
from memos_cli.lifecycle.update import add, diff, remove


def add_command(
    cube: Path = typer.Argument(..., help="The .memcube directory to add to."),
    sources: list[Path] = typer.Argument(..., metavar="SOURCE...",
                                         help="Files or directories, as for pack."),
    key: Path | None = typer.Option(None, "--key", help="Re-sign with this private key "
                                    "(without one the cube is left unsigned)."),
    embedder: Path | None = EMBEDDER_OPT,
    owner: str | None = OWNER_OPT,
    visibility: str = VISIBILITY_OPT,
    share_with: list[str] = SHARE_OPT,
    ttl: str | None = TTL_OPT,
    tag: list[str] = TAG_OPT,
    extensionless: str | None = EXTENSIONLESS_OPT,
    base: Path | None = BASE_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Add sources to an existing cube in place (atomic): only new memories are embedded, a
    memory with an id already in the cube becomes its next version, the revision goes up.

    Example: [bold]memos add team.memcube extra.md --key team.key[/bold]
    """
    defaults = source_defaults(owner, visibility, share_with, ttl, tag, extensionless, base)
    report = add(cube, list(sources), embedder=load_embedder(embedder), defaults=defaults,
                 key=config.signing_key(key))
    if report.signature_dropped:
        warn_unsigned(report.path)
    if as_json:
        print_json(report.to_dict())
        return
    for note in report.notes:
        err.print(f"note: {note}", markup=False)
    out.print(f"{report.path}: {report.added} added, {report.changed} changed (new versions), "
              f"{report.duplicates} already there; {report.embedded} embedded; revision "
              f"{report.revision}, " + ("signed" if report.signed else "unsigned"),
              markup=False)


def rm_command(
    cube: Path = typer.Argument(..., help="The .memcube directory."),
    ids: str | None = typer.Option(None, "--ids", help="Comma-separated memory ids."),
    filter_: str | None = typer.Option(None, "--filter", help="owner=,tag=,type=,since=,until= "
                                       "(all must hold)."),
    key: Path | None = typer.Option(None, "--key", help="Re-sign with this private key."),
    as_json: bool = JSON_OPT,
) -> None:
    """Remove memories from a cube in place (atomic); the rest keep their vectors.

    Example: [bold]memos rm-memories team.memcube --filter tag=draft[/bold]
    """
    if (ids is None) == (filter_ is None):
        raise UsageError("give --ids or --filter (one of them)")
    wanted = {i.strip() for i in (ids or "").split(",") if i.strip()}
    match = Filter.parse(filter_) if filter_ else None
    report = remove(cube, lambda m: not (m.id in wanted if match is None else match(m)),
                    key=config.signing_key(key))
    if report.signature_dropped:
        warn_unsigned(report.path)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"{report.path}: {report.removed} removed; revision {report.revision}, "
              + ("signed" if report.signed else "unsigned"), markup=False)


def diff_command(
    a: Path = typer.Argument(..., help="The first .memcube."),
    b: Path = typer.Argument(..., help="The second .memcube."),
    as_json: bool = JSON_OPT,
) -> None:
    """Compare two cubes: memories added, removed and changed (by id and content hash),
    metadata, manifest fields, tiers and signature state. Exit 0 when equal, 1 when not, as
    diff does.

    Example: [bold]memos diff old.memcube new.memcube --json[/bold]
    """
    d = diff(a, b)
    if as_json:
        print_json(d)
    else:
        for mid in d["added"]:
            out.print(f"+ {mid}", markup=False)
        for mid in d["removed"]:
            out.print(f"- {mid}", markup=False)
        for c in d["changed"]:
            out.print(f"~ {c['id']} content {c['from'][7:19]} -> {c['to'][7:19]}", markup=False)
        for c in d["metadata_changed"]:
            out.print(f"~ {c['id']} {', '.join(c['fields'])}", markup=False)
        for name, (x, y) in d["manifest"].items():
            out.print(f"manifest {name}: {json.dumps(x)} -> {json.dumps(y)}", markup=False)
        for t in d["tiers_added"]:
            out.print(f"+ tier {t}", markup=False)
        for t in d["tiers_dropped"]:
            out.print(f"- tier {t}", markup=False)
        if d["signed"][0] != d["signed"][1]:
            out.print("signature: " + " -> ".join("signed" if s else "unsigned"
                                                  for s in d["signed"]), markup=False)
        if d["equal"]:
            out.print("cubes are equal", markup=False)
    raise typer.Exit(0 if d["equal"] else 1)


def register(app: typer.Typer) -> None:
    app.command("add")(add_command)
    app.command("rm-memories")(rm_command)
    app.command("diff")(diff_command)
