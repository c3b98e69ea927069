"""Precedence at read time (memos_cli.lifecycle.precedence, spec §6.3): what comes first among
the memories a search found, on the real embedder and real cubes."""

from __future__ import annotations

import json
from datetime import datetime, timezone
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.api.session import Session
from memos_cli.cli.app import app
from memos_cli.cube import open_cube
from memos_cli.lifecycle.precedence import moves, reason, takes_precedence
from memos_cli.lifecycle.statement import analyse
from memos_cli.memory import Memory
from memos_cli.tiers.plaintext import Retrieved, precede
from memos_cli.validity import View

runner = CliRunner()


def mem(text: str, d: int, **kw) -> Memory:  # type: ignore[no-untyped-def]
    when = datetime(2026, 1, d, 9, tzinfo=timezone.utc)
    return Memory.create(text, now=when, event_time=when, **kw)


LAB = "Where is the weekly lab meeting?"


@pytest.mark.parametrize("question,old,new,first", [
    # a later statement that answers the question as fully
    (LAB, "The weekly lab meeting is in room B12.",
     "The weekly lab meeting is held in room C3 since the move.", True),
    # the question's light verb says nothing of the attribute; a hyphenated word's parts count
    ("How much dry food does the dog get?", "The dog gets 300 grams of dry food a day.",
     "The vet said to cut the dog's dry food to 250 grams a day.", True),
    ("Who is on call this week?", "Priya is the on-call engineer this week.",
     "Tomasz swapped shifts with Priya, so he is on call this week.", True),
    # the subject the question names is not the newer statement's
    ("When does Mum's flight land?", "Mum's flight lands at 16:20.",
     "Dad's flight lands at 18:05.", False),
    # another attribute of the subject: a word of the question the newer one lacks
    ("How many people does the conference room seat?",
     "The conference room seats 12 people.",
     "The conference room is booked on Monday from 9 to 11.", False),
    # too little of the question in common to say they answer the same question
    ("What do I drink in the morning?",
     "I switched to black coffee in the mornings instead of green tea.",
     "These days I run in the early mornings.", False),
    # a newer question, hypothetical or opinion is not a value
    (LAB, "The weekly lab meeting is in room B12.",
     "Is the weekly lab meeting still in room B12?", False),
    (LAB, "The weekly lab meeting is in room B12.",
     "Karen thinks the weekly lab meeting should be in room C3.", False),
    # a value of another kind: a budget does not say where the dinner is
    ("Where is the team dinner?", "The team dinner is at the Italian place on Friday.",
     "The team dinner has a budget of 50 per person.", False),
])
def test_which_statement_comes_first(question: str, old: str, new: str, first: bool) -> None:
    assert takes_precedence(analyse(question), mem(new, 9), mem(old, 1)) is first


def test_an_assertion_comes_before_a_hypothetical_whatever_their_dates() -> None:
    q = analyse("What is my amlodipine dose?")
    fact = mem("My amlodipine dose is 5 mg a day.", 1)
    maybe = mem("If my blood pressure stays high, the amlodipine dose would go up to 10 mg.", 9)
    assert takes_precedence(q, fact, maybe) and not takes_precedence(q, maybe, fact)
    assert moves("What is my amlodipine dose?", [maybe, fact]) == [(1, 0), (0, None)]
    assert reason(maybe) == "that one is a hypothetical or an opinion"
    pool = analyse("When does the swimming pool close?")  # a question's values are no answer
    asked = mem("Does the swimming pool close earlier on Sundays?", 9)
    assert takes_precedence(pool, mem("The swimming pool closes at 9 pm.", 1), asked)


def test_turns_other_users_and_one_document_keep_their_order() -> None:
    q = analyse(LAB)
    old, new = "The weekly lab meeting is in room B12.", "The weekly lab meeting is in room C3."
    turn = {"semantic_type": "dialog_turn"}
    assert not takes_precedence(q, mem(new, 9, **turn), mem(old, 1, **turn))
    assert takes_precedence(q, mem("The weekly lab meeting moved to room C3.", 9, **turn),
                            mem(old, 1, **turn))  # a turn with a word of change
    assert not takes_precedence(q, mem(new, 9, owner="ana"), mem(old, 1, owner="ben"))
    page = [Memory.create(t, now=datetime(2026, 1, d, tzinfo=timezone.utc),
                          source_file="notes.md") for t, d in ((old, 1), (new, 9))]
    assert not takes_precedence(q, page[1], page[0])
    assert not takes_precedence(q, mem(old, 9), mem(old, 1))  # the same text


def test_a_chain_of_revisions_comes_newest_first() -> None:
    mems = [mem("The weekly lab meeting is in room B12.", 1),
            mem("The weekly lab meeting is in room C3.", 5),
            mem("Our printer needs toner every month.", 3),
            mem("The weekly lab meeting is in room D7 now.", 9)]
    # D7 went above C3, which had gone above B12; the printer note did not move
    assert moves(LAB, mems) == [(3, 1), (1, 0), (0, None), (2, None)]


def test_search_puts_the_later_statement_first_on_a_cube_without_supersession(
        tmp_path: Path, embedder) -> None:  # type: ignore[no-untyped-def]
    src = tmp_path / "s.jsonl"
    src.write_text("".join(json.dumps({"content": t, "event_time": d + "T09:00:00Z"}) + "\n"
                           for d, t in (
        ("2026-01-12", "The weekly lab meeting is in room B12."),
        ("2026-01-13", "Our printer needs toner every month."),
        ("2026-02-02", "The weekly lab meeting is held in room C3 since the move."))))
    cube = tmp_path / "t.memcube"
    r = runner.invoke(app, ["pack", str(src), "-o", str(cube), "--no-supersede"])
    assert r.exit_code == 0, r.output
    assert all(m.current for m in open_cube(cube).memories)
    r = runner.invoke(app, ["search", str(cube), LAB, "-k", "1", "--json"])
    assert r.exit_code == 0, r.output
    hit = json.loads(r.stdout)["results"][0]
    assert "C3" in hit["content"] and hit["rank"] == 1
    b12 = next(m for m in open_cube(cube).memories if "B12" in m.content)
    assert hit["precedes"] == {"id": b12.id, "reason": "a later statement"}
    shown = runner.invoke(app, ["search", str(cube), LAB, "-k", "2"]).stdout
    assert f"ranked above {b12.id[:8]}: a later statement" in shown
    session = Session([open_cube(cube)], embedder=embedder)
    raw = session.search(LAB, 2, view=View(precedence=False)).hits
    assert "B12" in raw[0].memory.content  # similarity alone ranks the older one first
    moved = session.search(LAB, 2).hits
    assert [h.memory.id for h in moved] == [raw[1].memory.id, raw[0].memory.id]
    assert moved[0].score < moved[1].score  # the fused scores are kept, the order is not


def test_precedence_orders_the_pool_and_never_changes_which_memories_it_holds() -> None:
    filler = [mem(f"Note {n}: the printer on floor {n} needs toner.", 2) for n in range(5)]
    old = mem("The weekly lab meeting is in room B12.", 1)
    new = mem("The weekly lab meeting is in room C3.", 9)
    found = [Retrieved(m, 1.0 - n / 10, n + 1, None, None)
             for n, m in enumerate([old, *filler, new])]
    top5 = precede(LAB, found, 5)
    assert [r.memory.id for r in top5] == [m.id for m in [old, *filler[:4]]]  # C3 is 7th
    top1 = precede(LAB, found[:1] + found[-1:], 1)  # among the first 5 it comes first
    assert top1[0].memory.id == new.id and top1[0].rank == 1
    assert precede(LAB, found, 7)[0].memory.id == new.id
    assert [r.rank for r in precede(LAB, found, 7)] == list(range(1, 8))
    off = precede(LAB, found, 7, View(precedence=False))
    assert [r.memory.id for r in off] == [r.memory.id for r in found]
