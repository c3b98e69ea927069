"""Reading a registry's HTTP answers within bounds (spec/memcube.md §15.3 step 0): bodies
read as they arrive, up to a size and a total deadline, so that a body trickling one byte at
a time cannot hold a command forever; and a requests hook that keeps redirects where memos
follows them. Used by :mod:`memos_cli.memstore.registry`."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from typing import Any
from urllib.parse import urljoin, urlsplit

from memos_cli.errors import RemoteError, one_line

#: A blob must arrive at this many bytes per second on average, after the first timeout.
MIN_BLOB_RATE = 32 << 10
_READ = 1 << 20


class DeadlinePassed(Exception):
    """A response body still arriving at its deadline (a trickle)."""


class RedirectRefused(Exception):
    """A registry redirected where memos does not follow (see the module docstring)."""


def redirect_guard(origin: str) -> Callable[..., Any]:
    """A requests response hook that refuses a redirect off ``origin``'s scheme and host
    (blobs may change host, not scheme)."""
    home = urlsplit(origin)

    def hook(response: Any, *args: Any, **kwargs: Any) -> Any:
        if not response.is_redirect:
            return response
        target = urlsplit(urljoin(response.url, response.headers.get("location", "")))
        blob = response.request.method == "GET" and "/blobs/sha256:" in response.url
        if target.scheme not in ("http", "https") or (home.scheme == "https" and
                                                      target.scheme != "https"):
            raise RedirectRefused(f"a redirect to a {target.scheme or 'schemeless'}: URL")
        if not blob and target.netloc != home.netloc:
            raise RedirectRefused(f"a redirect to another host ({target.netloc[:80]})")
        return response
    return hook


def next_link(response: Any) -> Any:
    return response.links.get("next", {}).get("url")


def short(text: str) -> str:
    """A library's message as one line of at most 160 characters (:func:`errors.one_line`)."""
    return one_line(" ".join(text.split()), 160)


def chunks(response: Any, limit: int, deadline: float) -> Iterator[bytes]:
    """The decoded body of a streamed requests ``response`` as it arrives (each read returns
    what one receive gave, so a trickle cannot stall a read), until ``limit`` bytes or the
    end.

    Raises:
        DeadlinePassed: the body is still arriving at ``deadline`` (``time.monotonic()``).
    """
    import requests
    import urllib3

    raw, n, start = response.raw, 0, time.monotonic()
    while n < limit:
        if time.monotonic() > deadline:
            raise DeadlinePassed(f"{n} bytes in {time.monotonic() - start:.0f} s")
        try:
            chunk = raw.read1(_READ, decode_content=True)
        except urllib3.exceptions.HTTPError as e:  # what iter_content maps for requests
            raise requests.exceptions.ConnectionError(str(e)) from e
        if not chunk:
            return
        n += len(chunk)
        yield chunk


def read_body(response: Any, limit: int, deadline: float) -> bytes | None:
    """The whole body, or ``None`` when it is over ``limit`` bytes (see :func:`chunks`)."""
    parts, n = [], 0
    for chunk in chunks(response, limit + 1, deadline):
        n += len(chunk)
        if n > limit:
            return None
        parts.append(chunk)
    return b"".join(parts)


def list_chunks(response: Any, limit: int, deadline: float, what: str, ref: object
                ) -> Iterator[bytes]:
    """:func:`chunks` of a blob; a deadline passed is a ``RemoteError`` naming ``ref``."""
    try:
        yield from chunks(response, limit, deadline)
    except DeadlinePassed as e:
        raise RemoteError(f"registry sends too slowly (under {MIN_BLOB_RATE >> 10} KiB/s: "
                          f"{e}) while {what}", path=str(ref)) from e
