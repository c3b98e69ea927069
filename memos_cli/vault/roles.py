"""Changing a vault's role table (MemGovernance, spec §14): the table itself and how access
checks read it are :mod:`memos_cli.governance.roles`; a change is made here, where the vault
that holds it and its access log are."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from memos_cli.errors import UsageError
from memos_cli.governance.roles import Role, Roles, check_member, forget_active
from memos_cli.principal import Identity, check_name
from memos_cli.vault.store import Vault


def change(vault_dir: Path | str | None, name: str, *, by: str, add_members: Sequence[str] = (),
           add_admins: Sequence[str] = (), remove: Sequence[str] = (),
           drop: bool = False) -> Role | None:
    """Create or change role ``name`` in the vault at ``vault_dir`` (read, changed, replaced
    at once: of two admins changing roles at the same moment, the later replace wins), and
    log it. Anyone may create a role (becoming its admin when no admin is given); only its admins
    change or drop it. Returns the role after the change (``None`` when dropped).

    Raises:
        UsageError: a malformed name or entry, no such role (for removals), or ``by`` is not
            an admin of an existing role.
    """
    check_name(name, "role")
    members = [check_member(m) for m in add_members]
    admins = [check_member(a) for a in add_admins]
    gone = [check_member(m) for m in remove]
    who = Identity.parse(by) if "/" in by else Identity(by)
    vault = Vault(vault_dir)
    if vault.pinned:
        raise UsageError(f"the vault is checked out at version {vault.at} (read-only)",
                         path=vault.path)
    table = Roles.load(vault.place)
    role = table.roles.get(name)
    if role is None:
        if drop or gone:
            raise UsageError(f"no role {name} in the vault", path=vault.path)
        role = table.roles[name] = Role(name, [], admins or [who.user])
    elif not table.is_admin(name, who):
        raise UsageError(f"{by} may not change role {name}: its admins are "
                         f"{', '.join(role.admins) or 'nobody'}", path=vault.path)
    else:
        role.admins += admins
    if drop:
        del table.roles[name]
    else:
        role.members = [m for m in dict.fromkeys(role.members + members) if m not in gone]
        role.admins = [a for a in dict.fromkeys(role.admins) if a not in gone]
        if not role.admins:
            raise UsageError(f"role {name} would have no admin left", path=vault.path)
    table.save()
    vault.log(by, "role", detail={"role": name, "dropped": drop, "added": members,
                                  "admins_added": admins, "removed": gone})
    forget_active()  # the next check reads the changed table
    return None if drop else role
