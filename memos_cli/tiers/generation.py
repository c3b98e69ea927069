"""Generation controls shared by every tier: repetition penalty, n-gram blocking, nucleus
sampling, a seed, a replacement system prompt, and where an answer stops.

The options are set for a block of code with :func:`using` (``memos run`` does it from its
flags) and read where tokens are generated (``decode.generate_ids``) and where the prompt
is laid out (``prompt``), so the many answer paths need no extra parameters. Outside
:func:`using` the defaults apply; :data:`PLAIN` turns every control off (greedy decoding as
before these options existed).

The defaults were chosen on a LoCoMo conversation and measured on another (README, "Answers";
``bench/answers.py``): the small default model loops ("1. Ned 2. Ned ...") and echoes the
question without them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass, replace
from typing import Any

from memos_cli.errors import UsageError


@dataclass(frozen=True)
class GenerationOptions:
    """How tokens are chosen.

    ``repetition_penalty``: CTRL's penalty (Keskar et al., 2019) on every token already in the
    answer (not the prompt, which holds the memories to copy from), > 1 discourages repeats
    (1 = off). ``no_repeat_ngram_size``: no word
    piece n-gram of this size occurs twice in the answer (0 = off). ``top_p``: nucleus sampling
    (Holtzman et al., ICLR 2020) when sampling (``temperature`` > 0). ``seed``: seeds torch's
    generator before sampling. ``system``: replaces the system prompt's instruction (the text
    tier only: KV chunks were computed after the standard one). ``stop_at_blank_line``: the
    answer ends at its first blank line (the instruction asks for a brief answer; what follows
    a blank line is where small models start a new question or a list that loops).
    """

    repetition_penalty: float = 1.0
    no_repeat_ngram_size: int = 0
    top_p: float = 1.0
    seed: int | None = None
    system: str | None = None
    stop_at_blank_line: bool = False

    def check(self) -> GenerationOptions:
        """Raises ``UsageError`` for out-of-range values; returns ``self``."""
        if not 0.5 <= self.repetition_penalty <= 3.0:
            raise UsageError("--repetition-penalty must be between 0.5 and 3 (1 is off)")
        if not 0 <= self.no_repeat_ngram_size <= 32:
            raise UsageError("--no-repeat-ngram-size must be between 0 (off) and 32")
        if not 0.0 < self.top_p <= 1.0:
            raise UsageError("--top-p must be in (0, 1]")
        if self.system is not None and not self.system.strip():
            raise UsageError("--system is empty")
        return self

    def hf_kwargs(self, tokenizer: Any, prompt_len: int) -> dict[str, Any]:
        """Keyword arguments for ``model.generate`` after a prompt of ``prompt_len`` tokens
        (sampling ones are added by the caller)."""
        out: dict[str, Any] = {}
        processors = []
        if self.repetition_penalty != 1.0:
            processors.append(_answer_penalty(self.repetition_penalty, prompt_len))
        if processors:
            from transformers import LogitsProcessorList

            out["logits_processor"] = LogitsProcessorList(processors)
        if self.no_repeat_ngram_size:
            out["no_repeat_ngram_size"] = self.no_repeat_ngram_size
        if self.stop_at_blank_line:
            from transformers import StoppingCriteriaList

            out["stopping_criteria"] = StoppingCriteriaList([_blank_line(tokenizer,
                                                                         prompt_len)])
        return out


def _answer_penalty(penalty: float, prompt_len: int) -> Any:
    """A transformers ``LogitsProcessor`` applying CTRL's repetition penalty (Keskar et al.,
    2019: a logit above 0 divided by ``penalty``, one below multiplied) to the tokens already
    in the answer only. transformers' own ``repetition_penalty`` also penalises the prompt,
    which here holds the memories: it kept the model from copying the fact it was asked for
    ("48,000")."""
    import torch
    from transformers import LogitsProcessor

    class AnswerPenalty(LogitsProcessor):
        def __call__(self, input_ids: Any, scores: Any) -> Any:
            done = input_ids[:, prompt_len:]
            if done.shape[1] == 0:
                return scores
            picked = torch.gather(scores, 1, done)
            picked = torch.where(picked < 0, picked * penalty, picked / penalty)
            return scores.scatter(1, done, picked)

    return AnswerPenalty()


def _blank_line(tokenizer: Any, prompt_len: int) -> Any:
    """A transformers ``StoppingCriteria`` that ends generation once the answer (decoded
    after ``prompt_len`` tokens, leading blank lines ignored) holds a blank line. Decoding is
    used rather than ``stop_strings``, which needs a tokenizer whose pieces carry a fixed
    prefix."""
    import torch
    from transformers import StoppingCriteria

    class BlankLine(StoppingCriteria):
        def __call__(self, input_ids: Any, scores: Any, **kwargs: Any) -> Any:
            done = ["\n\n" in tokenizer.decode(row[prompt_len:], skip_special_tokens=True)
                    .lstrip() for row in input_ids]
            return torch.tensor(done, dtype=torch.bool, device=input_ids.device)

    return BlankLine()


#: No control at all: greedy decoding exactly as the model gives it.
PLAIN = GenerationOptions()
#: What ``memos run`` and ``memos eval`` use unless told otherwise (README, "Answers").
DEFAULT = GenerationOptions(repetition_penalty=1.15, no_repeat_ngram_size=0,
                            stop_at_blank_line=True)

_CURRENT: ContextVar[GenerationOptions] = ContextVar("memos_generation", default=PLAIN)


def current() -> GenerationOptions:
    return _CURRENT.get()


@contextmanager
def using(options: GenerationOptions) -> Iterator[GenerationOptions]:
    """Generate with ``options`` inside the block."""
    token = _CURRENT.set(options.check())
    try:
        yield options
    finally:
        _CURRENT.reset(token)


def with_flags(base: GenerationOptions = DEFAULT, **flags: Any) -> GenerationOptions:
    """``base`` with the flags that were given (``None`` means not given)."""
    return replace(base, **{k: v for k, v in flags.items() if v is not None})
