"""The version of memos (the tool; the ``.memcube`` format has its own, spec §1)."""

__version__ = "0.1.0"
