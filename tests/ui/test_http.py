"""``memos ui`` over plain HTTP: JSON twins, security headers, read-only methods, the Host
check, bad parameters, and served cubes with a diff."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest
import requests

from tests.ui.conftest import SECRET, Server, World, memos, start


def test_json_twins_and_headers(as_bob: Server, world: World) -> None:
    a = as_bob.get("/search.json?q=quarterly+review")
    b = as_bob.get("/search?q=quarterly+review", headers={"Accept": "application/json"})
    assert a.status_code == b.status_code == 200
    ja, jb = a.json(), b.json()
    ja.pop("search_s"), jb.pop("search_s")
    assert ja == jb and ja["user"] == "bob" and ja["results"]
    assert ja["hidden_by_access"] >= 1
    html = as_bob.get("/search?q=quarterly+review")
    assert html.headers["content-type"].startswith("text/html")
    csp = html.headers["content-security-policy"]
    assert "script-src 'self'" in csp and "default-src 'none'" in csp
    assert "unsafe-inline" not in csp
    assert html.headers["cache-control"] == "no-store"
    assert html.headers["x-frame-options"] == "DENY"
    one = as_bob.get(f"/memory/{world.ids['shared']}.json").json()
    assert one["id"] == world.ids["shared"] and one["access"]["read"] is True
    assert one["access"]["write"] is False and one["provenance"]["signer"] == "remember"
    mine = as_bob.get("/vault.json").json()["cubes"]
    # ann's remembered cube holds the note she shared with bob; the team cube is hers alone
    assert sorted(c["name"] for c in mine) == ["remembered by ann", "remembered by bob"]
    bobs = next(c["cube_id"] for c in mine if c["name"] == "remembered by bob")
    by_prefix = as_bob.get(f"/cube/{bobs[:8]}.json").json()
    assert by_prefix["cube_id"] == bobs  # a unique prefix, as commands take


def test_read_only_and_host_check(as_bob: Server) -> None:
    for method in ("post", "put", "delete", "patch"):
        r = getattr(requests, method)(as_bob.url + "/search?q=x", timeout=30)
        assert r.status_code == 405, method
    assert as_bob.get("/", headers={"Host": "evil.example:80"}).status_code == 400
    assert as_bob.get("/", headers={"Host": "localhost"}).status_code == 200


@pytest.mark.parametrize("path,status,says", [
    ("/search?q=x&k=0", 400, "k must be between 1 and 100"),
    ("/search?q=x&k=abc", 400, "k must be a whole number"),
    ("/search?q=x&as_of=soon", 400, "--as-of"),
    ("/search?q=x&tier=gpu", 400, "tier must be one of"),
    ("/memory/ffffffffffff", 404, "no memory"),
    ("/cube/nope", 404, "no installed cube"),
    ("/vault?version=999999", 404, "no version 999999"),
    ("/vault?version=-1", 400, "version must be"),
    ("/schedule?budget=lots", 400, "is not a size"),
])
def test_bad_requests_get_one_line(as_bob: Server, path: str, status: int, says: str) -> None:
    r = as_bob.get(path)
    assert r.status_code == status, r.text[:300]
    assert says in r.text
    j = as_bob.get(path, headers={"Accept": "application/json"}).json()
    assert says in j["error"] and "\n" not in j["error"]


def test_a_long_query_is_refused(as_bob: Server) -> None:
    r = as_bob.get("/search.json", params={"q": "x" * 5000})
    assert r.status_code == 400 and "over the 4096 character limit" in r.json()["error"]


@pytest.fixture(scope="module")
def two_cubes(world: World, tmp_path_factory: pytest.TempPathFactory,
              keys: tuple[Path, Path], tiny_llama: Path) -> Iterator[tuple[Server, str, str]]:
    from memos_cli.cube import open_cube

    base = tmp_path_factory.mktemp("cubes")
    a = base / "a.memcube"
    shutil.copytree(world.home.parent / "team.memcube", a)  # the signed cube ann loaded
    b = base / "b.memcube"
    shutil.copytree(a, b)
    note = base / "new.md"
    note.write_text("# Late note\n\nThe launch party is on the roof terrace <b>at 6</b>.\n")
    memos(world.home, "add", b, note, "--key", keys[0])
    memos(world.home, "convert", b, "--to", "kv", "--chunks", "--model", tiny_llama,
          "--key", keys[0])  # the second version holds every memory in a KV chunk too
    ida, idb = open_cube(a).manifest.cube_id, open_cube(b).manifest.cube_id
    for server in start(world, str(a), str(b)):
        yield server, ida, idb


def test_served_cubes_and_a_diff(two_cubes: tuple[Server, str, str]) -> None:
    server, ida, idb = two_cubes
    home = server.get("/", headers={"Accept": "application/json"})
    cubes = home.json()["cubes"]
    assert [c["signer"] for c in cubes] == ["team", "team"]
    assert ida == idb  # memos add keeps the cube's id: pages name served cubes by place
    page = server.get(f"/cube/{ida}.json").json()
    assert server.get(f"/cube/{ida[:8]}.json").json()["path"] == page["path"]
    assert page["signed"] and page["tier_bytes"]["plaintext"] > 0 and page["sources"]
    d = server.get("/cube/1.json?diff=2").json()["diff"]
    assert not d["equal"] and [m["text"] for m in d["added_memories"]] == \
        ["(Late note) The launch party is on the roof terrace <b>at 6</b>."]
    html = server.get("/cube/1?diff=2").text
    assert "&lt;b&gt;at 6&lt;/b&gt;" in html and "<b>at 6</b>" not in html
    assert server.get("/vault").status_code == 404  # cubes, not a vault
    second = server.get("/cube/2.json").json()
    assert "activation" in second["tier_bytes"] and second["chunk_sets"]
    assert all(m["tiers"] == ["text", "kv chunk"] for m in second["memories"])
    assert all(m["tiers"] == ["text"] for m in page["memories"])
    assert d["tiers_added"] == ["activation"]
    assert SECRET not in html


def test_command_line_errors(tmp_path: Path, world: World) -> None:
    from typer.testing import CliRunner

    from memos_cli.cli.app import app

    env = {"MEMOS_HOME": str(tmp_path / "home")}
    r = CliRunner().invoke(app, ["ui", "a.memcube", "--vault", str(world.vault)], env=env)
    assert r.exit_code == 2 and "give cubes or --vault, not both" in r.output
    r = CliRunner().invoke(app, ["ui", "--vault", str(tmp_path / "none")], env=env)
    assert r.exit_code == 2 and "no vault at" in r.output
