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
