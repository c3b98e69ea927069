"""Where a vault lives: a local directory, or a prefix in object storage (``s3://``, ``gs://``,
``az://``, ``file://``), and the few small files beside its Lance table, read and written the
same way in both.

In a bucket nothing is appended or renamed: the audit log is one object per record under
``audit/`` (named by time, so listed in order, and never rewritten), and the small files
(``roles.json``, ``CHECKOUT``) are replaced by single PUTs, which object stores make atomic
for readers. The Lance table itself is opened by LanceDB with the store's URI, the same
credentials and endpoint (:func:`storage_options`), and relies on the store's conditional
writes for its commits. Usage indicators of a remote vault are kept on the machine that
reads (``MEMOS_HOME/usage/<hash of the URI>``): they record where memories were used.
"""

from __future__ import annotations

import hashlib
import os
import uuid
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memos_cli.atomic import atomic_write_bytes
from memos_cli.config import home
from memos_cli.config import remote_timeout as timeout_s
from memos_cli.errors import FormatError, UsageError
from memos_cli.localfiles import read_small, regular
from memos_cli.objstore import uri as U

AUDIT_DIR = "audit"
#: The most bytes one small file or audit record in a bucket is read to (a larger one is
#: refused, not read into memory).
MAX_SMALL_FILE = 16 * 2**20


def storage_options(uri: U.StoreURI) -> dict[str, str]:
    """LanceDB/Lance storage options for ``uri``: the S3 endpoint of ``AWS_ENDPOINT_URL_S3``
    or ``AWS_ENDPOINT_URL`` (plain HTTP allowed only when that endpoint says ``http://``), the
    region, and the request timeout of ``MEMOS_REMOTE_TIMEOUT``. Credentials are left to
    Lance, which reads the same ``AWS_*`` variables."""
    secs = max(1, int(timeout_s()))
    t = f"{secs}s"
    # Lance's own retries (10 tries over up to three minutes by default) kept to the same
    # bound as every other remote call of memos
    opts = {"timeout": t, "connect_timeout": t, "client_max_retries": "1",
            "client_retry_timeout": str(secs)}
    if uri.scheme == "s3":
        os.environ.setdefault("AWS_EC2_METADATA_DISABLED", "true")
        endpoint = os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL")
        if endpoint:
            opts["aws_endpoint"] = endpoint.rstrip("/")
            if endpoint.startswith("http://"):
                opts["allow_http"] = "true"
        opts["aws_region"] = os.environ.get("AWS_REGION") or os.environ.get(
            "AWS_DEFAULT_REGION") or "us-east-1"
    return opts


def _not_own(name: str, path: Path, error: OSError) -> FormatError:
    return FormatError(f"{name} {error.strerror or error}; the vault's files are memos's own "
                       "and never links or special files", path=path)


class Place:
    """A vault's location. ``str(place)`` names it in messages; ``key`` identifies it (the
    resolved directory, or the URI)."""

    def __init__(self, where: str | Path) -> None:
        text = str(where)
        self.uri: U.StoreURI | None = None
        self.local: Path | None = None
        if isinstance(where, str) and "://" in text:
            self.uri = U.parse(text)
            if self.uri.scheme == "file":
                self.local, self.uri = Path(self.uri.path), None
        else:
            self.local = Path(where).expanduser()
        if self.local is not None and self.local.exists() and not self.local.is_dir():
            raise UsageError("vault path is not a directory", path=self.local)
        self._fs: Any = None

    def __str__(self) -> str:
        return str(self.uri) if self.uri is not None else str(self.local)

    @property
    def key(self) -> str:
        return str(self.uri) if self.uri is not None else str(self.local)

    @property
    def remote(self) -> bool:
        return self.uri is not None

    # -- the Lance database -------------------------------------------------------------------
    def db(self, name: str) -> str:
        """The URI LanceDB connects to for the database directory ``name``."""
        if self.uri is not None:
            return f"{self.uri.uri}/{name}"
        assert self.local is not None
        return str(self.local / name)

    def options(self) -> dict[str, str]:
        return storage_options(self.uri) if self.uri is not None else {}

    def connect(self, name: str) -> Any:
        import lancedb

        if self.uri is None:
            return lancedb.connect(self.db(name))
        return lancedb.connect(self.db(name), storage_options=self.options())

    def usage_dir(self) -> Path:
        """Where usage indicators of this vault are kept (see the module docstring)."""
        if self.local is not None:
            return self.local / "usage"

        return home() / "usage" / hashlib.sha256(self.key.encode()).hexdigest()[:16]

    # -- small files --------------------------------------------------------------------------
    def _remote_fs(self) -> Any:
        if self._fs is None:
            assert self.uri is not None
            self._fs = U.filesystem(self.uri)
        return self._fs

    def exists(self, name: str) -> bool:
        if self.local is not None:
            return (self.local / name).exists()
        import pyarrow.fs as pafs

        assert self.uri is not None
        with U.remote_errors(self.uri, f"looking for {name}"):
            info = self._remote_fs().get_file_info(self.uri.child(name))
        return bool(info.type != pafs.FileType.NotFound)

    def read_text(self, name: str) -> str | None:
        """The file's text, ``None`` when there is none.

        Raises:
            FormatError: (a local vault) a link, a FIFO, a folder or another special file
                where the file should be, over :data:`MAX_SMALL_FILE` bytes, or not UTF-8.
            RemoteError: as :func:`remote_errors`.
        """
        if self.local is not None:
            p = self.local / name
            if not os.path.lexists(p):
                return None
            try:
                data = read_small(p, MAX_SMALL_FILE)
            except OSError as e:
                raise _not_own(name, p, e) from e
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError as e:
                raise FormatError(f"{name} is not UTF-8 text", path=p) from e
        assert self.uri is not None
        if not self.exists(name):
            return None
        return self._read_small(self.uri.child(name), name)

    def _read_small(self, key: str, what: str) -> str:
        """One object's text, refused past :data:`MAX_SMALL_FILE` bytes.

        Raises:
            FormatError: larger, or not UTF-8. RemoteError: as :func:`remote_errors`.
        """
        assert self.uri is not None
        with U.remote_errors(self.uri, f"reading {what}"), \
                self._remote_fs().open_input_stream(key) as f:
            data = bytes(f.read(MAX_SMALL_FILE + 1))
        if len(data) > MAX_SMALL_FILE:
            raise FormatError(f"{what} is over {MAX_SMALL_FILE} bytes", path=f"{self}/{what}")
        try:
            return data.decode("utf-8")
        except UnicodeDecodeError as e:
            raise FormatError(f"{what} is not UTF-8 text", path=f"{self}/{what}") from e

    def write_text(self, name: str, text: str) -> None:
        """Replace the file at once (a rename locally, one PUT in a bucket)."""
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)
            atomic_write_bytes(self.local / name, text.encode("utf-8"))
            return
        assert self.uri is not None
        with U.remote_errors(self.uri, f"writing {name}"), \
                self._remote_fs().open_output_stream(self.uri.child(name)) as f:
            f.write(text.encode("utf-8"))

    def remove(self, name: str) -> None:
        if self.local is not None:
            (self.local / name).unlink(missing_ok=True)
            return
        assert self.uri is not None
        if self.exists(name):
            with U.remote_errors(self.uri, f"removing {name}"):
                self._remote_fs().delete_file(self.uri.child(name))

    def check_regular(self, name: str) -> None:
        """Refuse (a local vault) a link, FIFO, folder or device where the file ``name``
        should be, before a command changes anything (the audit log is appended after a
        change).

        Raises:
            FormatError: naming the file.
        """
        p = None if self.local is None else self.local / name
        if p is None or not os.path.lexists(p):
            return
        try:
            regular(p)
        except OSError as e:
            raise _not_own(name, p, e) from e

    # -- the audit log ------------------------------------------------------------------------
    def append_audit(self, line: str, local_name: str) -> None:
        """Append one record: a flushed, fsynced line of ``local_name`` locally; in a bucket
        a new object ``audit/<UTC time>-<random>.json`` (never rewritten)."""
        if self.local is not None:
            self.local.mkdir(parents=True, exist_ok=True)
            p = self.local / local_name
            try:
                if os.path.lexists(p):
                    regular(p)
                fd = os.open(p, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW |
                             os.O_NONBLOCK, 0o666)
            except OSError as e:
                raise _not_own(local_name, p, e) from e
            with os.fdopen(fd, "a", encoding="utf-8") as f:
                f.write(line + "\n")
                f.flush()
                os.fsync(f.fileno())
            return
        stamp = datetime.now(timezone.utc).strftime("%Y%m%dT%H%M%S%fZ")
        self.write_text(f"{AUDIT_DIR}/{stamp}-{uuid.uuid4().hex[:12]}.json", line + "\n")

    def read_audit(self, local_name: str) -> str:
        """Every audit record, oldest first, one JSON object a line."""
        if self.local is not None:
            return self.read_text(local_name) or ""
        import pyarrow.fs as pafs

        assert self.uri is not None
        fs = self._remote_fs()
        with U.remote_errors(self.uri, "listing the audit log"):
            infos = fs.get_file_info(pafs.FileSelector(self.uri.child(AUDIT_DIR),
                                                       allow_not_found=True))
        out = []
        for info in sorted((i for i in infos if i.type == pafs.FileType.File),
                           key=lambda i: i.base_name):
            out.append(self._read_small(info.path, f"{AUDIT_DIR}/{info.base_name}"))
        return "".join(out)

    def size(self, name: str) -> int:
        """Bytes under the directory ``name``."""
        if self.local is not None:
            return sum(p.stat().st_size for p in (self.local / name).rglob("*") if p.is_file())
        import pyarrow.fs as pafs

        assert self.uri is not None
        with U.remote_errors(self.uri, "measuring the vault"):
            infos = self._remote_fs().get_file_info(pafs.FileSelector(
                self.uri.child(name), recursive=True, allow_not_found=True))
        return sum(i.size or 0 for i in infos if i.type == pafs.FileType.File)
