"""``--as-of`` and ``--history``: which memories a command sees by valid time (spec §4.6)."""

from __future__ import annotations

import typer

from memos_cli.cli.output import out, plain

AS_OF_OPT = typer.Option(
    None, "--as-of", metavar="DATE",
    help="Use the memories that were valid at DATE (YYYY-MM-DD, YYYY-MM or an ISO 8601 "
         "time; a date alone means its end), superseded ones included \\[default: the "
         "current memories].")
HISTORY_OPT = typer.Option(
    False, "--history",
    help="Also show superseded memories, marked \"superseded on DATE by ID\".")
NOW_OPT = typer.Option(
    None, "--now", metavar="DATE",
    help="What dates the query names count from (\"last week\") \\[default: today].")
DATES_OPT = typer.Option(
    True, "--dates/--no-dates",
    help="A query that names a time (\"in February 2026\", \"last week\") sees the dated "
         r"memories valid then \[default: on].")


SUPERSEDE_OPT = typer.Option(
    True, "--supersede/--no-supersede",
    help="Decide each new memory against the current ones: a restatement is dropped, an "
         "update supersedes what it revises (kept as history) \\[default: on].")
DRY_RUN_OPT = typer.Option(False, "--dry-run",
                           help="Show the supersession decisions; write nothing.")


def counts_line(duplicates: int, updates: int, independent: int) -> str:
    """``2 duplicates, 1 update, 5 new`` for a report."""
    return (f"{duplicates} duplicate{'s' * (duplicates != 1)}, {updates} "
            f"update{'s' * (updates != 1)}, {independent} new")


def show_decisions(decisions: list[dict[str, object]], text_of: dict[str, str]) -> None:
    """One line per decision that is not "new": ``update 37c8f264 supersedes e5e65043
    (changed value: 32mb -> 64mb)``, escaped."""
    for d in decisions:
        target = str(d.get("target") or "")
        changed = d.get("changed") or {}
        what = ""
        if isinstance(changed, dict) and (changed.get("from") or changed.get("to")):
            what = f": {' '.join(changed.get('from') or []) or '-'} -> " \
                   f"{' '.join(changed.get('to') or []) or '-'}"
        verb = "supersedes" if d.get("kind") == "update" else "repeats"
        line = f"{d.get('kind')} {str(d.get('id'))[:8]} {verb} {target[:8]} ({d.get('rule')}" \
               f"{what})"
        if d.get("history"):
            line += ", older: goes into its history"
        out.print(plain(line))
        for i in (str(d.get("id")), target):
            if i in text_of:
                out.print(plain(f"    {i[:8]}: {text_of[i]}", "dim"))
