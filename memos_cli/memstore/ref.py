"""Remote references: ``oci://REGISTRY/REPOSITORY[:TAG][@sha256:HEX]`` (spec/memcube.md §15).

The repository, tag and digest follow the grammar of the OCI distribution specification
(``distribution/reference``): lowercase path components joined by ``/``, a tag of at most
128 word characters, dots and dashes, a ``sha256:`` digest of 64 lowercase hex digits.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, replace

from memos_cli.errors import UsageError

SCHEME = "oci://"
#: Schemes memos may take a cube from, and where each is handled.
KNOWN_SCHEMES = ("oci",)
_COMPONENT = r"[a-z0-9]+(?:(?:[._]|__|-+)[a-z0-9]+)*"
_REPOSITORY = re.compile(rf"^{_COMPONENT}(?:/{_COMPONENT})*$")
_TAG = re.compile(r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$")
_DIGEST = re.compile(r"^sha256:[0-9a-f]{64}$")
_HOST = re.compile(r"^(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
                   r"(?:\.[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*"
                   r"|\[[0-9A-Fa-f:.]+\])(?::[0-9]{1,5})?$")
#: Hosts reached over plain HTTP without ``--plain-http``, as Docker treats them.
LOOPBACK = ("localhost", "127.0.0.1", "[::1]")


@dataclass(frozen=True)
class OciRef:
    """A parsed ``oci://`` reference. ``repository`` may be a prefix (``team/``) for listing."""

    registry: str
    repository: str
    tag: str | None = None
    digest: str | None = None

    @property
    def reference(self) -> str:
        """What the registry's ``/manifests/`` endpoint takes: the digest, else the tag."""
        return self.digest or self.tag or "latest"

    @property
    def host(self) -> str:
        return self.registry.rsplit(":", 1)[0] if not self.registry.endswith("]") \
            else self.registry

    @property
    def loopback(self) -> bool:
        return self.host in LOOPBACK

    def with_tag(self, tag: str | None, digest: str | None = None) -> OciRef:
        return replace(self, tag=tag, digest=digest)

    def __str__(self) -> str:
        s = f"{SCHEME}{self.registry}/{self.repository}"
        if self.tag:
            s += f":{self.tag}"
        if self.digest:
            s += f"@{self.digest}"
        return s


def is_remote(text: str) -> bool:
    """Whether ``text`` is a URI (``scheme://``) rather than a local path."""
    return re.match(r"^[A-Za-z][A-Za-z0-9+.-]*://", text) is not None


def parse_ref(text: str, *, listing: bool = False) -> OciRef:
    """Parse an ``oci://`` reference.

    Args:
        listing: accept a repository prefix ending in ``/`` (or the bare registry), as
            ``memos ls`` does; no tag or digest then.

    Raises:
        UsageError: another scheme, or a reference that breaks the grammar (naming the part).
    """
    scheme = text.split("://", 1)[0].lower() if "://" in text else ""
    if scheme != "oci":
        known = ", ".join(f"{s}://" for s in KNOWN_SCHEMES)
        raise UsageError(f"{text!r}: unknown scheme {scheme + '://' if scheme else '(none)'};"
                         f" memos takes cubes from {known} references or local paths")
    rest = text[len(SCHEME):]
    registry, _, path = rest.partition("/")
    if not _HOST.match(registry):
        raise UsageError(f"{text!r}: {registry!r} is not a registry host[:port]")
    digest = tag = None
    if "@" in path:
        path, digest = path.split("@", 1)
        if not _DIGEST.match(digest):
            raise UsageError(f"{text!r}: digest {digest!r} is not sha256: and 64 hex digits")
    last = path.rsplit("/", 1)[-1]
    if ":" in last:
        path, tag = path.rsplit(":", 1)
        if not _TAG.match(tag):
            raise UsageError(f"{text!r}: tag {tag!r} breaks the OCI tag grammar")
    if listing:
        if tag or digest:
            raise UsageError(f"{text!r}: list a repository or a prefix, without a tag")
        prefix = path.rstrip("/")
        if prefix and not _REPOSITORY.match(prefix):
            raise UsageError(f"{text!r}: {prefix!r} is not a repository name (lowercase "
                             "letters, digits and . _ - between them, parts joined by /)")
        return OciRef(registry, prefix + ("/" if path.endswith("/") and prefix else ""))
    if not _REPOSITORY.match(path):
        raise UsageError(f"{text!r}: {path or '(empty)'!r} is not a repository name (lowercase"
                         " letters, digits and . _ - between them, parts joined by /)")
    return OciRef(registry, path, tag, digest)
