"""The options every vault command shares (``--vault``, ``--as``) and how they open one."""

from __future__ import annotations

from typing import TYPE_CHECKING

import typer

from memos_cli.cli.output import check_as
from memos_cli.config import default_vault
from memos_cli.errors import UsageError
from memos_cli.principal import check_principal
from memos_cli.vault import Vault

if TYPE_CHECKING:
    from memos_cli.vault import Vault

VAULT_OPT = typer.Option(None, "--vault", metavar="DIR|URI",
                         help="The vault: a directory, or s3://, gs://, az:// or file:// "
                              "in object storage \\[default: $MEMOS_HOME/vault].")
AS_OPT = typer.Option(None, "--as", metavar="USER[/PERSONA]", callback=check_as,
                      help="Act as this user, under a persona after '/' \\[default: "
                           "$MEMOS_USER or the login name].")


def open_vault(path: str | None, at: int | None = None) -> Vault:
    """The vault ``--vault`` names (default: ``memos_cli.config.default_vault``), read at
    version ``at`` when given."""
    return Vault(path, version=at)


def require_default_vault(missing: str) -> None:
    """A command given no cube reads the default vault (``$MEMOS_VAULT``, the config file's,
    else ``MEMOS_HOME/vault``); when there is none, ``missing`` says what to give instead.

    Raises:
        UsageError: no vault at the default place.
    """
    if not Vault(None).exists():
        raise UsageError(f"{missing} (no cube given, and no vault at {default_vault()}: "
                         "memos load a cube first)")


def parse_owner_map(owner: str | None, pairs: list[str]) -> dict[str, str] | None:
    """``--owner NEW`` and ``--owner-map OLD=NEW`` as ``load``'s ``owners`` mapping.

    Raises:
        UsageError: a pair without ``=``, a malformed name, or both options.
    """
    if owner is not None and pairs:
        raise UsageError("--owner maps every owner; give it or --owner-map, not both")
    if owner is not None:
        return {"*": check_principal(owner)}
    mapping = {}
    for pair in pairs:
        old, sep, new = pair.partition("=")
        if not sep or not old.strip() or not new.strip():
            raise UsageError(f"--owner-map {pair!r} is not OLD=NEW")
        mapping[old.strip()] = check_principal(new.strip())
    return mapping or None
