"""Object-storage URIs (``s3://``, ``gs://``, ``az://``, ``file://``) opened with Arrow's file
systems (``pyarrow.fs``), with bounded waits and errors of one line.

Credentials and endpoints come from the standard environment of each store: for S3,
``AWS_ACCESS_KEY_ID``, ``AWS_SECRET_ACCESS_KEY``, ``AWS_SESSION_TOKEN``, ``AWS_PROFILE``,
``AWS_DEFAULT_REGION`` and ``AWS_ENDPOINT_URL`` (an S3-compatible server such as MinIO or
moto); for GCS and Azure, what Arrow's ``GcsFileSystem`` and ``AzureFileSystem`` read.
Each request waits at most ``MEMOS_REMOTE_TIMEOUT`` seconds (default 30) and is tried at most
twice.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from memos_cli.config import remote_timeout as timeout_s
from memos_cli.errors import MemosError, RemoteError, UsageError

SCHEMES = ("s3", "gs", "az", "file")


@dataclass(frozen=True)
class StoreURI:
    """A parsed URI: ``scheme``, and ``path`` as Arrow's file system names it
    (``bucket/key`` for buckets, an absolute path for ``file://``)."""

    uri: str
    scheme: str
    path: str

    def child(self, rel: str) -> str:
        return f"{self.path.rstrip('/')}/{rel}"

    def __str__(self) -> str:
        return self.uri


def is_store_uri(text: str) -> bool:
    return text.split("://", 1)[0].lower() in SCHEMES and "://" in text


def parse(text: str) -> StoreURI:
    """Parse ``text`` as an object-storage URI.

    Raises:
        UsageError: another scheme, no bucket, or a key with ``.``/``..`` parts.
    """
    scheme, sep, rest = text.partition("://")
    scheme = scheme.lower()
    if not sep or scheme not in SCHEMES:
        raise UsageError(f"{text!r}: unknown scheme; cubes live in local paths, oci:// "
                         f"registries or {', '.join(s + '://' for s in SCHEMES)} stores")
    if scheme == "file":
        path = rest if rest.startswith("/") else "/" + rest
    else:
        path = rest.strip("/")
        if not path or path.startswith("."):
            raise UsageError(f"{text!r}: no bucket named")
    if any(part in (".", "..") for part in path.split("/")):
        raise UsageError(f"{text!r}: a key may not hold . or .. parts")
    return StoreURI(text.rstrip("/"), scheme, path.rstrip("/") or "/")


def filesystem(uri: StoreURI) -> Any:
    """The Arrow file system for ``uri``, built with the timeout and two attempts.

    Raises:
        RemoteError: Arrow lacks the store (a build without GCS or Azure), or it cannot be
            set up (a malformed endpoint).
    """
    import pyarrow.fs as pafs

    t = timeout_s()
    try:
        if uri.scheme == "file":
            return pafs.LocalFileSystem()
        if uri.scheme == "s3":
            # never ask the EC2 metadata service for credentials unless told to: off AWS it
            # does not answer, and the SDK waits on it
            os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
            endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get(
                "AWS_ENDPOINT_URL")
            kw: dict[str, Any] = {}
            if endpoint:
                scheme, _, host = endpoint.rpartition("://")
                kw = {"endpoint_override": host.rstrip("/"), "scheme": scheme or "https"}
            return pafs.S3FileSystem(connect_timeout=t, request_timeout=t,
                                     retry_strategy=pafs.AwsStandardS3RetryStrategy(
                                         max_attempts=2), **kw)
        if uri.scheme == "gs":
            return pafs.GcsFileSystem(retry_time_limit=t)
        return pafs.FileSystem.from_uri(uri.uri)[0]
    except (OSError, ValueError, ImportError, AttributeError) as e:
        raise RemoteError(f"cannot open the store: {_first_line(e)}", path=uri.uri) from e


def _first_line(e: BaseException) -> str:
    text = str(e).strip().splitlines()
    return (text[0] if text else type(e).__name__)[:300]


#: What an error names when the store did not answer at all, whatever code it carries.
_UNREACHABLE = ("Could not connect", "Failed to connect", "Connection refused",
                "Couldn't connect", "Could not resolve", "Couldn't resolve")


@contextlib.contextmanager
def remote_errors(uri: StoreURI, what: str) -> Iterator[None]:
    """Turn Arrow's errors while ``what`` into one-line ``RemoteError``s naming ``uri``
    (unreachable endpoints, refused credentials, missing buckets)."""
    try:
        yield
    except MemosError:  # ours already say what went wrong (some are OSErrors too)
        raise
    except FileNotFoundError as e:
        raise RemoteError(f"not found while {what}", path=uri.uri) from e
    except OSError as e:
        text = _first_line(e)
        # the AWS SDK sometimes files a refused connection under ACCESS_DENIED: the cause wins
        denied = "ACCESS_DENIED" in text.upper() or "AccessDenied" in text or "403" in text \
            or "InvalidAccessKeyId" in text or "SignatureDoesNotMatch" in text
        if denied and not any(p in text for p in _UNREACHABLE):
            raise RemoteError(f"access denied while {what}: check the credentials "
                              f"(AWS_ACCESS_KEY_ID, AWS_PROFILE...) ({text})",
                              path=uri.uri) from e
        raise RemoteError(f"store not reachable or refusing while {what} ({text})",
                          path=uri.uri) from e
