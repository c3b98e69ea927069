"""memos: a memory toolkit for LLMs built around portable ``.memcube`` directories.

The CLI is a thin shell over the library; a pipeline can use it directly::

    from memos_cli import open_cube, verify
    from memos_cli.pack import pack                      # sources -> signed cube
    from memos_cli.convert import convert_to_kv          # memories -> KV-cache segment
    from memos_cli.tiers.plaintext import retrieve, answer
    from memos_cli.tiers.kv import answer_kv
"""

from memos_cli.cube import Cube, open_cube, reindex, verify
from memos_cli.errors import MemosError
from memos_cli.memory import Memory
from memos_cli.version import __version__

__all__ = ["Cube", "Memory", "MemosError", "__version__", "open_cube", "reindex", "verify"]
