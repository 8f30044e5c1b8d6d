"""Scoring conversations with a reward model, exactly as ``RewardTrainer`` saw them in training.

Conversations are rendered with the reward model's own chat template, so a reward model
whose tokenizer differs from the policy's scores re-tokenised text, never foreign ids.
"""

from __future__ import annotations

from typing import Any


def load_reward_model(path: str):
    from transformers import AutoModelForSequenceClassification

    from rlhf.training.common import load_tokenizer

    tokenizer = load_tokenizer(path)
    model = AutoModelForSequenceClassification.from_pretrained(path, num_labels=1)
    model.config.pad_token_id = tokenizer.pad_token_id
    model.eval()
    return model, tokenizer


def score_conversations(model, tokenizer, conversations: list[list[dict[str, Any]]], batch_size: int = 16,
                        max_length: int = 1024) -> list[float]:
    """One scalar per conversation (prompt messages + assistant answer)."""
    import torch

    scores: list[float] = []
    device = next(model.parameters()).device
    for i in range(0, len(conversations), batch_size):
        ids = [tokenizer.apply_chat_template(c, tokenize=True, return_dict=True)["input_ids"][-max_length:]
               for c in conversations[i:i + batch_size]]
        width = max(len(x) for x in ids)
        # Right padding: the model finds the last non-pad token from pad_token_id.
        input_ids = torch.full((len(ids), width), tokenizer.pad_token_id, dtype=torch.long)
        attention = torch.zeros((len(ids), width), dtype=torch.long)
        for row, x in enumerate(ids):
            input_ids[row, :len(x)] = torch.tensor(x)
            attention[row, :len(x)] = 1
        with torch.no_grad():
            logits = model(input_ids=input_ids.to(device), attention_mask=attention.to(device)).logits
        scores += logits[:, 0].float().tolist()
    return scores


def pairwise_accuracy(model, tokenizer, rows: list[dict]) -> float | None:
    """Share of preference rows where the chosen answer scores above the rejected one."""
    if not rows:
        return None
    chosen = score_conversations(model, tokenizer, [r["prompt"] + r["chosen"] for r in rows])
    rejected = score_conversations(model, tokenizer, [r["prompt"] + r["rejected"] for r in rows])
    return sum(c > r for c, r in zip(chosen, rejected)) / len(rows)
