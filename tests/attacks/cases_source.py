"""Hostile source files for ``memos pack`` and ``memos load`` (import): special files, links
out of the tree, JSON that breaks parsers, values that overflow, and giants (sparse where the
size alone should be refused)."""

from __future__ import annotations

import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path

from tests.attacks.cases_cube import deep
from tests.attacks.corpus import Base, Case

MEMOS_CUBE = Path(__file__).resolve().parents[3] / "shared" / "datasets" / "memos" / \
    "mem_cube_2"


def file_case(name: str, filename: str, data: bytes | str, expect: str = "refuse") -> Case:
    def build(work: Path, base: Base) -> Path:
        p = work / filename
        p.write_bytes(data.encode() if isinstance(data, str) else data)
        return p
    return Case(f"src_{name}", "source", build, expect)


def jsonl_case(name: str, line: str, expect: str = "refuse") -> Case:
    return file_case(name, "s.jsonl", line + "\n", expect)


def sparse_case(name: str, filename: str, size: int, head: bytes = b"") -> Case:
    def build(work: Path, base: Base) -> Path:
        p = work / filename
        p.write_bytes(head)
        os.truncate(p, size)
        return p
    return Case(f"src_{name}", "source", build)


def make_case(name: str, make: Callable[[Path], Path], expect: str = "refuse") -> Case:
    return Case(f"src_{name}", "source", lambda work, base: make(work), expect)


def _fifo(work: Path) -> Path:
    os.mkfifo(work / "s.jsonl")
    return work / "s.jsonl"


def _fifo_in_dir(work: Path) -> Path:
    d = work / "notes"
    d.mkdir()
    (d / "a.md").write_text("I like tea.\n")
    os.mkfifo(d / "b.jsonl")
    return d


def _link(work: Path) -> Path:
    (work / "outside.txt").write_text("a secret outside the tree\n")
    os.symlink(work / "outside.txt", work / "s.txt")
    return work / "s.txt"


def _link_in_dir(work: Path) -> Path:
    d = work / "notes"
    d.mkdir()
    (d / "a.md").write_text("I like tea.\n")
    os.symlink("/etc/passwd", d / "passwd.txt")
    return d


def _memos_cube(member: str, content: bytes | None = None) -> Callable[[Path], Path]:
    def make(work: Path) -> Path:
        d = work / "mem_cube"
        shutil.copytree(MEMOS_CUBE, d)
        for p in d.rglob("*"):
            p.chmod(0o644)
        d.chmod(0o755)
        target = d / member
        if content is None:  # a link to a file outside the cube
            (work / "outside.json").write_bytes(target.read_bytes())
            target.unlink()
            os.symlink(work / "outside.json", target)
        elif content == b"fifo":
            target.unlink()
            os.mkfifo(target)
        else:
            target.write_bytes(content)
        return d
    return make


def _named(filename: str) -> Callable[[Path], Path]:
    def make(work: Path) -> Path:
        p = work / filename
        p.write_text("I like tea.\n")
        return p
    return make


def _giant_line(work: Path) -> Path:
    p = work / "s.jsonl"
    with p.open("w") as f:
        f.write('{"content": "')
        f.write("word " * (1 << 20))
        f.write('"}\n')
    return p


_LOCOMO_HEAD = {"sample_id": "x", "qa": [], "conversation": {
    "speaker_a": "A", "speaker_b": "B", "session_1_date_time": "1:56 pm on 8 May, 2023"}}

CASES: list[Case] = [
    make_case("fifo", _fifo),
    make_case("fifo_in_dir", _fifo_in_dir),
    make_case("symlink", _link),
    make_case("symlink_in_dir", _link_in_dir, "any"),
    make_case("memos_cube_linked_memory", _memos_cube("textual_memory.json")),
    make_case("memos_cube_linked_config", _memos_cube("config.json")),
    make_case("memos_cube_deep_config", _memos_cube("config.json", deep().encode())),
    make_case("memos_cube_deep_memory", _memos_cube("textual_memory.json", deep().encode())),
    make_case("memos_cube_nodes_not_list", _memos_cube(
        "textual_memory.json", b'{"nodes": 5, "edges": []}')),
    make_case("memos_cube_memory_fifo", _memos_cube("textual_memory.json", b"fifo")),
    jsonl_case("deep", deep()),
    jsonl_case("deep_object", '{"a":' * 100_000 + "1" + "}" * 100_000),
    jsonl_case("huge_int", '{"content": "x", "priority": ' + "9" * 5000 + "}"),
    jsonl_case("priority_2e70", json.dumps({"content": "x", "priority": 2**70})),
    jsonl_case("version_2e40", json.dumps({"content": "x", "version": 2**40})),
    jsonl_case("line_start_2e64", json.dumps({"content": "x", "source_file": "a.md",
                                              "line_start": 2**64, "line_end": 2**64})),
    jsonl_case("nan", '{"content": "x", "score": NaN}'),
    jsonl_case("infinity", '{"content": "x", "ttl": Infinity}'),
    jsonl_case("duplicate_keys", '{"content": "x", "content": "y"}'),
    jsonl_case("ttl_1e300", json.dumps({"content": "x", "ttl": 1e300})),
    jsonl_case("ttl_2e62", json.dumps({"content": "x", "ttl": 2**62})),
    jsonl_case("created_year_9999_ttl", json.dumps({
        "content": "x", "created_at": "9999-12-31T23:59:59Z", "ttl": 86400})),
    jsonl_case("created_year_99999", json.dumps({"content": "x",
                                                 "created_at": "99999-01-01T00:00:00Z"})),
    jsonl_case("expires_garbage", json.dumps({"content": "x", "expires_at": "soon"})),
    jsonl_case("null_content", '{"content": null}'),
    jsonl_case("content_list", '{"content": ["a", "b"]}'),
    jsonl_case("line_is_array", "[1, 2, 3]"),
    jsonl_case("extra_deep_in_range", json.dumps({"content": "x", "meta": json.loads(
        "[" * 900 + "]" * 900)}), "any"),
    jsonl_case("readers_not_strings", json.dumps({"content": "x", "readers": [1, {}]})),
    jsonl_case("visibility_bad", json.dumps({"content": "x", "visibility": "everyone"})),
    jsonl_case("escape_content", json.dumps({"content": "tea \x1b[2J\x1b]0;t\x07 time"}),
               "any"),
    jsonl_case("bidi_content", json.dumps({"content": "tea \u202e emit \u2028 x"}), "any"),
    jsonl_case("content_2m_chars", json.dumps({"content": "y" * (2 << 20)})),
    make_case("line_5mb", _giant_line),
    file_case("empty_jsonl", "s.jsonl", b""),
    file_case("blank_lines", "s.jsonl", b"\n\n  \n"),
    file_case("invalid_utf8_jsonl", "s.jsonl", b'{"content": "\xff\xfe"}\n'),
    file_case("invalid_utf8_md", "s.md", b"# T\n\n\xc3\x28 tea\n"),
    file_case("invalid_utf8_txt", "s.txt", b"tea \xed\xa0\x80 time\n"),
    file_case("invalid_utf8_json", "s.json", b'[{"role": "user", "content": "\xff"}]'),
    file_case("nul_bytes_txt", "s.txt", b"tea\x00time\n" * 3, "any"),
    file_case("binary_txt", "s.txt", os.urandom(4096)),
    file_case("bom_crlf_jsonl", "s.jsonl", b'\xef\xbb\xbf{"content": "tea"}\r\n', "any"),
    file_case("one_line_txt_2m", "s.txt", "z" * (2 << 20)),
    file_case("json_layout_unknown", "s.json", '{"hello": "world"}'),
    file_case("json_deep", "s.json", deep()),
    file_case("json_huge_int", "s.json", '[{"role": "user", "content": "x", "n": '
              + "9" * 5000 + "}]"),
    file_case("chat_content_deep", "s.json", json.dumps([{"role": "user", "content": [
        {"type": "text", "text": "x"}]}])[:-3] + "," + deep(800) + "]}]", "any"),
    file_case("chat_role_int", "s.json", json.dumps([{"role": 5, "content": "x"}])),
    file_case("locomo_session_ints", "s.json", json.dumps({
        **_LOCOMO_HEAD, "conversation": {**_LOCOMO_HEAD["conversation"],
                                         "session_1": [1, 2, 3]}})),
    file_case("locomo_bad_date", "s.json", json.dumps({
        **_LOCOMO_HEAD, "conversation": {**_LOCOMO_HEAD["conversation"],
                                         "session_1_date_time": "99 pm on 99 May, 99999",
                                         "session_1": [{"speaker": "A", "dia_id": "D1:1",
                                                        "text": "hi"}]}}), "any"),
    file_case("letta_deep", "s.af", deep()),
    file_case("letta_wrong_types", "s.af", json.dumps({"agent_type": "memgpt_agent",
                                                       "core_memory": 7, "messages": "x"})),
    file_case("mem0_wrong_types", "s.json", json.dumps({"results": [{"memory": 5,
                                                                     "id": []}]})),
    file_case("unsupported_suffix", "s.exe", b"MZ\x90\x00"),
    make_case("name_with_escape", _named("t\x1b[2Jea\n.md"), "any"),
    sparse_case("jsonl_600mb", "s.jsonl", 600 << 20, b'{"content": "x"}\n'),
    sparse_case("txt_100mb", "s.txt", 100 << 20, b"tea\n"),
    sparse_case("json_100mb", "s.json", 100 << 20, b"["),
    make_case("missing", lambda w: w / "nothing.jsonl"),
    make_case("directory_empty", lambda w: (w / "empty").mkdir() or w / "empty"),
]
