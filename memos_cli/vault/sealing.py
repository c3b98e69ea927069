"""``memos vault seal``: seal the rows of a vault that have no seal yet (those written before
its writers had keys, or by a writer without one), and its role table, with this machine's
signing key (spec §16.5). Rows sealed already are checked, not sealed again."""

from __future__ import annotations

from collections import Counter
from typing import Any

from memos_cli.errors import UsageError
from memos_cli.governance import seal
from memos_cli.governance.roles import Roles, forget_active
from memos_cli.vault import rows as R
from memos_cli.vault.store import Vault


def seal_vault(vault: Vault, *, user: str, dry_run: bool = False) -> dict[str, Any]:
    """Seal every unsealed row of ``vault`` (and ``roles.json``) with the configured signing
    key, in one Lance commit; log it (``op`` = ``seal``). Every row is read, so every seal
    made by a known key is checked first: a vault with a row that does not match its seal
    is refused and nothing is written. Rows sealed by a key this machine does not know are
    left as they are, and counted.

    Returns ``{"sealed": n, "already": {signer: n}, "unknown_signer": n, "roles": bool,
    "version": v, "dry_run": bool}`` (``roles``: whether the role table was sealed now).

    Raises:
        UsageError: no signing key (``MEMOS_KEY``, ``memos config set key``), or a vault
            checked out read-only. FormatError: a row or role table refused by its seal.
    """
    sealer = seal.sealer()
    if sealer is None:
        raise UsageError("sealing needs a signing key: memos keygen -o me, then memos config "
                         "set key me.key (or MEMOS_KEY)")

    def body() -> dict[str, Any]:
        tbl = vault.table()
        delta = R.Delta()
        already: Counter[str] = Counter()
        unknown = 0
        if tbl is not None:
            t = vault._rows(None, [*vault.sealed_columns(tbl), "vector"])
            marks = t.column("seal").to_pylist() if "seal" in t.column_names \
                else [""] * t.num_rows
            kinds, records = t.column("kind").to_pylist(), t.column("record").to_pylist()
            cubes, ids = t.column("cube_id").to_pylist(), t.column("id").to_pylist()
            vectors = t.column("vector")
            for i, mark in enumerate(marks):
                if mark:
                    signer = vault.seals.known.get(mark.partition(" ")[0])
                    if signer is None:
                        unknown += 1
                    else:
                        already[signer[0]] += 1
                elif kinds[i] == R.MEMORY:
                    delta.memories.append((R.memory_of(records[i], vault.path),
                                           vectors[i].values.to_numpy(), cubes[i]))
                elif kinds[i] == R.HISTORY:
                    delta.history.append(R.memory_of(records[i], vault.path))
                elif kinds[i] == R.ARCHIVED:
                    delta.archived.append((R.memory_of(records[i], vault.path), cubes[i]))
                elif kinds[i] == R.CUBE:
                    delta.cubes[ids[i]] = R.object_of(records[i], vault.path, "cube")
                # the vault entry (``v``) is rewritten, sealed, by every change
        roles = Roles.load(vault.place)
        roles_now = roles.sealed is False  # a role table, without a seal
        sealed = len(delta.memories) + len(delta.history) + len(delta.archived) + \
            len(delta.cubes)
        version = vault.version
        if not dry_run and delta:
            version = vault.apply(delta)
        return {"sealed": sealed, "already": dict(already), "unknown_signer": unknown,
                "roles": roles_now, "roles_table": roles, "version": version,
                "dry_run": dry_run}

    report = vault.change(body, what="seal")
    roles = report.pop("roles_table")
    if report["roles"] and not dry_run:
        roles.save()
        forget_active()
    if not dry_run:
        vault.log(user, "seal", detail={k: v for k, v in report.items() if k != "version"},
                  version=report["version"])
    return report
