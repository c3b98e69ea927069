"""The choices of the options that take one of a few words, as types: Typer shows them in
``--help`` (``--tier <auto|text|kv|lora>``), completes them in the shell and refuses anything
else with a usage error. ``tests/cli/test_help.py`` checks each against the library's own
tuple, so the two cannot drift."""

from __future__ import annotations

from typing import Literal

Tier = Literal["auto", "text", "kv", "lora"]  # memos_cli.api.TIERS
Compose = Literal["rerotate", "naive"]  # memos_cli.api.COMPOSE
Combine = Literal["route", "cat", "linear"]  # memos_cli.api.COMBINE
RecomputeRule = Literal["deviation", "first", "none"]  # memos_cli.api.RECOMPUTE_RULES
Device = Literal["auto", "cpu", "cuda", "mps"]  # memos_cli.models.chat.DEVICES
Policy = Literal["decay", "lfu", "lru", "memos"]  # memos_cli.scheduler.policy.POLICIES
Dtype = Literal["float32", "bfloat16", "float16", "int8"]  # memos_cli.cube.kv.STORAGE_DTYPES
OnConflict = Literal["version", "skip", "replace"]  # memos_cli.vault.CONFLICT_POLICIES
McpTransport = Literal["stdio", "http"]  # memos mcp --transport
Extractor = Literal["rules", "model"]  # memos_cli.api.chat.EXTRACTORS
