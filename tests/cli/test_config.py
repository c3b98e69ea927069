"""Settings: flag > environment > MEMOS_HOME/config.toml > built-in (#12)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from typer.testing import CliRunner

from memos_cli import config
from memos_cli.cli.app import app
from memos_cli.governance.policy import current_user
from memos_cli.vault import default_path

runner = CliRunner()


@pytest.fixture
def home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("MEMOS_HOME", str(tmp_path))
    for env, _, _ in config.SETTINGS.values():
        monkeypatch.delenv(env, raising=False)
    return tmp_path


def test_set_get_list_unset(home: Path) -> None:
    assert runner.invoke(app, ["config", "get", "user"]).exit_code == 1  # unset
    assert runner.invoke(app, ["config", "set", "user", "ann"]).exit_code == 0
    assert runner.invoke(app, ["config", "get", "user"]).stdout.strip() == "ann"
    assert (home / "config.toml").read_text() == 'user = "ann"\n'
    rows = json.loads(runner.invoke(app, ["config", "list", "--json"]).stdout)["settings"]
    assert {r["name"]: r["source"] for r in rows}["user"] == "file"
    assert runner.invoke(app, ["config", "unset", "user"]).exit_code == 0
    assert runner.invoke(app, ["config", "get", "user"]).exit_code == 1
    bad = runner.invoke(app, ["config", "set", "colour", "blue"])
    assert bad.exit_code == 2 and "unknown setting" in bad.stderr


def test_precedence_environment_over_file_over_builtin(home: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    assert default_path() == home / "vault"  # built-in
    config.set_value("vault", str(home / "from-file"))
    config.set_value("user", "filed")
    assert default_path() == home / "from-file" and current_user() == "filed"
    monkeypatch.setenv("MEMOS_VAULT", str(home / "from-env"))
    monkeypatch.setenv("MEMOS_USER", "envied")
    assert default_path() == home / "from-env" and current_user() == "envied"


def test_configured_key_signs_and_flag_wins(home: Path, tmp_path: Path,
                                            keys: tuple[Path, Path]) -> None:
    src = tmp_path / "s.jsonl"
    src.write_text('{"content": "signed by default"}\n')
    config.set_value("key", str(keys[0]))
    r = runner.invoke(app, ["pack", str(src), "-o", str(tmp_path / "a.memcube"), "--json"])
    assert r.exit_code == 0 and json.loads(r.stdout)["signed"] is True


def test_bad_config_file_is_one_named_line(home: Path) -> None:
    (home / "config.toml").write_text("user = [1, 2\n")
    r = runner.invoke(app, ["config", "list"])
    assert r.exit_code == 2 and "config.toml" in r.stderr and "not TOML" in r.stderr


def test_config_list_off_a_terminal_is_key_value(home: Path) -> None:
    """#28: `config list` in a pipe printed a boxed table; it prints NAME=VALUE lines."""
    runner.invoke(app, ["config", "set", "user", "ann"])
    r = runner.invoke(app, ["config", "list"])
    assert r.exit_code == 0, r.output
    lines = r.stdout.splitlines()
    assert "user=ann" in lines and all("=" in x for x in lines)
    assert {x.split("=")[0] for x in lines} == set(config.SETTINGS)
