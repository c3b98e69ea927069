"""The Memory API (#31): ``memos remember``, ``forget`` and the MCP server, driven by the
``mcp`` SDK's own stdio client against ``memos mcp`` in a subprocess, on a real vault with the
real default embedder (and model, for the answer tool)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import anyio

from memos_cli.vault import Vault
from tests.conftest import invoke as memos


def test_remember_writes_one_memory_through_the_decision(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    first = json.loads(memos("remember", "The team offsite is in Lisbon.", "--vault", vault,
                             "--as", "ann", "--event-time", "2026-01-10", "--tag", "travel",
                             "--json").stdout)
    assert first["kind"] == "new" and first["memory"]["tags"] == ["travel"]
    moved = memos("remember", "-", "--vault", vault, "--as", "ann", "--event-time",
                  "2026-02-05", input="The team offsite moved to Porto.\n").stdout
    assert f"update of {first['id'][:8]}" in moved
    again = json.loads(memos("remember", "The team offsite moved to Porto.", "--vault", vault,
                             "--as", "ann", "--json").stdout)
    assert again["kind"] == "duplicate"
    mems = {m.content: m for m in Vault(vault).state().memories}
    assert len(mems) == 2 and not mems["The team offsite is in Lisbon."].current
    assert mems["The team offsite moved to Porto."].owner == "ann"
    log = [r for r in Vault(vault).read_log() if r["op"] == "remember"]
    assert len(log) == 3 and log[0]["user"] == "ann"  # every write is audited
    memos("remember", "  ", "--vault", vault, code=2)
    memos("remember", "x", "--vault", vault, "--event-time", "soon", code=2)


def test_remember_into_a_cube_rewrites_it_atomically(tmp_path: Path,
                                                     keys: tuple[Path, Path]) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text(json.dumps({"content": "The lab meeting is in room B12.",
                               "event_time": "2026-01-12T09:00:00Z"}) + "\n")
    cube = tmp_path / "t.memcube"
    memos("pack", src, "-o", cube, "--key", keys[0])
    out = memos("remember", "The lab meeting moved to room C3.", cube, "--key", keys[0],
                "--event-time", "2026-02-02").stdout
    assert "update of" in out
    from memos_cli.cube import open_cube, verify

    c = open_cube(cube)
    assert verify(c, keys[1]).ok and c.manifest.revision == 2
    assert sorted(m.current for m in c.memories) == [False, True]


def _server(vault: Path, user: str, *extra: str) -> Any:
    from mcp.client.stdio import StdioServerParameters

    return StdioServerParameters(
        command=sys.executable, args=["-m", "memos_cli", "mcp", "--vault", str(vault), "--as",
                                      user, *extra],
        env={**os.environ}, cwd=str(Path(__file__).resolve().parents[1]))


async def _call(client: Any, tool: str, **args: Any) -> Any:
    r = await client.call_tool(tool, args)
    if r.is_error:
        return ("error", r.content[0].text)
    return r.structured_content


def test_mcp_tools_through_the_sdk_client(tmp_path: Path) -> None:
    from mcp import Client

    vault = tmp_path / "vault"

    async def main() -> None:
        async with Client(_server(vault, "ann")) as ann, Client(_server(vault, "bob")) as bob:
            names = {t.name for t in (await ann.list_tools()).tools}
            assert names == {"search", "answer", "history", "remember", "forget"}
            r1 = await _call(ann, "remember", text="Our budget cap is 300,000 euros.",
                             event_time="2026-03-01")
            assert r1["kind"] == "new"
            r2 = await _call(ann, "remember", text="The budget cap was cut to 250,000 euros.",
                             event_time="2026-04-01")
            assert r2["kind"] == "update" and r2["target"] == r1["id"]
            found = await _call(ann, "search", query="budget cap", k=3)
            assert [h["id"] for h in found["results"]][:1] == [r2["id"]]
            then = await _call(ann, "search", query="budget cap", k=1, as_of="2026-03-15")
            assert then["results"][0]["id"] == r1["id"]
            hist = await _call(ann, "history", memory_id=r2["id"][:8])
            assert [v["id"] for v in hist["versions"]] == [r1["id"], r2["id"]]
            # bob sees none of ann's private memories, and cannot forget them
            assert (await _call(bob, "search", query="budget cap"))["results"] == []
            denied = await _call(bob, "forget", memory_id=r2["id"])
            assert denied[0] == "error" and "may not forget" in denied[1]
            # a write through one server is seen through another
            rb = await _call(bob, "remember", text="Bob's desk is by the window.")
            seen = await _call(bob, "search", query="where is bob's desk", k=1)
            assert seen["results"][0]["id"] == rb["id"]
            async with Client(_server(vault, "ann")) as ann2:
                again = await _call(ann2, "search", query="budget cap", k=1)
                assert again["results"][0]["id"] == r2["id"]
                assert rb["id"] not in [h["id"] for h in (await _call(
                    ann2, "search", query="where is bob's desk", k=5))["results"]]
            # bad input: each an error, and the server stays up
            assert (await _call(ann, "search", query="x" * 5000))[0] == "error"
            assert (await _call(ann, "search", query="budget", k=0))[0] == "error"
            assert (await _call(ann, "search", query="q", as_of="soon"))[0] == "error"
            assert (await _call(ann, "remember", text=" "))[0] == "error"
            unknown = await ann.call_tool("nope", {})
            assert unknown.is_error
            ans = await _call(ann, "answer", question="What is our budget cap?", tier="text",
                              k=2)
            assert r2["id"] in [m["id"] for m in ans["memories"]]
            assert r1["id"] not in [m["id"] for m in ans["memories"]]
            fitted = await _call(ann, "answer", question="What is our budget cap?",
                                 tier="text", context_tokens=200)
            assert fitted["budget"]["context_tokens"] == 200
            assert 0 < fitted["budget"]["memory_tokens"] <= 200
            assert (await _call(ann, "answer", question="q", context_tokens=8))[0] == "error"
            gone = await _call(ann, "forget", memory_id=r2["id"])
            assert gone["forgotten"] == r2["id"]
            back = await _call(ann, "search", query="budget cap", k=1)
            assert back["results"][0]["id"] == r1["id"]  # current again
            listed = await ann.read_resource("memos://cubes")
            assert "remembered by ann" in listed.contents[0].text

    anyio.run(main)
    ops = [(r["user"], r["op"]) for r in Vault(vault).read_log()]
    assert ("ann", "remember") in ops and ("ann", "forget") in ops and ("bob", "remember") in ops


def test_mcp_read_only_lists_no_write_tool(tmp_path: Path) -> None:
    from mcp import Client

    vault = tmp_path / "vault"
    memos("remember", "The offsite is in Porto.", "--vault", vault, "--as", "ann")

    async def main() -> None:
        async with Client(_server(vault, "ann", "--read-only")) as c:
            assert {t.name for t in (await c.list_tools()).tools} == {"search", "answer",
                                                                      "history"}
            assert (await c.call_tool("remember", {"text": "x"})).is_error

    anyio.run(main)


def test_two_servers_writing_at_once_both_land(tmp_path: Path) -> None:
    """The vault's optimistic commit: concurrent writes from two servers are both kept."""
    from mcp import Client

    vault = tmp_path / "vault"
    memos("remember", "The vault exists.", "--vault", vault, "--as", "ann")

    async def main() -> None:
        async with Client(_server(vault, "ann")) as a, Client(_server(vault, "bob")) as b:
            async def many(c: Any, who: str) -> None:
                for thing in THINGS:
                    r = await _call(c, "remember", text=f"{who} {thing}")
                    assert r["kind"] == "new", r

            async with anyio.create_task_group() as tg:
                tg.start_soon(many, a, "Ann")
                tg.start_soon(many, b, "Bob")

    anyio.run(main)
    texts = {m.content for m in Vault(vault).state().memories}
    assert all(f"{w} {t}" in texts for w in ("Ann", "Bob") for t in THINGS)


THINGS = ("keeps bees on the roof.", "learned Welsh at school.", "sails on Sundays.",
          "collects old maps of Lisbon.")


def test_http_transport_stays_on_loopback_and_checks_the_token(tmp_path: Path) -> None:
    r = memos("mcp", "--vault", tmp_path / "v", "--transport", "http", "--host", "0.0.0.0",
              code=2)
    assert "--token-env" in r.output
    memos("mcp", "--vault", tmp_path / "v", "--token-env", "NOPE_UNSET", code=2)


def test_http_transport_with_a_token(tmp_path: Path) -> None:
    import socket
    import time

    import httpx
    from mcp import Client

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    env = {**os.environ, "T": "s3cret"}
    proc = subprocess.Popen([sys.executable, "-m", "memos_cli", "mcp", "--vault",
                             str(tmp_path / "v"), "--as", "ann", "--transport", "http",
                             "--port", str(port), "--token-env", "T"], env=env,
                            stderr=subprocess.PIPE)
    try:
        url = f"http://127.0.0.1:{port}/mcp"
        for _ in range(300):
            try:
                httpx.get(url, timeout=1)
                break
            except httpx.HTTPError:
                time.sleep(0.1)
        assert httpx.post(url, json={}, timeout=5).status_code == 401
        assert httpx.post(url, json={}, headers={"Host": "evil.example",
                                                 "Authorization": "Bearer s3cret"},
                          timeout=5).status_code in (400, 403, 421)

        async def main() -> None:
            import httpx2
            from mcp.client.streamable_http import streamable_http_client

            http = httpx2.AsyncClient(headers={"Authorization": "Bearer s3cret"}, timeout=120)
            async with Client(streamable_http_client(url, http_client=http)) as c:
                r = await _call(c, "remember", text="Tokens keep strangers out.")
                assert r["kind"] == "new"

        anyio.run(main)
    finally:
        proc.terminate()
        proc.wait(timeout=30)


PROCUREMENT = Path(__file__).resolve().parents[1] / "bench" / "data" / "procurement.jsonl"


def test_chat_procurement_scenario_keeps_the_revision(tmp_path: Path) -> None:
    """The paper's multi-turn scenario (§7.2.1), 15 rounds through stdin: the budget and the
    revised preference are remembered, and round 15 retrieves the revision, not the default
    it superseded. Real SmolLM2 and MiniLM."""
    vault = tmp_path / "vault"
    rounds = [json.loads(x) for x in PROCUREMENT.read_text().splitlines()]
    proc = subprocess.run(
        [sys.executable, "-m", "memos_cli", "chat", "--vault", str(vault), "--as", "ann",
         "--save", str(tmp_path / "t.json"), "--max-new-tokens", "12"],
        input="\n".join(r["text"] for r in rounds) + "\n/memories\n", capture_output=True,
        text=True, timeout=900, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    turns = [json.loads(x) for x in proc.stdout.splitlines()]
    assert len(turns) == 16 and all(t.get("error") is None for t in turns)
    written = {r["text"] for t in turns for r in t["remembered"]}
    assert rounds[4]["text"] in written and rounds[11]["text"] in written
    assert not any(r["text"] in written for r in rounds if not r["salient"])
    revision = next(r for r in turns[11]["remembered"])
    default = next(r for r in turns[2]["remembered"])
    assert revision["kind"] == "update" and revision["target"] == default["id"]
    used = [m["id"] for m in turns[14]["memories_used"]]
    assert revision["id"] in used and default["id"] not in used
    assert turns[15]["output"] and {m["text"] for m in turns[15]["output"]} == written
    saved = json.loads((tmp_path / "t.json").read_text())["messages"]
    assert [m["role"] for m in saved[:2]] == ["user", "assistant"] and len(saved) == 30


def test_chat_commands_and_bad_lines(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    lines = ["I keep my bike in the garage.", "/memories", "/why", "/nope", "/history zzzz",
             "x" * 70000, "/quit", "never read"]
    proc = subprocess.run(
        [sys.executable, "-m", "memos_cli", "chat", "--vault", str(vault), "--as", "ann",
         "--no-answer"], input="\n".join(lines) + "\n", capture_output=True, text=True,
        timeout=300, cwd=Path(__file__).resolve().parents[1])
    assert proc.returncode == 0, proc.stderr
    turns = [json.loads(x) for x in proc.stdout.splitlines()]
    assert [t["user"][:10] for t in turns] == [x[:10] for x in [*lines[:5], "/quit"]]
    mid = turns[0]["remembered"][0]["id"]
    assert turns[1]["output"][0]["id"] == mid
    assert "takes a memory id" in turns[2]["error"] and "unknown command" in turns[3]["error"]
    assert "no memory zzzz" in turns[4]["error"]
    assert "character limit" in proc.stderr
