"""The vault's pages: installed cubes, roles and versions; the access log with filters; the
scheduler's plan (``memos schedule --dry-run``) with the KV budget it fills.

What another user did is shown only where it names a memory this user may read, and then
without its detail (another user's query is theirs): a record of the viewer's own is shown
whole. Cubes, roles, log records and plan lines that show nothing this user may read are
left out and counted (``hidden``)."""

from __future__ import annotations

from typing import Any

from memos_cli.errors import UsageError
from memos_cli.governance.roles import Roles
from memos_cli.principal import Identity
from memos_cli.ui.common import PageError, Viewer
from memos_cli.units import parse_size

#: The operations whose record names the vault version they made (``memos vault versions``).
_VERSIONING = ("load", "rm", "gc", "share", "archive", "restore", "migrate", "compact",
               "unsupersede", "remember", "forget", "supersede")
#: The keys every access-log record has; the others are the operation's detail.
_RECORD = ("time", "user", "op", "cube_id", "memory_ids", "version")
#: The most log records one page shows (newest first).
AUDIT_ROWS = 500


def _readable_ids(v: Viewer) -> tuple[set[str], Any]:
    state = v.session.vault.state(vectors=False)
    ids = {m.id for m in state.memories + state.history + state.archived if v.may_read(m)}
    return ids, state


def vault(v: Viewer) -> dict[str, Any]:
    """The vault: the installed cubes this user is shown (those they installed, or of which
    they may read a memory), the roles they belong to, and its versions."""
    s = v.session
    ids, state = _readable_ids(v)
    cubes, hidden = [], 0
    for cid, info in state.cubes.items():
        mine = sum(1 for m in state.memories if state.origin.get(m.id) == cid and m.id in ids)
        if mine or info.get("installed_by") == v.user:
            cubes.append({"cube_id": cid, "memories_readable": mine,
                          **{k: info.get(k) for k in ("name", "description", "installed_by",
                                                      "installed_at", "signer", "loads")}})
        else:
            hidden += 1
    who = Identity.parse(v.user)
    table = Roles.load(s.vault.place)
    roles, hidden_roles = [], 0
    for name, r in sorted(table.roles.items()):
        if table.is_member(name, who):
            roles.append({"name": name, **r.to_dict(), "admin": table.is_admin(name, who)})
        else:
            hidden_roles += 1
    return {"vault": str(s.vault_name), "version": s.vault.version, "pinned": s.vault.pinned,
            "cubes": cubes, "cubes_hidden": hidden, "roles": roles,
            "roles_hidden": hidden_roles, "versions": versions(v, ids)["versions"]}


def visible(v: Viewer, records: list[dict[str, Any]],
            ids: set[str]) -> tuple[list[dict[str, Any]], int]:
    """The access-log records this user is shown (see the module docstring), and how many
    were left out."""
    shown, hidden = [], 0
    for r in records:
        if r.get("user") == v.user:  # the record's own keys, the operation's in detail
            shown.append({**{k: r.get(k) for k in _RECORD},
                          "detail": {k: x for k, x in r.items() if k not in _RECORD} or None})
            continue
        named = [i for i in r.get("memory_ids") or [] if i in ids]
        if not named:
            hidden += 1
            continue
        shown.append({**{k: r.get(k) for k in _RECORD}, "memory_ids": named, "detail": None})
    return shown, hidden


def audit(v: Viewer, user: str = "", op: str = "", memory: str = "") -> dict[str, Any]:
    """The access log, newest first, filtered by user, operation and memory id (or prefix):
    at most :data:`AUDIT_ROWS` records."""
    ids, _ = _readable_ids(v)
    recs = v.session.vault.read_log(user=user or None, op=op or None,
                                    at=v.session.vault.at if v.session.vault.pinned else None)
    if memory:
        recs = [r for r in recs if any(str(i).startswith(memory)
                                       for i in r.get("memory_ids") or [])]
    shown, hidden = visible(v, recs, ids)
    shown.reverse()
    ops = sorted({str(r["op"]) for r in shown if r.get("op")})
    return {"filters": {"user": user, "op": op, "memory": memory}, "ops": ops,
            "records": shown[:AUDIT_ROWS], "more": max(len(shown) - AUDIT_ROWS, 0),
            "hidden": hidden}


def versions(v: Viewer, ids: set[str] | None = None) -> dict[str, Any]:
    """Every version of the vault with the operation that made it, as this user may see it
    (another user's change that names nothing they may read is "a change by another
    user"). ``ids``: the memory ids the user may read, when the caller has read them."""
    vault = v.session.vault
    if ids is None:
        ids, _ = _readable_ids(v)
    shown, _ = visible(v, vault.read_log(), ids)
    mine = {r.get("version"): r for r in shown if r.get("op") in _VERSIONING}
    rows = []
    for r in vault.versions():
        by = mine.get(r["version"])
        rows.append({"version": r["version"], "time": r["time"],
                     "made_by": f"{by['op']} by {by['user']}" if by else
                     "another change (optimize, or a user's change you may not see)"})
    return {"versions": rows, "at": vault.at if vault.pinned else None}


def schedule(v: Viewer, budget: str = "64MiB", policy: str = "decay") -> dict[str, Any]:
    """The scheduler's plan for this vault or these cubes (``memos schedule --dry-run``,
    nothing written) with a KV budget of ``budget`` bytes: each decision about a memory this
    user may read, and the chart's series: in plan order, the bytes of this user's chunks
    that are wanted (kept, promoted, or skipped as over the budget) and that are held (kept
    or promoted), against the budget. Loads the chat model (the chunks' size is its KV
    shape's).

    Raises:
        PageError: 400 a budget that is not a size, or an unknown policy.
    """
    try:
        size = parse_size(budget, "budget")
        result = v.session.schedule(size=size, policy=policy, dry_run=True)
    except UsageError as e:
        raise PageError(400, str(e)) from None
    page: dict[str, Any] = {"budget": budget, "budget_bytes": size, "policy": policy,
                            "reason": result.reason, "decisions": [], "hidden": 0,
                            "chart": {"x": [], "bytes": [], "wanted": [],
                                      "budget_bytes": size}}
    if result.plan is None:
        return page
    pool = {m.id: m for m in v.pool()}
    hidden = 0
    for d in result.plan.decisions:
        m = pool.get(d.memory_id or "")
        if m is None or not v.may_read(m):
            hidden += 1
            continue
        row = {**d.to_dict(), "text": m.render()[:200]}
        if d.action == "skip":  # the bytes used so far count other users' chunks too
            row["reason"] = d.reason.split(": over the budget")[0] + ": over the budget"
        page["decisions"].append(row)
    held = wanted = 0
    chart = page["chart"]
    for n, d in enumerate((x for x in page["decisions"] if x["action"] in
                           ("keep", "promote", "skip")), 1):
        wanted += d["bytes"]
        held += d["bytes"] if d["action"] != "skip" else 0
        chart["x"].append(n)
        chart["bytes"].append(held)
        chart["wanted"].append(wanted)
    page.update(hidden=hidden, model=result.model,
                counts={a: sum(1 for d in page["decisions"] if d["action"] == a)
                        for a in ("promote", "keep", "evict", "skip", "lora", "cold")})
    return page
