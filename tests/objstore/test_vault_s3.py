"""A vault in a bucket against a real S3 API (moto's server on 127.0.0.1): every vault
command with ``--vault s3://...``, two writers at once relying on Lance's conditional commits,
and an endpoint that does not answer (#16)."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from tests.attacks.test_concurrency import Held
from tests.memstore.conftest import free_port
from tests.memstore.test_bad_input import one_line_error
from tests.memstore.test_push_pull import cli, js


def keys_under(bucket: str, prefix: str) -> list[str]:
    import boto3

    s3 = boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"])
    got = s3.list_objects_v2(Bucket=bucket, Prefix=prefix).get("Contents", [])
    return sorted(o["Key"] for o in got)


def test_every_vault_command_on_a_bucket(bucket: str, packed_cube: Path,
                                         tmp_path: Path) -> None:
    vault = f"s3://{bucket}/team/vault"
    loaded = js("load", packed_cube, "--vault", vault, "--allow-unsigned")
    assert loaded["added"] == 18
    listed = js("vault", "ls", "--vault", vault)
    assert [c["memories"] for c in listed["cubes"]] == [18]
    first = listed["version"]
    assert keys_under(bucket, "team/vault/lance/vault.lance/_versions/")

    found = js("search", "budget", "--vault", vault)
    assert found["results"] and "budget" in found["results"][0]["text"].lower()
    log = js("vault", "log", "--vault", vault)
    assert [r["op"] for r in log] == ["load", "search"]
    assert len(keys_under(bucket, "team/vault/audit/")) == 2  # one object per record

    cli("vault", "checkout", str(first), "--vault", vault)
    assert keys_under(bucket, "team/vault/CHECKOUT")
    extra = tmp_path / "extra.jsonl"
    extra.write_text('{"content": "A memory added in the bucket."}\n')
    refused = one_line_error(cli("load", extra, "--vault", vault, code=2))
    assert "checked out" in refused
    cli("vault", "checkout", "latest", "--vault", vault)
    assert not keys_under(bucket, "team/vault/CHECKOUT")

    added = js("load", extra, "--vault", vault)
    assert added["added"] == 1
    assert [r["op"] for r in js("vault", "log", "--vault", vault, "--at", str(first))] == [
        "load", "search"]
    dumped = tmp_path / "all.jsonl"
    cli("dump", "--vault", vault, "-o", dumped)
    assert len(dumped.read_text().splitlines()) == 19

    cli("vault", "rm", added["cube_id"], "--vault", vault)
    assert sum(c["memories"] for c in js("vault", "ls", "--vault", vault)["cubes"]) == 18
    cli("role", "add", "ops", "--member", "ann", "--vault", vault)
    assert keys_under(bucket, "team/vault/roles.json")
    assert js("role", "ls", "--vault", vault)["ops"]["members"] == ["ann"]
    compacted = js("vault", "compact", "--vault", vault, "--keep", "1d")
    assert compacted["bytes_after"] > 0
    assert len(js("vault", "ls", "--vault", vault)["cubes"]) == 1


def test_two_writers_on_one_bucket_vault(bucket: str, packed_cube: Path,
                                         tmp_path: Path) -> None:
    """The second load commits while the first waits before its commit; Lance's conditional
    write refuses the first's stale commit, and it decides again: both land."""
    vault = f"s3://{bucket}/shared/vault"
    js("load", packed_cube, "--vault", vault, "--allow-unsigned")
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"content": "written by the first writer"}\n')
    b.write_text('{"content": "written by the second writer"}\n')
    first = Held(tmp_path, "vault:before-commit", "load", a, "--vault", vault)
    first.reached()
    js("load", b, "--vault", vault)
    done = first.release()
    assert done.returncode == 0, done.stderr
    cubes = js("vault", "ls", "--vault", vault)["cubes"]
    assert sorted(c["memories"] for c in cubes) == [1, 1, 18]
    loads = [r for r in js("vault", "log", "--vault", vault) if r["op"] == "load"]
    assert sorted(r.get("attempts", 1) for r in loads) == [1, 1, 2]


def test_a_bucket_vault_that_does_not_answer(tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    for k, v in {"AWS_ACCESS_KEY_ID": "testing", "AWS_SECRET_ACCESS_KEY": "testing",
                 "AWS_DEFAULT_REGION": "us-east-1", "MEMOS_REMOTE_TIMEOUT": "2",
                 "AWS_ENDPOINT_URL": f"http://127.0.0.1:{free_port()}"}.items():
        monkeypatch.setenv(k, v)
    started = time.monotonic()
    line = one_line_error(cli("vault", "ls", "--vault", "s3://team/vault", code=14))
    assert "not reachable" in line
    one_line_error(cli("vault", "log", "--vault", "s3://team/vault", code=14))
    assert time.monotonic() - started < 30
    assert "unknown scheme" in one_line_error(cli("vault", "ls", "--vault", "ftp://h/v",
                                                  code=2))


def test_an_oversized_small_file_in_a_bucket_vault_is_refused(bucket: str) -> None:
    """A CHECKOUT (or roles.json, or audit record) past 16 MiB is refused, not read whole."""
    import boto3

    from memos_cli.objstore.place import MAX_SMALL_FILE

    boto3.client("s3", endpoint_url=os.environ["AWS_ENDPOINT_URL"]).put_object(
        Bucket=bucket, Key="big/vault/CHECKOUT", Body=b"1" * (MAX_SMALL_FILE + 1))
    line = one_line_error(cli("vault", "ls", "--vault", f"s3://{bucket}/big/vault", code=6))
    assert "CHECKOUT" in line and "over" in line


@pytest.mark.parametrize("message,says", [
    ("When reading information for key 'vault/roles.json' in bucket 'team': AWS Error "
     "ACCESS_DENIED during HeadObject operation: curlCode: 7, Could not connect to server; "
     "Details: Failed to connect to 127.0.0.1:40313 after 0 ms", "not reachable"),
    ("AWS Error ACCESS_DENIED during HeadObject operation: No response body.",
     "access denied"),
])
def test_an_unreachable_store_is_not_called_a_credentials_problem(message: str,
                                                                  says: str) -> None:
    """The AWS SDK sometimes reports a refused connection as ACCESS_DENIED (seen once in a
    full run of test_a_bucket_vault_that_does_not_answer): the cause decides the message."""
    from memos_cli.errors import RemoteError
    from memos_cli.objstore.uri import parse, remote_errors

    with pytest.raises(RemoteError) as e, remote_errors(parse("s3://team/vault"),
                                                         "looking for roles.json"):
        raise OSError(message)
    assert says in str(e.value)
