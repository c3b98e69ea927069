"""A second retrieval round: the query expanded with the key terms of the first round's best
memories (pseudo-relevance feedback), fused with the first round.

Questions that need two pieces of evidence (LoCoMo's multi-hop category) often share words
with one of them only. The first round finds that one; its rarest words (by inverse document
frequency over the memories searched) name what the other piece is about. The expanded query
is searched as the first was (hybrid, spec §6), and the two rankings are fused with
Reciprocal Rank Fusion (Cormack et al., SIGIR 2009; k = 60).

Method: Rocchio's relevance feedback (1971) with the top-ranked results taken as relevant
("pseudo"), choosing expansion terms by tf·idf over the feedback documents as in local
analysis (Xu & Croft, SIGIR 1996); no model is called. Parameters (3 feedback memories, 5
terms, equal weights) were chosen on LoCoMo conversations 26, 30 and 41
(``bench/expansion.py``).
"""

from __future__ import annotations

import math
import re
from collections import Counter, OrderedDict
from collections.abc import Callable, Hashable, Iterable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from memos_cli.words import FUNCTION_WORDS

#: Memories of the first round whose words expand the query.
FEEDBACK = 3
#: Words added to the query.
TERMS = 5
#: Reciprocal Rank Fusion constant for the two rounds, and the expanded round's weight.
RRF_K = 60
WEIGHT = 1.0
#: Texts document frequencies are counted over: a sample of this many, spread evenly.
SAMPLE = 20_000
_WORD = re.compile(r"[^\W\d_][\w'\-]{2,}")
_CACHE: OrderedDict[Hashable, DocFreq] = OrderedDict()
_CACHE_SIZE = 8


def words(text: str) -> list[str]:
    """Lower-cased words of at least three characters, function words left out."""
    return [w for w in (m.lower() for m in _WORD.findall(text)) if w not in FUNCTION_WORDS]


@dataclass(frozen=True)
class DocFreq:
    """How many of ``n`` texts hold each word (each text counted once per word)."""

    n: int
    df: dict[str, int]

    @classmethod
    def of(cls, texts: Sequence[str]) -> DocFreq:
        """Counted over at most :data:`SAMPLE` of ``texts``, spread evenly over them."""
        step = max(1, math.ceil(len(texts) / SAMPLE))
        counts: Counter[str] = Counter()
        n = 0
        for t in texts[::step]:
            counts.update(set(words(t)))
            n += 1
        return cls(n, dict(counts))

    def idf(self, word: str) -> float:
        return math.log((self.n + 1) / (1 + self.df.get(word, 0)))


def doc_freq(key: Hashable, texts: Any) -> DocFreq:
    """:meth:`DocFreq.of` the texts ``texts()`` returns, kept for ``key`` (a cube's content
    digest, a vault's version) while the process runs; the last eight are kept."""
    if key in _CACHE:
        _CACHE.move_to_end(key)
        return _CACHE[key]
    got = _CACHE[key] = DocFreq.of(texts())
    while len(_CACHE) > _CACHE_SIZE:
        _CACHE.popitem(last=False)
    return got


def expand(query: str, feedback: Iterable[str], df: DocFreq, terms: int = TERMS) -> str | None:
    """``query`` followed by the ``terms`` words of the ``feedback`` texts with the highest
    summed idf (a word counts once per text), leaving out the query's own words; ties in
    alphabetical order. ``None`` when no word is left to add."""
    asked = set(words(query))
    score: dict[str, float] = {}
    for text in feedback:
        for w in set(words(text)) - asked:
            score[w] = score.get(w, 0.0) + df.idf(w)
    best = sorted(score.items(), key=lambda kv: (-kv[1], kv[0]))[:terms]
    return f"{query} {' '.join(w for w, _ in best)}" if best else None


def fuse(first: Sequence[Any], second: Sequence[Any], k: int) -> list[Any]:
    """The hits (``cube.index.Hit``) of two rounds as one ranking: each memory scores
    ``1 / (RRF_K + rank)`` per round it appears in (rank from 0; the second round weighted
    :data:`WEIGHT`), best first, ties by id; a hit keeps the first round's ranks and row
    where it had one. At most ``k``."""
    score: dict[str, float] = {}
    hit: dict[str, Any] = {}
    for weight, hits in ((1.0, first), (WEIGHT, second)):
        for rank, h in enumerate(hits):
            score[h.id] = score.get(h.id, 0.0) + weight / (RRF_K + rank)
            hit.setdefault(h.id, h)
    ranked = sorted(score, key=lambda i: (-score[i], i))[:k]
    return [replace(hit[i], score=score[i]) for i in ranked]


def two_rounds(search: Callable[[str, Any, int], list[Any]], encode: Callable[[str], Any],
               query: str, vector: Any, k: int, feedback: Callable[[list[Any]], list[str]],
               df: Callable[[], DocFreq], depth: int) -> list[Any]:
    """Search ``query`` (its embedding ``vector``) with ``search(query, vector, n)``, expand
    it with the texts ``feedback`` gives for the first :data:`FEEDBACK` hits, search the
    expanded query (embedded by ``encode``) and :func:`fuse` the two rounds, each ``depth``
    deep (at least ``k``). Returns at most ``k`` hits; the first round's alone when nothing
    can be added to the query."""
    depth = max(k, depth)
    first = search(query, vector, depth)
    wider = expand(query, feedback(first[:FEEDBACK]), df()) if first else None
    if wider is None:
        return first[:k]
    return fuse(first, search(wider, encode(wider), depth), k)
