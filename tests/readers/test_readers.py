"""MemReaders without a chat model: the context reader, the parsers, grounding, the budget,
and what search, verify, update and dump do with reader rows and derived memories."""

import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from memos_cli.cube import CubeSpec, open_cube, verify, write_cube
from memos_cli.errors import IntegrityError, UsageError
from memos_cli.lifecycle.pack import ReaderPlan, embed_memories, embed_rows, pack, rebuild_index
from memos_cli.memory import Memory, derived_from, derived_reader
from memos_cli.readers import Budget, facts, parse_names, questions, run_readers
from memos_cli.readers import context as ctx
from memos_cli.sources import Defaults
from memos_cli.tiers.plaintext import retrieve

NOW = datetime(2026, 1, 1, tzinfo=timezone.utc)


def chat_file(tmp_path: Path) -> Path:
    """A short conversation whose answer turns say little on their own."""
    turns = [
        ("Ana", "Did James ever adopt that puppy he kept talking about?"),
        ("Ben", "He did, Ned is a border collie."),
        ("Ana", "When did he get him?"),
        ("Ben", "Last Tuesday!"),
        ("Ana", "I am repainting the kitchen in a pale green this weekend."),
        ("Ben", "Send me photos when it is done."),
    ]
    conv = {"speaker_a": "Ana", "speaker_b": "Ben", "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": s, "dia_id": f"D1:{i + 1}", "text": t}
                          for i, (s, t) in enumerate(turns)]}
    path = tmp_path / "talk.json"
    path.write_text(json.dumps(conv))
    return path


def test_parse_names_orders_and_refuses_unknown() -> None:
    assert parse_names(["facts,context", "context"]) == ["context", "facts"]
    with pytest.raises(UsageError, match=r"'summaries' is not a reader.*context, questions"):
        parse_names(["summaries"])


@pytest.mark.parametrize("text, want", [
    ("600", 600.0), ("90s", 90.0), ("10m", 600.0), ("1h", 3600.0)])
def test_budget_parses_time(text: str, want: float) -> None:
    assert Budget.parse(text).seconds == want


def test_budget_tokens_and_refusals() -> None:
    b = Budget.parse("100tok")
    assert (b.tokens, b.exhausted()) == (100, False)
    b.spend(100)
    assert b.exhausted()
    for bad in ("0", "-5", "ten", "5 parsecs"):
        with pytest.raises(UsageError, match="--reader-budget"):
            Budget.parse(bad)


def test_context_rows_hold_the_neighbourhood(tmp_path: Path, embedder) -> None:
    cube = tmp_path / "t.memcube"
    pack([chat_file(tmp_path)], cube, embedder=embedder, defaults=Defaults(now=NOW))
    mems = open_cube(cube).memories
    result = ctx.read(mems, before=2, after=1)
    assert len(result.rows) == len(mems) == 6
    rows = dict(result.rows)
    reply = next(m for m in mems if m.content == "Last Tuesday!")
    text = rows[reply.id]
    lines = text.split("\n")
    assert lines[0] == "[8 May 2023] Conversation between Ana and Ben."
    assert lines[1:] == ["Ben: He did, Ned is a border collie.", "Ana: When did he get him?",
                         "Ben: Last Tuesday!",
                         "Ana: I am repainting the kitchen in a pale green this weekend."]
    first = rows[mems[0].id].split("\n")
    assert first[1] == "Ana: Did James ever adopt that puppy he kept talking about?"
    with pytest.raises(UsageError):
        ctx.read(mems, before=-1)


def test_context_groups_documents_by_file_and_line() -> None:
    def chunk(text: str, line: int, f: str) -> Memory:
        return Memory.create(text, now=NOW, source_file=f, line_start=line, line_end=line,
                             section="Intro")
    a2, a1, b1 = chunk("second", 5, "a.md"), chunk("first", 1, "a.md"), chunk("other", 1, "b.md")
    fact = Memory.create("a standalone fact", now=NOW, semantic_type="fact")
    groups = ctx.neighbourhoods([a2, a1, b1, fact])
    assert [[m.content for m in g] for g in groups] == [["first", "second"], ["other"]]
    rows = dict(ctx.read([a2, a1, b1, fact]).rows)
    assert fact.id not in rows
    assert rows[a2.id] == "Document a.md, Intro.\nfirst\nsecond"


def test_search_finds_a_short_reply_through_its_context(tmp_path: Path, embedder) -> None:
    plain, read = tmp_path / "plain.memcube", tmp_path / "read.memcube"
    src = chat_file(tmp_path)
    pack([src], plain, embedder=embedder, defaults=Defaults(now=NOW))
    report = pack([src], read, embedder=embedder, defaults=Defaults(now=NOW),
                  readers=ReaderPlan(["context"]))
    assert report.readers[0]["name"] == "context" and report.readers[0]["index_rows"] == 6
    q = "When did James adopt Ned?"
    rank = {}
    for name, path in (("plain", plain), ("read", read)):
        hits = retrieve(open_cube(path), embedder, q, 6, now=NOW)
        rank[name] = [h.memory.content for h in hits].index("Last Tuesday!") + 1
        if name == "read":
            hit = next(h for h in hits if h.memory.content == "Last Tuesday!")
            assert hit.via == "context" and hit.matched is None  # neighbours' text not shown
    assert rank["read"] < rank["plain"], rank
    c = open_cube(read)
    assert c.manifest.format_version == "1.8"
    assert c.manifest.readers[0]["options"] == {"before": 2, "after": 0, "neighbour_chars": 300}
    assert verify(read).memories == 6
    assert sorted(c.index().ids()) == sorted(m.id for m in c.memories)


def test_a_restatement_dropped_by_supersession_takes_its_reader_row(tmp_path: Path,
                                                                     embedder) -> None:
    """A default pack of a conversation (LoCoMo 42) wrote a context row for each turn, then
    dropped three restated turns as duplicates and kept their rows: memos's own verify refused
    the cube and every search of it failed (#32)."""
    from memos_cli.lifecycle.pack import BY_SOURCE

    first = [("Ana", "Did James ever adopt that puppy?"),
             ("Ben", "He did, Ned is a border collie."), ("Ana", "Bye Ben!")]
    later = [("Ana", "How is the kitchen going?"), ("Ben", "Pale green, almost done."),
             ("Ana", "Bye Ben!")]
    conv = {"speaker_a": "Ana", "speaker_b": "Ben",
            "session_1_date_time": "1:56 pm on 8 May, 2023",
            "session_1": [{"speaker": a, "dia_id": f"D1:{i + 1}", "text": t}
                          for i, (a, t) in enumerate(first)],
            "session_2_date_time": "2:10 pm on 15 May, 2023",
            "session_2": [{"speaker": a, "dia_id": f"D2:{i + 1}", "text": t}
                          for i, (a, t) in enumerate(later)]}
    src = tmp_path / "locomo-like.json"
    src.write_text(json.dumps(conv))
    out = tmp_path / "talk.memcube"
    report = pack([src], out, embedder=embedder, defaults=Defaults(now=NOW), readers=BY_SOURCE)
    assert report.evolution is not None and report.evolution.to_dict()["duplicates"] == 1
    cube = open_cube(out)
    ids = {m.id for m in cube.memories}
    rows, found = cube.index().reader_rows()
    assert len(ids) == 5 and found == ids and rows == {"context": 5}
    assert report.readers[0]["index_rows"] == cube.manifest.readers[0]["index_rows"] == 5
    assert verify(out).memories == 5
    assert retrieve(open_cube(out), embedder, "Bye Ben!", 5, now=NOW)


def test_reindex_without_readers_drops_rows_and_with_them_rebuilds(tmp_path: Path,
                                                                    embedder) -> None:
    cube = tmp_path / "t.memcube"
    pack([chat_file(tmp_path)], cube, embedder=embedder, defaults=Defaults(now=NOW),
         readers=ReaderPlan(["context"]))
    c = rebuild_index(cube, embedder)
    assert c.manifest.readers is None and c.index().reader_rows() == ({}, set())
    c = rebuild_index(cube, embedder, readers=ReaderPlan(["context"]))
    assert c.index().reader_rows()[0] == {"context": 6}
    assert verify(cube).memories == 6


def test_questions_and_facts_parsers() -> None:
    out = " What did Ana paint? When will Ana paint the kitchen?\n\nMessage: Ben: hi"
    assert questions.parse(out) == ["What did Ana paint?", "When will Ana paint the kitchen?"]
    assert questions.parse("I am not sure about that.") == []
    assert questions.parse("Who? What is it? What is it?") == ["What is it?"]
    text = " Ana is repainting her kitchen green.\n- Ben wants photos.\n- ok\n\nConversation:"
    assert facts.parse(text) == ["Ana is repainting her kitchen green.", "Ben wants photos."]
    assert facts.parse("\nnothing in list form") == []


def _turn(text: str, speaker: str, n: int, **kw) -> Memory:  # type: ignore[no-untyped-def]
    return Memory.create(text, now=NOW, origin="conversation", semantic_type="dialog_turn",
                         speaker=speaker, session_id="session_1", turn_id=f"D1:{n}",
                         event_time=datetime(2023, 5, 8, tzinfo=timezone.utc), **kw)


def test_facts_ground_in_overlapping_turns_and_drop_inventions() -> None:
    win = [_turn("I am repainting the kitchen in a pale green.", "Ana", 1),
           _turn("Send me photos when it is done.", "Ben", 2)]
    assert facts.ground("Ana is repainting the kitchen green.", win) == [win[0]]
    assert facts.ground("Carina is a superhero who helps people.", win) == []
    m = facts.derive("Ana is repainting the kitchen green.", [win[0]])
    assert (m.origin, m.semantic_type, m.event_time) == ("inference", "fact", win[0].event_time)
    assert derived_from(m) == (win[0].id,) and derived_reader(m) == "facts"
    assert m.parent_id is None  # the version chain is not used for sources
    same = _turn("The green kitchen looks great.", "Ben", 3)
    private = _turn("The green kitchen looks great!", "Ben", 4, owner="ben")
    fact = "The green kitchen is finished."  # ties: green, kitchen
    assert facts.ground(fact, [win[0], same]) == [win[0], same]
    assert facts.ground(fact, [win[0], private]) == [win[0]]  # not across governance


def _cube_with_fact(tmp_path: Path, embedder) -> tuple[Path, Memory, list[Memory]]:  # type: ignore[no-untyped-def]
    turns = [_turn("I am repainting the kitchen in a pale green.", "Ana", 1, owner="ana"),
             _turn("Send me photos when it is done.", "Ben", 2, owner="ana"),
             _turn("We sold the old boat last summer.", "Ana", 3, owner="ana")]
    fact = facts.derive("Ana chose sage as the new colour of her kitchen walls.", [turns[0]])
    mems = [*turns, fact]
    path = tmp_path / "f.memcube"
    run = facts.ReaderResult("facts", {"window": 4}, memories=[fact])
    write_cube(path, mems, embed_memories(embedder, mems),
               CubeSpec(name="f", created_at=NOW, embedding=embedder.describe(),
                        readers=[run.record()]))
    return path, fact, turns


def test_search_resolves_a_derived_memory_to_its_source(tmp_path: Path, embedder) -> None:
    path, fact, turns = _cube_with_fact(tmp_path, embedder)
    hits = retrieve(open_cube(path), embedder, "what colour are the kitchen walls, sage?", 3,
                    now=NOW)
    assert fact.id not in [h.memory.id for h in hits]  # never shown as the user's words
    top = hits[0]
    assert (top.memory.id, top.via, top.matched, top.derived_id) == \
        (turns[0].id, "facts", fact.content, fact.id)
    assert top.to_dict()["via"] == "facts"
    assert retrieve(open_cube(path), embedder, "sage kitchen walls", 3, now=NOW,
                    user="bob") == []  # private to ana: neither the fact nor its source
    assert verify(path).memories == 4


def test_verify_refuses_a_derived_memory_without_its_source(tmp_path: Path, embedder) -> None:
    _, fact, turns = _cube_with_fact(tmp_path, embedder)
    mems = [turns[1], fact]
    path = tmp_path / "orphan.memcube"
    write_cube(path, mems, embed_memories(embedder, mems),
               CubeSpec(name="o", created_at=NOW, embedding=embedder.describe(),
                        readers=[{"name": "facts", "options": {}, "model": None,
                                  "index_rows": 0, "derived_memories": 1, "unparsed": 0,
                                  "not_reached": 0, "seconds": 0.0}]))
    with pytest.raises(IntegrityError, match=f"names source {turns[0].id}"):
        verify(path)


def test_removing_a_source_removes_what_was_derived_from_it(tmp_path: Path, embedder) -> None:
    from memos_cli.lifecycle.update import remove

    path, fact, turns = _cube_with_fact(tmp_path, embedder)
    report = remove(path, lambda m: m.id != turns[0].id)
    assert report.removed == 2
    c = open_cube(path)
    assert fact.id not in c.by_id and c.manifest.readers is None
    assert verify(path).memories == 2


def test_dump_marks_derived_memories_and_no_derived_leaves_them_out(tmp_path: Path,
                                                                     embedder) -> None:
    from memos_cli.lifecycle.dump import dump

    path, fact, turns = _cube_with_fact(tmp_path, embedder)
    c = open_cube(path)
    dump(c, tmp_path / "all.jsonl", user="ana", fmt="jsonl", now=NOW)
    rows = [json.loads(x) for x in (tmp_path / "all.jsonl").read_text().splitlines()]
    derived = [r for r in rows if r["origin"] == "inference"]
    assert [r["id"] for r in derived] == [fact.id]
    assert derived[0]["extra"] == {"reader": "facts", "derived_from": [turns[0].id]}
    dump(c, tmp_path / "own.jsonl", user="ana", fmt="jsonl", now=NOW, derived=False)
    assert fact.id not in (tmp_path / "own.jsonl").read_text()
    dump(c, tmp_path / "some.md", user="ana", fmt="markdown", now=NOW)
    assert "(derived by memos reader facts)" in (tmp_path / "some.md").read_text()


def test_run_readers_without_a_model_reader_loads_no_model(tmp_path: Path, embedder) -> None:
    cube = tmp_path / "t.memcube"
    pack([chat_file(tmp_path)], cube, embedder=embedder, defaults=Defaults(now=NOW))
    run = run_readers(["context"], open_cube(cube).memories)
    rows = embed_rows(embedder, run.rows())
    assert rows.vectors is not None and rows.vectors.shape == (6, embedder.dimension)
    assert np.allclose(np.linalg.norm(rows.vectors, axis=1), 1, atol=1e-5)
    assert run.records()[0]["model"] is None


def test_a_vault_resolves_derived_memories_too(tmp_path: Path, embedder) -> None:
    from memos_cli.vault import Vault, load
    from memos_cli.vault import search as vault_search

    path, fact, turns = _cube_with_fact(tmp_path, embedder)
    v = Vault(tmp_path / "vault")
    load(v, path, user="ana", embedder=embedder, allow_unsigned=True, now=NOW)
    hits = vault_search(v, embedder, "what colour are the kitchen walls, sage?", 3, user="ana",
                        now=NOW)
    assert fact.id not in [h.memory.id for h in hits]
    assert (hits[0].memory.id, hits[0].via, hits[0].matched) == (turns[0].id, "facts",
                                                                 fact.content)


def test_questions_a_memory_does_not_answer_are_dropped(embedder) -> None:
    m = _turn("I am repainting the kitchen in a pale green.", "Ana", 1)
    other = _turn("We sold the old boat last summer.", "Ana", 2)
    found = [["What colour is Ana painting her kitchen?", "How many people attended the event?"],
             ["What did Ana sell?"]]
    kept = questions.relevant(embedder, [m, other], found, 0.4)
    assert kept == [["What colour is Ana painting her kitchen?"], ["What did Ana sell?"]]
    assert questions.relevant(embedder, [m, other], found, -1) == found
