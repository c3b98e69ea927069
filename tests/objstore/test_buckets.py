"""Cubes in buckets against a real S3 API (moto's server on 127.0.0.1): push, ls, pull, load,
outdated, and what an interrupted writer, a tampered object, a hostile key, refused
credentials and an endpoint that does not answer do (#16 object storage, #17 bucket path)."""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tests.attacks.test_concurrency import Held
from tests.memstore.conftest import free_port
from tests.memstore.test_bad_input import nothing_beside, one_line_error
from tests.memstore.test_push_pull import cli, files_of, js


def s3(bucket: str, key: str = "") -> str:
    return f"s3://{bucket}/{key}"


def test_push_ls_pull_load_outdated(bucket: str, packed_cube: Path, tmp_path: Path,
                                    keys: tuple[Path, Path]) -> None:
    pushed = js("push", packed_cube, s3(bucket, "team/"), "--key", keys[1])
    where = s3(bucket, "team/team.memcube")
    assert pushed["ref"] == where and pushed["files"] == len(files_of(packed_cube))
    assert one_line_error(cli("push", packed_cube, s3(bucket, "team/"), code=5))

    listed = js("ls", s3(bucket))["cubes"]
    assert [(r["ref"], r["signer"], r["digest"]) for r in listed] == [
        (where, "signed", pushed["digest"])]

    out = tmp_path / "pulled.memcube"
    assert js("pull", where, "-o", out)["signer"] == "team"
    assert files_of(out) == files_of(packed_cube)
    assert js("inspect", out)["pulled_from"]["ref"] == where

    vault = tmp_path / "vault"
    loaded = js("load", where, "--vault", vault)
    assert loaded["added"] > 0
    assert js("outdated", "--vault", vault)[0]["status"] == "current"

    newer = tmp_path / "team.memcube"
    shutil.copytree(packed_cube, newer)
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"content": "The bucket copy gained a memory."}\n')
    cli("add", newer, extra, "--key", keys[0])
    cli("push", newer, s3(bucket, "team/"), "--force")
    rows = js("outdated", "--vault", vault, code=1)
    assert rows[0]["status"] == "outdated" and rows[0]["latest"] == where
    assert js("load", where, "--vault", vault)["added"] == 1


def test_file_uris_take_the_same_path(packed_cube: Path, tmp_path: Path) -> None:
    target = f"file://{tmp_path}/shelf/"
    cli("push", packed_cube, target)
    out = tmp_path / "back.memcube"
    cli("pull", f"file://{tmp_path}/shelf/team.memcube", "-o", out)
    assert files_of(out) == files_of(packed_cube)


def test_a_half_written_cube_is_never_read(bucket: str, packed_cube: Path,
                                           tmp_path: Path) -> None:
    """A push killed after its first object leaves objects but no manifest: ls passes it over,
    pull refuses it as incomplete, and the next push completes it."""
    held = Held(tmp_path, "bucket:object", "push", packed_cube, s3(bucket, "half/"))
    held.reached()
    held.kill()
    where = s3(bucket, "half/team.memcube")
    assert js("ls", s3(bucket))["cubes"] == []
    out = tmp_path / "x.memcube"
    assert "incomplete cube" in one_line_error(cli("pull", where, "-o", out, code=6))
    nothing_beside(out)
    cli("push", packed_cube, s3(bucket, "half/"))  # no --force: there was no complete cube
    cli("pull", where, "-o", out)
    assert files_of(out) == files_of(packed_cube)


def test_a_tampered_object_is_refused(bucket: str, packed_cube: Path, tmp_path: Path) -> None:
    import pyarrow.fs as pafs

    cli("push", packed_cube, s3(bucket, "t/"))
    fs = pafs.S3FileSystem(endpoint_override=os.environ["AWS_ENDPOINT_URL"])
    key = f"{bucket}/t/team.memcube/memories.arrow"
    with fs.open_input_stream(key) as f:
        data = bytearray(f.read())
    data[len(data) // 2] ^= 0xFF
    with fs.open_output_stream(key) as o:
        o.write(bytes(data))
    out = tmp_path / "x.memcube"
    line = one_line_error(cli("pull", s3(bucket, "t/team.memcube"), "-o", out, code=7))
    assert line.startswith(f"error: {s3(bucket, 't/team.memcube')}: memories.arrow")
    nothing_beside(out)


def test_a_key_that_climbs_out_is_refused(bucket: str, packed_cube: Path,
                                          tmp_path: Path) -> None:
    import boto3

    cli("push", packed_cube, s3(bucket, "k/"))
    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).put_object(
        Bucket=bucket, Key="k/team.memcube/kv/../../../escaped.txt", Body=b"x")
    work = tmp_path / "work"
    work.mkdir()
    out = work / "x.memcube"
    assert "not a plain relative path" in one_line_error(
        cli("pull", s3(bucket, "k/team.memcube"), "-o", out, code=6))
    assert list(work.iterdir()) == [] and not (tmp_path / "escaped.txt").exists()


def test_unreachable_and_silent_endpoints(packed_cube: Path, tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "MEMOS_REMOTE_TIMEOUT": "2"}.items():
        monkeypatch.setenv(k, v)
    out = tmp_path / "x.memcube"
    started = time.monotonic()
    monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{free_port()}")
    one_line_error(cli("pull", "s3://b/team.memcube", "-o", out, code=14))
    with socket.socket() as silent:
        silent.bind(("127.0.0.1", 0))
        silent.listen(8)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{silent.getsockname()[1]}")
        one_line_error(cli("pull", "s3://b/team.memcube", "-o", out, code=14))
        one_line_error(cli("push", packed_cube, "s3://b/", code=14))
    assert time.monotonic() - started < 60
    nothing_beside(out)


def test_refused_credentials(packed_cube: Path, tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """A server that checks credentials (moto with authentication on) refuses unknown keys
    and anonymous requests: one line, exit 14."""
    port = free_port()
    env = {**os.environ, "INITIAL_NO_AUTH_ACTION_COUNT": "0"}
    proc = subprocess.Popen([sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p",
                             str(port)], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + 30
        while True:
            with socket.socket() as s:
                if s.connect_ex(("127.0.0.1", port)) == 0:
                    break
            assert time.monotonic() < deadline and proc.poll() is None
            time.sleep(0.1)
        monkeypatch.setenv("AWS_ENDPOINT_URL", f"http://127.0.0.1:{port}")
        monkeypatch.setenv("AWS_DEFAULT_REGION", "us-east-1")
        monkeypatch.setenv("AWS_ACCESS_KEY_ID", "AKIAUNKNOWN")
        monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", "wrong")
        line = one_line_error(cli("push", packed_cube, "s3://b/", code=14))
        assert "access denied" in line or "refusing" in line
        out = tmp_path / "x.memcube"
        one_line_error(cli("pull", "s3://b/team.memcube", "-o", out, code=14))
        nothing_beside(out)
        vault = one_line_error(cli("load", packed_cube, "--vault", "s3://b/vault", code=14))
        assert "access denied" in vault or "refusing" in vault
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_commands_take_bucket_uris(bucket: str, tmp_path: Path, tiny_llama: Path,
                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """pack -o, verify, inspect, search, run, dump and convert on a cube that lives in a
    bucket: each reads a checked temporary copy, and writers publish manifest-last."""
    from tests.conftest import ROOT

    monkeypatch.chdir(ROOT)
    where = s3(bucket, "made/team.memcube")
    packed = js("pack", "fixtures/corpus", "-o", where)
    assert packed["path"] == where
    assert one_line_error(cli("pack", "fixtures/corpus", "-o", where, code=5))
    report = js("verify", where)
    assert report["cube"] == where and report["ok"]
    assert js("inspect", where)["manifest"]["cube_id"] == packed["cube_id"]
    found = js("search", where, "budget")
    assert found["cube"] == where and "budget" in found["results"][0]["text"].lower()
    out = tmp_path / "dump.jsonl"
    cli("dump", where, "-o", out, "--as", "tester")
    assert len(out.read_text().splitlines()) == packed["memories"]

    before = js("ls", s3(bucket))["cubes"][0]["digest"]
    cli("convert", where, "--to", "kv", "--model", tiny_llama)
    after = js("inspect", where)["manifest"]
    assert "activation" in after["tiers"] and js("ls", s3(bucket))["cubes"][0]["digest"] != before
    answer = js("run", where, "What budget did we agree on?", "--model", tiny_llama,
                "--max-new-tokens", "4")
    assert answer["memories"]
    assert "registry" not in one_line_error(cli("verify", s3(bucket, "made/absent.memcube"),
                                                code=4))


def test_pull_from_a_bucket_into_a_folder_keeps_the_folder(packed_cube: Path,
                                                           tmp_path: Path) -> None:
    """#28 bug 1, the bucket path: a folder given as -o receives NAME.memcube inside it."""
    cli("push", packed_cube, f"file://{tmp_path}/shelf/")
    scratch = tmp_path / "scratch"
    scratch.mkdir()
    (scratch / "precious.txt").write_text("keep me")
    cli("pull", f"file://{tmp_path}/shelf/team.memcube", "-o", scratch, "--force",
        "--allow-unsigned")
    assert (scratch / "precious.txt").read_text() == "keep me"
    assert files_of(scratch / "team.memcube") == files_of(packed_cube)
