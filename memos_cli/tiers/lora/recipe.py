"""How an adapter is trained (spec §11): the recipe names, :class:`Recipe` with its per-recipe
defaults, and what training returns. The recipes themselves are in
:mod:`~memos_cli.tiers.lora.train` and :mod:`~memos_cli.tiers.lora.distill`."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from memos_cli.tiers.lora.data import REPLAY_PROMPTS

RECIPES = ("selfqa", "anchors", "mixed", "text", "distill", "mixed-kl", "guarded")
#: The projections of a Llama-style block; an adapter targets those the model has.
TARGET_MODULES = ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj")


@dataclass(frozen=True)
class Recipe:
    """How an adapter is trained; stored in the cube's ``lora/memcube_lora.json``.

    ``epochs`` passes over the examples in batches of ``batch_size`` at learning rate ``lr``
    (AdamW, linear warm-up over the first 5 % of steps then linear decay to 0);
    ``questions_per_memory`` sampled questions (``selfqa``) at ``qgen_temperature``;
    ``replay``: how many of :data:`REPLAY_PROMPTS` are answered by the base model (greedy, 48
    tokens at most) and trained on as they are, against forgetting;
    ``rank``/``alpha``/``dropout`` of the LoRA; ``max_tokens``: examples are cut to this many
    tokens. The dataclass defaults are those of ``mixed``; :meth:`named` applies a recipe's
    own (:data:`RECIPE_DEFAULTS`).
    """

    name: str = "mixed"
    rank: int = 16
    alpha: int = 32
    dropout: float = 0.0
    target_modules: tuple[str, ...] = TARGET_MODULES
    lr: float = 1e-3
    epochs: int = 3
    batch_size: int = 8
    questions_per_memory: int = 4
    qgen_temperature: float = 0.7
    replay: int = len(REPLAY_PROMPTS)
    max_tokens: int = 160
    seed: int = 0
    #: recipe ``distill``: teacher tokens kept per position, and the weight of the general
    #: prompts' KL toward the base model against the memories' (``tiers.distill``)
    kl_top_k: int = 32
    general_weight: float = 1.0
    #: recipe ``guarded``: general prompts in every batch of ``batch_size`` (the rest are the
    #: memories' questions), drawn in turn from the packaged training set
    general_per_batch: int = 2

    @classmethod
    def named(cls, name: str, **overrides: Any) -> Recipe:
        """Recipe ``name`` with its own defaults (:data:`RECIPE_DEFAULTS`), then ``overrides``
        (``None`` values are left at the default)."""
        return cls(name=name, **(RECIPE_DEFAULTS.get(name, {}) |
                                 {k: v for k, v in overrides.items() if v is not None}))

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["target_modules"] = list(self.target_modules)
        return d


#: Defaults that differ from :class:`Recipe`'s for one recipe (chosen on half of the
#: measurement, README "Parameter tier").
RECIPE_DEFAULTS: dict[str, dict[str, Any]] = {
    "guarded": {"epochs": 2, "lr": 1.5e-3, "general_per_batch": 3, "general_weight": 2.0},
}


@dataclass
class TrainResult:
    """A trained adapter (``model``: the PEFT model) and what the metadata records."""

    model: Any
    examples: int
    steps: int
    train_s: float
    qgen_s: float
    losses: list[float] = field(default_factory=list)
