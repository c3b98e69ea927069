"""Hostile sources for `memos pack` and `memos import`: FIFOs never block, links are never
followed out of a source, and each refusal is one named line (exit 3, SourceError)."""

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

MEMOS = str(Path(sys.executable).parent / "memos")
MEMOS_CUBE = Path(__file__).resolve().parents[2].parent / "shared/datasets/memos/mem_cube_2"


def memos(*args: object, timeout: float = 120) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
    """Run the real command; a hang fails the test at ``timeout`` instead of blocking."""
    return subprocess.run([MEMOS, *map(str, args)], capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, "MEMOS_NO_USAGE": "1"})


def refused(r: subprocess.CompletedProcess, path: Path, words: str) -> None:  # type: ignore[type-arg]
    lines = r.stderr.strip().splitlines()
    assert r.returncode == 3, (r.returncode, r.stderr)
    assert len(lines) == 1 and str(path) in lines[0] and words in lines[0], r.stderr
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize("command", ["pack", "import"])
def test_fifo_named_directly_does_not_block(tmp_path: Path, command: str) -> None:
    fifo = tmp_path / "notes.md"
    os.mkfifo(fifo)
    r = memos(command, fifo, "-o", tmp_path / "out.memcube", timeout=60)
    refused(r, fifo, "not a regular file")
    assert not (tmp_path / "out.memcube").exists()


@pytest.mark.parametrize("command", ["pack", "import"])
def test_fifo_inside_a_directory_does_not_block(tmp_path: Path, command: str) -> None:
    src = tmp_path / "src"
    src.mkdir()
    (src / "a.md").write_text("# A\n\nA fine note about the budget.\n")
    os.mkfifo(src / "b.jsonl")
    r = memos(command, src, "-o", tmp_path / "out.memcube", timeout=60)
    refused(r, src / "b.jsonl", "not a regular file")


def test_symlink_named_directly_is_refused(tmp_path: Path) -> None:
    outside = tmp_path / "secret.md"
    outside.write_text("# Secret\n\nThe vault key is 1234.\n")
    link = tmp_path / "notes.md"
    link.symlink_to(outside)
    refused(memos("pack", link, "-o", tmp_path / "out.memcube"), link, "symbolic link")


@pytest.mark.skipif(not MEMOS_CUBE.is_dir(), reason="needs ../shared/datasets/memos")
@pytest.mark.parametrize("member", ["textual_memory.json", "config.json"])
def test_memos_cube_member_linked_outside_is_refused(tmp_path: Path, member: str) -> None:
    cube = tmp_path / "mem_cube"
    shutil.copytree(MEMOS_CUBE, cube)
    outside = tmp_path / "outside.json"
    shutil.copy(cube / member, outside)
    (cube / member).unlink()
    (cube / member).symlink_to(outside)
    r = memos("import", cube, "-o", tmp_path / "out.memcube")
    assert r.returncode != 0 and not (tmp_path / "out.memcube").exists(), r.stdout
    assert len(r.stderr.strip().splitlines()) == 1 and "Traceback" not in r.stderr
    if member == "textual_memory.json":
        refused(r, cube / member, "symbolic link")


def test_tampered_cube_is_refused_even_when_its_signer_is_not_trusted(
        tmp_path: Path, packed_cube: Path) -> None:
    """A cube signed by a key nobody trusts loads as "untrusted" with --allow-unsigned; the
    same cube with its manifest edited after signing is tampered and refused (#11, 4)."""
    import json

    home = {**os.environ, "MEMOS_HOME": str(tmp_path / "home"), "MEMOS_NO_USAGE": "1"}

    def load(cube: Path) -> subprocess.CompletedProcess:  # type: ignore[type-arg]
        return subprocess.run([MEMOS, "load", str(cube), "--vault", str(tmp_path / "v"),
                               "--allow-unsigned", "--json"], capture_output=True, text=True,
                              timeout=300, env=home)

    good = tmp_path / "good.memcube"
    shutil.copytree(packed_cube, good)
    r = load(good)
    assert r.returncode == 0 and json.loads(r.stdout)["signer"] == "untrusted", r.stderr
    bad = tmp_path / "bad.memcube"
    shutil.copytree(packed_cube, bad)
    manifest = json.loads((bad / "manifest.json").read_text())
    manifest["description"] = "edited after signing"
    (bad / "manifest.json").write_text(json.dumps(manifest))
    before = sorted(p.name for p in (tmp_path / "v").iterdir())
    r = load(bad)
    assert r.returncode == 8 and "changed since it was signed" in r.stderr, r.stderr
    assert "manifest.json" in r.stderr and len(r.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in (tmp_path / "v").iterdir()) == before


def test_error_lines_escape_controls_and_stay_short(tmp_path: Path) -> None:
    """A source name with a terminal escape and a newline, and a huge quoted value, still give
    one short error line (#11 items 6 and 9)."""
    src = tmp_path / "evil\x1b[2J\nname.jsonl"
    src.write_text('{"content": 1, "pad": "' + "A" * 100_000 + '"}\n')
    r = memos("pack", src, "-o", tmp_path / "out.memcube")
    assert r.returncode == 3 and "\x1b" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1 and len(r.stderr) < 1000
    assert "\\x1b[2J\\x0aname.jsonl" in r.stderr


def test_error_messages_are_one_bounded_line() -> None:
    from memos_cli.errors import MAX_MESSAGE, SourceError

    e = SourceError("value " + "9" * 15_000_000 + "\nsecond line", path="a\x1bb")
    text = str(e)
    assert "\n" not in text and "\x1b" not in text and text.startswith("a\\x1bb: value 999")
    assert len(text) < MAX_MESSAGE + 100 and text.endswith("more characters)")


def test_leftovers_of_killed_writes_are_cleaned(tmp_path: Path) -> None:
    """The next write to a target removes the temporary directories of dead writers, keeps a
    live writer's, and says so (#11 item 10)."""
    dead = tmp_path / ".out.memcube.999999999.abcd1234.tmp"
    live = tmp_path / f".out.memcube.{os.getpid()}.abcd1234.tmp"
    for d in (dead, live):
        d.mkdir()
        (d / "memories.arrow").write_bytes(b"half written")
    src = tmp_path / "a.md"
    src.write_text("# A\n\nA note about the budget.\n")
    r = memos("pack", src, "-o", tmp_path / "out.memcube")
    assert r.returncode == 0, r.stderr
    assert not dead.exists() and live.is_dir() and (tmp_path / "out.memcube").is_dir()
    assert f"removed {dead.name}" in r.stderr


@pytest.mark.parametrize("line, words", [
    ('{"content": "a", "content": "b"}', "duplicate key 'content'"),
    ('{"content": "a", "extra": {"x": NaN}}', "NaN is not a JSON number"),
    ('{"content": "a", "extra": {"x": -Infinity}}', "-Infinity is not a JSON number"),
    ('{"content": "a", "n": ' + "9" * 5000 + "}", "Exceeds the limit"),
    ('{"content": "a", "extra": ' + "[" * 200_000 + "]" * 200_000 + "}", "nested too deeply"),
])
def test_hostile_json_sources_are_named_refusals(tmp_path: Path, line: str, words: str) -> None:
    """Duplicate keys, NaN/Infinity, 5,000-digit integers and nesting past the recursion limit
    are one named line each, never an internal error (#11 items 5 and 8)."""
    src = tmp_path / "m.jsonl"
    src.write_text(line + "\n")
    r = memos("pack", src, "-o", tmp_path / "out.memcube")
    refused(r, src, words)


@pytest.mark.parametrize("edit, words", [
    (lambda t: t.replace('"name":', '"name": "x", "name":', 1), "duplicate key 'name'"),
    (lambda t: t[:-2] + ', "x": ' + "[" * 100_000 + "]" * 100_000 + "}\n", "nested too deeply"),
])
def test_hostile_manifest_json_is_refused_by_name(packed_cube: Path, tmp_path: Path,
                                                  edit, words: str) -> None:  # type: ignore[no-untyped-def]
    cube = tmp_path / "c.memcube"
    shutil.copytree(packed_cube, cube)
    m = cube / "manifest.json"
    m.write_text(edit(m.read_text()))
    r = memos("inspect", cube)
    assert r.returncode == 6 and words in r.stderr and "internal error" not in r.stderr, r.stderr
    assert len(r.stderr.strip().splitlines()) == 1


def test_huge_embedding_dimension_is_refused(packed_cube: Path, tmp_path: Path) -> None:
    import json

    cube = tmp_path / "c.memcube"
    shutil.copytree(packed_cube, cube)
    m = json.loads((cube / "manifest.json").read_text())
    m["embedding"]["dimension"] = 2 ** 62
    (cube / "manifest.json").write_text(json.dumps(m))
    r = memos("inspect", cube)
    assert r.returncode == 6 and "dimension" in r.stderr and len(r.stderr.splitlines()) == 1


def test_terminal_escapes_from_a_cube_are_shown_escaped(packed_cube: Path,
                                                        tmp_path: Path) -> None:
    """A manifest name and description holding terminal escapes reach `inspect`'s human output
    escaped; `--json` keeps them exact (#11 item 6)."""
    import json

    cube = tmp_path / "c.memcube"
    shutil.copytree(packed_cube, cube)
    m = json.loads((cube / "manifest.json").read_text())
    m["name"], m["description"] = "evil\x1b[2J", "clears\x1b]0;owned\x07 the screen"
    (cube / "manifest.json").write_text(json.dumps(m))
    assert memos("inspect", cube).returncode == 8  # signed, then edited: tampered
    (cube / "memcube.sig").unlink()  # as an unsigned cube, it is shown
    r = memos("inspect", cube)
    assert r.returncode == 0, r.stderr
    assert "\x1b" not in r.stdout and "\x07" not in r.stdout
    assert "evil\\x1b[2J" in r.stdout and "\\x07" in r.stdout
    exact = json.loads(memos("inspect", cube, "--json").stdout)
    assert exact["manifest"]["name"] == "evil\x1b[2J"


def test_ttl_past_year_9999_is_bounded(tmp_path: Path) -> None:
    """A --ttl too long for dates is a usage error; a source time near year 9999 plus a
    --ttl is capped at the last representable moment instead of overflowing (#11 item 5)."""
    src = tmp_path / "s.jsonl"
    src.write_text('{"content": "late", "created_at": "9999-12-30T00:00:00Z"}\n')
    r = memos("pack", src, "-o", tmp_path / "a.memcube", "--ttl", "99999999999999d")
    assert r.returncode == 2 and "over the limit" in r.stderr
    r = memos("pack", src, "-o", tmp_path / "b.memcube", "--ttl", "30d", "--json")
    assert r.returncode == 0, r.stderr
    shown = memos("inspect", tmp_path / "b.memcube", "--json").stdout
    assert "9999-12-31T23:59:59.999999Z" in shown
