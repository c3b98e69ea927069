"""``memos config``: list, get, set and unset the default model, embedder, vault, key, user."""

from __future__ import annotations

import typer

from memos_cli import config
from memos_cli.cli.cube import JSON_OPT
from memos_cli.cli.help import MemosTyper
from memos_cli.cli.output import DataTable, out, print_json

config_app = MemosTyper(help="Defaults for the model, embedder, vault, signing key and user "
                             "(flag > environment > MEMOS_HOME/config.toml > built-in).",
                        no_args_is_help=True)


@config_app.command("list")
def list_(as_json: bool = JSON_OPT) -> None:
    """Every setting with its value and where it comes from.

    Example: [bold]memos config list[/bold]
    """
    rows = []
    for name, (env, what, default) in config.SETTINGS.items():
        value, source = config.lookup(name)
        rows.append({"name": name, "value": value, "source": source, "env": env,
                     "default": default, "about": what})
    if as_json:
        print_json({"file": str(config.config_path()), "settings": rows})
        return
    if not out.is_terminal:  # a pipe or a file: NAME=VALUE lines, as git config --list
        for r in rows:
            typer.echo(f"{r['name']}={r['value'] or ''}")
        return
    t = DataTable(title=f"settings ({config.config_path()})", title_justify="left")
    for col in ("name", "value", "from", "environment", "about"):
        t.add_column(col, overflow="fold")
    for r in rows:
        t.add_row(r["name"], r["value"] or f"({r['default']})", r["source"], r["env"],
                  r["about"])
    out.print(t)


NAMES = ", ".join(config.SETTINGS) + "."


@config_app.command("get")
def get(name: str = typer.Argument(..., help=NAMES)) -> None:
    """Print a setting's value (from the environment or the file); exit 1 when it is unset.

    Example: [bold]memos config get model[/bold]
    """
    config.check_name(name)
    value = config.value(name)
    if value is None:
        raise typer.Exit(1)
    out.print(value, markup=False)


@config_app.command("set")
def set_(name: str = typer.Argument(..., help=NAMES),
         value: str = typer.Argument(..., help="The new value.")) -> None:
    """Write a setting to MEMOS_HOME/config.toml (atomically).

    Example: [bold]memos config set model ~/models/qwen2.5-0.5b-instruct[/bold]
    """
    path = config.set_value(name, value)
    out.print(f"{name} = {value} ({path})", markup=False)


@config_app.command("unset")
def unset(name: str = typer.Argument(..., help=NAMES)) -> None:
    """Remove a setting from the config file (the built-in default applies again).

    Example: [bold]memos config unset key[/bold]
    """
    path = config.unset(name)
    out.print(f"{name} unset ({path})", markup=False)


def register(app: typer.Typer) -> None:
    app.add_typer(config_app, name="config")
