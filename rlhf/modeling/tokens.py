"""Tokenizer facts every model user needs: loading one with a pad token, and the ids that end a turn."""

from __future__ import annotations


def load_tokenizer(path: str):
    """The tokenizer at ``path``; one without a pad token pads with its EOS."""
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(path)
    if tok.pad_token is None:
        tok.pad_token = tok.eos_token
    return tok


def eos_token_ids(model, tokenizer) -> list[int]:
    """Every id that ends a response: the tokenizer's EOS and those of the model's configs.

    Chat models often stop on an end-of-turn token that only the generation config
    names; missing one would let a response run on past its end.
    """
    ids: list[int] = []
    for value in (
        tokenizer.eos_token_id,
        getattr(model.generation_config, "eos_token_id", None),
        getattr(model.config, "eos_token_id", None),
    ):
        for i in [value] if isinstance(value, int) else list(value or []):
            if i is not None and i not in ids:
                ids.append(i)
    return ids
