"""Sampling responses from a checkpoint: one model load, batched, left-padded."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from rlhf.errors import ConfigError
from rlhf.modeling.adapters import ModelRef, load_causal_lm, tokenizer_path
from rlhf.modeling.tokens import eos_token_ids, load_tokenizer


@dataclass
class Sample:
    text: str
    finished: bool  # ended with EOS, not cut off at max_new_tokens


@dataclass
class SamplingParams:
    temperature: float = 1.0
    top_p: float = 1.0
    max_new_tokens: int = 64
    seed: int = 0
    batch_size: int = 32
    max_prompt_tokens: int = 512

    def as_dict(self) -> dict[str, Any]:
        return dict(self.__dict__)


def load_policy(path: str | ModelRef):
    """Load a causal LM and its tokenizer from a local directory, a hub id or a ref (an adapter over its base)."""
    try:
        tokenizer = load_tokenizer(tokenizer_path(path))
        model = load_causal_lm(path)
    except OSError as exc:
        raise ConfigError(
            f"cannot load model {path!r}: {exc}. If this is a hub id, this machine may not reach the hub: "
            "download it elsewhere and register the local directory, or set RLHF_BASE_MODEL=tiny"
        ) from exc
    model.eval()
    return model, tokenizer


def render_prompts(tokenizer, prompts: list[list[dict]], max_prompt_tokens: int) -> list[list[int]]:
    """Chat-template each prompt; long prompts keep their end (the question), losing the start."""
    out = []
    for messages in prompts:
        ids = tokenizer.apply_chat_template(messages, add_generation_prompt=True, tokenize=True, return_dict=True)[
            "input_ids"
        ]
        out.append(list(ids[-max_prompt_tokens:]))
    return out


def generate(
    model, tokenizer, prompts: list[list[dict]], n: int = 1, params: SamplingParams | None = None
) -> list[list[Sample]]:
    """``n`` samples for each prompt, from an already loaded model."""
    import torch
    from trl.trainer.utils import pad

    params = params or SamplingParams()
    torch.manual_seed(params.seed)
    eos_ids = eos_token_ids(model, tokenizer)
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eos_ids[0]
    encoded = render_prompts(tokenizer, prompts, params.max_prompt_tokens)
    jobs = [(i, ids) for i, ids in enumerate(encoded) for _ in range(n)]
    results: list[list[Sample]] = [[] for _ in prompts]
    device = next(model.parameters()).device
    for start in range(0, len(jobs), params.batch_size):
        batch = jobs[start : start + params.batch_size]
        # Left padding: every prompt ends at the same position, where generation starts.
        input_ids = pad([torch.tensor(ids) for _, ids in batch], padding_value=pad_id, padding_side="left")
        attention = pad(
            [torch.ones(len(ids), dtype=torch.long) for _, ids in batch], padding_value=0, padding_side="left"
        )
        width = input_ids.shape[1]
        with torch.no_grad():
            out = model.generate(
                input_ids=input_ids.to(device),
                attention_mask=attention.to(device),
                do_sample=params.temperature > 0,
                temperature=params.temperature or None,
                top_p=params.top_p,
                max_new_tokens=params.max_new_tokens,
                eos_token_id=eos_ids,
                pad_token_id=pad_id,
            )
        for row, (i, _) in enumerate(batch):
            tokens = out[row, width:].tolist()
            finished = False
            for pos, tok in enumerate(tokens):
                if tok in eos_ids:
                    tokens, finished = tokens[:pos], True
                    break
            results[i].append(Sample(clean_text(tokenizer.decode(tokens, skip_special_tokens=True)), finished))
    return results


_CONTROL = {c: None for c in range(32) if chr(c) not in "\n\t"} | {0x7F: None}


def clean_text(text: str) -> str:
    """Drop control characters a byte-level model can emit (NUL cannot be stored in PostgreSQL text)."""
    return text.translate(_CONTROL).replace("\ufffd", "").strip()


def sample_checkpoint(
    path: str | ModelRef, prompts: list[list[dict]], n: int = 1, params: SamplingParams | None = None
) -> list[list[Sample]]:
    model, tokenizer = load_policy(path)
    return generate(model, tokenizer, prompts, n=n, params=params)
