"""Roles of a vault (MemGovernance, spec §14): named groups of users that memories can be
shared with (a reader ``role:NAME``), with admins who may change the role and the memories
shared with it.

The table is ``VAULT/roles.json``, replaced atomically under the vault's lock; every change is
recorded in the vault's access log (``op`` = ``role``). Roles hold users (``ann``) or users
under one persona (``ann/manager``), never other roles, so a role definition cannot be
circular. A role named by a memory but not defined grants nothing until it is defined (a
*dangling* reader): a change to the table takes effect on the next command, for memories
already installed too.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memos_cli import strictjson
from memos_cli.config import default_vault
from memos_cli.digest import canonical_json
from memos_cli.errors import FormatError, MemosError, UsageError
from memos_cli.governance import seal
from memos_cli.objstore.place import Place
from memos_cli.principal import ROLE_PREFIX, Identity, check_name

ROLES_FILE = "roles.json"
FORMAT = "memos-roles"
VERSION = 1


@dataclass
class Role:
    """``members`` and ``admins``: ``user`` or ``user/persona`` entries; admins are members."""

    name: str
    members: list[str] = field(default_factory=list)
    admins: list[str] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return {"members": sorted(set(self.members)), "admins": sorted(set(self.admins))}


def _matches(entries: list[str], who: Identity) -> bool:
    return who.user in entries or (who.persona is not None and str(who) in entries)


def check_member(entry: str) -> str:
    """A member or admin entry: a user or ``user/persona``; a role is refused (roles hold
    users only, so no definition can be circular).

    Raises:
        UsageError: naming the entry.
    """
    if entry.startswith(ROLE_PREFIX):
        raise UsageError(f"{entry}: a role holds users (ann, or ann/persona), not other roles")
    return str(Identity.parse(entry))


class Roles:
    """The role table of one vault (empty when it has none)."""

    def __init__(self, roles: dict[str, Role] | None = None,
                 place: Place | None = None, sealed: bool | None = None) -> None:
        self.roles = roles or {}
        self.place = place
        #: whether the file read carried a seal (spec §16.5); ``None``: there is no file
        self.sealed = sealed

    @classmethod
    def load(cls, vault: Place | Path | str) -> Roles:
        """Read ``VAULT/roles.json`` (``vault`` a directory, a URI or a
        :class:`~memos_cli.objstore.place.Place`); a vault without one has no roles.

        Raises:
            FormatError: unreadable, another format or a newer version, malformed entries.
        """
        place = vault if isinstance(vault, Place) else Place(vault)
        path = f"{place}/{ROLES_FILE}"
        try:
            text = place.read_text(ROLES_FILE)
            if text is None:
                return cls({}, place)
            data = strictjson.loads(text)
            if not isinstance(data, dict) or data.get("format") != FORMAT or \
                    data.get("version") != VERSION or not isinstance(data.get("roles"), dict):
                raise FormatError(f"not a {FORMAT} {VERSION} table", path=path)
            mark = data.pop("seal", None)
            if mark is not None and not isinstance(mark, str):
                raise FormatError("the role table's seal is not a string", path=path)
            seal.checker().check(seal.ROLES_DOMAIN, [canonical_json(data).decode()], mark,
                                 row="the role table", where=path)
            roles = {check_name(n, "role"): Role(n, _names(r, "members", n, path),
                                                 _names(r, "admins", n, path))
                     for n, r in data["roles"].items()}
        except MemosError:  # a damaged table, or a store that refuses (RemoteError)
            raise
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as e:
            raise FormatError(f"unreadable role table: {e}", path=path) from e
        return cls(roles, place, sealed=mark is not None)

    def save(self) -> None:
        """Replace the table at once (a rename locally, one PUT in a bucket)."""
        assert self.place is not None
        data: dict[str, Any] = {"format": FORMAT, "version": VERSION,
                                "roles": {n: r.to_dict() for n, r in sorted(self.roles.items())}}
        sealer = seal.sealer()
        if sealer is not None:  # spec §16.5
            data["seal"] = sealer.seal(seal.ROLES_DOMAIN, [canonical_json(data).decode()])
        self.place.write_text(ROLES_FILE, json.dumps(data, indent=1) + "\n")

    def is_member(self, role: str, who: Identity) -> bool:
        r = self.roles.get(role)
        return r is not None and (_matches(r.members, who) or _matches(r.admins, who))

    def is_admin(self, role: str, who: Identity) -> bool:
        r = self.roles.get(role)
        return r is not None and _matches(r.admins, who)

    def unknown(self, readers: list[str]) -> list[str]:
        """The ``role:`` readers among ``readers`` that name no role of this table."""
        return [r for r in readers if r.startswith(ROLE_PREFIX)
                and r[len(ROLE_PREFIX):] not in self.roles]


def _names(role: Any, key: str, name: str, path: str) -> list[str]:
    """A role's ``members`` or ``admins``: a list of user names (never a string, which
    would be read as its letters)."""
    value = role.get(key) if isinstance(role, dict) else None
    if not isinstance(value, list) or not all(isinstance(m, str) for m in value):
        raise FormatError(f"role {name[:80]!r}: {key} is not a list of names", path=path)
    return [check_member(m) for m in value]


_active: dict[str, Any] = {}


def forget_active() -> None:
    """Drop the role table read by :func:`active`: the next check reads it again (after a
    change to it)."""
    _active.pop("roles", None)


def use_vault(place: Place) -> None:
    """Make the role table of the vault at ``place`` the one access checks use in this
    process (each ``Vault`` a command opens does this: a command works on one vault)."""
    if _active.get("key") != place.key:
        _active.clear()
        _active["key"], _active["path"] = place.key, place


def active() -> Roles:
    """The role table access checks use: that of the vault :func:`use_vault` named, else the
    default vault's (``$MEMOS_VAULT`` or ``MEMOS_HOME/vault``). It is read once, and read
    again when the ``roles.json`` of a vault in a directory changes (its inode, size or
    time), so that a long-lived process (``memos mcp``, ``memos ui``) sees role changes
    that other processes make; a vault in object storage is read once per process."""
    where = _active.get("path") or default_vault()
    mark = _mark(where)
    if "roles" not in _active or _active.get("mark") != mark:
        _active["roles"] = Roles.load(where)
        _active["mark"] = mark
    roles: Roles = _active["roles"]
    return roles


def _mark(where: Place | Path | str) -> tuple[int, int, int] | None:
    """What tells that a local vault's role table changed; ``None`` where nothing does (no
    table, or a vault in object storage)."""
    local = where.local if isinstance(where, Place) else \
        (None if "://" in str(where) else Path(where))
    if local is None:
        return None
    try:
        st = os.lstat(local / ROLES_FILE)
    except OSError:
        return None
    return (st.st_ino, st.st_size, st.st_mtime_ns)
