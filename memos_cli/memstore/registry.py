"""An OCI registry, spoken to through the ``oras`` Python SDK (oras-py), with the limits memos
needs against a registry that fails or lies (spec/memcube.md §15.4):

- every request has a per-read timeout, and every response body a total deadline: a small
  JSON document (manifest, tag page, error) must arrive within :data:`DOCUMENT_DEADLINES`
  timeouts, a blob at :data:`MIN_BLOB_RATE` on average after the first timeout, a whole
  listing within :data:`LISTING_DEADLINES` timeouts;
- a registry that does not answer is one :class:`~memos_cli.errors.RemoteError` (no minutes
  of silent retries), and so is any answer that requests or oras cannot read;
- redirects stay on ``http``/``https`` (never ``https`` to ``http``), at most
  :data:`MAX_REDIRECTS`; API calls stay on the registry's host, a blob may move to another
  host (registries hand blobs to a CDN) because its digest is checked;
- every JSON body is read up to a byte limit with :mod:`memos_cli.strictjson` and its type
  checked before use; a tag listing stops at :data:`MAX_TAGS` tags or :data:`MAX_PAGES` pages.

Credentials come from where ``oras`` and ``docker`` keep them (``~/.docker/config.json``,
credential helpers); ``oras login`` or ``docker login`` writes them.
"""

from __future__ import annotations

import hashlib
import json
import logging
import time
from collections.abc import Callable, Iterator
from functools import partial
from pathlib import Path
from typing import Any
from urllib.parse import urljoin, urlsplit

from memos_cli import config, strictjson
from memos_cli.errors import FormatError, IntegrityError, RemoteError
from memos_cli.memstore.http import (
    MIN_BLOB_RATE,
    DeadlinePassed,
    RedirectRefused,
    list_chunks,
    next_link,
    read_body,
    redirect_guard,
    short,
)
from memos_cli.memstore.ref import OciRef

#: The OCI distribution spec lets registries refuse manifests over 4 MiB; memos reads no more.
MAX_MANIFEST_BYTES = 4 << 20
#: A page of tags or repositories, or an error body, is read up to this many bytes.
MAX_DOCUMENT_BYTES = 4 << 20
#: A small JSON document must arrive within this many per-read timeouts.
DOCUMENT_DEADLINES = 3
#: A listing stops after this many tags (or repositories) or pages, or this many timeouts.
MAX_TAGS, MAX_PAGES, LISTING_DEADLINES = 100_000, 1_000, 10
MAX_REDIRECTS = 5
#: Blobs over this size are uploaded in chunks of this size (memory stays bounded).
CHUNK_BYTES = 16 << 20
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"


timeout_s = config.remote_timeout  # the registries' name for it


def _client_class() -> type:
    import oras.provider
    import requests
    from requests.adapters import HTTPAdapter
    from urllib3.util.retry import Retry

    class _TimeoutAdapter(HTTPAdapter):
        def __init__(self, timeout: float) -> None:
            # a refused or reset connection is tried twice more, quickly; never a POST/PUT
            super().__init__(max_retries=Retry(total=2, connect=2, read=0, status=0,
                                               backoff_factor=0.2, redirect=False,
                                               allowed_methods={"GET", "HEAD"}))
            self.timeout = timeout

        def send(self, request: Any, **kwargs: Any) -> Any:  # type: ignore[override]
            if kwargs.get("timeout") is None:
                kwargs["timeout"] = self.timeout
            return super().send(request, **kwargs)

    undecorated = oras.provider.Registry.do_request.__wrapped__

    class Client(oras.provider.Registry):
        """oras-py's registry with a per-request timeout, the redirect guard, and without
        its retry decorator (five attempts sleeping up to 84 s each: a dead registry would
        hang for minutes)."""

        def __init__(self, hostname: str, insecure: bool, timeout: float) -> None:
            super().__init__(hostname=hostname, insecure=insecure)
            adapter = _TimeoutAdapter(timeout)
            self.session.mount("http://", adapter)
            self.session.mount("https://", adapter)  # the auth backend shares this session
            self.session.max_redirects = MAX_REDIRECTS
            scheme = "http" if insecure else "https"
            self.session.hooks["response"].append(redirect_guard(f"{scheme}://{hostname}"))

        def do_request(self, *args: Any, **kwargs: Any) -> requests.Response:
            return undecorated(self, *args, **kwargs)

    return Client


class Registry:
    """One registry host. ``plain_http`` defaults to true only for loopback hosts
    (``localhost``, ``127.0.0.1``, ``[::1]``), as Docker does; HTTPS elsewhere."""

    def __init__(self, ref: OciRef, *, plain_http: bool = False,
                 timeout: float | None = None) -> None:
        logging.getLogger("oras").setLevel(logging.ERROR)  # it logs each blob at INFO
        self.ref = ref
        self.timeout = timeout_s() if timeout is None else timeout
        self.insecure = plain_http or ref.loopback
        self.scheme = "http" if self.insecure else "https"
        self.client = _client_class()(ref.registry, self.insecure, self.timeout)

    # --- requests -------------------------------------------------------------------------
    def _call(self, what: str, fn: Callable[[], Any]) -> Any:
        """Run one oras/requests call, turning network failures, refused redirects and
        answers the libraries cannot read into ``RemoteError``."""
        import requests

        where = str(self.ref)
        try:
            return fn()
        except DeadlinePassed as e:
            raise RemoteError(f"registry's answer did not end in time while {what} ({e})",
                              path=where) from e
        except requests.exceptions.SSLError as e:
            raise RemoteError(f"TLS failed ({type(e).__name__}); a registry without TLS needs "
                              "--plain-http", path=where) from e
        except (requests.exceptions.ConnectionError, requests.exceptions.Timeout) as e:
            cause = short(str(e).split(": ")[-1])
            raise RemoteError(f"registry not reachable within {self.timeout:g} s while "
                              f"{what} ({type(e).__name__}: {cause})", path=where) from e
        except RedirectRefused as e:
            raise RemoteError(f"registry answered with {e} while {what}; memos does not "
                              "follow it", path=where) from e
        except requests.exceptions.TooManyRedirects as e:
            raise RemoteError(f"registry redirected more than {MAX_REDIRECTS} times while "
                              f"{what}", path=where) from e
        except requests.exceptions.RequestException as e:  # undecodable body, bad URL...
            raise RemoteError(f"registry answered something memos cannot read while {what} "
                              f"({type(e).__name__}: {short(str(e))})", path=where) from e
        except ValueError as e:  # oras: "Cannot respond to request for authentication."
            if "authentication" in str(e):
                raise RemoteError("the registry asks for credentials; log in with `oras "
                                  "login` or `docker login`", path=where) from e
            raise RemoteError(f"registry refused while {what} ({short(str(e))})",
                              path=where) from e
        except (AttributeError, TypeError, KeyError, IndexError) as e:
            # oras reading a malformed answer (a WWW-Authenticate header it cannot parse...)
            raise RemoteError(f"registry answered something oras cannot read while {what} "
                              f"({type(e).__name__})", path=where) from e

    def _document(self, response: Any, what: str, limit: int = MAX_DOCUMENT_BYTES) -> Any:
        """A small JSON body, read within its deadline and size, parsed strictly.

        Raises:
            RemoteError: too slow, too large, or not JSON.
        """
        raw = self._call(what, lambda: read_body(
            response, limit, time.monotonic() + DOCUMENT_DEADLINES * self.timeout))
        if raw is None:
            raise RemoteError(f"registry answered more than {limit} bytes while {what}",
                              path=str(self.ref))
        try:
            return strictjson.loads(raw)
        except ValueError as e:
            raise RemoteError(f"registry answered something other than JSON while {what} "
                              f"({short(str(e))})", path=str(self.ref)) from e

    def _check(self, response: Any, what: str, ref: OciRef) -> None:
        code = response.status_code
        if code in (200, 201, 202):
            return
        detail = ""
        try:
            body = self._document(response, what, 1 << 16)
        except RemoteError:
            body = None
        errors = body.get("errors") if isinstance(body, dict) else None
        if isinstance(errors, list):
            detail = "; ".join(short(str(x.get("message", x.get("code"))) if isinstance(
                x, dict) else str(x)) for x in errors[:2])
        if code == 404:
            raise RemoteError(f"not found while {what}" + (f" ({detail})" if detail else ""),
                              path=str(ref))
        if code in (401, 403):
            raise RemoteError(f"access denied while {what} (HTTP {code}); log in with `oras "
                              "login` or `docker login`", path=str(ref))
        raise RemoteError(f"registry answered HTTP {code} while {what}"
                          + (f" ({detail})" if detail else ""), path=str(ref))

    def _url(self, ref: OciRef, kind: str, reference: str) -> str:
        return f"{self.scheme}://{ref.registry}/v2/{ref.repository}/{kind}/{reference}"

    # --- reading ---------------------------------------------------------------------------
    def manifest(self, ref: OciRef) -> tuple[dict[str, Any], str, bytes]:
        """``(manifest, digest, raw bytes)`` of the image manifest ``ref`` names. With a
        digest in ``ref``, the bytes must hash to it.

        Raises:
            RemoteError: unreachable, missing tag or digest, refused.
            FormatError: not an OCI image manifest, or over :data:`MAX_MANIFEST_BYTES`.
            IntegrityError: a pinned digest that the bytes do not match.
        """
        url = self._url(ref, "manifests", ref.reference)
        what = f"fetching the manifest of {ref}"
        with self._call(what, lambda: self.client.do_request(
                url, "GET", headers={"Accept": MANIFEST_TYPE}, stream=True)) as r:
            self._check(r, what, ref)
            raw = self._call(what, lambda: read_body(
                r, MAX_MANIFEST_BYTES, time.monotonic() + DOCUMENT_DEADLINES * self.timeout))
        if raw is None:
            raise FormatError(f"manifest is over {MAX_MANIFEST_BYTES} bytes", path=str(ref))
        digest = "sha256:" + hashlib.sha256(raw).hexdigest()
        if ref.digest and digest != ref.digest:
            raise IntegrityError(f"manifest hashes to {digest}, not the pinned digest",
                                 path=str(ref))
        try:
            data = strictjson.loads(raw)
        except ValueError as e:
            raise FormatError(f"manifest is not JSON: {e}", path=str(ref)) from e
        if not isinstance(data, dict) or data.get("mediaType", MANIFEST_TYPE) != MANIFEST_TYPE:
            kind = data.get("mediaType") if isinstance(data, dict) else type(data).__name__
            raise FormatError(f"not an OCI image manifest ({kind})", path=str(ref))
        return data, digest, raw

    def tags(self, ref: OciRef) -> list[str]:
        """The repository's tags, sorted.

        Raises:
            RemoteError: unreachable, no such repository, refused.
        """
        url = f"{self.scheme}://{ref.registry}/v2/{ref.repository}/tags/list"
        return sorted(self._paged(url, "tags", ref, f"listing the tags of {ref}"))

    def catalog(self) -> list[str]:
        """Every repository the registry lists in ``/v2/_catalog`` (sorted).

        Raises:
            RemoteError: unreachable, or the registry does not offer its catalog.
        """
        url = f"{self.scheme}://{self.ref.registry}/v2/_catalog"
        return sorted(self._paged(url, "repositories", self.ref, "listing the repositories"))

    def _paged(self, url: str, key: str, ref: OciRef, what: str) -> Iterator[str]:
        """The strings under ``key`` in every page of a paged listing, following ``Link``
        headers on the same host, up to :data:`MAX_TAGS` items and :data:`MAX_PAGES` pages.

        Raises:
            RemoteError: unreachable, refused, a page that is not ``{key: [strings]}``, or a
                listing longer than the limits.
        """
        seen = pages = 0
        deadline = time.monotonic() + LISTING_DEADLINES * self.timeout
        next_url: str | None = f"{url}?n=1000"
        while next_url:
            target: str = next_url
            pages += 1
            if pages > MAX_PAGES or seen > MAX_TAGS:
                raise RemoteError(f"registry listing goes on past {MAX_PAGES} pages or "
                                  f"{MAX_TAGS} entries while {what}", path=str(ref))
            if time.monotonic() > deadline:
                raise RemoteError(f"registry listing did not end within "
                                  f"{LISTING_DEADLINES * self.timeout:g} s ({pages - 1} "
                                  f"pages) while {what}", path=str(ref))

            def get(url: str = target) -> Any:
                return self.client.do_request(url, "GET", stream=True)

            with self._call(what, get) as r:
                self._check(r, what, ref)
                page = self._document(r, what)
                link = self._call(what, partial(next_link, r))
            items = page.get(key) if isinstance(page, dict) else None
            if items is None and isinstance(page, dict):
                items = []
            if not isinstance(items, list) or not all(isinstance(x, str) for x in items):
                raise RemoteError(f"registry answered a listing that is not a list of names "
                                  f"while {what}", path=str(ref))
            seen += len(items)
            yield from items
            nxt = urljoin(target, link) if isinstance(link, str) and link and items else None
            if nxt and urlsplit(nxt).netloc != urlsplit(target).netloc:
                raise RemoteError(f"registry's next page is on another host while {what}",
                                  path=str(ref))
            next_url = nxt

    def download(self, ref: OciRef, descriptor: dict[str, Any], dest: Path) -> None:
        """Stream one blob to ``dest``, hashing it on the way; never more bytes than the
        descriptor's ``size``.

        Raises:
            RemoteError: unreachable, missing blob.
            IntegrityError: the bytes do not hash to the descriptor's digest, or their count
                differs from its size.
        """
        digest, size = descriptor["digest"], descriptor["size"]
        what = f"downloading {digest[:19]}"
        url = self._url(ref, "blobs", digest)
        h = hashlib.sha256()
        deadline = time.monotonic() + self.timeout + size / MIN_BLOB_RATE

        def fetch() -> int:
            n = 0
            with self.client.do_request(url, "GET", stream=True) as r:
                self._check(r, what, ref)
                with open(dest, "wb") as f:
                    for chunk in list_chunks(r, size + 1, deadline, what, ref):
                        n += len(chunk)
                        if n > size:
                            break
                        h.update(chunk)
                        f.write(chunk)
            return n

        n = self._call(what, fetch)
        if n != size or "sha256:" + h.hexdigest() != digest:
            raise IntegrityError(f"blob {digest} from the registry does not match its "
                                 f"descriptor ({'size' if n != size else 'digest'} differs)",
                                 path=str(ref))

    # --- writing ---------------------------------------------------------------------------
    def upload(self, ref: OciRef, path: Path, descriptor: dict[str, Any]) -> bool:
        """Upload a file as a blob unless the repository has it; whether it was sent."""
        container = self.client.get_container(f"{ref.registry}/{ref.repository}:x")
        what = f"uploading {path.name}"
        if self._call(what, lambda: self.client.blob_exists(descriptor, container)):
            return False
        if descriptor["size"] > CHUNK_BYTES:
            r = self._call(what, lambda: self.client.chunked_upload(
                str(path), container, descriptor, chunk_size=CHUNK_BYTES))
        else:
            r = self._call(what, lambda: self.client.put_upload(str(path), container,
                                                                 descriptor))
        self._check(r, what, ref)
        return True

    def put_manifest(self, ref: OciRef, manifest: dict[str, Any]) -> str:
        """Put ``manifest`` under ``ref``'s tag; its digest."""
        raw = json.dumps(manifest, sort_keys=True, separators=(",", ":")).encode()
        url = self._url(ref, "manifests", ref.tag or "latest")
        what = f"tagging {ref}"
        r = self._call(what, lambda: self.client.do_request(
            url, "PUT", data=raw, headers={"Content-Type": MANIFEST_TYPE}))
        self._check(r, what, ref)
        return "sha256:" + hashlib.sha256(raw).hexdigest()
