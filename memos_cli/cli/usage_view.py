"""Rendering usage indicators for ``inspect --usage`` and ``vault ls --usage``."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from memos_cli.cli.output import DataTable, out
from memos_cli.memory import format_time


def show_memories(indicators: dict[str, Any], memories: Sequence[Any], *, where: str,
                  limit: int) -> None:
    """The used memories, most used first (decay score), ``limit`` rows at most."""
    by_id = {m.id: m for m in memories}
    used = sorted((u for u in indicators.values() if u.memory_id in by_id),
                  key=lambda u: (-u.score, u.memory_id))
    if not used:
        out.print(f"usage: none recorded yet ({where})", markup=False)
        return
    t = DataTable(title=f"usage of {len(used)} of {len(memories)} memories ({where})",
              title_justify="left")
    for col in ("id", "retrieved", "used", "first use", "last use", "score", "text"):
        t.add_column(col, overflow="fold")
    for u in used[:max(limit, 0)]:
        t.add_row(u.memory_id[:8], str(u.retrievals), str(u.uses),
                  (format_time(u.first_use) or "")[:19], (format_time(u.last_use) or "")[:19],
                  f"{u.score:.3g}", by_id[u.memory_id].render()[:60])
    out.print(t)
    if len(used) > limit:
        out.print(f"... and {len(used) - limit} more (--memories N, or --json for all)")


def totals(indicators: dict[str, Any], ids: set[str]) -> dict[str, Any]:
    """Per-cube sums: retrievals, uses, memories used, last use."""
    mine = [u for u in indicators.values() if u.memory_id in ids]
    last = max((u.last_use for u in mine), default=None)
    return {"retrievals": sum(u.retrievals for u in mine), "uses": sum(u.uses for u in mine),
            "memories_used": len(mine), "last_use": format_time(last)}
