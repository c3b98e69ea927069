"""Principal names: who owns, reads or asks for a memory (spec §14), written as text.

- a user, ``ann``; a user acting under one of their personas, ``ann/manager``;
- a role, ``role:analysts``, whose members a vault's role table lists
  (:mod:`memos_cli.governance.roles`).

Pure: it imports nothing of memos but its errors, so the memory record
(:mod:`memos_cli.memory`) can check an owner without reaching governance.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from memos_cli.errors import UsageError

#: A user, persona or role name: a letter or digit, then letters, digits, ``.``, ``_``, ``-``
#: or ``@``; at most 64 characters.
NAME = re.compile(r"[A-Za-z0-9][A-Za-z0-9._@-]{0,63}\Z")
ROLE_PREFIX = "role:"


def check_name(name: str, what: str) -> str:
    """``name`` when it is a valid user, persona or role name.

    Raises:
        UsageError: empty, too long, or holding a path separator, space or control character.
    """
    if not NAME.match(name):
        raise UsageError(f"{what} {name!r} is not a name: use letters, digits, '.', '_', '-' "
                         "or '@' (at most 64, starting with a letter or digit)")
    return name


@dataclass(frozen=True)
class Identity:
    """Who makes a request: ``user``, acting under ``persona`` (``None``: no persona)."""

    user: str
    persona: str | None = None

    @classmethod
    def parse(cls, text: str, persona: str | None = None) -> Identity:
        """``ann`` or ``ann/manager`` (``persona`` given separately is the same as the
        second form). Raises ``UsageError`` for a malformed name or two personas."""
        user, sep, given = text.partition("/")
        if sep and persona is not None and persona != given:
            raise UsageError(f"--as {text} already names persona {given!r}; --persona "
                             f"{persona!r} contradicts it")
        p = given if sep else persona
        return cls(check_name(user, "user"), check_name(p, "persona") if p is not None else None)

    def __str__(self) -> str:
        return self.user if self.persona is None else f"{self.user}/{self.persona}"


def check_principal(text: str) -> str:
    """A reader or owner entry (``ann``, ``ann/manager`` or ``role:analysts``), checked.

    Raises:
        UsageError: naming the malformed entry.
    """
    if text.startswith(ROLE_PREFIX):
        check_name(text[len(ROLE_PREFIX):], "role")
    else:
        Identity.parse(text)
    return text


def stored(text: str) -> Identity:
    """A principal as a memory stores it, read leniently: ``user/persona`` when both parts are
    names, else the whole text as a user (owners imported from other systems, such as
    ``John Doe``, predate the name rules and are compared as they are)."""
    user, sep, persona = text.partition("/")
    if sep and NAME.match(user) and NAME.match(persona):
        return Identity(user, persona)
    return Identity(text)
