"""memos: a memory toolkit for LLMs built around portable ``.memcube`` directories.

The CLI is a thin shell over the library's entry point, :mod:`memos_cli.api`; a pipeline can
use it directly::

    from memos_cli.api import AnswerOptions, Session   # search, answer, add, dump, schedule
    from memos_cli import open_cube, verify             # the format (spec/memcube.md)
    from memos_cli.lifecycle.pack import pack           # sources -> signed cube
    from memos_cli.tiers.convert import convert_to_kv   # memories -> KV-cache segment

``docs/architecture.md`` says where every component lives.
"""

from memos_cli.cube import Cube, open_cube, reindex, verify
from memos_cli.errors import MemosError
from memos_cli.memory import Memory
from memos_cli.version import __version__

__all__ = ["Cube", "Memory", "MemosError", "__version__", "open_cube", "reindex", "verify"]
