"""Attach a cube's LoRA adapter to the chat model and take it off again (spec §11)."""

from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from memos_cli.cube.lora import check_adapter, read_meta
from memos_cli.errors import FormatError
from memos_cli.models.chat import ChatModel


def check_adapter_fits(chat: ChatModel, meta: dict[str, Any], where: str | Path) -> None:
    """Refuse an adapter trained on another base model, naming every mismatch.

    Raises:
        FormatError: the fingerprints differ (the fields of ``models.fingerprint.CHECKED``).
    """
    diff = chat.fingerprint_mismatches(meta["model_fingerprint"])
    if diff:
        raise FormatError(f"LoRA adapter was trained on {meta['model']} and does not fit "
                          f"{chat.name}: " + "; ".join(diff), path=where)


def attach(chat: ChatModel, cube: Any, *, merge: bool = True) -> ChatModel:
    """``chat`` with the cube's adapter attached (a PEFT model over the same base weights).

    The fingerprint is checked first, then PEFT's files (:func:`memos_cli.cube.lora.
    check_adapter`); only then does PEFT read the safetensors weights. With ``merge`` the
    low-rank update is added into the base weights (``W + B A * alpha / r``), so a forward pass
    costs what the base model's does; the answers equal the unmerged adapter's up to float32
    rounding. Call :func:`detach` to get the base model back.

    Raises:
        UsageError: the cube has no parameter tier. FormatError: another base model, or a
        malformed adapter. IntegrityError: a file missing or resized.
    """
    from peft import PeftModel

    directory = cube.lora_dir
    meta = read_meta(directory)
    check_adapter_fits(chat, meta, directory)
    check_adapter(directory)
    chat.fingerprint()  # of the base, before PEFT renames its modules
    with warnings.catch_warnings():  # PEFT calls a transformers API deprecated for v6
        warnings.simplefilter("ignore", FutureWarning)
        model = PeftModel.from_pretrained(chat.model, str(directory), is_trainable=False).eval()
    if merge:
        model.base_model.merge_adapter()  # type: ignore[operator]
    return ChatModel(chat.name, chat.path, model, chat.tokenizer, chat.load_s,
                     chat._fingerprint)


def detach(model: Any) -> Any:
    """The base model under a PEFT model (from :func:`attach` or :func:`train`), with the
    adapter layers removed and a merged update subtracted again (the base weights come back
    up to float32 rounding)."""
    if any(getattr(m, "merged", False) for m in model.modules()):
        model.base_model.unmerge_adapter()
    return model.unload()
