"""The source options that ``memos pack``, ``import`` and ``add`` share (governance defaults,
TTL, tags, extensionless files, the base of recorded paths) and the pack time."""

from __future__ import annotations

import os
import re
from datetime import datetime, timedelta, timezone
from pathlib import Path

import typer

from memos_cli.errors import UsageError
from memos_cli.governance.policy import current_user
from memos_cli.memory import VISIBILITIES
from memos_cli.sources import Defaults

_TTL = re.compile(r"^(\d+)([smhdw]?)$")
_UNITS = {"": 1, "s": 1, "m": 60, "h": 3600, "d": 86400, "w": 604800}


def parse_ttl(text: str) -> timedelta:
    """``90``, ``90s``, ``15m``, ``12h``, ``30d``, ``2w`` -> timedelta. Raises ``UsageError``."""
    m = _TTL.match(text.strip())
    if not m or int(m.group(1)) == 0:
        raise UsageError(f"--ttl {text!r} is not a positive duration like 3600, 12h, 30d or 2w")
    seconds = int(m.group(1)) * _UNITS[m.group(2)]
    if seconds > 10**11:  # about 3,000 years: further overflows dates (spec, "Edge cases")
        raise UsageError(f"--ttl {text!r} is over the limit of 1e11 seconds (about 3,000 "
                         "years)")
    return timedelta(seconds=seconds)


def pack_time() -> datetime:
    """Now in UTC, or ``SOURCE_DATE_EPOCH`` when set (reproducible builds)."""
    epoch = os.environ.get("SOURCE_DATE_EPOCH")
    if epoch:
        if not epoch.isdigit():
            raise UsageError(f"SOURCE_DATE_EPOCH={epoch!r} is not a number of seconds")
        return datetime.fromtimestamp(int(epoch), timezone.utc)
    return datetime.now(timezone.utc)


EXTENSIONLESS_OPT = typer.Option(
    None, "--extensionless", metavar="text|markdown|rst",
    help="Read files without an extension (METADATA, README) as this kind \\[default: skip "
         "them].")
ENCODING_OPT = typer.Option("utf-8", "--encoding", metavar="CODEC",
                            help="The text encoding of the source files (latin-1, cp1252, "
                                 "utf-16: any Python codec).")
SKIP_UNREADABLE_OPT = typer.Option(False, "--skip-unreadable",
                                   help="Leave out a file that cannot be read (a wrong "
                                        "encoding, malformed JSON), say which and how many, "
                                        "instead of failing the whole pack.")
BASE_OPT = typer.Option(None, "--base", metavar="DIR",
                        help="Record source paths relative to this directory \\[default: "
                             "the common parent of the sources given].")


OWNER_OPT = typer.Option(None, "--owner", help="Owner of the memories \\[default: $MEMOS_USER "
                                               "or the login name].")
VISIBILITY_OPT = typer.Option("private", "--visibility", help="private, shared or public.")
SHARE_OPT = typer.Option([], "--share-with", metavar="USER|role:NAME",
                         help="A user or role who may read the memories (repeatable; it was "
                              "--reader).")
TTL_OPT = typer.Option(None, "--ttl", help="Lifespan of each memory: 3600, 12h, 30d, 2w.")
TAG_OPT = typer.Option([], "--tag", help="A tag for every memory (repeatable).")


def source_defaults(owner: str | None, visibility: str, reader: list[str], ttl: str | None,
                    tag: list[str], extensionless: str | None, base: Path | None, *,
                    encoding: str = "utf-8", skip_unreadable: bool = False) -> Defaults:
    """The pack-wide defaults from the source options that pack, import and add share.
    Raises ``UsageError`` for a bad visibility, TTL, --extensionless kind or --encoding."""
    import codecs

    if visibility not in VISIBILITIES:
        raise UsageError(f"--visibility {visibility!r} is not one of {', '.join(VISIBILITIES)}")
    try:
        codecs.lookup(encoding)
    except LookupError as e:
        raise UsageError(f"--encoding {encoding!r} is not a text encoding Python knows") from e
    return Defaults(now=pack_time(), owner=owner or current_user(), visibility=visibility,
                    readers=tuple(reader), ttl=parse_ttl(ttl) if ttl else None, tags=tuple(tag),
                    extensionless=check_extensionless(extensionless), base=base,
                    encoding=encoding, skip_unreadable=skip_unreadable)


def check_extensionless(kind: str | None) -> str | None:
    if kind is not None and kind not in ("text", "markdown", "rst"):
        raise UsageError(f"--extensionless {kind!r} is not text, markdown or rst")
    return kind
