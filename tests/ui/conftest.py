"""A vault of two users for ``memos ui``, real servers on 127.0.0.1 (``memos ui`` in a
subprocess) and Debian's chromium driven by Playwright.

The vault: ann's offsite note revised once (a supersession), ann's private salary with an
XSS payload, ann's note shared with bob, bob's own memory, and the signed team cube that ann
loaded. Searches by both users give the usage chart data."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import requests
from typer.testing import CliRunner

from memos_cli.cli.app import app

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
#: ann's private text: never in bob's view, in any page or JSON response
SECRET = "salary is 91,000 euros"
XSS = ("Ann's salary is 91,000 euros <script>window.__pwned=1</script>"
       "<img src=x onerror=\"window.__pwned=2\"> [bold red]x[/bold red]")
SHARED = "The quarterly review is on Thursday at 10:00 in room B12."


def browser_or_skip() -> str:
    """The system chromium; CI (MEMOS_REQUIRE_BROWSER=1) fails instead of skipping."""
    if CHROMIUM is None:
        if os.environ.get("MEMOS_REQUIRE_BROWSER") == "1":
            pytest.fail("chromium is not installed (apt-get install chromium)")
        pytest.skip("chromium is not installed here (Debian: apt-get install chromium); "
                    "CI installs it")
    return CHROMIUM


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class World:
    home: Path
    vault: Path
    ids: dict[str, str]

    def env(self) -> dict[str, str]:
        return {**os.environ, "MEMOS_HOME": str(self.home), "MEMOS_USER": "nobody"}


def memos(world_home: Path, *args: object) -> Any:
    r = CliRunner().invoke(app, [str(a) for a in args], env={"MEMOS_HOME": str(world_home)})
    assert r.exit_code == 0, r.output
    return r


@pytest.fixture(scope="session")
def world(tmp_path_factory: pytest.TempPathFactory, keys: tuple[Path, Path],
          embedder: Any) -> World:
    from tests.conftest import pack_corpus

    base = tmp_path_factory.mktemp("ui")
    home, vault = base / "home", base / "vault"
    home.mkdir()
    ids: dict[str, str] = {}

    def remember(who: str, text: str, *extra: str) -> str:
        out = memos(home, "remember", text, "--vault", vault, "--as", who, "--json", *extra)
        return str(json.loads(out.stdout)["id"])

    ids["lisbon"] = remember("ann", "The team offsite is in Lisbon.", "--event-time",
                             "2026-01-10")
    ids["porto"] = remember("ann", "The team offsite moved to Porto.", "--event-time",
                            "2026-02-05")
    ids["salary"] = remember("ann", XSS)
    ids["shared"] = remember("ann", SHARED)
    memos(home, "vault", "share", ids["shared"], "--reader", "bob", "--visibility", "shared",
          "--vault", vault, "--as", "ann")
    ids["bob"] = remember("bob", "Bob's desk is by the window.")
    cube = base / "team.memcube"
    pack_corpus(cube, embedder, key=keys[0])
    memos(home, "trust", "add", keys[1], "--name", "team")
    memos(home, "load", cube, "--vault", vault, "--as", "ann")
    for who, q in [("ann", "where is the offsite"), ("ann", "offsite city"),
                   ("bob", "quarterly review room"), ("ann", "salary")]:
        memos(home, "search", q, "--vault", vault, "--as", who)
    return World(home, vault, ids)


@dataclass
class Server:
    url: str
    proc: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, **kw: Any) -> requests.Response:
        return requests.get(self.url + path, timeout=60, **kw)


def start(world: World, *args: str) -> Iterator[Server]:
    port = free_port()
    log = world.home.parent / f"ui-{port}.log"  # a file: a pipe nobody reads would fill
    with log.open("wb") as sink:
        proc = subprocess.Popen([sys.executable, "-m", "memos_cli", "ui", *args, "--port",
                                 str(port)], cwd=ROOT, env=world.env(), stdout=sink,
                                stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while True:
        try:
            requests.get(url + "/static/memos.css", timeout=2)
            break
        except requests.ConnectionError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                raise AssertionError(f"memos ui did not start: {log.read_text()}") from None
            time.sleep(0.3)
    try:
        yield Server(url, proc, log)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@pytest.fixture(scope="session")
def as_bob(world: World) -> Iterator[Server]:
    yield from start(world, "--vault", str(world.vault), "--as", "bob")


@pytest.fixture(scope="session")
def as_ann(world: World) -> Iterator[Server]:
    yield from start(world, "--vault", str(world.vault), "--as", "ann")


@pytest.fixture(scope="module")  # Playwright's loop must be gone before other async tests
def browser() -> Iterator[Any]:
    exe = browser_or_skip()
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=exe, headless=True)
        try:
            yield b
        finally:
            b.close()


@pytest.fixture
def page(browser: Any) -> Iterator[Any]:
    """A fresh page whose console errors, page errors and dialogs are collected in
    ``page.problems`` (an XSS that ran would land there)."""
    ctx = browser.new_context(viewport={"width": 1280, "height": 900})
    pg = ctx.new_page()
    problems: list[str] = []
    pg.on("console", lambda m: problems.append(f"console {m.type}: {m.text}")
          if m.type in ("error", "warning") else None)
    pg.on("pageerror", lambda e: problems.append(f"page error: {e}"))
    pg.on("dialog", lambda d: (problems.append(f"dialog: {d.message}"), d.dismiss()))
    pg.problems = problems
    try:
        yield pg
    finally:
        ctx.close()
