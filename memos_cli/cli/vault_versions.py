"""``memos vault versions``, ``checkout``, ``compact``, ``migrate``, ``unsupersede`` and
``seal``: the vault's Lance versions, read as they were, pruned, the one-time move from the
generation layout, an undone supersession, and seals on rows written without them."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import typer

from memos_cli.cli.cube import JSON_OPT
from memos_cli.cli.output import DataTable, out, plain, print_json, status
from memos_cli.cli.source_opts import parse_ttl
from memos_cli.cli.vault_opts import AS_OPT, VAULT_OPT
from memos_cli.cli.vault_opts import open_vault as _open
from memos_cli.errors import UsageError
from memos_cli.governance.policy import current_user
from memos_cli.vault.compact import compact as do_compact
from memos_cli.vault.evolve import unsupersede as do_unsupersede
from memos_cli.vault.layout import CHECKOUT
from memos_cli.vault.migrate import migrate as do_migrate
from memos_cli.vault.sealing import seal_vault


def versions(vault: str | None = VAULT_OPT, as_json: bool = JSON_OPT) -> None:
    """List the vault's versions (one per change) with the operation that made each.

    Example: [bold]memos vault versions[/bold], then [bold]memos vault ls --at 3[/bold]
    """
    v = _open(vault)
    rows = v.versions()
    made: dict[Any, dict[str, Any]] = {}
    for rec in v.read_log():
        if rec["op"] in ("load", "rm", "gc", "share", "archive", "restore", "migrate",
                         "compact", "unsupersede"):
            made.setdefault(rec.get("version"), rec)
    for r in rows:
        by = made.get(r["version"])
        r["op"] = f"{by['op']} by {by['user']}" if by else "indexes and files (optimize)"
    if as_json:
        print_json({"vault": str(v.path), "checked_out": v.at if v.pinned else None,
                    "versions": rows})
        return
    t = DataTable(title=f"{len(rows)} versions of {v.path}" + (
        f" (checked out at {v.at}, read-only)" if v.pinned else ""), title_justify="left")
    for col in ("version", "time", "rows", "made by"):
        t.add_column(col)
    for r in rows:
        t.add_row(str(r["version"]), r["time"], str(r["rows"]), r["op"])
    out.print(t)


def checkout(version: str = typer.Argument(..., metavar="VERSION|latest",
                                           help="A version from memos vault versions, or "
                                                "latest to end the checkout."),
             vault: str | None = VAULT_OPT) -> None:
    """Read the vault as it was at VERSION (ls, show, search, run, dump, log) until
    `memos vault checkout latest`; changes are refused meanwhile.

    Example: [bold]memos vault checkout 4[/bold]
    """
    v = _open(vault)
    if version == "latest":
        v.place.remove(CHECKOUT)
        out.print(f"{v.path}: reading the latest version again")
        return
    if not version.isdigit():
        raise UsageError(f"VERSION {version!r} is a number from memos vault versions, or latest")
    known = [r["version"] for r in v.versions()]
    if int(version) not in known:
        raise UsageError(f"the vault has no version {version} (it keeps "
                         f"{', '.join(map(str, known[-5:])) or 'none'}...)", path=v.path)
    v.place.write_text(CHECKOUT, f"{int(version)}\n")
    out.print(f"{v.path}: reading version {version} (read-only) until memos vault checkout "
              "latest")


def compact(vault: str | None = VAULT_OPT,
            keep: str = typer.Option("7d", "--keep", metavar="AGE", help="Keep versions "
                                     "younger than this for checkout (30m, 12h, 7d; 0 keeps "
                                     "only the latest, and a search running meanwhile may "
                                     "fail)."),
            as_json: bool = JSON_OPT) -> None:
    """Merge the table's small files and prune versions older than --keep (Lance's optimize);
    the space they held is given back.

    Example: [bold]memos vault compact --keep 1d[/bold]
    """
    v = _open(vault)
    older = timedelta(0) if keep.strip() == "0" else parse_ttl(keep)

    if v.pinned:
        raise UsageError(f"the vault is checked out at version {v.at} (read-only); "
                         "`memos vault checkout latest` first", path=v.path)
    with status("compacting"):  # Lance's optimize commits like any writer: no lock
        data = {"vault": str(v.path), **do_compact(v, older)}
    v.log(current_user(), "compact", detail=data)
    if as_json:
        print_json(data)
    else:
        out.print(f"compacted {v.path}: {data['bytes_before']:,} -> {data['bytes_after']:,} "
                  f"bytes, {data['versions_before']} -> {data['versions_after']} versions"
                  + ("; built the approximate vector index" if data["ann_index_built"] else ""))


def migrate(vault: str | None = VAULT_OPT, as_json: bool = JSON_OPT) -> None:
    """Convert a vault written by an older memos (generation directories) to the Lance table,
    once and atomically; nothing is lost.

    Example: [bold]memos vault migrate[/bold]
    """
    with status("migrating"):
        counts = do_migrate(_open(vault), user=current_user())
    if as_json:
        print_json(counts)
    else:
        out.print(f"migrated: {counts['memories']} memories, {counts['history']} earlier "
                  f"versions, {counts['archived']} archived, {counts['cubes']} cubes; now at "
                  f"version {counts['version']}")


def unsupersede(memory_id: str = typer.Argument(..., metavar="MEMORY_ID",
                                                help="Either memory of the supersession: the "
                                                     "one superseded or the one that "
                                                     "superseded it."),
                vault: str | None = VAULT_OPT, as_user: str | None = AS_OPT,
                as_json: bool = JSON_OPT) -> None:
    """Undo a wrong supersession: the earlier memory is current again and the later one no
    longer names it; the decision undone goes to the access log (see memos history).

    Example: [bold]memos vault unsupersede 3f2a9c1e[/bold]
    """
    user = as_user or current_user()
    earlier, later = do_unsupersede(_open(vault), memory_id, user=user)
    if as_json:
        print_json({"earlier": earlier.to_dict(), "later": later.to_dict()})
        return
    out.print(plain(f"{earlier.id[:8]} is current again; {later.id[:8]} no longer supersedes "
                    "it"))


def seal(vault: str | None = VAULT_OPT, as_user: str | None = AS_OPT,
         dry_run: bool = typer.Option(False, "--dry-run", help="Count what would be sealed; "
                                      "write nothing."),
         as_json: bool = JSON_OPT) -> None:
    """Seal the vault's unsealed rows and its role table with your signing key (the config's
    key, or MEMOS_KEY), after checking every seal already there. Readers then refuse a row
    changed outside memos; with vault_seals = require they also refuse unsealed rows.

    Example: [bold]memos vault seal[/bold]
    """
    user = as_user or current_user()
    with status("sealing"):
        report = seal_vault(_open(vault), user=user, dry_run=dry_run)
    if as_json:
        print_json(report)
        return
    others = ", ".join(f"{n} by {who}" for who, n in sorted(report["already"].items()))
    out.print(plain(("would seal" if dry_run else "sealed") + f" {report['sealed']} rows"
                    + (" and the role table" if report["roles"] else "")
                    + (f"; sealed already: {others}" if others else "")
                    + (f"; {report['unknown_signer']} sealed by keys this machine does not "
                       "trust (memos trust add)" if report["unknown_signer"] else "")))


def register(vault_app: typer.Typer) -> None:
    for fn in (versions, checkout, compact, migrate, unsupersede, seal):
        vault_app.command(fn.__name__)(fn)
