"""``memos dump``: export what a user may read (MemDumper)."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import typer

from memos_cli import config
from memos_cli.api import Session
from memos_cli.cli.cube import EMBEDDER_OPT, JSON_OPT
from memos_cli.cli.cube_args import open_arg
from memos_cli.cli.output import check_as, err, out, print_json, status
from memos_cli.cli.source_opts import pack_time
from memos_cli.errors import UsageError
from memos_cli.governance.redact import parse_types, read_terms
from memos_cli.lifecycle.dump import Filter, check_target


def dump_command(
    cube: str | None = typer.Argument(None, help="The .memcube directory to export from "
                                                  "(left out with --vault)."),
    output: Path = typer.Option(..., "--output", "-o", help="OUT.jsonl, OUT.md or "
                                                            "OUT.memcube; - for stdout "
                                                            "(JSONL, or --format markdown)."),
    vault: str | None = typer.Option(None, "--vault", metavar="DIR|URI",
                                      help="Export from the cubes installed in this vault."),
    as_user: str | None = typer.Option(None, "--as", callback=check_as, metavar="USER[/PERSONA]",
                                       help="Export what this user may read "
                                                         "\\[default: $MEMOS_USER or login]."),
    filter_: str | None = typer.Option(None, "--filter",
                                       help="owner=,tag=,type=,source=,since=,until="),
    fmt: str | None = typer.Option(None, "--format", help="jsonl or markdown (both lossless), "
                                   "or memcube \\[default: from the output's extension: .jsonl, "
                                   ".md, .memcube]."),
    redact: str | None = typer.Option(None, "--redact", help="Personal data to replace: all, "
                                      "or some of email,phone,credit_card,iban,ip,ssn,url,"
                                      "crypto,id_number,person,location (Microsoft "
                                      "Presidio; id_number: a number its label names, "
                                      "as a licence or passport)."),
    keep_terms: Path | None = typer.Option(None, "--keep-terms", metavar="FILE", help="Terms "
                                           "never redacted, one per line (product names)."),
    redact_terms: Path | None = typer.Option(None, "--redact-terms", metavar="FILE",
                                             help="Terms always redacted, one per line."),
    key: Path | None = typer.Option(None, "--key", help="Sign a memcube export."),
    with_usage: bool = typer.Option(False, "--with-usage", help="Also export the memories' "
                                    "usage indicators (OUT.usage.jsonl, or usage.jsonl in a "
                                    "memcube)."),
    embedder: Path | None = EMBEDDER_OPT,
    no_derived: bool = typer.Option(False, "--no-derived",
                                    help="Leave out memories a MemReader derived (facts); "
                                         "they are exported marked as derived otherwise."),
    force: bool = typer.Option(False, "--force", help="Replace an existing output."),
    as_json: bool = JSON_OPT,
) -> None:
    """Export the memories a user may read, with their permission metadata and the access log
    of the exported memories (atomic).

    Example: [bold]memos dump team.memcube -o ann.memcube --format memcube --as ann
    --redact all --key team.key[/bold]; [bold]memos dump --vault ~/vault -o all.md --format
    markdown[/bold]
    """
    if (cube is None) == (vault is None):
        raise UsageError("give a cube or --vault (one of them)")
    to_stdout = str(output) == "-"  # as sqlite-utils, jq and tar: the export on stdout
    fmt = (fmt or "jsonl") if to_stdout else output_format(output, fmt)
    if to_stdout and fmt == "memcube":
        raise UsageError("-o - writes JSONL or Markdown to stdout; a memcube is a directory")
    if to_stdout and (as_json or with_usage):
        raise UsageError("-o - puts the export itself on stdout: --json and --with-usage "
                         "need a file")
    if not to_stdout:
        check_target(output, fmt, force=force)  # before the embedder, the cube and redaction
    types = parse_types(redact) if redact else ()
    if (keep_terms or redact_terms) and not types:
        raise UsageError("--keep-terms and --redact-terms go with --redact")
    with status("exporting" + (" and redacting" if types else "")) as say, \
            tempfile.TemporaryDirectory(prefix="memos-dump-") as tmp:
        session = Session([open_arg(cube)] if cube is not None else [], vault=vault,
                          user=as_user, embedder=embedder, status=say)
        target = Path(tmp) / f"export.{'md' if fmt == 'markdown' else fmt}" if to_stdout \
            else output
        report = session.dump(target, fmt=fmt, keep=Filter.parse(filter_), redact=types,
                              key=config.signing_key(key), force=force,
                              with_usage=with_usage, derived=not no_derived, now=pack_time(),
                              keep_terms=read_terms(str(keep_terms) if keep_terms else None),
                              redact_terms=read_terms(str(redact_terms) if redact_terms
                                                      else None))
        if to_stdout:
            sys.stdout.write(target.read_text(encoding="utf-8"))
            sys.stdout.flush()
    if to_stdout:  # the export is stdout; what was done goes to stderr
        err.print(f"exported {report.memories} memories to stdout ({report.format}); "
                  f"{report.withheld} withheld", markup=False)
        return
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"exported {report.memories} memories to {report.path} ({report.format}); "
              f"{report.withheld} withheld (not readable by the user or filtered out)")
    if report.redaction:
        counts = report.redaction["counts"]
        out.print("redacted: " + (", ".join(f"{n} {t}" for t, n in counts.items()) or
                                  "nothing found"))


#: Output extensions and the format each means.
EXTENSIONS = {".jsonl": "jsonl", ".ndjson": "jsonl", ".md": "markdown", ".markdown": "markdown",
              ".memcube": "memcube"}


def output_format(output: Path, fmt: str | None) -> str:
    """The export format: ``fmt`` if given, else the output's extension (as pandas and DuckDB
    infer it). Raises ``UsageError`` when they disagree or neither says."""
    implied = EXTENSIONS.get(output.suffix.lower())
    if fmt is None:
        if implied is None:
            raise UsageError(f"cannot tell the format from {output.name!r}: name it .jsonl, .md "
                             "or .memcube, or give --format")
        return implied
    if implied is not None and implied != fmt:
        raise UsageError(f"--format {fmt} does not match the output name {output.name!r} "
                         f"(which means {implied})")
    return fmt


def register(app: typer.Typer) -> None:
    app.command("dump")(dump_command)
