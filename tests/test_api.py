"""The library entry point (#29): a Session over a cube or a vault does what the CLI does, and
the CLI's answers, searches and schedules come from it; a lone query or question reads the
default vault (#28 bug 7)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from typer.testing import CliRunner

from memos_cli.api import AnswerOptions, ConvertOptions, Session, prepare_conversion
from memos_cli.cli.app import app
from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.vault import Vault, merge
from tests.conftest import invoke as memos
from tests.test_vault import NOW

runner = CliRunner()
Q = "What budget did we agree on?"


def test_search_on_a_cube_is_what_the_cli_prints(packed_cube: Path) -> None:
    with Session([packed_cube]) as s:
        found = s.search("budget cap", k=3)
    assert [h.rank for h in found.hits] == [1, 2, 3] and found.is_cube
    assert "48,000" in found.hits[0].memory.content
    shown = json.loads(memos("search", packed_cube, "budget cap", "-k", "3", "--json").stdout)
    assert [r["id"] for r in shown["results"]] == [h.memory.id for h in found.hits]
    assert shown == {**found.to_dict(), "search_s": shown["search_s"]}


def test_a_vault_session_filters_by_user_and_counts_what_it_hid(packed_cube: Path,
                                                                  tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    memos("load", packed_cube, "--vault", vault, "--allow-unsigned", "--as", "tester")
    with Session(vault=vault, user="tester") as s:
        mine = s.search("budget cap", k=3)
    with Session(vault=vault, user="mallory") as s:
        theirs = s.search("budget cap", k=3)
    assert len(mine.hits) == 3 and mine.hidden == 0 and mine.user == "tester"
    assert theirs.hits == [] and theirs.hidden >= 3  # private to tester: counted, not shown
    log = Vault(vault).read_log(op="search")
    assert [r["user"] for r in log] == ["tester", "mallory"]


@pytest.mark.parametrize("opts, cubes, vault, user, words", [
    (AnswerOptions(tier="bogus"), 1, False, False, "--tier 'bogus' is not one of"),
    (AnswerOptions(tier="kv"), 1, False, True, "--as applies to the text and auto tiers"),
    (AnswerOptions(tier="text"), 2, False, False, "takes one cube"),
    (AnswerOptions(tier="kv", system="Be brief."), 1, False, False, "--system goes with"),
    (AnswerOptions(combine="cat"), 1, False, False, "--combine applies"),
    (AnswerOptions(tier="kv"), 0, True, False, "--vault takes the question alone"),
    (AnswerOptions(k=-1), 1, False, False, "-k, --recompute must be >= 0"),
    (AnswerOptions(compose="sideways", tier="kv"), 1, False, False, "--compose 'sideways'"),
])
def test_answer_options_that_do_not_go_together(opts: AnswerOptions, cubes: int, vault: bool,
                                                user: bool, words: str) -> None:
    with pytest.raises(UsageError, match=words.replace("(", r"\(")):
        opts.checked(cubes=cubes, vault=vault, user=user)


def test_system_instruction_turns_auto_into_text() -> None:
    opts = AnswerOptions(system="Answer in French.").checked(cubes=1, vault=False, user=False)
    assert opts.tier == "text"


def test_answer_is_what_run_prints(packed_cube: Path, tiny_llama: Path) -> None:
    opts = AnswerOptions(tier="text", k=2, max_new_tokens=4)
    with Session([packed_cube], model=str(tiny_llama)) as s:
        result = s.answer(Q, opts)
    assert result.tier == "text" and len(result.memories) == 2
    shown = json.loads(memos("run", packed_cube, Q, "--tier", "text", "-k", "2",
                             "--max-new-tokens", "4", "--model", tiny_llama, "--json").stdout)
    assert shown["answer"] == result.answer
    assert [m["id"] for m in shown["memories"]] == [r.memory.id for r in result.memories]


def test_a_lone_query_or_question_reads_the_default_vault(packed_cube: Path, tmp_path: Path,
                                                          tiny_llama: Path,
                                                          monkeypatch: pytest.MonkeyPatch
                                                          ) -> None:
    """#28 bug 7: after `memos load x.memcube`, `memos search "q"` and `memos run "q"` failed
    although load and vault ls used the default vault."""
    vault = tmp_path / "default-vault"
    monkeypatch.setenv("MEMOS_VAULT", str(vault))
    missing = memos("search", "budget cap", code=2).output
    assert "no vault at" in missing and "memos search team.memcube" in " ".join(missing.split())
    memos("load", packed_cube, "--allow-unsigned")
    found = json.loads(memos("search", "budget cap", "-k", "2", "--json").stdout)
    assert found["vault"] == str(vault) and len(found["results"]) == 2
    answered = json.loads(memos("run", Q, "--model", tiny_llama, "-k", "2",
                                "--max-new-tokens", "2", "--json").stdout)
    assert answered["tier"] == "auto" and len(answered["memories"]) == 2
    # a lone path that is a cube still needs the query
    assert "missing CUBE or QUERY" in memos("search", packed_cube, code=2).output


def test_history_follows_versions_and_parents(tmp_path: Path) -> None:
    v = Vault(tmp_path / "vault")
    first = Memory.create("budget is 40k", id="m1", now=NOW, owner="ann")
    second = Memory.create("budget is 48k", id="m1", now=NOW, owner="ann")
    child = Memory.create("budget is 50k", id="m2", parent_id="m1", now=NOW, owner="ann")
    for cube, mems in (("c1", [first]), ("c2", [second]), ("c3", [child])):
        part = v.part([m.id for m in mems] + [m.parent_id for m in mems if m.parent_id],
                      [m.content_hash for m in mems])
        delta, _ = merge(part, cube, mems, np.ones((1, 4), np.float32), now=NOW)
        delta.cubes[cube] = {"name": cube, "installed_by": "ann", "installed_at": "2026-11-01"}
        v.apply(delta, dim=4)
    with Session(vault=tmp_path / "vault", user="ann") as s:
        h = s.history("m2")
    assert [m.content for m in h.versions] == ["budget is 40k", "budget is 48k", "budget is 50k"]
    assert h.current and h.cube_id == "c3"
    with Session(vault=tmp_path / "vault", user="bob") as s, \
            pytest.raises(UsageError, match="not readable by bob"):
        s.history("m2")
    with Session(vault=tmp_path / "vault", user="ann") as s, \
            pytest.raises(UsageError, match="no memory nope"):
        s.history("nope")


def test_add_and_dump_through_the_session(cube_copy: Path, tmp_path: Path) -> None:
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"content": "The Kestrel demo moved to 9 June."}\n')
    with Session([cube_copy], user="tester") as s:
        before = (cube_copy / "manifest.json").read_bytes()
        trial = s.add([extra], dry_run=True)  # decided, nothing written
        assert trial.dry_run and trial.added == 1 and trial.embedded == 1
        assert (cube_copy / "manifest.json").read_bytes() == before
        report = s.add([extra])
        assert report.added == 1 and len(s.cubes[0].memories) == 19
        again = tmp_path / "again.jsonl"  # the same line from another file: not added again
        again.write_text('{"content": "The Kestrel demo moved to 9 June."}\n')
        assert s.add([again]).added == 0 and len(s.cubes[0].memories) == 19
        out = tmp_path / "out.jsonl"
        dumped = s.dump(out, fmt="jsonl")
    lines = [json.loads(x) for x in out.read_text().splitlines()]
    assert dumped.memories == len(lines) and any("9 June" in x["content"] for x in lines)
    with pytest.raises(UsageError, match="does not exist"):
        Session([cube_copy]).dump(tmp_path / "nope" / "x.md", fmt="markdown")


def test_run_over_a_vault_says_how_many_memories_access_control_hid(
        packed_cube: Path, tmp_path: Path, tiny_llama: Path) -> None:
    """#28: `run --vault --as bob` did not say how many memories access control hid, where
    `search` does."""
    vault = tmp_path / "vault"
    memos("load", packed_cube, "--vault", vault, "--allow-unsigned", "--as", "tester")
    for tier in ("auto", "text"):
        r = runner.invoke(app, ["run", Q, "--vault", str(vault), "--as", "mallory", "--tier",
                                tier, "--model", str(tiny_llama), "--max-new-tokens", "2",
                                "--json"])
        assert r.exit_code == 0, r.output
        data = json.loads(r.stdout)
        assert data["memories"] == [] and data["hidden_by_access"] >= 5
    r = memos("run", Q, "--vault", vault, "--as", "mallory", "--model", tiny_llama,
              "--max-new-tokens", "2")
    assert "of the closest memories are not readable by this user" in r.stderr
    mine = json.loads(memos("run", Q, "--vault", vault, "--as", "tester", "--model", tiny_llama,
                            "--max-new-tokens", "2", "--json").stdout)
    assert mine["hidden_by_access"] == 0 and len(mine["memories"]) == 5


def test_history_by_id_matches_the_whole_vault_read(tmp_path: Path, embedder: object,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    """A history follows links by id (``Vault.linked``), and falls back to reading the whole
    vault past its bound of rounds: both give the same chain."""
    from datetime import datetime, timezone

    from memos_cli.api import Session, reading

    with Session(vault=tmp_path / "v", user="ann", embedder=embedder) as s:
        ids = [s.remember(f"The team offsite is in {city}.",
                          event_time=datetime(2026, m, 1, tzinfo=timezone.utc)).memory.id
               for m, city in ((1, "Lisbon"), (2, "Porto"), (3, "Braga"), (4, "Faro"))]
        s.remember("Bob's desk is by the window.")
        by_id = s.history(ids[0]).to_dict()
        assert [v["content"] for v in by_id["versions"]][-1] == "The team offsite is in Faro."
        assert len(by_id["versions"]) == 4
        monkeypatch.setattr(reading, "_LINKED_ROUNDS", 1)  # the chain needs more rounds
        assert s.history(ids[0]).to_dict() == by_id
        assert s.history(ids[3][:10]).to_dict() == s.history(ids[3]).to_dict()  # a prefix


@pytest.mark.parametrize("opts, words", [
    (ConvertOptions(to="bogus"), "--to 'bogus': this memos converts to kv"),
    (ConvertOptions(to="kv", top=0), "--top must be at least 1"),
    (ConvertOptions(to="lora", chunks=True), "--chunks goes with --to kv"),
    (ConvertOptions(to="kv", chunks=True, drop_text=True), "--chunks goes with --to kv"),
    (ConvertOptions(to="lora", recipe="magic"), "--recipe 'magic' is not one of"),
    (ConvertOptions(to="lora", rank=0), "--epochs, --rank and --budget must be at least 1"),
])
def test_convert_options_that_do_not_go_together(opts: ConvertOptions, words: str) -> None:
    with pytest.raises(UsageError, match=words.replace("'", ".").replace("-", r"\-")):
        opts.checked()


def test_a_library_conversion_is_what_convert_builds(packed_cube: Path, tiny_llama: Path,
                                                     tmp_path: Path) -> None:
    """KV chunks built through ``prepare_conversion`` and ``Conversion.run`` are the chunk set
    ``memos convert --to kv --chunks`` writes into another copy of the same cube: same set
    id, chunks, tokens and files; both say that the cube lost its signature."""
    from memos_cli.cube import open_verified
    from memos_cli.models import chat

    mine, theirs = tmp_path / "lib.memcube", tmp_path / "cli.memcube"
    shutil.copytree(packed_cube, mine)
    shutil.copytree(packed_cube, theirs)
    job = prepare_conversion(mine, ConvertOptions(to="kv", chunks=True, dtype="float32"))
    assert job.needs_model and job.kind == "chunks" and len(job.memories) > 1
    heard: list[tuple[str, int, int]] = []
    built = job.run(chat.load(str(tiny_llama), device="cpu"),
                    progress=lambda *a: heard.append(a))
    r = runner.invoke(app, ["convert", str(theirs), "--to", "kv", "--chunks", "--dtype",
                            "float32", "--model", str(tiny_llama), "--device", "cpu", "--json"])
    assert r.exit_code == 0, r.output
    shown = json.loads(r.stdout)
    lib = built.to_dict()
    for d in (lib, shown):
        d.pop("build_s"), d.pop("path", None)
    assert lib == shown and lib["chunks"] == len(job.memories)
    assert built.dropped_signature and "was signed and is now unsigned" in r.stderr
    assert heard and heard[-1][1] == heard[-1][2]  # the progress reached its end
    files = [sorted(p.relative_to(c).as_posix() for p in (c / "kv").rglob("*"))
             for c in (mine, theirs)]
    assert files[0] == files[1] and files[0]
    assert [s.id for s in open_verified(mine).chunk_sets] == [shown["chunk_set"]]


def test_load_through_the_session_is_what_memos_load_installs(packed_cube: Path,
                                                               tmp_path: Path) -> None:
    """``Session.load`` installs as ``memos load`` does (same report, same rows), logs the
    session's user, and a session over cubes refuses it."""
    with Session(vault=tmp_path / "lib", user="tester") as s:
        report = s.load(packed_cube, allow_unsigned=True).to_dict()
    shown = json.loads(memos("load", packed_cube, "--vault", tmp_path / "cli", "--as", "tester",
                             "--allow-unsigned", "--json").stdout)
    assert {**report, "dry_run": False} == shown and report["added"] > 0
    rows = [sorted((m.id, m.content_hash) for m in Vault(tmp_path / v).state().memories)
            for v in ("lib", "cli")]
    assert rows[0] == rows[1] and len(rows[0]) == report["added"]
    assert [r["user"] for r in Vault(tmp_path / "lib").read_log(op="load")] == ["tester"]
    with Session([packed_cube]) as s, pytest.raises(UsageError, match="into a vault"):
        s.load(packed_cube)
