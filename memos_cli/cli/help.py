"""How commands present themselves: metavars, usage lines, global flags anywhere, and
missing-argument errors that say what to give.

Typer 0.29 shows every option's Python type (``<str>``, ``<bool>``) and wraps required
arguments in braces on the usage line (``{CUBE}``). memos shows Click's conventions instead
(``TEXT``, ``N``, ``PATH``, nothing for a flag; ``CUBE QUERY``), the usage line ``git`` and
``llm`` users read.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any, get_args, get_origin

import typer
from typer._click.core import Context, Parameter
from typer._click.exceptions import MissingParameter, UsageError
from typer.core import TyperArgument, TyperCommand, TyperOption

#: Flags accepted before or after the subcommand (moved to the front before parsing).
GLOBAL_FLAGS = ("--debug", "--quiet", "-q", "--verbose", "-v")

_TYPES: dict[Any, str] = {int: "N", float: "X", str: "TEXT", bool: "BOOL"}


#: Global options that take a value (``--persona NAME`` or ``--persona=NAME``).
GLOBAL_VALUED = ("--persona",)


def hoist_global_flags(args: list[str]) -> list[str]:
    """``args`` with the global flags (and valued global options with their values) moved to
    the front (those after ``--`` stay)."""
    cut = args.index("--") if "--" in args else len(args)
    flags: list[str] = []
    rest: list[str] = []
    i = 0
    while i < cut:
        a = args[i]
        if a in GLOBAL_FLAGS or (a.split("=", 1)[0] in GLOBAL_VALUED and "=" in a):
            flags.append(a)
        elif a in GLOBAL_VALUED and i + 1 < cut:
            flags += [a, args[i + 1]]
            i += 1
        else:
            rest.append(a)
        i += 1
    return flags + rest + args[cut:]


def _metavar(param: Parameter) -> str | None:
    if isinstance(param, TyperOption) and param.is_flag:
        return ""
    desc = getattr(param, "type_descriptor", None)
    if desc is None or desc.is_choice:
        return None  # Typer lists the choices
    ann = desc.annotation
    if get_origin(ann) is list:  # a repeatable option: the metavar of one value
        ann = get_args(ann)[0]
    if desc.is_path or ann is Path:
        return "PATH"
    return _TYPES.get(ann)


def tidy(params: list[Parameter]) -> None:
    """Give every parameter without a metavar a Click-style one (in place)."""
    for p in params:
        if p.metavar is None:
            p.metavar = p.name.upper() if isinstance(p, TyperArgument) and p.name \
                else _metavar(p)
        if isinstance(p, TyperArgument):  # the name says it; no "<str>" column
            p.display_type_rich = lambda ctx: None  # type: ignore[method-assign]


class MemosCommand(TyperCommand):
    """A Typer command with Click-style metavars, a plain usage line, and a missing-argument
    error that shows the command's example."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        if self.help:
            self.help = reflow(self.help)

    def get_params(self, ctx: Context) -> list[Parameter]:
        params = super().get_params(ctx)
        tidy(params)
        return params

    def collect_usage_pieces(self, ctx: Context) -> list[str]:
        pieces = [self.options_metavar] if self.options_metavar else []
        for p in self.get_params(ctx):
            if isinstance(p, TyperArgument) and p.metavar != "":
                name = p.metavar or (p.name or "").upper()
                if p.nargs != 1 and not name.endswith("..."):
                    name += "..."
                pieces.append(name if p.required or name.startswith("[") else f"[{name}]")
        return pieces

    def parse_args(self, ctx: Context, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except MissingParameter as e:
            example = first_example(self.help or "")
            hint = f"; for example: {example}" if example else ""
            p = e.param
            if isinstance(p, TyperOption):
                what = f"option {'/'.join(p.opts)} {p.metavar or ''}".rstrip()
            else:
                what = p.metavar if p is not None and p.metavar else "an argument"
            raise UsageError(f"missing {what}{hint}", ctx) from None


def reflow(text: str) -> str:
    """A docstring with the line breaks inside each paragraph removed (Rich markup mode keeps
    them, which wraps help raggedly); paragraphs stay apart."""
    import inspect

    return "\n\n".join(" ".join(p.split()) for p in inspect.cleandoc(text).split("\n\n"))


def first_example(help_text: str) -> str | None:
    """The first command of the ``Example:`` line of a docstring, markup removed."""
    m = re.search(r"Example:\s*(.+?)(?:;|\n\n|$)", help_text, re.S)
    if not m:
        return None
    return re.sub(r"\[/?[a-z ]+\]", "", " ".join(m.group(1).split())).strip() or None


class MemosTyper(typer.Typer):
    """``typer.Typer`` whose commands are :class:`MemosCommand` unless told otherwise."""

    def command(self, *args: Any, cls: type[TyperCommand] | None = None,
                **kwargs: Any) -> Any:
        return super().command(*args, cls=cls or MemosCommand, **kwargs)
