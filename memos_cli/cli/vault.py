"""``memos load``, ``memos vault ...`` and ``memos trust ...``: the vault and its trust store."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from memos_cli.api import Session
from memos_cli.cli import vault_versions
from memos_cli.cli.choices import OnConflict
from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT, load_embedder
from memos_cli.cli.help import MemosTyper
from memos_cli.cli.output import DataTable, err, out, print_json, status
from memos_cli.cli.time_opts import DRY_RUN_OPT, SUPERSEDE_OPT, show_decisions
from memos_cli.cli.usage_view import totals
from memos_cli.cli.vault_opts import AS_OPT, VAULT_OPT, open_vault, parse_owner_map
from memos_cli.errors import UsageError
from memos_cli.governance.access import explain, share
from memos_cli.governance.policy import can_read, current_user
from memos_cli.governance.trust import trust_add as add
from memos_cli.governance.trust import trust_list, trust_rm
from memos_cli.memory import resolve_id
from memos_cli.memstore.ref import is_remote
from memos_cli.scheduler.usage import UsageStore
from memos_cli.vault import gc, remove
from memos_cli.vault.archive import archive_cold, restore

vault_app = MemosTyper(help="Installed cubes: list, show, remove, expire, audit log.",
                        no_args_is_help=True)
trust_app = MemosTyper(help="The public keys whose signed cubes `memos load` accepts.",
                        no_args_is_help=True)


AT_OPT = typer.Option(None, "--at", metavar="VERSION", help="Read the vault as it was at this "
                      "version (memos vault versions).")


def load_command(
    source: str = typer.Argument(..., help="A .memcube directory, an oci:// reference "
                                           "(pulled and verified first), or a file or "
                                           "directory of another memory system (MemOS, Letta "
                                           ".af, mem0, JSONL, LoCoMo), imported on the way."),
    vault: str | None = VAULT_OPT,
    as_user: str | None = AS_OPT,
    on_conflict: OnConflict = typer.Option("version", help="A memory with an installed id: version "
                                                    "(keep both, as a version chain), skip, "
                                                    "or replace."),
    allow_unsigned: bool = typer.Option(False, "--allow-unsigned",
                                        help="Accept an unsigned cube or one signed by a key "
                                             "you do not trust (never a tampered one)."),
    embedder: Path | None = EMBEDDER_OPT,
    plain_http: bool = typer.Option(False, "--plain-http", help="Speak HTTP to an oci:// "
                                    "registry (implied for localhost and 127.0.0.1)."),
    owner: str | None = typer.Option(None, "--owner", metavar="USER[/PERSONA]",
                                     help="Install every memory as this owner's (memory "
                                          "handed over, or moved to a machine where you are "
                                          "another user)."),
    owner_map: list[str] = typer.Option([], "--owner-map", metavar="OLD=NEW",
                                        help="Install OLD's memories as NEW's (repeatable)."),
    supersede: bool = SUPERSEDE_OPT,
    dry_run: bool = DRY_RUN_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Verify a cube and install its memories into the vault (MemLoader), atomically.

    Expired memories are not installed, identical ones (content hash) not duplicated; a memory
    that updates an installed one extends its version chain. Every other memory is decided
    against the vault's current memories of its owner: a restatement is not installed, an
    update supersedes the memory it revises (kept, with its valid time ended).
    A cube from a registry is recorded with its reference and digest (see memos outdated).
    --owner and --owner-map change whose memories they are (recorded in the access log).
    Example: [bold]memos load team.memcube --as bob --owner-map ann=bob[/bold]
    """
    owners = parse_owner_map(owner, owner_map)
    remote = is_remote(source)
    is_cube = remote or (Path(source) / "manifest.json").is_file()
    with Session(vault=vault, user=as_user or current_user(), embedder=embedder) as session:
        if not is_cube:  # another system's file: its memories are embedded on the way
            with status("loading embedder"):
                session.encoder()
        with status(f"pulling {source}" if remote else "verifying and loading"):
            report = session.load(source, on_conflict=on_conflict, allow_unsigned=allow_unsigned,
                                  owners=owners, supersede=supersede, dry_run=dry_run,
                                  plain_http=plain_http)
    if as_json:
        print_json({**report.to_dict(), "dry_run": dry_run})
        return
    for note in report.notes:
        err.print(f"note: {note}", markup=False, soft_wrap=True)
    d = report.to_dict()
    if dry_run:
        show_decisions(report.decisions, {})
    out.print(f"{'would load' if dry_run else 'loaded'} {report.name} ({report.cube_id}, "
              f"signer: {report.signer}): {d['added']} added, {d['updates']} superseding "
              f"what they revise, {d['versioned']} new versions, {d['replaced']} replaced, "
              f"{d['duplicates']} duplicates and {d['expired']} expired left out, "
              f"{d['skipped_conflict']} clashes skipped"
              + ("; dry run, nothing written" if dry_run else ""))
    if report.dangling:
        err.print(f"note: {', '.join(report.dangling)} name no role of this vault: they grant "
                  "nothing until defined (memos role add)", markup=False)


@vault_app.command("ls")
def vault_ls(vault: str | None = VAULT_OPT, at: int | None = AT_OPT,
             usage: bool = typer.Option(False, "--usage", help="Add each cube's recorded use "
                                                               "(retrievals, uses, memories "
                                                               "used, last use)."),
             as_json: bool = JSON_OPT) -> None:
    """List installed cubes (as they were at a version, with --at).

    Example: [bold]memos vault ls --usage[/bold]; [bold]memos vault ls --at 3 --json[/bold]
    """
    v = open_vault(vault, at)
    state = v.state(vectors=False)
    counts: dict[str, int] = {}
    for cube_id in state.origin.values():
        counts[cube_id] = counts.get(cube_id, 0) + 1
    rows = [{"cube_id": cid, **info, "memories": counts.get(cid, 0)}
            for cid, info in sorted(state.cubes.items(), key=lambda kv: kv[1]["installed_at"])]
    if usage:
        ind = UsageStore(v.place.usage_dir()).indicators()
        for r in rows:
            r["usage"] = totals(ind, {i for i, c in state.origin.items() if c == r["cube_id"]})
    if as_json:
        print_json({"vault": str(v.path), "version": v.version, "cubes": rows})
        return
    t = DataTable(title=f"{len(rows)} cubes in {v.path}" + (
        f" at version {v.version}" + (" (checked out, read-only)" if v.pinned else "")
        if v.version is not None else ""), title_justify="left")
    cols = ["cube id", "name", "memories", "signer", "installed by", "installed at"]
    if usage:
        cols += ["retrieved", "used", "memories used", "last use"]
    for col in cols:
        t.add_column(col, overflow="fold")
    for r in rows:
        cells = [r["cube_id"], r["name"], str(r["memories"]), r["signer"], r["installed_by"],
                 r["installed_at"]]
        if usage:
            u = r["usage"]
            cells += [str(u["retrievals"]), str(u["uses"]), str(u["memories_used"]),
                      (u["last_use"] or "never")[:19]]
        t.add_row(*cells)
    out.print(t)


@vault_app.command("show")
def vault_show(cube_id: str = typer.Argument(..., metavar="ID",
                                             help="An installed cube's id, or a memory's."),
               vault: str | None = VAULT_OPT, at: int | None = AT_OPT,
               as_user: str | None = AS_OPT,
               why: bool = typer.Option(False, "--why", help="For a memory: say which rule "
                                        "lets the user read and change it, or not."),
               as_json: bool = JSON_OPT) -> None:
    """Show an installed cube and the memories of it the user may read, or, for a memory id
    with --why, the access decision and its rule.

    Example: [bold]memos vault show 3f2a... --as bob/assistant --why[/bold]
    """
    v = open_vault(vault, at)
    state = v.state(vectors=False)
    user = as_user or current_user()
    cube_id = resolve_id(cube_id, {*state.cubes, *(m.id for m in state.memories)},
                         "cube or memory")
    if cube_id not in state.cubes and any(m.id == cube_id for m in state.memories):
        _explain(v, state, cube_id, user, as_json)
        return
    if cube_id not in state.cubes:
        raise UsageError(f"no cube or memory {cube_id} in the vault", path=v.path)
    if why:
        raise UsageError("--why takes a memory id (memos vault show MEMORY_ID --why)")
    mems = [m for m in state.memories if state.origin.get(m.id) == cube_id]
    readable = [m for m in mems if can_read(m, user)]
    history = [m for m in state.history if m.id in {x.id for x in mems}]
    v.log(user, "show", cube_id=cube_id, memory_ids=[m.id for m in readable])
    if as_json:
        print_json({"cube_id": cube_id, **state.cubes[cube_id], "memories": len(mems),
                    "readable": [m.to_dict() for m in readable],
                    "withheld": len(mems) - len(readable),
                    "history": [m.to_dict() for m in history if can_read(m, user)]})
        return
    info = state.cubes[cube_id]
    out.print(f"[bold]{escape(info['name'])}[/bold] {cube_id}: {len(mems)} memories "
              f"({len(mems) - len(readable)} not readable by {escape(user)}), signer "
              f"{escape(info['signer'])}, installed by {escape(info['installed_by'])} at "
              f"{info['installed_at']} from {escape(str(info.get('source', '-')))}")
    for m in readable:
        out.print(f"  {m.id[:8]} v{m.version} [{m.visibility}] {m.render()}", markup=False)


def _explain(v, state, memory_id: str, user: str, as_json: bool) -> None:  # type: ignore[no-untyped-def]

    e = explain(state, memory_id, user)
    v.log(user, "show", memory_ids=[memory_id] if e["read"] else [],
          detail={"why": True, "read": e["read"]})
    if as_json:
        print_json(e)
        return
    out.print(f"{memory_id}: owner {e['owner'] or '-'}, {e['visibility']}, readers "
              f"{', '.join(e['readers']) or '-'}", markup=False)
    out.print(f"  read:   {'allowed' if e['read'] else 'denied'} for {user}: {e['read_rule']}",
              markup=False)
    out.print(f"  change: {'allowed' if e['write'] else 'denied'}: {e['write_rule']}",
              markup=False)


@vault_app.command("share")
def vault_share(memory_id: str = typer.Argument(..., help="An installed memory's id."),
                reader: list[str] = typer.Option([], "--reader", metavar="USER|role:NAME",
                                                 help="Add a reader (repeatable)."),
                unshare: list[str] = typer.Option([], "--remove", metavar="USER|role:NAME",
                                                  help="Remove a reader (repeatable)."),
                visibility: str | None = typer.Option(None, "--visibility",
                                                      help="private, shared or public."),
                vault: str | None = VAULT_OPT, as_user: str | None = AS_OPT,
                as_json: bool = JSON_OPT) -> None:
    """Change who may read an installed memory (its owner or an admin of a role it is
    shared with may).

    Example: [bold]memos vault share 3f2a... --reader role:analysts --visibility shared[/bold]
    """
    v = open_vault(vault)
    found = v.memories([memory_id])  # a read by key; the whole vault only for a prefix
    if not found:
        memory_id = resolve_id(memory_id, [m.id for m in v.state(vectors=False).memories])
        found = v.memories([memory_id])
    was = next((x.visibility for x in found.values()), None)
    m = share(v, memory_id, user=as_user or current_user(), readers=reader,
              remove=unshare, visibility=visibility)
    if as_json:
        print_json(m.to_dict())
        return
    out.print(f"{memory_id}: {m.visibility}, readers {', '.join(m.readers) or '-'}",
              markup=False)
    if was == "private" and m.visibility == "shared" and visibility is None:
        err.print("note: the memory was private, so it is now shared (a private memory is "
                  "read by its owner alone)", markup=False)


@vault_app.command("rm")
def vault_rm(cube_id: str = typer.Argument(..., help="An installed cube's id."),
             vault: str | None = VAULT_OPT, as_user: str | None = AS_OPT,
             as_json: bool = JSON_OPT) -> None:
    """Remove an installed cube and its memories (only a user who may change every one of
    them may: their owner, or an admin of a role they are shared with).

    Example: [bold]memos vault rm b50393a8-2135-5176-bde6-bee75da27d8e[/bold]
    """
    v = open_vault(vault)
    cube_id = resolve_id(cube_id, v.part([], []).cubes, "cube")  # the cube rows alone
    n = remove(v, cube_id, user=as_user or current_user())
    if as_json:
        print_json({"cube_id": cube_id, "removed": n})
    else:
        out.print(f"removed cube {cube_id} and its {n} memories")


@vault_app.command("gc")
def vault_gc(vault: str | None = VAULT_OPT, as_user: str | None = AS_OPT,
             cold: bool = typer.Option(False, "--cold", help="Also archive cold memories: "
                                                             "unused for --cold-days (never "
                                                             "used: created that long ago)."),
             cold_days: float = typer.Option(30.0, help="With --cold: days without use."),
             as_json: bool = JSON_OPT) -> None:
    """Remove expired memories (ttl / expires_at passed) and say how many; with --cold, move
    cold memories to the vault's archive (kept, no longer searched; `memos vault restore`).

    Example: [bold]memos vault gc --cold --cold-days 60[/bold]
    """
    if cold_days <= 0:
        raise UsageError("--cold-days must be above 0")
    v = open_vault(vault)
    user = as_user or current_user()
    n = gc(v, user=user)
    archived: list[str] = []
    if cold:
        from datetime import timedelta

        archived = archive_cold(v, user=user, after=timedelta(days=cold_days))
    if as_json:
        print_json({"removed": n, **({"archived": archived} if cold else {})})
    else:
        out.print(f"removed {n} expired memories"
                  + (f"; archived {len(archived)} cold memories" if cold else ""))


@vault_app.command("restore")
def vault_restore(ids: list[str] = typer.Argument(..., help="Archived memory ids."),
                  vault: str | None = VAULT_OPT, as_user: str | None = AS_OPT,
                  embedder: Path | None = EMBEDDER_OPT, as_json: bool = JSON_OPT) -> None:
    """Bring archived memories back into search (their vectors are computed again).

    Example: [bold]memos vault restore 8579fab9-a7b8-59ed-b088-705a40173192[/bold]
    """
    n = restore(open_vault(vault), ids, user=as_user or current_user(),
                embedder=load_embedder(embedder))
    if as_json:
        print_json({"restored": n})
    else:
        out.print(f"restored {n} memories")


@vault_app.command("log")
def vault_log(vault: str | None = VAULT_OPT,
              user: str | None = typer.Option(None, "--user", help="Only this user's."),
              op: str | None = typer.Option(None, "--op", help="load, search, run, show, dump, "
                                                               "rm or gc."),
              cube_id: str | None = typer.Option(None, "--cube", help="Only this cube's."),
              memory: str | None = typer.Option(None, "--memory", help="Only records naming "
                                                                       "this memory id."),
              at: int | None = typer.Option(None, "--at", metavar="VERSION", help="Only "
                                            "records up to this vault version."),
              as_json: bool = JSON_OPT) -> None:
    """Show the access log (who read or changed which memories, when, at which version).

    Example: [bold]memos vault log --user bob --op search[/bold]
    """
    recs = open_vault(vault).read_log(user=user, op=op, cube_id=cube_id, memory_id=memory, at=at)
    if as_json:
        print_json(recs)
        return
    t = DataTable(title=f"{len(recs)} access-log records", title_justify="left")
    for col in ("time", "version", "user", "op", "cube", "memories"):
        t.add_column(col, overflow="fold")
    for r in recs:
        t.add_row(r["time"], str(r.get("version", "-")), r["user"], r["op"],
                  (r.get("cube_id") or "-")[:8], str(len(r.get("memory_ids", []))))
    out.print(t)


@trust_app.command("add")
def trust_add(key: Path = typer.Argument(..., help="An EC P-256 public key (PEM)."),
              name: str = typer.Option(..., "--name", help="What to call its owner."),
              as_json: bool = JSON_OPT) -> None:
    """Trust cubes signed with KEY (load and pull accept them; verify names the signer).

    Example: [bold]memos trust add team.pub --name team[/bold]
    """
    info = add(key, name)
    if as_json:
        print_json(info)
    else:
        out.print(f"trusting {info['name']} ({info['fingerprint']})")


@trust_app.command("rm")
def trust_rm_command(name: str = typer.Argument(..., help="The name the key was added under."),
                     as_json: bool = JSON_OPT) -> None:
    """Stop trusting a key: to revoke it, or to rotate (rm the old one, add the new one).

    Example: [bold]memos trust rm team[/bold]
    """
    info = trust_rm(name)
    if as_json:
        print_json(info)
    else:
        out.print(f"no longer trusting {info['name']} ({info['fingerprint']})", markup=False)


@trust_app.command("ls")
def trust_ls(as_json: bool = JSON_OPT) -> None:
    """List trusted keys.

    Example: [bold]memos trust ls --json[/bold]
    """
    keys = trust_list()
    if as_json:
        print_json(keys)
        return
    for k in keys:
        out.print(f"{k['name']}  {k['fingerprint']}")
    if not keys:
        out.print("no trusted keys (add one with `memos trust add KEY.pub --name NAME`)")


def register(app: typer.Typer) -> None:
    vault_versions.register(vault_app)
    app.command("load")(load_command)
    app.add_typer(vault_app, name="vault")
    app.add_typer(trust_app, name="trust")
