"""``memos mcp``: serve a vault or cubes to assistants over the Model Context Protocol."""

from __future__ import annotations

import os
from pathlib import Path

import typer

from memos_cli.api import Session
from memos_cli.api.mcp_server import build, run_http
from memos_cli.cli.choices import McpTransport
from memos_cli.cli.cube import EMBEDDER_OPT
from memos_cli.cli.cube_args import open_arg
from memos_cli.cli.output import check_as, err
from memos_cli.cli.vault_opts import VAULT_OPT
from memos_cli.config import LOOPBACK
from memos_cli.errors import UsageError


def mcp(
    cubes: list[Path] | None = typer.Argument(None, metavar="[CUBE...]",
                                              help="Serve these cubes \\[default: the vault]."),
    vault: str | None = VAULT_OPT,
    as_user: str | None = typer.Option(None, "--as", metavar="USER[/PERSONA]",
                                       callback=check_as,
                                       help="The user every call acts as, fixed for the "
                                            "server's life \\[default: $MEMOS_USER or the "
                                            "login name]."),
    read_only: bool = typer.Option(False, "--read-only",
                                   help="Offer no tool that writes (remember, forget)."),
    transport: McpTransport = typer.Option("stdio", help="stdio (the client starts memos "
                                                         "mcp) or http (Streamable HTTP at "
                                                         "http://HOST:PORT/mcp)."),
    host: str = typer.Option("127.0.0.1", help="http: the address to listen on; another "
                             "than loopback needs --token."),
    port: int = typer.Option(8765, min=1, max=65535, help="http: the port."),
    token_env: str | None = typer.Option(
        None, "--token-env", metavar="VAR",
        help="http: require \"Authorization: Bearer TOKEN\", TOKEN read from this "
             "environment variable (never from the command line, which others can read)."),
    model: str | None = typer.Option(None, "--model", "-m", metavar="DIR|FILE.gguf|HUB_ID",
                                     help="The model of the answer tool \\[default: the "
                                          "configured one]."),
    embedder: Path | None = EMBEDDER_OPT,
) -> None:
    """Serve memory to an assistant (an MCP client): tools search, answer, history, remember
    and forget, resources memos://cubes. Every call acts as the one user, with the CLI's
    access control, audit log and supersession.

    Example: [bold]memos mcp --vault ~/vault --as ann[/bold];
    [bold]MEMOS_MCP_TOKEN=... memos mcp --transport http --token-env MEMOS_MCP_TOKEN[/bold]
    """
    if cubes and vault is not None:
        raise UsageError("give cubes or --vault, not both")
    token = None
    if token_env is not None:
        token = os.environ.get(token_env)
        if not token:
            raise UsageError(f"--token-env {token_env}: that environment variable is empty")
        if transport != "http":
            raise UsageError("--token-env goes with --transport http")
    if transport == "http" and host not in LOOPBACK and token is None:
        raise UsageError(f"--host {host} would serve memory beyond this machine: give "
                         "--token-env too (or listen on 127.0.0.1)")
    session = Session([open_arg(c) for c in cubes or []], vault=vault, user=as_user,
                      embedder=embedder, model=model)
    session.encoder()  # loaded before the first call, not during it (a client's time-out)
    server = build(session, read_only=read_only)
    if transport == "http":
        err.print(f"memos mcp: http://{host}:{port}/mcp as {session.actor}"
                  + (" (bearer token required)" if token else ""), markup=False)
        run_http(server, host=host, port=port, token=token, allow_hosts=[])
    else:
        server.run("stdio")
    session.close()


def register(app: typer.Typer) -> None:
    app.command()(mcp)
