"""``memos pack/reindex --reader``, ``memos search --queries`` and ``dump --no-derived`` through
the CLI, on a real LoCoMo conversation from ../shared/datasets."""

import json
from pathlib import Path

import pytest

from tests.cli.test_cli import as_json, memos
from tests.readers.test_readers import chat_file


@pytest.fixture(scope="module")
def read_cube(tmp_path_factory: pytest.TempPathFactory) -> Path:
    d = tmp_path_factory.mktemp("readers")
    cube = d / "talk.memcube"
    data = as_json("pack", chat_file(d), "-o", cube, "--reader", "context")
    assert data["readers"][0]["name"] == "context" and data["readers"][0]["index_rows"] == 6
    return cube


def test_unknown_reader_is_one_line_that_points_to_share_with(tmp_path: Path) -> None:
    r = memos("pack", chat_file(tmp_path), "-o", tmp_path / "x.memcube", "--reader", "bob",
              code=2)
    assert "'bob' is not a MemReader" in r.output and "--share-with bob" in r.output
    assert "Traceback" not in r.output and not (tmp_path / "x.memcube").exists()
    r = memos("pack", chat_file(tmp_path), "-o", tmp_path / "x.memcube", "--reader-budget",
              "10m", code=2)
    assert "need a --reader" in r.output


def test_conversations_get_the_context_reader_by_default(tmp_path: Path) -> None:
    """#32: a pack of conversations only runs the context reader unless told otherwise; a
    pack with documents runs none; `--reader none` turns the default off."""
    from tests.conftest import FIXTURES

    chat = chat_file(tmp_path)
    data = as_json("pack", chat, "-o", tmp_path / "a.memcube")
    assert [r["name"] for r in data["readers"]] == ["context"]
    assert data["readers"][0]["index_rows"] == 6
    off = as_json("pack", chat, "-o", tmp_path / "b.memcube", "--reader", "none")
    assert "readers" not in off
    mixed = as_json("pack", chat, FIXTURES / "corpus" / "notes", "-o", tmp_path / "c.memcube")
    assert "readers" not in mixed
    r = memos("pack", chat, "-o", tmp_path / "d.memcube", "--reader", "none",
              "--reader-budget", "10m", code=2)
    assert "need a --reader" in r.output


def test_a_reader_whose_model_cannot_generate_writes_nothing(tmp_path: Path) -> None:
    from tests.conftest import make_tiny_model

    model = make_tiny_model(tmp_path / "gpt2", "gpt2", max_position_embeddings=16)
    out = tmp_path / "q.memcube"
    r = memos("pack", chat_file(tmp_path), "-o", out, "--reader", "questions", "--model",
              model, code=13)
    assert "cannot generate" in r.output and len(r.output.strip().splitlines()) == 1
    assert not out.exists() and not list(tmp_path.glob(".*memcube*"))


def test_inspect_and_verify_show_the_readers(read_cube: Path) -> None:
    manifest = json.loads((read_cube / "manifest.json").read_text())
    assert manifest["format_version"] == "1.8"
    assert [r["name"] for r in manifest["readers"]] == ["context"]
    assert as_json("verify", read_cube)["memories"] == 6


def test_search_shows_what_matched(read_cube: Path) -> None:
    data = as_json("search", read_cube, "When did James adopt Ned?", "-k", "6")
    vias = {r["text"].split(": ", 1)[-1]: r["via"] for r in data["results"]}
    assert vias["Last Tuesday!"] == "context"
    table = memos("search", read_cube, "When did James adopt Ned?", "-k", "6").stdout
    assert "matched context" in table


def test_search_queries_file_answers_every_line(read_cube: Path, tmp_path: Path) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text('{"id": "a", "query": "When did James adopt Ned?"}\n\n'
                  '{"query": "kitchen colour", "k": 2}\n')
    r = memos("search", read_cube, "--queries", qs, "--json")
    lines = [json.loads(x) for x in r.stdout.splitlines()]
    assert [x["id"] for x in lines] == ["a", 3]
    assert len(lines[0]["results"]) == 5 and len(lines[1]["results"]) == 2
    assert "kitchen" in lines[1]["results"][0]["text"]
    plain = memos("search", read_cube, "--queries", qs).stdout.splitlines()
    assert len(plain) == 2 and plain[0].startswith("a\t")


@pytest.mark.parametrize("body, problem", [
    ('{"query": 3}\n', "line 1: not an object with a \"query\" string"),
    ('{"query": "x", "k": 0}\n', "line 1: \"k\" is not an integer from 1 to 1000"),
    ('{"query": "x", "k": 1000000}\n', "line 1: \"k\" is not an integer from 1 to 1000"),
    ('{"query": "x"}\n{"query": \n', "line 2: malformed JSON"),
])
def test_bad_queries_file_is_one_line_naming_it(read_cube: Path, tmp_path: Path, body: str,
                                                problem: str) -> None:
    qs = tmp_path / "bad.jsonl"
    qs.write_text(body)
    r = memos("search", read_cube, "--queries", qs, "--json", code=3)
    assert r.stdout == "" and str(qs) in r.output and problem in r.output


def test_queries_with_a_query_argument_is_refused(read_cube: Path, tmp_path: Path) -> None:
    qs = tmp_path / "q.jsonl"
    qs.write_text('{"query": "x"}\n')
    r = memos("search", read_cube, "ned", "--queries", qs, code=2)
    assert "--queries" in r.output


def test_reindex_with_and_without_reader(read_cube: Path, tmp_path: Path) -> None:
    import shutil

    cube = tmp_path / "c.memcube"
    shutil.copytree(read_cube, cube)
    assert as_json("reindex", cube)["readers"] == []
    data = as_json("reindex", cube, "--reader", "context")
    assert data["readers"][0]["index_rows"] == 6
    assert as_json("verify", cube)["memories"] == 6


def test_inspect_lists_the_readers(read_cube: Path) -> None:
    text = memos("inspect", read_cube).stdout
    assert "context: 6 rows, 0 derived" in text


def test_context_reader_on_the_demo_corpus(tmp_path: Path) -> None:
    """Documents are read by file and line, the chat by conversation, facts get no row."""
    from tests.conftest import CORPUS

    cube = tmp_path / "demo.memcube"
    data = as_json("pack", CORPUS, "-o", cube, "--reader", "context")
    assert data["readers"][0]["index_rows"] == 15 and data["memories"] == 18
    hit = as_json("search", cube, "What budget did we agree on?", "-k", "1")["results"][0]
    assert "48,000 euros" in hit["text"]
    assert as_json("verify", cube)["memories"] == 18
