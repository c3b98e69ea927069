"""The web server of ``memos ui``: Starlette routes, Jinja templates (every value escaped),
and a JSON twin of every page.

A page is asked for as HTML, or as JSON with ``Accept: application/json`` or with ``.json``
added to its path (``/memory/ID.json``, ``/search.json?q=...``). Only GET and HEAD are
served (the site writes nothing). Every response carries a strict Content-Security-Policy
(scripts and styles from the site's own ``/static`` only, no inline script, no frames) and
``Cache-Control: no-store``; a request whose Host header is not the address served is refused
(DNS rebinding). ``?version=N`` reads a vault as it was at version N on any vault page.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import urlencode

from memos_cli.api.session import Session
from memos_cli.config import LOOPBACK
from memos_cli.errors import MemosError, UsageError, one_line
from memos_cli.ui import cube_pages, memory_pages, vault_pages
from memos_cli.ui.common import PageError, Viewer
from memos_cli.version import __version__

if TYPE_CHECKING:
    from jinja2 import Environment
    from starlette.requests import Request
    from starlette.responses import Response

STATIC = Path(__file__).parent / "static"
CSP = ("default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
       "connect-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'")
HEADERS = {"Content-Security-Policy": CSP, "X-Content-Type-Options": "nosniff",
           "Referrer-Policy": "no-referrer", "X-Frame-Options": "DENY",
           "Cache-Control": "no-store"}
#: Vault versions whose sessions are kept open at once (``?version=N``).
MAX_VERSIONS = 4
log = logging.getLogger("memos.ui")


def _env() -> Environment:
    from jinja2 import Environment, PackageLoader, select_autoescape

    env = Environment(loader=PackageLoader("memos_cli.ui", "templates"),
                      autoescape=select_autoescape(default=True, default_for_string=True))
    env.filters["bytes"] = lambda n: f"{int(n or 0):,}"
    return env


class _JsonSuffix:
    """ASGI middleware: ``/path.json`` is ``/path`` asked for as JSON."""

    def __init__(self, app: Any) -> None:
        self.app = app

    async def __call__(self, scope: Any, receive: Any, send: Any) -> None:
        if scope["type"] == "http" and scope["path"].endswith(".json") and \
                not scope["path"].startswith("/static/"):
            scope = {**scope, "path": scope["path"][:-5], "raw_path": None,
                     "memos_json": True}
        await self.app(scope, receive, send)


def build(viewer: Viewer, *, hosts: tuple[str, ...] = LOOPBACK) -> Any:
    """The ASGI application serving ``viewer``'s session. ``hosts``: the Host header values
    accepted. A page that fails on a bug logs one line (the traceback with ``--verbose``)."""
    # the server's libraries load when a server is built, not for every memos command
    from starlette.applications import Starlette
    from starlette.middleware import Middleware
    from starlette.middleware.trustedhost import TrustedHostMiddleware
    from starlette.responses import HTMLResponse, JSONResponse
    from starlette.routing import Mount, Route
    from starlette.staticfiles import StaticFiles

    env = _env()
    base = viewer.session
    versions: dict[int, Viewer] = {}

    def at(request: Request) -> Viewer:
        given = request.query_params.get("version", "")
        if not given or base.cubes:
            return viewer
        if not given.isdigit() or len(given) > 12:
            raise PageError(400, f"version must be a vault version number, not {given[:40]!r}")
        n = int(given)
        if n not in versions and n not in {r["version"] for r in base.vault.versions()}:
            raise PageError(404, f"the vault has no version {n}")
        if n not in versions:
            if len(versions) >= MAX_VERSIONS:
                versions.pop(next(iter(versions)))
            s = Session(vault=base.vault_name, user=base.user, embedder=base.query_encoder(),
                        vault_version=n)
            s.actor = base.actor
            versions[n] = Viewer(s)
        return versions[n]

    def wants_json(request: Request) -> bool:
        return bool(request.scope.get("memos_json")) or \
            "application/json" in request.headers.get("accept", "").split(";")[0]

    def page(template: str, build_page: Callable[[Request, Viewer], dict[str, Any]],
             *, vault_only: bool = False) -> Callable[[Request], Response]:
        def endpoint(request: Request) -> Response:
            json_out = wants_json(request)
            try:
                v = at(request)
                if vault_only and v.session.cubes:
                    raise PageError(404, "this page is about a vault; memos ui serves cubes")
                with v.lock:
                    data = build_page(request, v)
                status, name = 200, template
            except PageError as e:
                status, name, v = e.status, "error.html", viewer
                data = {"error": one_line(str(e)), "status": e.status}
            except MemosError as e:
                status = 400 if isinstance(e, UsageError) else 500
                name, v, data = "error.html", viewer, {"error": one_line(str(e)),
                                                       "status": status}
            except Exception as e:  # a bug: one line to the page, the traceback with --verbose
                log.warning("memos ui: %s: internal error: %s", request.url.path,
                            one_line(f"{type(e).__name__}: {e}"))
                log.info("traceback", exc_info=True)
                status, name, v = 500, "error.html", viewer
                data = {"error": one_line(f"internal error: {type(e).__name__}: {e}"),
                        "status": 500}
            if json_out:
                return JSONResponse({"user": v.user, **data}, status_code=status,
                                    headers=HEADERS)
            version = request.query_params.get("version", "")

            def url(path: str, **params: Any) -> str:
                keep = {k: p for k, p in params.items() if p not in (None, "", False)}
                if version and not base.cubes and "version" not in keep:
                    keep["version"] = version
                return path + ("?" + urlencode(keep) if keep else "")

            context = {"viewer": v, "serving_cubes": bool(base.cubes), "url": url,
                       "version": version, "memos_version": __version__,
                       "path": request.url.path, "query": request.url.query}
            try:
                html = env.get_template(name).render(page=data, **context)
            except Exception as e:  # a template bug: the error page, one line
                log.warning("memos ui: %s: template %s failed: %s", request.url.path, name,
                            one_line(f"{type(e).__name__}: {e}"))
                log.info("traceback", exc_info=True)
                status = 500
                html = env.get_template("error.html").render(
                    page={"status": 500, "error": "internal error: the page could not be "
                          "drawn (memos ui --verbose shows why)"}, **context)
            return HTMLResponse(html, status_code=status, headers=HEADERS)
        return endpoint

    q = lambda r, name, d="": r.query_params.get(name, d)  # noqa: E731

    def as_int(text: str, name: str) -> int:
        if not text.isdigit() or len(text) > 6:
            raise PageError(400, f"{name} must be a whole number")
        return int(text)

    routes = [
        Route("/", page("home.html", lambda r, v: memory_pages.home(v))),
        Route("/search", page("search.html", lambda r, v: memory_pages.search(
            v, q(r, "q"), as_int(q(r, "k", "10"), "k"), q(r, "as_of") or None,
            q(r, "history") in ("1", "on", "true"), q(r, "tier")))),
        Route("/memory/{memory_id}", page("memory.html", lambda r, v: memory_pages.memory(
            v, r.path_params["memory_id"]))),
        Route("/cube/{cube_id}", page("cube.html", lambda r, v: cube_pages.cube(
            v, r.path_params["cube_id"], q(r, "diff") or None))),
        Route("/vault", page("vault.html", lambda r, v: vault_pages.vault(v),
                             vault_only=True)),
        Route("/vault/audit", page("audit.html", lambda r, v: vault_pages.audit(
            v, q(r, "user"), q(r, "op"), q(r, "memory")), vault_only=True)),
        Route("/vault/versions", page("versions.html", lambda r, v: vault_pages.versions(v),
                                      vault_only=True)),
        Route("/schedule", page("schedule.html", lambda r, v: vault_pages.schedule(
            v, q(r, "budget", "64MiB"), q(r, "policy", "decay")))),
        Mount("/static", StaticFiles(directory=STATIC), name="static"),
    ]
    for route in routes:
        if isinstance(route, Route):
            route.methods = {"GET", "HEAD"}
    app = Starlette(routes=routes, middleware=[
        Middleware(TrustedHostMiddleware, allowed_hosts=list(dict.fromkeys(hosts)))])
    return _JsonSuffix(app)
