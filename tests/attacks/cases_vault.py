"""Vault files edited by hand (spec §16): a copy of a vault where alice shares one memory with
``role:team`` (member: bob), with its small files replaced: a role table whose members are a
string (read as letters, user ``b`` would be a member), files that are links out of the
vault, FIFOs, folders, invalid UTF-8, deep or non-object JSON, and ``CHECKOUT`` values that
are not version numbers, and rows or roles rewritten with valid values that grant ``b``
access (the vault is sealed with ``Base.vault_key``). Every command runs as user ``b``, who
may read nothing: a search that returns a memory is an access leak (``corpus.check``)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.attacks.cases_cube import deep
from tests.attacks.corpus import Base, Case


def vault_case(name: str, make: Callable[[Path, Path], None], expect: str = "refuse",
               env: tuple[tuple[str, str], ...] = ()) -> Case:
    def build(work: Path, base: Base) -> Path:
        assert base.vault is not None, "vault cases need Base.vault"
        v = work / "vault"
        shutil.copytree(base.vault, v, symlinks=True)
        make(v, work)
        return v
    return Case(f"vault_{name}", "vault", build, expect, env)


#: The machine the commands run on knows the key that sealed the vault (its own, here).
KNOWS_KEY = (("MEMOS_KEY", "{vault_key}"),)
REQUIRES_SEALS = (*KNOWS_KEY, ("MEMOS_VAULT_SEALS", "require"))


def _write(name: str, data: bytes | str) -> Callable[[Path, Path], None]:
    def make(v: Path, work: Path) -> None:
        (v / name).unlink(missing_ok=True)
        (v / name).write_bytes(data.encode() if isinstance(data, str) else data)
    return make


def _roles(change: Callable[[dict], object]) -> Callable[[Path, Path], None]:
    def make(v: Path, work: Path) -> None:
        data = json.loads((v / "roles.json").read_text())
        out = change(data)
        (v / "roles.json").write_text(out if isinstance(out, str) else json.dumps(out))
    return make


def _members(value: object) -> Callable[[dict], object]:
    def change(d: dict) -> dict:
        d["roles"]["team"]["members"] = value
        return d
    return change


def _link_out(name: str, content: bytes | None = None) -> Callable[[Path, Path], None]:
    def make(v: Path, work: Path) -> None:
        outside = work / "outside" / name
        outside.parent.mkdir(parents=True, exist_ok=True)
        if content is not None:
            outside.write_bytes(content)
        elif (v / name).exists():
            shutil.move(str(v / name), outside)
        else:
            outside.write_text("")
        (v / name).unlink(missing_ok=True)
        os.symlink(outside, v / name)
    return make


def _special(name: str, kind: str) -> Callable[[Path, Path], None]:
    def make(v: Path, work: Path) -> None:
        (v / name).unlink(missing_ok=True)
        os.mkfifo(v / name) if kind == "fifo" else (v / name).mkdir()
    return make


def _row(change: Callable[[dict], object], **columns: str) -> Callable[[Path, Path], None]:
    """Rewrite the record (and ``columns``) of the first memory row in the vault's Lance
    table."""
    def make(v: Path, work: Path) -> None:
        import lancedb

        t = lancedb.connect(str(v / "lance")).open_table("vault")
        row = t.search().where("kind = 'memory'").limit(1).to_list()[0]
        out = change(json.loads(row["record"]))
        record = out if isinstance(out, str) else json.dumps(out)
        t.update(where=f"key = '{row['key']}'", values={"record": record, **columns})
    return make


GRANT_B = json.dumps({"format": "memos-roles", "version": 1, "roles": {
    "team": {"members": ["b"], "admins": ["b"]}}}).encode()

CASES = [
    vault_case("roles_members_string", _roles(_members("bob"))),
    vault_case("roles_members_dict", _roles(_members({"b": 1}))),
    vault_case("roles_admins_string", _roles(lambda d: {**d, "roles": {"team": {
        **d["roles"]["team"], "admins": "alice"}}})),
    vault_case("roles_list", _roles(lambda d: [d])),
    vault_case("roles_roles_list", _roles(lambda d: {**d, "roles": ["team"]})),
    vault_case("roles_deep", _roles(lambda d: '{"roles": ' + deep(50_000) + "}")),
    vault_case("roles_bad_utf8", _write("roles.json", b'{"format": "\xff\xfe"}')),
    vault_case("roles_link_out", _link_out("roles.json", GRANT_B)),
    vault_case("roles_fifo", _special("roles.json", "fifo")),
    vault_case("roles_dir", _special("roles.json", "dir")),
    vault_case("checkout_superscript", _write("CHECKOUT", "²")),
    vault_case("checkout_digits_5000", _write("CHECKOUT", "9" * 5000)),
    vault_case("checkout_bad_utf8", _write("CHECKOUT", b"\xff\xfe1")),
    vault_case("checkout_fifo", _special("CHECKOUT", "fifo")),
    vault_case("checkout_link_out", _link_out("CHECKOUT", b"1")),
    vault_case("audit_fifo", _special("audit.jsonl", "fifo")),
    vault_case("audit_dir", _special("audit.jsonl", "dir")),
    vault_case("audit_link_out", _link_out("audit.jsonl")),
    vault_case("audit_list_lines", _write("audit.jsonl", "[1, 2]\n[3]\n"), expect="any"),
    vault_case("audit_bad_utf8", _write("audit.jsonl", b'{"op": "\xff"}\n'), expect="any"),
    vault_case("audit_version_string", _write("audit.jsonl", '{"version": "x"}\n'),
               expect="any"),
    vault_case("audit_deep", _write("audit.jsonl", deep(50_000) + "\n"), expect="any"),
    # a damaged row: commands that read it refuse in one line, others may succeed
    vault_case("row_expires_soon", _row(lambda r: {**r, "expires_at": "soon"}), expect="any"),
    vault_case("row_not_json", _row(lambda r: "{not json"), expect="any"),
    vault_case("row_deep", _row(lambda r: deep(50_000)), expect="any"),
    vault_case("row_list", _row(lambda r: [r]), expect="any"),
    vault_case("row_readers_string", _row(lambda r: {**r, "readers": "b"}), expect="any"),
    # edits with valid values that grant user b access: refused by the rows' seals (§16.5);
    # without a key to check with they are obeyed (README), so these cases run with one
    vault_case("row_owner_b", _row(lambda r: {**r, "owner": "b"}), "any", KNOWS_KEY),
    vault_case("row_readers_b", _row(lambda r: {**r, "visibility": "shared",
                                                "readers": ["b"]}), "any", KNOWS_KEY),
    vault_case("row_owner_b_unsealed", _row(lambda r: {**r, "owner": "b"}, seal="''"), "any",
               REQUIRES_SEALS),
    vault_case("roles_member_b", _roles(_members(["bob", "b"])), "any", KNOWS_KEY),
    vault_case("roles_member_b_unsealed", _roles(lambda d: {
        k: v for k, v in _members(["bob", "b"])(d).items() if k != "seal"}), "any",
        REQUIRES_SEALS),
]
