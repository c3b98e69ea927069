"""Who may read and change a memory (MemGovernance, MemOS paper §4.2 and §7.2.3; spec §14).

Principals are written as text:

- a user, ``ann``; a user acting under one of their personas, ``ann/manager``;
- a role, ``role:analysts``, whose members (users, or users under one persona) the vault's
  role table lists (``memos_cli.governance.roles``).

A request is made by an *identity*: a user, optionally under a persona. A memory has an owner
(a user or ``user/persona``: what it was written under), a visibility and a list of readers.
Read access, the first rule that applies deciding:

1. an expired memory (``expires_at`` passed) is readable by no one;
2. ``public``: everyone;
3. the owner: owner ``ann`` is readable by ann under any persona (her default stream);
   owner ``ann/parent`` only by ann acting as ``ann/parent`` (a persona's stream is kept apart
   from her other personas and from her default identity);
4. ``private``: nobody else;
5. ``shared``: a reader ``bob`` grants bob under any persona, ``bob/assistant`` that persona
   only, ``role:analysts`` every member of the role.

Write access (remove, version, re-share) belongs to the memory's owner user (any persona;
for a memory without owner, the user who installed it) and to the admins of a role among its
readers; nobody else.
"""

from __future__ import annotations

import getpass
from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import TYPE_CHECKING

from memos_cli import config
from memos_cli.governance.roles import active
from memos_cli.memory import Memory
from memos_cli.principal import NAME, ROLE_PREFIX, Identity, check_name, stored

if TYPE_CHECKING:
    from memos_cli.governance.roles import Roles

#: The persona this command acts under (``--persona`` / ``$MEMOS_PERSONA``), set by the CLI
#: for each command; ``None`` for none.
PERSONA: list[str | None] = [None]


@dataclass(frozen=True)
class Decision:
    """An access decision and the rule that made it, in words (``vault show --why``)."""

    allowed: bool
    rule: str


def current_user() -> str:
    """``$MEMOS_USER``, else the config file's ``user``, else the login name; under the persona
    ``$MEMOS_PERSONA`` (``--persona``) when set, as ``user/persona``."""

    return as_identity(config.value("user") or getpass.getuser(), lenient=True)


def as_identity(text: str, *, lenient: bool = False) -> str:
    """The identity a command acts as: ``--as`` text (``ann`` or ``ann/manager``) with the
    persona of ``--persona`` / ``$MEMOS_PERSONA`` applied, checked, as ``user[/persona]``.
    ``lenient`` keeps a login name that breaks the name rules as it is.

    Raises:
        UsageError: a malformed name, or two different personas.
    """
    persona = PERSONA[0]
    if lenient and not NAME.match(text.partition("/")[0]):
        return text if persona is None else f"{text}/{check_name(persona, 'persona')}"
    return str(Identity.parse(text, persona))


def _who(who: str | Identity) -> Identity:
    return who if isinstance(who, Identity) else stored(who)


def _roles(roles: Roles | None) -> Roles:
    return roles if roles is not None else active()


def _first_role(memory: Memory, roles: Roles | None,
                test: Callable[[Roles, str], bool]) -> str | None:
    """The first role among ``memory``'s readers for which ``test(table, name)`` holds (the
    role table is read only when the memory names a role)."""
    names = [r[len(ROLE_PREFIX):] for r in memory.readers if r.startswith(ROLE_PREFIX)]
    if not names:
        return None
    table = _roles(roles)
    return next((n for n in names if test(table, n)), None)


def decide_read(memory: Memory, who: str | Identity, *, now: datetime | None = None,
                roles: Roles | None = None) -> Decision:
    """Whether ``who`` may read ``memory`` now, and by which rule (module docstring).
    ``roles`` defaults to the active role table (``roles.active``)."""
    me = _who(who)
    if memory.expired(now or datetime.now(timezone.utc)):
        return Decision(False, f"expired at {memory.expires_at:%Y-%m-%d %H:%M} UTC")
    if memory.visibility == "public":
        return Decision(True, "public")
    owner = stored(memory.owner) if memory.owner else None
    if owner is not None and owner.user == me.user:
        if owner.persona is None or owner.persona == me.persona:
            return Decision(True, f"owner ({memory.owner})")
        mine = f"persona {me.persona}" if me.persona else "no persona"
        stream = f"written under persona {owner.persona}; you act under {mine}"
    else:
        stream = f"owned by {memory.owner or 'nobody'}"
    if memory.visibility == "private":
        return Decision(False, f"private, {stream}")
    for reader in memory.readers:
        r = stored(reader)
        if not reader.startswith(ROLE_PREFIX) and r.user == me.user and \
                r.persona in (None, me.persona):
            return Decision(True, f"shared with {reader}")
    role = _first_role(memory, roles, lambda t, name: t.is_member(name, me))
    if role is not None:
        return Decision(True, f"shared with {ROLE_PREFIX}{role}, of which {me} is a member")
    listed = ", ".join(memory.readers) or "nobody"
    return Decision(False, f"shared with {listed}, not with {me}; {stream}")


def can_read(memory: Memory, user: str | Identity, *, now: datetime | None = None,
             roles: Roles | None = None) -> bool:
    """True when ``user`` (``ann`` or ``ann/persona``) may read ``memory`` now."""
    return decide_read(memory, user, now=now, roles=roles).allowed


def decide_write(memory: Memory, who: str | Identity, *, installed_by: str | None = None,
                 roles: Roles | None = None) -> Decision:
    """Whether ``who`` may remove, version or re-share ``memory``: its owner user (any
    persona; without an owner, ``installed_by``), or an admin of a role among its readers."""
    me = _who(who)
    owner = stored(memory.owner).user if memory.owner else installed_by
    if owner is not None and owner == me.user:
        return Decision(True, f"owner ({memory.owner or f'installed by {installed_by}'})")
    role = _first_role(memory, roles, lambda t, name: t.is_admin(name, me))
    if role is not None:
        return Decision(True, f"admin of {ROLE_PREFIX}{role}")
    return Decision(False, f"only its owner ({owner or 'none'}) or an admin of a role it is "
                           "shared with may change it")
