"""When access control hides search results, say how many, never which (#12)."""

from __future__ import annotations

import json
from pathlib import Path

from typer.testing import CliRunner

from memos_cli.cli.app import app

runner = CliRunner()


def test_search_says_how_many_were_hidden(tmp_path: Path) -> None:
    src = tmp_path / "s.jsonl"
    src.write_text('{"content": "Alice keeps the budget at 40k"}\n'
                   '{"content": "Alice likes green tea"}\n')
    cube = tmp_path / "a.memcube"
    assert runner.invoke(app, ["pack", str(src), "-o", str(cube), "--owner", "alice"]
                         ).exit_code == 0
    r = runner.invoke(app, ["search", str(cube), "budget", "--as", "bob", "-k", "2"])
    assert r.exit_code == 0
    assert "2 of the closest memories are not readable by 'bob'" in " ".join(r.stderr.split())
    assert "40k" not in r.output  # never what they were
    data = json.loads(runner.invoke(app, ["search", str(cube), "budget", "--as", "bob",
                                          "--json"]).stdout)
    assert data["hidden_by_access"] == 2 and data["results"] == []
    mine = json.loads(runner.invoke(app, ["search", str(cube), "budget", "--as", "alice",
                                          "--json"]).stdout)
    assert mine["hidden_by_access"] == 0 and len(mine["results"]) == 2
