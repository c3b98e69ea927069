"""Bounds on what one command may be asked to do (#36, resources): ``-k`` is capped, so a
forged million-memory cube cannot be asked for a million results."""

from __future__ import annotations

from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli.cli.app import app


@pytest.mark.parametrize("args", [["search", "{cube}", "tea", "-k", "1000000"],
                                  ["search", "{cube}", "tea", "-k", "0"],
                                  ["run", "{cube}", "tea?", "-k", "101"],
                                  ["eval", "{cube}", "-k", "1000000"]])
def test_k_is_bounded(packed_cube: Path, args: list[str]) -> None:
    r = CliRunner().invoke(app, [a.format(cube=packed_cube) for a in args])
    lines = [x for x in r.stderr.splitlines() if x.strip()]
    assert r.exit_code == 2, r.output
    assert len(lines) == 1 and "-k" in lines[0], r.stderr


def test_a_queries_file_is_streamed_not_held(tmp_path: Path) -> None:
    """100,000 queries are checked whole, then read one line at a time: building and walking
    the file holds no list of queries (it held all 100,000 before)."""
    import tracemalloc

    from memos_cli.cli.search import QueryFile

    qs = tmp_path / "q.jsonl"
    qs.write_text("".join(f'{{"query": "what about item {i} and the river?"}}\n'
                          for i in range(100_000)))
    tracemalloc.start()
    try:
        f = QueryFile(qs, 5)
        seen = sum(1 for _ in f)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert len(f) == seen == 100_000
    assert peak < 2 << 20, peak  # a list of 100,000 (id, query, k) held about 20 MB


def test_a_queries_file_changed_after_the_check_is_refused_while_read(tmp_path: Path) -> None:
    from memos_cli.cli.search import QueryFile
    from memos_cli.errors import SourceError

    qs = tmp_path / "q.jsonl"
    qs.write_text('{"query": "a"}\n{"query": "b"}\n')
    f = QueryFile(qs, 5)
    qs.write_text('{"query": "a"}\n{"query": 7}\n')
    with pytest.raises(SourceError, match="line 2"):
        list(f)


def test_many_queries_record_their_uses_in_few_commits(packed_cube: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    """`search --queries` counts every query's uses, in one usage-store commit per
    USES_PER_COMMIT queries (it was one writer thread and one Lance version per query)."""
    import lance

    from memos_cli.api import Session, session
    from memos_cli.scheduler.usage import cube_store

    monkeypatch.setattr(session, "USES_PER_COMMIT", 2)
    with Session([packed_cube]) as s:
        store = cube_store(s.cubes[0].manifest.cube_id)
        before_ind = store.indicators()
        before = len(lance.dataset(store._uri).versions()) if store.exists() else 1
        got = list(s.search_many([(i, "tea", 3) for i in range(5)]))
    assert len(got) == 5
    after = lance.dataset(store._uri).versions()
    assert len(after) - before == 3  # 2 + 2 + 1 queries
    retrievals = sum(u.retrievals for u in store.indicators().values()) - \
        sum(u.retrievals for u in before_ind.values())
    assert retrievals == 15


def test_a_file_removed_while_a_store_is_walked_is_not_a_link(tmp_path: Path) -> None:
    """A usage store walked while Lance renames its temporary files: a file that vanished is
    skipped, not reported (`search --queries` printed one warning per vanished file)."""
    from memos_cli.localfiles import plain_files

    for i in range(6):
        (tmp_path / f"f{i}").write_text("x")
    walk = plain_files(tmp_path)
    first, _ = next(walk)
    for p in tmp_path.iterdir():
        if p != first:
            p.unlink()
    assert list(walk) == []


def test_reading_a_cube_reports_progress(packed_cube: Path, embedder, tmp_path: Path,  # type: ignore[no-untyped-def]
                                         monkeypatch: pytest.MonkeyPatch) -> None:
    """A cube of a million memories takes a minute to check: reading its memories, its
    content digest and the index cache build report progress (shown as a bar on a terminal;
    here the threshold is lowered to the fixture's size)."""
    from memos_cli import progress
    from memos_cli.cube import open_cube, verify
    from memos_cli.tiers.plaintext import retrieve

    monkeypatch.setattr(progress, "MIN_TOTAL", 1)
    monkeypatch.setenv("MEMOS_HOME", str(tmp_path / "home"))  # the cache is built here
    seen: list[tuple[str, int, int]] = []
    with progress.shown_by(lambda *a: seen.append(a)):
        verify(packed_cube)
        retrieve(open_cube(packed_cube), embedder, "tea", 2)
    last = {stage: (done, total) for stage, done, total in seen}
    assert set(last) == {"reading memories", "checking the content digest",
                         "building the search index cache"}
    assert all(done == total > 0 for done, total in last.values())
    seen.clear()
    verify(packed_cube)  # no hook installed outside the block: nothing reported
    assert seen == []


def test_the_bar_is_drawn_on_a_terminal_only_and_past_the_threshold(
        monkeypatch: pytest.MonkeyPatch) -> None:
    import io

    from rich.console import Console

    from memos_cli import progress
    from memos_cli.cli import output

    for terminal in (True, False):
        screen = io.StringIO()
        monkeypatch.setattr(output, "err", Console(file=screen, force_terminal=terminal,
                                                   width=100))
        with output.library_progress():
            progress.report("reading memories", 10, 10)  # under MIN_TOTAL: nothing drawn
            assert "reading" not in screen.getvalue()
            progress.report("reading memories", 60_000, 100_000)
            progress.report("reading memories", 100_000, 100_000)
            done = screen.getvalue()
            progress.report("checking the content digest", 5, 100_000)
        assert ("reading memories" in done) is terminal
        assert ("100000/100000" in done) is terminal
        assert ("checking the content digest" in screen.getvalue()) is terminal
