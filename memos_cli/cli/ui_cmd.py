"""``memos ui``: a read-only local web site to browse, search and audit cubes or a vault."""

from __future__ import annotations

import threading
import webbrowser
from pathlib import Path

import typer

from memos_cli.api import Session
from memos_cli.cli.cube import EMBEDDER_OPT
from memos_cli.cli.cube_args import open_arg
from memos_cli.cli.output import check_as, err
from memos_cli.cli.vault_opts import VAULT_OPT
from memos_cli.config import LOOPBACK
from memos_cli.errors import UsageError
from memos_cli.ui.common import Viewer
from memos_cli.ui.server import build


def ui(
    cubes: list[Path] | None = typer.Argument(None, metavar="[CUBE...]",
                                              help="Serve these cubes \\[default: the vault]."),
    vault: str | None = VAULT_OPT,
    as_user: str | None = typer.Option(None, "--as", metavar="USER[/PERSONA]",
                                       callback=check_as,
                                       help="Whose view the pages show, fixed for the "
                                            "server's life \\[default: $MEMOS_USER or the "
                                            "login name; cubes without --as are shown "
                                            "whole]."),
    host: str = typer.Option("127.0.0.1", help="The address to listen on. Another than "
                             "loopback serves memory to every machine that reaches it."),
    port: int = typer.Option(8765, min=1, max=65535, help="The port."),
    open_browser: bool = typer.Option(False, "--open", help="Open the start page in the "
                                                            "default browser."),
    model: str | None = typer.Option(None, "--model", "-m", metavar="DIR|FILE.gguf|HUB_ID",
                                     help="The model whose KV shape the scheduler page "
                                          "plans with \\[default: the configured one]."),
    embedder: Path | None = EMBEDDER_OPT,
) -> None:
    """Serve a read-only web site on this machine: search, a memory's history, provenance,
    access decision and usage, a cube's tiers and signature, the vault's access log,
    versions, roles and the scheduler's plan. Every page has a JSON twin (add .json).

    Example: [bold]memos ui --vault ~/vault --as bob --open[/bold]
    """
    import uvicorn

    if cubes and vault is not None:
        raise UsageError("give cubes or --vault, not both")
    session = Session([open_arg(c) for c in cubes or []], vault=vault, user=as_user,
                      embedder=embedder, model=model)
    if not session.cubes and not session.vault.exists():
        raise UsageError(f"no vault at {session.vault_name} (memos load a cube first, or "
                         "serve cubes: memos ui A.memcube)")
    session.query_encoder()  # loaded before the first page, not during it
    viewer = Viewer(session)
    app = build(viewer, hosts=tuple(dict.fromkeys([*LOOPBACK, host])))
    shown = f"[{host}]" if ":" in host else host
    url = f"http://{shown}:{port}/"
    err.print(f"memos ui: {url} as {viewer.user} ({viewer.label}); read-only; Ctrl-C stops",
              markup=False)
    if host not in LOOPBACK:
        err.print(f"memos ui: listening on {host}, not loopback: any machine that reaches "
                  f"it reads what {viewer.user} may read, with no password", markup=False)
    if open_browser:
        threading.Timer(1.0, webbrowser.open, args=(url,)).start()
    uvicorn.run(app, host=host, port=port, log_level="warning")
    session.close()


def register(app: typer.Typer) -> None:
    app.command()(ui)
