"""Several parameter-tier adapters at once: the LoRA adapters of cubes built independently on
the same base model, combined into one with PEFT's multi-adapter support
(``PeftModel.load_adapter`` and ``add_weighted_adapter``), so that capability modules compose
as the MemOS paper (arXiv 2507.03724, §4.1) has them. ``memos run a b --tier lora --combine``.
"""

from __future__ import annotations

import warnings
from collections.abc import Sequence
from typing import Any

from memos_cli.cube.lora import check_adapter, lora_memories, read_meta
from memos_cli.errors import FormatError, UsageError
from memos_cli.models.chat import ChatModel
from memos_cli.tiers.lora.adapter import attach, check_adapter_fits

#: How several adapters answer together. ``cat`` and ``linear`` merge them into one (PEFT
#: ``add_weighted_adapter``, :func:`attach_many`): ``cat`` stacks their low-rank factors, so the
#: update is exactly the sum of the adapters' updates (ranks add up); ``linear`` averages the
#: factors (equal ranks only; cheaper, approximate). ``route`` attaches one adapter per
#: question, the one whose memories are nearest to it (:func:`route`).
COMBINE = ("cat", "linear", "route")


def route(cubes: Sequence[Any], embedder: Any, question: str) -> tuple[int, list[float]]:
    """The index in ``cubes`` of the adapter to answer ``question`` with, and every cube's
    score: the highest cosine similarity between the question and a memory the cube's adapter
    was trained on (``lora/memories.arrow``, embedded by ``embedder`` into ``[n, d]`` float32
    unit rows). Choosing the adapter by the input's similarity to the data each adapter was
    trained on, instead of summing adapters, follows LoraRetriever (Zhao et al., "Input-Aware
    LoRA Retrieval and Composition for Mixed Tasks in the Wild", Findings of ACL 2024).

    Raises:
        IntegrityError: a cube's memories do not match what its adapter was trained on.
    """
    q = embedder.encode([question])[0]
    scores = []
    for cube in cubes:
        vectors = embedder.encode([m.content for m in lora_memories(cube)])
        scores.append(float((vectors @ q).max()) if len(vectors) else -1.0)
    return max(range(len(cubes)), key=lambda i: scores[i]), scores


def check_all(chat: ChatModel, cubes: Sequence[Any]) -> None:
    """Check every cube's adapter as :func:`memos_cli.tiers.lora.attach` does, before any is
    attached.

    Raises:
        FormatError: an adapter of another base model, or a malformed adapter.
        IntegrityError: a file missing or resized.
    """
    for cube in cubes:
        check_adapter_fits(chat, read_meta(cube.lora_dir), cube.lora_dir)
        check_adapter(cube.lora_dir)


def attach_many(chat: ChatModel, cubes: Sequence[Any], *, combine: str = "cat",
                merge: bool = True) -> ChatModel:
    """``chat`` with the adapters of several cubes, built independently on the same base
    model, combined into one (PEFT multi-adapter, ``add_weighted_adapter``, weight 1 each).
    One cube: :func:`attach`. Each adapter is checked as :func:`attach` checks it.

    Raises:
        UsageError: an unknown ``combine``, or ``linear`` over adapters of other ranks.
        FormatError: an adapter of another base model, or adapters of other target modules.
    """
    import json

    from peft import PeftModel

    if combine not in COMBINE:
        raise UsageError(f"--combine {combine!r} is not one of {', '.join(COMBINE)}")
    if combine == "route":
        raise UsageError("--combine route attaches one adapter per question (route, then "
                         "lora.attach); it does not merge them")
    if len(cubes) == 1:
        return attach(chat, cubes[0], merge=merge)
    check_all(chat, cubes)
    configs = [json.loads((cube.lora_dir / "adapter_config.json").read_text("utf-8"))
               for cube in cubes]
    targets = [sorted(c["target_modules"]) for c in configs]
    if any(t != targets[0] for t in targets):
        raise FormatError(f"adapters of {cubes[0].path.name} and {cubes[1].path.name} "
                          f"adapt other modules ({', '.join(targets[0])} vs "
                          f"{', '.join(next(t for t in targets if t != targets[0]))}): "
                          "they cannot be combined", path=cubes[0].path)
    ranks = [int(c["r"]) for c in configs]
    if combine == "linear" and len(set(ranks)) > 1:
        raise UsageError(f"--combine linear needs adapters of one rank (here "
                         f"{', '.join(map(str, ranks))}); use --combine cat")
    chat.fingerprint()  # of the base, before PEFT renames its modules
    names = [f"cube{i}" for i in range(len(cubes))]
    with warnings.catch_warnings():  # PEFT calls a transformers API deprecated for v6
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(chat.model, str(cubes[0].lora_dir),
                                          adapter_name=names[0], is_trainable=False)
        for name, cube in zip(names[1:], cubes[1:], strict=True):
            model.load_adapter(str(cube.lora_dir), adapter_name=name, is_trainable=False)
        model.add_weighted_adapter(names, [1.0] * len(names), adapter_name="combined",
                                   combination_type=combine)
    model.set_adapter("combined")
    model.eval()
    if merge:
        model.base_model.merge_adapter()  # type: ignore[operator]
    return ChatModel(chat.name, chat.path, model, chat.tokenizer, chat.load_s,
                     chat._fingerprint)
