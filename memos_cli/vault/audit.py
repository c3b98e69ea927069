"""The vault's access log (MemGovernance, MemOS paper §5.4): append-only, one JSON object per
record with time, user, operation, cube id, memory ids and the vault version the change made
or the read saw. Locally the lines of ``audit.jsonl`` (each flushed and fsynced); in object
storage one object per record (:meth:`memos_cli.objstore.place.Place.append_audit`)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime, timezone
from pathlib import Path
from typing import TYPE_CHECKING, Any

from memos_cli.errors import FormatError
from memos_cli.memory import format_time
from memos_cli.sources.base import json_lines

if TYPE_CHECKING:
    from memos_cli.vault.store import Vault

AUDIT = "audit.jsonl"


def append(vault: Vault, user: str, op: str, *, cube_id: str | None = None,
           memory_ids: Sequence[str] = (), detail: dict[str, Any] | None = None,
           version: int | None = None) -> None:
    """Append one record, with the vault version it made (``version``, from
    :meth:`~memos_cli.vault.store.Vault.apply`) or, for a read, saw."""
    seen = version if version is not None else vault.version
    rec = {"time": format_time(datetime.now(timezone.utc)), "user": user, "op": op,
           "cube_id": cube_id, "memory_ids": list(memory_ids),
           **({"version": seen} if seen is not None else {}), **(detail or {})}
    vault.place.append_audit(json.dumps(rec, ensure_ascii=False), AUDIT)


def read(vault: Vault, *, user: str | None = None, op: str | None = None,
         cube_id: str | None = None, memory_id: str | None = None,
         at: int | None = None) -> list[dict[str, Any]]:
    """Records matching every given filter, oldest first; with ``at``, those written up to
    that vault version.

    Raises:
        FormatError: a record that is not a JSON object.
    """
    where = Path(vault.place.db(AUDIT)) if vault.place.local is not None \
        else Path(f"{vault.path}/audit")
    out = []
    for n, rec in json_lines(vault.place.read_audit(AUDIT), where, FormatError):
        if not isinstance(rec, dict) or not isinstance(rec.get("memory_ids", []), list) or \
                type(rec.get("version") or 0) is not int:
            raise FormatError(f"record {n} is not an audit record (an object with a list of "
                              "memory ids and an integer version)", path=where)
        if ((user is None or rec.get("user") == user) and (op is None or rec.get("op") == op)
                and (cube_id is None or rec.get("cube_id") == cube_id)
                and (memory_id is None or memory_id in rec.get("memory_ids", []))
                and (at is None or int(rec.get("version") or 0) <= at)):
            out.append(rec)
    return out
