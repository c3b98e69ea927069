"""Memory evolution (#30, spec §4.6): the supersession decision, chains, valid time, every
write path, --as-of, history and the audit trail. Decisions use the real default embedder."""

from __future__ import annotations

import dataclasses
import json
from datetime import datetime, timezone
from pathlib import Path

import numpy as np
import pytest

from memos_cli.cube import open_cube, verify
from memos_cli.errors import IntegrityError, UsageError
from memos_cli.lifecycle.evolve import Ledger, evolve
from memos_cli.lifecycle.supersede import analyse, compare, decide
from memos_cli.memory import Memory
from memos_cli.validity import View, chain, link_problems, parse_as_of
from tests.conftest import invoke as memos


def day(d: int, month: int = 1) -> datetime:
    return datetime(2026, month, d, 9, tzinfo=timezone.utc)


def mem(text: str, when: datetime, **kw) -> Memory:  # type: ignore[no-untyped-def]
    return Memory.create(text, now=when, event_time=when, **kw)


def decide_pair(embedder, old: str, new: str, *, t_old: int = 1, t_new: int = 9,  # type: ignore[no-untyped-def]
                **kw) -> str:
    a, b = mem(old, day(t_old), **kw), mem(new, day(t_new), **kw)
    va, vb = embedder.encode([a.render(), b.render()])
    return decide(b, [(a, float(va @ vb))]).kind


@pytest.mark.parametrize("old,new,kind", [
    # the same subject and attribute, another value: an update
    ("The lab meeting is in room B12.", "The lab meeting moved to room C3.", "update"),
    ("Mei leads the parser work.", "Arjun took over the parser work from Mei.", "update"),
    ("The database setting work_mem is 32MB.",
     "We raised the database setting work_mem to 64MB.", "update"),
    ("I am allergic to penicillin.", "I am not allergic to penicillin after all.", "update"),
    # the same attribute of another subject: not an update
    ("The Paris office budget is 2 million euros.",
     "The Berlin office budget is 1.5 million euros.", "independent"),
    # an unchanged restatement: a duplicate
    ("My dentist appointment is on 9 June.", "My dentist appointment is on 9 June.",
     "duplicate"),
    # near misses: a hypothetical, a question, someone else's figure
    ("Our marketing budget is 40,000 dollars.",
     "If the marketing budget were cut to 25,000 dollars we would drop the fair.",
     "independent"),
    ("The quarterly review is on 12 June.", "Is the quarterly review still on 19 June?",
     "independent"),
    ("Our churn rate is 4 percent a month.",
     "According to the industry report, the churn rate is 7 percent a month.", "independent"),
    # a reason or circumstance, a phrase of change: still the same attribute
    ("The club's training starts at 18:00.",
     "Training now starts at 18:30 because of the light.", "update"),
    ("The monthly rent for the flat is 1,450 euros.",
     "The monthly rent went up to 1,520 euros in July.", "update"),
    ("The doctor increased my daily dose of vitamin D to 2000 IU.",
     "My daily dose of vitamin D is back down to 800 IU for summer.", "update"),
    # another subject named by a possessive; several words replaced on both sides
    ("Elena's salary band is L4.", "Marcus's salary band is L5.", "independent"),
    ("Tomás is the on-call engineer for payments this week.",
     "Ines is the on-call engineer for search this week.", "independent"),
    # a negation of something else; a statement that only adds: no revision
    ("My passport expires in March 2031.",
     "Just checked: my passport expires in March 2031, so no renewal needed yet.",
     "independent"),
    ("The car's tyre pressure should be 2.3 bar at the front.",
     "Note to self: front tyre pressure for the car is 2.3 bar.", "independent"),
    ("I like to run in the evenings.",
     "These days I run in the early mornings, not in the evenings.", "update"),
    # a state and its circumstance; a state of another subject
    ("The bridge is closed for resurfacing.", "The bridge is open for pedestrians only.",
     "update"),
    ("The north entrance is closed.", "The south entrance is open.", "independent"),
    ("The Kestrel project started on 5 January 2026.", "The Kestrel demo moved to 9 June.",
     "independent"),  # an event is no state
    # names that are the values, an irregular verb, a validity start
    ("My salary is paid into the Barclays account.",
     "My salary now goes into the Monzo account.", "update"),
    ("Invoices should be sent to billing@northwind.example.",
     "Northwind asked us to send invoices to ap@northwind.example from now on.", "update"),
    ("The monthly bus pass price rose to 58 pounds.",
     "From September a monthly bus pass costs 52 pounds.", "update"),
    # someone else's own value; a deliberation
    ("My resting heart rate is 58.", "My brother says his resting heart rate is 72.",
     "independent"),
    ("The annual membership fee is 120 euros.",
     "The committee discussed whether the annual membership fee should rise to 140 euros.",
     "independent"),
    ("The design review is on Wednesday at 2.",  # an opinion of what should be
     "Karen thinks the design review should be on Friday at 2.", "independent"),
    ("The project deadline is 30 June.",  # hearsay
     "Someone in the corridor said the project deadline is 15 July.", "independent"),
    ("We have 40 laptops in the IT storeroom.",  # the same count, said impersonally
     "Only 12 laptops are left in the IT storeroom.", "update"),
])
def test_each_decision_kind(embedder, old: str, new: str, kind: str) -> None:  # type: ignore[no-untyped-def]
    assert decide_pair(embedder, old, new) == kind


def test_a_statement_knows_its_circumstances_states_and_the_reach_of_its_negation() -> None:
    s = analyse("After the renegotiation, the rent is 1,300 euros because of the new lease.")
    assert {"renegoti", "leas"} <= s.adjunct and "rent" not in s.adjunct  # a comma ends it
    assert "after" not in s.names  # a word that opens an adjunct is no name
    s = analyse("The bridge is closed for resurfacing until Friday.")
    assert "close" in s.values and "resurfac" in s.adjunct and "bridg" not in s.adjunct
    s = analyse("My passport expires in March 2031, so no renewal needed yet.")
    assert s.negated and s.negated_scope == {"renew", "need"}
    s = analyse("The project was cancelled last week.")  # a negation that reaches back
    assert "project" in s.negated_scope
    assert analyse("Marcus's salary band is L5.").names == {"marcus"}
    assert analyse("The shop sent the parcel.").words == analyse("The shop will send the parcel."
                                                                 ).words


def test_the_decision_names_its_rule_and_the_values_that_changed() -> None:
    d = compare(analyse("The lab meeting moved to room C3."),
                analyse("The lab meeting is in room B12."), 0.8)
    assert d is not None and d.kind == "update"
    assert d.changed == {"from": ["b12"], "to": ["c3"]} and "changed value" in d.rule


def test_conversation_turns_need_a_word_of_change(embedder) -> None:  # type: ignore[no-untyped-def]
    """People talk about many things of one kind without taking anything back."""
    assert decide_pair(embedder, "I love painting landscapes.", "I love painting portraits.",
                       semantic_type="dialog_turn") == "independent"
    assert decide_pair(embedder, "My favourite programming language is Python.",
                       "My favourite programming language is now Rust.",
                       semantic_type="dialog_turn") == "update"


def test_other_owners_and_undated_parts_of_one_file_never_supersede(embedder) -> None:  # type: ignore[no-untyped-def]
    a = mem("The lab meeting is in room B12.", day(1), owner="ann")
    b = mem("The lab meeting moved to room C3.", day(5), owner="bob")
    va, vb = embedder.encode([a.render(), b.render()])
    assert decide(b, [(a, float(va @ vb))]).kind == "independent"
    t = day(1)
    c = Memory.create("work_mem is 32MB for the reports database.", now=t, source_file="db.md")
    d = Memory.create("work_mem is 64MB for the reports database.", now=t, source_file="db.md")
    vc, vd = embedder.encode([c.render(), d.render()])
    assert decide(d, [(c, float(vc @ vd))]).kind == "independent"


def _vectors(embedder, mems: list[Memory]) -> np.ndarray:  # type: ignore[no-untyped-def]
    return embedder.encode([m.render() for m in mems])


def test_revised_twice_makes_a_chain_and_valid_time(embedder) -> None:  # type: ignore[no-untyped-def]
    mems = [mem("The beta release deadline is 14 March.", day(10)),
            mem("Design reviews happen on Thursdays.", day(11)),
            mem("The beta release deadline slipped to 28 March.", day(20, 2)),
            mem("The beta release deadline was pushed again, to 11 April.", day(15, 3))]
    _, linked, counts = evolve(mems, _vectors(embedder, mems))
    assert (counts.updates, counts.duplicates, counts.independent) == (2, 0, 2)
    by = {m.id: m for m in linked}
    a, b, c = (by[mems[i].id] for i in (0, 2, 3))
    assert a.superseded_by == b.id and b.superseded_by == c.id and c.current
    assert a.valid_to == b.valid_from == day(20, 2) and b.valid_to == day(15, 3)
    assert [m.id for m in chain(a.id, by)] == [a.id, b.id, c.id]
    assert not link_problems(linked)
    assert View(as_of=day(1, 3)).admits(b) and not View(as_of=day(1, 3)).admits(c)
    assert not View().admits(a) and View(history=True).admits(a)


def test_out_of_order_revisions_go_into_the_past(embedder) -> None:  # type: ignore[no-untyped-def]
    """A statement older than the current memory never replaces it (incremental writes)."""
    v1 = mem("The API freeze is on 30 June.", day(1, 6))
    v3 = mem("The API freeze was moved to 15 July.", day(20, 6))
    v2 = mem("The API freeze moved to 7 July.", day(10, 6))
    ledger = Ledger()
    for m, v in zip([v1, v3, v2], _vectors(embedder, [v1, v3, v2]), strict=True):
        ledger.offer(m, v)
    a, c, b = (ledger.memories[m.id] for m in (v1, v3, v2))
    assert c.current and a.superseded_by == b.id and b.superseded_by == c.id
    assert (a.valid_to, b.valid_to) == (day(10, 6), day(20, 6))
    assert ledger.counts.into_history == 1 and not link_problems(ledger.memories.values())


def test_a_tie_in_time_is_won_by_the_later_write(embedder) -> None:  # type: ignore[no-untyped-def]
    t = day(3)
    a = mem("The lab meeting is in room B12.", t)
    b = mem("The lab meeting moved to room C3.", t)
    _, linked, _ = evolve([a, b], _vectors(embedder, [a, b]))
    old = next(m for m in linked if m.id == a.id)
    assert old.superseded_by == b.id and old.valid_to == old.valid_from  # an empty interval


def test_bad_links_and_times_are_refused() -> None:
    t0, t1 = day(1), day(2)
    with pytest.raises(ValueError, match="before valid_from"):
        Memory.create("x", now=t1, event_time=t1, valid_to=t0)
    a = mem("a fact", t0)
    b = mem("a new fact", t1)
    cyc_a = dataclasses.replace(a, supersedes=b.id, superseded_by=b.id, valid_to=t1)
    cyc_b = dataclasses.replace(b, supersedes=a.id, superseded_by=a.id, valid_to=t1)
    assert any("cycle" in p for p in link_problems([cyc_a, cyc_b]))
    dangling = dataclasses.replace(b, supersedes="nope")
    assert link_problems([a, dangling]) == [f"memory {b.id}: supersedes nope, which is not a "
                                            "memory here"]
    with pytest.raises(UsageError, match="not a date"):
        parse_as_of("last tuesday")
    assert parse_as_of("2026-03") == datetime(2026, 3, 31, 23, 59, 59, 999999,
                                              tzinfo=timezone.utc)


def _stream(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text("".join(json.dumps({"content": t, "event_time": d + "T09:00:00Z"}) + "\n"
                            for d, t in rows))
    return path


UPDATES = [("2026-01-12", "The weekly lab meeting is in room B12."),
           ("2026-01-13", "Our printer needs toner every month."),
           ("2026-02-02", "The weekly lab meeting moved to room C3."),
           ("2026-02-03", "The weekly lab meeting moved to room C3.")]


def test_pack_search_as_of_history_and_the_history_command(tmp_path: Path) -> None:
    cube = tmp_path / "t.memcube"
    dry = memos("pack", _stream(tmp_path / "s.jsonl", UPDATES), "-o", cube, "--dry-run").stdout
    assert "1 duplicate, 1 update, 2 new" in dry and "dry run" in dry and not cube.exists()
    out = memos("pack", tmp_path / "s.jsonl", "-o", cube).stdout
    assert "1 duplicate, 1 update, 2 new" in out
    c = open_cube(cube)
    assert verify(c).ok and len(c.memories) == 3
    old = next(m for m in c.memories if "B12" in m.content)
    new = next(m for m in c.memories if "C3" in m.content)
    assert old.superseded_by == new.id and new.supersession["rule"].startswith("changed value")
    assert "3 (2 current, 1 past" in memos("inspect", cube).stdout

    def top(*extra: str) -> list[str]:
        r = json.loads(memos("search", cube, "where is the lab meeting", "-k", "3", "--json",
                             *extra).stdout)
        return [h["content"] for h in r["results"]]

    assert not any("B12" in t for t in top())  # the present only
    assert "B12" in top("--as-of", "2026-01-20")[0]
    assert "C3" in top("--as-of", "2026-02-02")[0]
    assert any("B12" in t for t in top("--history"))
    shown = memos("search", cube, "where is the lab meeting", "--history").stdout
    assert f"superseded on 2026-02-02 by {new.id[:8]}" in shown
    memos("search", cube, "lab", "--as-of", "soon", code=2)
    hist = json.loads(memos("history", old.id[:8], cube, "--json").stdout)
    assert [v["id"] for v in hist["versions"]] == [old.id, new.id]
    assert hist["current"] is False and hist["versions"][1]["supersession"]["from"] == ["b12"]
    table = memos("history", new.id, cube).stdout
    assert "b12 -> c3" in table and "current" in table


def test_no_supersede_keeps_every_statement_current(tmp_path: Path) -> None:
    cube = tmp_path / "t.memcube"
    memos("pack", _stream(tmp_path / "s.jsonl", UPDATES), "-o", cube, "--no-supersede")
    assert all(m.current for m in open_cube(cube).memories)


def test_editing_a_markdown_source_makes_versions_not_duplicates(tmp_path: Path) -> None:
    notes = tmp_path / "notes"
    notes.mkdir()
    db = notes / "db.md"
    db.write_text("# Settings\n\nThe database setting work_mem is 32MB.\n\n"
                  "Backups run nightly at 02:00.\n\nThe old replica is in Frankfurt.\n")
    cube = tmp_path / "n.memcube"
    memos("pack", notes, "-o", cube)
    db.write_text("# Settings\n\nThe database setting work_mem is 64MB.\n\n"
                  "Backups run nightly at 02:00.\n")
    dry = memos("add", cube, db, "--dry-run").stdout
    assert "update" in dry and "1 would be removed" in dry
    assert len(open_cube(cube).memories) == 3  # nothing written
    rep = json.loads(memos("add", cube, db, "--json").stdout)
    assert (rep["updates"], rep["removed"], rep["added"]) == (1, 1, 0)
    c = open_cube(cube)
    assert verify(c).ok
    assert {m.source_file for m in c.memories} == {"notes/db.md"}  # as pack recorded it
    current = sorted(m.content for m in c.memories if m.current)
    assert current == ["Backups run nightly at 02:00.", "The database setting work_mem is 64MB."]
    old = next(m for m in c.memories if "32MB" in m.content)
    assert old.superseded_by is not None and old.valid_to is not None
    assert c.by_id[old.superseded_by].supersession["rule"] == "source edit"
    again = json.loads(memos("add", cube, db, "--json").stdout)
    assert again["added"] == again["updates"] == 0  # a second add of the same file: nothing


def test_vault_load_supersedes_audits_and_unsupersede_undoes(tmp_path: Path) -> None:
    vault = tmp_path / "vault"
    first = _stream(tmp_path / "a.jsonl", UPDATES[:2])
    second = _stream(tmp_path / "b.jsonl", UPDATES[2:3])
    memos("load", first, "--vault", vault, "--as", "ann")
    dry = memos("load", second, "--vault", vault, "--as", "ann", "--dry-run").stdout
    assert "update" in dry and "dry run" in dry
    from memos_cli.vault import Vault

    assert all(m.current for m in Vault(vault).state().memories)
    rep = json.loads(memos("load", second, "--vault", vault, "--as", "ann", "--json").stdout)
    assert rep["updates"] == 1 and rep["decisions"][0]["kind"] == "update"
    mems = {m.content: m for m in Vault(vault).state().memories}
    old, new = mems[UPDATES[0][1]], mems[UPDATES[2][1]]
    assert old.superseded_by == new.id and old.valid_to is not None
    hits = json.loads(memos("search", "lab meeting room", "--vault", vault, "--as", "ann",
                            "--json").stdout)["results"]
    assert old.id not in [h["id"] for h in hits] and hits[0]["id"] == new.id
    memos("vault", "unsupersede", old.id[:8], "--vault", vault, "--as", "bob", code=2)
    memos("vault", "unsupersede", new.id, "--vault", vault, "--as", "ann")
    mems = {m.id: m for m in Vault(vault).state().memories}
    assert mems[old.id].current and mems[new.id].supersedes is None
    log = [r for r in Vault(vault).read_log() if r["op"] == "unsupersede"]
    assert log and log[0]["memory_ids"] == [old.id, new.id] and log[0]["user"] == "ann"
    hist = json.loads(memos("history", old.id, "--vault", vault, "--as", "ann",
                            "--json").stdout)
    assert hist["events"][0]["op"] == "unsupersede"


def test_dump_and_reimport_carry_the_validity_fields(tmp_path: Path) -> None:
    cube = tmp_path / "t.memcube"
    memos("pack", _stream(tmp_path / "s.jsonl", UPDATES), "-o", cube)
    memos("dump", cube, "-o", tmp_path / "d.jsonl", "--as", "nobody", code=2)  # nothing
    memos("dump", cube, "-o", tmp_path / "d.jsonl")
    rows = [json.loads(x) for x in (tmp_path / "d.jsonl").read_text().splitlines()]
    assert sum("superseded_by" in r for r in rows) == 1
    again = tmp_path / "again.memcube"
    memos("pack", tmp_path / "d.jsonl", "-o", again, "--no-supersede")
    assert [m.to_dict() for m in open_cube(again).memories] == \
        [m.to_dict() for m in open_cube(cube).memories]


def test_a_cube_with_broken_links_is_refused(tmp_path: Path) -> None:
    src = tmp_path / "bad.jsonl"
    src.write_text(json.dumps({"content": "a", "supersedes": "ghost"}) + "\n")
    r = memos("pack", src, "-o", tmp_path / "x.memcube", code=3)
    assert "supersedes ghost" in r.output and len(r.output.strip().splitlines()) == 1
    src.write_text(json.dumps({"content": "a", "event_time": "2026-01-02T00:00:00Z",
                               "valid_to": "2026-01-01T00:00:00Z"}) + "\n")
    r = memos("pack", src, "-o", tmp_path / "x.memcube", code=3)
    assert "before valid_from" in r.output


def test_verify_refuses_links_that_disagree(tmp_path: Path) -> None:
    from memos_cli.lifecycle.rewrite import write_plaintext_tier

    cube = tmp_path / "t.memcube"
    memos("pack", _stream(tmp_path / "s.jsonl", UPDATES), "-o", cube)
    c = open_cube(cube)
    mems = [dataclasses.replace(m, superseded_by=None) if m.superseded_by else m
            for m in c.memories]  # digests right, links wrong: a writer's bug
    write_plaintext_tier(c, mems, c.index().vectors([m.id for m in mems]), None)
    with pytest.raises(IntegrityError, match=r"supersession links: .* does not name it"):
        verify(open_cube(cube))


def test_a_question_that_names_a_period_sees_what_was_valid_then(tmp_path: Path) -> None:
    from memos_cli.validity import named_period

    now = datetime(2026, 3, 15, tzinfo=timezone.utc)
    feb = named_period("What was the budget in February 2026?", now)
    assert feb == (datetime(2026, 2, 1, tzinfo=timezone.utc),
                   datetime(2026, 2, 28, 23, 59, 59, 999999, tzinfo=timezone.utc))
    week = named_period("Where was the lab meeting last week?", now)
    assert week is not None and week[0] == datetime(2026, 3, 2, tzinfo=timezone.utc)
    for q in ("What is the rent now?", "When is Tom's birthday?", "What may happen?"):
        assert named_period(q, now) is None
    cube = tmp_path / "t.memcube"
    memos("pack", _stream(tmp_path / "s.jsonl", UPDATES), "-o", cube)

    def first(query: str, *extra: str) -> str:
        r = json.loads(memos("search", cube, query, "-k", "1", "--json", *extra).stdout)
        return r["results"][0]["content"]

    assert "B12" in first("where was the lab meeting in January 2026")
    assert "C3" in first("where is the lab meeting")
    assert "B12" in first("where was the lab meeting last month", "--now", "2026-02-01")
    assert "C3" in first("where was the lab meeting in January 2026", "--no-dates")


def test_removing_a_memory_mends_its_chain(tmp_path: Path) -> None:
    """rm-memories and vault rm: the memory before a removed one is current again."""
    cube = tmp_path / "t.memcube"
    memos("pack", _stream(tmp_path / "s.jsonl", UPDATES), "-o", cube)
    new = next(m for m in open_cube(cube).memories if "C3" in m.content)
    memos("rm-memories", cube, "--ids", new.id)
    c = open_cube(cube)
    assert verify(c).ok and all(m.current for m in c.memories)
    vault = tmp_path / "vault"
    memos("load", _stream(tmp_path / "a.jsonl", UPDATES[:2]), "--vault", vault, "--as", "ann")
    rep = json.loads(memos("load", _stream(tmp_path / "b.jsonl", UPDATES[2:3]), "--vault",
                           vault, "--as", "ann", "--json").stdout)
    from memos_cli.vault import Vault

    assert not all(m.current for m in Vault(vault).state().memories)
    memos("vault", "rm", rep["cube_id"], "--vault", vault, "--as", "ann")
    assert all(m.current and m.supersedes is None for m in Vault(vault).state().memories)


def test_run_as_of_on_the_real_model(tmp_path: Path) -> None:
    """The answer's memories come from the time asked about (SmolLM2 and MiniLM)."""
    cube = tmp_path / "t.memcube"
    memos("pack", _stream(tmp_path / "s.jsonl", UPDATES), "-o", cube)
    then = json.loads(memos("run", cube, "Where is the weekly lab meeting?", "--tier", "text",
                            "-k", "2", "--as-of", "2026-01-20", "--max-new-tokens", "8",
                            "--json").stdout)
    assert any("B12" in m["content"] for m in then["memories"])
    assert not any("C3" in m["content"] for m in then["memories"])
    now = json.loads(memos("run", cube, "Where is the weekly lab meeting?", "--tier", "text",
                           "-k", "2", "--max-new-tokens", "8", "--json").stdout)
    assert any("C3" in m["content"] for m in now["memories"])
    assert not any("B12" in m["content"] for m in now["memories"])
