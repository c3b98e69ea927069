"""``memos role ...``: the roles of a vault (spec §14): groups of users that memories are
shared with (``--reader role:NAME``), and their admins."""

from __future__ import annotations

from pathlib import Path

import typer

from memos_cli.cli.cube import JSON_OPT
from memos_cli.cli.help import MemosTyper
from memos_cli.cli.output import DataTable, out, print_json
from memos_cli.cli.vault_opts import AS_OPT, VAULT_OPT
from memos_cli.governance.policy import current_user
from memos_cli.governance.roles import Roles
from memos_cli.vault import Vault
from memos_cli.vault.roles import change

role_app = MemosTyper(help="Roles of the vault: groups that memories are shared with.",
                      no_args_is_help=True)


def _dir(vault: str | None) -> Path | str:
    return Vault(vault).path


@role_app.command("add")
def role_add(name: str = typer.Argument(..., help="The role's name (letters, digits, . _ - @)."),
             member: list[str] = typer.Option([], "--member", metavar="USER[/PERSONA]",
                                              help="Add a member (repeatable)."),
             admin: list[str] = typer.Option([], "--admin", metavar="USER[/PERSONA]",
                                             help="Add an admin (repeatable) \\[default for a "
                                                  "new role: the user creating it]."),
             vault: str | None = VAULT_OPT, as_user: str | None = AS_OPT,
             as_json: bool = JSON_OPT) -> None:
    """Create a role, or add members and admins to one (its admins may). Logged.

    Example: [bold]memos role add analysts --member ann --member bob[/bold]
    """
    role = change(_dir(vault), name, by=as_user or current_user(), add_members=member,
                  add_admins=admin)
    assert role is not None
    if as_json:
        print_json({"role": name, **role.to_dict()})
    else:
        out.print(f"role {name}: members {', '.join(role.members) or '-'}; admins "
                  f"{', '.join(role.admins)}", markup=False)


@role_app.command("rm")
def role_rm(name: str = typer.Argument(..., help="The role."),
            member: list[str] = typer.Option([], "--member", metavar="USER[/PERSONA]",
                                             help="Remove this member or admin (repeatable); "
                                                  "without it, the whole role."),
            vault: str | None = VAULT_OPT, as_user: str | None = AS_OPT,
            as_json: bool = JSON_OPT) -> None:
    """Remove members from a role, or the role (its admins may). Memories shared with a
    removed role are readable by no member of it from the next command. Logged.

    Example: [bold]memos role rm analysts --member bob[/bold]
    """
    role = change(_dir(vault), name, by=as_user or current_user(), remove=member,
                  drop=not member)
    if as_json:
        print_json({"role": name, **(role.to_dict() if role else {"removed": True})})
    else:
        out.print(f"role {name}: " + (f"members {', '.join(role.members) or '-'}" if role
                                      else "removed"), markup=False)


@role_app.command("ls")
def role_ls(vault: str | None = VAULT_OPT, as_json: bool = JSON_OPT) -> None:
    """List the vault's roles with their members and admins.

    Example: [bold]memos role ls --json[/bold]
    """
    table = Roles.load(_dir(vault))
    if as_json:
        print_json({n: r.to_dict() for n, r in sorted(table.roles.items())})
        return
    t = DataTable("role", "members", "admins")
    for n, r in sorted(table.roles.items()):
        d = r.to_dict()
        t.add_row(n, ", ".join(d["members"]) or "-", ", ".join(d["admins"]))
    out.print(t)


def register(app: typer.Typer) -> None:
    app.add_typer(role_app, name="role")
