"""``memos push``, ``pull``, ``ls`` and ``outdated``: MemStore on OCI registries (§15)."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.markup import escape

from memos_cli.cli.cube import JSON_OPT
from memos_cli.cli.output import DataTable, out, print_json, status
from memos_cli.cli.vault_opts import VAULT_OPT
from memos_cli.errors import RemoteError
from memos_cli.memstore.listing import ls as do_ls
from memos_cli.memstore.listing import outdated as do_outdated
from memos_cli.memstore.pull import pull as do_pull
from memos_cli.memstore.push import push as do_push
from memos_cli.vault import Vault

PLAIN_HTTP_OPT = typer.Option(False, "--plain-http", help="Speak HTTP, not HTTPS, to the "
                              "registry (implied for localhost and 127.0.0.1).")
REF_HELP = ("oci://REGISTRY/REPOSITORY:TAG, or @sha256:DIGEST instead of the tag to pin "
            "exactly one artifact; or a cube in a bucket, s3://BUCKET/PREFIX/NAME.memcube.")


def push(
    cube: Path = typer.Argument(..., help="The .memcube directory to publish."),
    target: str = typer.Argument(..., metavar="REF", help="oci://REGISTRY/REPOSITORY:TAG "
                                 "(tag latest when none is given), or a bucket: "
                                 "s3://BUCKET/PREFIX/ (gs://, az://, file:// too)."),
    key: Path | None = typer.Option(None, "--key", metavar="PUB", help="Public key the "
                                    "signature must verify with; its fingerprint is "
                                    "published \\[default: the first trusted key that "
                                    "verifies it]."),
    force: bool = typer.Option(False, "--force", help="Replace a cube at a bucket path "
                               "(a registry tag always moves)."),
    plain_http: bool = PLAIN_HTTP_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Publish a verified cube to an OCI registry: one blob per file, a manifest whose
    annotations say what it holds, then the tag. Blobs the repository holds are not sent again.
    To a bucket: the cube's files, manifest.json last, so readers never take a half-written
    cube. Credentials and endpoint from AWS_* variables (AWS_ENDPOINT_URL for MinIO and the
    like).

    Example: [bold]memos push team.memcube oci://registry.example/team/kestrel:1.2[/bold]
    """
    with status(f"pushing {cube.name}"):
        report = do_push(cube, target, public_key=key, plain_http=plain_http, force=force)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"pushed {escape(report.ref)}@{report.digest}: {report.files} files, "
              f"{report.bytes:,} bytes ({report.uploaded} blobs sent), signer {report.signer}")


def pull(
    source: str = typer.Argument(..., metavar="REF", help=REF_HELP),
    output: Path = typer.Option(..., "--output", "-o", metavar="PATH",
                                help="Where to place the cube: NAME.memcube, or an existing "
                                "directory to place REPOSITORY.memcube in."),
    force: bool = typer.Option(False, "--force", help="Replace an existing cube (never a "
                               "file or another directory)."),
    allow_unsigned: bool = typer.Option(False, "--allow-unsigned", help="Accept an unsigned "
                                        "cube or one signed by a key you do not trust (never "
                                        "a tampered one)."),
    plain_http: bool = PLAIN_HTTP_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Download a cube from a registry, verify its digests and signature (against `memos
    trust`), and only then place it, atomically. A failed pull leaves nothing.

    Example: [bold]memos pull oci://registry.example/team/kestrel:1.2 -o kestrel.memcube[/bold]
    """
    with status(f"pulling {source}"):
        report = do_pull(source, output, force=force, allow_unsigned=allow_unsigned,
                         plain_http=plain_http)
    if as_json:
        print_json(report.to_dict())
        return
    out.print(f"pulled {escape(report.name)} ({report.cube_id}) from {escape(report.ref)} "
              f"to {escape(report.path)}: {report.files} files, {report.bytes:,} bytes, "
              f"signer {report.signer}")


def ls(
    remote: str = typer.Argument(..., metavar="REMOTE", help="oci://REGISTRY/REPOSITORY, or "
                                 "a prefix ending in / (oci://REGISTRY/ for all); or a "
                                 "bucket prefix, s3://BUCKET/PREFIX/."),
    match: str | None = typer.Option(None, "--match", metavar="TEXT", help="Only cubes "
                                     "whose repository, tag, name, description or id "
                                     "contains TEXT (case ignored)."),
    plain_http: bool = PLAIN_HTTP_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """List the cubes in a registry with their annotations (name, description, memories,
    tiers, signer), without downloading them.

    Example: [bold]memos ls oci://registry.example/team/ --match kestrel[/bold]
    """
    with status(f"listing {remote}"):
        rows, others = do_ls(remote, match=match, plain_http=plain_http)
    if as_json:
        print_json({"cubes": rows, "not_cubes": others})
        return
    t = DataTable(box=None)
    for col in ("ref", "name", "memories", "tiers", "revision", "created", "signer",
                "description"):
        t.add_column(col)
    for r in rows:
        t.add_row(r["ref"], r["name"], str(r["memories"]), ",".join(r["tiers"]),
                  str(r["revision"]), r["created"], r["signer"][:19], r["description"])
    out.print(t if rows else "no cubes")
    if others:
        out.print(f"({others} tags there are not cubes)")


def outdated(
    vault: str | None = VAULT_OPT,
    plain_http: bool = PLAIN_HTTP_OPT,
    as_json: bool = JSON_OPT,
) -> None:
    """Say which cubes installed from registries have newer tags there (created later, or a
    higher revision). Exit 0 when all are current, 1 when one is outdated, 14 when a registry
    could not be asked.

    Example: [bold]memos outdated --json[/bold]
    """
    with status("asking the registries"):
        rows = do_outdated(Vault(vault), plain_http=plain_http)
    if as_json:
        print_json(rows)
    elif not rows:
        out.print("no cube in the vault was installed from a registry")
    else:
        t = DataTable(box=None)
        for col in ("cube", "installed", "status", "latest"):
            t.add_column(col)
        for r in rows:
            t.add_row(r["name"] or r["cube_id"], r["installed"], r["status"],
                      r["latest"] or r.get("error") or "-")
        out.print(t)
    if any(r["status"] == "error" for r in rows):
        raise typer.Exit(RemoteError.exit_code)
    if any(r["status"] == "outdated" for r in rows):
        raise typer.Exit(1)


def register(app: typer.Typer) -> None:
    for fn in (push, pull, ls, outdated):
        app.command(fn.__name__)(fn)
