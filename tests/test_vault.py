"""The vault: loading with the trust store, duplicates, version chains and conflict policies,
expiry and gc, removal rights, search across cubes with --as, the access log, imports of other
systems' files, and atomicity under SIGKILL."""

import json
import os
import shutil
import signal
import subprocess
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from memos_cli.errors import FormatError, SignatureError, UsageError
from memos_cli.governance.policy import can_read
from memos_cli.governance.trust import trust_add
from memos_cli.memory import Memory
from memos_cli.vault import Vault, load, merge, search
from tests.attacks.test_concurrency import Held
from tests.conftest import invoke as cli
from tests.conftest import pack_corpus

NOW = datetime(2026, 11, 1, tzinfo=timezone.utc)


def snapshot(v: Vault) -> tuple[int | None, list[str]]:
    fresh = Vault(v.path)  # what another process sees now
    return (fresh.version, sorted(m.id for m in fresh.state().memories))


@pytest.fixture(autouse=True)
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A MEMOS_HOME of this test's own: the trust store and default vault start empty."""
    monkeypatch.setenv("MEMOS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture
def trusted(keys) -> str:  # type: ignore[no-untyped-def]
    return trust_add(keys[1], "team")["name"]


def test_load_verifies_and_installs(packed_cube: Path, tmp_path: Path, trusted: str) -> None:
    v = Vault(tmp_path / "vault")
    report = load(v, packed_cube, user="ann")
    assert report.signer == "team" and len(report.added) == 18
    state = v.state()
    assert len(state.memories) == 18 and state.vectors.shape == (18, 384)
    assert set(state.origin.values()) == {report.cube_id}
    again = load(v, packed_cube, user="ann")
    assert len(again.duplicates) == 18 and not again.added
    assert len(v.state().memories) == 18
    ops = [r["op"] for r in v.read_log(user="ann")]
    assert ops == ["load", "load"]


def test_signature_policy(packed_cube: Path, tmp_path: Path, embedder, other_keys) -> None:  # type: ignore[no-untyped-def]
    v = Vault(tmp_path / "vault")
    with pytest.raises(SignatureError, match="no key you trust"):
        load(v, packed_cube, user="ann")  # signed, but the trust store is empty
    trust_add(other_keys[1], "stranger")
    with pytest.raises(SignatureError, match="no key you trust"):
        load(v, packed_cube, user="ann")
    unsigned = tmp_path / "u.memcube"
    pack_corpus(unsigned, embedder)
    with pytest.raises(SignatureError, match="unsigned"):
        load(v, unsigned, user="ann")
    assert v.version is None  # nothing was written
    assert load(v, unsigned, user="ann", allow_unsigned=True).signer == "unsigned"
    assert load(v, packed_cube, user="ann", allow_unsigned=True).signer == "untrusted"


def test_tampered_cube_is_always_refused(cube_copy: Path, tmp_path: Path, trusted: str) -> None:
    from memos_cli.errors import IntegrityError

    v = Vault(tmp_path / "vault")
    load(v, cube_copy, user="ann")
    before = snapshot(v)
    desc = cube_copy / "manifest.json"
    m = json.loads(desc.read_text())
    m["description"] = "changed"
    desc.write_text(json.dumps(m))
    with pytest.raises((SignatureError, IntegrityError), match="changed"):
        load(v, cube_copy, user="ann", allow_unsigned=True)
    assert snapshot(v) == before


def mem(content: str, **kw) -> Memory:  # type: ignore[no-untyped-def]
    return Memory.create(content, now=NOW, **kw)


def install(v: Vault, cube: str, mems: list[Memory], policy: str = "version"):  # type: ignore[no-untyped-def]
    """merge() on the part of ``v`` the memories touch, applied as one commit; the vault's
    state after it and the report."""
    part = v.part([m.id for m in mems] + [m.parent_id for m in mems if m.parent_id],
                  [m.content_hash for m in mems])
    delta, r = merge(part, cube, mems, np.ones((len(mems), 4), np.float32), on_conflict=policy,
                     now=NOW)
    delta.cubes[cube] = {"name": cube, "installed_by": "ann", "installed_at": "2026-11-01"}
    v.apply(delta, dim=4)
    return v.state(), r


def test_version_chains_and_conflict_policies(tmp_path: Path) -> None:
    a = mem("budget is 40k", id="m1")
    b = mem("budget is 48k", id="m1")

    def base(name: str) -> Vault:
        v = Vault(tmp_path / name)
        _, r = install(v, "c1", [a])
        assert r.added == ["m1"]
        return v

    v2, r = install(base("v2"), "c2", [b])
    assert r.versioned == ["m1"] and [m.content for m in v2.history] == ["budget is 40k"]
    assert v2.memories[0].version == a.version + 1 and v2.memories[0].content == "budget is 48k"
    assert v2.origin == {"m1": "c2"}
    skip, r = install(base("skip"), "c2", [b], "skip")
    assert r.skipped_conflict == ["m1"] and skip.memories == [a]
    rep, r = install(base("rep"), "c2", [b], "replace")
    assert r.replaced == ["m1"] and not rep.history and rep.memories[0].content == b.content
    v = base("chain")
    install(v, "c2", [b])
    child = mem("budget is 50k", id="m2", parent_id="m1")
    v3, r = install(v, "c3", [child])
    assert r.versioned == ["m2"] and [m.id for m in v3.memories] == ["m2"]
    assert [m.content for m in v3.history] == ["budget is 40k", "budget is 48k"]
    dup, r = install(v, "c4", [mem("budget is 50k", id="m9")])
    assert r.duplicates == ["m9"] and dup.memories == v3.memories
    with pytest.raises(UsageError):
        merge(v.state(), "c2", [b], np.ones((1, 4), np.float32), on_conflict="merge")
    # one load that adds a memory and supersedes it by parent_id in the same cube
    both, r = install(base("same-load"), "c5", [mem("draft", id="d1"),
                                                mem("final", id="d2", parent_id="d1")])
    assert [m.id for m in both.memories] == ["m1", "d2"] and r.added == ["d1"]
    assert [m.content for m in both.history] == ["draft"]


def write_jsonl(path: Path, rows: list[dict]) -> Path:
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_expired_memories_are_not_installed_and_gc(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    from memos_cli.vault import gc

    soon = (datetime.now(timezone.utc) + timedelta(hours=1)).strftime("%Y-%m-%dT%H:%M:%SZ")
    src = write_jsonl(tmp_path / "m.jsonl", [
        {"content": "gone already", "expires_at": "2020-01-01T00:00:00Z"},
        {"content": "gone in an hour", "expires_at": soon},
        {"content": "stays", "visibility": "public"}])
    v = Vault(tmp_path / "vault")
    r = load(v, src, user="ann", embedder=embedder)
    assert r.signer == "import" and len(r.expired) == 1 and len(r.added) == 2
    res = cli("vault", "gc", "--vault", v.path, "--as", "ann", "--json")
    assert json.loads(res.stdout) == {"removed": 0}  # nothing has expired yet
    assert gc(v, user="ann", now=datetime.now(timezone.utc) + timedelta(hours=2)) == 1
    assert [m.content for m in v.state().memories] == ["stays"]
    assert [len(r["memory_ids"]) for r in v.read_log(op="gc")] == [0, 1]


def test_rm_needs_write_scope(packed_cube: Path, tmp_path: Path, trusted: str) -> None:
    """Removing a cube changes its memories: only their owner (here tester, who packed
    them) or an admin of a role they are shared with may; installing them is not enough
    (spec §14)."""
    v = Vault(tmp_path / "vault")
    cube_id = load(v, packed_cube, user="ann").cube_id
    before = snapshot(v)
    for user in ("bob", "ann"):
        res = cli("vault", "rm", cube_id, "--vault", v.path, "--as", user, code=2)
        assert "only its owner (tester)" in res.output and snapshot(v) == before
    out = json.loads(cli("vault", "rm", cube_id, "--vault", v.path, "--as", "tester",
                         "--json").stdout)
    assert out["removed"] == 18 and v.state().memories == []
    assert [r["op"] for r in v.read_log(cube_id=cube_id)] == ["load", "rm"]


def test_cli_load_ls_show_log_search(packed_cube: Path, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    vdir = tmp_path / "vault"
    cli("trust", "add", keys[1], "--name", "team")
    assert json.loads(cli("trust", "ls", "--json").stdout)[0]["name"] == "team"
    res = cli("trust", "add", keys[1], "--name", "team", code=2)
    assert "exists" in res.output
    data = json.loads(cli("load", packed_cube, "--vault", vdir, "--as", "ann", "--json").stdout)
    assert data["added"] == 18 and data["signer"] == "team"
    ls = json.loads(cli("vault", "ls", "--vault", vdir, "--json").stdout)
    assert ls["cubes"][0]["memories"] == 18 and ls["cubes"][0]["installed_by"] == "ann"
    show = json.loads(cli("vault", "show", data["cube_id"], "--vault", vdir, "--as", "ann",
                          "--json").stdout)
    assert show["memories"] == 18
    assert show["withheld"] == 18  # the corpus is private to its owner, "tester"
    hits = json.loads(cli("search", "budget", "--vault", vdir, "--as", "tester", "-k", "3",
                          "--json").stdout)
    assert len(hits["results"]) == 3 and "budget" in hits["results"][0]["text"].lower()
    none = json.loads(cli("search", "budget", "--vault", vdir, "--as", "ann", "--json").stdout)
    assert none["results"] == []
    log = json.loads(cli("vault", "log", "--vault", vdir, "--op", "search", "--json").stdout)
    assert [(r["user"], len(r["memory_ids"])) for r in log] == [("tester", 3), ("ann", 0)]
    res = cli("load", tmp_path / "nothing.memcube", "--vault", vdir, code=3)
    assert "nothing.memcube" in res.output and len(res.output.strip().splitlines()) == 1


def test_letta_agent_file_loads_directly(shared_datasets: Path, tmp_path: Path,
                                         embedder) -> None:  # type: ignore[no-untyped-def]
    v = Vault(tmp_path / "vault")
    r = load(v, shared_datasets / "letta" / "memgpt_agent_with_convo.af", user="ann",
             embedder=embedder)
    mems = v.state().memories
    assert r.signer == "import" and len(r.added) == len(mems) >= 2
    assert any("First name: Chad" in m.content for m in mems)  # the human block


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow,
                                                                 HealthCheck.function_scoped_fixture])
@given(rows=st.lists(st.tuples(st.sampled_from(["ann", "bob", "ann/parent", None]),
                               st.sampled_from(["private", "shared", "public"]),
                               st.lists(st.sampled_from(["ann", "bob/x", "cy", "role:team",
                                                         "role:ghost"]), max_size=2)),
                     min_size=1, max_size=8),
       members=st.lists(st.sampled_from(["ann", "bob", "cy/x"]), max_size=2),
       user=st.sampled_from(["ann", "bob", "cy", "ann/parent", "bob/x", "cy/x"]))
def test_vault_search_never_returns_unreadable(tmp_path_factory, embedder, rows, members,  # type: ignore[no-untyped-def]
                                               user) -> None:
    """Through the vault's search, with personas and roles (the rules themselves are checked
    on 10,000 random policies in tests/test_roles.py)."""
    from memos_cli.governance.roles import Roles
    from memos_cli.vault.roles import change

    d = tmp_path_factory.mktemp("v")
    src = write_jsonl(d / "m.jsonl", [
        {"content": f"note {i} about the budget", "owner": o, "visibility": vis,
         "readers": rd} for i, (o, vis, rd) in enumerate(rows)])
    v = Vault(d / "vault")
    change(v.path, "team", by="dan", add_members=members)
    load(v, src, user="ann", embedder=embedder)
    roles = Roles.load(v.path)
    hits = search(v, embedder, "budget", 10, user=user)
    assert all(can_read(h.memory, user, roles=roles) for h in hits)
    assert len(hits) == sum(can_read(m, user, roles=roles) for m in v.state().memories)


def test_killed_load_leaves_vault_before_or_after(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """SIGKILL a large load at several points: the vault is then exactly as before or after."""
    from memos_cli.lifecycle.pack import pack
    from memos_cli.sources import Defaults

    small = write_jsonl(tmp_path / "small.jsonl", [{"content": "first memory"}])
    big_src = write_jsonl(tmp_path / "big.jsonl", [
        {"content": f"memory number {i}: the team met on day {i % 31} and spoke of item {i}"}
        for i in range(1500)])
    big = tmp_path / "big.memcube"
    pack([big_src], big, embedder=embedder, defaults=Defaults(now=NOW, owner="ann"))
    env = dict(os.environ)
    cmd = [sys.executable, "-m", "memos_cli", "load", str(big), "--allow-unsigned", "--as",
           "ann"]
    # the full run once, to know "after" and how long a load takes
    after_vault = Vault(tmp_path / "after")
    load(after_vault, small, user="ann", embedder=embedder)
    t0 = time.perf_counter()
    subprocess.run([*cmd, "--vault", str(after_vault.path)], check=True, env=env,
                   capture_output=True)
    full = time.perf_counter() - t0
    after_ids = snapshot(after_vault)[1]
    outcomes = set()
    for frac in (0.3, 0.5, 0.7, 0.8, 0.9, 0.95):
        v = Vault(tmp_path / f"v{frac}")
        load(v, small, user="ann", embedder=embedder)
        before = snapshot(v)
        p = subprocess.Popen([*cmd, "--vault", str(v.path)], env=env,
                             stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        time.sleep(full * frac)
        p.send_signal(signal.SIGKILL)
        p.wait()
        now = snapshot(v)
        assert now == before or now[1] == after_ids, frac
        outcomes.add("before" if now == before else "after")
        load(v, small, user="ann", embedder=embedder)  # still usable
    assert "before" in outcomes  # the kills did land during the load
    # and exactly at Lance's commit point: just before it, and just after it
    for point, expect in (("vault:before-commit", "before"), ("vault:after-commit", "after")):
        v = Vault(tmp_path / point.replace(":", "-"))
        load(v, small, user="ann", embedder=embedder)
        before = snapshot(v)
        held = Held(tmp_path, point, "load", big, "--allow-unsigned", "--as", "ann", "--vault",
                    v.path)
        held.reached()
        held.kill()
        now = snapshot(v)
        assert now == before if expect == "before" else (
            now[1] == after_ids and now[0] == before[0] + 1), point  # type: ignore[operator]


def test_dump_from_vault_with_access_log(packed_cube: Path, tmp_path: Path, trusted: str,
                                         embedder) -> None:  # type: ignore[no-untyped-def]
    from memos_cli.cube import open_cube
    from memos_cli.sources import Defaults, read_source

    vdir = tmp_path / "vault"
    cube_id = load(Vault(vdir), packed_cube, user="tester").cube_id
    cli("search", "budget", "--vault", vdir, "--as", "tester", "-k", "2")
    out = tmp_path / "all.memcube"
    data = json.loads(cli("dump", "--vault", vdir, "-o", out, "--format", "memcube", "--as",
                          "tester", "--json").stdout)
    assert data["memories"] == 18 and data["access_log_records"] == 2  # the load, the search
    log = [json.loads(x) for x in (out / "access_log.jsonl").read_text().splitlines()]
    assert [r["op"] for r in log] == ["load", "search"] and len(log[1]["memory_ids"]) == 2
    assert open_cube(out).manifest.provenance["sources"][0]["format"] == "vault"
    md = tmp_path / "all.md"
    cli("dump", "--vault", vdir, "-o", md, "--format", "markdown", "--as", "tester")
    back = read_source(md, "all.md", Defaults(now=NOW)).memories
    assert back == Vault(vdir).state().memories
    assert (tmp_path / "all.md.access.jsonl").is_file()
    ops = [r["op"] for r in Vault(vdir).read_log(cube_id=None)]
    assert ops[-2:] == ["dump", "dump"] and cube_id
    res = cli("dump", "--vault", vdir, "-o", tmp_path / "x.jsonl", "--as", "nobody", code=2)
    assert "none of the selected" in res.output


@pytest.mark.parametrize("attack", ["pickle", "symlink", "escape", "not_a_cube", "bad_utf8",
                                    "unknown_format"])
def test_hostile_input_leaves_the_vault_unchanged(cube_copy: Path, tmp_path: Path,
                                                  trusted: str, attack: str) -> None:
    vdir = tmp_path / "vault"
    small = write_jsonl(tmp_path / "small.jsonl", [{"content": "first memory"}])
    cli("load", small, "--vault", vdir, "--as", "ann")
    before = snapshot(Vault(vdir))
    target: Path = cube_copy
    if attack == "pickle":
        (cube_copy / "activation_memory.pickle").write_bytes(b"\x80\x04K\x01.")
    elif attack == "symlink":
        (cube_copy / "link").symlink_to("/etc/passwd")
    elif attack == "escape":
        m = json.loads((cube_copy / "manifest.json").read_text())
        m["files"]["memories"]["path"] = "../../etc/passwd"
        (cube_copy / "manifest.json").write_text(json.dumps(m))
    elif attack == "not_a_cube":
        target = tmp_path / "empty"
        target.mkdir()
    elif attack == "bad_utf8":
        target = tmp_path / "bad.jsonl"
        target.write_bytes(b'{"content": "\xff\xfe"}\n')
    else:
        target = tmp_path / "notes.docx"
        target.write_bytes(b"PK\x03\x04")
    res = cli("load", target, "--vault", vdir, "--as", "ann", "--allow-unsigned",
              code=res_code(attack))
    assert len(res.output.strip().splitlines()) == 1 and "Traceback" not in res.output
    assert snapshot(Vault(vdir)) == before


def res_code(attack: str) -> int:
    return {"pickle": 7, "symlink": 7, "escape": 6, "not_a_cube": 3, "bad_utf8": 3,
            "unknown_format": 3}[attack]


def test_migrate_a_vault_of_the_generation_layout(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    """fixtures/vault-v1 was written by memos before the Lance vault (tests/golden/
    make_vault_v1.py): everything in it survives `memos vault migrate`, once."""
    v1 = Path(__file__).parent.parent / "fixtures/vault-v1"
    vdir = tmp_path / "vault"
    shutil.copytree(v1, vdir)
    with pytest.raises(FormatError, match="memos vault migrate"):
        Vault(vdir).state()
    from memos_cli.vault.migrate import read_legacy

    old = read_legacy(vdir)
    counts = json.loads(cli("vault", "migrate", "--vault", vdir, "--json").stdout)
    assert (counts["memories"], counts["history"], counts["archived"], counts["cubes"]) == (
        3, 1, 1, 2)
    new = Vault(vdir).state()
    assert new.memories == old.memories and new.history == old.history
    assert new.archived == old.archived and new.cubes == old.cubes
    assert new.origin == old.origin and new.embedding == old.embedding
    assert np.array_equal(new.vectors, old.vectors)
    assert not (vdir / "CURRENT").exists() and not list(vdir.glob("gen-*"))
    assert [r["op"] for r in Vault(vdir).read_log()][-1] == "migrate"  # the old log is kept
    assert len(Vault(vdir).read_log()) > 1
    cli("vault", "migrate", "--vault", vdir, code=2)  # once
    hits = search(Vault(vdir), embedder, "When does Kestrel launch?", 2, user="bob")
    assert hits[0].memory.content == "Kestrel launches in May."


def test_a_migration_killed_before_its_rename_changes_nothing(tmp_path: Path) -> None:
    vdir = tmp_path / "vault"
    shutil.copytree(Path(__file__).parent.parent / "fixtures/vault-v1", vdir)
    from tests.attacks.corpus import tree_digest

    before = tree_digest(vdir)
    held = Held(tmp_path, "migrate:before-rename", "vault", "migrate", "--vault", vdir)
    held.reached()
    held.kill()
    left = sorted(p.name for p in vdir.iterdir())
    assert ".lance-migrate.tmp" in left  # the half-built table, never used
    shutil.rmtree(vdir / ".lance-migrate.tmp")
    (vdir / ".lock").unlink(missing_ok=True)
    assert tree_digest(vdir) == before
    cli("vault", "migrate", "--vault", vdir)
    assert len(Vault(vdir).state().memories) == 3


def test_versions_checkout_and_compact(tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    v = Vault(tmp_path / "vault")
    load(v, write_jsonl(tmp_path / "a.jsonl", [{"content": "alpha"}]), user="ann",
         embedder=embedder)
    first = Vault(v.path).version
    load(v, write_jsonl(tmp_path / "b.jsonl", [{"content": "beta"}]), user="ann",
         embedder=embedder)
    second = Vault(v.path).version
    assert first is not None and second is not None and second > first
    versions = json.loads(cli("vault", "versions", "--vault", v.path, "--json").stdout)
    made = [r["op"] for r in versions["versions"] if r["op"] != "indexes and files (optimize)"]
    assert made == ["load by ann", "load by ann"]
    old = json.loads(cli("vault", "ls", "--vault", v.path, "--at", first, "--json").stdout)
    assert len(old["cubes"]) == 1 and old["version"] == first
    cli("vault", "checkout", first, "--vault", v.path)
    assert [m.content for m in Vault(v.path).state().memories] == ["alpha"]
    res = cli("load", tmp_path / "b.jsonl", "--vault", v.path, code=2)
    assert "checked out" in res.output
    cli("vault", "checkout", "latest", "--vault", v.path)
    assert len(Vault(v.path).state().memories) == 2
    log = Vault(v.path).read_log(at=first)
    assert [r["op"] for r in log] == ["load"]
    before = json.loads(cli("vault", "compact", "--vault", v.path, "--keep", "0",
                            "--json").stdout)
    assert before["versions_after"] < before["versions_before"]
    assert sorted(m.content for m in Vault(v.path).state().memories) == ["alpha", "beta"]


def test_a_change_of_60000_memories_fits_lances_merge_join(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Lance's merge join hashes every written row in memory and cannot spill; with its
    default pool (150 MB a CPU) a change of about 40,000 384-dimension memories was refused
    ("Resources exhausted ... HashJoinInput"). The commit sizes the pool to the change."""
    from memos_cli.vault.rows import Delta

    monkeypatch.delenv("LANCE_MEM_POOL_SIZE", raising=False)
    from memos_cli.vault import commit

    monkeypatch.setattr(commit, "_USER_POOL", None)
    v = Vault(tmp_path / "vault")
    first = Delta(memories=[(mem("seed"), np.ones(384, np.float32), "c")])
    first.cubes["c"] = {"name": "c", "installed_by": "ann", "installed_at": "2026-11-01"}
    v.apply(first, dim=384)  # creates the table; the next change goes through the join
    rng = np.random.default_rng(0)
    vecs = rng.normal(size=(60_000, 384)).astype(np.float32)
    big = Delta(memories=[(Memory.create(f"memory number {i}", now=NOW), vecs[i], "c")
                          for i in range(60_000)])
    v.apply(big, dim=384)
    assert int(v.table().count_rows("kind = 'memory'")) == 60_001
    assert int(os.environ["LANCE_MEM_POOL_SIZE"]) >= 2**30


def test_trust_rm_rotation_and_verify_names_the_signer(packed_cube: Path, keys,  # type: ignore[no-untyped-def]
                                                       other_keys, tmp_path: Path) -> None:
    """#28: `trust rm` was missing; `trust add` of a key trusted under another name said
    nothing; `verify` without --key ignored the trust store that load and pull use."""
    before = json.loads(cli("verify", packed_cube, "--json").stdout)["signature"]
    assert before.startswith("signed by no trusted key")
    cli("trust", "add", keys[1], "--name", "team")
    assert json.loads(cli("verify", packed_cube, "--json").stdout)["signature"] == \
        "verified (trusted key team)"
    again = cli("trust", "add", keys[1], "--name", "team2", code=2)
    assert "trusted already, as 'team'" in again.output
    assert "no trusted key named 'nope'; trusted: team" in cli("trust", "rm", "nope",
                                                                  code=2).output
    cli("trust", "rm", "team")  # revoked: load refuses the cube again
    assert json.loads(cli("trust", "ls", "--json").stdout) == []
    assert "signed by no key you trust" in cli("load", packed_cube, "--vault",
                                               tmp_path / "vault", code=8).output
    cli("trust", "add", other_keys[1], "--name", "team")  # rotated: the name takes a new key
    assert "signed by no trusted key" in json.loads(
        cli("verify", packed_cube, "--json").stdout)["signature"]


def test_short_ids_are_accepted_where_unique(packed_cube: Path, tmp_path: Path,
                                              trusted: str) -> None:
    """#28: inspect and search show 8 characters of an id, and no command accepted them."""
    from memos_cli.cube import open_cube
    from memos_cli.errors import UsageError as Usage
    from memos_cli.memory import resolve_id

    vault = tmp_path / "vault"
    cli("load", packed_cube, "--vault", vault, "--as", "tester")
    state = Vault(vault).state()
    mem = state.memories[0]
    cube_id = next(iter(state.cubes))
    shown = json.loads(cli("vault", "show", mem.id[:8], "--vault", vault, "--why",
                           "--as", "tester", "--json").stdout)
    assert shown["memory_id"] == mem.id
    assert json.loads(cli("vault", "show", cube_id[:8], "--vault", vault, "--as", "tester",
                          "--json").stdout)["cube_id"] == cube_id
    assert cli("vault", "share", mem.id[:8], "--reader", "bob", "--vault", vault,
               "--as", "tester").stdout.startswith(f"{mem.id}: shared")
    with pytest.raises(Usage, match="ambiguous: aaaa1, aaaa2"):
        resolve_id("aaaa", ["aaaa1", "aaaa2", "bbbb"])
    with pytest.raises(Usage, match="at least 4"):
        resolve_id("aa", ["aaaa1"])
    assert "no cube or memory zzzzzzzz" in cli("vault", "show", "zzzzzzzz", "--vault", vault,
                                               code=2).output
    copy = tmp_path / "c.memcube"
    import shutil
    shutil.copytree(packed_cube, copy)
    victim = open_cube(copy).memories[1].id
    cli("rm-memories", copy, "--ids", victim[:8])
    assert victim not in {m.id for m in open_cube(copy).memories}


def test_tables_off_a_terminal_are_plain_rows(packed_cube: Path, tmp_path: Path,
                                              trusted: str) -> None:
    """#28: output off a terminal was boxed and wrapped at 80 columns, so `vault ls` split ids
    across lines; in a pipe a table is plain rows, one a line, ids whole."""
    vault = tmp_path / "vault"
    cli("load", packed_cube, "--vault", vault, "--as", "tester")
    cube_id = next(iter(Vault(vault).state().cubes))
    text = cli("vault", "ls", "--vault", vault).stdout
    row = [x for x in text.splitlines() if cube_id in x]
    assert len(row) == 1 and "team" in row[0] and "18" in row[0].split()
    assert not any(c in text for c in "│┃━─╭╰┏")  # no box drawing


def test_load_maps_owners_to_hand_memory_over(packed_cube: Path, tmp_path: Path,
                                             trusted: str) -> None:
    """#28: `load --as bob` installed memories bob could neither read nor remove (they stayed
    tester's); --owner-map and --owner hand them over, and the log says so."""
    vault = tmp_path / "vault"
    plain = tmp_path / "plain"
    cli("load", packed_cube, "--vault", plain, "--as", "bob")
    assert not any(can_read(m, "bob") for m in Vault(plain).state().memories)  # tester's
    rep = json.loads(cli("load", packed_cube, "--vault", vault, "--as", "bob", "--owner-map",
                         "tester=bob", "--json").stdout)
    state = Vault(vault).state()
    assert rep["added"] == 18 and {m.owner for m in state.memories} == {"bob"}
    assert all(can_read(m, "bob") for m in state.memories)
    cube_id = next(iter(state.cubes))
    cli("vault", "rm", cube_id, "--vault", vault, "--as", "bob")  # and bob may remove them
    assert Vault(vault).state().memories == []
    assert Vault(vault).read_log(op="load")[-1]["owners_mapped"] == {"tester": "bob"}
    other = tmp_path / "other"
    cli("load", packed_cube, "--vault", other, "--as", "carol", "--owner", "carol/work")
    assert {m.owner for m in Vault(other).state().memories} == {"carol/work"}
    assert "not OLD=NEW" in cli("load", packed_cube, "--vault", other, "--owner-map", "bob",
                                code=2).output
