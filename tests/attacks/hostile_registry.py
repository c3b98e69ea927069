"""A hostile OCI registry on 127.0.0.1 for the attack corpus: one small HTTP server whose
repositories each misbehave in one way (``BEHAVIOURS``). A repository's name picks its
behaviour, so one server serves every registry case: ``127.0.0.1:PORT/<behaviour>:v1``.

Everything else the server answers as a registry would: ``/v2/`` is 200, unknown paths 404.
Where a behaviour needs a real cube to start from (a layer that collides, a blob that
trickles), ``serve(cube)`` takes the cube's files and builds a valid artifact from them.

    python -m tests.attacks.hostile_registry CUBE   # serve until killed, print the port
"""

from __future__ import annotations

import gzip
import hashlib
import json
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

CONFIG_TYPE = "application/vnd.memos.memcube.config.v1+json"
MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
TITLE = "org.opencontainers.image.title"
#: How long a trickling response keeps going at most (the server's own bound, so a test
#: that fails does not leave a thread sending forever).
TRICKLE_S = 600.0


def _digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


@dataclass
class Artifact:
    """A valid cube artifact built from a cube directory: blobs by digest and the manifest."""

    blobs: dict[str, bytes]
    manifest: dict[str, Any]

    @classmethod
    def of(cls, cube: Path) -> Artifact:
        blobs: dict[str, bytes] = {}
        layers = []
        for p in sorted(cube.rglob("*")):
            if p.is_file():
                data = p.read_bytes()
                blobs[_digest(data)] = data
                layers.append({"mediaType": "application/vnd.memos.memcube.file.v1",
                               "digest": _digest(data), "size": len(data),
                               "annotations": {TITLE: p.relative_to(cube).as_posix()}})
        raw = (cube / "manifest.json").read_bytes()
        manifest = {"schemaVersion": 2, "mediaType": MANIFEST_TYPE,
                    "config": {"mediaType": CONFIG_TYPE, "digest": _digest(raw),
                               "size": len(raw)},
                    "layers": layers, "annotations": {}}
        return cls(blobs, manifest)


Reply = tuple[int, dict[str, str], bytes | Callable[[Any], None]]


def _json(obj: Any, code: int = 200) -> Reply:
    return code, {"Content-Type": MANIFEST_TYPE}, json.dumps(obj).encode()


def _raw(body: bytes, code: int = 200, **headers: str) -> Reply:
    return code, {"Content-Type": MANIFEST_TYPE, **headers}, body


def _trickle(byte: bytes = b" ", every: float = 0.3, length: int | None = None
             ) -> Callable[[Any], None]:
    """A body that sends one byte every ``every`` seconds until the client goes away."""
    def send(wfile: Any) -> None:
        end = time.monotonic() + TRICKLE_S
        while time.monotonic() < end:
            wfile.write(byte)
            wfile.flush()
            time.sleep(every)
    return send


def _with_layers(art: Artifact, layers: Any, **extra: Any) -> dict[str, Any]:
    return {**art.manifest, "layers": layers, **extra}


def _title(layer: dict[str, Any], title: str) -> dict[str, Any]:
    return {**layer, "annotations": {TITLE: title}}


def manifests(art: Artifact, port: int) -> dict[str, Callable[[], Reply]]:
    """Behaviours of ``GET /v2/<name>/manifests/<tag>``, by repository name."""
    good = art.manifest
    first = good["layers"][0]
    mf = next(x for x in good["layers"] if x["annotations"][TITLE] == "manifest.json")
    return {
        "manifest-list": lambda: _json([good]),
        "manifest-string": lambda: _json("a manifest"),
        "manifest-number": lambda: _json(7),
        "manifest-deep": lambda: _raw(b"[" * 200_000 + b"]" * 200_000),
        "manifest-bigint": lambda: _raw(b'{"schemaVersion": ' + b"9" * 5000 + b"}"),
        "manifest-empty": lambda: _raw(b""),
        "manifest-html": lambda: _raw(b"<html><body>registry</body></html>",
                                      **{"Content-Type": "text/html"}),
        "manifest-gzip": lambda: _raw(b"\x1f\x8b\x08\x00garbage", **{"Content-Encoding":
                                                                      "gzip"}),
        "manifest-gzip-bomb": lambda: _raw(gzip.compress(b" " * (64 << 20)),
                                           **{"Content-Encoding": "gzip"}),
        "manifest-nul": lambda: _json(_with_layers(art, [_title(first, "a\x00b"), mf])),
        "manifest-redirect-file": lambda: _raw(b"", 302, Location="file:///etc/passwd"),
        "manifest-redirect-host": lambda: _raw(
            b"", 307, Location=f"http://localhost:{port}/v2/x/manifests/v1"),
        "manifest-redirect-loop": lambda: _raw(
            b"", 302, Location="/v2/manifest-redirect-loop/manifests/v1"),
        "manifest-trickle": lambda: (200, {"Content-Type": MANIFEST_TYPE}, _trickle()),
        "manifest-trickle-length": lambda: (200, {"Content-Type": MANIFEST_TYPE,
                                                  "Content-Length": "100000"}, _trickle()),
        "manifest-short": lambda: (200, {"Content-Type": MANIFEST_TYPE,
                                         "Content-Length": "100000"}, b'{"a": 1'),
        "manifest-huge": lambda: _raw(b'{"pad": "' + b"x" * (8 << 20) + b'"}'),
        "manifest-index": lambda: _json({"schemaVersion": 2, "mediaType":
                                         "application/vnd.oci.image.index.v1+json",
                                         "manifests": []}),
        "config-string": lambda: _json({**good, "config": "x"}),
        "config-digest-int": lambda: _json({**good, "config": {**good["config"],
                                                                "digest": 5}}),
        "layers-string": lambda: _json(_with_layers(art, "abc")),
        "layers-strings": lambda: _json(_with_layers(art, ["abc", "def"])),
        "layers-annotations-list": lambda: _json(_with_layers(
            art, [{**first, "annotations": [TITLE]}, mf])),
        "layers-title-int": lambda: _json(_with_layers(
            art, [{**first, "annotations": {TITLE: 7}}, mf])),
        "layers-collide-dir": lambda: _json(_with_layers(
            art, [_title(first, "notes"), _title(first, "notes/a.md"), mf])),
        "layers-collide-file": lambda: _json(_with_layers(
            art, [_title(first, "kv/a/b"), _title(first, "kv/a"), mf])),
        "layers-size-float": lambda: _json(_with_layers(art, [{**first, "size": 1.5}, mf])),
        "layers-size-huge": lambda: _json(_with_layers(
            art, [{**first, "size": 10 ** 30}, mf])),
        "layers-size-bool": lambda: _json(_with_layers(art, [{**first, "size": True}, mf])),
        "layers-dot-title": lambda: _json(_with_layers(art, [_title(first, "."), mf])),
        "layers-bad-unicode": lambda: _raw(json.dumps(good).replace(
            "manifest.json", "manifest\\udc80.json").encode()),
        "annotations-list": lambda: _json({**good, "annotations": ["x"]}),
        "annotations-types": lambda: _json({**good, "annotations": {
            "org.opencontainers.image.title": ["n"], "dev.memos.cube.memories": {"a": 1},
            "dev.memos.cube.revision": 10 ** 400, "org.opencontainers.image.created":
            [1, 2]}}),
        "blob-trickle": lambda: _json(good),
        "blob-wrong": lambda: _json(good),
        "blob-long": lambda: _json(good),
        "blob-error-list": lambda: _json(good),
        "error-list": lambda: _raw(b"[1, 2]", 500),
        "error-string": lambda: _raw(b'{"errors": "boom"}', 400),
        "error-items": lambda: _raw(b'{"errors": [1, "x", null]}', 404),
        "error-deep": lambda: _raw(b"[" * 100_000, 500),
        "unauthorized-loop": lambda: _raw(b"", 401, **{
            "WWW-Authenticate": f'Bearer realm="http://127.0.0.1:{port}/token",'
                                'service="x"'}),
        "unauthorized-file-realm": lambda: _raw(b"", 401, **{
            "WWW-Authenticate": 'Bearer realm="file:///etc/passwd",service="x"'}),
        "unauthorized-garbage": lambda: _raw(b"", 401, **{"WWW-Authenticate": "\x00" * 50}),
        "push-upload-file": lambda: _raw(b"", 404),
        "tags-endless": lambda: _json(good),
        "tags-list": lambda: _json(good),
        "tags-items": lambda: _json(good),
        "tags-trickle": lambda: _json(good),
    }


def blobs(art: Artifact, name: str, digest: str) -> Reply:
    """Behaviours of ``GET /v2/<name>/blobs/<digest>``."""
    data = art.blobs.get(digest)
    if data is None:
        return _raw(b'{"errors": [{"code": "BLOB_UNKNOWN"}]}', 404)
    if name == "blob-trickle":
        return 200, {"Content-Length": str(len(data))}, _trickle(b"\x00")
    if name == "blob-wrong":
        return 200, {}, b"\x00" * len(data)
    if name == "blob-long":
        return 200, {}, data + b"\x00" * (4 << 20)
    if name == "blob-error-list":
        return _raw(b"[[[]]]", 500)
    return 200, {}, data


def tags(name: str, last: str) -> Reply:
    """Behaviours of ``GET /v2/<name>/tags/list``."""
    if name == "tags-endless":
        n = int(last.removeprefix("t") or 0) + 1 if last else 0
        return _raw(json.dumps({"name": name, "tags": [f"t{n}"]}).encode(), 200,
                    Link=f'</v2/{name}/tags/list?n=1&last=t{n}>; rel="next"')
    if name == "tags-list":
        return _json(["v1"])
    if name == "tags-items":
        return _json({"name": name, "tags": [{"a": 1}, None, 5]})
    if name == "tags-trickle":
        return 200, {"Content-Type": "application/json"}, _trickle()
    return _json({"name": name, "tags": ["v1"]})


def make_handler(art: Artifact, port: Callable[[], int]) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def log_message(self, *args: Any) -> None:
            pass

        def _send(self, reply: Reply) -> None:
            code, headers, body = reply
            try:
                self.send_response(code)
                for k, v in headers.items():
                    self.send_header(k, v)
                if isinstance(body, bytes):
                    if "Content-Length" not in headers:
                        self.send_header("Content-Length", str(len(body)))
                    self.end_headers()
                    if self.command != "HEAD":
                        self.wfile.write(body)
                else:
                    self.send_header("Connection", "close")
                    self.end_headers()
                    body(self.wfile)
            except (BrokenPipeError, ConnectionResetError):
                pass

        def _route(self) -> Reply:
            from urllib.parse import parse_qs, urlsplit

            url = urlsplit(self.path)
            parts = url.path.strip("/").split("/")
            if url.path.rstrip("/") in ("/v2", "/token"):
                return _json({})
            if url.path == "/v2/_catalog":
                return _json({"repositories": sorted(manifests(art, port()))})
            if len(parts) >= 4 and parts[0] == "v2":
                name, kind, ref = "/".join(parts[1:-2]), parts[-2], parts[-1]
                if kind == "manifests":
                    fn = manifests(art, port()).get(name)
                    return fn() if fn else _raw(b'{"errors": []}', 404)
                if kind == "blobs":
                    return blobs(art, name, ref)
            if len(parts) >= 4 and parts[-2:] == ["tags", "list"]:
                last = parse_qs(url.query).get("last", [""])[0]
                return tags("/".join(parts[1:-2]), last)
            if self.command in ("POST", "PUT", "PATCH"):
                # uploads: an upload location off the registry, then a manifest refused
                if "uploads" in parts:
                    return _raw(b"", 202, Location="file:///tmp/memos-upload")
                return _raw(b"[]", 500)
            return _raw(b'{"errors": []}', 404)

        def do_GET(self) -> None:
            self._send(self._route())

        def do_HEAD(self) -> None:
            code, headers, body = self._route()
            self._send((404 if "blobs" in self.path else code, headers,
                        body if isinstance(body, bytes) else b""))

        def do_POST(self) -> None:
            self._drain()
            self._send(self._route())

        do_PUT = do_PATCH = do_POST

        def _drain(self) -> None:
            n = int(self.headers.get("Content-Length") or 0)
            while n > 0:
                n -= len(self.rfile.read(min(n, 1 << 20)) or b"x" * n)

    return Handler


class _Quiet(ThreadingHTTPServer):
    def handle_error(self, request: Any, client_address: Any) -> None:
        pass  # a client that hangs up on a trickle is expected


def serve(cube: Path) -> tuple[ThreadingHTTPServer, int]:
    """Start the hostile registry for ``cube``'s files on 127.0.0.1 in a daemon thread;
    ``(server, port)``. Stop it with ``server.shutdown()``."""
    art = Artifact.of(cube)
    box: list[int] = []
    server = _Quiet(("127.0.0.1", 0), make_handler(art, lambda: box[0]))
    server.daemon_threads = True
    box.append(server.server_address[1])
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, box[0]


def names() -> list[str]:
    """Every behaviour's repository name."""
    stub = {"layers": [{"annotations": {TITLE: "manifest.json"}}], "config": {}}
    return sorted(manifests(Artifact({}, stub), 0))


if __name__ == "__main__":
    srv, p = serve(Path(sys.argv[1]))
    print(p, flush=True)
    threading.Event().wait()
