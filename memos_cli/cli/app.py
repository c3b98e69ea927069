"""The ``memos`` command: a thin Typer shell over the library.

Every ``MemosError`` becomes a one-line message on stderr and the error's exit code here, in
:class:`_Group.invoke`, and nowhere else. ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import errno
import logging
import os
import sys
import traceback
from typing import Any, NoReturn

import typer
from rich.markup import escape
from typer.core import TyperGroup

from memos_cli.cli import (
    batch,
    chat_cmd,
    config_cmd,
    convert,
    cube,
    dump,
    eval,
    history_cmd,
    inspect_cmd,
    mcp_cmd,
    memstore,
    remember_cmd,
    roles,
    run,
    schedule,
    search,
    ui_cmd,
    update_cmd,
    vault,
)
from memos_cli.cli.cube_args import command_scope
from memos_cli.cli.help import MemosTyper, hoist_global_flags, tidy
from memos_cli.cli.output import err, fail, library_progress
from memos_cli.errors import DiskFullError, MemosError, UsageError, disk_full, one_line
from memos_cli.governance import policy
from memos_cli.principal import check_name
from memos_cli.version import __version__

EXIT_INTERNAL = 70
EXIT_INTERRUPTED = 130
EXIT_BROKEN_PIPE = 141  # 128 + SIGPIPE, as a shell reports a pipe's writer
_state = {"debug": False}


def _full(where: str | None) -> None:
    """Report a full disk as :class:`DiskFullError` and exit with its code."""
    full = DiskFullError("no space left to write (disk full or over the file-size limit); "
                         "nothing was changed", path=where or os.getcwd())
    fail.print(f"[red]error:[/red] {escape(str(full))}", highlight=False, soft_wrap=True)
    raise typer.Exit(full.exit_code)


class _Group(TyperGroup):
    """Maps errors to exit codes in one place; takes the global flags anywhere."""

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        return super().parse_args(ctx, hoist_global_flags(args))

    def main(self, args: Any = None, prog_name: str | None = None,  # type: ignore[override]
             complete_var: str | None = None, standalone_mode: bool = True,
             **extra: Any) -> Any:
        """Run the command; a usage error (an unknown option, a bad value, a missing
        argument) is one line on stderr and exit 2, as every other error is one line."""
        from typer._click.exceptions import ClickException, NoArgsIsHelpError

        try:
            rv = super().main(args=args, prog_name=prog_name, complete_var=complete_var,
                              standalone_mode=False, **extra)
        except NoArgsIsHelpError as e:  # `memos` or `memos vault` alone: the help, as before
            if not standalone_mode:
                raise
            from typer import rich_utils

            rich_utils.rich_format_error(e)
            sys.exit(e.exit_code)
        except ClickException as e:
            if not standalone_mode:
                raise
            where = getattr(getattr(e, "ctx", None), "command_path", None) or "memos"
            fail.print(f"[red]error:[/red] {escape(one_line(e.format_message()))} (see "
                       f"{escape(where)} --help)", highlight=False, soft_wrap=True)
            sys.exit(e.exit_code)
        except typer.Abort:
            if not standalone_mode:
                raise
            fail.print("interrupted: nothing was changed", soft_wrap=True)
            sys.exit(EXIT_INTERRUPTED)
        if not standalone_mode:
            return rv
        sys.exit(rv if isinstance(rv, int) else 0)

    def get_params(self, ctx: Any) -> list[Any]:
        params = super().get_params(ctx)
        tidy(params)
        return params

    def invoke(self, ctx: Any) -> Any:
        try:
            with command_scope(), library_progress():
                return super().invoke(ctx)
        except (typer.Exit, typer.Abort, typer.TyperException):
            raise
        except MemosError as e:
            if _state["debug"]:
                traceback.print_exc()
            if disk_full(e) and not isinstance(e, DiskFullError):
                _full(e.path)
            fail.print(f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True)
            raise typer.Exit(e.exit_code) from None
        except BrokenPipeError:  # `memos ... | head`: the reader left; leave quietly
            devnull = os.open(os.devnull, os.O_WRONLY)
            os.dup2(devnull, sys.stdout.fileno())
            raise typer.Exit(EXIT_BROKEN_PIPE) from None
        except KeyboardInterrupt:
            fail.print("interrupted: nothing was changed", soft_wrap=True)
            raise typer.Exit(EXIT_INTERRUPTED) from None
        except OSError as e:
            if e.errno != errno.ENAMETOOLONG:
                _internal(e)
            if _state["debug"]:
                traceback.print_exc()
            name = one_line(str(e.filename or ""), 80)
            fail.print(f"[red]error:[/red] {escape(name)}: file name too long (the system "
                       "allows 255 bytes a name, 4,096 a path)", highlight=False,
                       soft_wrap=True)
            raise typer.Exit(UsageError.exit_code) from None
        except Exception as e:
            _internal(e)


def _internal(e: Exception) -> NoReturn:
    """An error memos did not expect (a bug): one line, exit 70; the traceback with --debug."""
    if _state["debug"]:
        traceback.print_exc()
    if disk_full(e):
        _full(getattr(e, "filename", None))
    msg = one_line(str(e).splitlines()[0]) if str(e) else ""
    fail.print(f"[red]internal error:[/red] {type(e).__name__}: {escape(msg)} "
               "(run with --debug for the traceback)", highlight=False, soft_wrap=True)
    raise typer.Exit(EXIT_INTERNAL) from None




EXIT_CODES = (
    "Exit codes: 0 ok; 1 other error; 2 usage (bad option, busy vault); 3 source unreadable; "
    "4 no such cube; 5 cube exists (use --force); 6 cube breaks the format; 7 digest mismatch "
    "or forbidden file; 8 signature missing, invalid or tampered; 9 key file unusable; "
    "10 model or embedder not available locally; 11 embedder differs from the index's; "
    "12 disk full (nothing changed); 13 a reader's model cannot generate; "
    "14 registry unreachable, refusing, or without the tag asked for; "
    "70 internal error (a bug: rerun with --debug); "
    "130 interrupted. Environment: MEMOS_HOME (default ~/.cache/memos), MEMOS_MODEL, "
    "MEMOS_EMBEDDER, MEMOS_VAULT, MEMOS_KEY, MEMOS_USER, MEMOS_PERSONA (see memos config list), "
    "SOURCE_DATE_EPOCH, MEMOS_NO_USAGE=1.")

app = MemosTyper(
    cls=_Group,
    name="memos",
    help="Pack, sign, inspect, search and run portable .memcube memory directories.",
    epilog=EXIT_CODES,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    add_completion=True,
    rich_markup_mode="rich",
)


def _version(value: bool) -> None:
    if value:
        typer.echo(f"memos {__version__}")
        raise typer.Exit()


@app.callback()
def _root(
    debug: bool = typer.Option(False, "--debug", help="Show tracebacks on errors and library "
                               "logs (anywhere on the command line)."),
    quiet: bool = typer.Option(False, "--quiet", "-q", help="Print only results and errors: "
                               "no notes, warnings or progress."),
    verbose: bool = typer.Option(False, "--verbose", "-v", help="Also print the libraries' "
                                 "own logs and progress (transformers, LanceDB)."),
    version: bool = typer.Option(False, "--version", callback=_version, is_eager=True,
                                 help="Print the version and exit."),
    persona: str | None = typer.Option(
        None, "--persona", metavar="NAME", envvar="MEMOS_PERSONA",
        help="Act under this persona of the user (--as ann --persona manager is --as "
             "ann/manager): its memories are kept apart (anywhere on the command line)."),
) -> None:
    if quiet and (verbose or debug):
        raise typer.BadParameter("--quiet goes with neither --verbose nor --debug")

    policy.PERSONA[0] = check_name(persona, "persona") if persona else None
    _state["debug"] = debug
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    err.quiet = quiet
    logging.basicConfig(format="%(message)s", level=logging.ERROR if quiet else
                        logging.INFO if verbose or debug else logging.WARNING)
    if not (debug or verbose):
        # read by transformers and huggingface_hub when first imported: commands that never
        # load a model do not pay the 2 s import just to silence it
        os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
        os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")
        if "transformers" in sys.modules:  # already imported (in process): tell it directly
            transformers = sys.modules["transformers"]
            transformers.utils.logging.set_verbosity_error()
            transformers.utils.logging.disable_progress_bar()
        logging.getLogger("model_signing").setLevel(logging.ERROR)
        # the libraries' own warnings (urllib3's "Retrying (...)" lines before an unreachable
        # registry's one-line error, Presidio's recognizer notes) only with -v; memos's own
        # notes and every error still show
        for handler in logging.getLogger().handlers:
            if not any(isinstance(f, _OwnWarnings) for f in handler.filters):
                handler.addFilter(_OwnWarnings())


class _OwnWarnings(logging.Filter):
    """Pass memos's own log records, and other libraries' errors only (not oras's: each is a
    registry answer that memos reports as its own one-line error)."""

    def filter(self, record: logging.LogRecord) -> bool:
        # oras logs a registry's refusals at ERROR before memos names them in its own line
        root = record.name.split(".")[0]
        return root == "memos" or (record.levelno >= logging.ERROR and root != "oras")


def _register() -> None:
    for module in (cube, inspect_cmd, update_cmd, remember_cmd, search, history_cmd, run,
                   convert, schedule, eval, dump,
                   vault, memstore, roles, batch, config_cmd, chat_cmd, mcp_cmd, ui_cmd):
        module.register(app)


_register()


def main() -> None:
    """Console-script entry point."""
    app()
