"""``memos ls REMOTE`` and ``memos outdated``: what a registry offers, read from manifest
annotations alone (no blob is downloaded), and which installed cubes it has newer tags of."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from memos_cli.errors import MemosError, RemoteError
from memos_cli.memstore import artifact
from memos_cli.memstore.ref import OciRef, parse_ref
from memos_cli.memstore.registry import Registry
from memos_cli.objstore.cubes import current, list_cubes
from memos_cli.objstore.uri import is_store_uri


def _tagged(registry: Registry, repo: OciRef) -> tuple[list[dict[str, Any]], int]:
    """Summaries of the repository's tags that are cubes, and how many tags were not."""
    rows, others = [], 0
    for tag in registry.tags(repo):
        ref = repo.with_tag(tag)
        manifest, digest, _ = registry.manifest(ref)
        if not artifact.is_cube(manifest):
            others += 1
            continue
        rows.append(artifact.summary(str(ref), manifest, digest))
    return rows, others


def ls(remote: str, *, match: str | None = None, plain_http: bool = False
       ) -> tuple[list[dict[str, Any]], int]:
    """The cubes under ``remote`` (a repository, or a prefix ending in ``/``, or the whole
    registry), each tag with its annotations; and the number of tags that are not cubes.
    ``match`` keeps rows whose repository, tag, name, description or cube id contain it
    (case ignored).

    Raises:
        UsageError: a bad reference. RemoteError: unreachable, refused, or (for a prefix) a
        registry that does not offer ``/v2/_catalog``.
    """
    if is_store_uri(remote):
        return list_cubes(remote, match=match), 0
    ref = parse_ref(remote, listing=True)
    registry = Registry(ref, plain_http=plain_http)
    repos: list[str]
    if ref.repository and not ref.repository.endswith("/"):
        try:
            registry.tags(ref)
            repos = [ref.repository]
        except RemoteError as e:
            if "not found" not in str(e):
                raise
            repos = [r for r in registry.catalog() if r.startswith(ref.repository + "/")]
    else:
        repos = [r for r in registry.catalog() if r.startswith(ref.repository)]
    rows: list[dict[str, Any]] = []
    others = 0
    for name in repos:
        found, skipped = _tagged(registry, OciRef(ref.registry, name))
        rows += found
        others += skipped
    if match:
        needle = match.casefold()
        rows = [r for r in rows if any(needle in str(r[k]).casefold()
                                       for k in ("ref", "name", "description", "cube_id"))]
    return rows, others


def _when(row: dict[str, Any]) -> tuple[datetime | str, int]:
    try:
        created: datetime | str = datetime.fromisoformat(str(row.get("created", "")))
    except ValueError:
        created = str(row.get("created", ""))
    return created, int(row.get("revision") or 1)


def newer(installed: dict[str, Any], offered: list[dict[str, Any]]) -> dict[str, Any] | None:
    """The newest offered cube created after the installed one (by ``created``, then
    ``revision``) with another digest; ``None`` when none is."""
    base = _when(installed)
    later = [r for r in offered if r["digest"] != installed["digest"]
             and type(_when(r)[0]) is type(base[0]) and _when(r) > base]
    return max(later, key=_when) if later else None


def outdated(vault: Any, *, plain_http: bool = False) -> list[dict[str, Any]]:
    """One row per cube installed from a registry: ``status`` is ``current``, ``outdated``
    (``latest`` names the newest tag) or ``error`` (``error`` says why: unreachable, gone).
    Cubes loaded from local paths have no row."""
    rows = []
    for cube_id, info in sorted(vault.state(vectors=False).cubes.items()):
        origin = info.get("origin")
        if not isinstance(origin, dict) or not ("registry" in origin or "store" in origin):
            continue
        row: dict[str, Any] = {"cube_id": cube_id, "name": info.get("name", ""),
                               "installed": origin.get("ref", ""),
                               "installed_created": origin.get("created", ""),
                               "latest": None, "latest_created": None}
        try:
            if "store" in origin:  # a bucket: the cube now at the same URI

                offered = [current(origin["ref"])]
            else:
                repo = parse_ref(f"oci://{origin['registry']}/{origin['repository']}")
                offered, _ = _tagged(Registry(repo, plain_http=plain_http), repo)
            best = newer({"digest": origin.get("digest"), "created": origin.get("created"),
                          "revision": origin.get("revision")}, offered)
            row["status"] = "outdated" if best else "current"
            if best:
                row["latest"], row["latest_created"] = best["ref"], best["created"]
        except MemosError as e:
            row["status"], row["error"] = "error", str(e)
        rows.append(row)
    return rows
