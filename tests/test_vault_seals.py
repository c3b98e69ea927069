"""Seals on vault rows and role tables (spec §16.5): a row rewritten with valid values by
someone without a trusted key is refused, in one line naming the row, and nothing changes."""

from __future__ import annotations

import json
from pathlib import Path

import lancedb
import pytest

from memos_cli.cube import generate_keypair
from memos_cli.cube.signature import key_fingerprint
from memos_cli.governance import seal
from memos_cli.governance.roles import forget_active
from memos_cli.governance.trust import trust_add
from tests.conftest import invoke as cli
from tests.test_vault import write_jsonl

NOTES = [
    {"id": "tea", "content": "Alice drinks green tea every morning.", "owner": "alice",
     "visibility": "private"},
    {"id": "trip", "content": "The team trip to Bergen is in May.", "owner": "alice",
     "visibility": "shared", "readers": ["role:team"]},
    {"id": "budget", "content": "The prototype budget is 48,000 euros.", "owner": "alice",
     "visibility": "private"},
]


@pytest.fixture(autouse=True)
def own_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEMOS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEMOS_NO_USAGE", "1")
    monkeypatch.delenv("MEMOS_KEY", raising=False)
    monkeypatch.delenv("MEMOS_VAULT_SEALS", raising=False)
    return tmp_path / "home"


@pytest.fixture
def alice(tmp_path: Path) -> tuple[Path, Path]:
    return generate_keypair(tmp_path / "alice")


def make_vault(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: Path | None) -> Path:
    vault = tmp_path / "vault"
    src = write_jsonl(tmp_path / "notes.jsonl", NOTES)
    if key is not None:
        monkeypatch.setenv("MEMOS_KEY", str(key))
    cli("load", src, "--vault", vault, "--as", "alice", "--allow-unsigned")
    cli("role", "add", "team", "--member", "bob", "--vault", vault, "--as", "alice")
    monkeypatch.delenv("MEMOS_KEY", raising=False)
    return vault


def table(vault: Path):  # type: ignore[no-untyped-def]
    return lancedb.connect(str(vault / "lance")).open_table("vault")


def row_of(vault: Path, content: str) -> dict:
    for r in table(vault).search().where("kind = 'memory'").limit(None).to_list():
        if json.loads(r["record"])["content"] == content:
            return r
    raise AssertionError(content)


def rewrite(vault: Path, was: str, **fields: object) -> str:
    """Rewrite one memory row's record by hand, with valid values; its key."""
    r = row_of(vault, was)
    record = {**json.loads(r["record"]), **fields}
    table(vault).update(where=f"key = '{r['key']}'",
                        values={"record": json.dumps(record, sort_keys=True)})
    return str(r["key"])


def search_ids(vault: Path, user: str, code: int = 0) -> list[str]:
    r = cli("search", "tea budget trip", "--vault", vault, "--as", user, "--json", "-k", "5",
            code=code)
    return [h["content"] for h in json.loads(r.stdout)["results"]] if code == 0 else []


def test_a_keyed_writer_seals_every_row(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                        alice: tuple[Path, Path]) -> None:
    vault = make_vault(tmp_path, monkeypatch, alice[0])
    rows = table(vault).to_arrow()
    assert "seal" in rows.column_names
    marks = rows.column("seal").to_pylist()
    fingerprint = key_fingerprint(alice[1])
    assert all(m.startswith(fingerprint + " ") for m in marks), marks
    meta = json.loads(rows.column("record")[rows.column("key").to_pylist().index("v")]
                      .as_py())
    assert meta["version"] == 3
    assert "seal" in json.loads((vault / "roles.json").read_text())
    # the seals verify with alice's public key, trusted on another machine
    trust_add(alice[1], "alice")
    monkeypatch.setenv("MEMOS_VAULT_SEALS", "require")
    assert "Alice drinks green tea every morning." in search_ids(vault, "alice")
    cli("vault", "ls", "--vault", vault)


@pytest.mark.parametrize("fields", [{"owner": "bob"}, {"readers": ["bob"]},
                                    {"content": "The prototype budget is 90,000 euros."}],
                         ids=["owner", "readers", "content"])
def test_a_row_rewritten_by_hand_is_refused(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            alice: tuple[Path, Path], fields: dict) -> None:
    vault = make_vault(tmp_path, monkeypatch, alice[0])
    trust_add(alice[1], "alice")
    key = rewrite(vault, "The prototype budget is 48,000 euros.",
                  **({"visibility": "shared"} if "readers" in fields else {}), **fields)
    before = table(vault).version
    r = cli("search", "prototype budget", "--vault", vault, "--as", "bob", "--json", code=6)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0] and "seal by alice" in lines[0], r.stderr
    cli("vault", "ls", "--vault", vault, code=6)
    # a change to that row refuses too: a writer never seals an edit it did not make
    cli("vault", "share", key[2:], "--reader", "carol", "--vault", vault, "--as", "alice",
        code=6)
    assert table(vault).version == before  # nothing changed
    # without a key to check with, the edit is obeyed: what the README says
    (tmp_path / "home" / "trust" / "alice.pub").unlink()
    if "owner" in fields or "readers" in fields:
        assert "The prototype budget is 48,000 euros." in search_ids(vault, "bob")


def test_a_seal_moved_to_another_row_is_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                alice: tuple[Path, Path]) -> None:
    vault = make_vault(tmp_path, monkeypatch, alice[0])
    trust_add(alice[1], "alice")
    trip = row_of(vault, "The team trip to Bergen is in May.")
    budget = row_of(vault, "The prototype budget is 48,000 euros.")
    table(vault).update(where=f"key = '{budget['key']}'", values={"seal": trip["seal"]})
    r = cli("vault", "ls", "--vault", vault, code=6)
    assert budget["key"] in r.stderr


def test_require_refuses_unsealed_rows_and_unknown_signers(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alice: tuple[Path, Path]) -> None:
    vault = make_vault(tmp_path, monkeypatch, None)  # written without a key: format 2
    assert "seal" not in table(vault).to_arrow().column_names
    assert search_ids(vault, "alice")  # check (the default) reads unsealed rows
    monkeypatch.setenv("MEMOS_VAULT_SEALS", "require")
    r = cli("vault", "ls", "--vault", vault, code=6)
    assert "is not sealed" in r.stderr and "memos vault seal" in r.stderr
    # alice seals it: the column is added once, every row and the role table sealed
    monkeypatch.setenv("MEMOS_VAULT_SEALS", "check")
    monkeypatch.setenv("MEMOS_KEY", str(alice[0]))
    out = json.loads(cli("vault", "seal", "--vault", vault, "--dry-run", "--json").stdout)
    assert out["sealed"] == 4 and out["roles"] is True  # 3 memories and the cube
    assert "seal" not in table(vault).to_arrow().column_names  # a dry run writes nothing
    out = json.loads(cli("vault", "seal", "--vault", vault, "--json").stdout)
    assert out["sealed"] == 4 and out["roles"] is True
    again = json.loads(cli("vault", "seal", "--vault", vault, "--json").stdout)
    assert again["sealed"] == 0 and again["already"] == {"this machine's key": 5}
    monkeypatch.delenv("MEMOS_KEY")
    monkeypatch.setenv("MEMOS_VAULT_SEALS", "require")
    # another machine that does not trust alice's key refuses under require...
    r = cli("vault", "ls", "--vault", vault, code=6)
    assert "does not trust" in r.stderr
    # ...and accepts once it does
    trust_add(alice[1], "alice")
    assert len(search_ids(vault, "alice")) == 3
    log = [json.loads(x) for x in (vault / "audit.jsonl").read_text().splitlines()]
    assert [e["op"] for e in log].count("seal") == 2


def test_a_role_table_edited_by_hand_is_refused(tmp_path: Path,
                                                monkeypatch: pytest.MonkeyPatch,
                                                alice: tuple[Path, Path]) -> None:
    vault = make_vault(tmp_path, monkeypatch, alice[0])
    trust_add(alice[1], "alice")
    data = json.loads((vault / "roles.json").read_text())
    data["roles"]["team"]["members"].append("mallory")
    (vault / "roles.json").write_text(json.dumps(data))
    r = cli("search", "trip", "--vault", vault, "--as", "mallory", "--json", code=6)
    assert "role table does not match its seal by alice" in r.stderr
    assert "roles.json" in r.stderr
    del data["seal"]  # a table with its seal removed is read under check, refused under require
    (vault / "roles.json").write_text(json.dumps(data))
    cli("search", "trip", "--vault", vault, "--as", "mallory", "--json")
    monkeypatch.setenv("MEMOS_VAULT_SEALS", "require")
    forget_active()  # the policy changed, not the file: this process keeps the table it read
    r = cli("search", "trip", "--vault", vault, "--as", "mallory", "--json", code=6)
    assert "the role table is not sealed" in r.stderr


def test_a_keyless_writer_says_its_rows_are_unsealed(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alice: tuple[Path, Path],
        caplog: pytest.LogCaptureFixture) -> None:
    vault = make_vault(tmp_path, monkeypatch, alice[0])
    caplog.clear()
    cli("remember", "Alice moved the standup to 9:30.", "--vault", vault, "--as", "alice")
    said = [r.getMessage() for r in caplog.records if r.name == "memos"]
    assert len(said) == 1 and "is not sealed (no signing key" in said[0], said
    row = row_of(vault, "Alice moved the standup to 9:30.")
    assert row["seal"] == ""


def test_bad_policy_is_one_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    vault = make_vault(tmp_path, monkeypatch, None)
    monkeypatch.setenv("MEMOS_VAULT_SEALS", "paranoid")
    r = cli("vault", "ls", "--vault", vault, code=2)
    assert r.stderr.strip().splitlines() == ["error: vault_seals is 'paranoid'; use check or "
                                             "require"]
    # the config file never takes a value that every command would then refuse
    r = cli("config", "set", "vault_seals", "paranoid", code=2)
    assert "use check or require" in r.stderr
    r = cli("config", "set", "remote_timeout", "soon", code=2)
    assert "not a number of seconds" in r.stderr
    assert not (tmp_path / "home" / "config.toml").exists()
    cli("config", "set", "vault_seals", "require")


def test_seals_are_what_the_spec_says(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                      alice: tuple[Path, Path]) -> None:
    """Spec §16.5, checked from the stored bytes with rfc8785 and cryptography alone."""
    import base64

    import rfc8785
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec

    vault = make_vault(tmp_path, monkeypatch, alice[0])
    pub = serialization.load_pem_public_key(alice[1].read_bytes())
    assert isinstance(pub, ec.EllipticCurvePublicKey)
    rows = table(vault).to_arrow().to_pylist()
    assert {r["kind"] for r in rows} == {"memory", "cube", "vault"}
    for r in rows:
        fp, b64 = r["seal"].split(" ")
        assert fp == key_fingerprint(alice[1])
        signed = rfc8785.dumps(["memos-vault-row/1", r["key"], r["kind"], r["id"],
                                r["cube_id"], r["content_hash"], r["record"]])
        pub.verify(base64.b64decode(b64, validate=True), signed, ec.ECDSA(hashes.SHA256()))
    roles = json.loads((vault / "roles.json").read_text())
    fp, b64 = roles.pop("seal").split(" ")
    signed = rfc8785.dumps(["memos-vault-roles/1", rfc8785.dumps(roles).decode()])
    pub.verify(base64.b64decode(b64, validate=True), signed, ec.ECDSA(hashes.SHA256()))


def test_verified_seals_are_remembered_and_an_edit_still_misses(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alice: tuple[Path, Path]) -> None:
    from memos_cli.governance import seal_cache

    monkeypatch.setattr(seal_cache, "MIN_ROWS", 1)
    vault = make_vault(tmp_path, monkeypatch, alice[0])
    trust_add(alice[1], "alice")
    cache = tmp_path / "home" / seal_cache.FILE
    rows = table(vault).count_rows()
    verified: list[bytes] = []

    class Counting:
        """Alice's public key, counting the verifications made with it."""

        def __init__(self, key: object) -> None:
            self.key = key

        def verify(self, sig: bytes, data: bytes, algorithm: object) -> None:
            if data.startswith(b'["memos-vault-row/1"'):  # the role table is checked apart
                verified.append(data)
            self.key.verify(sig, data, algorithm)  # type: ignore[attr-defined]

    real = seal.checker()
    counted = seal.Checker(real.policy, {fp: (name, Counting(k))  # type: ignore[misc]
                                         for fp, (name, k) in real.known.items()})
    monkeypatch.setattr(seal, "_checker", lambda *a: counted)
    cli("vault", "ls", "--vault", vault)
    assert len(verified) == rows  # every row verified once...
    assert cache.stat().st_size == rows * seal_cache.ENTRY  # ...and remembered
    cli("vault", "ls", "--vault", vault)
    assert len(verified) == rows  # the second read verified none again
    # an edit misses the cache and is refused as before
    key = rewrite(vault, "The prototype budget is 48,000 euros.", owner="bob")
    r = cli("vault", "ls", "--vault", vault, code=6)
    assert key in r.stderr and len(verified) == rows + 1
    # a key no longer trusted is not taken from the cache
    monkeypatch.undo()
    monkeypatch.setenv("MEMOS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("MEMOS_VAULT_SEALS", "require")
    cli("trust", "rm", "alice")
    r = cli("vault", "ls", "--vault", vault, code=6)
    assert "does not trust" in r.stderr


@pytest.mark.parametrize("kind", ["link", "fifo", "folder"])
def test_a_seal_cache_memos_cannot_use_is_a_miss(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch, alice: tuple[Path, Path],
        caplog: pytest.LogCaptureFixture, kind: str) -> None:
    import os

    from memos_cli.governance import seal_cache

    monkeypatch.setattr(seal_cache, "MIN_ROWS", 1)
    vault = make_vault(tmp_path, monkeypatch, alice[0])
    trust_add(alice[1], "alice")
    cache = tmp_path / "home" / seal_cache.FILE
    outside = tmp_path / "outside.bin"
    outside.write_bytes(b"")
    if kind == "link":
        os.symlink(outside, cache)
    elif kind == "fifo":
        os.mkfifo(cache)
    else:
        cache.mkdir()
    caplog.clear()
    cli("vault", "ls", "--vault", vault)  # no hang on the FIFO, no error
    said = [r.getMessage() for r in caplog.records if r.name == "memos"]
    assert said and all(str(cache) in m for m in said), said
    assert outside.read_bytes() == b""  # nothing written through the link
