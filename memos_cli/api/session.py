"""A :class:`Session`: memos as a library, over cubes or a vault, acting as one user.

Everything a command does between parsing its flags and printing happens here: which memories
the user may see, which tier answers, what the access log and the usage store record. The CLI
(``memos search``, ``run``, ``schedule``), the benches and the coming ``chat`` and MCP server
call it and render what it returns.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from memos_cli.api import reading, writing
from memos_cli.api.answering import AnswerOptions
from memos_cli.api.answering import answer as answer_with
from memos_cli.api.reading import MemoryHistory
from memos_cli.api.scheduling import schedule
from memos_cli.cube import Cube, open_verified
from memos_cli.cube.manifest import read_manifest
from memos_cli.errors import UsageError
from memos_cli.governance.policy import current_user
from memos_cli.lifecycle.dump import Filter, check_target, cube_source, dump, vault_source
from memos_cli.lifecycle.update import add
from memos_cli.memory import Memory
from memos_cli.models import chat
from memos_cli.models.chat import ChatModel
from memos_cli.models.embedder import Embedder
from memos_cli.models.onnx_embedder import query_embedder
from memos_cli.scheduler.usage import UsageStore, cube_store, record_quietly, uses_of
from memos_cli.sources import Defaults
from memos_cli.tiers.plaintext import Answer, Retrieved, retrieve
from memos_cli.validity import CURRENT, View
from memos_cli.vault import Vault
from memos_cli.vault import search as vault_search

#: Queries of :meth:`Session.search_many` whose uses go into one commit of the usage store.
USES_PER_COMMIT = 10_000


@dataclass
class SearchResult:
    """What :meth:`Session.search` found: ``hits`` best first, how long the search took
    (``search_s``, seconds, the embedder's load excluded), and how many closer memories access
    control left out (``hidden``, a count, never which)."""

    query: str
    where: str
    is_cube: bool
    hits: list[Retrieved]
    search_s: float
    hidden: int
    user: str

    def to_dict(self) -> dict[str, Any]:
        """The ``memos search --json`` document."""
        return {"query": self.query, "cube" if self.is_cube else "vault": self.where,
                "search_s": round(self.search_s, 4), "hidden_by_access": self.hidden,
                "results": [h.to_dict() for h in self.hits]}


class Session:
    """Cubes, or a vault, read and changed as one user.

    ``cubes``: cube paths or opened :class:`~memos_cli.cube.Cube` objects (a path is opened and
    verified, :func:`~memos_cli.cube.open_verified`); with none, the ``vault`` (a directory or
    an object-storage URI; default ``$MEMOS_VAULT``, the config file's, else
    ``MEMOS_HOME/vault``). ``user``: the identity reads are filtered by (``ann`` or
    ``ann/persona``); ``None`` reads a cube's every memory and a vault's as the current user
    (``$MEMOS_USER`` or the login name), who is also the one the access log names.
    ``embedder`` (a local encoder directory) and ``model`` (a model directory, ``.gguf`` file or
    cached hub id) default to the configured ones and are loaded on first use; either may also
    be given loaded (an :class:`~memos_cli.models.embedder.Embedder`, a
    :class:`~memos_cli.models.chat.ChatModel`), to share it between sessions. ``status(text)``
    hears what is being loaded. ``vault_version`` reads the vault as it was at that version
    (changes are then refused, as after ``memos vault checkout``).

    Use it as a context manager, or call :meth:`close`: usage is recorded in the background
    while the caller shows a result, and :meth:`close` waits for it.

    Raises (from the constructor):
        UsageError: both cubes and a vault.
        CubeNotFoundError, FormatError, IntegrityError: a cube path that is not a sound cube.
    """

    def __init__(self, cubes: Sequence[str | Path | Cube] = (), *,
                 vault: str | Path | None = None, user: str | None = None,
                 embedder: str | Path | Embedder | None = None,
                 model: str | ChatModel | None = None,
                 device: str = "auto", status: Callable[[str], None] | None = None,
                 vault_version: int | None = None) -> None:
        if cubes and vault is not None:
            raise UsageError("give cubes or a vault, not both")
        self.cubes: list[Cube] = [c if isinstance(c, Cube) else open_verified(c) for c in cubes]
        self.user = user
        self.actor = user or current_user()
        self._vault_path = vault
        self._vault_version = vault_version
        self._vault: Any = None
        loaded_encoder = embedder is not None and not isinstance(embedder, (str, Path))
        self._embedder_path = Path(embedder) if isinstance(embedder, (str, Path)) else None
        self._model = model if isinstance(model, str) else None
        self._device, self._status = device, status
        self._encoder: Any = embedder if loaded_encoder else None
        self._query_encoder: Any = None
        self._chat: Any = model if model is not None and not isinstance(model, str) else None
        self._pending: list[threading.Thread] = []

    # -- what it reads ------------------------------------------------------------------------
    @property
    def vault(self) -> Any:
        """The :class:`~memos_cli.vault.Vault` (``None`` when the session reads cubes)."""
        if self.cubes:
            return None
        if self._vault is None:
            self._vault = Vault(self._vault_path, version=self._vault_version)
        return self._vault

    @property
    def vault_name(self) -> str | Path | None:
        """The vault as it was given (else the default's path); ``None`` for cubes."""
        if self.cubes:
            return None
        return self._vault_path if self._vault_path is not None else self.vault.path

    @property
    def where(self) -> str:
        """The cubes' paths, or the vault's, as messages name them."""
        return ", ".join(str(c.path) for c in self.cubes) if self.cubes else str(self.vault.path)

    def encoder(self) -> Any:
        """The embedder (torch, :class:`~memos_cli.models.embedder.Embedder`), loaded once."""
        if self._encoder is None:
            self._say("loading embedder")
            self._encoder = Embedder(self._embedder_path)
        return self._encoder

    def query_encoder(self) -> Any:
        """The query encoder: the embedder's ONNX export when there is one (no torch import),
        else :meth:`encoder` (:mod:`memos_cli.models.onnx_embedder`)."""
        if self._encoder is not None:
            return self._encoder
        if self._query_encoder is None:
            self._say("loading embedder")
            self._query_encoder = query_embedder(self._embedder_path)
        return self._query_encoder

    def chat(self) -> Any:
        """The chat model (:class:`~memos_cli.models.chat.ChatModel`), loaded once."""
        if self._chat is None:
            self._say("loading model")
            self._chat = chat.load(self._model, status=self._status, device=self._device)
        return self._chat

    # -- reading ------------------------------------------------------------------------------
    def search(self, query: str, k: int = 5, view: View = CURRENT) -> SearchResult:
        """The ``k`` memories closest to ``query`` (vector and full-text retrieval fused by
        rank, spec §6) that the user may read, best first; logged and counted as a use.
        ``view``: the current memories (default), those valid at ``View.as_of``, or with
        ``View.history`` superseded ones too (spec §4.6).

        Raises:
            UsageError: ``k`` < 1, or several cubes (search one at a time).
            EmbedderMismatchError: the embedder did not build the index.
        """
        return self._search(query, k, audit=True, view=view)

    def _usage_store(self) -> UsageStore:
        """Where searches of this session are counted, opened in the background."""
        if self.cubes:
            return cube_store(self.cubes[0].manifest.cube_id).warm()
        return UsageStore(self.vault.place.usage_dir()).warm()

    def _search(self, query: str, k: int, *, audit: bool, view: View = CURRENT,
                uses: list[Any] | None = None) -> SearchResult:
        """One search; its uses are recorded now, or added to ``uses`` when given (a batch
        of queries records them in one commit)."""
        if k < 1:
            raise UsageError("-k must be at least 1")
        if len(self.cubes) > 1:
            raise UsageError("search takes one cube (or a vault)")
        enc = self.query_encoder()
        hidden: list[int] = []
        store = self._usage_store() if uses is None else None
        if self.cubes:
            cube = self.cubes[0]
            t0 = time.perf_counter()
            hits = retrieve(cube, enc, query, k, user=self.user, hidden=hidden, view=view)
            took = time.perf_counter() - t0
            if audit:
                self._audit("search", cube.manifest.cube_id, [h.memory.id for h in hits], query)
        else:
            v = self.vault
            t0 = time.perf_counter()
            hits = vault_search(v, enc, query, k, user=self.actor, hidden=hidden, view=view)
            took = time.perf_counter() - t0
            if audit:
                v.log(self.actor, "search", memory_ids=[h.memory.id for h in hits],
                      detail={"query": query})
        if store is not None:
            self._record(store, "search", uses_of(hits))
        elif uses is not None:
            uses.extend(uses_of(hits))
        return SearchResult(query, self.where, bool(self.cubes), hits, took, sum(hidden),
                            self.actor)

    def search_many(self, queries: Iterable[tuple[Any, str, int]],
                    view: View = CURRENT) -> Iterable[tuple[Any, SearchResult]]:
        """``(id, result)`` for each ``(id, query, k)``, in one process (``memos search
        --queries``); a cube's read gets one access-log record for the whole batch, a vault's
        queries none (as before the entry point). Uses are recorded in one commit per
        :data:`USES_PER_COMMIT` queries, one commit at a time: 100,000 queries make 10
        versions of the usage store, not 100,000 writers at once."""
        n = 0
        store = self._usage_store()
        uses: list[Any] = []
        for qid, query, k in queries:
            n += 1
            yield qid, self._search(query, k, audit=False, view=view, uses=uses)
            if n % USES_PER_COMMIT == 0:
                self._settle()
                self._record(store, "search", uses)
                uses = []
        if uses:
            self._record(store, "search", uses)
        if self.cubes:
            self._audit("search", self.cubes[0].manifest.cube_id, [],
                        f"{n} queries from a file")

    def answer(self, question: str, options: AnswerOptions | None = None) -> Answer:
        """Answer ``question`` with the chat model and the memories, by ``options.tier``
        (:mod:`memos_cli.api.answering`); the memories used are logged and counted as uses.

        Raises:
            UsageError: options that do not go together.
            ModelNotFoundError: the model is not available locally.
            FormatError, IntegrityError: a KV segment, chunk or adapter that does not fit.
        """
        opts = (options or AnswerOptions()).checked(cubes=len(self.cubes),
                                                    vault=not self.cubes,
                                                    user=self.user is not None)
        lm = self.chat()
        result = answer_with(opts, question, cubes=self.cubes, vault=self.vault,
                             user=self.user, actor=self.actor, chat=lm, encoder=self.encoder)
        for c in self.cubes:
            self._audit("run", c.manifest.cube_id, [r.memory.id for r in result.memories],
                        question)
        if result.tier in ("text", "auto") or (result.tier == "kv" and result.details):
            retrieved = [r for r in result.memories
                         if r.vector_rank is not None or r.text_rank is not None or r.score]
            store = UsageStore(self.vault.place.usage_dir()) if not self.cubes else \
                cube_store(self.cubes[0].manifest.cube_id)
            self._record(store, "run", uses_of(retrieved, [r.memory for r in result.memories]))
        return result

    def history(self, memory_id: str) -> MemoryHistory:
        """A memory's supersession chain and versions that the user may read, oldest first
        (:func:`memos_cli.api.reading.history`)."""
        return reading.history(self, memory_id)

    # -- writing ------------------------------------------------------------------------------
    def add(self, sources: Sequence[str | Path], *, defaults: Any = None,
            key: str | Path | None = None, supersede: bool = True,
            dry_run: bool = False) -> Any:
        """Add the memories of ``sources`` to the one cube (``memos add``): identical ones are
        skipped, one with an id already there is a new version of it, and with ``supersede``
        each other one is decided against the current memories (duplicate, update or new,
        spec §4.6). ``dry_run``: decide, write nothing (the report's ``decisions`` say what
        would happen). Returns the :class:`~memos_cli.lifecycle.rewrite.UpdateReport`.

        Raises:
            UsageError: not exactly one cube. SourceError, EmbedderMismatchError: as ``add``.
        """
        if len(self.cubes) != 1:
            raise UsageError("add writes to one cube")
        cube, now = self.cubes[0], read_manifest(self.cubes[0].path)
        if (now.revision, now.content_digest) != (cube.manifest.revision,
                                                  cube.manifest.content_digest):
            cube = open_verified(cube.path)  # changed since the session opened it
        report = add(cube, list(sources), embedder=self.encoder(),
                     defaults=defaults or Defaults(now=datetime.now(timezone.utc),
                                                   owner=self.actor), key=key,
                     supersede=supersede, dry_run=dry_run)
        if not dry_run:
            self.cubes[0] = open_verified(self.cubes[0].path)
        return report

    def remember(self, text: str, **options: Any) -> Any:
        """Write one memory (:func:`memos_cli.api.writing.remember`, same options): the
        supersession decision is made, and the result says ``duplicate``, ``update`` (of
        which memory) or ``new``."""
        return writing.remember(self, text, **options)

    def load(self, source: str | Path, **options: Any) -> Any:
        """Install a cube or another system's file into the vault
        (:func:`memos_cli.api.writing.load`, same options); returns the
        :class:`~memos_cli.vault.load.LoadReport`."""
        return writing.load(self, source, **options)

    def forget(self, memory_id: str, *, key: str | Path | None = None) -> Memory:
        """Remove one memory the user may change (:func:`memos_cli.api.writing.forget`)."""
        return writing.forget(self, memory_id, key=key)

    def why(self, memory_id: str) -> dict[str, Any]:
        """Why the user may or may not read and change a memory
        (:func:`memos_cli.api.reading.why`)."""
        return reading.why(self, memory_id)

    def reopen(self) -> None:
        """Open the session's cubes again (after a change to one of them)."""
        self.cubes = [open_verified(c.path) for c in self.cubes]

    def dump(self, out: str | Path, *, fmt: str = "jsonl", keep: Any = None,
             redact: Sequence[str] = (), key: str | Path | None = None, force: bool = False,
             with_usage: bool = False, derived: bool = True, now: Any = None,
             keep_terms: tuple[str, ...] = (), redact_terms: tuple[str, ...] = ()) -> Any:
        """Export what the user may read (MemDumper, ``memos dump``) to ``out`` in ``fmt``
        (``jsonl``, ``markdown``, ``memcube``): the memories ``keep`` (a
        :class:`~memos_cli.lifecycle.dump.Filter`) selects, with the access log of those
        memories, their usage indicators with ``with_usage``, personal data replaced for the
        ``redact`` types (Presidio), a memcube export signed with ``key``. The export is
        recorded in the vault's access log (a cube's, in the default vault's when there is
        one). Returns the :class:`~memos_cli.lifecycle.dump.DumpReport`.

        Raises:
            UsageError: several cubes, an output that cannot be written (checked first), or
                nothing the user may read.
            CubeExistsError: ``out`` exists and not ``force``.
        """
        if len(self.cubes) > 1:
            raise UsageError("dump exports one cube (or a vault)")
        check_target(out, fmt, force=force)
        log_to = self.vault if not self.cubes else Vault(None)  # a cube's reads: default vault
        enc = self.encoder() if redact and fmt == "memcube" else None
        src = cube_source(self.cubes[0]) if self.cubes else vault_source(self.vault)
        usage = None
        if with_usage:
            store = cube_store(self.cubes[0].manifest.cube_id) if self.cubes else \
                UsageStore(self.vault.place.usage_dir())
            usage = {i: u.to_dict() for i, u in store.indicators().items()}
        report = dump(src, out, user=self.actor, keep=keep or Filter(), fmt=fmt, key=key,
                      force=force, now=now or datetime.now(timezone.utc), redact=tuple(redact),
                      embedder=enc, access_log=log_to.read_log(), usage=usage,
                      derived=derived, keep_terms=keep_terms, redact_terms=redact_terms)
        if not self.cubes or log_to.exists():
            log_to.log(self.actor, "dump",
                       cube_id=src.parents[0] if self.cubes else None,
                       memory_ids=report.memory_ids,
                       detail={"output": str(out), "format": fmt, "memories": report.memories,
                               "redacted": list(redact)})
        return report

    def schedule(self, **options: Any) -> Any:
        """Move memories between tiers by their use (MemScheduler, ``memos schedule``):
        :func:`memos_cli.api.scheduling.schedule` with this session's cubes or vault and
        model."""
        return schedule(self, **options)

    # -- lifetime -----------------------------------------------------------------------------
    def close(self) -> None:
        """Wait for the usage records started by :meth:`search` and :meth:`answer`."""
        self._settle()

    def _settle(self) -> None:
        while self._pending:
            self._pending.pop().join()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def _say(self, text: str) -> None:
        if self._status is not None:
            self._status(text)

    def _record(self, store: UsageStore, op: str, uses: list[Any]) -> None:
        worker = threading.Thread(target=record_quietly, args=(store, op, uses), daemon=True)
        worker.start()
        self._pending.append(worker)

    def _audit(self, op: str, cube_id: str, ids: list[str], text: str) -> None:
        """A read of a cube, in the default vault's access log when there is a vault."""
        v = Vault(None)
        if v.exists():
            v.log(self.actor, op, cube_id=cube_id, memory_ids=ids, detail={"query": text})
