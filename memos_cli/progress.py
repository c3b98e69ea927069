"""Progress of long library work (a cube of a million memories takes a minute to read and
check): library code calls :func:`report`, and whoever runs it decides how to show it. The CLI
shows a bar on stderr when it is a terminal (``cli.output.library_progress``); a library
caller sees nothing unless it installs a hook with :func:`shown_by`."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar

#: ``hook(stage, done, total)``: ``done`` of ``total`` items of ``stage`` (a short phrase).
Hook = Callable[[str, int, int], None]

_HOOK: ContextVar[Hook | None] = ContextVar("memos_progress", default=None)

#: Work of fewer items is not reported: it ends before a bar is worth drawing.
MIN_TOTAL = 50_000


def report(stage: str, done: int, total: int) -> None:
    """Tell the installed hook that ``done`` of ``total`` items of ``stage`` are done."""
    hook = _HOOK.get()
    if hook is not None and total >= MIN_TOTAL:
        hook(stage, done, total)


@contextmanager
def shown_by(hook: Hook) -> Iterator[None]:
    """Send :func:`report` calls made in this block (in this thread or task) to ``hook``."""
    token = _HOOK.set(hook)
    try:
        yield
    finally:
        _HOOK.reset(token)
