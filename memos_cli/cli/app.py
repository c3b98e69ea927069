"""The ``memos`` command: a thin Typer shell over the library.

Every ``MemosError`` becomes a one-line message on stderr and the error's exit code here, in
:class:`_Group.invoke`, and nowhere else. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import logging
import os
import traceback
from typing import Any

import typer
from rich.markup import escape
from typer.core import TyperGroup

from memos_cli import __version__
from memos_cli.cli.output import err
from memos_cli.errors import DiskFullError, MemosError, disk_full, one_line

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
_state = {"debug": False}


def _full(where: str | None) -> None:
    """Report a full disk as :class:`DiskFullError` and exit with its code."""
    full = DiskFullError("no space left to write (disk full or over the file-size limit); "
                         "nothing was changed", path=where or os.getcwd())
    err.print(f"[red]error:[/red] {escape(str(full))}", highlight=False, soft_wrap=True)
    raise typer.Exit(full.exit_code)


class _Group(TyperGroup):
    """Maps errors to exit codes in one place."""

    def invoke(self, ctx: Any) -> Any:
        try:
            return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except MemosError as e:
            if _state["debug"]:
                traceback.print_exc()
            if disk_full(e) and not isinstance(e, DiskFullError):
                _full(e.path)
            err.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except KeyboardInterrupt:
            err.print("interrupted: nothing was changed", soft_wrap=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except Exception as e:
            if _state["debug"]:
                traceback.print_exc()
            if disk_full(e):
                _full(getattr(e, "filename", None))
            msg = one_line(str(e).splitlines()[0]) if str(e) else ""
            err.print(f"[red]internal error:[/red] {type(e).__name__}: {escape(msg)} "
                      "(run with --debug for the traceback)", highlight=False, soft_wrap=True)
            raise typer.Exit(EXIT_INTERNAL) from None


app = typer.Typer(
    cls=_Group,
    name="memos",
    help="Pack, sign, inspect, search and run portable .memcube memory directories.",
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=False,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"memos {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
) -> None:
    _state["debug"] = debug
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    if not debug:
        import transformers

        transformers.utils.logging.set_verbosity_error()
        transformers.utils.logging.disable_progress_bar()
        logging.getLogger("model_signing").setLevel(logging.ERROR)


def _register() -> None:
    from memos_cli.cli import convert, cube, dump, eval, run, schedule, search, vault

    for module in (cube, search, run, convert, schedule, eval, dump, vault):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
