"""Scoring conversations with a reward model, exactly as ``RewardTrainer`` saw them in training.

Conversations are rendered with the reward model's own chat template, so a reward model
whose tokenizer differs from the policy's scores re-tokenised text, never foreign ids.
PPO, the generation jobs' pair selection and the evaluations all score through here.
"""

from __future__ import annotations

from typing import Any

from rlhf.errors import ConfigError
from rlhf.modeling.adapters import load_sequence_classifier, tokenizer_path
from rlhf.modeling.tokens import load_tokenizer


def load_reward_model(path):
    """A reward model and its tokenizer from a folder, a hub id or a :class:`~rlhf.modeling.adapters.ModelRef`."""
    tokenizer = load_tokenizer(tokenizer_path(path))
    model = load_sequence_classifier(path)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


def token_scores(model, input_ids, attention_mask):
    """Score-head output at every position, ``(batch, tokens)``.

    A sequence-classification model's own ``forward`` pools at the last token that is not
    ``pad_token_id``, which goes wrong when pad and EOS are the same token; running the
    backbone and the ``score`` head ourselves gives per-token values (PPO's value model)
    and lets the caller pick the position (the reward: the last real token).
    """
    head = getattr(model, "score", None)
    if head is None:
        raise ConfigError(
            f"{type(model).__name__} has no `score` head; a reward model must be a decoder-style "
            "sequence-classification model"
        )
    position_ids = (attention_mask.cumsum(1) - 1).clamp(min=0)
    backbone = getattr(model, model.base_model_prefix)
    hidden = backbone(
        input_ids=input_ids, attention_mask=attention_mask, position_ids=position_ids, use_cache=False
    ).last_hidden_state
    return head(hidden).squeeze(-1)


def reward_scores(
    model, tokenizer, conversations: list[list[dict[str, Any]]], batch_size: int = 16, max_length: int | None = 1024
):
    """One score per conversation (prompt messages + assistant answer), a float tensor on the model's device.

    Long conversations keep their end (the answer), within ``max_length`` and the model's
    own position limit. Right padding; the score is the head's output at the last real token.
    """
    import torch
    from trl.trainer.utils import pad

    device = next(model.parameters()).device
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    limits = [n for n in (max_length, getattr(model.config, "max_position_embeddings", None)) if n]
    keep = min(limits) if limits else None
    rows = []
    for conversation in conversations:
        ids = tokenizer.apply_chat_template(conversation, tokenize=True, return_dict=True)["input_ids"]
        rows.append(torch.tensor(ids[-keep:] if keep else ids, dtype=torch.long))
    scores = []
    with torch.no_grad():
        for start in range(0, len(rows), batch_size):
            part = rows[start : start + batch_size]
            ids = pad(part, padding_value=pad_id, padding_side="right").to(device)
            mask = pad([torch.ones_like(r) for r in part], padding_value=0, padding_side="right").to(device)
            if getattr(model, "score", None) is None:  # e.g. an encoder with a `classifier`: its own pooling
                scores.append(model(input_ids=ids, attention_mask=mask).logits[:, 0].float())
                continue
            per_token = token_scores(model, ids, mask)
            scores.append(per_token[torch.arange(len(part), device=device), mask.sum(1) - 1].float())
    return torch.cat(scores) if scores else torch.zeros(0, device=device)


def score_conversations(
    model, tokenizer, conversations: list[list[dict[str, Any]]], batch_size: int = 16, max_length: int = 1024
) -> list[float]:
    """One scalar per conversation (prompt messages + assistant answer)."""
    return reward_scores(model, tokenizer, conversations, batch_size, max_length).tolist()


def pairwise_accuracy(model, tokenizer, rows: list[dict]) -> float | None:
    """Share of preference rows where the chosen answer scores above the rejected one."""
    if not rows:
        return None
    chosen = score_conversations(model, tokenizer, [r["prompt"] + r["chosen"] for r in rows])
    rejected = score_conversations(model, tokenizer, [r["prompt"] + r["rejected"] for r in rows])
    return sum(c > r for c, r in zip(chosen, rejected)) / len(rows)
