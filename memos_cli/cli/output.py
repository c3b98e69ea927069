"""Consoles and output helpers shared by the commands: Rich for people, JSON for pipelines."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from rich.console import Console
from rich.markup import escape
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table
from rich.text import Text

from memos_cli import progress
from memos_cli.governance.policy import PERSONA, as_identity, current_user

_CONTROLS = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f]")


class SafeConsole(Console):
    """A console that writes control characters from the data it shows (a cube's name, a
    source file's name, a memory's text) as ``\\xNN``, so that no input can move the cursor,
    clear the screen or retitle the terminal. Newlines and tabs stay; ``--json`` output does
    not go through it and stays exact."""

    def render_str(self, text: str, **kwargs: Any) -> Any:
        return super().render_str(_CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text),
                                  **kwargs)

    def print(self, *objects: Any, **kwargs: Any) -> None:
        """Off a terminal (a pipe, a file), tables are plain rows: no box, no wrapping at 80
        columns, so an id stays whole on its line for grep, cut and awk."""
        tables = [o for o in objects if isinstance(o, Table)]
        if not tables or self.is_terminal:
            super().print(*objects, **kwargs)
            return
        width = self._width
        for t in tables:
            t.box, t.show_edge, t.pad_edge = None, False, False
        self.width = 100_000
        try:
            super().print(*objects, **kwargs)
        finally:
            self._width = width


def plain(text: str, style: str = "") -> Text:
    """``text`` as Rich text that is shown as it is: never read as markup, and its control
    characters written as ``\\xNN`` (as :class:`SafeConsole` does for strings)."""
    return Text(_CONTROLS.sub(lambda m: f"\\x{ord(m.group()):02x}", text), style=style)


class DataTable(Table):
    """A Rich table whose text cells and title are shown as they are: what a cube, a source or
    a vault holds (a memory's ``- [x] done``, a name with ``[bold]`` or ``[link=...]``, an
    escape sequence) is never read as Rich markup nor sent to the terminal raw. A cell that is
    already a ``rich.text.Text`` is the caller's: make it with :func:`plain`."""

    def __init__(self, *columns: Any, title: str | Text | None = None, **kwargs: Any) -> None:
        super().__init__(*columns, title=plain(title) if isinstance(title, str) else title,
                         **kwargs)

    def add_row(self, *cells: Any, **kwargs: Any) -> None:
        super().add_row(*(plain(c) if isinstance(c, str) else c for c in cells), **kwargs)


out = SafeConsole(highlight=False, soft_wrap=True)
#: notes, warnings and progress on stderr (silenced by --quiet)
err = SafeConsole(stderr=True, highlight=False)
#: error lines on stderr, never silenced
fail = SafeConsole(stderr=True, highlight=False)


def warn_unsigned(where: object) -> None:
    """One warning line on stderr (also with ``--json``, whose stdout stays pure JSON): a
    signed cube was rewritten without a key and is unsigned now."""
    err.print(f"warning: {where} was signed and is now unsigned: re-sign with --key "
              "PRIVATE_KEY, or configure one (memos config set key team.key)", markup=False,
              soft_wrap=True)


def print_json(data: Any) -> None:
    """Plain JSON on stdout (no Rich markup), one document, newline-terminated."""
    sys.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
    sys.stdout.flush()


@contextmanager
def progress_bar() -> Iterator[Callable[[str, int, int], None]]:
    """A Rich progress bar on stderr; yields ``update(stage, done, total)``."""
    with Progress(TextColumn("{task.description}", markup=False), BarColumn(), MofNCompleteColumn(),
                  TimeElapsedColumn(), console=err, transient=True) as bar:
        tasks: dict[str, Any] = {}

        def update(stage: str, done: int, total: int) -> None:
            if stage not in tasks:
                tasks[stage] = bar.add_task(stage, total=total)
            bar.update(tasks[stage], completed=done, total=total)

        yield update


@contextmanager
def library_progress() -> Iterator[None]:
    """Show the library's :func:`memos_cli.progress.report` calls as a transient bar on
    stderr, started on the first report (small inputs never report) and only on a terminal."""
    if not err.is_terminal:
        yield
        return
    shown: list[Progress] = []
    tasks: dict[str, Any] = {}

    def hook(stage: str, done: int, total: int) -> None:
        if not shown:
            shown.append(Progress(TextColumn("{task.description}", markup=False), BarColumn(),
                                  MofNCompleteColumn(), TimeElapsedColumn(), console=err,
                                  transient=True))
            shown[0].start()
        if stage not in tasks:
            tasks[stage] = shown[0].add_task(stage, total=total)
        shown[0].update(tasks[stage], completed=done, total=total)
        if shown[0].finished:  # gone as soon as the long part is done
            shown.pop().stop()
            tasks.clear()

    try:
        with progress.shown_by(hook):
            yield
    finally:
        if shown:
            shown[0].stop()


@contextmanager
def status(text: str) -> Iterator[Callable[[str], None]]:
    """A Rich spinner on stderr; yields ``say(text)`` to change its text. The text is plain:
    names from the input (a bucket called ``b[/bold]``) are never read as markup."""
    with err.status(escape(text)) as st:
        yield lambda t: st.update(escape(t))


def check_as(value: str | None) -> str | None:
    """``--as`` callback: ``USER`` or ``USER/PERSONA`` with ``--persona`` applied, checked
    (``governance.as_identity``). Without ``--as``, ``--persona`` alone means the current user
    under that persona (so access is checked); with neither, ``None``."""
    if value is None:
        return current_user() if PERSONA[0] else None
    return as_identity(value)
