"""MemScheduler: plans per policy, the chunk store, `memos schedule`, `run --tier auto`, cold
archiving, and refusals of bad input (tiny random Llama; the real model in
tests/test_e2e_real_model.py)."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

from memos_cli.cube import open_cube
from memos_cli.memory import Memory
from memos_cli.models import chat
from memos_cli.scheduler import policy as scheduler
from memos_cli.scheduler.auto import answer_auto, store_sources
from memos_cli.scheduler.chunks import ChunkStore
from memos_cli.scheduler.usage import Indicators, Use, cube_store
from memos_cli.tiers.convert_chunks import convert_to_chunks
from memos_cli.tiers.plaintext import answer_memories, retrieve
from tests.conftest import invoke as memos
from tests.conftest import make_tiny_llama

NOW = datetime(2026, 6, 1, tzinfo=timezone.utc)
Q = "Who owns the vision stack?"


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEMOS_HOME", str(tmp_path / "home"))
    return tmp_path / "home"


@pytest.fixture(scope="module")
def tiny(tiny_llama: Path) -> chat.ChatModel:
    return chat.load(str(tiny_llama))


def ind(mid: str, *, n: int = 1, last: float = 0.0, first: float | None = None,
        score: float = 1.0, rank: int = 1, text: int = 0, h: str = "sha256:x") -> Indicators:
    """Indicators with the last use ``last`` days before NOW."""
    lu = NOW - timedelta(days=last)
    fu = NOW - timedelta(days=first if first is not None else last)
    return Indicators(mid, n, n, fu, lu, score, rank, text, h, True, n)


def mem(i: int, days_old: float = 1.0) -> Memory:
    return Memory.create(f"memory number {i}", created_at=NOW - timedelta(days=days_old), now=NOW)


def test_policies_rank_differently() -> None:
    a, b, c = mem(1), mem(2), mem(3)
    usage = {a.id: ind(a.id, n=9, last=20, score=0.2, rank=5),
             b.id: ind(b.id, n=2, last=0.1, score=1.9, rank=3),
             c.id: ind(c.id, n=5, last=3, score=1.5, rank=1, text=4)}
    top = {}
    for policy in scheduler.POLICIES:
        p = scheduler.plan([a, b, c], usage, policy=policy, budget=100, chunk_bytes=lambda m: 40,
                           stored={}, key_of=lambda m: m.id, now=NOW)
        top[policy] = [d.memory_id for d in p.of("promote")]
        assert len(top[policy]) == 2 and len(p.of("skip")) == 1
    assert top["decay"] == [b.id, c.id]
    assert top["lfu"] == [a.id, c.id]
    assert top["lru"] == [b.id, c.id]
    assert top["memos"] == [c.id, b.id]  # latest rank dominates, no recency


def test_plan_keeps_evicts_and_lists_lora_and_cold() -> None:
    a, b, fresh, old = mem(1), mem(2), mem(3), mem(4, days_old=90)
    usage = {a.id: ind(a.id, n=8, last=1, first=12, score=3.0, h=a.content_hash),
             b.id: ind(b.id, n=1, last=40, score=0.01)}
    stored = {a.id: 50, b.id: 50, "gone": 50}
    p = scheduler.plan([a, b, fresh, old], usage, policy="decay", budget=60,
                       chunk_bytes=lambda m: 50, stored=stored, key_of=lambda m: m.id, now=NOW)
    assert [d.memory_id for d in p.of("keep")] == [a.id]
    assert {d.key for d in p.of("evict")} == {b.id, "gone"}
    assert [d.memory_id for d in p.of("lora")] == [a.id]
    assert {d.memory_id for d in p.of("cold")} == {b.id, old.id}
    assert all(d.reason for d in p.decisions)
    assert "fell out of the budget" in next(d for d in p.of("evict") if d.key == b.id).reason
    with pytest.raises(ValueError, match="above 0"):
        scheduler.plan([a], usage, policy="decay", budget=0, chunk_bytes=len, stored={},
                       key_of=lambda m: m.id)
    with pytest.raises(ValueError, match="not one of"):
        scheduler.plan([a], usage, policy="fifo", budget=10, chunk_bytes=len, stored={},
                       key_of=lambda m: m.id)


def test_search_and_run_record_usage(home: Path, cube_copy: Path, tiny_llama: Path) -> None:
    cube_id = open_cube(cube_copy).manifest.cube_id
    memos("search", cube_copy, "vision stack", "-k", "3")
    memos("search", cube_copy, "vision stack", "-k", "3", "--json")
    memos("run", cube_copy, Q, "-k", "2", "--model", tiny_llama, "--max-new-tokens", "3")
    usage = cube_store(cube_id).indicators()
    top = max(usage.values(), key=lambda u: u.accesses)
    assert top.retrievals == 3 and top.uses == 1 and top.last_rank == 1
    assert sum(u.uses for u in usage.values()) == 2
    data = json.loads(memos("inspect", cube_copy, "--usage", "--json").stdout)
    assert {u["memory_id"] for u in data["usage"]} == set(usage)
    assert "usage of" in memos("inspect", cube_copy, "--usage").stdout


def test_schedule_refuses_bad_input(home: Path, cube_copy: Path, tiny_llama: Path) -> None:
    for budget in ("0", "-5MB", "lots", "0%", "150%"):
        r = memos("schedule", cube_copy, "--kv-budget", budget, "--model", tiny_llama, code=2)
        assert "--kv-budget" in r.output and len(r.output.strip().splitlines()) == 1
    r = memos("schedule", cube_copy, "--kv-budget", "25%", "--policy", "fifo", code=2)
    assert "--policy" in r.output
    r = memos("schedule", cube_copy, "--kv-budget", "25%", "--model", tiny_llama)
    assert "no usage recorded yet" in r.stdout and not (home / "chunks").exists()


def test_schedule_fills_and_empties_the_store(home: Path, cube_copy: Path, tiny_llama: Path,
                                              tiny: chat.ChatModel, embedder) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(cube_copy)
    hits = retrieve(cube, embedder, Q, 4)
    store = cube_store(cube.manifest.cube_id)
    store.record("search", [Use(r.memory.id, r.memory.content_hash, r.rank) for r in hits])
    store.record("search", [Use(hits[0].memory.id, hits[0].memory.content_hash, 1)])
    dry = json.loads(memos("schedule", cube_copy, "--kv-budget", "100%", "--model", tiny_llama,
                           "--dry-run", "--json").stdout)
    assert dry["counts"]["promote"] == 4 and "evict" not in dry["counts"]
    assert dry["counts"]["cold"] == 14 and not dry["applied"]  # fixture memories date from 2026-03
    assert not (home / "chunks").exists()
    r = memos("schedule", cube_copy, "--kv-budget", "100%", "--model", tiny_llama)
    assert r.stdout.count("promote") == 4 and "4 computed" in r.stdout
    (s,) = ChunkStore().sets()
    assert set(s.stored()) == {h.memory.content_hash.removeprefix("sha256:") for h in hits}
    assert s.prefix.is_file() and s.storage_dtype == "float16"
    # --tier auto composes the stored chunks; with everything recomputed it is the text tier
    a = answer_auto(tiny, Q, hits, store_sources(tiny), ratio=1.0, max_new_tokens=6)
    text = answer_memories(tiny, [h.memory for h in hits], Q, max_new_tokens=6)
    assert (a.details["hits"], a.details["misses"]) == (4, 0) and a.answer == text.text
    out = json.loads(memos("run", cube_copy, Q, "-k", "4", "--model", tiny_llama,
                           "--max-new-tokens", "4", "--json").stdout)
    assert out["tier"] == "auto" and out["details"]["hits"] == 4
    # a budget for one chunk keeps the hottest and evicts the others
    one = s.prefix.stat().st_size + max(s.stored().values()) + 1
    data = json.loads(memos("schedule", cube_copy, "--kv-budget", one, "--model", tiny_llama,
                            "--json").stdout)
    assert data["counts"]["keep"] == 1 and data["counts"]["evict"] == 3
    assert list(s.stored()) == [hits[0].memory.content_hash.removeprefix("sha256:")]
    assert data["stored_after"] < data["stored_before"]


def test_auto_without_chunks_is_the_text_tier(home: Path, cube_copy: Path,
                                              tiny: chat.ChatModel, embedder) -> None:  # type: ignore[no-untyped-def]
    hits = retrieve(open_cube(cube_copy), embedder, Q, 3)
    a = answer_auto(tiny, Q, hits, store_sources(tiny), max_new_tokens=6)
    assert a.details["hits"] == 0 and a.tier == "auto"
    assert a.answer == answer_memories(tiny, [h.memory for h in hits], Q, max_new_tokens=6).text


def test_chunks_shipped_in_a_cube_are_copied(home: Path, cube_copy: Path, tiny_llama: Path,
                                             tiny: chat.ChatModel, embedder) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(cube_copy)
    hits = retrieve(cube, embedder, Q, 3)
    convert_to_chunks(cube_copy, tiny, [h.memory for h in hits], storage_dtype="float16")
    cube = open_cube(cube_copy)
    cube_store(cube.manifest.cube_id).record(
        "search", [Use(h.memory.id, h.memory.content_hash, h.rank) for h in hits])
    data = json.loads(memos("schedule", cube_copy, "--kv-budget", "100%", "--model", tiny_llama,
                            "--json").stdout)
    assert (data["reused"], data["computed"]) == (3, 0)
    (s,) = ChunkStore().sets()
    (cs,) = cube.chunk_sets
    assert s.id == cs.id  # the same set id and file names as in the cube
    for c in cs.chunks:
        assert s.chunk(c.key).read_bytes() == (cube.path / c.path).read_bytes()


def test_other_model_and_damaged_chunks(home: Path, cube_copy: Path, tiny_llama: Path,
                                        tmp_path: Path, tiny: chat.ChatModel, embedder) -> None:  # type: ignore[no-untyped-def]
    cube = open_cube(cube_copy)
    hits = retrieve(cube, embedder, Q, 2)
    cube_store(cube.manifest.cube_id).record(
        "search", [Use(h.memory.id, h.memory.content_hash, h.rank) for h in hits])
    memos("schedule", cube_copy, "--kv-budget", "100%", "--model", tiny_llama)
    (s,) = ChunkStore().sets()
    before = {k: s.chunk(k).read_bytes() for k in s.stored()}
    other = make_tiny_llama(tmp_path / "other", seed=1)
    r = memos("schedule", cube_copy, "--kv-budget", "100%", "--model", other)
    assert "another model" in r.output
    assert {k: s.chunk(k).read_bytes() for k in s.stored()} == before  # left as they were
    other_lm = chat.load(str(other))
    a = answer_auto(other_lm, Q, hits, store_sources(other_lm), max_new_tokens=3)
    assert a.details["chunk_sources"] == {f"store:{other_set(other_lm)}": 2}
    # a damaged stored chunk is prefilled as text with a warning, not a failed run
    key = next(iter(before))
    s.chunk(key).write_bytes(b"garbage")
    b = answer_auto(tiny, Q, hits, store_sources(tiny), max_new_tokens=3)
    assert b.details["misses"] == 1 and "prefilled as text" in b.details["warnings"][0]


def other_set(lm: chat.ChatModel) -> str:
    (s,) = [x for x in ChunkStore().sets() if x.model_fingerprint_sha256 == fp(lm)]
    return s.id


def fp(lm: chat.ChatModel) -> str:
    from memos_cli.models.fingerprint import fingerprint_digest

    return fingerprint_digest(lm.fingerprint())


def test_vault_usage_cold_archive_and_restore(home: Path, cube_copy: Path, tmp_path: Path,
                                              embedder) -> None:  # type: ignore[no-untyped-def]
    v = tmp_path / "vault"
    memos("load", cube_copy, "--vault", v, "--allow-unsigned")
    memos("search", "vision stack", "--vault", v, "-k", "2")
    ls = json.loads(memos("vault", "ls", "--vault", v, "--usage", "--json").stdout)
    assert ls["cubes"][0]["usage"]["retrievals"] == 2
    assert ls["cubes"][0]["usage"]["memories_used"] == 2
    out = tmp_path / "x.jsonl"
    memos("dump", "--vault", v, "-o", out, "--with-usage")
    rows = [json.loads(x) for x in (tmp_path / "x.jsonl.usage.jsonl").read_text().splitlines()]
    assert len(rows) == 2 and {"retrievals", "uses", "last_use", "score"} <= set(rows[0])
    memos("dump", "--vault", v, "-o", tmp_path / "x.memcube", "--format", "memcube",
          "--with-usage")
    inside = [json.loads(x) for x in
              (tmp_path / "x.memcube" / "usage.jsonl").read_text().splitlines()]
    assert sorted((u["memory_id"], u["retrievals"]) for u in inside) == sorted(
        (u["memory_id"], u["retrievals"]) for u in rows)
    memos("verify", tmp_path / "x.memcube")  # the usage file is part of the cube's digests
    n = len(open_cube(cube_copy).memories)
    # the fixture's memories were created in 2026 (pack time), the used ones just now
    data = json.loads(memos("vault", "gc", "--vault", v, "--cold", "--cold-days", "0.01",
                            "--json").stdout)
    assert len(data["archived"]) == n - 2
    hits = json.loads(memos("search", "budget", "--vault", v, "--json").stdout)["results"]
    assert {h["id"] for h in hits}.isdisjoint(data["archived"])
    memos("vault", "restore", *data["archived"][:3], "--vault", v)
    assert json.loads(memos("vault", "ls", "--vault", v, "--json").stdout)["cubes"][0][
        "memories"] == n - len(data["archived"]) + 3
    memos("vault", "restore", "no-such-id", "--vault", v, code=2)


def test_damaged_usage_store_on_the_command_line(home: Path, cube_copy: Path,
                                                 tiny_llama: Path) -> None:
    cube_id = open_cube(cube_copy).manifest.cube_id
    memos("search", cube_copy, "vision stack")
    for f in cube_store(cube_id).path.rglob("*.manifest"):
        f.write_bytes(b"damaged")
    r = memos("schedule", cube_copy, "--kv-budget", "25%", "--model", tiny_llama, code=6)
    assert "unreadable usage store" in r.output and len(r.output.strip().splitlines()) == 1
    assert "Traceback" not in r.output
    r = memos("search", cube_copy, "vision stack", "--json")  # the search itself goes on
    assert json.loads(r.stdout)["results"] and "usage not recorded" in r.stderr
    memos("inspect", cube_copy, "--usage", code=6)


def test_vault_without_usage_does_nothing(home: Path, cube_copy: Path, tmp_path: Path,
                                          tiny_llama: Path) -> None:
    v = tmp_path / "vault"
    memos("load", cube_copy, "--vault", v, "--allow-unsigned")
    data = json.loads(memos("schedule", "--vault", v, "--kv-budget", "10MB", "--model",
                            tiny_llama, "--json").stdout)
    assert not data["applied"] and "no usage recorded yet" in data["reason"]
    assert not (home / "chunks").exists()


def test_run_over_a_vault_takes_the_question_alone(home: Path, cube_copy: Path, tmp_path: Path,
                                                   tiny_llama: Path) -> None:
    v = tmp_path / "vault"
    memos("load", cube_copy, "--vault", v, "--allow-unsigned")
    out = json.loads(memos("run", Q, "--vault", v, "--model", tiny_llama, "-k", "2",
                           "--max-new-tokens", "2", "--json").stdout)
    assert out["tier"] == "auto" and len(out["memories"]) == 2
    r = memos("run", cube_copy, Q, "--vault", v, "--model", tiny_llama, code=2)
    assert "--vault takes the question alone" in r.output
    ls = json.loads(memos("vault", "ls", "--vault", v, "--usage", "--json").stdout)
    assert ls["cubes"][0]["usage"]["uses"] == 2
