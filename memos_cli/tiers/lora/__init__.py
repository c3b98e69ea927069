"""The parameter tier (spec §11): distil memories into a LoRA adapter, attach it, answer with
the question alone in the prompt.

Its modules, each below the next:

- :mod:`~memos_cli.tiers.lora.data`: training examples (sampled questions, anchors, replay
  and general prompts), tokenisation, batched greedy generation;
- :mod:`~memos_cli.tiers.lora.recipe`: :class:`Recipe` and its per-recipe defaults;
- :mod:`~memos_cli.tiers.lora.distill`: the KL losses of ``distill``, ``mixed-kl`` and
  ``guarded``;
- :mod:`~memos_cli.tiers.lora.train`: :func:`train`, every recipe;
- :mod:`~memos_cli.tiers.lora.adapter`: :func:`attach` and :func:`detach`;
- :mod:`~memos_cli.tiers.lora.combine`: several adapters at once (``cat``, ``linear``,
  ``route``);
- :mod:`~memos_cli.tiers.lora.answer`: :func:`answer_lora`.

The names below are re-exported for ``from memos_cli.tiers import lora; lora.train(...)``.
Importing this package imports neither torch nor PEFT; its functions do, when called.
"""

from __future__ import annotations

from memos_cli.tiers.lora.adapter import attach, check_adapter_fits, detach
from memos_cli.tiers.lora.answer import answer_lora
from memos_cli.tiers.lora.data import (
    ANCHOR_TEMPLATES,
    GUARD_TOKENS,
    QGEN_PROMPT,
    REPLAY_PROMPTS,
    Example,
    base_answers,
    build_examples,
    encode,
    general_prompts,
    prompt_ids,
    sample_questions,
    spacy_anchors,
)
from memos_cli.tiers.lora.recipe import (
    RECIPE_DEFAULTS,
    RECIPES,
    TARGET_MODULES,
    Recipe,
    TrainResult,
)
from memos_cli.tiers.lora.train import batches, present_modules, train

__all__ = ["ANCHOR_TEMPLATES", "GUARD_TOKENS", "QGEN_PROMPT", "RECIPES", "RECIPE_DEFAULTS",
           "REPLAY_PROMPTS", "TARGET_MODULES", "Example", "Recipe", "TrainResult", "answer_lora",
           "attach", "base_answers", "batches", "build_examples", "check_adapter_fits", "detach",
           "encode", "general_prompts", "present_modules", "prompt_ids", "sample_questions",
           "spacy_anchors", "train"]
