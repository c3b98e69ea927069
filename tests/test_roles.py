"""Roles, personas and write scope (spec §14): the rules, the role table, the vault's checks,
and a property test of 10,000 random policies against an independent reference."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.errors import UsageError
from memos_cli.governance.access import share
from memos_cli.governance.policy import can_read, decide_read, decide_write
from memos_cli.governance.roles import Role, Roles
from memos_cli.memory import Memory
from memos_cli.principal import Identity
from memos_cli.vault import Vault, load, remove, search
from memos_cli.vault.roles import change
from tests.test_vault import write_jsonl

NOW = datetime(2025, 1, 1, tzinfo=timezone.utc)
TABLE = Roles({"analysts": Role("analysts", ["ann", "bob/analyst"], ["carol"])})


def mem(owner=None, visibility="shared", readers=(), expires=None, **kw):  # type: ignore[no-untyped-def]
    return Memory.create("x", now=NOW, owner=owner, visibility=visibility,
                         readers=tuple(readers), expires_at=expires, **kw)


def test_read_rules_and_their_reasons() -> None:
    parent = mem("ann/parent", "private")
    assert decide_read(parent, "ann/parent", roles=TABLE).rule == "owner (ann/parent)"
    for other in ("ann", "ann/manager", "bob"):
        assert not can_read(parent, other, roles=TABLE)
    assert "written under persona parent" in decide_read(parent, "ann/manager", roles=TABLE).rule
    default = mem("ann", "private")  # ann's default stream: hers under any persona
    assert can_read(default, "ann/manager", roles=TABLE) and not can_read(default, "bob")
    team = mem("dan", "shared", ["role:analysts"])
    assert can_read(team, "ann/anything", roles=TABLE)  # member as a user: any persona
    assert can_read(team, "bob/analyst", roles=TABLE)
    assert not can_read(team, "bob", roles=TABLE)  # bob is a member only as bob/analyst
    assert can_read(team, "carol", roles=TABLE)  # admins are members
    assert "not with bob" in decide_read(team, "bob", roles=TABLE).rule
    dangling = mem("dan", "shared", ["role:nobody-yet"])
    assert not can_read(dangling, "ann", roles=TABLE)
    gone = mem("ann", "public", expires=NOW - timedelta(days=1))
    assert decide_read(gone, "ann", roles=TABLE).rule.startswith("expired")


def test_write_scope_is_owner_and_role_admins() -> None:
    team = mem("dan/work", "shared", ["role:analysts", "ann"])
    assert decide_write(team, "dan", roles=TABLE).allowed  # the owner user, any persona
    assert decide_write(team, "carol", roles=TABLE).rule == "admin of role:analysts"
    assert not decide_write(team, "ann", roles=TABLE).allowed  # a reader is not a writer
    ownerless = mem(None, "public")
    assert decide_write(ownerless, "eve", installed_by="eve", roles=TABLE).allowed
    assert not decide_write(ownerless, "ann", installed_by="eve", roles=TABLE).allowed


@pytest.mark.parametrize("bad", ["ann/../x", "ann/a b", "ann/\x1b[31m", "", "a/b/c", "/x"])
def test_malformed_identities_are_refused(bad: str) -> None:
    with pytest.raises(UsageError):
        Identity.parse(bad)


def test_malformed_policies_are_refused_at_pack(tmp_path: Path) -> None:
    for row in ({"content": "a", "owner": "ann/../etc"}, {"content": "b", "readers": ["role:"]},
                {"content": "c", "readers": ["bob\x07"]}):
        src = write_jsonl(tmp_path / "p.jsonl", [row])
        r = CliRunner().invoke(app, ["pack", str(src), "-o", str(tmp_path / "p.memcube")])
        lines = [ln for ln in r.output.splitlines() if ln.strip()]
        assert r.exit_code == 3 and len(lines) == 1 and lines[0].startswith("error: "), lines
        assert not (tmp_path / "p.memcube").exists()


def test_role_table_changes(tmp_path: Path) -> None:
    v = tmp_path / "vault"
    change(v, "analysts", by="carol", add_members=["ann"])
    with pytest.raises(UsageError, match="may not change role analysts"):
        change(v, "analysts", by="ann", add_members=["ann"])
    with pytest.raises(UsageError, match="not other roles"):
        change(v, "analysts", by="carol", add_members=["role:x"])
    before = (v / "roles.json").read_bytes()
    with pytest.raises(UsageError):
        change(v, "analysts", by="carol", add_members=["bad name"])
    assert (v / "roles.json").read_bytes() == before  # nothing changed
    change(v, "analysts", by="carol", add_members=["bob/analyst"], add_admins=["ann"])
    t = Roles.load(v)
    assert t.roles["analysts"].to_dict() == {"members": ["ann", "bob/analyst"],
                                             "admins": ["ann", "carol"]}
    change(v, "analysts", by="ann", drop=True)
    assert Roles.load(v).roles == {}
    ops = [(r["op"], r["role"], r["dropped"]) for r in Vault(v).read_log(op="role")]
    assert ops == [("role", "analysts", False), ("role", "analysts", False),
                   ("role", "analysts", True)]


def test_a_long_lived_process_sees_role_changes_of_another(tmp_path: Path) -> None:
    """``memos mcp`` and ``memos ui`` live long: the role table they check with is read again
    when another process replaces ``roles.json``, not only when they change it themselves."""
    from memos_cli.governance.roles import active, use_vault
    from memos_cli.objstore.place import Place

    v = tmp_path / "vault"
    change(v, "analysts", by="carol", add_members=["ann"])
    use_vault(Place(v))
    assert active().is_member("analysts", Identity("ann"))
    assert not active().is_member("analysts", Identity("dan"))
    # another process: it writes the table itself; this process's cache is not told
    other = Roles.load(v)
    other.roles["analysts"].members.append("dan")
    other.save()
    assert active().is_member("analysts", Identity("dan"))
    (v / "roles.json").unlink()
    assert active().roles == {}


@pytest.fixture
def team_vault(tmp_path: Path, embedder):  # type: ignore[no-untyped-def]
    """A vault with a team memory shared with role:analysts, ann's two personas' streams,
    and a private note of dan's."""
    src = write_jsonl(tmp_path / "m.jsonl", [
        {"id": "team", "content": "The budget review is on Friday.", "owner": "dan",
         "visibility": "shared", "readers": ["role:analysts"]},
        {"id": "parent", "content": "The school budget trip is on Friday.",
         "owner": "ann/parent", "visibility": "private"},
        {"id": "manager", "content": "The team budget is 48,000 on Friday.",
         "owner": "ann/manager", "visibility": "private"},
        {"id": "dan", "content": "Dan's own budget note for Friday.", "owner": "dan",
         "visibility": "private"}])
    v = Vault(tmp_path / "vault")
    report = load(v, src, user="dan", embedder=embedder)
    assert report.dangling == ["role:analysts"]
    return v


def ids(v: Vault, embedder, user: str) -> set[str]:  # type: ignore[no-untyped-def]
    return {h.memory.id for h in search(v, embedder, "budget Friday", 10, user=user)}


def test_personas_keep_streams_apart(team_vault: Vault, embedder) -> None:  # type: ignore[no-untyped-def]
    assert ids(team_vault, embedder, "ann/manager") == {"manager"}
    assert ids(team_vault, embedder, "ann/parent") == {"parent"}
    assert ids(team_vault, embedder, "ann") == set()


def test_membership_change_takes_effect_on_the_next_command(team_vault: Vault, embedder  # type: ignore[no-untyped-def]
                                                            ) -> None:
    assert "team" not in ids(team_vault, embedder, "bob")
    change(team_vault.path, "analysts", by="dan", add_members=["bob"])
    assert ids(team_vault, embedder, "bob") == {"team"}
    change(team_vault.path, "analysts", by="dan", remove=["bob"])
    assert ids(team_vault, embedder, "bob") == set()


def test_write_scope_in_the_vault(team_vault: Vault, embedder, tmp_path: Path) -> None:  # type: ignore[no-untyped-def]
    before = Vault(team_vault.path).version
    update = write_jsonl(tmp_path / "u.jsonl", [{"id": "dan", "content": "Rewritten by eve."}])
    with pytest.raises(UsageError, match="eve may not update memory dan"):
        load(team_vault, update, user="eve", embedder=embedder)
    assert Vault(team_vault.path).version == before  # nothing changed
    cube_id = next(iter(team_vault.state().cubes))
    with pytest.raises(UsageError, match="may not remove cube"):
        remove(team_vault, cube_id, user="eve")
    with pytest.raises(UsageError, match="may not re-share"):
        share(team_vault, "dan", user="eve", readers=["eve"])
    change(team_vault.path, "analysts", by="dan", add_admins=["carol"])
    m = share(team_vault, "team", user="carol", readers=["eve"])  # an admin of the role
    assert m.readers == ("role:analysts", "eve")
    assert "team" in ids(team_vault, embedder, "eve")
    assert [r["op"] for r in team_vault.read_log(op="share")] == ["share"]


def test_why_explains_the_decision(team_vault: Vault, monkeypatch: pytest.MonkeyPatch) -> None:
    vault = str(team_vault.path)
    r = CliRunner().invoke(app, ["vault", "show", "parent", "--why", "--vault", vault,
                                 "--as", "ann", "--persona", "manager", "--json"])
    assert r.exit_code == 0, r.output
    got = json.loads(r.output)
    assert (got["user"], got["read"], got["write"]) == ("ann/manager", False, True)
    assert "written under persona parent" in got["read_rule"]
    r = CliRunner().invoke(app, ["vault", "show", "team", "--why", "--vault", vault,
                                 "--as", "ann/x/y"])
    assert r.exit_code == 2 and "not a name" in r.output


# -- property test --------------------------------------------------------------------------
USERS = ["ann", "bob", "cy"]
PERSONAS = [None, "parent", "manager"]
ROLES = ["analysts", "leads", "ghost"]  # "ghost" is never defined: a dangling reader


def _principal(user: str, persona: str | None) -> str:
    return user if persona is None else f"{user}/{persona}"


principals = st.builds(_principal, st.sampled_from(USERS), st.sampled_from(PERSONAS))
readers = st.one_of(principals, st.sampled_from([f"role:{r}" for r in ROLES]))
tables = st.dictionaries(st.sampled_from(ROLES[:2]), st.tuples(
    st.lists(principals, max_size=3), st.lists(principals, max_size=2)), max_size=2)
memories = st.builds(
    lambda o, vis, rd, exp: mem(o, vis, rd, NOW + timedelta(days=exp) if exp else None),
    st.one_of(st.none(), principals), st.sampled_from(["private", "shared", "public"]),
    st.lists(readers, max_size=3), st.sampled_from([0, -1, 1]))


def reference(m: Memory, user: str, persona: str | None, table: dict) -> bool:  # type: ignore[type-arg]
    """The policy of spec §14 written as sets of grants ``(user, persona or '*')``."""
    if m.expires_at is not None and m.expires_at <= NOW:
        return False
    if m.visibility == "public":
        return True

    def grant(entry: str) -> tuple[str, str]:
        u, _, p = entry.partition("/")
        return (u, p or "*")

    grants = set()
    if m.owner:
        grants.add(grant(m.owner))
    if m.visibility == "shared":
        for r in m.readers:
            if r.startswith("role:"):
                members, admins = table.get(r[5:], ([], []))
                grants |= {grant(x) for x in [*members, *admins]}
            else:
                grants.add(grant(r))
    return any(u == user and p in ("*", persona) for u, p in grants)


@settings(max_examples=10_000, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(m=memories, table=tables, user=st.sampled_from(USERS), persona=st.sampled_from(PERSONAS))
def test_no_memory_is_readable_beyond_the_policy(m: Memory, table: dict, user: str,  # type: ignore[type-arg]
                                                 persona: str | None) -> None:
    roles = Roles({n: Role(n, list(mb), list(ad)) for n, (mb, ad) in table.items()})
    who = _principal(user, persona)
    assert can_read(m, who, now=NOW, roles=roles) == reference(m, user, persona, table)


def test_sharing_a_private_memory_makes_it_shared(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """#28 bug 2: `vault share ID --reader bob` on a private memory printed "private, readers
    bob" and bob still could not read it."""
    src = write_jsonl(tmp_path / "n.jsonl", [{"id": "n1", "content": "My starter is Levain."}])
    vault = Vault(tmp_path / "vault")
    load(vault, src, user="ann", embedder=embedder)
    assert not can_read(vault.state().memories[0], "bob")  # private to ann
    r = CliRunner().invoke(app, ["vault", "share", "n1", "--reader", "bob", "--vault",
                                 str(vault.path), "--as", "ann"])
    assert r.exit_code == 0, r.output
    assert "n1: shared, readers bob" in r.stdout and "was private" in r.stderr
    now = Vault(vault.path).state().memories[0]
    assert now.visibility == "shared" and can_read(now, "bob") and not can_read(now, "eve")
    why = CliRunner().invoke(app, ["vault", "show", "n1", "--why", "--vault", str(vault.path),
                                   "--as", "bob", "--json"])
    assert json.loads(why.stdout)["read"] is True, why.output
    assert Vault(vault.path).read_log(op="share")[-1]["was"] == "private"
    with pytest.raises(UsageError, match="grants nothing"):
        share(Vault(vault.path), "n1", user="ann", readers=["eve"], visibility="private")
