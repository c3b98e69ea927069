"""A file whose dates are under another name than ``event_time``: every write path says so,
and a search ``--as-of`` that finds nothing says why (spec §4.6, §8.2; real embedder)."""

import json
from pathlib import Path

from memos_cli.cube import open_cube
from tests.conftest import invoke as memos

NOTE = "'time' holds a date: it is kept in extra, not read as the event time"


def lines(path: Path, key: str) -> Path:
    path.write_text("".join(json.dumps({"content": t, key: d}) + "\n" for d, t in (
        ("2026-01-12", "The weekly lab meeting is in room B12."),
        ("2026-02-02", "The weekly lab meeting moved to room C3."))))
    return path


def test_pack_add_and_load_name_the_key_and_as_of_says_why_nothing_was_found(
        tmp_path: Path) -> None:
    src = lines(tmp_path / "s.jsonl", "time")
    cube = tmp_path / "t.memcube"
    packed = memos("pack", src, "-o", cube)
    assert NOTE in packed.stderr and "0 updates" in packed.stdout  # undated parts of one file
    assert all(m.event_time is None and m.extra["time"] for m in open_cube(cube).memories)
    empty = memos("search", cube, "where is the lab meeting", "--as-of", "2026-01-20")
    assert "0 memories" in empty.stdout
    assert "no memory was valid at --as-of 2026-01-20" in empty.stderr
    found = memos("search", cube, "where is the lab meeting")
    assert "no memory was valid" not in found.stderr  # only a search --as-of is told

    more = tmp_path / "more.jsonl"
    more.write_text(json.dumps({"content": "The printer needs toner.", "time": "2026-03-01"})
                    + "\n")
    assert NOTE in memos("add", cube, more).stderr
    loaded = memos("load", src, "--vault", tmp_path / "vault", "--as", "ann")
    assert NOTE in loaded.stderr and "2 added" in loaded.stdout

    dated = lines(tmp_path / "d.jsonl", "valid_from")  # the spec's own name is read
    out = memos("pack", dated, "-o", tmp_path / "d.memcube")
    assert "kept in extra" not in out.stderr and "1 update" in out.stdout
    hits = json.loads(memos("search", tmp_path / "d.memcube", "where is the lab meeting",
                            "--as-of", "2026-01-20", "--json").stdout)["results"]
    assert "B12" in hits[0]["content"]
