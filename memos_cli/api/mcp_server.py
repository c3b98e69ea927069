"""The Model Context Protocol server (``memos mcp``): a :class:`~memos_cli.api.Session`
offered to assistants as MCP tools and resources, built with the ``mcp`` SDK's
``MCPServer`` (modelcontextprotocol/python-sdk, 2.x).

Tools: ``search``, ``answer``, ``history`` and, unless read-only, ``remember`` and
``forget``. Resources: ``memos://cubes`` (the installed cubes, or the cubes served) and
``memos://cubes/{cube_id}`` (one cube's manifest, or its vault entry). The user is fixed when
the server starts; every call goes through the session, so access control, the access log
and the supersession decision (spec §4.6) are exactly the CLI's. Calls run one at a time in
a worker thread (the session is not thread-safe); a memos error becomes an MCP tool error
with the CLI's one-line message, and the server stays up. Arguments are bounded
(:data:`LIMITS`) before any work.
"""

from __future__ import annotations

import hmac
import json
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from memos_cli.api.answering import AnswerOptions
from memos_cli.errors import MemosError, one_line
from memos_cli.memory import MAX_CONTENT_CHARS
from memos_cli.tiers.budget import MIN_TOKENS
from memos_cli.validity import CURRENT, View, parse_as_of
from memos_cli.version import __version__

if TYPE_CHECKING:
    from memos_cli.api.session import Session

#: Bounds on tool arguments, checked before any work: query and question length (characters),
#: results per search, tags per memory and tag length.
LIMITS = {"query": 4096, "k": 100, "tags": 32, "tag": 200, "context_tokens": 131_072}
#: The tools that change memory, left out with ``read_only``.
WRITE_TOOLS = ("remember", "forget")
INSTRUCTIONS = (
    "memos holds this user's memories (MemCubes and a vault). Call search before answering "
    "from memory, remember for facts, preferences and decisions worth keeping (an update "
    "supersedes what it revises), history to see how a memory changed, forget to remove one.")


def build(session: Session, *, read_only: bool = False) -> Any:
    """The ``MCPServer`` over ``session``. Raises ``ModuleNotFoundError`` without ``mcp``."""
    import anyio.to_thread
    from mcp.server.mcpserver import MCPServer
    from mcp.server.mcpserver.exceptions import ResourceError, ToolError

    server = MCPServer(name="memos", instructions=INSTRUCTIONS, version=__version__)
    lock = threading.Lock()

    async def call(fn: Callable[[], Any], error: type[Exception] = ToolError) -> Any:
        def run() -> Any:
            with lock:
                return fn()
        try:
            return await anyio.to_thread.run_sync(run)
        except MemosError as e:
            raise error(one_line(str(e))) from None
        except (ValueError, TypeError, KeyError) as e:
            raise error(one_line(f"bad request: {e}")) from None

    def bounded(name: str, value: str) -> str:
        if len(value) > LIMITS["query"]:
            raise ToolError(f"{name} is {len(value)} characters, over the {LIMITS['query']} "
                            "character limit")
        if not value.strip():
            raise ToolError(f"{name} is empty")
        return value

    @server.tool(description="The memories closest to QUERY that this user may read, best "
                             "first. as_of (YYYY-MM-DD or ISO 8601): the memories valid then; "
                             "history: superseded ones too.")
    async def search(query: str, k: int = 5, as_of: str | None = None,
                     history: bool = False) -> dict[str, Any]:
        bounded("query", query)
        if not 1 <= k <= LIMITS["k"]:
            raise ToolError(f"k must be between 1 and {LIMITS['k']}")
        view = _view(as_of, history)
        result = await call(lambda: session.search(query, k, view))
        return {"query": query, "results": [_hit(h) for h in result.hits],
                "hidden_by_access": result.hidden}

    @server.tool(description="Answer QUESTION with the local model and the memories this "
                             "user may read (tier auto or text); returns the answer and the "
                             "memories used. CONTEXT_TOKENS fills the prompt with the "
                             "best-ranked memories that fit in that many tokens.")
    async def answer(question: str, tier: str = "auto", k: int | None = None,
                     as_of: str | None = None,
                     context_tokens: int | None = None) -> dict[str, Any]:
        bounded("question", question)
        if tier not in ("auto", "text"):
            raise ToolError("tier must be auto or text")
        if k is not None and not 1 <= k <= LIMITS["k"]:
            raise ToolError(f"k must be between 1 and {LIMITS['k']}")
        if context_tokens is not None and not (
                MIN_TOKENS <= context_tokens <= LIMITS["context_tokens"]):
            raise ToolError(f"context_tokens must be between {MIN_TOKENS} and "
                            f"{LIMITS['context_tokens']}")
        opts = AnswerOptions(tier=tier, k=k, view=_view(as_of, False),
                             context_tokens=context_tokens)
        got = await call(lambda: session.answer(question, opts))
        return {"answer": got.answer, "tier": got.tier, "stop": got.stop,
                "memories": [_hit(r) for r in got.memories],
                "hidden_by_access": got.hidden, "budget": got.budget,
                "timings": {k: round(v, 4) for k, v in got.timings.items()}}

    @server.tool(description="How memory MEMORY_ID changed: the memories it superseded and "
                             "those that superseded it, oldest first, with the decisions.")
    async def history(memory_id: str) -> dict[str, Any]:
        bounded("memory_id", memory_id)
        got = await call(lambda: session.history(memory_id))
        return dict(got.to_dict())

    if not read_only:
        @server.tool(description="Remember TEXT for this user: it is decided against the "
                                 "current memories (duplicate, update of an older one, or "
                                 "new) and written as one audited change. event_time: when it "
                                 "happened (ISO 8601).")
        async def remember(text: str, tags: list[str] | None = None,
                           event_time: str | None = None) -> dict[str, Any]:
            if len(text) > MAX_CONTENT_CHARS:
                raise ToolError(f"text is {len(text)} characters, over the "
                                f"{MAX_CONTENT_CHARS} character limit of a memory")
            tags = list(tags or [])
            if len(tags) > LIMITS["tags"] or any(len(t) > LIMITS["tag"] for t in tags):
                raise ToolError(f"at most {LIMITS['tags']} tags of {LIMITS['tag']} "
                                "characters each")
            when = parse_as_of(event_time, option="event_time") if event_time else None
            got = await call(lambda: session.remember(text, tags=tags, event_time=when))
            return {k: v for k, v in got.to_dict().items() if k != "memory"} | {
                "text": got.memory.content}

        @server.tool(description="Forget memory MEMORY_ID (an id or 4+ leading characters): "
                                 "removed in one audited change; a memory it superseded is "
                                 "current again.")
        async def forget(memory_id: str) -> dict[str, Any]:
            bounded("memory_id", memory_id)
            gone = await call(lambda: session.forget(memory_id))
            return {"forgotten": gone.id, "text": gone.content}

    @server.resource("memos://cubes", name="cubes", mime_type="application/json",
                     description="The cubes this server reads: installed in the vault, or "
                                 "given on the command line.")
    async def cubes() -> str:
        return json.dumps(await call(lambda: _cubes(session), ResourceError), indent=2)

    @server.resource("memos://cubes/{cube_id}", name="cube", mime_type="application/json",
                     description="One cube: its manifest (a cube served) or its vault entry.")
    async def cube(cube_id: str) -> str:
        return json.dumps(await call(lambda: _cube(session, cube_id), ResourceError),
                          indent=2)

    return server


def _view(as_of: str | None, history: bool) -> View:
    if as_of and history:
        raise ValueError("give as_of or history, not both")
    if as_of:
        return View(as_of=parse_as_of(as_of, option="as_of"))
    return View(history=True) if history else CURRENT


def _hit(h: Any) -> dict[str, Any]:
    d = h.to_dict()
    return {k: d[k] for k in ("rank", "id", "score", "text", "source_file", "valid_from",
                              "valid_to", "via") if k in d} | (
        {"superseded_by": d["superseded_by"]} if "superseded_by" in d else {})


def _cubes(session: Session) -> list[dict[str, Any]]:
    if session.cubes:
        return [{"cube_id": c.manifest.cube_id, "name": c.manifest.name,
                 "memories": c.manifest.counts["memories"], "path": str(c.path),
                 "signed": c.signed} for c in session.cubes]
    state = session.vault.part([], [])
    return [{"cube_id": cid, **{k: info.get(k) for k in ("name", "installed_by",
                                                          "installed_at", "signer")}}
            for cid, info in sorted(state.cubes.items())]


def _cube(session: Session, cube_id: str) -> dict[str, Any]:
    for c in session.cubes:
        if c.manifest.cube_id == cube_id:
            return dict(c.manifest.to_dict())
    if not session.cubes:
        info = session.vault.part([], []).cubes.get(cube_id)
        if info is not None:
            return {"cube_id": cube_id, **info}
    raise ValueError(f"no cube {cube_id}")


def run_http(server: Any, *, host: str, port: int, token: str | None,
             allow_hosts: list[str]) -> None:
    """Serve ``server`` over Streamable HTTP at ``http://HOST:PORT/mcp``. Requests whose Host
    header is not this host (DNS rebinding) are refused by the SDK; with ``token``, a request
    without ``Authorization: Bearer TOKEN`` gets 401."""
    import uvicorn
    from mcp.server.transport_security import TransportSecuritySettings

    hosts = [f"{h}:*" for h in dict.fromkeys([host, "127.0.0.1", "localhost", *allow_hosts])]
    app = server.streamable_http_app(
        host=host, transport_security=TransportSecuritySettings(
            enable_dns_rebinding_protection=True, allowed_hosts=hosts))
    asgi = _Bearer(app, token) if token else app
    uvicorn.run(asgi, host=host, port=port, log_level="warning")


class _Bearer:
    """ASGI middleware: refuse HTTP requests without the bearer token (compared in constant
    time)."""

    def __init__(self, app: Any, token: str) -> None:
        self.app, self.token = app, token.encode()

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http":
            given = dict(scope.get("headers") or []).get(b"authorization", b"")
            if not hmac.compare_digest(given, b"Bearer " + self.token):
                await send({"type": "http.response.start", "status": 401,
                            "headers": [(b"content-type", b"text/plain"),
                                        (b"www-authenticate", b"Bearer")]})
                await send({"type": "http.response.body",
                            "body": b"memos mcp: missing or wrong bearer token\n"})
                return
        await self.app(scope, receive, send)
