"""The MemReader options of ``memos pack``, ``import`` and ``reindex`` (``--reader``,
``--model``, ``--reader-budget``), and the report line of each reader run."""

from __future__ import annotations

from typing import Any

import typer

from memos_cli.cli.output import err
from memos_cli.errors import UsageError
from memos_cli.lifecycle.pack import ReaderPlan
from memos_cli.readers import READERS, Budget, parse_names

MEMREADER_OPT = typer.Option(
    [], "--reader", metavar="NAME",
    help="Run a MemReader before indexing (repeatable or comma-separated): context "
         "(neighbouring turns), questions (doc2query with the local model), facts (derived "
         "fact memories), or none. pack: conversations (chat transcripts, LoCoMo, Letta) get "
         r"context unless told \[default: context for conversations, none otherwise].")
READER_MODEL_OPT = typer.Option(None, "--model", metavar="MODEL",
                                help=r"Chat model of the questions and facts readers \[default: "
                                     "$MEMOS_MODEL or SmolLM2-135M-Instruct].")
READER_BUDGET_OPT = typer.Option(
    None, "--reader-budget", metavar="SECONDS|Ntok",
    help="Stop the model readers after this long (600, 10m) or this many tokens (200000tok); "
         r"memories not reached get no rows, counted in the report \[default: no limit].")


def reader_plan(names: list[str], model: str | None, budget: str | None, *,
                default: Any = None) -> Any:
    """The :class:`~memos_cli.lifecycle.pack.ReaderPlan` of the reader options; ``default``
    when none was given (``pack``: :data:`~memos_cli.lifecycle.pack.BY_SOURCE`), ``None``
    for ``--reader none``.

    Raises:
        UsageError: an unknown reader name (a user's name gets a hint: ``--share-with``), a
            bad budget, or a budget or model without a reader.
    """
    if [n.strip() for item in names for n in item.split(",") if n.strip()] == ["none"]:
        if budget is not None or model is not None:
            raise UsageError("--reader-budget and --model need a --reader")
        return None
    if not names:
        if budget is not None or model is not None:
            raise UsageError("--reader-budget and --model need a --reader")
        return default
    for item in names:
        for n in item.split(","):
            if n.strip() and n.strip() not in READERS:
                raise UsageError(f"--reader {n.strip()!r} is not a MemReader (one of "
                                 f"{', '.join(READERS)}); to let a user read the memories, "
                                 f"use --share-with {n.strip()}")
    return ReaderPlan(parse_names(names), model=model,
                      budget=Budget.parse(budget))


def show_readers(records: list[dict[str, Any]]) -> None:
    """One line per MemReader run: what it made, what it could not parse or reach."""
    for r in records:
        made = (f"{r['index_rows']} index rows" if r["name"] != "facts"
                else f"{r['derived_memories']} derived memories")
        left = (f", {r['unparsed']} outputs unparsed" if r["unparsed"] else "") + (
            f", {r['not_reached']} not reached (budget)" if r["not_reached"] else "")
        model = f" with {r['model']['name']}" if r.get("model") else ""
        err.print(f"reader {r['name']}{model}: {made}{left} in {r['seconds']:.1f} s",
                  markup=False)
