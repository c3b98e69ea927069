"""MemDumper and governance: lossless JSONL round trip, and no export ever holds a memory its
user may not read."""

import json
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from memos_cli.cli.app import app
from memos_cli.cube import open_cube, verify
from memos_cli.governance.policy import can_read
from memos_cli.lifecycle.dump import Filter, dump, to_jsonl
from memos_cli.memory import Memory
from memos_cli.sources import Defaults, read_source
from memos_cli.sources.markdown_export import to_markdown
from tests.conftest import FIXED_TIME
from tests.test_memory import memories

runner = CliRunner()
USERS = ["ann", "bob", "cy", "dee"]


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(memories(), min_size=1, max_size=5))
def test_jsonl_export_round_trips_every_field(tmp_path: Path, mems: list[Memory]) -> None:
    p = tmp_path / "dump.jsonl"
    p.write_bytes(to_jsonl(mems))
    back = read_source(p, "dump.jsonl", Defaults(now=FIXED_TIME, owner="someone-else",
                                                 visibility="public", tags=("x",),
                                                 ttl=timedelta(days=1))).memories
    assert back == mems


@settings(max_examples=60, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(memories(), min_size=1, max_size=5))
def test_markdown_export_round_trips_every_field(tmp_path: Path, mems: list[Memory]) -> None:
    p = tmp_path / "dump.md"
    p.write_bytes(to_markdown(mems, title="t"))
    back = read_source(p, "dump.md", Defaults(now=FIXED_TIME, owner="someone-else",
                                              visibility="public", tags=("x",),
                                              ttl=timedelta(days=1))).memories
    assert back == mems


def test_markdown_export_survives_fences_and_headings(tmp_path: Path) -> None:
    tricky = Memory.create("## not a heading\n```memory\n````\nend ``` `", now=FIXED_TIME)
    p = tmp_path / "dump.md"
    p.write_bytes(to_markdown([tricky], title="t"))
    assert read_source(p, "dump.md", Defaults(now=FIXED_TIME)).memories == [tricky]
    p.write_text(p.read_text().replace("```json", "```jsn"))
    from memos_cli.errors import SourceError

    with pytest.raises(SourceError, match="line"):
        read_source(p, "dump.md", Defaults(now=FIXED_TIME))


@pytest.fixture(scope="module")
def governed_cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One memory for every owner x visibility x readers combination, one expired."""
    d = tmp_path_factory.mktemp("gov")
    lines = []
    n = 0
    for owner in [*USERS, None]:
        for vis in ("private", "shared", "public"):
            for readers in ([], ["bob"], ["cy", "dee"]):
                n += 1
                lines.append({"content": f"memory {n}", "owner": owner, "visibility": vis,
                              "readers": readers, "tags": ["even" if n % 2 else "odd"]})
    lines.append({"content": "expired", "owner": "ann", "visibility": "public",
                  "expires_at": "2001-01-01T00:00:00Z"})
    src = d / "gov.jsonl"
    src.write_text("\n".join(json.dumps(x) for x in lines))
    cube = d / "gov.memcube"
    res = runner.invoke(app, ["pack", str(src), "-o", str(cube)])
    assert res.exit_code == 0, res.output
    return cube


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(user=st.sampled_from(USERS) | st.text(min_size=1, max_size=6),
       tag=st.none() | st.sampled_from(["even", "odd"]))
def test_dump_never_returns_what_the_user_may_not_read(governed_cube: Path, tmp_path: Path,
                                                       user: str, tag: str | None) -> None:
    cube = open_cube(governed_cube)
    out = tmp_path / f"{abs(hash((user, tag)))}.jsonl"
    readable = [m for m in cube.memories if can_read(m, user) and (tag is None or tag in m.tags)]
    if not readable:
        with pytest.raises(Exception, match="may read none"):
            dump(cube, out, user=user, keep=Filter(tag=tag), now=FIXED_TIME, force=True)
        return
    dump(cube, out, user=user, keep=Filter(tag=tag), now=FIXED_TIME, force=True)
    got = [json.loads(line) for line in out.read_text().splitlines()]
    for m in got:  # the rule itself, written out independently of can_read
        assert m["content"] != "expired"
        assert m["visibility"] == "public" or m["owner"] == user or (
            m["visibility"] == "shared" and user in m["readers"])
        assert tag is None or tag in m["tags"]
    assert sorted(m["id"] for m in got) == sorted(m.id for m in readable)


def test_can_read_rules() -> None:
    now = datetime(2026, 1, 1, tzinfo=timezone.utc)
    m = Memory.create("x", now=now, owner="ann", visibility="shared", readers=("bob",))
    assert can_read(m, "ann") and can_read(m, "bob") and not can_read(m, "cy")
    assert not can_read(Memory.create("x", now=now, owner=None, visibility="private"), "ann")
    gone = Memory.create("x", now=now, visibility="public", expires_at=now)
    assert not can_read(gone, "ann", now=now)


def test_cli_dump_memcube_export(governed_cube: Path, tmp_path: Path, keys) -> None:  # type: ignore[no-untyped-def]
    out = tmp_path / "bob.memcube"
    res = runner.invoke(app, ["dump", str(governed_cube), "-o", str(out), "--as", "bob",
                              "--format", "memcube", "--key", str(keys[0]), "--json"])
    assert res.exit_code == 0, res.output
    data = json.loads(res.stdout)
    assert data["memories"] + data["withheld"] == len(open_cube(governed_cube).memories)
    assert verify(out, keys[1]).signature == "verified"
    m = json.loads((out / "manifest.json").read_text())
    assert m["provenance"]["parents"] == [open_cube(governed_cube).manifest.cube_id]
    assert all(can_read(mem, "bob") for mem in open_cube(out).memories)
    hits = json.loads(runner.invoke(app, ["search", str(out), "memory 5", "--json"]).stdout)
    assert hits["results"]


def test_cli_dump_errors(governed_cube: Path, tmp_path: Path) -> None:
    res = runner.invoke(app, ["dump", str(governed_cube), "-o", str(tmp_path / "x.jsonl"),
                              "--filter", "colour=red"])
    assert res.exit_code == 2 and "--filter 'colour=red'" in res.stderr
    res = runner.invoke(app, ["dump", str(governed_cube), "-o", str(tmp_path / "x.jsonl"),
                              "--as", "nobody", "--filter", "owner=ann,type=event"])
    assert res.exit_code == 2 and "may read none" in res.stderr
    assert not (tmp_path / "x.jsonl").exists()


@pytest.mark.parametrize("name, fmt, code, words", [
    ("red.memcube", None, 0, "(memcube)"),
    ("red.md", None, 0, "(markdown)"),
    ("red.jsonl", None, 0, "(jsonl)"),
    ("red.memcube", "jsonl", 2, "does not match the output name"),
    ("red.out", None, 2, "cannot tell the format"),
    ("red.out", "jsonl", 0, "(jsonl)"),
])
def test_dump_format_follows_the_output_name(packed_cube: Path, tmp_path: Path, name: str,
                                             fmt: str | None, code: int, words: str) -> None:
    """`-o red.memcube` writes a cube, not JSONL under that name; a clash is refused (#12)."""
    args = ["dump", str(packed_cube), "-o", str(tmp_path / name), "--as", "tester"]
    r = runner.invoke(app, args + (["--format", fmt] if fmt else []))
    assert r.exit_code == code, r.output
    assert words in " ".join(r.output.split())
    if code == 0 and name.endswith(".memcube"):
        verify(tmp_path / name)


@pytest.mark.parametrize("where, words", [
    ("missing/x.md", "does not exist"),
    ("afile/x.jsonl", "is not a directory"),
    ("adir.md", "is a directory"),
])
def test_dump_checks_the_output_location_first(packed_cube: Path, tmp_path: Path,
                                               monkeypatch: pytest.MonkeyPatch, where: str,
                                               words: str) -> None:
    """#28 bug 5: `dump -o out/x.md --redact all` with no out/ failed after the redaction with
    exit 70. The location is checked before any work: neither the embedder nor Presidio runs."""
    (tmp_path / "afile").write_text("a file")
    (tmp_path / "adir.md").mkdir()
    import memos_cli.governance.redact as redact

    def no_redaction(*a: object, **k: object) -> None:
        raise AssertionError("redaction started before the output was checked")

    monkeypatch.setattr(redact, "Redactor", no_redaction)
    r = runner.invoke(app, ["dump", str(packed_cube), "-o", str(tmp_path / where),
                            "--redact", "all", "--as", "tester"])
    assert r.exit_code == 2, r.output
    lines = [x for x in r.output.splitlines() if x.strip()]
    assert len(lines) == 1 and words in lines[0] and "Traceback" not in r.output
    assert sorted(p.name for p in tmp_path.iterdir()) == ["adir.md", "afile"]


def test_dump_to_stdout(packed_cube: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
                        ) -> None:
    """#28: `dump -o -` wrote a file named `-`; it writes the export to stdout, as jq does."""
    monkeypatch.chdir(tmp_path)
    r = runner.invoke(app, ["dump", str(packed_cube), "-o", "-", "--as", "tester"])
    assert r.exit_code == 0, r.output
    rows = [json.loads(x) for x in r.stdout.splitlines()]
    assert len(rows) == 18 and all("content" in x for x in rows)  # stdout holds JSONL alone
    assert "exported 18 memories to stdout" in r.stderr
    md = runner.invoke(app, ["dump", str(packed_cube), "-o", "-", "--format", "markdown",
                             "--as", "tester"])
    assert md.exit_code == 0 and md.stdout.startswith("<!-- memos export: markdown")
    assert list(tmp_path.iterdir()) == []  # no file named "-", nothing left behind
    bad = runner.invoke(app, ["dump", str(packed_cube), "-o", "-", "--format", "memcube"])
    assert bad.exit_code == 2 and "a memcube is a directory" in bad.output
