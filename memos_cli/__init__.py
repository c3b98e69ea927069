"""memos: a memory toolkit for LLMs built around portable ``.memcube`` directories.

Library entry points (the CLI is a thin shell over these)::

    from memos_cli import pack, open_cube, search, answer
"""

__version__ = "0.1.0"

from memos_cli.cube import Cube, open_cube, reindex, verify
from memos_cli.errors import MemosError
from memos_cli.memory import Memory

__all__ = ["Cube", "Memory", "MemosError", "__version__", "open_cube", "reindex", "verify"]
