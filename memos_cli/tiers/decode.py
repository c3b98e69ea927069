"""Decoding: generate after a prompt's token ids, greedily or by sampling, with the
generation controls in force (:mod:`memos_cli.tiers.generation`), timing the first token.

Every tier generates through :func:`generate_ids`: the plaintext tier after its whole
prompt, the KV tiers after a cache that holds the prompt (then only the rest is prefilled,
or the first token is taken from logits the composition already has).
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from typing import Any

from memos_cli.models.chat import ChatModel
from memos_cli.tiers import generation


@dataclass
class Generation:
    """Generated ``text`` and timings: ``ttft_s`` (seconds from the call to the first new
    token, prefill included), ``total_s``, ``new_tokens``, ``tokens_per_s`` (decode rate after
    the first token), ``prompt_tokens``."""

    text: str
    prompt_tokens: int
    new_tokens: int
    ttft_s: float
    total_s: float
    token_ids: list[int] = field(default_factory=list)
    #: why generation stopped: ``end`` (the model's end-of-sequence token), ``blank line``
    #: (the answer's first blank line, the default stop), ``max tokens`` (cut at the limit,
    #: likely mid-sentence), or ``""`` when not known
    stop: str = ""

    @property
    def tokens_per_s(self) -> float:
        decode = self.total_s - self.ttft_s
        return (self.new_tokens - 1) / decode if self.new_tokens > 1 and decode > 0 else 0.0


class _FirstTokenClock:
    """A transformers streamer that notes when the first generated token arrives."""

    def __init__(self) -> None:
        self.calls = 0
        self.first: float | None = None

    def put(self, value: Any) -> None:
        self.calls += 1
        if self.calls == 2 and self.first is None:  # call 1 is the prompt
            self.first = time.perf_counter()

    def end(self) -> None:
        pass


def generate(chat: ChatModel, messages: list[dict[str, str]], *, max_new_tokens: int = 128,
             temperature: float = 0.0) -> Generation:
    """Apply the chat template and generate (greedy when ``temperature`` is 0).

    ``ttft_s`` counts from this call: templating, tokenization, the prefill of the whole
    prompt (logits only for the last position) and the first decode step.
    """
    t0 = time.perf_counter()
    ids = chat.tokenizer.apply_chat_template(messages, add_generation_prompt=True,
                                             tokenize=True, return_dict=True)["input_ids"]
    return generate_ids(chat, list(ids), max_new_tokens=max_new_tokens,
                        temperature=temperature, started=t0)


def generate_ids(chat: ChatModel, ids: list[int], *, cache: Any = None,
                 max_new_tokens: int = 128, temperature: float = 0.0,
                 started: float | None = None, first_logits: Any = None) -> Generation:
    """Generate after the prompt ``ids``. With ``cache`` (a ``DynamicCache`` holding the
    first ``cache.get_seq_length()`` tokens of ``ids``), only the rest is prefilled; the cache
    is consumed (transformers extends it in place), so pass a fresh one each call.

    ``first_logits``: ``[vocab]`` logits after the last prompt token, when the caller has them
    already (``cache`` then holds every token of ``ids``): the first token is taken from them
    (argmax, or sampled at ``temperature``) and ``generate`` continues after it.
    ``started``: ``time.perf_counter()`` value that ``ttft_s`` counts from (default: now).
    """
    import torch

    tok = chat.tokenizer
    t0 = time.perf_counter() if started is None else started
    if first_logits is not None:
        return _continue(chat, ids, cache, first_logits, max_new_tokens, temperature, t0)
    input_ids = torch.tensor([ids], dtype=torch.long, device=chat.model.device)
    clock = _FirstTokenClock()
    kwargs: dict[str, Any] = {"max_new_tokens": max_new_tokens, "streamer": clock,
                              "pad_token_id": tok.pad_token_id or tok.eos_token_id}
    if cache is not None:
        kwargs["past_key_values"] = cache
    opts = generation.current()
    kwargs.update(opts.hf_kwargs(tok, len(ids)))
    if temperature > 0:
        kwargs.update(do_sample=True, temperature=temperature, top_p=opts.top_p)
        if opts.seed is not None:
            torch.manual_seed(opts.seed)
    else:
        kwargs.update(do_sample=False, temperature=None, top_p=None, top_k=None)
    with torch.inference_mode():
        out = chat.model.generate(input_ids=input_ids,
                                  attention_mask=torch.ones_like(input_ids), **kwargs)
    total = time.perf_counter() - t0
    new = out[0, input_ids.shape[1]:]
    raw = tok.decode(new, skip_special_tokens=True)
    text = raw.strip()
    blank = opts.stop_at_blank_line and "\n\n" in raw.lstrip("\n")
    if opts.stop_at_blank_line:  # the stop string itself is not part of the answer
        text = text.split("\n\n", 1)[0].strip()
    ttft = (clock.first - t0) if clock.first is not None else total
    return Generation(text, len(ids), int(new.shape[0]), ttft, total, new.tolist(),
                      stop=stop_reason(new.tolist(), tok, max_new_tokens, blank))


def stop_reason(new: list[int], tokenizer: Any, max_new_tokens: int, blank: bool) -> str:
    """Why generating ``new`` stopped (:attr:`Generation.stop`)."""
    eos = tokenizer.eos_token_id
    ends = set(eos) if isinstance(eos, list) else {eos}
    if new and new[-1] in ends:
        return "end"
    if blank:
        return "blank line"
    return "max tokens" if len(new) >= max_new_tokens else "end"


def _continue(chat: ChatModel, ids: list[int], cache: Any, logits: Any, max_new_tokens: int,
              temperature: float, t0: float) -> Generation:
    import torch

    opts = generation.current()
    if temperature > 0:
        if opts.seed is not None:
            torch.manual_seed(opts.seed)
        probs = torch.softmax(logits.float() / temperature, -1)
        if opts.top_p < 1.0:  # nucleus: keep the smallest set of tokens holding top_p
            sorted_p, order = torch.sort(probs, descending=True)
            drop = torch.cumsum(sorted_p, -1) - sorted_p > opts.top_p
            probs = probs.scatter(-1, order, sorted_p.masked_fill(drop, 0.0))
        first = int(torch.multinomial(probs / probs.sum(), 1))
    else:
        first = int(torch.argmax(logits))
    ttft = time.perf_counter() - t0
    eos = chat.tokenizer.eos_token_id
    new = [first]
    if max_new_tokens > 1 and first != eos:
        rest = generate_ids(chat, [*ids, first], cache=cache, max_new_tokens=max_new_tokens - 1,
                            temperature=temperature, started=t0)
        new += rest.token_ids
    total = time.perf_counter() - t0
    text = chat.tokenizer.decode(new, skip_special_tokens=True).strip()
    stop = rest.stop if max_new_tokens > 1 and first != eos else stop_reason(
        new, chat.tokenizer, max_new_tokens, False)
    return Generation(text, len(ids), len(new), ttft, total, new, stop=stop)
