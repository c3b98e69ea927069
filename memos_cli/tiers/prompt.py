"""The prompt layout shared by the plaintext tier and KV chunks (spec/memcube.md §12.2).

A prompt is a sequence of token pieces, each tokenized on its own and concatenated:

``prefix | marker(1) chunk(1) | marker(2) chunk(2) | ... | closing(question)``

- *prefix*: the model's chat template, up to and including ``SYSTEM_HEAD`` inside the system
  turn. It does not depend on the question or the memories, so its KV cache is computed once
  per model (the shared prefix of Prompt Cache, Gim et al., MLSys 2024, and of APE, ICLR 2025);
- *marker*: ``[i]``, the memory's 1-based place in this prompt. Markers are always prefilled
  at run time (three or four tokens), so a chunk never depends on its rank;
- *chunk*: `` {rendered}\\n`` for one memory (spec §4.4), or one such line per member for a
  group of memories (a session, a section). A chunk's KV cache is precomputed where it would
  stand in slot 1 (after the prefix and ``[1]``) and reused wherever the memory is retrieved;
- *closing*: what the chat template puts after the system text: the end of the system turn,
  the question's user turn and the assistant header.

Because the plaintext tier builds its prompt from the same pieces, a fully recomputed chunked
prompt is token for token the plaintext tier's prompt.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from memos_cli.errors import UsageError
from memos_cli.memory import Memory
from memos_cli.tiers.generation import current

SYSTEM_HEAD = (
    "You are a helpful assistant with a memory. Answer the user's question using the "
    "memories below; they are the facts you know. Answer briefly. If the memories do not "
    "hold the answer, say that you do not know.\n\nMemories:\n"
)
NO_MEMORIES = "(none)\n"
#: The layout, as stored with every chunk set and compared at run time (its digest is part of
#: the chunk set id).
LAYOUT = {
    "name": "memos-chunks/1",
    "chunk_context": "prefix, then the marker of slot 1",
    "system_head": SYSTEM_HEAD,
    "marker": "[{i}]",
    "chunk_line": " {rendered}\n",
    "no_memories": NO_MEMORIES,
    "pieces": "prefix, then per slot marker and chunk, then closing; each piece tokenized "
              "alone without special tokens added",
}
_SENTINEL = "\u0000MEMOS-SLOT\u0000"


@dataclass(frozen=True)
class Piece:
    """A piece of a prompt: ``kind`` (``prefix``, ``marker``, ``chunk``, ``closing``), its
    token ids, and for a chunk the memories it holds."""

    kind: str
    ids: list[int]
    memories: tuple[Memory, ...] = ()


def _encode(tokenizer: Any, text: str) -> list[int]:
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def system_head() -> str:
    """The system text before the memories: ``--system`` (with the ``Memories:`` heading
    added), else :data:`SYSTEM_HEAD`."""
    own = current().system
    return SYSTEM_HEAD if own is None else own.rstrip() + "\n\nMemories:\n"


def _render(tokenizer: Any, question: str) -> tuple[str, str]:
    messages = [{"role": "system", "content": system_head() + _SENTINEL},
                {"role": "user", "content": question}]
    try:
        text = tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                             tokenize=False)
    except Exception as e:  # jinja2 TemplateError: e.g. a template without a system role
        raise UsageError(f"the model's chat template cannot render a system turn: {e}") from e
    if not isinstance(text, str) or text.count(_SENTINEL) != 1:
        raise UsageError("the model's chat template does not keep the system text verbatim, "
                         "so memories cannot be laid out in it")
    before, after = text.split(_SENTINEL)
    return before, after


_PREFIX: dict[tuple[int, str], list[int]] = {}


def prefix_ids(tokenizer: Any) -> list[int]:
    """Token ids of the shared prefix (everything before the first memory), computed once per
    tokenizer and chat template.

    Raises:
        UsageError: the chat template has no verbatim system turn, or renders it differently
            depending on the question (then no prefix can be shared).
    """
    key = (id(tokenizer), str(getattr(tokenizer, "chat_template", "")) + system_head())
    if key not in _PREFIX:
        _PREFIX[key] = _prefix_ids(tokenizer)
    return list(_PREFIX[key])


def _prefix_ids(tokenizer: Any) -> list[int]:
    a, _ = _render(tokenizer, "Which?")
    b, _ = _render(tokenizer, "What is the capital of France?")
    if a != b:
        raise UsageError("the model's chat template changes the system turn with the question, "
                         "so its prefix cannot be shared")
    return _encode(tokenizer, a)


def closing_ids(tokenizer: Any, question: str) -> list[int]:
    """Token ids after the memories: end of the system turn, the question, assistant header."""
    return _encode(tokenizer, _render(tokenizer, question)[1])


def no_memories_ids(tokenizer: Any) -> list[int]:
    """Token ids that stand in the memories' place when there are none."""
    return _encode(tokenizer, NO_MEMORIES)


def marker_ids(tokenizer: Any, slot: int) -> list[int]:
    """Token ids of the marker of the ``slot``-th (1-based) chunk."""
    return _encode(tokenizer, f"[{slot}]")


def chunk_text(memories: Sequence[Memory]) -> str:
    """The text of a chunk holding ``memories`` (one line each, in the order given)."""
    return "".join(f" {m.render()}\n" for m in memories)


def chunk_ids(tokenizer: Any, memories: Sequence[Memory]) -> list[int]:
    """Token ids of the chunk holding ``memories``."""
    return _encode(tokenizer, chunk_text(memories))


def pieces(tokenizer: Any, groups: Sequence[Sequence[Memory]], question: str,
           prefix: list[int] | None = None) -> list[Piece]:
    """The prompt for ``question`` with ``groups`` of memories in this order, as pieces.

    ``prefix``: the prefix ids when the caller has them already (from :func:`prefix_ids`).
    """
    out = [Piece("prefix", prefix if prefix is not None else prefix_ids(tokenizer))]
    if not groups:
        out.append(Piece("marker", no_memories_ids(tokenizer)))
    for slot, group in enumerate(groups, start=1):
        out.append(Piece("marker", marker_ids(tokenizer, slot)))
        out.append(Piece("chunk", chunk_ids(tokenizer, group), tuple(group)))
    out.append(Piece("closing", closing_ids(tokenizer, question)))
    return out


def prompt_ids(tokenizer: Any, memories: Sequence[Memory], question: str) -> list[int]:
    """The plaintext tier's prompt: every memory its own chunk, in the order given."""
    return [t for p in pieces(tokenizer, [[m] for m in memories], question) for t in p.ids]
