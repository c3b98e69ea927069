"""``memos add``, ``memos rm-memories`` and ``memos diff``: keep a cube up to date and see what
changed (for CI pipelines; see ``memos_cli.lifecycle.update``)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import typer

from memos_cli import config
from memos_cli.api import Session
from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT, load_embedder
from memos_cli.cli.output import err, out, print_json, warn_unsigned
from memos_cli.cli.source_opts import (
    BASE_OPT,
    ENCODING_OPT,
    EXTENSIONLESS_OPT,
    OWNER_OPT,
    SHARE_OPT,
    SKIP_UNREADABLE_OPT,
    TAG_OPT,
    TTL_OPT,
    VISIBILITY_OPT,
    source_defaults,
)
from memos_cli.cli.time_opts import DRY_RUN_OPT, SUPERSEDE_OPT, show_decisions
from memos_cli.cube import open_cube
from memos_cli.cube.layout import require_cube_dir
from memos_cli.errors import UsageError
from memos_cli.lifecycle.dump import Filter
from memos_cli.lifecycle.update import diff, remove
from memos_cli.memory import resolve_id
from memos_cli.sources import check_paths


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
    encoding: str = ENCODING_OPT,
    skip_unreadable: bool = SKIP_UNREADABLE_OPT,
    supersede: bool = SUPERSEDE_OPT,
    dry_run: bool = DRY_RUN_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Add sources to an existing cube in place (atomic): only new memories are embedded, a
    memory with an id already in the cube becomes its next version, the revision goes up.
    A file the cube already holds is an edit: its changed paragraphs supersede the old ones
    and text that left the file is removed. Each other new memory is a duplicate, an update
    of a current memory (which is kept as history) or new.

    Example: [bold]memos add team.memcube notes/db.md --dry-run[/bold]
    """
    defaults = source_defaults(owner, visibility, share_with, ttl, tag, extensionless, base,
                               encoding=encoding, skip_unreadable=skip_unreadable)
    require_cube_dir(cube)  # both checked before the embedder loads
    check_paths(list(sources))
    session = Session([cube], embedder=load_embedder(embedder))
    report = session.add(list(sources), defaults=defaults, key=config.signing_key(key),
                         supersede=supersede, dry_run=dry_run)
    if report.signature_dropped:
        warn_unsigned(report.path)
    if as_json:
        print_json(report.to_dict())
        return
    for note in report.notes:
        err.print(f"note: {note}", markup=False, soft_wrap=True)
    if dry_run:
        show_decisions(report.decisions, report.texts)
    verb = "would be" if dry_run else "were"
    out.print(f"{report.path}: {report.added} added, {report.updates} superseding what they "
              f"revise, {report.duplicates} already there; {report.removed} {verb} removed "
              "(text that left a source), "
              f"{report.changed} changed (same id, new version)"
              + ("; dry run, nothing written" if dry_run else
                 f"; {report.embedded} embedded; revision {report.revision}, "
                 + ("signed" if report.signed else "unsigned")), markup=False)


def rm_command(
    cube: Path = typer.Argument(..., help="The .memcube directory."),
    ids: str | None = typer.Option(None, "--ids", help="Comma-separated memory ids."),
    filter_: str | None = typer.Option(None, "--filter",
                                       help="owner=,tag=,type=,source=,since=,until= (all "
                                            "must hold; source=DIR/ takes a directory)."),
    key: Path | None = typer.Option(None, "--key", help="Re-sign with this private key."),
    as_json: bool = JSON_OPT,
) -> None:
    """Remove memories from a cube in place (atomic); the rest keep their vectors.

    Example: [bold]memos rm-memories team.memcube --filter tag=draft[/bold]
    """
    if (ids is None) == (filter_ is None):
        raise UsageError("give --ids or --filter (one of them)")
    given = [i.strip() for i in (ids or "").split(",") if i.strip()]
    # the ids only: remove() opens and verifies the cube itself
    known = [m.id for m in open_cube(cube).memories] if given else []
    wanted = {resolve_id(i, known, strict=False) for i in given}
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
    stat: bool = typer.Option(False, "--stat", help="A summary per part (memories, files, "
                              "manifest), as git diff --stat."),
    as_json: bool = JSON_OPT,
) -> None:
    """Compare two cubes in every tier and the manifest: memories added, removed and changed
    (by id and content hash, with source and text), metadata, every manifest key, every file
    (KV segments and chunks, adapters, the index) and the signature state. Exit 0 when
    equal, 1 when not, as diff does.

    Example: [bold]memos diff old.memcube new.memcube --stat[/bold]
    """
    d = diff(a, b)
    if as_json:
        print_json(d)
    elif stat:
        _stat(d)
    else:
        _show_diff(d)
    raise typer.Exit(0 if d["equal"] else 1)


def _stat(d: dict[str, Any]) -> None:
    f = d["files"]
    grew = d["bytes"][1] - d["bytes"][0]
    rows = [
        ("memories", f"+{len(d['added'])} -{len(d['removed'])} ~{len(d['changed'])} "
                     f"({len(d['metadata_changed'])} metadata only)"),
        ("files", f"+{len(f['added'])} -{len(f['removed'])} ~{len(f['changed'])} "
                  f"({grew:+,} bytes: {d['bytes'][0]:,} -> {d['bytes'][1]:,})"),
        ("manifest", ", ".join(d["manifest"]) or "-"),
        ("tiers", " ".join([*(f"+{t}" for t in d["tiers_added"]),
                            *(f"-{t}" for t in d["tiers_dropped"])]) or "-"),
        ("signature", " -> ".join("signed" if s else "unsigned" for s in d["signed"])
         if d["signed"][0] != d["signed"][1] else "unchanged"),
    ]
    for name, value in rows:
        out.print(f"{name:<10} {value}", markup=False)
    if d["equal"]:
        out.print("cubes are equal", markup=False)


def _show_diff(d: dict[str, Any]) -> None:
    def one_line(text: str) -> str:
        return " ".join(text.split())

    for m in d["added_memories"]:
        out.print(f"+ {m['id']}  {m['source']}  {one_line(m['text'])}", markup=False)
    for m in d["removed_memories"]:
        out.print(f"- {m['id']}  {m['source']}  {one_line(m['text'])}", markup=False)
    for c in d["changed"]:
        out.print(f"~ {c['id']} content {c['from'][7:19]} -> {c['to'][7:19]}  {c['source']}",
                  markup=False)
        out.print(f"    - {one_line(c['text_from'])}", markup=False)
        out.print(f"    + {one_line(c['text_to'])}", markup=False)
    for c in d["metadata_changed"]:
        out.print(f"~ {c['id']} {', '.join(c['fields'])}", markup=False)
    for name, (x, y) in d["manifest"].items():
        shown = [json.dumps(v, sort_keys=True) for v in (x, y)]
        if max(len(s) for s in shown) > 160:
            shown = [s[:157] + "..." if len(s) > 160 else s for s in shown]
        out.print(f"manifest {name}: {shown[0]} -> {shown[1]}", markup=False)
    for t in d["tiers_added"]:
        out.print(f"+ tier {t}", markup=False)
    for t in d["tiers_dropped"]:
        out.print(f"- tier {t}", markup=False)
    f = d["files"]
    for x in f["added"]:
        out.print(f"+ file {x['path']} ({x['size']:,} bytes)", markup=False)
    for x in f["removed"]:
        out.print(f"- file {x['path']} ({x['size']:,} bytes)", markup=False)
    for x in f["changed"]:
        out.print(f"~ file {x['path']} ({x['from_size']:,} -> {x['to_size']:,} bytes)",
                  markup=False)
    if d["signed"][0] != d["signed"][1]:
        out.print("signature: " + " -> ".join("signed" if s else "unsigned"
                                              for s in d["signed"]), markup=False)
    if d["equal"]:
        out.print("cubes are equal", markup=False)


def register(app: typer.Typer) -> None:
    app.command("add")(add_command)
    app.command("rm-memories")(rm_command)
    app.command("diff")(diff_command)
