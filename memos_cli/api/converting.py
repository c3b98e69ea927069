"""Converting a cube between tiers (MemOS paper §4.1: plaintext ↔ activation ↔ parameter
memory): which options go together, which memories, and which tier's code builds.

:func:`prepare_conversion` checks the options and picks the memories; :meth:`Conversion.run`
builds the tier with a loaded chat model. Between the two the caller loads the model its own
way (the CLI under a spinner), since loading and building report progress differently.
``memos convert`` is this module after its flags are parsed; a library caller does the same::

    from memos_cli.api import ConvertOptions, prepare_conversion
    from memos_cli.models import chat

    job = prepare_conversion("team.memcube", ConvertOptions(to="kv", chunks=True))
    result = job.run(chat.load(None) if job.needs_model else None)
    print(result.to_dict())

Importing this module imports neither torch nor transformers; :meth:`Conversion.run` does.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from memos_cli.cube import open_cube, open_verified
from memos_cli.errors import UsageError
from memos_cli.evaluation.evaluate import bare_ask, load_questions, run_tier
from memos_cli.memory import Memory
from memos_cli.tiers.lora import RECIPES, REPLAY_PROMPTS, Recipe

#: The tiers a cube converts to: ``kv`` (a KV segment, or with ``chunks`` a chunk set),
#: ``lora`` (an adapter) and ``text`` (the plaintext tier rebuilt from another).
TARGETS = ("kv", "text", "lora")

#: ``progress(stage, done, total)``.
Progress = Callable[[str, int, int], None]


@dataclass(frozen=True)
class ConvertOptions:
    """What to build (``memos convert --help`` says what each does).

    ``to``: one of :data:`TARGETS`. ``ids`` (exactly these memories, in this order), or
    ``query`` with ``top`` (the top-N retrieved), else every memory by priority.
    ``dtype``: storage dtype (``None``: float32, or for chunks the model's own,
    :func:`~memos_cli.tiers.convert_chunks.default_dtype`). ``chunks``, ``group``,
    ``max_bytes`` (bytes): a KV chunk set. ``recipe`` … ``budget``, ``eval_file``: the LoRA
    adapter (:mod:`memos_cli.tiers.lora`).
    """

    to: str
    ids: tuple[str, ...] = ()
    query: str | None = None
    top: int | None = None
    drop_text: bool = False
    chunks: bool = False
    group: str = "memory"
    max_bytes: int | None = None
    dtype: str | None = None
    recipe: str = "guarded"
    epochs: int | None = None
    rank: int = 16
    lr: float | None = None
    seed: int = 0
    replay: int = 32
    budget: int = 64
    eval_file: Path | None = None

    def checked(self) -> ConvertOptions:
        """These options, when they go together.

        Raises:
            UsageError: an unknown target or recipe, ``top`` < 1, ``chunks`` without ``kv``
                or with ``drop_text``, a LoRA knob out of range.
        """
        if self.to not in TARGETS:
            raise UsageError(f"--to {self.to!r}: this memos converts to kv (activation tier), "
                             "lora (parameter tier) or text")
        if self.to == "text":
            return self
        if self.top is not None and self.top < 1:
            raise UsageError("--top must be at least 1")
        if self.chunks and (self.to != "kv" or self.drop_text):
            raise UsageError("--chunks goes with --to kv, without --drop-text (chunks follow "
                             "retrieval, which needs the plaintext tier)")
        if self.to == "lora":
            self._check_lora()
        return self

    def _check_lora(self) -> None:
        if self.recipe not in RECIPES:
            raise UsageError(f"--recipe {self.recipe!r} is not one of {', '.join(RECIPES)}")
        if (self.epochs is not None and self.epochs < 1) or self.rank < 1 or \
                (self.lr is not None and self.lr <= 0) or \
                self.budget < 1 or not 0 <= self.replay <= len(REPLAY_PROMPTS):
            raise UsageError("--epochs, --rank and --budget must be at least 1, --lr above 0, "
                             f"--replay 0 to {len(REPLAY_PROMPTS)}")


@dataclass
class Converted:
    """What :meth:`Conversion.run` built: ``kind`` (``text``, ``kv``, ``chunks``, ``lora``),
    the building module's ``report`` (a dict, or a report with ``to_dict``), and
    ``dropped_signature``: the cube was signed and is not any more (no key was given)."""

    kind: str
    report: Any
    dropped_signature: bool

    def to_dict(self) -> dict[str, Any]:
        """The ``memos convert --json`` document (the building module's report)."""
        r = self.report
        return dict(r) if isinstance(r, dict) else r.to_dict()


@dataclass
class Conversion:
    """A checked conversion of one local cube, ready to :meth:`run`."""

    cube: Path
    options: ConvertOptions
    memories: list[Memory] = field(default_factory=list)
    #: whether :meth:`run` needs a chat model (restoring text from an adapter does not)
    needs_model: bool = True
    was_signed: bool = False

    @property
    def kind(self) -> str:
        """``text``, ``kv``, ``chunks`` or ``lora``."""
        return "chunks" if self.options.chunks else self.options.to

    def run(self, chat: Any, *, embedder: Any = None, key: str | Path | None = None,
            progress: Progress | None = None) -> Converted:
        """Build the tier with ``chat`` (a loaded :class:`~memos_cli.models.chat.ChatModel`;
        ``None`` when :attr:`needs_model` is false), writing the cube atomically and signing
        it with ``key`` (without one, a signature is removed rather than left stale).
        ``embedder`` (loaded) rebuilds the index of ``to="text"``. ``progress`` hears chunk
        builds, LoRA training steps and build-time eval questions.

        Raises:
            UsageError, FormatError: from the building module
            (:mod:`memos_cli.tiers.convert`, :mod:`memos_cli.tiers.convert_chunks`).
        """
        from memos_cli.tiers import convert as tiers_convert  # imports torch

        o = self.options
        if self.needs_model and chat is None:
            raise UsageError(f"converting to {self.kind} needs a chat model")
        if o.to == "text":
            if embedder is None:
                raise UsageError("restoring the plaintext tier needs an embedder")
            data = tiers_convert.restore_text(self.cube, chat, embedder, key=key)
            return Converted("text", data, self.was_signed and not data["signed"])
        if o.chunks:
            return Converted("chunks", self._chunks(chat, key, progress),
                             self.was_signed and key is None)
        if o.to == "lora":
            return Converted("lora", self._lora(chat, key, progress),
                             self.was_signed and key is None)
        report = tiers_convert.convert_to_kv(self.cube, chat, self.memories,
                                             storage_dtype=o.dtype or "float32", key=key,
                                             drop_text=o.drop_text)
        return Converted("kv", report, self.was_signed and not report.signed)

    def _chunks(self, chat: Any, key: str | Path | None, progress: Progress | None) -> Any:
        from memos_cli.tiers.convert_chunks import convert_to_chunks, default_dtype

        o = self.options
        tell = None if progress is None else (
            lambda d, t: progress("prefilling KV chunks", d, t))
        return convert_to_chunks(self.cube, chat, self.memories, group=o.group,
                                 storage_dtype=o.dtype or default_dtype(chat),
                                 max_bytes=o.max_bytes, key=key, progress=tell)

    def _lora(self, chat: Any, key: str | Path | None, progress: Progress | None) -> Any:
        from memos_cli.tiers.convert import convert_to_lora

        o = self.options
        recipe = Recipe.named(o.recipe, epochs=o.epochs, rank=o.rank, alpha=2 * o.rank,
                              lr=o.lr, seed=o.seed, replay=o.replay)
        hear = progress or (lambda stage, done, total: None)
        evaluate = None
        if o.eval_file is not None:
            questions = load_questions(o.eval_file)
            name = o.eval_file.name

            def evaluate(tuned: Any) -> dict[str, Any]:
                d = run_tier("lora", bare_ask(tuned, "lora"), questions, 0, hear).to_dict()
                d.pop("bytes")
                return {"questions_file": name, **d}
        return convert_to_lora(
            self.cube, chat, self.memories, recipe, key=key, drop_text=o.drop_text,
            budget=o.budget, evaluate=evaluate,
            progress=lambda step, total, loss: hear("training the LoRA adapter", step, total))


def prepare_conversion(cube: str | Path, options: ConvertOptions, *,
                       embedder: Any = None) -> Conversion:
    """Check ``options`` and pick the memories of the local cube ``cube`` (verified first,
    except for ``to="text"``, whose cube has no plaintext tier to verify against).
    ``embedder`` (loaded) is needed for ``query``.

    Raises:
        UsageError: see :meth:`ConvertOptions.checked`; unknown ids; a ``query`` without an
            embedder. CubeNotFoundError, FormatError, IntegrityError: not a sound cube.
    """
    o = options.checked()
    path = Path(cube)
    if o.to == "text":
        c = open_cube(path)
        return Conversion(path, o, [], needs_model=not c.has_lora, was_signed=c.signed)
    from memos_cli.tiers.convert import select_memories  # imports torch

    c = open_verified(path)
    if o.query is not None and embedder is None:
        raise UsageError("choosing memories by a query needs an embedder")
    mems = select_memories(c, ids=list(o.ids), query=o.query, top=o.top, embedder=embedder)
    return Conversion(path, o, mems, needs_model=True, was_signed=c.signed)
