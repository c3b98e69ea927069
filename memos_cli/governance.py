"""Who may read a memory (MemGovernance, MemOS paper §5.4): owner, visibility and readers.

- ``public``: everyone;
- ``shared``: the owner and the users listed in ``readers``;
- ``private``: the owner only.

A memory without an owner is readable by everyone only when it is public. Expired memories
(``expires_at`` passed) are readable by no one.
"""

from __future__ import annotations

import getpass
from datetime import datetime, timezone

from memos_cli.memory import Memory


def current_user() -> str:
    """``$MEMOS_USER``, else the config file's ``user``, else the login name."""
    from memos_cli import config

    return config.value("user") or getpass.getuser()


def can_read(memory: Memory, user: str, *, now: datetime | None = None) -> bool:
    """True when ``user`` may read ``memory`` now (see the module docstring)."""
    if memory.expired(now or datetime.now(timezone.utc)):
        return False
    if memory.visibility == "public":
        return True
    if memory.owner is not None and memory.owner == user:
        return True
    return memory.visibility == "shared" and user in memory.readers
