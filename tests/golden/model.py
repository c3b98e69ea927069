"""The tiny model of the golden KV and LoRA cubes (spec §9), built deterministically.

A word-level tokenizer over ``fixtures/golden/corpus`` (which never changes) with a ChatML
template, and a 2-layer Llama (hidden 32, 4 heads, 2 KV heads) whose every parameter is drawn
from one seeded ``torch.Generator`` in sorted name order, so the weights do not depend on how
transformers initialises a model. With the pinned torch and transformers, the same
directory (and so the same model fingerprint) comes out on every machine.
"""

from __future__ import annotations

from pathlib import Path

GOLDEN = Path(__file__).resolve().parents[2] / "fixtures" / "golden"
SEED = 20240301


def tokenizer():  # type: ignore[no-untyped-def]
    from tokenizers import Tokenizer, models, pre_tokenizers, trainers
    from transformers import PreTrainedTokenizerFast

    special = ["<unk>", "<|im_start|>", "<|im_end|>"]
    tk = Tokenizer(models.WordLevel(unk_token="<unk>"))
    tk.pre_tokenizer = pre_tokenizers.Whitespace()
    texts = [p.read_text("utf-8") for p in sorted((GOLDEN / "corpus").iterdir())]
    texts.append("system user assistant You are a helpful memory answer question Memories "
                 "below facts know briefly hold say do not")
    tk.train_from_iterator(texts, trainers.WordLevelTrainer(special_tokens=special,
                                                            vocab_size=600))
    tok = PreTrainedTokenizerFast(tokenizer_object=tk, unk_token="<unk>",
                                  bos_token="<|im_start|>", eos_token="<|im_end|>",
                                  pad_token="<|im_end|>")
    tok.chat_template = (
        "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
        "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    return tok


def build(out: Path) -> Path:
    """Save the golden model (``config.json``, ``model.safetensors``, tokenizer) to ``out``."""
    import torch
    from transformers import AutoConfig, AutoModelForCausalLM

    tok = tokenizer()
    tok.save_pretrained(out)
    cfg = AutoConfig.for_model(
        "llama", vocab_size=len(tok), hidden_size=32, intermediate_size=64,
        num_hidden_layers=2, num_attention_heads=4, num_key_value_heads=2,
        max_position_embeddings=1024, tie_word_embeddings=True, rope_theta=10000.0,
        bos_token_id=tok.bos_token_id, eos_token_id=tok.eos_token_id,
        pad_token_id=tok.pad_token_id)
    model = AutoModelForCausalLM.from_config(cfg)
    gen = torch.Generator().manual_seed(SEED)
    with torch.no_grad():
        params = dict(model.named_parameters())
        for name in sorted(params):
            p = params[name]
            if name.endswith("norm.weight"):
                p.fill_(1.0)
            else:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.05)
    model.save_pretrained(out)
    return out
