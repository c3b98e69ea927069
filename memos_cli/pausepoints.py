"""Pause points that let tests force two processes to overlap at a chosen moment (#11).

A writer or reader calls :func:`pause` at named moments (``write:before-commit``,
``write:after-commit``, ``vault:read``, ``vault:before-commit``, ``verify:opened``,
``reader:batch``). Unless the environment variable ``MEMOS_TEST_PAUSE`` lists that name
(comma-separated), the call does nothing. When it does, the process creates
``$MEMOS_TEST_PAUSE_DIR/<name>.reached`` and waits until
``<name>.go`` appears there, for at most :data:`MAX_WAIT_S` seconds (nothing blocks forever),
so a test can run another command, or send a signal, at exactly that moment.
"""

from __future__ import annotations

import os
import time
from pathlib import Path

#: Longest a paused process waits for its ``.go`` file before it goes on by itself.
MAX_WAIT_S = 120.0


def pause(point: str) -> None:
    """Wait at ``point`` if ``MEMOS_TEST_PAUSE`` names it; see the module docstring."""
    names = os.environ.get("MEMOS_TEST_PAUSE")
    if not names or point not in names.split(","):
        return
    where = Path(os.environ.get("MEMOS_TEST_PAUSE_DIR", "."))
    tag = point.replace(":", "-")
    (where / f"{tag}.reached").touch()
    deadline = time.monotonic() + MAX_WAIT_S
    while not (where / f"{tag}.go").exists() and time.monotonic() < deadline:
        time.sleep(0.01)
