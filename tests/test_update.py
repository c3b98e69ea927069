"""Keeping a cube up to date: add, rm-memories, diff (#12)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.cube import open_cube, verify
from tests.conftest import invoke as memos

runner = CliRunner()


def test_add_embeds_only_what_is_new_and_versions_changes(tmp_path: Path,
                                                          keys: tuple[Path, Path]) -> None:
    first = tmp_path / "a.jsonl"
    first.write_text('{"id": "m1", "content": "the budget is 40k"}\n'
                     '{"id": "m2", "content": "Ann likes tea"}\n')
    cube = tmp_path / "team.memcube"
    memos("pack", first, "-o", cube)
    before = json.loads(memos("diff", cube, cube, "--json").stdout)
    assert before["equal"] is True
    old = tmp_path / "old.memcube"
    import shutil
    shutil.copytree(cube, old)
    second = tmp_path / "b.jsonl"
    second.write_text('{"id": "m1", "content": "the budget is 55k"}\n'   # a new version of m1
                      '{"content": "Ann likes tea"}\n'                   # already there
                      '{"content": "Bo joined in May"}\n')               # new
    rep = json.loads(memos("add", cube, second, "--key", keys[0], "--json").stdout)
    assert (rep["added"], rep["changed"], rep["duplicates"], rep["embedded"]) == (1, 1, 1, 2)
    assert rep["revision"] == 2 and rep["signed"] is True
    verify(cube, keys[1])
    m1 = open_cube(cube).by_id["m1"]
    assert m1.content == "the budget is 55k" and m1.version == 2
    assert m1.extra["supersedes"]["version"] == 1
    hits = json.loads(memos("search", cube, "budget", "--json").stdout)["results"]
    assert hits[0]["id"] == "m1"  # the index follows the update
    d = json.loads(runner.invoke(app, ["diff", str(old), str(cube), "--json"]).stdout)
    assert len(d["added"]) == 1 and [c["id"] for c in d["changed"]] == ["m1"]
    assert d["manifest"]["revision"] == [1, 2] and d["signed"] == [False, True]
    assert runner.invoke(app, ["diff", str(old), str(cube)]).exit_code == 1
    text = memos("diff", old, cube, code=1).stdout
    assert "~ m1 content" in text and "manifest revision: 1 -> 2" in text


def test_rm_memories_keeps_the_rest(tmp_path: Path) -> None:
    src = tmp_path / "a.jsonl"
    src.write_text('{"id": "d1", "content": "draft one", "tags": ["draft"]}\n'
                   '{"id": "k1", "content": "keep this"}\n')
    cube = tmp_path / "c.memcube"
    memos("pack", src, "-o", cube)
    rep = json.loads(memos("rm-memories", cube, "--filter", "tag=draft", "--json").stdout)
    assert rep["removed"] == 1 and rep["revision"] == 2
    assert [m.id for m in open_cube(cube).memories] == ["k1"]
    verify(cube)
    r = memos("rm-memories", cube, "--ids", "nope", code=2)
    assert "no memory matches" in r.stderr
    r = memos("rm-memories", cube, "--ids", "k1", code=2)
    assert "every memory" in r.stderr


def test_add_refuses_a_cube_with_other_tiers(cube_copy: Path, tiny_llama: Path,
                                             tmp_path: Path) -> None:
    memos("convert", cube_copy, "--to", "kv", "--model", tiny_llama)
    src = tmp_path / "n.jsonl"
    src.write_text('{"content": "new"}\n')
    r = memos("add", cube_copy, src, code=2)
    assert "activation tier" in r.stderr


def test_signature_state_is_reported_truly(tmp_path: Path, keys: tuple[Path, Path],
                                           monkeypatch) -> None:  # type: ignore[no-untyped-def]
    """#28 bugs 8 and 9: a no-op `add --key` said "unsigned" of a signed cube; `add` and
    `rm-memories` without a key dropped the signature silently; a configured key signs."""
    src = tmp_path / "a.jsonl"
    src.write_text('{"id": "m1", "content": "the budget is 40k"}\n'
                   '{"id": "m2", "content": "Ann likes tea"}\n')
    cube = tmp_path / "team.memcube"
    memos("pack", src, "-o", cube, "--key", keys[0])
    same = memos("add", cube, src, "--key", keys[0])
    assert "already there" in same.stdout and ", signed" in same.stdout
    assert "unsigned" not in same.stdout and "warning" not in same.stderr
    assert json.loads(memos("add", cube, src, "--json").stdout)["signed"] is True  # unwritten
    verify(cube, keys[1])

    more = tmp_path / "b.jsonl"
    more.write_text('{"content": "Bo joined in May"}\n')
    r = memos("add", cube, more, "--json")
    assert json.loads(r.stdout)["signature_dropped"] is True  # stdout stays pure JSON
    assert "was signed and is now unsigned" in r.stderr and "--key" in r.stderr
    assert not open_cube(cube).signed

    monkeypatch.setenv("MEMOS_KEY", str(keys[0]))  # a configured key keeps signing
    memos("add", cube, src)  # nothing new
    even = tmp_path / "c.jsonl"
    even.write_text('{"content": "Cy left in June"}\n')
    r = memos("add", cube, even)
    assert ", signed" in r.stdout and "warning" not in r.stderr
    verify(cube, keys[1])
    monkeypatch.delenv("MEMOS_KEY")
    r = memos("rm-memories", cube, "--ids", "m2")
    assert "was signed and is now unsigned" in r.stderr


def test_diff_sees_every_tier_and_file(cube_copy: Path, tmp_path: Path,
                                       tiny_llama: Path) -> None:
    """#28 bug 4: after `convert --to kv` added a KV segment, `diff` said "cubes are equal" and
    printed bare ids."""
    import shutil

    old = tmp_path / "old.memcube"
    shutil.copytree(cube_copy, old)
    memos("convert", cube_copy, "--to", "kv", "--model", tiny_llama)
    r = memos("diff", old, cube_copy, code=1)
    assert "cubes are equal" not in r.stdout
    seg, = (cube_copy / "kv").glob("*.safetensors")
    size = seg.stat().st_size
    assert f"+ file kv/{seg.name} ({size:,} bytes)" in r.stdout
    assert "+ tier activation" in r.stdout and "signature: signed -> unsigned" in r.stdout
    d = json.loads(memos("diff", old, cube_copy, "--json", code=1).stdout)
    assert {"path": f"kv/{seg.name}", "size": size} in d["files"]["added"]
    assert d["manifest"]["kv"][0] is None and d["manifest"]["tiers"][1][-1] == "activation"
    assert d["bytes"][1] > d["bytes"][0] + size // 2  # the segment, less the signature dropped
    stat = memos("diff", old, cube_copy, "--stat", code=1).stdout
    assert "memories   +0 -0 ~0" in stat and "files      +1 " in stat and "+activation" in stat

    src = tmp_path / "edit.jsonl"
    first = open_cube(old).memories[0]
    src.write_text(json.dumps({"id": first.id, "content": "The budget cap is 52,000 euros.",
                               "source_file": "notes/budget.md"}) + "\n")
    memos("add", old, src)
    shown = memos("diff", cube_copy, old, code=1).stdout
    assert f"~ {first.id} content" in shown
    assert "    + The budget cap is 52,000 euros." in shown  # the text, not a bare id


def test_rm_memories_by_source(tmp_path: Path) -> None:
    """#28: rm-memories could not filter by source (--filter source=notes/db.md)."""
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "db.md").write_text("# DB\n\nwork_mem is 32MB.\n")
    (notes / "ops.md").write_text("# Ops\n\nBackups run at 02:00.\n")
    cube = tmp_path / "n.memcube"
    memos("pack", notes, "-o", cube, "--base", tmp_path)
    sources = {m.source_file for m in open_cube(cube).memories}
    assert sources == {"notes/db.md", "notes/ops.md"}
    rep = json.loads(memos("rm-memories", cube, "--filter", "source=notes/db.md",
                           "--json").stdout)
    assert rep["removed"] == 1
    assert {m.source_file for m in open_cube(cube).memories} == {"notes/ops.md"}
    assert "would remove every memory" in memos("rm-memories", cube, "--filter",
                                                "source=notes/", code=2).stderr  # a directory
