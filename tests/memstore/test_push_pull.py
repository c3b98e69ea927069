"""MemStore against a real registry (Debian's docker-registry on 127.0.0.1): push, ls, pull,
digest pinning, load into a vault, outdated, and what oras-py makes of a pushed cube (#17)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

from memos_cli.cube.signature import key_fingerprint
from tests.conftest import invoke as cli
from tests.memstore.conftest import LocalRegistry


def js(*args: object, code: int = 0):  # type: ignore[no-untyped-def]
    return json.loads(cli(*args, "--json", code=code).stdout)


def files_of(cube: Path) -> dict[str, bytes]:
    return {p.relative_to(cube).as_posix(): p.read_bytes()
            for p in sorted(cube.rglob("*")) if p.is_file()}


def test_push_ls_pull_round_trip(registry: LocalRegistry, packed_cube: Path, tmp_path: Path,
                                 keys: tuple[Path, Path]) -> None:
    ref = registry.ref("team/roundtrip:1.0")
    pushed = js("push", packed_cube, ref, "--key", keys[1])
    assert pushed["signer"] == key_fingerprint(keys[1])
    assert pushed["files"] == len(files_of(packed_cube)) and pushed["uploaded"] == pushed["files"]

    listed = js("ls", registry.ref("team/roundtrip"))["cubes"]
    assert [r["ref"] for r in listed] == [ref]
    manifest = json.loads((packed_cube / "manifest.json").read_text())
    row = listed[0]
    assert (row["cube_id"], row["name"], row["memories"], row["digest"]) == (
        manifest["cube_id"], manifest["name"], manifest["counts"]["memories"], pushed["digest"])
    assert row["tiers"] == manifest["tiers"] and row["signer"] == pushed["signer"]

    out = tmp_path / "pulled.memcube"
    pulled = js("pull", ref, "-o", out)
    assert pulled["signer"] == "team" and pulled["digest"] == pushed["digest"]
    assert files_of(out) == files_of(packed_cube)  # byte for byte, signature included
    cli("verify", out, "--key", keys[1])
    shown = js("inspect", out)["pulled_from"]
    assert shown["ref"] == f"{ref}@{pushed['digest']}" and shown["signer"] == "team"
    assert shown["here"] is True
    # the pushed original holds the same files, but was not pulled to where it lies
    assert js("inspect", packed_cube)["pulled_from"]["here"] is False
    golden = Path(__file__).parents[2] / "fixtures/golden/v1.6.memcube"
    assert js("inspect", golden)["pulled_from"] is None  # never pulled here: nothing claimed

    checked = js("verify", ref, "--key", keys[1])  # read commands take a reference too
    assert checked["cube"] == ref and checked["signature"] == "verified"
    assert js("search", ref, "budget")["results"]

    again = js("push", packed_cube, registry.ref("team/roundtrip:again"))
    assert again["uploaded"] == 0 and again["digest"] == pushed["digest"]  # blobs reused


def test_ls_prefix_match_and_not_cubes(registry: LocalRegistry, packed_cube: Path,
                                       tmp_path: Path) -> None:
    import oras.client

    cli("push", packed_cube, registry.ref("shelf/alpha:1"))
    cli("push", packed_cube, registry.ref("shelf/beta:1"))
    plain = tmp_path / "notes.txt"
    plain.write_text("not a cube")
    oras.client.OrasClient(hostname=registry.host, insecure=True).push(
        target=f"{registry.host}/shelf/plain:1", files=[str(plain)],
        disable_path_validation=True)
    listing = js("ls", registry.ref("shelf/"))
    assert sorted(r["ref"].split("/", 3)[3] for r in listing["cubes"]) == [
        "shelf/alpha:1", "shelf/beta:1"]
    assert listing["not_cubes"] == 1
    assert [r["ref"] for r in js("ls", registry.ref("shelf/"), "--match", "BETA")["cubes"]] \
        == [registry.ref("shelf/beta:1")]
    text = cli("ls", registry.ref("shelf/")).stdout
    assert "shelf/alpha:1" in text and "1 tags there are not cubes" in text


def test_digest_pinning_survives_a_moved_tag(registry: LocalRegistry, packed_cube: Path,
                                             tmp_path: Path, keys: tuple[Path, Path]) -> None:
    ref = registry.ref("team/pinned:stable")
    first = js("push", packed_cube, ref)["digest"]
    newer = tmp_path / "newer.memcube"
    shutil.copytree(packed_cube, newer)
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"content": "The pinned cube gained a memory."}\n')
    cli("add", newer, extra, "--key", keys[0])
    second = js("push", newer, ref)["digest"]
    assert first != second
    pinned = registry.ref(f"team/pinned@{first}")
    cli("pull", pinned, "-o", tmp_path / "old.memcube")
    assert files_of(tmp_path / "old.memcube") == files_of(packed_cube)
    cli("pull", ref, "-o", tmp_path / "tip.memcube")
    assert files_of(tmp_path / "tip.memcube") == files_of(newer)


def test_load_from_registry_and_outdated(registry: LocalRegistry, packed_cube: Path,
                                         tmp_path: Path, keys: tuple[Path, Path]) -> None:
    vault = tmp_path / "vault"
    cli("push", packed_cube, registry.ref("team/kestrel:1.0"))
    loaded = js("load", registry.ref("team/kestrel:1.0"), "--vault", vault)
    assert loaded["signer"] == "team" and loaded["added"] > 0
    shown = js("vault", "show", loaded["cube_id"], "--vault", vault)
    assert shown["source"].startswith(registry.ref("team/kestrel:1.0@sha256:"))
    rows = js("outdated", "--vault", vault)
    assert [(r["name"], r["status"]) for r in rows] == [(loaded["name"], "current")]

    newer = tmp_path / "kestrel.memcube"
    shutil.copytree(packed_cube, newer)
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"content": "Kestrel moved its launch to May."}\n')
    cli("add", newer, extra, "--key", keys[0])
    cli("push", newer, registry.ref("team/kestrel:1.1"))
    rows = js("outdated", "--vault", vault, code=1)
    assert rows[0]["status"] == "outdated"
    assert rows[0]["latest"] == registry.ref("team/kestrel:1.1")

    update = js("load", registry.ref("team/kestrel:1.1"), "--vault", vault)
    assert update["cube_id"] == loaded["cube_id"] and update["added"] == 1
    assert update["duplicates"] == loaded["added"]  # the rest were installed already
    assert js("outdated", "--vault", vault)[0]["status"] == "current"


def test_oras_py_pulls_a_directory_memos_verifies(registry: LocalRegistry, packed_cube: Path,
                                                  tmp_path: Path, keys: tuple[Path, Path]
                                                  ) -> None:
    """Another tool: oras-py's own pull, knowing nothing of memos, recreates the cube."""
    import oras.client

    cli("push", packed_cube, registry.ref("team/interop:1"))
    out = tmp_path / "by-oras.memcube"
    client = oras.client.OrasClient(hostname=registry.host, insecure=True)
    client.pull(target=f"{registry.host}/team/interop:1", outdir=str(out))
    assert files_of(out) == files_of(packed_cube)
    cli("verify", out, "--key", keys[1])


def test_pull_into_a_folder_never_replaces_it(registry: LocalRegistry, packed_cube: Path,
                                              tmp_path: Path) -> None:
    """#28 bug 1: ``pull -o scratch/ --force`` replaced an ordinary folder with the cube. A
    directory that is not a cube receives the cube inside it; --force replaces only a cube."""
    ref = registry.ref("team/intofolder:1")
    cli("push", packed_cube, ref)
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "precious.txt").write_text("keep me")
    pulled = js("pull", ref, "-o", scratch, "--force", "--allow-unsigned")
    assert pulled["path"] == str(scratch / "intofolder.memcube")
    assert (scratch / "precious.txt").read_text() == "keep me"
    assert files_of(scratch / "intofolder.memcube") == files_of(packed_cube)
    # again: the cube inside is a cube, so --force replaces it (and only it)
    cli("pull", ref, "-o", scratch, "--force", "--allow-unsigned")
    assert sorted(p.name for p in scratch.iterdir()) == ["intofolder.memcube", "precious.txt"]
    cli("pull", ref, "-o", scratch, "--allow-unsigned", code=5)  # no --force: refused

    # a folder named like a cube that is not one is a folder: the cube goes inside it
    fake = tmp_path / "fake.memcube"
    fake.mkdir()
    (fake / "precious.txt").write_text("keep me too")
    cli("pull", ref, "-o", fake, "--force", "--allow-unsigned")
    assert sorted(p.name for p in fake.iterdir()) == ["intofolder.memcube", "precious.txt"]
    # and where the cube would go stands a folder that is not a cube: never replaced
    other = tmp_path / "other"
    (other / "intofolder.memcube").mkdir(parents=True)
    (other / "intofolder.memcube" / "precious.txt").write_text("keep")
    line = cli("pull", ref, "-o", other, "--force", "--allow-unsigned", code=5).output
    assert "replaces only a cube" in line and "Traceback" not in line
    assert [p.name for p in (other / "intofolder.memcube").iterdir()] == ["precious.txt"]
    assert [p.name for p in other.iterdir()] == ["intofolder.memcube"]  # no temporary left

    # nor a file
    plain = tmp_path / "notes.memcube"
    plain.write_text("a file")
    cli("pull", ref, "-o", plain, "--force", "--allow-unsigned", code=5)
    assert plain.read_text() == "a file"

    # a path that is neither an existing folder nor NAME.memcube: refused like pack -o
    line = cli("pull", ref, "-o", tmp_path / "newname", "--allow-unsigned", code=2).output
    assert "must end in .memcube" in line
    assert not (tmp_path / "newname").exists()


def test_pushing_an_unchanged_rebuild_sends_no_blob(registry: LocalRegistry, tmp_path: Path,
                                                    monkeypatch,  # type: ignore[no-untyped-def]
                                                    keys: tuple[Path, Path]) -> None:
    """A nightly CI rebuild of unchanged sources (spec §9.2, format 1.8): the second pack is
    byte-identical, so its push uploads nothing and tags the same artifact; a changed
    source uploads only what changed (memories, index, manifest)."""
    monkeypatch.setenv("SOURCE_DATE_EPOCH", "1700000000")
    src = tmp_path / "notes"
    src.mkdir()
    (src / "a.md").write_text("The deploy window is Tuesday.\n\nBackups run at 02:00.\n")
    ref = registry.ref("ci/nightly:1")
    cli("pack", src, "-o", tmp_path / "mon/notes.memcube", "-q")
    first = js("push", tmp_path / "mon/notes.memcube", ref)
    cli("pack", src, "-o", tmp_path / "tue/notes.memcube", "-q")
    second = js("push", tmp_path / "tue/notes.memcube", ref)
    assert first["uploaded"] == first["files"] == 3
    assert second["uploaded"] == 0 and second["digest"] == first["digest"]
    (src / "a.md").write_text("The deploy window is Wednesday.\n\nBackups run at 02:00.\n")
    cli("pack", src, "-o", tmp_path / "wed/notes.memcube", "-q")
    third = js("push", tmp_path / "wed/notes.memcube", ref)
    assert third["uploaded"] == 3 and third["digest"] != first["digest"]
    for day in ("thu", "fri"):  # signed rebuilds too: RFC 6979 signatures are the same bytes
        cli("pack", src, "-o", tmp_path / day / "notes.memcube", "-q", "--key", keys[0])
    signed = js("push", tmp_path / "thu/notes.memcube", ref)
    again = js("push", tmp_path / "fri/notes.memcube", ref)
    assert signed["uploaded"] == 1 and again["uploaded"] == 0  # memcube.sig alone was new
    assert again["digest"] == signed["digest"]
